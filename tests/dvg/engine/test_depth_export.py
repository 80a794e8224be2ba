"""`dvg depth`: a tiny random DPT saved in its real format writes compact sidecars that hold
what the model predicted, reruns skip finished videos, a killed video resumes at its missing
frames, and a bad video does not stop the others."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from dvg.backends import DEPTH_BACKENDS, BackendSpec, DepthContext, random_weights
from dvg.backends.depth_formats import DONE_FILE, frame_png_name, read_inverse_depth_png
from dvg.cli import app
from dvg.engine.depth_export import PROBE, DepthExportConfig, export_depth
from dvg.synthetic import render_scene, write_clip
from dvg.video import FrameTransform, probe_video
from dvg.video.decode import read_frames

FRAMES = 5


@pytest.fixture(scope="module")
def dpt(tmp_path_factory) -> Path:
    return random_weights.save_random_dpt(tmp_path_factory.mktemp("w") / "dpt")


@pytest.fixture(scope="module")
def rendered(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("render")
    folder = root / "raw"
    folder.mkdir()
    for name, seed in (("a", 0), ("b", 1)):
        render = render_scene("example", seed=seed, height=40, width=56, num_frames=FRAMES)
        written = write_clip(render, root, name)
        shutil.copy(written["video"], folder / f"{name}.mp4")
    return folder


@pytest.fixture
def raw(rendered, tmp_path) -> Path:
    """A folder with two rendered videos and no sidecars."""
    return Path(shutil.copytree(rendered, tmp_path / "raw"))


def _config(dpt: Path, **kwargs) -> DepthExportConfig:
    return DepthExportConfig(depth=BackendSpec("dpt", model=str(dpt), device="cpu"), **kwargs)


def test_sidecars_hold_the_models_prediction(raw, dpt, tmp_path):
    out = tmp_path / "depth"
    summary = export_depth([raw], out, _config(dpt), show_progress=False)
    assert sorted(p.name for p in summary.written) == ["a.mp4.invdepth", "b.mp4.invdepth"]
    assert summary.frames == 2 * FRAMES and not summary.failed
    folder = out / "a.mp4.invdepth"
    assert sorted(p.name for p in folder.iterdir()) == [
        *(frame_png_name(i) for i in range(FRAMES)),
        DONE_FILE,
    ]
    info = probe_video(raw / "a.mp4", PROBE)
    frames = np.stack([f.image for f in read_frames(info, [], info.size, None)])
    transform = FrameTransform(info.size, (0, 0, *info.size), info.size, info.size)
    backend = DEPTH_BACKENDS.create(BackendSpec("dpt", model=str(dpt), device="cpu"))
    context = DepthContext(str(raw / "a.mp4"), np.arange(FRAMES), transform)
    expected = backend.predict(frames, context).inverse_depth
    stored = np.stack([read_inverse_depth_png(folder / frame_png_name(i)) for i in range(FRAMES)])
    peak = expected.max(axis=(1, 2), keepdims=True)
    assert np.abs(stored - expected).max() <= (peak / 65535).max() * 1.01
    # 16-bit PNGs are far smaller than the float32 arrays they replace.
    png_bytes = sum(p.stat().st_size for p in folder.glob("*.png"))
    assert png_bytes < expected.nbytes / 2


def test_rerun_skips_and_a_killed_video_resumes_at_its_missing_frames(raw, dpt, tmp_path):
    out = tmp_path / "depth"
    export_depth([raw], out, _config(dpt), show_progress=False)
    folder = out / "a.mp4.invdepth"
    before = {p.name: p.stat().st_mtime_ns for p in folder.glob("*.png")}
    again = export_depth([raw], out, _config(dpt), show_progress=False)
    assert len(again.skipped) == 2 and not again.written
    # A kill after frame 2: the later frames and the done marker are missing.
    (folder / DONE_FILE).unlink()
    for i in (3, 4):
        (folder / frame_png_name(i)).unlink()
    os.utime(folder / frame_png_name(0), ns=(1, 1))  # kept frames must not be rewritten
    resumed = export_depth([raw], out, _config(dpt), show_progress=False)
    assert [p.name for p in resumed.written] == ["a.mp4.invdepth"] and len(resumed.skipped) == 1
    assert (folder / DONE_FILE).is_file()
    assert (folder / frame_png_name(0)).stat().st_mtime_ns == 1
    assert all((folder / frame_png_name(i)).is_file() for i in range(FRAMES))
    assert set(before) == {p.name for p in folder.glob("*.png")}


def test_a_broken_video_is_reported_and_the_others_are_written(raw, dpt, tmp_path):
    (raw / "c.mp4").write_bytes(b"not a video at all")
    summary = export_depth([raw], None, _config(dpt, max_side=16), show_progress=False)
    assert list(summary.failed) == [str(raw / "c.mp4")]
    assert {p.name for p in summary.written} == {"a.mp4.invdepth", "b.mp4.invdepth"}
    assert (raw / "a.mp4.invdepth" / DONE_FILE).is_file()  # next to the video without --out
    assert read_inverse_depth_png(raw / "a.mp4.invdepth" / frame_png_name(0)).shape == (11, 16)
    result = CliRunner().invoke(
        app, ["depth", "--videos", str(raw), "--depth-model", str(dpt), "--no-progress"]
    )
    assert result.exit_code == 1 and "c.mp4" in result.output


def test_clashing_stems_are_refused_before_any_work(raw, dpt, tmp_path):
    (raw / "sub").mkdir()
    shutil.copy(raw / "a.mp4", raw / "sub" / "a.mp4")
    out = tmp_path / "depth"
    with pytest.raises(ValueError, match=r"would both write .*a\.mp4\.invdepth"):
        export_depth([raw], out, _config(dpt), show_progress=False)
    assert not out.exists()
