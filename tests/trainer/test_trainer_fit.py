"""`trainer fit` end to end on the tiny preset: overfitting, stages, resume after a real kill,
export, two processes."""

from __future__ import annotations

import itertools
import json
import os
import signal
import subprocess
import sys
import time
from dataclasses import replace
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch

from trainer.config import apply_overrides, preset_config
from trainer.data import make_loader
from trainer.deviation import DeviationLog
from trainer.loop import fit
from trainer.objective import encode_batch, training_loss
from trainer.stages import build_model, load_model

BIN = Path(sys.executable).parent


@pytest.fixture(scope="module")
def two_clip_shards(tmp_path_factory) -> Path:
    """Shards written by `dvg build --preset offline`: one video, two clips of 4 frames."""
    from dvg.engine import apply_overrides as dvg_overrides
    from dvg.engine import build
    from dvg.engine import preset_config as dvg_preset
    from dvg.synthetic import render_scene, write_clip

    folder = tmp_path_factory.mktemp("trainer-data")
    render = render_scene("moving_objects", seed=0, height=64, width=96, num_frames=8)
    write_clip(render, folder / "raw", "clip")
    config = dvg_overrides(dvg_preset("offline"), {"video": {"clip_length": 4}})
    summary = build([folder / "raw"], folder / "shards", config, show_progress=False)
    assert summary.samples == 2
    return folder / "shards"


def tiny(stage: int, shards: Path, **sections):
    config = preset_config("tiny", stage)
    return apply_overrides(config, {"data": {"shards": str(shards)}, **sections})


def metrics(run: Path) -> list[dict]:
    return [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]


def fixed_draw_loss(model, config, batch) -> float:
    """The training loss on one batch with fixed noise draws: comparable before and after."""
    losses = []
    for seed in range(8):
        generator = torch.Generator().manual_seed(seed)
        with torch.no_grad():
            cond = encode_batch(model, batch, config.loss, generator=generator)
            terms = training_loss(model, cond, config.loss, generator=generator)
        losses.append(terms.total.item())
    return float(np.mean(losses))


def test_tiny_model_overfits_two_clips(two_clip_shards, tmp_path):
    """The EDM loss of a step depends on its random sigma, so the comparison uses the same
    eight (sigma, noise) draws on both clips before and after 100 steps."""
    config = tiny(
        1,
        two_clip_shards,
        run={"steps": 100, "log_every": 10, "checkpoint_every": 100, "preview_every": 0},
        loss={"cond_dropout": 0.0},
        optim={"lr": 2e-3},
    )
    run = tmp_path / "run"
    fit(config, run)
    data = replace(config.data, resampled=False, shuffle_buffer=0, batch_size=2)
    batch = next(iter(make_loader(data)))
    torch.manual_seed(0)
    initial = build_model(config, run)
    before = fixed_draw_loss(initial, config, batch)
    after = fixed_draw_loss(load_model(run), config, batch)
    print(f"tiny overfit on two clips: loss {before:.4f} -> {after:.4f} in 100 steps")
    assert after <= 0.5 * before


def test_stage_1_then_stage_2_then_export_through_the_cli(two_clip_shards, tmp_path):
    """...with stage 1's output going to a log file, where its progress must appear from the
    first step on (a job's log is not a terminal: plain lines, not a redrawn bar)."""
    trainer = str(BIN / "trainer")
    stage1, stage2 = tmp_path / "stage1", tmp_path / "stage2"
    common = ["--preset", "tiny", "--steps", "4"]
    log = tmp_path / "stage1.log"
    with open(log, "w") as handle:
        first = subprocess.run(
            [trainer, "fit", str(two_clip_shards), "--run-dir", str(stage1), "--stage", "1",
             *common],
            stdout=handle, stderr=subprocess.STDOUT,
        )  # fmt: skip
    assert first.returncode == 0, log.read_text()[-3000:]
    lines = [line for line in log.read_text().splitlines() if line.startswith("trainer fit")]
    assert lines[0].startswith("trainer fit: 1/4 steps (25.0%) | "), lines
    for part in ("steps/s", "ETA ", "loss ", "nonfinite_steps 0", "skipped_samples 0"):
        assert part in lines[0], part
    assert lines[-1].startswith("trainer fit (done): 4/4 steps (100.0%)")
    second = subprocess.run(
        [trainer, "fit", str(two_clip_shards), "--run-dir", str(stage2), "--stage", "2",
         "--init-from", str(stage1), *common],
        capture_output=True, text=True,
    )  # fmt: skip
    assert second.returncode == 0, second.stderr
    assert (stage2 / "checkpoints" / "step_0000004" / "trainable.safetensors").exists()
    assert len(metrics(stage2)) >= 1
    exported = tmp_path / "model"
    result = subprocess.run(
        [trainer, "export", str(stage2), "--out", str(exported)], capture_output=True, text=True
    )
    assert result.returncode == 0, result.stderr
    model = load_model(exported)
    assert model.til is not None


def test_resume_after_a_real_kill_repeats_the_uninterrupted_losses(two_clip_shards, tmp_path):
    trainer = str(BIN / "trainer")
    args = ["--preset", "tiny", "--stage", "1", "--steps", "30"]
    reference, killed = tmp_path / "reference", tmp_path / "killed"
    done = subprocess.run(
        [trainer, "fit", str(two_clip_shards), "--run-dir", str(reference), *args],
        capture_output=True, text=True,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr

    process = subprocess.Popen(
        [trainer, "fit", str(two_clip_shards), "--run-dir", str(killed), *args],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    deadline = time.monotonic() + 900  # generous: a shared CI machine can be slow
    while not (killed / "checkpoints" / "step_0000020").exists():
        assert process.poll() is None, "training ended before it could be killed"
        assert time.monotonic() < deadline
        time.sleep(0.05)
    os.kill(process.pid, signal.SIGKILL)
    process.wait()
    assert not (killed / "checkpoints" / "step_0000030").exists()

    resumed = subprocess.run(
        [trainer, "fit", str(two_clip_shards), "--run-dir", str(killed), *args, "--resume"],
        capture_output=True, text=True,
    )  # fmt: skip
    assert resumed.returncode == 0, resumed.stderr
    expected = {m["step"]: m["loss"] for m in metrics(reference)}
    got = {m["step"]: m["loss"] for m in metrics(killed) if m["step"] > 20}
    assert got and all(step > 20 for step in got)
    for step, loss in got.items():
        assert loss == pytest.approx(expected[step], rel=1e-5, abs=1e-7), step
    # The deviation record holds each step once, as the uninterrupted run's does.
    record = DeviationLog(killed).records()
    assert [step for step, _ in record] == list(range(1, 31))
    values = [v for _, step_values in record for v in step_values]
    expected_values = [v for _, vs in DeviationLog(reference).records() for v in vs]
    assert values == pytest.approx(expected_values, rel=1e-5)


def test_starting_over_an_existing_run_needs_resume(two_clip_shards, tmp_path):
    config = tiny(1, two_clip_shards, run={"steps": 1, "checkpoint_every": 1, "preview_every": 1})
    fit(config, tmp_path / "run")
    preview = cv2.imread(str(tmp_path / "run" / "previews" / "step_0000001.png"))
    assert preview.shape == (2 * 64, 4 * 64, 3)  # two samples: x1~ | x2 | estimate | x1
    assert list((tmp_path / "run").rglob("events.out.tfevents.*"))
    with pytest.raises(ValueError, match="--resume"):
        fit(config, tmp_path / "run")
    more = replace(config, run=replace(config.run, steps=2))
    assert fit(more, tmp_path / "run", resume=True).step == 2


def test_two_processes_on_cpu_read_different_samples(tmp_path):
    """torchrun starts two ranks (gloo on CPU); each trains on its own shard."""
    from dvg.engine import apply_overrides as dvg_overrides
    from dvg.engine import build
    from dvg.engine import preset_config as dvg_preset
    from dvg.synthetic import render_scene, write_clip

    for i, scene in enumerate(("moving_objects", "fronto_integer")):
        render = render_scene(scene, seed=i, height=64, width=96, num_frames=8)
        write_clip(render, tmp_path / "raw", f"video{i}")
    config = dvg_overrides(
        dvg_preset("offline"), {"video": {"clip_length": 4}, "output": {"videos_per_group": 1}}
    )
    build([tmp_path / "raw"], tmp_path / "shards", config, show_progress=False)
    (tmp_path / "keys.toml").write_text("[run]\nlog_keys = true\n")
    run = tmp_path / "run"
    result = subprocess.run(
        [str(BIN / "torchrun"), "--nproc_per_node", "2", "--master_port", "29561", "-m",
         "trainer", "fit", str(tmp_path / "shards"), "--run-dir", str(run), "--preset", "tiny",
         "--stage", "1", "--steps", "3", "--config", str(tmp_path / "keys.toml")],
        capture_output=True, text=True,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    keys = {}
    for rank in (0, 1):
        lines = (run / f"keys.rank{rank}.jsonl").read_text().splitlines()
        assert len(lines) == 3
        keys[rank] = {k for line in lines for k in json.loads(line)["keys"]}
    assert keys[0] and keys[1] and not keys[0] & keys[1]
    assert (run / "checkpoints" / "step_0000003" / "trainable.safetensors").exists()


def test_non_finite_losses_skip_steps_then_stop_the_run(two_clip_shards, tmp_path, monkeypatch):
    import trainer.loop as loop

    real = loop.training_loss
    calls = {"n": 0}

    def sometimes_nan(*args, **kwargs):
        terms = real(*args, **kwargs)
        calls["n"] += 1
        if calls["n"] in (2, 3) or calls["n"] >= 6:
            terms.total = terms.total * float("nan")
        return terms

    monkeypatch.setattr(loop, "training_loss", sometimes_nan)
    config = tiny(
        1,
        two_clip_shards,
        run={"steps": 20, "max_nonfinite": 4, "checkpoint_every": 100, "preview_every": 0},
    )
    with pytest.raises(loop.NonFiniteLossError, match="4 consecutive non-finite losses at step 9"):
        fit(config, tmp_path / "run")
    logged = metrics(tmp_path / "run")
    assert logged and logged[-1]["skipped_steps"] == 2  # steps 2 and 3 were skipped, 4-5 trained


def test_stage_2_starts_from_exactly_the_stage_1_model(two_clip_shards, tmp_path):
    """Stage 2 loads the stage-1 checkpoint and adds TIL, which starts as a no-op: the two
    models give the same output on the same batch (< 1e-5)."""
    stage1 = tiny(1, two_clip_shards, run={"steps": 2, "checkpoint_every": 2, "preview_every": 0})
    fit(stage1, tmp_path / "stage1")
    stage2 = tiny(2, two_clip_shards, model={"init_from": str(tmp_path / "stage1")})
    data = replace(stage2.data, resampled=False, shuffle_buffer=0, batch_size=2)
    batch = next(iter(make_loader(data)))

    def output(model) -> torch.Tensor:
        generator = torch.Generator().manual_seed(0)
        with torch.no_grad():
            cond = encode_batch(model, batch, stage2.loss, generator=generator)
            b = cond.target.shape[0]
            noisy = cond.target + torch.randn(cond.target.shape, generator=generator)
            time_ids = torch.tensor([[6.0, 127.0, 0.02]]).repeat(b, 1)
            return model(noisy, torch.zeros(b), cond.masked, cond.mask, cond.reference,
                         cond.embeddings, time_ids)  # fmt: skip

    first = load_model(tmp_path / "stage1")
    second = build_model(stage2, tmp_path / "stage2")
    assert first.til is None and second.til is not None
    torch.testing.assert_close(output(second), output(first), atol=1e-5, rtol=0)


def test_cosine_schedule_decays_the_logged_lr_to_its_floor(two_clip_shards, tmp_path):
    """optim.schedule = cosine: warm-up, then the lr the loop logs falls to 10% at the last step;
    the default stays constant after the warm-up; an unknown name is refused by the config."""
    from trainer.schedule import lr_factor

    assert [lr_factor(s, "constant", 4, 20) for s in (0, 3, 19)] == [0.25, 1.0, 1.0]
    assert lr_factor(4, "cosine", 4, 20) == 1.0 and lr_factor(20, "cosine", 4, 20) == 0.1
    assert lr_factor(12, "cosine", 4, 20) == pytest.approx(0.55)
    config = tiny(
        1,
        two_clip_shards,
        run={"steps": 20, "log_every": 1, "checkpoint_every": 100, "preview_every": 0},
        optim={"lr": 1e-3, "warmup_steps": 4, "schedule": "cosine"},
    )
    fit(config, tmp_path / "run")
    lrs = [m["lr"] for m in metrics(tmp_path / "run") if "lr" in m]
    assert len(lrs) == 20 and lrs[0] == pytest.approx(5e-4)  # after step 0: factor 2/4
    assert all(a >= b for a, b in itertools.pairwise(lrs[3:]))
    assert lrs[-1] == pytest.approx(1e-4)
    with pytest.raises(ValueError, match=r"optim\.schedule must be one of constant, cosine"):
        tiny(1, two_clip_shards, optim={"schedule": "linear"})


def test_hole_weight_scales_the_denoising_error_of_occluded_cells_only(
    two_clip_shards, tmp_path, monkeypatch
):
    import trainer.objective as objective

    config = tiny(1, two_clip_shards)
    data = replace(config.data, resampled=False, shuffle_buffer=0, batch_size=2)
    batch = next(iter(make_loader(data)))
    torch.manual_seed(0)
    model = build_model(config, tmp_path)
    cond = encode_batch(model, batch, config.loss, generator=torch.Generator().manual_seed(0))
    holes = cond.mask.expand_as(cond.target).flatten(1).float().mean(1)  # (B,) fraction in M
    assert 0 < holes.min() and holes.max() < 1
    # A denoiser off by 1 everywhere: the loss is the weighted fraction of cells.
    monkeypatch.setattr(objective, "edm_denoised", lambda *args: args[3].target + 1)
    for hole_weight in (1.0, 4.0):
        loss = replace(config.loss, hole_weight=hole_weight, lambda_d=0.0)
        terms = training_loss(model, cond, loss, generator=torch.Generator().manual_seed(1))
        weight = (1 + terms.sigma**2) / terms.sigma**2
        expected = (weight * (1 + (hole_weight - 1) * holes)).mean()
        torch.testing.assert_close(terms.denoise, expected)
    with pytest.raises(ValueError, match="hole_weight"):
        apply_overrides(config, {"loss": {"hole_weight": 0}})
