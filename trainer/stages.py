"""The two training stages (paper 3.5): what is built and what is trained in each.

Stage 1 (single frames): RefinerNet, the U-Net's spatial layers (including the widened
``conv_in``) and the new deviation-strength embedding are trained; the temporal layers are
frozen and TIL is absent. Stage 2 (8-frame clips, from a stage-1 checkpoint): only the U-Net's
temporal layers and TIL are trained (the temporal layers alone with ``model.til = false``, the
ablation). The VAE and the CLIP image encoder are always frozen.
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

from diffusers import EulerDiscreteScheduler
from torch import nn

from pipelines.model import ModelConfig, SpatialDreamerModel, save_tiny_sd, save_tiny_svd
from pipelines.model.micro import save_micro_sd, save_micro_svd
from pipelines.model.tiny import SVD_SCHEDULER_CONFIG
from pipelines.pipeline import SpatialDreamerPipeline
from trainer.card import write_model_card
from trainer.checkpoint import latest_checkpoint, load_ema, load_trainable
from trainer.config import TrainConfig, config_from_dict
from trainer.deviation import DeviationLog

STAGE_GROUPS: dict[int, tuple[str, ...]] = {
    1: ("unet_spatial", "unet_conv_in", "refiner", "deviation"),
    2: ("unet_temporal", "til"),
}
# The groups the ablation without TIL trains in stage 2.
NO_TIL_GROUPS = ("unet_temporal",)


def configure_stage(
    model: SpatialDreamerModel, stage: int, *, til: bool = True
) -> list[nn.Parameter]:
    """Freeze everything, then unfreeze the stage's groups; returns the trainable parameters.

    ``til=False`` (stage 2 only): the ablation without TIL, the temporal layers alone.
    """
    if stage == 2 and til and model.til is None:
        raise ValueError("stage 2 trains TIL: build the model with TIL (model.enable_til())")
    if stage == 2 and not til and model.til is not None:
        raise ValueError("model.til = false trains without TIL, but the model has TIL modules")
    model.requires_grad_(False)
    groups = model.trainable_groups()
    trainable: list[nn.Parameter] = []
    for name in NO_TIL_GROUPS if stage == 2 and not til else STAGE_GROUPS[stage]:
        for parameter in groups.get(name, []):
            parameter.requires_grad_(True)
            trainable.append(parameter)
    if not trainable:
        raise ValueError(f"stage {stage} has no trainable parameters")
    return trainable


def trainable_names(model: nn.Module) -> list[str]:
    """Names of the parameters that require gradients (what a checkpoint stores)."""
    return [name for name, p in model.named_parameters() if p.requires_grad]


def _component(config: TrainConfig, run_dir: Path, kind: str) -> str:
    """``tiny`` / ``micro`` -> random components saved once in the run directory (diffusers
    layout; micro's around the stage-0 VAE of ``model.vae``); anything else is a hub id or dir."""
    source = config.model.svd if kind == "svd" else config.model.refiner
    if source not in ("tiny", "micro"):
        return source
    path = run_dir / "components" / kind
    if (path / "model_index.json").exists() or (path / "unet" / "config.json").exists():
        return str(path)
    if source == "tiny":
        (save_tiny_svd if kind == "svd" else save_tiny_sd)(path)
    else:
        if config.model.vae is None:
            raise ValueError(
                "the micro preset builds its U-Nets around a stage-0 VAE: pass --vae DIR "
                "(model.vae), a folder written by `trainer fit-vae`"
            )
        (save_micro_svd if kind == "svd" else save_micro_sd)(
            path, config.model.vae, seed=config.run.seed
        )
    return str(path)


def build_model(config: TrainConfig, run_dir: Path) -> SpatialDreamerModel:
    """The model a run starts from: pretrained SVD + SD2.1 (stage 1) or a stage-1 model + TIL."""
    source = config.model
    if source.vae is not None and source.svd != "micro":
        raise ValueError(
            f"model.vae ({source.vae}) is the VAE of the micro preset's components; with "
            f"model.svd = {source.svd!r} the VAE comes from the SVD components"
        )
    if config.stage == 1:
        model_config = ModelConfig(
            svd=_component(config, run_dir, "svd"),
            refiner=_component(config, run_dir, "refiner"),
            til=False,
            til_lambda=source.til_lambda,
            til_frames=source.til_frames,
            default_deviation=source.default_deviation,
        )
        return SpatialDreamerModel.from_components(model_config)
    if source.init_from is None:
        raise ValueError("stage 2 starts from a stage-1 run: set --init-from RUN (model.init_from)")
    model = load_model(Path(source.init_from), ema=source.init_ema)
    if source.til and model.til is None:
        model.enable_til()
    if not source.til and model.til is not None:
        raise ValueError(
            f"model.til = false trains stage 2 without TIL, but {source.init_from} already has "
            "TIL modules: start from a stage-1 run"
        )
    return model


def load_model(path: Path, *, ema: bool = False) -> SpatialDreamerModel:
    """A model from an exported directory or from a run's last checkpoint (its EMA weights when
    ``ema``)."""
    if (path / "spatialdreamer.json").exists():
        if ema:
            raise ValueError(
                f"{path} is an exported model: EMA weights come from a run directory (export "
                "them with `trainer export RUN --ema`)"
            )
        return SpatialDreamerModel.from_pretrained(path)
    config_file = path / "config.json"
    if not config_file.exists():
        raise ValueError(f"{path} is neither an exported model nor a training run directory")
    config = config_from_dict(json.loads(config_file.read_text()))
    model = build_model(config, path)
    checkpoint = latest_checkpoint(path)
    if checkpoint is None:
        raise ValueError(f"run {path} has no checkpoint yet")
    parameters = configure_stage(model, config.stage, til=config.model.til)
    load_trainable(model, checkpoint)
    if ema:
        load_ema(parameters, checkpoint)
    return model


def export_model(run: Path, out: Path, *, ema: bool = False) -> SpatialDreamerModel:
    """`trainer export`: the run's last checkpoint (or its EMA weights) as a model directory, with
    the stereo deviation strength measured on the training data (paper Eq. 4) as the default
    strength (its median) and the range users should stay in (5-95%), the `model_index.json`
    diffusers loads it by, and a model card (README.md)."""
    model = load_model(run, ema=ema)
    run_config, step = None, None
    if (run / "config.json").exists():
        run_config = json.loads((run / "config.json").read_text())
        checkpoint = latest_checkpoint(run)
        step = json.loads((checkpoint / "state.json").read_text())["step"] if checkpoint else None
        summary = DeviationLog(run).summary(up_to_step=step)
        if summary is not None:
            model.config = dataclasses.replace(
                model.config,
                default_deviation=summary.median,
                deviation_range=(summary.low, summary.high),
                deviation_samples=summary.count,
            )
    scheduler = model.scheduler or EulerDiscreteScheduler.from_config(SVD_SCHEDULER_CONFIG)
    SpatialDreamerPipeline(model, scheduler).save_pretrained(out)
    write_model_card(out, run_config, model.config, step)
    return model
