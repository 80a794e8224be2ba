"""Checkpoints hold no pickle and are written as a whole: a kill while saving leaves the previous
checkpoint, --resume takes it and continues exactly; planted pickle payloads never run."""

from __future__ import annotations

import json
import pickle
import random
import signal
import subprocess
import sys
import textwrap

import numpy as np
import pytest
import torch
from diffusers.training_utils import EMAModel

from trainer.checkpoint import (
    CheckpointError,
    latest_checkpoint,
    load_state_file,
    load_training_state,
    save_checkpoint,
    save_state_file,
)
from trainer.config import apply_overrides, preset_config
from trainer.loop import fit


def _training_objects(seed: int = 0):
    torch.manual_seed(seed)
    model = torch.nn.Sequential(torch.nn.Linear(3, 4), torch.nn.Linear(4, 2))
    model[0].weight.requires_grad_(False)
    params = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(params, lr=1e-2, betas=(0.8, 0.95))
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda s: min(1.0, (s + 1) / 4))
    ema = EMAModel(params, decay=0.9)
    return model, optimizer, scheduler, ema


def _step(model, optimizer, scheduler, ema):
    loss = model(torch.randn(5, 3)).square().mean()
    loss.backward()
    optimizer.step()
    scheduler.step()
    optimizer.zero_grad()
    ema.step([p for p in model.parameters() if p.requires_grad])


def _draws():
    return (random.random(), np.random.random(), torch.rand(1).item())  # noqa: NPY002


def test_state_files_round_trip_optimizer_scheduler_ema_and_rng(tmp_path):
    model, optimizer, scheduler, ema = _training_objects()
    for _ in range(3):
        _step(model, optimizer, scheduler, ema)
    run = tmp_path / "run"
    save_checkpoint(run, 3, model, optimizer, scheduler, {"batches": 3}, ema)
    expected_draws = _draws()
    _step(model, optimizer, scheduler, ema)
    after = [p.detach().clone() for p in model.parameters()]

    restored = _training_objects()  # the same frozen weights, fresh optimizer state ...
    with torch.no_grad():
        for p in restored[0].parameters():
            p.add_(float(p.requires_grad))  # ... and other trainable weights
    checkpoint = latest_checkpoint(run)
    state = load_training_state(checkpoint, *restored)
    assert state == {"step": 3, "batches": 3}
    assert _draws() == expected_draws  # python, numpy and torch generators restored
    _step(*restored)  # the same step from the restored state gives the same weights
    for got, want in zip(restored[0].parameters(), after, strict=True):
        torch.testing.assert_close(got.detach(), want, rtol=0, atol=0)
    assert restored[1].state_dict()["param_groups"][0]["betas"] == (0.8, 0.95)
    # only safetensors and JSON in a checkpoint
    assert sorted(p.suffix for p in checkpoint.iterdir()) == [".json"] + [".safetensors"] * 5


def test_state_file_encodes_nested_python_values_exactly(tmp_path):
    state = {
        "ints": {0: torch.arange(3), 7: (1, 2.5, None, True)},
        "__tensor__": "a user key that looks like a marker",
        "python": random.getstate(),
        "numpy": np.random.get_state(),  # noqa: NPY002
        "scalar": torch.tensor(2.0),
        "nan": float("nan"),
    }
    save_state_file(tmp_path / "s.safetensors", state)
    back = load_state_file(tmp_path / "s.safetensors")
    assert back["ints"][7] == (1, 2.5, None, True) and back["python"] == state["python"]
    torch.testing.assert_close(back["ints"][0], torch.arange(3))
    assert back["__tensor__"] == state["__tensor__"] and np.isnan(back["nan"])
    np.testing.assert_array_equal(back["numpy"][1], state["numpy"][1])
    assert back["numpy"][1].dtype == state["numpy"][1].dtype
    with pytest.raises(TypeError, match=r"state\.f: a set cannot be stored without pickle"):
        save_state_file(tmp_path / "f.safetensors", {"f": {1, 2}})


def test_planted_pickle_payloads_in_a_checkpoint_never_run(tmp_path, pickle_payload):
    payload, marker = pickle_payload
    model, optimizer, scheduler, ema = _training_objects()
    _step(model, optimizer, scheduler, ema)
    run = tmp_path / "run"
    checkpoint = save_checkpoint(run, 1, model, optimizer, scheduler, {}, ema)
    # .pt files of the old layout, full of payloads, are simply never opened
    for name in ("rng.pt", "optimizer.pt", "scheduler.pt", "ema.pt"):
        torch.save({"state": payload}, checkpoint / name)
    load_training_state(checkpoint, *_training_objects())
    assert not marker.exists()
    # a payload in place of each state file is refused, naming the file
    for name in ("rng", "optimizer", "scheduler", "ema", "trainable"):
        path = checkpoint / f"{name}.safetensors"
        good = path.read_bytes()
        path.write_bytes(pickle.dumps(payload))
        with pytest.raises(CheckpointError, match=rf"{name}\.safetensors: cannot be read"):
            load_training_state(checkpoint, *_training_objects())
        path.write_bytes(good)
    # a run of an older trainer (pickled .pt files only) is skipped, never unpickled
    old = run / "checkpoints" / "step_0000002"
    old.mkdir()
    (old / "trainable.safetensors").write_bytes((checkpoint / "trainable.safetensors").read_bytes())
    (old / "state.json").write_text(json.dumps({"step": 2}))
    torch.save({"state": payload}, old / "rng.pt")
    with pytest.warns(UserWarning, match=r"step_0000002 is incomplete.*pickled \.pt"):
        assert latest_checkpoint(run) == checkpoint
    assert not marker.exists()


KILLED_WHILE_SAVING = textwrap.dedent(
    """
    import os, signal, sys
    from pathlib import Path

    import trainer.checkpoint as checkpoint
    from trainer.config import apply_overrides, preset_config
    from trainer.loop import fit

    real = checkpoint.save_state_file

    def save_then_die(path, state):
        real(path, state)  # the optimizer and scheduler files of step 2 are on disk
        if path.name == "scheduler.safetensors" and "step_0000002" in path.parent.name:
            os.kill(os.getpid(), signal.SIGKILL)

    checkpoint.save_state_file = save_then_die
    config = apply_overrides(preset_config("tiny", 1), {
        "data": {"shards": sys.argv[1]},
        "run": {"steps": 3, "checkpoint_every": 1, "log_every": 1, "preview_every": 0},
    })
    fit(config, Path(sys.argv[2]))
    """
)


def test_kill_while_saving_a_checkpoint_then_resume_continues_exactly(dvg_shards, tmp_path):
    run = tmp_path / "run"
    died = subprocess.run(
        [sys.executable, "-c", KILLED_WHILE_SAVING, str(dvg_shards), str(run)],
        capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    assert died.returncode == -signal.SIGKILL, died.stderr
    folder = run / "checkpoints"
    leftovers = [p.name for p in folder.iterdir() if p.name.startswith(".step_0000002.tmp-")]
    assert len(leftovers) == 1 and not (folder / "step_0000002").exists()
    assert latest_checkpoint(run) == folder / "step_0000001"

    config = apply_overrides(
        preset_config("tiny", 1),
        {
            "data": {"shards": str(dvg_shards)},
            "run": {"steps": 3, "checkpoint_every": 1, "log_every": 1, "preview_every": 0},
        },
    )
    result = fit(config, run, resume=True)
    assert result.step == 3
    lines = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    before = {m["step"]: m["loss"] for m in lines[:2]}  # steps 1-2, logged before the kill
    again = {m["step"]: m["loss"] for m in lines[2:]}  # steps 2-3 after resuming from 1
    assert sorted(before) == [1, 2] and sorted(again) == [2, 3]
    # the replayed step repeats the killed run exactly: weights, optimizer, RNG all restored
    assert again[2] == pytest.approx(before[2], rel=1e-5, abs=1e-7)
    names = sorted(p.name for p in folder.iterdir())
    assert names == ["step_0000001", "step_0000002", "step_0000003"]  # leftover removed
    assert not list(folder.rglob("*.pt"))
