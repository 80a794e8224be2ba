"""A build that cannot start leaves its output folder as it was, names every missing model at
once, and a rerun that writes nothing because of earlier failures names --retry-failed."""

from __future__ import annotations

import json

from typer.testing import CliRunner

from dvg.backends.random_weights import save_random_dpt
from dvg.cli import app
from dvg.engine.output import CONFIG_FILE


def _build(*args: str):
    return CliRunner().invoke(app, ["build", *args, "--no-progress"])


def test_missing_models_leave_the_output_untouched_and_are_named_together(raw_videos, tmp_path):
    out = tmp_path / "shards"
    args = ["--preset", "paper", "--videos", str(raw_videos), "--out", str(out)]
    missing = [str(tmp_path / "w" / n) for n in ("dpt", "sd", "raft.pth")]
    models = [
        "--depth-model",
        missing[0],
        "--inpaint-model",
        missing[1],
        "--flow-model",
        missing[2],
    ]
    result = _build(*args, *models)
    assert result.exit_code == 2
    assert "3 models are missing" in result.output
    assert all(m in result.output for m in missing)
    assert not out.exists()
    out.mkdir()
    assert _build(*args, *models).exit_code == 2
    assert list(out.iterdir()) == []


def test_a_model_that_fails_to_load_leaves_no_trace_and_the_fixed_command_runs(
    raw_videos, tmp_path
):
    broken = save_random_dpt(tmp_path / "dpt")
    for weights_file in broken.glob("*.safetensors"):
        weights_file.write_bytes(b"truncated")  # passes the preflight (config.json is there)
    out = tmp_path / "shards"
    common = ["--videos", str(raw_videos), "--out", str(out), "--clip-length", "4"]
    result = _build("--preset", "offline", *common, "--depth", "dpt", "--depth-model", str(broken))
    assert result.exit_code == 2 and "could not be loaded" in result.output
    assert not out.exists()
    # A configuration record left by an older version without any committed group does not
    # block the corrected command either.
    out.mkdir()
    (out / CONFIG_FILE).write_text(json.dumps({"config_hash": "from-a-failed-run"}))
    result = _build("--preset", "offline", *common)
    assert result.exit_code == 0, result.output
    assert json.loads((out / CONFIG_FILE).read_text())["config_hash"] != "from-a-failed-run"


def test_rerun_names_retry_failed_when_earlier_failures_are_why_nothing_was_made(tmp_path):
    raw = tmp_path / "raw"
    raw.mkdir()
    (raw / "broken.mp4").write_bytes(b"not a video")
    args = ["--preset", "offline", "--videos", str(raw), "--out", str(tmp_path / "out")]
    first = _build(*args)
    assert first.exit_code == 1 and "--retry-failed" not in first.output
    second = _build(*args)
    assert second.exit_code == 1
    assert "--retry-failed" in second.output and "dvg inspect" in second.output
