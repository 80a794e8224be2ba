"""Validation previews: what the model makes of held-out samples, saved as images.

Each row is one sample: x1~ (masked target) | x2 (reference) | the model's one-step denoised
estimate of x1 at sigma = 1 | x1 (ground truth). A one-step estimate is cheap enough to run
every few hundred steps and shows early whether the model fills occlusions from the reference.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import cv2
import numpy as np
import torch

from trainer.config import TrainConfig
from trainer.data import make_loader
from trainer.objective import denoised_preview, encode_batch


def _tile(images: torch.Tensor) -> np.ndarray:
    """(N, 3, H, W) in [-1, 1] -> (H, N * W, 3) uint8 RGB, first frame of each sample."""
    images = ((images.float().clamp(-1, 1) + 1) * 127.5).round().byte().cpu()
    return np.concatenate(list(images.permute(0, 2, 3, 1).numpy()), axis=1)


@torch.no_grad()
def write_preview(model, config: TrainConfig, run_dir: Path, step: int, accelerator=None) -> Path:
    """Write ``RUN/previews/step_N.png`` (and a TensorBoard image when a tracker is active)."""
    data = replace(
        config.data,
        shards=config.run.preview_shards or config.data.shards,
        batch_size=config.run.preview_samples,
        resampled=False,
        shuffle_buffer=0,
        num_workers=0,
    )
    batch = next(iter(make_loader(data)))
    device = next(model.unet.parameters()).device
    batch = {k: v.to(device) if isinstance(v, torch.Tensor) else v for k, v in batch.items()}
    # Previews never touch the global RNG, so they cannot change the training stream.
    with torch.random.fork_rng(devices=[]):
        generator = torch.Generator(device=device).manual_seed(0)
        cond = encode_batch(model, batch, config.loss, generator=generator)
        latents = denoised_preview(model, cond, config.loss)
    b, f = latents.shape[:2]
    decoded = model.decode_latents(latents.flatten(0, 1), num_frames=f).unflatten(0, (b, f))
    columns = [batch["masked_target"], batch["reference"], decoded, batch["target"]]
    rows = [np.concatenate([_tile(c[i : i + 1, 0]) for c in columns], axis=1) for i in range(b)]
    sheet = np.concatenate(rows, axis=0)
    path = run_dir / "previews" / f"step_{step:07d}.png"
    path.parent.mkdir(parents=True, exist_ok=True)
    cv2.imwrite(str(path), sheet[..., ::-1])
    if accelerator is not None:
        for tracker in accelerator.trackers:
            if tracker.name == "tensorboard":
                tracker.writer.add_image("preview", sheet, step, dataformats="HWC")
    return path
