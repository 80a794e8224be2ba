"""Micro components: the tiny random U-Nets around a trained stage-0 VAE (`trainer fit-vae`).

The `micro` training preset (docs/training.md, "Stage 0 and the micro preset") learns on two
CPU cores in minutes, which a random VAE would make meaningless (it is no autoencoder) and the
real SVD VAE cannot be downloaded here. So the VAE is trained (or fitted in closed form, see
pipelines/model/autoencoders.py) first, on the shards' own frames,
and these builders put it into the same SVD pipeline layout the hub checkpoint has: the model
loads it through exactly the code path of the real components.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from .autoencoders import load_vae, vae_scale_factor
from .tiny import save_svd_layout, tiny_image_encoder, tiny_sd_unet, tiny_svd_unet

# Both U-Nets: (32 | 64) channels, one layer per block, attention only at the coarser level
# (16 x 16 tokens for 64 px frames and a factor-2 VAE; at 32 x 32 the attention maps made a
# CPU step ten times slower), 2 heads of 32 channels.
MICRO_BLOCK_OUT_CHANNELS = (32, 64)
MICRO_LAYERS_PER_BLOCK = 1
MICRO_HEADS = 2


def load_stage0_vae(source: str | Path) -> Any:
    """The VAE a `trainer fit-vae` run wrote (its folder; an AutoencoderKLTemporalDecoder or a
    LinearAutoencoder), checked to give SVD's 4 channels."""
    vae = load_vae(str(source), None, "stage-0 VAE")
    if vae.config.latent_channels != 4:
        raise ValueError(
            f"the VAE in {source} has {vae.config.latent_channels} latent channels; the SVD "
            "U-Net takes 4"
        )
    return vae


def micro_latent_size(vae: Any) -> int:
    """The U-Nets' sample size: the VAE's training resolution over its scale factor."""
    return max(vae.config.sample_size // vae_scale_factor(vae), 1)


def save_micro_svd(path: str | Path, vae_source: str | Path, seed: int = 0) -> Path:
    """Write an SVD pipeline directory: a random micro U-Net and CLIP encoder (seeded by
    ``seed``) around the stage-0 VAE in ``vae_source``."""
    vae = load_stage0_vae(vae_source)
    torch.manual_seed(seed)
    unet = tiny_svd_unet(
        sample_size=micro_latent_size(vae),
        block_out_channels=MICRO_BLOCK_OUT_CHANNELS,
        layers_per_block=MICRO_LAYERS_PER_BLOCK,
        down_block_types=("DownBlockSpatioTemporal", "CrossAttnDownBlockSpatioTemporal"),
        up_block_types=("CrossAttnUpBlockSpatioTemporal", "UpBlockSpatioTemporal"),
        heads=MICRO_HEADS,
    )
    image_encoder, feature_extractor = tiny_image_encoder()
    return save_svd_layout(Path(path), unet, vae, image_encoder, feature_extractor)


def save_micro_sd(path: str | Path, vae_source: str | Path, seed: int = 0) -> Path:
    """Write an SD2.1-layout directory (unet/ only) whose self-attentions pair 1:1 with
    ``save_micro_svd``'s U-Net, sized to the stage-0 VAE's latents."""
    vae = load_stage0_vae(vae_source)
    path = Path(path)
    torch.manual_seed(seed + 1)  # not the SVD U-Net's draws
    unet = tiny_sd_unet(
        ("DownBlock2D", "CrossAttnDownBlock2D"),
        ("CrossAttnUpBlock2D", "UpBlock2D"),
        sample_size=micro_latent_size(vae),
        block_out_channels=MICRO_BLOCK_OUT_CHANNELS,
        layers_per_block=MICRO_LAYERS_PER_BLOCK,
        heads=MICRO_HEADS,
    )
    unet.save_pretrained(path / "unet")
    return path
