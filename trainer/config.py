"""Training configuration: one frozen dataclass per concern, presets, TOML overrides.

The resolved configuration is written to ``RUN/config.json`` and into every checkpoint, so a
run always says how it was trained.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Mapping
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Any, Literal

import tomllib

from trainer.data import DataConfig
from trainer.schedule import SCHEDULES


@dataclass(frozen=True)
class ModelSource:
    """Where the pretrained components come from (hub ids or local dirs).

    ``tiny`` builds random-initialised tiny SVD and SD components in the run directory (the
    ``tiny`` preset: trains on CPU in minutes). ``micro`` builds random-initialised micro U-Nets
    (seeded by ``run.seed``) around the stage-0 VAE in ``vae`` (the ``micro`` preset).
    """

    svd: str = "stabilityai/stable-video-diffusion-img2vid"
    refiner: str = "stabilityai/stable-diffusion-2-1"
    vae: str | None = None
    """``svd = "micro"``: the folder `trainer fit-vae` wrote (stage 0); its latent size decides
    the U-Nets' sample size. Stage 2 takes the VAE of its --init-from run instead."""
    til: bool = True
    """Stage 2 adds and trains TIL (paper Eq. 3); False is the ablation that trains the temporal
    layers alone."""
    init_from: str | None = None
    """Stage 2: a stage-1 run directory (its last checkpoint) or an exported model directory."""
    init_ema: bool = False
    """Stage 2 from a run directory: start from its EMA weights (the run must have trained with
    ``run.ema``)."""
    til_lambda: float = 0.6
    til_frames: int = 8
    default_deviation: float = 0.1
    """Stereo deviation strength used before the training data's median is known (Eq. 4):
    ``trainer export`` replaces it with the median measured during training."""


@dataclass(frozen=True)
class LossConfig:
    """Paper Eq. 5-7 on SVD's EDM parameterisation (components.md, SVD fine-tuning recipe)."""

    p_mean: float = 0.7
    """log sigma ~ N(p_mean, p_std) for the training noise level."""
    p_std: float = 1.6
    lambda_d: float = 0.001
    """Weight of the stereo-aware loss |s(z0) - s(z0_hat)|^2 (paper: 0.001)."""
    cond_noise_mean: float = -3.0
    """log of the conditioning noise augmentation strength ~ N(mean, std)."""
    cond_noise_std: float = 0.5
    cond_dropout: float = 0.1
    """Probability of dropping the conditioning (image embedding and masked view) for CFG."""
    fps: int = 7
    motion_bucket_id: int = 127
    hole_weight: float = 1.0
    """Weight of the occluded latent cells (M) in the denoising loss relative to the others; 1 is
    the paper's uniform Eq. 5. The pipeline composites the known pixels back, so only the holes'
    denoising reaches the output: > 1 spends a small budget where it counts."""


@dataclass(frozen=True)
class OptimConfig:
    lr: float = 1e-5
    weight_decay: float = 1e-2
    betas: tuple[float, float] = (0.9, 0.999)
    warmup_steps: int = 0
    max_grad_norm: float = 1.0
    schedule: str = "constant"
    """After the warm-up: ``constant`` or ``cosine`` (decay to 10% of ``lr`` at ``run.steps``;
    trainer/schedule.py)."""


@dataclass(frozen=True)
class RunConfig:
    """Loop, precision, checkpoints and logging."""

    steps: int = 100_000
    grad_accum: int = 1
    mixed_precision: Literal["no", "bf16", "fp16"] = "bf16"
    gradient_checkpointing: bool = True
    checkpoint_every: int = 1000
    keep_checkpoints: int = 3
    log_every: int = 10
    preview_every: int = 1000
    preview_samples: int = 2
    preview_shards: str | None = None
    """Held-out shards for previews; default: the first samples of the training shards."""
    max_nonfinite: int = 20
    """Consecutive non-finite losses tolerated (each skips its step) before the run stops."""
    ema: bool = False
    ema_decay: float = 0.9999
    seed: int = 0
    log_keys: bool = False
    """Record the sample keys each rank trained on (RUN/keys.rankN.jsonl): checks data splits."""
    resume_data: Literal["replay", "reseed"] = "reseed"
    """On --resume: ``replay`` skips the batches already consumed (exact continuation; costs
    decoding them again), ``reseed`` starts a fresh stream seeded with the step (cheap)."""
    validation_shards: str | None = None
    """Held-out shards for the validation loss (RUN/validation.jsonl): the denoising loss at
    fixed noise levels and draws, before the first step, every ``validation_every`` steps and
    after the last. None: no validation."""
    validation_every: int = 0
    """Steps between validations (0: only before the first and after the last step)."""
    validation_samples: int = 8
    """Held-out samples (clips) the validation loss averages over: the first ones, in order."""


@dataclass(frozen=True)
class TrainConfig:
    stage: Literal[1, 2] = 1
    model: ModelSource = field(default_factory=ModelSource)
    data: DataConfig = field(default_factory=lambda: DataConfig(shards=""))
    loss: LossConfig = field(default_factory=LossConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)
    run: RunConfig = field(default_factory=RunConfig)
    preset: str = "paper"

    def __post_init__(self) -> None:
        if self.stage not in (1, 2):
            raise ValueError(f"stage must be 1 or 2, got {self.stage}")
        if not self.loss.hole_weight > 0:
            raise ValueError(f"loss.hole_weight must be > 0, got {self.loss.hole_weight}")
        if self.optim.schedule not in SCHEDULES:
            raise ValueError(
                f"optim.schedule must be one of {', '.join(SCHEDULES)}, got {self.optim.schedule!r}"
            )

    def to_dict(self) -> dict[str, Any]:
        return _plain(self)


def _paper(stage: int) -> TrainConfig:
    """Paper 4.1: AdamW lr 1e-5; stage 1 1024x1024 frames, batch 8, 100k steps; stage 2 8-frame
    clips, batch 2, 10k steps."""
    if stage == 1:
        data = DataConfig(shards="", mode="frame", resolution=1024, batch_size=8)
        run = RunConfig(steps=100_000)
    else:
        data = DataConfig(shards="", mode="clip", num_frames=8, resolution=1024, batch_size=2)
        run = RunConfig(steps=10_000)
    return TrainConfig(stage=stage, data=data, run=run, preset="paper")


def _tiny(stage: int) -> TrainConfig:
    """Random-initialised tiny components at 64x64: trains on CPU in minutes."""
    data = DataConfig(
        shards="",
        mode="frame" if stage == 1 else "clip",
        num_frames=4,
        resolution=64,
        batch_size=2,
        num_workers=0,
        shuffle_buffer=16,
    )
    run = RunConfig(
        steps=60,
        mixed_precision="no",
        gradient_checkpointing=False,
        checkpoint_every=20,
        log_every=5,
        preview_every=30,
        resume_data="replay",
    )
    model = ModelSource(svd="tiny", refiner="tiny", til_frames=4)
    optim = OptimConfig(lr=1e-3, weight_decay=0.0)
    return TrainConfig(stage=stage, model=model, data=data, optim=optim, run=run, preset="tiny")


def _micro(stage: int) -> TrainConfig:
    """Random micro U-Nets around a trained stage-0 VAE (``--vae``) at 64x64: learns on two CPU
    cores in minutes (stage 1 about 8, stage 2 about 5; docs/training.md)."""
    data = DataConfig(
        shards="",
        mode="frame" if stage == 1 else "clip",
        num_frames=4,
        resolution=64,
        batch_size=4 if stage == 1 else 1,
        num_workers=0,
        shuffle_buffer=64,
    )
    run = RunConfig(
        steps=250 if stage == 1 else 150,
        mixed_precision="no",
        gradient_checkpointing=False,
        checkpoint_every=100,
        keep_checkpoints=1,
        log_every=10,
        preview_every=0,
        resume_data="replay",
        validation_every=50,
    )
    model = ModelSource(svd="micro", refiner="micro", til_frames=4)
    optim = OptimConfig(lr=1e-3, weight_decay=0.0, warmup_steps=20)
    # Holes weigh 10x in the denoising loss: at 400 stage-1 steps the held-out hole PSNR was
    # 14.54 / 15.36 / 15.65 dB with weights 1 / 4 / 10 (docs/training.md).
    loss = LossConfig(hole_weight=10.0)
    return TrainConfig(
        stage=stage, model=model, data=data, loss=loss, optim=optim, run=run, preset="micro"
    )


PRESETS = {"paper": _paper, "tiny": _tiny, "micro": _micro}

_SECTIONS = {
    "model": ModelSource,
    "data": DataConfig,
    "loss": LossConfig,
    "optim": OptimConfig,
    "run": RunConfig,
}


def preset_config(name: str, stage: int) -> TrainConfig:
    if name not in PRESETS:
        raise ValueError(f"unknown preset {name!r}; known: {', '.join(PRESETS)}")
    if stage not in (1, 2):
        raise ValueError(f"stage must be 1 or 2, got {stage}")
    return PRESETS[name](stage)


def apply_overrides(config: TrainConfig, overrides: Mapping[str, Any]) -> TrainConfig:
    """Replace ``{section: {field: value}}`` (and top-level ``stage``); unknown names fail."""
    changes: dict[str, Any] = {}
    for section, values in overrides.items():
        if section in ("preset",):
            continue
        if section == "stage":
            changes["stage"] = values
            continue
        if section not in _SECTIONS:
            raise ValueError(f"unknown config section {section!r}; known: {', '.join(_SECTIONS)}")
        cls = _SECTIONS[section]
        known = {f.name for f in fields(cls)}
        unknown = set(values) - known
        if unknown:
            raise ValueError(
                f"unknown field(s) {', '.join(sorted(unknown))} in [{section}]; "
                f"known: {', '.join(sorted(known))}"
            )
        values = {k: tuple(v) if isinstance(v, list) else v for k, v in values.items()}
        changes[section] = replace(getattr(config, section), **values)
    return replace(config, **changes)


def load_config(path: str | Path | None, *, preset: str | None, stage: int | None) -> TrainConfig:
    """Preset (default ``paper``) for ``stage`` (default 1), then the TOML file's overrides."""
    data: dict[str, Any] = {}
    if path is not None:
        try:
            data = tomllib.loads(Path(path).read_text())
        except FileNotFoundError:
            raise ValueError(f"config file {path} does not exist") from None
        except tomllib.TOMLDecodeError as error:
            raise ValueError(f"config file {path} is not valid TOML: {error}") from None
    stage = stage or data.get("stage") or 1
    config = preset_config(preset or data.get("preset") or "paper", stage)
    return apply_overrides(config, {**data, "stage": stage})


def config_from_dict(data: Mapping[str, Any]) -> TrainConfig:
    """Inverse of :meth:`TrainConfig.to_dict` (reads ``RUN/config.json``)."""
    base = preset_config(data.get("preset", "paper"), data.get("stage", 1))
    sections = {k: v for k, v in data.items() if k in _SECTIONS}
    return replace(apply_overrides(base, sections), preset=data.get("preset", "paper"))


def _plain(value: Any) -> Any:
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: _plain(getattr(value, f.name)) for f in fields(value)}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    return value


def dumps(config: TrainConfig) -> str:
    return json.dumps(config.to_dict(), indent=1)
