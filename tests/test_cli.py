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


def test_dvg_demo_writes_preview_and_example(tmp_path):
    result = run(str(BIN / "dvg"), "demo", "--out", str(tmp_path), "--frames", "3")
    assert result.returncode == 0, result.stderr
    preview = tmp_path / "preview.png"
    assert str(preview.resolve()) in result.stdout
    image = cv2.imread(str(preview))
    # Three rows of six 256x448 panels: x1, splat + holes, x2, M, x1~, depth.
    assert image.shape == (3 * 256, 6 * 448, 3)
    assert (tmp_path / "example.mp4").stat().st_size > 0
    assert (tmp_path / "example.depth.npy").exists()
    iou = float(result.stdout.split("IoU ")[1].split()[0])
    assert iou >= 0.9


def test_dvg_synth_rejects_unknown_scene(tmp_path):
    result = run(str(BIN / "dvg"), "synth", "nope", "--out", str(tmp_path))
    assert result.returncode != 0
    assert "unknown scene 'nope'" in result.stdout + result.stderr


def test_dvg_synth_writes_a_clip(tmp_path):
    result = run(str(BIN / "dvg"), "synth", "boxes_orbit", "--out", str(tmp_path), "--frames", "2")
    assert result.returncode == 0, result.stderr
    assert (tmp_path / "boxes_orbit.mp4").exists()
