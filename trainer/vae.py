"""Stage 0 (`trainer fit-vae`): a small VAE fitted to the shards' frames, standing in for SVD's.

The micro preset cannot download SVD's VAE, and a random VAE is no autoencoder: the diffusion
model would learn to denoise latents that decode to nothing. So an autoencoder is fitted first
to the source and novel views of the shards, one of two kinds (``VAEConfig.kind``):

- ``linear`` (default): a :class:`pipelines.model.autoencoders.LinearAutoencoder`, PCA over
  ``downsample``-pixel patches and a least-squares decoder, in closed form in seconds. On the
  micro scenes it reconstructs held-out frames at ~29 dB, and their disoccluded regions at
  ~27.7 dB, where the trained kind below plateaued near 25 dB and 17.6 dB after CPU-minutes of
  training (docs/benchmarks.md, "What caps the micro reproduction"): a stand-in that caps the
  result would hide whether the diffusion model learns.
- ``kl``: a diffusers ``AutoencoderKLTemporalDecoder`` (the class of SVD's VAE) trained with
  L1 + MSE reconstruction plus a small KL weight (the LDM autoencoder objective without its
  perceptual and adversarial terms), AdamW with warm-up and cosine decay. The decoder is
  trained on runs of ``num_frames`` contiguous frames of one view, so its temporal layers see
  real neighbours as they do when the pipeline decodes a window.

Either is saved in the diffusers format and loaded by the model through the same code path
(``pipelines.model.autoencoders.load_vae``).

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
from pipelines.model.autoencoders import LinearAutoencoder
from trainer import __version__
from trainer.data import DataConfig, list_shards, make_loader
from trainer.schedule import lr_factor

REPORT_NAME = "vae_report.json"
VAE_KINDS = ("linear", "kl")


@dataclass(frozen=True)
class VAEConfig:
    """Stage 0 (`trainer fit-vae`): what the VAE is trained on, its size, and how.

    Attributes:
        shards: a ``dvg build`` output folder or its manifest.json.
        held_out: shards for the held-out PSNR; None: the last tenth of ``shards``' shards (at
            least one) are kept out of training for it.
        kind: ``linear`` (closed-form LinearAutoencoder; ``steps``, the widths and the
            optimiser settings do not apply) or ``kl`` (a trained AutoencoderKLTemporalDecoder).
        downsample: pixels per latent cell, 2, 4 or 8 (SVD's is 8); a ``kl`` VAE has
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
    kind: str = "linear"
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
        if self.kind not in VAE_KINDS:
            raise ValueError(
                f"VAEConfig.kind must be one of {', '.join(VAE_KINDS)}, got {self.kind!r}"
            )
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


def build_vae(config: VAEConfig) -> AutoencoderKLTemporalDecoder | LinearAutoencoder:
    """A random VAE of the configured kind and size (4 latent channels)."""
    if config.kind == "linear":
        return LinearAutoencoder(patch_size=config.downsample, sample_size=config.resolution)
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


def _train(
    vae: AutoencoderKLTemporalDecoder, config: VAEConfig, train: torch.Tensor, held: torch.Tensor
) -> list[dict[str, float]]:
    """The ``kl`` kind's training loop; the held-out PSNR every ``eval_every`` steps."""
    optimizer = torch.optim.AdamW(vae.parameters(), lr=config.lr, weight_decay=config.weight_decay)
    scheduler = torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda s: lr_factor(s, "cosine", config.warmup_steps, config.steps)
    )
    curve = []
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
    return curve


def fit_vae(config: VAEConfig, out: str | Path) -> VAEResult:
    """Fit the stage-0 VAE to ``config.shards`` and write it (and vae_report.json) to ``out``."""
    out = Path(out)
    start = time.perf_counter()
    torch.manual_seed(config.seed)
    train_shards, held_shards = split_shards(config)
    train = load_runs(config, train_shards, config.passes, config.max_runs)
    held = load_runs(config, held_shards, 1, config.held_out_runs)
    vae = build_vae(config)
    initial = psnr(vae.eval(), held)
    curve = [{"step": 0, "psnr": float(initial.mean())}]
    if isinstance(vae, LinearAutoencoder):
        vae.fit(train.flatten(0, 1))
    else:
        curve += _train(vae, config, train, held)
    vae.eval()
    final = psnr(vae, held)
    if config.steps and config.kind == "kl":
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
        "kind": config.kind,
        "downsample": config.downsample,
        "latent_shape": [4] + [config.resolution // config.downsample] * 2,
        "training_runs": len(train),
        "training_frames": int(train.shape[0] * train.shape[1]),
        "held_out_shards": [url for url, _ in held_shards],
        "seconds": seconds,
        "threads": torch.get_num_threads(),
        "config": asdict(config),
        "code_version": __version__,
    }
    (out / REPORT_NAME).write_text(json.dumps(report, indent=1) + "\n")
    return VAEResult(out, float(final.mean()), float(initial.mean()), 1.0 / std, seconds)
