"""What convert's outputs tell players and what its options guard: stereo signalling (H.264
frame-packing SEI, the mp4 st3d box) read back with the bundled ffmpeg, the source's pixel
aspect, trimming and frame-rate caps on exact native frames, hints in convert's own flags,
--preset misuse, and a folder run that resumes after a kill."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from dataclasses import replace
from pathlib import Path

import imageio_ffmpeg
import numpy as np
import pytest
from typer.testing import CliRunner

from dvg.synthetic import render_scene, write_clip
from pipelines.cli import app
from pipelines.convert import ConvertConfig, convert, stream_summary
from pipelines.convert.io import iter_frames, probe

H, W, FRAMES = 64, 96, 12
FFMPEG = imageio_ffmpeg.get_ffmpeg_exe()


@pytest.fixture(scope="module")
def clip(tmp_path_factory) -> Path:
    """A rendered clip with its exact depth sidecar next to it."""
    root = tmp_path_factory.mktemp("outputs")
    render = render_scene("example", seed=0, height=H, width=W, num_frames=FRAMES)
    return write_clip(render, root, "clip")["video"]


def _ffmpeg(*args: str) -> str:
    cmd = [FFMPEG, "-hide_banner", "-nostdin", *args]
    return subprocess.run(cmd, capture_output=True, text=True, check=False).stderr


def frame_packing_types(path: Path) -> set[int]:
    """H.264 frame_packing_arrangement_type of every SEI in ``path`` (ffmpeg's trace_headers)."""
    log = _ffmpeg("-i", str(path), "-c", "copy", "-bsf:v", "trace_headers", "-f", "null", "-")
    return {int(v) for v in re.findall(r"frame_packing_arrangement_type\s+\d+ = (\d+)", log)}


def st3d_mode(path: Path) -> int | None:
    """The stereo_mode byte of the spatial-media st3d box inside the video sample entry
    (moov/trak/mdia/minf/stbl/stsd/avc1), walking the mp4 box tree; None when absent."""
    data = path.read_bytes()

    def boxes(start: int, end: int):
        while start + 8 <= end:
            size = int.from_bytes(data[start : start + 4], "big")
            kind = data[start + 4 : start + 8].decode("latin-1")
            if size == 1:
                size = int.from_bytes(data[start + 8 : start + 16], "big")
            if size < 8:
                return
            yield kind, start, start + size
            start += size

    def find(start: int, end: int, route: list[str]) -> tuple[int, int] | None:
        for kind, b0, b1 in boxes(start, end):
            if kind != route[0]:
                continue
            header = {"stsd": 16, "avc1": 8 + 78}.get(kind, 8)  # full box / sample entry
            if len(route) == 1:
                return b0, b1
            found = find(b0 + header, b1, route[1:])
            if found:
                return found
        return None

    route = ["moov", "trak", "mdia", "minf", "stbl", "stsd", "avc1", "st3d"]
    found = find(0, len(data), route)
    return None if found is None else data[found[0] + 12]


@pytest.mark.parametrize(
    ("layout", "sei", "st3d"),
    [("full-sbs", 3, 2), ("half-sbs", 3, 2), ("full-tb", 4, 1), ("half-tb", 4, 1)],
)
def test_packed_layouts_carry_frame_packing_sei_and_st3d(clip, tmp_path, layout, sei, st3d):
    both = ConvertConfig(
        depth=str(clip.parent), layout=layout, encoder_preset="ultrafast", stereo_signal="both"
    )
    result = convert(clip, tmp_path, both)
    assert frame_packing_types(result.path) == {sei}
    assert st3d_mode(result.path) == st3d
    mkv = convert(clip, tmp_path / "o.mkv", both).path
    assert frame_packing_types(mkv) == {sei}
    assert ("left_right" if sei == 3 else "top_bottom") in _ffmpeg("-i", str(mkv))
    # The bundled ffmpeg cannot decode the packing signalled twice unless told (dvg.video does).
    for path in (result.path, mkv):
        assert len(list(iter_frames(probe(path)))) == FRAMES
    assert "Invalid argument" in _ffmpeg("-i", str(result.path), "-f", "null", "-")
    # The default signals in the container only, which every ffmpeg decodes; sei only in the
    # stream.
    default = convert(clip, tmp_path / "d.mp4", replace(both, stereo_signal="container")).path
    assert st3d_mode(default) == st3d and frame_packing_types(default) == set()
    assert "Invalid argument" not in _ffmpeg("-i", str(default), "-f", "null", "-")
    only_sei = convert(clip, tmp_path / "s.mp4", replace(both, stereo_signal="sei")).path
    assert st3d_mode(only_sei) is None and frame_packing_types(only_sei) == {sei}
    assert ConvertConfig().stereo_signal == "container"


def test_mono_compatible_layouts_carry_no_stereo_signal(clip, tmp_path):
    config = ConvertConfig(depth=str(clip.parent), layout="anaglyph", encoder_preset="ultrafast")
    result = convert(clip, tmp_path, config)
    assert frame_packing_types(result.path) == set() and st3d_mode(result.path) is None


def test_the_source_pixel_aspect_is_kept(clip, tmp_path):
    source = tmp_path / "clip.mp4"
    _ffmpeg("-i", str(clip), "-vf", "setsar=4/3", "-c:v", "libx264", str(source))
    os.link(clip.with_name("clip.depth.npy"), tmp_path / "clip.depth.npy")
    assert probe(source).sar == (4, 3)
    for layout in ("full-sbs", "half-tb"):
        result = convert(
            source, tmp_path / "out", ConvertConfig(depth=str(tmp_path), layout=layout)
        )
        assert any("SAR 4:3" in s for s in stream_summary(result.path))


def test_start_end_and_max_fps_select_exact_native_frames(clip, tmp_path):
    info = probe(clip)
    native: list[int] = []
    frames = list(iter_frames(info, start=0.25, end=0.75, max_fps=info.fps / 2, native=native))
    times = np.arange(FRAMES) / info.fps  # constant-rate render
    kept = [k for k in range(FRAMES) if 0.25 - 1e-6 <= times[k] < 0.75 - 1e-6]
    assert native == kept[::2] and len(frames) == len(native)
    all_frames = list(iter_frames(info))
    for index, frame in zip(native, frames, strict=True):
        assert np.array_equal(frame, all_frames[index])
    config = ConvertConfig(depth=str(clip.parent), start=0.25, end=0.75, max_fps=info.fps / 2)
    result = convert(clip, tmp_path, config)
    assert result.frames == len(native)
    assert result.video_fps == pytest.approx(info.fps / 2)
    with pytest.raises(ValueError, match="no frame between"):
        convert(clip, tmp_path / "late.mp4", ConvertConfig(depth=str(clip.parent), start=60))


def test_preset_misuse_is_impossible(clip, tmp_path):
    result = CliRunner().invoke(
        app, ["convert", str(clip), "--out", str(tmp_path), "--preset", "offline"]
    )
    assert result.exit_code == 2 and "--encoder-preset" in result.output
    assert "--depth PATH" in result.output and not list(tmp_path.iterdir())
    with pytest.raises(ValueError, match="x264 speed preset"):
        ConvertConfig(encoder_preset="offline")
    result = CliRunner().invoke(
        app, ["convert", str(clip), "--out", str(tmp_path), "--encoder-preset", "offline"]
    )
    assert result.exit_code == 2 and "ultrafast" in result.output


def test_hints_name_converts_own_flags(clip, tmp_path):
    empty = tmp_path / "nodepth"
    empty.mkdir()
    runner = CliRunner()
    args = ["convert", str(clip), "--out", str(tmp_path)]
    result = runner.invoke(app, [*args, "--depth", str(empty)])
    assert result.exit_code == 2
    assert "dvg depth --videos" in result.output and "--depth DIR" in result.output
    assert "dvg build" not in result.output
    missing = str(tmp_path / "no-such-model")
    result = runner.invoke(app, [*args, "--depth-model", missing])
    assert result.exit_code == 2 and missing in result.output
    assert "--depth PATH" in result.output and "--preset offline" not in result.output
    assert "--depth sidecar" not in result.output
    # Both missing models in one message, before any decoding.
    no_sd = str(tmp_path / "no-such-inpainter")
    result = runner.invoke(
        app, [*args, "--depth-model", missing, "--inpaint", "sd", "--inpaint-model", no_sd]
    )
    assert result.exit_code == 2 and "2 models are missing" in result.output
    assert missing in result.output and no_sd in result.output
    assert "--inpaint telea" in result.output


KILL_SCRIPT = """
import sys
from pipelines.cli import app
sys.argv = ["spatialdreamer", "convert", sys.argv[1], "--out", sys.argv[2], "--depth", sys.argv[3],
            "--encoder-preset", "ultrafast", "--no-progress"]
app()
"""


def test_folder_convert_skips_finished_outputs_and_resumes_after_a_kill(clip, tmp_path):
    raw, depth, out = tmp_path / "raw", tmp_path / "depth", tmp_path / "out"
    (raw / "sub").mkdir(parents=True)
    depth.mkdir()
    sidecar = np.load(clip.with_name("clip.depth.npy"))
    # "a" is short; "b" is long enough to be cut by the kill; "c" sits in a sub-folder.
    loops = {"a": 0, "b": 24, "c": 0}
    for name, loop in loops.items():
        target = raw / ("sub" if name == "c" else "") / f"{name}.mp4"
        _ffmpeg("-stream_loop", str(loop), "-i", str(clip), "-c", "copy", str(target))
        np.save(depth / f"{name}.depth.npy", np.concatenate([sidecar] * (loop + 1)))
    first = out / "a_LRF_Full_SBS.mp4"
    cmd = [sys.executable, "-c", KILL_SCRIPT, str(raw), str(out), str(depth)]
    process = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 300
        while not first.exists() and process.poll() is None and time.monotonic() < deadline:
            time.sleep(0.05)
        assert first.exists(), "the first video was never finished"
        partial = out / "b_LRF_Full_SBS.partial.mkv"
        while not partial.exists() and process.poll() is None:
            time.sleep(0.05)
        assert process.poll() is None, "the run ended before the kill"
        process.send_signal(signal.SIGKILL)
    finally:
        process.kill()
        process.wait()
    assert not (out / "b_LRF_Full_SBS.mp4").exists()
    finished = first.stat().st_mtime_ns
    result = CliRunner().invoke(
        app, ["convert", str(raw), "--out", str(out), "--depth", str(depth), "--no-progress"]
    )
    assert result.exit_code == 0, result.output
    assert "2 converted, 1 already there, 0 failed" in result.output
    assert first.stat().st_mtime_ns == finished
    outputs = sorted(p.relative_to(out).as_posix() for p in out.rglob("*") if p.is_file())
    assert outputs == ["a_LRF_Full_SBS.mp4", "b_LRF_Full_SBS.mp4", "sub/c_LRF_Full_SBS.mp4"]
    assert len(list(iter_frames(probe(out / "b_LRF_Full_SBS.mp4")))) == FRAMES * 25
