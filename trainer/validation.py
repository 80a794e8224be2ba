"""The held-out validation loss: the learning curve of a run (RUN/validation.jsonl).

The training loss of a step depends on its random noise level and draws, so it cannot show
learning by itself. Validation fixes everything: the first ``run.validation_samples`` samples of
``run.validation_shards`` (read in order, frames drawn by key), their conditioning noise, a few
noise levels (quantiles of the training distribution of log sigma) and one seeded noise draw per
level. Each line of RUN/validation.jsonl holds, at one step::

    {"step": N, "loss": ..., "loss_mask": ..., "samples": K}

``loss``: the EDM-weighted denoising error (1 + sigma^2) / sigma^2 |z0_hat - z0|^2 (paper Eq. 5,
no conditioning dropout) averaged over the latents and the noise levels; ``loss_mask``: the same
over the latent cells of the occlusion mask M only (a cell counts when any of its pixels is
occluded), where the model must inpaint from the reference view rather than copy x1~; null
when the samples hold no occluded cell. The data transforms (``data.mirror``,
``data.condition``) are the training run's.
"""

from __future__ import annotations

import math
from dataclasses import replace
from pathlib import Path

import torch

from pipelines.model import SpatialDreamerModel, deviation_strength
from trainer.config import TrainConfig
from trainer.data import make_loader
from trainer.objective import Conditioning, edm_denoised, encode_batch
from trainer.step_log import StepLog

# Standard-normal quantiles of log sigma ~ N(p_mean, p_std) at which the loss is measured.
VALIDATION_QUANTILES = (-1.5, -0.5, 0.5, 1.5)
VALIDATION_NAME = "validation.jsonl"


def validation_sigmas(config: TrainConfig) -> list[float]:
    """The fixed noise levels: exp(p_mean + p_std * q) for q in VALIDATION_QUANTILES."""
    loss = config.loss
    return [math.exp(loss.p_mean + loss.p_std * q) for q in VALIDATION_QUANTILES]


@torch.no_grad()
def validation_set(model: SpatialDreamerModel, config: TrainConfig) -> list[Conditioning]:
    """The encoded held-out batches (the VAE and CLIP encoder are frozen: encoded once)."""
    run = config.run
    if run.validation_shards is None:
        raise ValueError("run.validation_shards is not set")
    data = replace(
        config.data,
        shards=run.validation_shards,
        batch_size=min(config.data.batch_size, run.validation_samples),
        resampled=False,
        shuffle_buffer=0,
        num_workers=0,
        seed=0,
    )
    device = next(model.unet.parameters()).device
    generator = torch.Generator(device=device).manual_seed(0)
    batches, count = [], 0
    for batch in make_loader(data, rank=0, world_size=1):  # every rank: the same samples
        keep = min(batch["target"].shape[0], run.validation_samples - count)
        batch = {
            k: v[:keep].to(device) if isinstance(v, torch.Tensor) else v[:keep]
            for k, v in batch.items()
        }
        batches.append(encode_batch(model, batch, config.loss, generator=generator))
        count += keep
        if count >= run.validation_samples:
            break
    if not batches:
        raise ValueError(f"no validation sample could be read from {run.validation_shards}")
    return batches


@torch.no_grad()
def validation_loss(
    model: SpatialDreamerModel, batches: list[Conditioning], config: TrainConfig
) -> dict[str, float | int | None]:
    """``{"loss", "loss_mask", "samples"}`` on the held-out batches (see the module docstring).

    Deterministic: the same model gives the same numbers, whatever the training RNG state.
    """
    total = total_mask = cells = cells_mask = 0.0
    samples = 0
    for index, cond in enumerate(batches):
        z0 = cond.target
        b = z0.shape[0]
        samples += b
        deviation = deviation_strength(z0, cond.reference)
        mask = cond.mask.expand_as(z0).float()
        for level, sigma in enumerate(validation_sigmas(config)):
            generator = torch.Generator(device=z0.device).manual_seed(1000 * index + level)
            noise = torch.randn(z0.shape, device=z0.device, generator=generator, dtype=z0.dtype)
            sigmas = torch.full((b,), sigma, device=z0.device)
            denoised = edm_denoised(model, z0 + sigma * noise, sigmas, cond, config.loss, deviation)
            error = (1 + sigma**2) / sigma**2 * (denoised - z0.float()) ** 2
            total += error.sum().item()
            cells += error.numel()
            total_mask += (error * mask).sum().item()
            cells_mask += mask.sum().item()
    return {
        "loss": total / cells,
        "loss_mask": total_mask / cells_mask if cells_mask else None,
        "samples": samples,
    }


class ValidationLog(StepLog):
    """RUN/validation.jsonl: one line per validation (step, loss, loss_mask, samples)."""

    def __init__(self, run_dir: str | Path) -> None:
        super().__init__(run_dir, VALIDATION_NAME)
