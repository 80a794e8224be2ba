"""Stereo deviation strength (paper 3.4.2, Eq. 4) and its embedding into the time embedding."""

from __future__ import annotations

import torch
from diffusers.models.embeddings import TimestepEmbedding, Timesteps
from torch import nn


def deviation_strength(z0: torch.Tensor, z_ref: torch.Tensor) -> torch.Tensor:
    """Paper Eq. 4, s = |z0 - z_ref| reduced to one scalar per sample (mean over all elements).

    z0: (B, ...) target-view latents; z_ref: same shape, reference-view latents. Returns (B,).
    """
    if z0.shape != z_ref.shape or z0.ndim < 2:
        raise ValueError(
            f"deviation_strength: z0 {tuple(z0.shape)} and z_ref {tuple(z_ref.shape)} must have "
            "the same (B, ...) shape"
        )
    return (z0 - z_ref).abs().flatten(1).mean(dim=1)


class DeviationEmbedding(nn.Module):
    """s -> sinusoidal projection of s * scale -> MLP whose last layer is zero-initialised.

    forward(s (B,)) -> (B, embed_dim), added to the U-Net time embedding (paper 3.4.2).
    """

    def __init__(self, proj_channels: int, embed_dim: int, scale: float = 1000.0) -> None:
        super().__init__()
        self.scale = scale
        # Same projection as SVD's own timestep path (flip_sin_to_cos=True, shift 0).
        self.proj = Timesteps(proj_channels, flip_sin_to_cos=True, downscale_freq_shift=0)
        self.mlp = TimestepEmbedding(proj_channels, embed_dim)
        # Zero last layer: the pretrained time embedding is untouched until training moves it.
        nn.init.zeros_(self.mlp.linear_2.weight)
        nn.init.zeros_(self.mlp.linear_2.bias)

    def forward(self, s: torch.Tensor) -> torch.Tensor:
        if s.ndim != 1:
            raise ValueError(f"DeviationEmbedding: s must be (B,), got {tuple(s.shape)}")
        projected = self.proj(s.float() * self.scale)
        return self.mlp(projected.to(self.mlp.linear_1.weight.dtype))
