"""`evaluation run --benchmark micro`: held-out rendered videos with exact depth, every method on
the same warp, labelled models side by side, hole and frame metrics, E_warp and seam E_warp."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest

from evaluation.benchmarks.micro import MicroConfig, micro_videos
from evaluation.methods import parse_models
from pipelines.model import ModelConfig, SpatialDreamerModel, save_tiny_sd, save_tiny_svd

EVALUATION = str(Path(sys.executable).parent / "evaluation")
SIZE, FRAMES = 32, 10


@pytest.fixture(scope="module")
def models(tmp_path_factory) -> dict[str, Path]:
    """Two tiny random models written as `trainer export` writes them: one without TIL (window
    8) and one with TIL over 4 frames (window 4)."""
    root = tmp_path_factory.mktemp("micro-models")
    svd, sd = save_tiny_svd(root / "svd"), save_tiny_sd(root / "sd", seed=1)
    plain = SpatialDreamerModel.from_components(ModelConfig(svd=str(svd), refiner=str(sd)))
    plain.save_pretrained(root / "plain")
    temporal = SpatialDreamerModel.from_components(
        ModelConfig(svd=str(svd), refiner=str(sd), til_frames=4)
    )
    temporal.enable_til()
    temporal.save_pretrained(root / "til")
    return {"plain": root / "plain", "til": root / "til"}


def test_micro_videos_are_warped_with_their_exact_depth():
    """Outside its holes the warped view is the exact right view up to resampling; the holes
    cover the right view's disocclusions."""
    (video,) = micro_videos(MicroConfig(size=SIZE, frames=3, scenes=("fronto_integer",),
                                        seeds=(1000,)))  # fmt: skip
    assert video.left.shape == video.right.shape == video.warped.shape == (3, SIZE, SIZE, 3)
    assert video.holes.shape == (3, SIZE, SIZE) and 0 < video.holes.mean() < 0.5
    assert (video.warped[video.holes] == 0).all()
    known = ~video.holes
    error = np.abs(video.warped.astype(int) - video.right.astype(int))[known]
    assert np.median(error) <= 2  # integer disparities: the warp lands on the exact pixels
    assert not np.array_equal(video.left, video.right)


def test_micro_report_compares_labelled_models_with_telea_and_the_oracles(models, tmp_path):
    out = tmp_path / "micro"
    result = subprocess.run(
        [EVALUATION, "run", "--benchmark", "micro", "--out", str(out), "--methods",
         "warp-telea,oracle,vae-oracle", "--model", f"plain={models['plain']}", "--model",
         f"til={models['til']}", "--resolution", str(SIZE), "--frames", str(FRAMES), "--seeds",
         "1000", "--steps", "1"],
        capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    results = json.loads((out / "results.json").read_text())
    rows = {r["method"]: r for r in results["summary"]}
    assert list(rows) == ["warp-telea", "oracle", "vae-oracle", "plain", "til"]  # as asked
    scenes = len(MicroConfig().scenes)
    for row in rows.values():
        assert row["depth"] == "ground truth, exact"
        assert (row["n_frames"], row["n_videos"]) == (scenes * FRAMES, scenes)
        assert 0 < row["n_hole_frames"] <= row["n_frames"]
        assert row["psnr_std"] > 0 and row["ewarp"] > 0
    assert rows["warp-telea"]["fill"] == "OpenCV Telea"
    assert rows["til"]["fill"] == f"SpatialDreamer `{models['til']}`"
    # The oracle differs from warp + Telea only in the holes, where it is exact.
    oracle, telea = rows["oracle"], rows["warp-telea"]
    assert oracle["psnr_hole_exact"] == oracle["n_hole_frames"]
    assert telea["psnr_hole_exact"] == 0 and np.isfinite(telea["psnr_hole"])
    assert oracle["psnr"] > telea["psnr"] and oracle["ssim_hole"] > telea["ssim_hole"]
    # The VAE oracle: the exact right view through the first labelled model's VAE (random here,
    # so far from exact), a ceiling with no sampling windows.
    vae = rows["vae-oracle"]
    assert vae["fill"] == f"real target pixels through the VAE of `{models['plain']}` (its ceiling)"
    assert vae["psnr_hole_exact"] == 0 and np.isfinite(vae["psnr_hole"])
    assert "ewarp_seams" not in vae and "window" not in vae
    # Seams: the windows of each model (8 without TIL, its 4 TIL frames with), none for per-frame
    # fillers.
    assert (rows["plain"]["window"], rows["til"]["window"]) == (8, 4)
    assert rows["plain"]["ewarp_seams"] > 0 and rows["til"]["ewarp_seams"] > 0
    assert "ewarp_seams" not in telea and "ewarp_seams" not in oracle
    assert results["config"]["ewarp_floor"]["ewarp"] > 0

    report = (out / "report.md").read_text()
    assert "| Method | Depth | Hole filler | n frames (videos) | PSNR↑ holes |" in report
    assert f"| oracle | ground truth, exact | real target pixels (ceiling) | {scenes * FRAMES} " \
           f"({scenes}) | exact (∞) |" in report  # fmt: skip
    assert "| til | ground truth, exact | SpatialDreamer" in report
    assert "Reference: the paper" not in report
    assert "vae-oracle: exact depth and the real target encoded and decoded" in report
    # Strips: left | warped | telea | vae-oracle | plain | til | exact right, 3x zoom, one row
    # per scene.
    strips = cv2.imread(str(out / "examples.png"))
    assert strips.shape[:2] == (min(MicroConfig().examples, scenes) * SIZE * 3, 7 * SIZE * 3)
    frames = [s for s in results["samples"] if s["method"] == "til" and "psnr_hole" in s]
    assert len(frames) == scenes * FRAMES


def test_model_labels(tmp_path):
    assert parse_models(["dir"]) == ("dir", ())
    assert parse_models(["a=x", "b=y/z=1"]) == (None, (("a", "x"), ("b", "y/z=1")))
    with pytest.raises(ValueError, match="one unlabelled DIR"):
        parse_models(["x", "y"])
    with pytest.raises(ValueError, match="labels must differ"):
        parse_models(["a=x", "a=y"])
    result = subprocess.run(
        [EVALUATION, "run", "--benchmark", "micro", "--out", str(tmp_path), "--model",
         "oracle=somewhere"],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert result.returncode == 2 and "other than oracle" in result.stderr
    result = subprocess.run(
        [EVALUATION, "run", "--benchmark", "synthetic", "--out", str(tmp_path), "--frames", "3"],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert (
        result.returncode == 2 and "--frames: options of the micro benchmark only" in result.stderr
    )
