"""Checkpoints: trainable weights (safetensors), optimizer, scheduler, step and RNG states.

A checkpoint is a folder ``RUN/checkpoints/step_NNNNNNN`` written under a temporary name and
renamed when complete, so a run killed while saving leaves the previous checkpoint intact.
Frozen weights (VAE, CLIP, the frozen half of each stage) are not copied: they come from the
run's recorded component sources.
"""

from __future__ import annotations

import json
import os
import random
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import torch
from safetensors.torch import load_file, save_file
from torch import nn

_PREFIX = "step_"


def checkpoint_dir(run_dir: Path, step: int) -> Path:
    return run_dir / "checkpoints" / f"{_PREFIX}{step:07d}"


def latest_checkpoint(run_dir: Path) -> Path | None:
    """The completed checkpoint with the highest step, or None."""
    folder = run_dir / "checkpoints"
    if not folder.is_dir():
        return None
    done = sorted(p for p in folder.iterdir() if p.name.startswith(_PREFIX) and p.is_dir())
    return done[-1] if done else None


def rng_state() -> dict[str, Any]:
    state = {
        "python": random.getstate(),
        "numpy": np.random.get_state(),  # noqa: NPY002 (libraries may use the global RNG)
        "torch": torch.get_rng_state(),
    }
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict[str, Any]) -> None:
    random.setstate(state["python"])
    np.random.set_state(state["numpy"])  # noqa: NPY002
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def trainable_state(model: nn.Module) -> dict[str, torch.Tensor]:
    return {
        name: p.detach().cpu().contiguous()
        for name, p in model.named_parameters()
        if p.requires_grad
    }


def save_checkpoint(
    run_dir: Path,
    step: int,
    model: nn.Module,
    optimizer: torch.optim.Optimizer,
    scheduler: Any,
    state: dict[str, Any],
    ema: Any | None = None,
    keep: int = 3,
) -> Path:
    """Write a complete checkpoint for ``step``; older ones beyond ``keep`` are deleted."""
    final = checkpoint_dir(run_dir, step)
    tmp = final.with_name(final.name + ".tmp")
    if tmp.exists():
        shutil.rmtree(tmp)
    tmp.mkdir(parents=True)
    save_file(trainable_state(model), str(tmp / "trainable.safetensors"))
    torch.save(optimizer.state_dict(), tmp / "optimizer.pt")
    torch.save(scheduler.state_dict(), tmp / "scheduler.pt")
    torch.save(rng_state(), tmp / "rng.pt")
    if ema is not None:
        torch.save(ema.state_dict(), tmp / "ema.pt")
    (tmp / "state.json").write_text(json.dumps({"step": step, **state}, indent=1))
    for path in tmp.iterdir():
        with open(path, "rb") as handle:
            os.fsync(handle.fileno())
    if final.exists():
        shutil.rmtree(final)
    os.replace(tmp, final)
    done = sorted(p for p in final.parent.iterdir() if p.name.startswith(_PREFIX))
    for old in done[: max(len(done) - keep, 0)]:
        if not old.name.endswith(".tmp"):
            shutil.rmtree(old)
    return final


def load_trainable(model: nn.Module, checkpoint: Path) -> None:
    """Load a checkpoint's trainable weights; names must match the model's trainable set."""
    weights = load_file(str(checkpoint / "trainable.safetensors"))
    parameters = dict(model.named_parameters())
    unknown = sorted(set(weights) - set(parameters))
    if unknown:
        raise ValueError(
            f"checkpoint {checkpoint} has weights the model lacks, e.g. {unknown[:3]}; "
            "was it written by another model configuration?"
        )
    expected = {n for n, p in parameters.items() if p.requires_grad}
    missing = sorted(expected - set(weights))
    if missing:
        raise ValueError(f"checkpoint {checkpoint} lacks trainable weights, e.g. {missing[:3]}")
    with torch.no_grad():
        for name, value in weights.items():
            parameters[name].copy_(value)


def load_ema(parameters: list[nn.Parameter], checkpoint: Path) -> None:
    """Copy the EMA weights of ``checkpoint`` into ``parameters`` (the trainable parameters of
    the run's stage, in the order the run's EMAModel was built with)."""
    path = checkpoint / "ema.pt"
    if not path.is_file():
        raise ValueError(
            f"{checkpoint} has no EMA weights ({path.name}): the run did not train with run.ema"
        )
    shadow = torch.load(path, map_location="cpu", weights_only=True)["shadow_params"]
    if len(shadow) != len(parameters) or any(
        s.shape != p.shape for s, p in zip(shadow, parameters, strict=False)
    ):
        raise ValueError(f"{path}: the EMA weights do not match the run's trainable parameters")
    with torch.no_grad():
        for parameter, value in zip(parameters, shadow, strict=True):
            parameter.copy_(value)


def load_state(checkpoint: Path) -> dict[str, Any]:
    return json.loads((checkpoint / "state.json").read_text())
