"""The micro reproduction (benchmarks/micro.py): its smallest scale learns, end to end through
the real command lines, and its seeds never let a held-out video into training."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import tomllib

from benchmarks import micro
from evaluation.benchmarks.micro import EVALUATION_SEEDS

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize("name", list(micro.SCALES))
def test_training_validation_and_evaluation_seeds_are_disjoint(name: str) -> None:
    scale = micro.SCALES[name]
    train = set(range(micro.TRAIN_SEED0, micro.TRAIN_SEED0 + scale.train_seeds))
    validation = set(range(micro.VALIDATION_SEED0, micro.VALIDATION_SEED0 + scale.validation_seeds))
    evaluation = set(scale.eval_seeds) | set(EVALUATION_SEEDS)
    assert not train & validation and not train & evaluation and not validation & evaluation


def test_run_configs_are_the_toml_the_trainer_reads(tmp_path: Path) -> None:
    from trainer.config import load_config

    scale = micro.SCALES["cpu"]
    ablation = next(a for a in micro.ABLATIONS if a.label == "clean-condition")
    text = micro.toml_text(micro.fit_config(scale, ablation.overrides))
    assert tomllib.loads(text) == {
        "run": {"validation_shards": "shards/validation"},
        "data": {"condition": "clean"},
    }
    smoke = micro.toml_text(micro.fit_config(micro.SCALES["smoke"], {"model": {"til": False}}))
    (tmp_path / "run.toml").write_text(smoke)
    config = load_config(tmp_path / "run.toml", preset="micro", stage=2)
    assert config.model.til is False and config.run.validation_every == 10
    dvg = tomllib.loads(micro.toml_text(micro.dvg_config(scale)))
    assert dvg["stereo"]["max_disparity"] == [0.1, 0.25] and dvg["video"]["clip_length"] == 12


def test_smoke_scale_learns_end_to_end(tmp_path: Path) -> None:
    """Rendered videos -> dvg build -> stage 0 -> stage 1 -> stage 2 -> export -> evaluation, at
    the smallest size: the held-out loss in the holes ends below where it started."""
    out = tmp_path / "micro"
    result = subprocess.run(
        [sys.executable, "-m", "benchmarks.micro", "--scale", "smoke", "--out", str(out),
         "--json", str(tmp_path / "results.json"), "--in-process"],
        cwd=ROOT, capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    results = json.loads((tmp_path / "results.json").read_text())
    (stage1,) = [v for v in results["validation"] if v["run"] == "stage1"]
    assert stage1["last_step"] == micro.SCALES["smoke"].stage1_steps
    assert stage1["loss_mask_last"] < stage1["loss_mask_first"]
    methods = [row["method"] for row in results["rows"]]
    assert methods == ["warp-telea", "oracle", "vae-oracle", "stage1", "stage2"]
    assert all(row["depth"] == "ground truth, exact" for row in results["rows"])
    for name in ("report.md", "learning_curve.png", "strips.png", "timings.json",
                 "commands.txt", "configs/stage1.toml", "configs/stage2.json", "configs/dvg.toml",
                 "evaluation/results.json", "models/stage2/model_index.json"):  # fmt: skip
        assert (out / name).exists(), name
    report = (out / "report.md").read_text()
    assert "| stage2 | ground truth, exact | SpatialDreamer `models/stage2` |" in report
    assert "![learning curves](learning_curve.png)" in report
    assert "every model sampled with 1 Euler step(s)" in report  # the smoke scale's eval steps
    assert "- vae-oracle (the exact right view through the stage-0 VAE" in report  # the ceiling
    timings = json.loads((out / "timings.json").read_text())
    assert {"render", "dvg-build-train", "stage0-vae", "fit-stage1", "evaluation"} <= set(timings)


def test_in_process_steps_report_the_commands_exit_status_and_output(tmp_path: Path) -> None:
    log_path = tmp_path / "step.log"
    with open(log_path, "w") as log:
        status = micro.run_in_process("trainer", ["export", "missing-run", "--out", "m"],
                                      tmp_path, log)  # fmt: skip
    assert status != 0
    assert "missing-run" in log_path.read_text()
    with open(log_path, "w") as log:
        assert micro.run_in_process("trainer", ["--help"], tmp_path, log) == 0
    assert "fit-vae" in log_path.read_text()
