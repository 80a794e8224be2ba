"""Stage 0 (`trainer fit-vae`): a small VAE trained on the shards' frames, standing in for SVD's.

The micro preset cannot download SVD's VAE, and a random VAE is no autoencoder: the diffusion
model would learn to denoise latents that decode to nothing. So a diffusers
``AutoencoderKLTemporalDecoder`` (the class of SVD's VAE, which the model and the pipeline load
through their usual code path) is trained first on the source and novel views of the shards:
L1 + MSE reconstruction plus a small KL weight (the LDM autoencoder objective without its
perceptual and adversarial terms), AdamW with warm-up and cosine decay. The decoder is trained on
runs of ``num_frames`` contiguous frames of one view, so its temporal layers see real neighbours
as they do when the pipeline decodes a window.

Its ``scaling_factor`` is set to 1 / std of the training latents (posterior means), as Stable
Diffusion's 0.18215 was, so the diffusion model's latents have unit variance (EDM with
sigma_data = 1).

``OUT`` holds the model (``save_pretrained``, safetensors) and ``OUT/vae_report.json``:
the held-out reconstruction PSNR before and after training (mean, std, frame count), the curve
measured during training, the latent statistics and the time taken.
"""

from __future__ import annotations

import json
import math
import time
from dataclasses import asdict, dataclass, replace
from pathlib import Path

import numpy as np
import torch
from diffusers import AutoencoderKLTemporalDecoder

from dvg.progress import Progress
from trainer import __version__
from trainer.data import DataConfig, list_shards, make_loader

REPORT_NAME = "vae_report.json"


@dataclass(frozen=True)
class VAEConfig:
    """Stage 0 (`trainer fit-vae`): what the VAE is trained on, its size, and how.

    Attributes:
        shards: a ``dvg build`` output folder or its manifest.json.
        held_out: shards for the held-out PSNR; None: the last tenth of ``shards``' shards (at
            least one) are kept out of training for it.
        downsample: pixels per latent cell, 2, 4 or 8 (SVD's is 8); the VAE has
            log2(downsample) + 1 blocks.
        width: channels of the first (full-resolution) block; a multiple of 32 (GroupNorm).
        deep_width: channels of the deeper blocks; a multiple of 32.
        num_frames: contiguous frames decoded together (the temporal decoder's window). The
            pipeline decodes chunks of 8 latents with up to 4 of context on each side, and a
            temporal decoder trained on shorter windows decodes those worse: 2-frame training
            lost 1.1 dB held-out PSNR on 12-frame windows against 8-frame training at the same
            frames per step (docs/benchmarks.md, "Micro reproduction").
        batch_size: runs of ``num_frames`` frames per step.
        passes: reads over the training shards, each drawing other windows of every clip; the
            frames are held in memory (at most ``max_runs`` runs).
    """

    shards: str
    held_out: str | None = None
    steps: int = 300
    resolution: int = 64
    batch_size: int = 1
    downsample: int = 2
    width: int = 32
    deep_width: int = 32
    layers_per_block: int = 1
    num_frames: int = 8
    lr: float = 2e-3
    warmup_steps: int = 50
    weight_decay: float = 0.0
    kl_weight: float = 1e-6
    mse_weight: float = 1.0
    passes: int = 2
    max_runs: int = 4096
    held_out_runs: int = 64
    eval_every: int = 200
    seed: int = 0

    def __post_init__(self) -> None:
        if self.downsample not in (2, 4, 8):
            raise ValueError(f"VAEConfig.downsample must be 2, 4 or 8, got {self.downsample!r}")
        for name in ("width", "deep_width"):
            value = getattr(self, name)
            if value < 32 or value % 32:
                raise ValueError(
                    f"VAEConfig.{name} must be a positive multiple of 32 (GroupNorm), got {value}"
                )
        if self.resolution % self.downsample:
            raise ValueError(
                f"VAEConfig.resolution {self.resolution} is not a multiple of downsample "
                f"{self.downsample}"
            )
        for name in ("steps", "eval_every"):
            if getattr(self, name) < 0:
                raise ValueError(f"VAEConfig.{name} must be >= 0, got {getattr(self, name)}")
        for name in ("batch_size", "num_frames", "passes", "max_runs", "held_out_runs"):
            if getattr(self, name) < 1:
                raise ValueError(f"VAEConfig.{name} must be >= 1, got {getattr(self, name)}")

    @property
    def block_out_channels(self) -> tuple[int, ...]:
        levels = int(math.log2(self.downsample))
        return (self.width,) + (self.deep_width,) * levels


@dataclass
class VAEResult:
    out: Path
    psnr: float
    """Held-out reconstruction PSNR (dB) after training, mean over frames."""
    initial_psnr: float
    scaling_factor: float
    seconds: float


def build_vae(config: VAEConfig) -> AutoencoderKLTemporalDecoder:
    """A random AutoencoderKLTemporalDecoder of the configured size (4 latent channels)."""
    channels = config.block_out_channels
    return AutoencoderKLTemporalDecoder(
        down_block_types=("DownEncoderBlock2D",) * len(channels),
        block_out_channels=channels,
        layers_per_block=config.layers_per_block,
        latent_channels=4,
        sample_size=config.resolution,
        force_upcast=False,
    )


def split_shards(config: VAEConfig) -> tuple[list[tuple[str, int]], list[tuple[str, int]]]:
    """(training, held-out) shard lists: ``held_out``'s, or the last tenth of ``shards``."""
    shards = list_shards(config.shards)
    if config.held_out is not None:
        return shards, list_shards(config.held_out)
    if len(shards) < 2:
        raise ValueError(
            f"{config.shards} holds {len(shards)} shard(s): at least 2 are needed to keep one out "
            "for the held-out PSNR; pass --held-out SHARDS"
        )
    count = max(1, len(shards) // 10)
    return shards[:-count], shards[-count:]


def load_runs(
    config: VAEConfig, shards: list[tuple[str, int]], passes: int, limit: int
) -> torch.Tensor:
    """Runs of ``num_frames`` frames of one view (source x1 or novel x2), in memory:
    (N, num_frames, 3, R, R) float32 in [-1, 1]. Pass p draws each clip's window with seed p."""
    data = DataConfig(
        shards=config.shards,
        mode="clip",
        num_frames=config.num_frames,
        resolution=config.resolution,
        batch_size=8,
        num_workers=0,
        shuffle_buffer=0,
        resampled=False,
        condition="clean",  # x~1 is not needed: do not decode it
    )
    runs: list[torch.Tensor] = []
    for index in range(passes):
        loader = make_loader(replace(data, seed=index), rank=0, world_size=1, shard_list=shards)
        for batch in loader:
            runs.extend([*batch["target"], *batch["reference"]])
            if len(runs) >= limit:
                return torch.stack(runs[:limit])
    if not runs:
        raise ValueError(
            f"no clip of at least num_frames={config.num_frames} frames could be read from "
            f"{[url for url, _ in shards]}; give a shorter --num-frames"
        )
    return torch.stack(runs)


def reconstruct(
    vae: AutoencoderKLTemporalDecoder, runs: torch.Tensor, *, sample: torch.Generator | None = None
):
    """(B, F, 3, R, R) -> (reconstruction of the same shape, posterior). ``sample``: draw the
    latents from the posterior (training) instead of taking its mode."""
    b, f = runs.shape[:2]
    posterior = vae.encode(runs.flatten(0, 1)).latent_dist
    z = posterior.sample(generator=sample) if sample is not None else posterior.mode()
    return vae.decode(z, num_frames=f).sample.unflatten(0, (b, f)), posterior


@torch.no_grad()
def psnr(vae: AutoencoderKLTemporalDecoder, runs: torch.Tensor, batch: int = 8) -> np.ndarray:
    """Per-frame PSNR (dB, images in [0, 1]) of the posterior-mode reconstruction: (N * F,)."""
    values = []
    for start in range(0, len(runs), batch):
        chunk = runs[start : start + batch]
        recon, _ = reconstruct(vae, chunk)
        error = ((recon.clamp(-1, 1) - chunk) / 2).pow(2).flatten(2).mean(2).flatten()
        values.append((10 * torch.log10(1 / error.clamp_min(1e-10))).numpy())
    return np.concatenate(values)


@torch.no_grad()
def latent_std(vae: AutoencoderKLTemporalDecoder, runs: torch.Tensor, batch: int = 8) -> float:
    """Standard deviation of the posterior means over ``runs`` (all channels and cells)."""
    latents = [vae.encode(runs[i : i + batch].flatten(0, 1)).latent_dist.mode() for i in
               range(0, len(runs), batch)]  # fmt: skip
    return torch.cat(latents).std().item()


def _summary(values: np.ndarray) -> dict[str, float | int]:
    return {"psnr_mean": float(values.mean()), "psnr_std": float(values.std()),
            "frames": int(values.size)}  # fmt: skip


def fit_vae(config: VAEConfig, out: str | Path) -> VAEResult:
    """Train the stage-0 VAE on ``config.shards`` and write it (and vae_report.json) to ``out``."""
    out = Path(out)
    start = time.perf_counter()
    torch.manual_seed(config.seed)
    train_shards, held_shards = split_shards(config)
    train = load_runs(config, train_shards, config.passes, config.max_runs)
    held = load_runs(config, held_shards, 1, config.held_out_runs)
    vae = build_vae(config)
    vae.train()
    optimizer = torch.optim.AdamW(vae.parameters(), lr=config.lr, weight_decay=config.weight_decay)
    warmup = max(config.warmup_steps, 1)

    def lr_factor(step: int) -> float:  # linear warm-up, then cosine decay to 10%
        if step < warmup:
            return (step + 1) / warmup
        progress = (step - warmup) / max(config.steps - warmup, 1)
        return 0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * min(progress, 1.0)))

    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lr_factor)
    initial = psnr(vae.eval(), held)
    curve = [{"step": 0, "psnr": float(initial.mean())}]
    rng = np.random.default_rng(config.seed)
    sampler = torch.Generator().manual_seed(config.seed)
    progress = Progress("trainer fit-vae", config.steps, unit="steps")
    vae.train()
    for step in range(1, config.steps + 1):
        runs = train[rng.integers(0, len(train), config.batch_size)]
        flip = torch.from_numpy(rng.random(config.batch_size) < 0.5)
        runs = torch.where(flip.view(-1, 1, 1, 1, 1), runs.flip(-1), runs)
        recon, posterior = reconstruct(vae, runs, sample=sampler)
        l1 = (recon - runs).abs().mean()
        mse = (recon - runs).pow(2).mean()
        kl = posterior.kl().mean()
        loss = l1 + config.mse_weight * mse + config.kl_weight * kl
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(vae.parameters(), 1.0)
        optimizer.step()
        scheduler.step()
        progress.update(step, loss=loss.item())
        if config.eval_every and step % config.eval_every == 0 and step < config.steps:
            curve.append({"step": step, "psnr": float(psnr(vae.eval(), held).mean())})
            vae.train()
    progress.close()
    vae.eval()
    final = psnr(vae, held)
    if config.steps:
        curve.append({"step": config.steps, "psnr": float(final.mean())})
    std = latent_std(vae, train[: config.held_out_runs])
    vae.register_to_config(scaling_factor=1.0 / std)
    seconds = time.perf_counter() - start
    vae.save_pretrained(out, safe_serialization=True)
    report = {
        "held_out": _summary(final),
        "initial": _summary(initial),
        "curve": curve,
        "latent_std": std,
        "scaling_factor": 1.0 / std,
        "downsample": config.downsample,
        "latent_shape": [4] + [config.resolution // config.downsample] * 2,
        "training_runs": len(train),
        "held_out_shards": [url for url, _ in held_shards],
        "seconds": seconds,
        "threads": torch.get_num_threads(),
        "config": asdict(config),
        "code_version": __version__,
    }
    (out / REPORT_NAME).write_text(json.dumps(report, indent=1) + "\n")
    return VAEResult(out, float(final.mean()), float(initial.mean()), 1.0 / std, seconds)
