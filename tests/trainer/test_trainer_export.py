"""`trainer export`: the deviation strength measured on the training data, EMA weights, and the
pipeline's default strength (tiny preset)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import load_file
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from pipelines.model import SpatialDreamerModel
from pipelines.pipeline import SpatialDreamerPipeline
from trainer.checkpoint import load_state_file
from trainer.config import apply_overrides, preset_config
from trainer.deviation import DeviationLog
from trainer.loop import fit
from trainer.stages import build_model, configure_stage, export_model, load_model

BIN = Path(sys.executable).parent


def tiny(stage: int, shards: Path, **sections):
    config = preset_config("tiny", stage)
    return apply_overrides(config, {"data": {"shards": str(shards)}, **sections})


@pytest.fixture(scope="module")
def ema_run(dvg_shards, tmp_path_factory) -> Path:
    """A tiny stage-1 run of 6 steps (batch 2) with EMA (decay 0.5, so it differs visibly)."""
    run = tmp_path_factory.mktemp("ema") / "run"
    config = tiny(
        1,
        dvg_shards,
        run={"steps": 6, "checkpoint_every": 6, "preview_every": 0, "log_every": 3, "ema": True,
             "ema_decay": 0.5},
    )  # fmt: skip
    fit(config, run)
    return run


def test_the_run_records_the_deviation_strength_of_every_training_sample(ema_run):
    records = DeviationLog(ema_run).records()
    assert [step for step, _ in records] == [1, 2, 3, 4, 5, 6]
    assert all(len(values) == 2 and all(v > 0 for v in values) for _, values in records)
    metrics = [json.loads(line) for line in (ema_run / "metrics.jsonl").read_text().splitlines()]
    mean = np.mean([v for _, values in records[:3] for v in values])
    assert metrics[0]["deviation_mean"] == pytest.approx(mean, rel=1e-4)
    events = EventAccumulator(str(next((ema_run / "tensorboard").rglob("events.out.*")).parent))
    events.Reload()
    assert "train/deviation" in events.Tags()["histograms"]
    log = DeviationLog(ema_run)
    log.truncate(4)  # what --resume does before redoing steps 5 and 6
    assert [step for step, _ in log.records()] == [1, 2, 3, 4]
    for step, values in records[4:]:
        log.append(step, values)


def test_export_writes_the_training_median_and_range_and_the_pipeline_uses_them(
    ema_run, tmp_path, monkeypatch
):
    out = tmp_path / "model"
    result = subprocess.run(
        [str(BIN / "trainer"), "export", str(ema_run), "--out", str(out)],
        capture_output=True, text=True,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    values = [v for _, step in DeviationLog(ema_run).records() for v in step]
    config = json.loads((out / "spatialdreamer.json").read_text())["model"]
    assert config["default_deviation"] == pytest.approx(float(np.median(values)))
    low, high = config["deviation_range"]
    assert (low, high) == pytest.approx(tuple(np.quantile(values, [0.05, 0.95])))
    assert config["deviation_samples"] == 12
    assert "training range 5-95%" in result.stdout

    pipe = SpatialDreamerPipeline.from_pretrained(out)
    pipe.set_progress_bar_config(disable=True)
    seen = []
    forward = pipe.model.forward

    def spy(*args, deviation=None, **kwargs):
        seen.append(deviation)
        return forward(*args, deviation=deviation, **kwargs)

    monkeypatch.setattr(pipe.model, "forward", spy)
    rng = np.random.default_rng(0)
    left = rng.integers(0, 256, (2, 64, 64, 3), dtype=np.uint8)
    holes = np.zeros((2, 64, 64), dtype=bool)
    holes[:, 10:20, 30:40] = True
    pipe.right_views(left, left, holes, steps=1)
    median = torch.tensor(float(np.median(values)))
    assert seen and all(torch.allclose(d, median) for d in seen)


def test_ema_export_and_stage_2_from_the_ema_weights(ema_run, dvg_shards, tmp_path):
    plain, averaged = load_model(ema_run), load_model(ema_run, ema=True)
    name = "unet.conv_in.weight"
    weights = load_file(next((ema_run / "checkpoints").iterdir()) / "trainable.safetensors")
    shadow = load_state_file(next((ema_run / "checkpoints").iterdir()) / "ema.safetensors")[
        "shadow_params"
    ]
    target = dict(plain.named_parameters())[name]
    index = next(i for i, p in enumerate(configure_stage(plain, 1)) if p is target)  # EMA order
    assert torch.equal(dict(plain.named_parameters())[name], weights[name])
    assert torch.equal(dict(averaged.named_parameters())[name], shadow[index])
    assert not torch.equal(shadow[index], weights[name])

    export_model(ema_run, tmp_path / "ema_model", ema=True)
    exported = SpatialDreamerModel.from_pretrained(tmp_path / "ema_model")
    assert torch.equal(exported.unet.conv_in.weight, shadow[index])

    stage2 = tiny(2, dvg_shards, model={"init_from": str(ema_run), "init_ema": True})
    model = build_model(stage2, tmp_path / "stage2")
    assert torch.equal(model.unet.conv_in.weight, shadow[index])
    with pytest.raises(ValueError, match="EMA weights come from a run directory"):
        load_model(tmp_path / "ema_model", ema=True)


def test_ema_export_of_a_run_without_ema_is_a_clear_error(dvg_shards, tmp_path):
    run = tmp_path / "run"
    fit(tiny(1, dvg_shards, run={"steps": 1, "checkpoint_every": 1, "preview_every": 0}), run)
    with pytest.raises(ValueError, match=r"no EMA weights.*run\.ema"):
        export_model(run, tmp_path / "model", ema=True)
