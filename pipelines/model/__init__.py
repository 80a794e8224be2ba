"""The SpatialDreamer model (paper 3.3-3.4): denoising U-Net, RefinerNet, TIL, deviation."""

from .config import FORMAT_VERSION, ModelConfig
from .deviation import DeviationEmbedding, deviation_strength
from .loading import ComponentLoadError
from .reference_attention import (
    ReferencePairingError,
    ReferenceReadProcessor,
    ReferenceWriteProcessor,
    pair_reference_attention,
    spatial_self_attentions,
)
from .spatialdreamer import (
    TEMPORAL_MARKERS,
    SpatialDreamerModel,
    is_temporal_parameter,
    widen_conv_in,
)
from .til import TemporalInteraction, TILAttention, neighbour_indices, til_attention
from .tiny import save_tiny_sd, save_tiny_svd

__all__ = [
    "FORMAT_VERSION",
    "TEMPORAL_MARKERS",
    "ComponentLoadError",
    "DeviationEmbedding",
    "ModelConfig",
    "ReferencePairingError",
    "ReferenceReadProcessor",
    "ReferenceWriteProcessor",
    "SpatialDreamerModel",
    "TILAttention",
    "TemporalInteraction",
    "deviation_strength",
    "is_temporal_parameter",
    "neighbour_indices",
    "pair_reference_attention",
    "save_tiny_sd",
    "save_tiny_svd",
    "spatial_self_attentions",
    "til_attention",
    "widen_conv_in",
]
