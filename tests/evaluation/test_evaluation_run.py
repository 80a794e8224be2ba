"""`evaluation run` end to end: the synthetic report's rows name what differs between methods,
the RealEstate10K benchmark runs on a tiny fixture in the official camera-file format, the video
benchmark writes CSVs and plots, and the stereo benchmark scores a user's own clips."""

from __future__ import annotations

import csv
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


def test_synthetic_report_rows_differ_where_the_methods_differ_and_say_why(weights, tmp_path):
    """With ground-truth depth for both, only the hole filler separates the oracle (the real
    target's pixels) from warp-telea; each row says so, and each cell is a mean over pairs."""
    from evaluation.runner import EvaluationConfig, run

    out = tmp_path / "synthetic"
    config = EvaluationConfig(
        benchmark="synthetic", out=str(out), methods=("oracle", "warp-telea"),
        lpips_trunk_weights=weights["trunk"], lpips_linear_weights=weights["linear"],
        extra={"height": 48, "width": 64, "frames": 12, "seeds": (0,)},
    )  # fmt: skip
    run(config)
    results = json.loads((out / "results.json").read_text())
    rows = {(r["method"], r["offset"]): r for r in results["summary"]}
    for offset, n in (("stereo", 24), ("t=5", 7), ("t=10", 2)):
        oracle, telea = rows[("oracle", offset)], rows[("warp-telea", offset)]
        assert oracle["n"] == telea["n"] == n, offset
        assert oracle["psnr"] > telea["psnr"], offset  # same depth, a better filler
        assert oracle["lpips"] <= telea["lpips"], offset
        assert telea["psnr_std"] > 0, offset
    assert rows[("oracle", "stereo")]["depth"] == "ground truth, exact"
    assert rows[("oracle", "stereo")]["fill"] == "real target pixels (ceiling)"
    assert rows[("warp-telea", "stereo")]["depth"] == "ground truth as relative depth"
    assert rows[("warp-telea", "stereo")]["fill"] == "OpenCV Telea"
    for name in ("samples.csv", "summary.csv", "report.md", "examples.png", "plots/lpips.png"):
        assert (out / name).exists(), name
    report = (out / "report.md").read_text()
    assert "| Method | Depth | Hole filler | n stereo |" in report
    assert "| oracle | ground truth, exact | real target pixels (ceiling) | 24 |" in report
    assert " ± " in report
    assert "Reference: the paper" not in report  # nothing to compare with on synthetic scenes


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
    ours, reference = report.split("## Reference: the paper's reported figures (not comparable)")
    assert "32.26" in reference and "32.26" not in ours
    assert "| warp-telea | `dpt` `" in ours  # the row names its depth model
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
    assert row["method"] == "warp-telea" and row["n"] == 4  # 2 scenes x 2 seeds
    assert row["ewarp"] > 0 and row["ewarp_std"] > 0 and row["ewarp_seams"] is not None
    assert row["depth"] == "`sidecar`" and row["fill"] == "OpenCV Telea"
    with open(out / "samples.csv") as handle:
        samples = list(csv.DictReader(handle))
    assert len(samples) == 4 and all(float(s["ewarp"]) > 0 for s in samples)
    with open(out / "summary.csv") as handle:
        (summary,) = list(csv.DictReader(handle))
    assert float(summary["ewarp"]) == pytest.approx(row["ewarp"])
    assert (out / "plots" / "ewarp.png").exists()
    report = (out / "report.md").read_text()
    ours, reference = report.split("## Reference: the paper's reported figures (not comparable)")
    assert "E_warp at window seams" in ours and "67.09" in reference and "67.09" not in ours
    assert any("FVD not computed" in n for n in results["notes"])
    assert "evaluation run" in result.stderr  # progress (plain lines: not a terminal)


def _sbs(left: Path, right: Path, out: Path) -> None:
    """Pack two videos side by side with the bundled ffmpeg (near lossless)."""
    from pipelines.convert.io import ffmpeg

    subprocess.run(
        [ffmpeg(), "-v", "error", "-y", "-i", str(left), "-i", str(right), "-filter_complex",
         "hstack", "-c:v", "libx264", "-qp", "0", "-pix_fmt", "yuv420p", str(out)],
        check=True,
    )  # fmt: skip


def test_stereo_benchmark_scores_methods_on_your_own_clips(tmp_path):
    """An L/R pair of files and one side-by-side file of a rendered scene with a real right
    view; sidecar depth next to each. The fitted warp must beat the unwarped left view."""
    from dvg.synthetic import write_clip
    from evaluation.metrics import psnr

    render = render_scene("slanted_fractional", seed=0, height=48, width=64, num_frames=8)
    clips = tmp_path / "clips"
    left = write_clip(render, clips / "files", "walk_L")
    right = write_clip(render, clips / "files", "walk_R", eye="right")
    right["depth"].unlink()  # only the left view's depth is needed
    _sbs(left["video"], right["video"], clips / "walk2_SBS.mp4")
    np.save(clips / "walk2_SBS.depth.npy", np.load(left["depth"]))  # one eye's size
    (clips / "notes.mp4").write_bytes(b"")  # not a stereo clip: skipped and said so

    out = tmp_path / "stereo"
    result = run(
        "--benchmark", "stereo", "--pairs", str(clips), "--out", str(out),
        "--methods", "oracle,warp-telea", "--depth-model", "sidecar", "--every", "3",
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    results = json.loads((out / "results.json").read_text())
    (row,) = results["summary"]
    assert (row["method"], row["offset"], row["n"]) == ("warp-telea", "stereo", 6)  # 2 x f0,3,6
    assert row["depth"] == "`sidecar`"
    pairs = {s["pair"] for s in results["samples"]}
    assert pairs == {f"{c}_f{i:06d}" for c in ("walk", "walk2") for i in (0, 3, 6)}

    def image(frame):
        return (frame.clamp(0, 1) * 255).round()[None] / 255

    unwarped = np.mean(
        [float(psnr(image(render.left[t]), image(render.right[t]))[0]) for t in (0, 3, 6)]
    )
    assert row["psnr"] > unwarped + 3, (row["psnr"], unwarped)
    notes = " ".join(results["notes"])
    assert "oracle: stereo has no ground-truth depth" in notes
    assert "notes.mp4" in notes and "walk (files)" in notes and "walk2 (sbs)" in notes
