"""The README's path for a newcomer with their own video and no depth files: `dvg depth` with a
depth model (here a tiny random DPT saved in the transformers format), then `dvg build` and
`spatialdreamer convert` on the sidecars it wrote."""

from __future__ import annotations

import shutil

from typer.testing import CliRunner

from dvg.backends.random_weights import save_random_dpt
from dvg.cli import app as dvg
from dvg.shards import iter_clips
from pipelines.cli import app as spatialdreamer
from pipelines.convert.io import iter_frames, probe

H, W, FRAMES = 64, 96, 8


def test_depth_then_build_then_convert_on_a_video_without_sidecars(tmp_path):
    runner = CliRunner()
    rendered = tmp_path / "rendered"
    synth = ["synth", "example", "--out", str(rendered), "--frames", str(FRAMES)]
    assert runner.invoke(dvg, [*synth, "--height", str(H), "--width", str(W)]).exit_code == 0
    raw = tmp_path / "raw"
    raw.mkdir()
    shutil.copy(rendered / "example.mp4", raw / "trip.mp4")  # the video alone, no sidecars
    model = save_random_dpt(tmp_path / "weights" / "dpt")

    # Without depth, build says which sidecar is missing and how to make it.
    build = ["build", "--preset", "offline", "--videos", str(raw), "--clip-length", "4"]
    shards = tmp_path / "shards"
    result = runner.invoke(dvg, [*build, "--out", str(shards), "--no-progress"])
    assert result.exit_code == 1 and "dvg depth" in result.output

    depth = tmp_path / "depth"
    args = ["depth", "--videos", str(raw), "--out", str(depth), "--depth-model", str(model)]
    result = runner.invoke(dvg, [*args, "--no-progress"])
    assert result.exit_code == 0, result.output
    assert (depth / "trip.mp4.invdepth" / "depth.json").is_file()

    result = runner.invoke(  # into the same folder: it holds no sample, so it is rebuilt
        dvg, [*build, "--out", str(shards), "--depth-dir", str(depth), "--no-progress"]
    )
    assert result.exit_code == 0, result.output
    clips = list(iter_clips(shards, window=4))
    assert len(clips) == FRAMES // 4
    assert clips[0]["novel"].shape == (4, H, W, 3)

    stereo = tmp_path / "stereo"
    args = ["convert", str(raw / "trip.mp4"), "--out", str(stereo), "--depth", str(depth)]
    result = runner.invoke(spatialdreamer, [*args, "--encoder-preset", "ultrafast"])
    assert result.exit_code == 0, result.output
    frames = list(iter_frames(probe(stereo / "trip_LRF_Full_SBS.mp4")))
    assert len(frames) == FRAMES and frames[0].shape == (H, 2 * W, 3)
