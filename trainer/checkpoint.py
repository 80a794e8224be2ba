"""Checkpoints: trainable weights, optimizer, scheduler, EMA, step and RNG states, with no pickle.

A checkpoint is a folder ``RUN/checkpoints/step_NNNNNNN`` of safetensors and JSON files only, so
loading a run directory received from someone else never runs code:

    trainable.safetensors   the trainable weights
    optimizer.safetensors   the optimizer's state dict: its tensors, and the rest (param
    scheduler.safetensors   groups, steps, betas, ...) as JSON in the file's metadata; the same
    rng.safetensors         for the scheduler, the RNG states (torch/CUDA generator tensors,
    ema.safetensors         Python's and numpy's Mersenne Twister as JSON) and the EMA
    state.json              the step and data counters, written last

It is written as a whole: every file goes to a hidden temporary folder next to it
(``.step_NNNNNNN.tmp-<pid>``), each file and the folder are fsynced, then the folder is renamed.
A kill at any moment leaves the previous checkpoints intact and at most a temporary folder,
which ``latest_checkpoint`` never returns and the next save deletes. Frozen weights (VAE, CLIP,
the frozen half of each stage) are not copied: they come from the run's recorded sources.
"""

from __future__ import annotations

import json
import os
import random
import re
import shutil
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import load_file, save_file
from torch import nn

from dvg.shards.manifest import fsync_dir

_PREFIX = "step_"
_NAME = re.compile(r"^step_(\d{7,})$")
_TEMP = re.compile(r"^\.step_\d{7,}\.(tmp|old)-\d+$")
STATE_KEY = "spatialdreamer_state"  # metadata key of the JSON part of a state file
REQUIRED = (
    "trainable.safetensors",
    "optimizer.safetensors",
    "scheduler.safetensors",
    "rng.safetensors",
    "state.json",
)


class CheckpointError(ValueError):
    """A checkpoint file that cannot be read; the message names it."""


def checkpoint_dir(run_dir: Path, step: int) -> Path:
    return run_dir / "checkpoints" / f"{_PREFIX}{step:07d}"


def latest_checkpoint(run_dir: Path) -> Path | None:
    """The complete checkpoint with the highest step, or None.

    Only folders named ``step_NNNNNNN`` holding every file of a checkpoint count; an incomplete
    one (copied in part, or written by an older trainer as pickled ``.pt`` files, which are
    never loaded) is skipped with a warning, and the next older complete one is taken.
    """
    folder = Path(run_dir) / "checkpoints"
    if not folder.is_dir():
        return None
    found = [(int(m.group(1)), p) for p in folder.iterdir() if (m := _NAME.match(p.name))]
    for _, path in sorted(found, reverse=True):
        if not path.is_dir():
            continue
        missing = [name for name in REQUIRED if not (path / name).is_file()]
        if not missing:
            return path
        older = " (an older trainer's pickled .pt files are never loaded)" * any(path.glob("*.pt"))
        warnings.warn(
            f"checkpoint {path} is incomplete, it lacks {', '.join(missing)}{older}; "
            "using an older one",
            stacklevel=2,
        )
    return None


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


# ------------------------------------------------------------------ state files without pickle

_TENSOR, _TUPLE, _DICT, _ARRAY = "__tensor__", "__tuple__", "__dict__", "__ndarray__"
_MARKERS = {_TENSOR, _TUPLE, _DICT, _ARRAY}


def save_state_file(path: Path, state: Any) -> None:
    """Write a state (nested dicts, lists, tuples, tensors, numpy arrays, numbers, strings) as
    one safetensors file: the tensors as tensors, the structure as JSON in its metadata."""
    tensors: dict[str, torch.Tensor] = {}
    structure = _encode(state, tensors, {}, "state")
    metadata = {STATE_KEY: json.dumps(structure, separators=(",", ":"))}
    save_file(tensors, str(path), metadata=metadata)


def load_state_file(path: Path) -> Any:
    """Read a file written by :func:`save_state_file` (safetensors and JSON: no code can run).

    Raises CheckpointError naming the file when it is not such a file.
    """
    try:
        with safe_open(str(path), framework="pt") as handle:
            metadata = handle.metadata() or {}
            if STATE_KEY not in metadata:
                raise CheckpointError(f"{path}: not a trainer state file (no {STATE_KEY!r})")
            structure = json.loads(metadata[STATE_KEY])
            tensors = {key: handle.get_tensor(key) for key in handle.keys()}
    except (OSError, SafetensorError, ValueError) as error:
        if isinstance(error, CheckpointError):
            raise
        raise CheckpointError(f"{path}: cannot be read as a safetensors state ({error})") from None
    try:
        return _decode(structure, tensors)
    except (KeyError, TypeError, ValueError) as error:
        raise CheckpointError(f"{path}: malformed state ({error})") from None


def _encode(obj: Any, tensors: dict[str, torch.Tensor], seen: dict[int, str], where: str) -> Any:
    if isinstance(obj, torch.Tensor):
        key = seen.get(id(obj))
        if key is None:  # a tensor referenced twice is stored once
            key = seen[id(obj)] = str(len(tensors))
            tensors[key] = obj.detach().cpu().contiguous()
        return {_TENSOR: key}
    if isinstance(obj, np.ndarray):
        if obj.dtype.hasobject:
            raise TypeError(f"{where}: an object array cannot be stored without pickle")
        return {_ARRAY: obj.tolist(), "dtype": obj.dtype.str, "shape": list(obj.shape)}
    if isinstance(obj, np.generic):
        return obj.item()
    if isinstance(obj, dict):
        if all(isinstance(k, str) for k in obj) and not _MARKERS & set(obj):
            return {k: _encode(v, tensors, seen, f"{where}.{k}") for k, v in obj.items()}
        return {
            _DICT: [
                [_encode(k, tensors, seen, where), _encode(v, tensors, seen, f"{where}[{k!r}]")]
                for k, v in obj.items()
            ]
        }
    if isinstance(obj, tuple):
        return {_TUPLE: [_encode(v, tensors, seen, f"{where}[{i}]") for i, v in enumerate(obj)]}
    if isinstance(obj, list):
        return [_encode(v, tensors, seen, f"{where}[{i}]") for i, v in enumerate(obj)]
    if obj is None or isinstance(obj, bool | int | float | str):
        return obj
    raise TypeError(f"{where}: a {type(obj).__name__} cannot be stored without pickle")


def _decode(obj: Any, tensors: dict[str, torch.Tensor]) -> Any:
    if isinstance(obj, list):
        return [_decode(v, tensors) for v in obj]
    if not isinstance(obj, dict):
        return obj
    if _TENSOR in obj:
        return tensors[obj[_TENSOR]]
    if _ARRAY in obj:
        return np.array(obj[_ARRAY], dtype=np.dtype(obj["dtype"])).reshape(obj["shape"])
    if _TUPLE in obj:
        return tuple(_decode(v, tensors) for v in obj[_TUPLE])
    if _DICT in obj:
        return {_decode(k, tensors): _decode(v, tensors) for k, v in obj[_DICT]}
    return {k: _decode(v, tensors) for k, v in obj.items()}


# ------------------------------------------------------------------ saving and loading


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
    """Write a complete checkpoint for ``step`` atomically; older ones beyond ``keep`` are
    deleted (only once the new one is in place)."""
    final = checkpoint_dir(run_dir, step)
    folder = final.parent
    folder.mkdir(parents=True, exist_ok=True)
    for leftover in folder.iterdir():  # temporaries of a run killed while saving
        if _TEMP.match(leftover.name):
            shutil.rmtree(leftover, ignore_errors=True)
    tmp = folder / f".{final.name}.tmp-{os.getpid()}"
    tmp.mkdir()
    save_file(trainable_state(model), str(tmp / "trainable.safetensors"))
    save_state_file(tmp / "optimizer.safetensors", optimizer.state_dict())
    save_state_file(tmp / "scheduler.safetensors", scheduler.state_dict())
    save_state_file(tmp / "rng.safetensors", rng_state())
    if ema is not None:
        save_state_file(tmp / "ema.safetensors", ema.state_dict())
    (tmp / "state.json").write_text(json.dumps({"step": step, **state}, indent=1))
    for path in tmp.iterdir():
        with open(path, "rb") as handle:
            os.fsync(handle.fileno())
    fsync_dir(tmp)
    if final.exists():  # the same step saved again: swap, never a moment without it
        old = folder / f".{final.name}.old-{os.getpid()}"
        os.rename(final, old)
        os.rename(tmp, final)
        shutil.rmtree(old)
    else:
        os.rename(tmp, final)
    fsync_dir(folder)
    done = sorted((int(m.group(1)), p) for p in folder.iterdir() if (m := _NAME.match(p.name)))
    for _, old in done[: max(len(done) - keep, 0)]:
        shutil.rmtree(old)
    return final


def load_trainable(model: nn.Module, checkpoint: Path) -> None:
    """Load a checkpoint's trainable weights; names must match the model's trainable set."""
    path = checkpoint / "trainable.safetensors"
    try:
        weights = load_file(str(path))
    except (OSError, SafetensorError) as error:
        raise CheckpointError(f"{path}: cannot be read as safetensors ({error})") from None
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
    path = checkpoint / "ema.safetensors"
    if not path.is_file():
        raise ValueError(
            f"{checkpoint} has no EMA weights ({path.name}): the run did not train with run.ema"
        )
    shadow = load_state_file(path)["shadow_params"]
    if len(shadow) != len(parameters) or any(
        s.shape != p.shape for s, p in zip(shadow, parameters, strict=False)
    ):
        raise ValueError(f"{path}: the EMA weights do not match the run's trainable parameters")
    with torch.no_grad():
        for parameter, value in zip(parameters, shadow, strict=True):
            parameter.copy_(value)


def load_step_state(checkpoint: Path) -> dict[str, Any]:
    """``state.json``: the step and the counters saved with it."""
    path = checkpoint / "state.json"
    try:
        return json.loads(path.read_text())
    except ValueError as error:
        raise CheckpointError(f"{path}: not valid JSON ({error})") from None


def load_training_state(
    checkpoint: Path,
    model: nn.Module,
    optimizer: torch.optim.Optimizer,
    scheduler: Any,
    ema: Any | None = None,
) -> dict[str, Any]:
    """Restore everything ``--resume`` needs from ``checkpoint`` (weights, optimizer, scheduler,
    EMA, RNG states); returns its ``state.json``. Reads safetensors and JSON only."""
    load_trainable(model, checkpoint)
    optimizer.load_state_dict(load_state_file(checkpoint / "optimizer.safetensors"))
    scheduler.load_state_dict(load_state_file(checkpoint / "scheduler.safetensors"))
    if ema is not None and (checkpoint / "ema.safetensors").exists():
        ema.load_state_dict(load_state_file(checkpoint / "ema.safetensors"))
    state = load_step_state(checkpoint)
    set_rng_state(load_state_file(checkpoint / "rng.safetensors"))
    return state
