"""`evaluation run` end to end: the synthetic benchmark ranks the oracle first, and the
RealEstate10K benchmark runs on a tiny fixture in the official camera-file format."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch

from dvg.backends.random_weights import save_random_dpt
from dvg.synthetic import render_scene
from evaluation.benchmarks import CameraTrack, write_camera_file
from evaluation.metrics import LPIPS, AlexNetFeatures

EVALUATION = str(Path(sys.executable).parent / "evaluation")


@pytest.fixture(scope="module")
def weights(tmp_path_factory) -> dict[str, str]:
    """A tiny random DPT and LPIPS files with a fixed random AlexNet trunk, in real formats."""
    folder = tmp_path_factory.mktemp("eval-weights")
    torch.manual_seed(0)
    torch.save(AlexNetFeatures().state_dict(), folder / "alexnet.pth")
    lins = {k: v.abs() for k, v in LPIPS("alex").state_dict().items() if k.startswith("lin")}
    torch.save(lins, folder / "alex.pth")
    return {
        "dpt": str(save_random_dpt(folder / "dpt")),
        "trunk": str(folder / "alexnet.pth"),
        "linear": str(folder / "alex.pth"),
    }


def run(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([EVALUATION, "run", *args], capture_output=True, text=True, timeout=600)


def test_synthetic_benchmark_ranks_the_oracle_first(weights, tmp_path):
    out = tmp_path / "synthetic"
    result = run(
        "--benchmark", "synthetic", "--out", str(out), "--methods", "oracle,warp-telea",
        "--depth-model", weights["dpt"], "--lpips-trunk-weights", weights["trunk"],
        "--lpips-linear-weights", weights["linear"],
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    results = json.loads((out / "results.json").read_text())
    rows = {(r["method"], r["offset"]): r for r in results["summary"]}
    for offset in ("stereo", "t=5", "t=10"):
        oracle, telea = rows[("oracle", offset)], rows[("warp-telea", offset)]
        assert oracle["lpips"] <= telea["lpips"], offset
        assert oracle["psnr"] >= telea["psnr"], offset
    for name in ("samples.csv", "summary.csv", "report.md", "examples.png", "plots/lpips.png"):
        assert (out / name).exists(), name
    assert "| oracle (ours" in (out / "report.md").read_text()


def test_realestate10k_benchmark_on_a_tiny_fixture(weights, tmp_path):
    """Frames and cameras of an orbiting synthetic scene, laid out as docs/evaluation.md says."""
    render = render_scene("boxes_orbit", seed=0, height=96, width=128, num_frames=16)
    K = render.K.numpy().astype(np.float64)
    normalised = [K[0, 0] / 128, K[1, 1] / 96, K[0, 2] / 128, K[1, 2] / 96]
    timestamps = np.arange(16, dtype=np.int64) * 33_366 + 1_000_000
    data = tmp_path / "re10k"
    (data / "cameras").mkdir(parents=True)
    (data / "frames" / "clip0").mkdir(parents=True)
    track = CameraTrack(
        "https://www.youtube.com/watch?v=fixture",
        timestamps,
        np.tile(normalised, (16, 1)),
        render.world_to_camera.numpy().astype(np.float64),
    )
    write_camera_file(data / "cameras" / "clip0.txt", track)
    for t, frame in zip(timestamps, render.left, strict=True):
        rgb = (frame.clamp(0, 1) * 255).round().byte().permute(1, 2, 0).numpy()
        cv2.imwrite(str(data / "frames" / "clip0" / f"{t}.png"), rgb[..., ::-1])

    out = tmp_path / "re10k-report"
    result = run(
        "--benchmark", "realestate10k", "--data", str(data), "--out", str(out),
        "--methods", "warp-telea", "--depth-model", weights["dpt"],
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    results = json.loads((out / "results.json").read_text())
    offsets = {r["offset"] for r in results["summary"]}
    assert offsets == {"t=5", "t=10"}
    report = (out / "report.md").read_text()
    assert "SpatialDreamer (paper, Table 1)" in report and "32.26" in report
    assert any("LPIPS not computed" in n for n in results["notes"])


def test_realestate10k_without_data_is_a_clear_error(tmp_path):
    result = run("--benchmark", "realestate10k", "--out", str(tmp_path / "x"))
    assert result.returncode == 2
    assert "--data DIR" in result.stderr


def test_video_benchmark_reports_ewarp_overall_and_at_window_seams(tmp_path):
    out = tmp_path / "video"
    result = run("--benchmark", "video", "--out", str(out), "--methods", "warp-telea")
    assert result.returncode == 0, result.stderr[-3000:]
    results = json.loads((out / "results.json").read_text())
    (row,) = results["video"]
    assert row["method"] == "warp-telea" and row["n"] == 2
    assert row["ewarp"] > 0 and row["ewarp_seams"] is not None
    report = (out / "report.md").read_text()
    assert "E_warp at window seams" in report and "67.09" in report
    assert any("FVD not computed" in n for n in results["notes"])
