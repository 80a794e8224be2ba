"""Random-weight components with the paper's architectures, saved in the real layouts.

SVD-xt (the denoising U-Net, the temporal VAE and the CLIP ViT-H/14 image encoder) and the
SD2.1 U-Net (RefinerNet), with their published configurations and random weights: speed and
memory benchmarks need the real sizes, not the real weights, and nothing can be downloaded
here. They load through the same `ModelConfig(svd=dir, refiner=dir)` path as hub checkpoints.
"""

from __future__ import annotations

from pathlib import Path

import torch
from diffusers import (
    AutoencoderKLTemporalDecoder,
    UNet2DConditionModel,
    UNetSpatioTemporalConditionModel,
)
from transformers import CLIPVisionConfig, CLIPVisionModelWithProjection

from .tiny import CLIPImageProcessor, save_svd_layout

# Parameter counts of the published checkpoints, checked by the tests against these builders.
SVD_UNET_PARAMETERS = 1_524_623_082
SVD_VAE_PARAMETERS = 97_742_847
CLIP_VIT_H_VISION_PARAMETERS = 632_076_800
SD21_UNET_PARAMETERS = 865_910_724


def svd_unet() -> UNetSpatioTemporalConditionModel:
    """SVD-xt's U-Net (diffusers' defaults are SVD's configuration; xt: 25 frames)."""
    return UNetSpatioTemporalConditionModel(sample_size=96, num_frames=25)


def svd_vae() -> AutoencoderKLTemporalDecoder:
    """SVD's VAE: the SD KL-f8 encoder with the temporal decoder."""
    return AutoencoderKLTemporalDecoder(
        down_block_types=("DownEncoderBlock2D",) * 4,
        block_out_channels=(128, 256, 512, 512),
        layers_per_block=2,
        latent_channels=4,
        sample_size=768,
    )


def svd_image_encoder() -> CLIPVisionModelWithProjection:
    """OpenCLIP ViT-H/14's vision tower with its 1024-d projection (SVD's image encoder)."""
    return CLIPVisionModelWithProjection(
        CLIPVisionConfig(
            hidden_size=1280,
            intermediate_size=5120,
            num_attention_heads=16,
            num_hidden_layers=32,
            patch_size=14,
            image_size=224,
            projection_dim=1024,
            hidden_act="gelu",
            layer_norm_eps=1e-5,
        )
    )


def sd21_unet() -> UNet2DConditionModel:
    """SD2.1's U-Net (768-v): diffusers' default blocks, linear projections, 1024-d context."""
    return UNet2DConditionModel(
        sample_size=96,
        in_channels=4,
        out_channels=4,
        cross_attention_dim=1024,
        # diffusers reads SD2.x's attention_head_dim as the number of heads.
        attention_head_dim=(5, 10, 20, 20),
        use_linear_projection=True,
    )


def save_paper_svd(
    path: str | Path,
    seed: int = 0,
    dtype: torch.dtype = torch.float16,
    device: str | torch.device = "cpu",
) -> Path:
    """Write a random SVD-xt pipeline directory (model_index.json + subfolders) in `dtype`.

    device: where the random weights are drawn (a GPU initialises 2.2 B parameters in seconds).
    """
    torch.manual_seed(seed)
    feature_extractor = CLIPImageProcessor(crop_size=224, size=224)
    with torch.device(device):
        unet, vae, image_encoder = svd_unet(), svd_vae(), svd_image_encoder()
    return save_svd_layout(
        path, unet.to(dtype), vae.to(dtype), image_encoder.to(dtype), feature_extractor
    )


def save_paper_sd(
    path: str | Path,
    seed: int = 0,
    dtype: torch.dtype = torch.float16,
    device: str | torch.device = "cpu",
) -> Path:
    """Write a random SD2.1 directory holding unet/ (all the RefinerNet needs) in `dtype`."""
    path = Path(path)
    torch.manual_seed(seed)
    with torch.device(device):
        unet = sd21_unet()
    unet.to(dtype).save_pretrained(path / "unet")
    return path
