"""Model backends of the DVG data engine (paper 3.2): depth, inpainting and optical flow.

Each kind has an explicit registry (name -> class) and a config object, :class:`BackendSpec`;
``DEPTH_BACKENDS.create(BackendSpec("dpt"))`` builds and loads a backend once. Models load from a
hub id or a local path and honour ``HF_HUB_OFFLINE``; a missing model raises one
:class:`MissingWeightsError` naming it, how to provide it and the weights-free alternatives
(``sidecar`` depth, ``telea`` inpainting, ``dis`` flow). Heavy libraries (transformers,
diffusers) are imported only when a backend that needs them is built. See docs/backends.md.
"""

from dvg.backends.depth import (
    DEPTH_BACKENDS,
    DepthAnythingDepth,
    DepthBackend,
    DepthContext,
    DepthPrediction,
    DPTDepth,
    MarigoldDepth,
)
from dvg.backends.flow import FLOW_BACKENDS, DISFlow, FlowBackend, RAFTFlow
from dvg.backends.inpaint import (
    INPAINT_BACKENDS,
    InpaintBackend,
    StableDiffusionInpaint,
    TeleaInpaint,
)
from dvg.backends.preflight import PreflightError, check_weights, preflight_weights
from dvg.backends.registry import Backend, BackendSpec, Registry
from dvg.backends.sidecar import MissingSidecarError, SidecarDepth, SidecarError, sidecar_name
from dvg.backends.weights import MissingWeightsError

__all__ = [
    "DEPTH_BACKENDS",
    "FLOW_BACKENDS",
    "INPAINT_BACKENDS",
    "Backend",
    "BackendSpec",
    "DISFlow",
    "DPTDepth",
    "DepthAnythingDepth",
    "DepthBackend",
    "DepthContext",
    "DepthPrediction",
    "FlowBackend",
    "InpaintBackend",
    "MarigoldDepth",
    "MissingSidecarError",
    "MissingWeightsError",
    "PreflightError",
    "RAFTFlow",
    "Registry",
    "SidecarDepth",
    "SidecarError",
    "StableDiffusionInpaint",
    "TeleaInpaint",
    "check_weights",
    "preflight_weights",
    "sidecar_name",
]
