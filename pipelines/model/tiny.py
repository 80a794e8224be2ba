"""Tiny random SVD and SD2.1 component directories, saved in the real layouts.

For tests and the trainer's `tiny` preset (like diffusers' own test components): they load through
exactly the code path of the hub checkpoints, `from_components(ModelConfig(svd=dir, refiner=dir))`.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch
from diffusers import (
    AutoencoderKLTemporalDecoder,
    EulerDiscreteScheduler,
    UNet2DConditionModel,
    UNetSpatioTemporalConditionModel,
)
from transformers import CLIPVisionConfig, CLIPVisionModelWithProjection

try:
    from transformers import CLIPImageProcessorPil as CLIPImageProcessor
except ImportError:  # pragma: no cover - transformers 4.x
    from transformers import CLIPImageProcessor

# Shared by both tiny U-Nets so their spatial self-attentions pair 1:1 (32, 32 | 64 | 32, 32, 32).
TINY_BLOCK_OUT_CHANNELS = (32, 64)
TINY_CROSS_ATTENTION_DIM = 32
TINY_HEADS = 8
# SVD's scheduler configuration (EDM-style Euler, v-prediction, continuous timesteps).
SVD_SCHEDULER_CONFIG = {
    "beta_end": 0.012,
    "beta_schedule": "scaled_linear",
    "beta_start": 0.00085,
    "interpolation_type": "linear",
    "num_train_timesteps": 1000,
    "prediction_type": "v_prediction",
    "sigma_max": 700.0,
    "sigma_min": 0.002,
    "steps_offset": 1,
    "timestep_spacing": "leading",
    "timestep_type": "continuous",
    "use_karras_sigmas": True,
}


def save_tiny_svd(path: str | Path, seed: int = 0) -> Path:
    """Write a tiny random SVD pipeline directory (model_index.json + unet, vae, image_encoder,
    feature_extractor, scheduler). The VAE downsamples 8x like SVD's: 64x64 images -> 8x8 latents.
    """
    path = Path(path)
    torch.manual_seed(seed)
    unet = tiny_svd_unet()
    vae = AutoencoderKLTemporalDecoder(
        down_block_types=("DownEncoderBlock2D",) * 4,
        block_out_channels=(32, 32, 32, 32),
        layers_per_block=1,
        latent_channels=4,
        sample_size=64,
    )
    image_encoder, feature_extractor = tiny_image_encoder()
    return save_svd_layout(path, unet, vae, image_encoder, feature_extractor)


def tiny_svd_unet(
    sample_size: int = 32,
    block_out_channels: tuple[int, ...] = TINY_BLOCK_OUT_CHANNELS,
    layers_per_block: int = 2,
    down_block_types: tuple[str, ...] = (
        "CrossAttnDownBlockSpatioTemporal",
        "DownBlockSpatioTemporal",
    ),
    up_block_types: tuple[str, ...] = ("UpBlockSpatioTemporal", "CrossAttnUpBlockSpatioTemporal"),
    heads: int = TINY_HEADS,
) -> UNetSpatioTemporalConditionModel:
    """A random SVD-layout denoising U-Net (8 input channels); by default cross-attention at full
    latent resolution, pairing 1:1 with ``tiny_sd_unet`` of the same channels."""
    return UNetSpatioTemporalConditionModel(
        sample_size=sample_size,
        in_channels=8,
        out_channels=4,
        down_block_types=down_block_types,
        up_block_types=up_block_types,
        block_out_channels=block_out_channels,
        layers_per_block=layers_per_block,
        cross_attention_dim=TINY_CROSS_ATTENTION_DIM,
        num_attention_heads=heads,
        addition_time_embed_dim=32,
        projection_class_embeddings_input_dim=96,
    )


def tiny_image_encoder() -> tuple[CLIPVisionModelWithProjection, CLIPImageProcessor]:
    """A random CLIP image encoder (32x32 input, 32-d embedding) and its feature extractor."""
    image_encoder = CLIPVisionModelWithProjection(
        CLIPVisionConfig(
            hidden_size=32,
            projection_dim=TINY_CROSS_ATTENTION_DIM,
            num_hidden_layers=2,
            num_attention_heads=4,
            intermediate_size=37,
            image_size=32,
            patch_size=4,
        )
    )
    return image_encoder, CLIPImageProcessor(crop_size=32, size=32)


def save_svd_layout(
    path: str | Path,
    unet: UNetSpatioTemporalConditionModel,
    vae: Any,
    image_encoder: CLIPVisionModelWithProjection,
    feature_extractor: CLIPImageProcessor,
) -> Path:
    """Write SVD components as the hub's SVD pipeline directory (model_index.json + subfolders,
    SVD's scheduler configuration). ``vae``: an AutoencoderKLTemporalDecoder, or another class of
    ``autoencoders.VAE_CLASSES`` (saved beside the pipeline, which only knows SVD's)."""
    # Imported here: importing the SVD pipeline makes transformers warn about torchvision.
    from diffusers import StableVideoDiffusionPipeline

    path = Path(path)
    scheduler = EulerDiscreteScheduler(**SVD_SCHEDULER_CONFIG)
    svd_vae = isinstance(vae, AutoencoderKLTemporalDecoder)
    pipeline = StableVideoDiffusionPipeline(
        vae=vae if svd_vae else None,
        image_encoder=image_encoder,
        unet=unet,
        scheduler=scheduler,
        feature_extractor=feature_extractor,
    )
    pipeline.save_pretrained(path)
    # transformers 5 saves the PIL fallback's class name; the hub's SVD index says
    # CLIPImageProcessor, and a written directory should read like the real one.
    index_path = path / "model_index.json"
    index = json.loads(index_path.read_text())
    index["feature_extractor"] = ["transformers", "CLIPImageProcessor"]
    if not svd_vae:
        vae.save_pretrained(path / "vae")
        index["vae"] = [type(vae).__module__.split(".")[0], type(vae).__name__]
    index_path.write_text(json.dumps(index, indent=2, sort_keys=True) + "\n")
    return path


def save_tiny_sd(path: str | Path, seed: int = 0, layout: str = "matching") -> Path:
    """Write a tiny random SD2.1-layout directory holding only unet/ (all the RefinerNet needs).

    layout="matching": its spatial self-attentions pair 1:1 with save_tiny_svd's U-Net.
    layout="mismatched": the cross-attention blocks sit at the other resolution (64 channels
    where the SVD U-Net has 32), for the pairing failure test.
    """
    if layout == "matching":
        down = ("CrossAttnDownBlock2D", "DownBlock2D")
        up = ("UpBlock2D", "CrossAttnUpBlock2D")
    elif layout == "mismatched":
        down = ("DownBlock2D", "CrossAttnDownBlock2D")
        up = ("CrossAttnUpBlock2D", "UpBlock2D")
    else:
        raise ValueError(f"save_tiny_sd: layout must be 'matching' or 'mismatched', got {layout!r}")
    path = Path(path)
    torch.manual_seed(seed)
    tiny_sd_unet(down, up).save_pretrained(path / "unet")
    return path


def tiny_sd_unet(
    down_block_types: tuple[str, ...] = ("CrossAttnDownBlock2D", "DownBlock2D"),
    up_block_types: tuple[str, ...] = ("UpBlock2D", "CrossAttnUpBlock2D"),
    sample_size: int = 32,
    block_out_channels: tuple[int, ...] = TINY_BLOCK_OUT_CHANNELS,
    layers_per_block: int = 2,
    heads: int = TINY_HEADS,
) -> UNet2DConditionModel:
    """A random SD2.1-layout U-Net (linear projections, heads given as attention_head_dim)."""
    return UNet2DConditionModel(
        sample_size=sample_size,
        in_channels=4,
        out_channels=4,
        down_block_types=down_block_types,
        up_block_types=up_block_types,
        block_out_channels=block_out_channels,
        layers_per_block=layers_per_block,
        cross_attention_dim=TINY_CROSS_ATTENTION_DIM,
        # diffusers reads SD2.x's attention_head_dim as the number of heads.
        attention_head_dim=heads,
        use_linear_projection=True,
    )
