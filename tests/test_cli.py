"""The console scripts, run as a user runs them: installed entry points in a subprocess."""

import os
import subprocess
import sys
from pathlib import Path

import cv2
import pytest

BIN = Path(sys.executable).parent


def run(*args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "COLUMNS": "120"}
    return subprocess.run(args, capture_output=True, text=True, env=env, timeout=300)


@pytest.mark.parametrize(
    ("script", "word"),
    [("dvg", "DVG"), ("trainer", "Train"), ("evaluation", "Measure"), ("spatialdreamer", "stereo")],
)
def test_help_of_every_console_script(script, word):
    result = run(str(BIN / script), "--help")
    assert result.returncode == 0, result.stderr
    assert word in result.stdout


def test_demo_chain_synth_build_inspect_preview(tmp_path):
    """What `make demo` runs, on a shorter example: every step exits 0 and the preview has the
    five panels (x1, x2, M over x1, x1~, depth) for each previewed frame."""
    dvg = str(BIN / "dvg")
    videos, shards = tmp_path / "videos", tmp_path / "shards"
    steps = [
        [dvg, "synth", "example", "--out", str(videos), "--frames", "8"],
        [dvg, "build", "--preset", "offline", "--videos", str(videos), "--out", str(shards),
         "--clip-length", "8", "--keep-disparity", "--no-progress"],
        [dvg, "inspect", str(shards)],
        [dvg, "preview", str(shards), "--out", str(tmp_path / "preview.png"), "--frames", "3",
         "--video", str(tmp_path / "preview.mp4")],
    ]  # fmt: skip
    outputs = []
    for step in steps:
        result = run(*step)
        assert result.returncode == 0, (step[1], result.stdout, result.stderr)
        outputs.append(result.stdout)
    assert "summary" in outputs[1]
    assert "sidecar" in outputs[2] or "samples" in outputs[2]
    image = cv2.imread(str(tmp_path / "preview.png"))
    # Three rows (frames) of five panels; panels keep the 256x448 example's aspect.
    assert image.shape[1] % 5 == 0 and image.shape[0] % 3 == 0
    assert image.shape[0] // 3 >= 256 * (image.shape[1] // 5 - 4) / 448 * 0.9
    assert (tmp_path / "preview.mp4").stat().st_size > 0


def test_dvg_synth_rejects_unknown_scene(tmp_path):
    result = run(str(BIN / "dvg"), "synth", "nope", "--out", str(tmp_path))
    assert result.returncode != 0
    assert "unknown scene 'nope'" in result.stdout + result.stderr


def test_dvg_synth_writes_a_clip(tmp_path):
    result = run(str(BIN / "dvg"), "synth", "boxes_orbit", "--out", str(tmp_path), "--frames", "2")
    assert result.returncode == 0, result.stderr
    assert (tmp_path / "boxes_orbit.mp4").exists()
    # progress in plain lines (stderr is a pipe): 2 frames ray cast, then 1 frame pair's flow
    assert result.stderr.splitlines()[0].startswith("dvg synth: 1/3 steps (33.3%) | ")
    assert result.stderr.splitlines()[-1].startswith("dvg synth (done): 3/3 steps (100.0%)")
