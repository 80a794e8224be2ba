"""The training objective: SVD's EDM denoising loss plus the stereo-aware loss (paper Eq. 5-7).

Roles (paper Fig. 2): in training the real frame x1 is the target (the ground truth; x~1 and M
are its conditions) and the inpainted novel view x2 is the reference fed to RefinerNet and to
the CLIP image encoder. x2 is the eye to the left of x1 (shard format v2), as the input left view
is to the left of the generated right view at inference.

EDM with sigma_data = 1 (SVD's v-prediction in Karras form, components.md):
``c_in = 1 / sqrt(s^2 + 1)``, ``c_skip = 1 / (s^2 + 1)``, ``c_out = -s / sqrt(s^2 + 1)``,
timestep ``0.25 ln s``, ``z0_hat = c_out F(c_in z_s) + c_skip z_s``, weight ``(1 + s^2) / s^2``.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import torch
import torch.nn.functional as F
from torch import Tensor

from pipelines.model import SpatialDreamerModel, deviation_strength
from trainer.config import LossConfig


@dataclass
class Conditioning:
    """Everything the U-Net is conditioned on, computed by the frozen VAE and CLIP encoder."""

    target: Tensor
    """(B, F, 4, h, w) z0, latents of x1 (scaled by the VAE scaling factor)."""
    reference: Tensor
    """(B, F, 4, h, w) latents of the reference view x2 (scaled)."""
    masked: Tensor
    """(B, F, 4, h, w) latents of the noise-augmented x1~ (scaled; the model unscales them for
    SVD's conditioning slot)."""
    mask: Tensor
    """(B, F, 1, h, w) M at latent resolution: a cell is occluded if any of its pixels is."""
    embeddings: Tensor
    """(B, 1, D) CLIP image embedding of the reference view."""
    noise_strength: Tensor
    """(B,) conditioning noise augmentation, also passed in SVD's added time ids."""


def _flat(x: Tensor) -> Tensor:
    return x.flatten(0, 1)


@torch.no_grad()
def encode_batch(
    model: SpatialDreamerModel, batch: dict[str, Tensor], config: LossConfig, generator=None
) -> Conditioning:
    """Encode a data batch (tensors on the model's device) into latents and embeddings."""
    target, reference = batch["target"], batch["reference"]  # (B, F, 3, H, W) in [-1, 1]
    b, f = target.shape[:2]
    device = target.device
    z0 = model.encode_images(_flat(target)).unflatten(0, (b, f))
    z_ref = model.encode_images(_flat(reference)).unflatten(0, (b, f))

    # SVD's noise augmentation of the conditioning image, in pixel space before encoding.
    log_strength = torch.randn(b, device=device, generator=generator)
    strength = (config.cond_noise_mean + config.cond_noise_std * log_strength).exp()
    noisy_masked = batch["masked_target"] + strength.view(b, 1, 1, 1, 1) * torch.randn(
        batch["masked_target"].shape, device=device, generator=generator
    )
    masked = model.encode_images(_flat(noisy_masked)).unflatten(0, (b, f))
    mask = F.max_pool2d(_flat(batch["mask"]), kernel_size=model.vae_scale_factor)
    mask = mask.unflatten(0, (b, f))
    # The first reference frame stands for the clip, as SVD's single conditioning image does.
    embeddings = model.image_embeddings(reference[:, 0])
    return Conditioning(z0, z_ref, masked, mask, embeddings, strength)


@dataclass
class LossTerms:
    total: Tensor
    denoise: Tensor
    stereo: Tensor
    sigma: Tensor
    """(B,) noise levels of the step, for logging."""
    deviation: Tensor
    """(B,) stereo deviation strength s(z0, z_ref) of the samples (Eq. 4), for the run's record."""


def added_time_ids(config: LossConfig, noise_strength: Tensor) -> Tensor:
    """SVD's added time ids (B, 3): [fps - 1, motion_bucket_id, conditioning noise strength]."""
    b, device = noise_strength.shape[0], noise_strength.device
    return torch.stack(
        [
            torch.full((b,), float(config.fps - 1), device=device),
            torch.full((b,), float(config.motion_bucket_id), device=device),
            noise_strength,
        ],
        dim=1,
    )


def edm_denoised(
    model: SpatialDreamerModel,
    noisy: Tensor,
    sigma: Tensor,
    cond: Conditioning,
    config: LossConfig,
    deviation: Tensor,
) -> Tensor:
    """z0_hat = c_out F(c_in z_s; ...) + c_skip z_s (EDM, sigma_data = 1): (B, F, 4, h, w) float.

    noisy: (B, F, 4, h, w) z0 + sigma * noise; sigma: (B,); deviation: (B,) s(z0, z_ref).
    """
    s = sigma.view(-1, 1, 1, 1, 1)
    c_in, c_skip, c_out = 1 / (s**2 + 1).sqrt(), 1 / (s**2 + 1), -s / (s**2 + 1).sqrt()
    output = model(
        noisy * c_in,
        0.25 * sigma.log(),
        cond.masked,
        cond.mask,
        cond.reference,
        cond.embeddings,
        added_time_ids(config, cond.noise_strength),
        deviation=deviation,
    )
    return output.float() * c_out + noisy * c_skip


def training_loss(
    model: SpatialDreamerModel,
    cond: Conditioning,
    config: LossConfig,
    generator: torch.Generator | None = None,
) -> LossTerms:
    """Paper Eq. 5-7: EDM denoising loss + lambda_d * (s(z0, z_ref) - s(z0_hat, z_ref))^2; the
    denoising error of occluded cells weighted by ``config.hole_weight`` (1: the paper's)."""
    z0 = cond.target
    b = z0.shape[0]
    device = z0.device
    sigma = (
        config.p_mean + config.p_std * torch.randn(b, device=device, generator=generator)
    ).exp()
    s = sigma.view(b, 1, 1, 1, 1)
    noise = torch.randn(z0.shape, device=device, generator=generator, dtype=z0.dtype)
    noisy = z0 + s * noise

    # Conditioning dropout for classifier-free guidance: the reference embedding and the masked
    # view are dropped independently.
    keep_embed = (torch.rand(b, device=device, generator=generator) >= config.cond_dropout).float()
    keep_image = (torch.rand(b, device=device, generator=generator) >= config.cond_dropout).float()
    embeddings = cond.embeddings * keep_embed.view(b, 1, 1)
    masked = cond.masked * keep_image.view(b, 1, 1, 1, 1)
    mask = cond.mask * keep_image.view(b, 1, 1, 1, 1)

    deviation = deviation_strength(z0, cond.reference)
    denoised = edm_denoised(
        model, noisy, sigma, replace(cond, masked=masked, mask=mask, embeddings=embeddings),
        config, deviation,
    )  # fmt: skip
    weight = (1 + sigma**2) / sigma**2
    error = (denoised - z0) ** 2
    if config.hole_weight != 1.0:  # M of the sample, whether or not its condition was dropped
        error = error * (1 + (config.hole_weight - 1) * cond.mask)
    denoise = (weight * error.flatten(1).mean(1)).mean()
    stereo = ((deviation - deviation_strength(denoised, cond.reference)) ** 2).mean()
    total = denoise + config.lambda_d * stereo
    return LossTerms(total, denoise.detach(), stereo.detach(), sigma.detach(), deviation.detach())


@torch.no_grad()
def denoised_preview(
    model: SpatialDreamerModel, cond: Conditioning, config: LossConfig, sigma: float = 1.0
) -> Tensor:
    """One-step denoised estimate z0_hat at a fixed noise level (for run previews): (B,F,4,h,w)."""
    z0 = cond.target
    generator = torch.Generator(device=z0.device).manual_seed(0)
    noise = torch.randn(z0.shape, device=z0.device, generator=generator, dtype=z0.dtype)
    sigmas = torch.full((z0.shape[0],), sigma, device=z0.device)
    deviation = deviation_strength(z0, cond.reference)
    return edm_denoised(model, z0 + sigma * noise, sigmas, cond, config, deviation)
