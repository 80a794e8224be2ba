"""A folder holding every kind of bad input next to good videos: the run finishes, good videos
produce samples, each bad one has a ledger row with its reason, and the exit code is 0."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import imageio_ffmpeg
import numpy as np
import pyarrow.parquet as pq
import pytest

from dvg.synthetic import render_scene

DVG = str(Path(sys.executable).parent / "dvg")


def encode(path: Path, frames: np.ndarray, *, pix_fmt="rgb24", codec="ffv1", before=(), after=()):
    """Encode (F, H, W, 3) uint8 RGB frames with the bundled ffmpeg (any size, any options)."""
    _f, h, w, _ = frames.shape
    command = [
        imageio_ffmpeg.get_ffmpeg_exe(), "-y", "-loglevel", "error",
        "-f", "rawvideo", "-pix_fmt", "rgb24", "-s", f"{w}x{h}", "-r", "12", *before,
        "-i", "-", "-c:v", codec, "-pix_fmt", pix_fmt, *after, str(path),
    ]  # fmt: skip
    subprocess.run(command, input=frames.tobytes(), check=True)


def scene(height: int, width: int, frames: int = 8):
    """Rendered frames (F, H, W, 3) uint8 and z-depth (F, H, W) float32."""
    render = render_scene("fronto_integer", height=height, width=width, num_frames=frames)
    rgb = (render.left.clamp(0, 1) * 255).round().byte().permute(0, 2, 3, 1).numpy()
    return np.ascontiguousarray(rgb), render.depth[:, 0].numpy().astype(np.float32)


def good(folder: Path, name: str, height=64, width=96, frames=8, **options) -> None:
    rgb, depth = scene(height, width, frames)
    encode(folder / name, rgb, **options)
    np.save(folder / f"{Path(name).stem}.depth.npy", depth)


@pytest.fixture(scope="module")
def mixed_folder(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("mixed")
    tmp = tmp_path_factory.mktemp("scratch")
    good(folder, "good_a.mkv")
    good(folder, "good_b.mp4", codec="libx264", pix_fmt="yuv420p")
    # Handled, not refused: odd size, grayscale, rotated (phone video), variable frame rate.
    good(folder, "odd_size.mkv", height=67, width=101)
    good(folder, "grayscale.mkv", pix_fmt="gray")
    rgb, depth = scene(64, 96)
    encode(tmp / "stored.mp4", rgb, codec="libx264", pix_fmt="yuv420p")
    # A stream copy keeps the pixels landscape and adds a display matrix, like a phone does.
    subprocess.run(
        [imageio_ffmpeg.get_ffmpeg_exe(), "-y", "-loglevel", "error", "-display_rotation", "90",
         "-i", str(tmp / "stored.mp4"), "-c", "copy", str(folder / "rotated.mp4")],
        check=True,
    )  # fmt: skip
    np.save(folder / "rotated.depth.npy", np.ascontiguousarray(np.rot90(depth, 1, axes=(1, 2))))
    good(folder, "vfr.mkv", frames=10, after=(
        "-fps_mode", "vfr", "-vf", "setpts='if(lt(N,5),N*0.05,0.25+(N-5)*0.12)/TB'"))  # fmt: skip
    # Refused, each with a reason.
    (folder / "empty.mp4").write_bytes(b"")
    (folder / "notes.mp4").write_text("these are my notes, not a video\n")
    (folder / "noise.mkv").write_bytes(np.random.default_rng(0).bytes(4096))
    good(folder, "whole.mp4", frames=8, codec="libx264", pix_fmt="yuv420p")
    data = (folder / "whole.mp4").read_bytes()
    (folder / "truncated.mp4").write_bytes(data[: len(data) // 2])
    shutil.copy(folder / "whole.depth.npy", folder / "truncated.depth.npy")
    (folder / "whole.mp4").unlink()
    (folder / "whole.depth.npy").unlink()
    good(folder, "short.mkv", frames=2)
    good(folder, "tiny.mkv", height=32, width=48)
    encode(folder / "huge.mkv", np.zeros((1, 2200, 4200, 3), np.uint8))
    rgb, _ = scene(64, 96)
    encode(folder / "no_sidecar.mkv", rgb)
    return folder


def test_every_bad_input_is_a_ledger_row_and_the_run_succeeds(mixed_folder, tmp_path):
    out = tmp_path / "shards"
    result = subprocess.run(
        [DVG, "build", "--preset", "offline", "--videos", str(mixed_folder), "--out", str(out),
         "--clip-length", "4", "--videos-per-group", "4", "--no-progress"],
        capture_output=True, text=True,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    rows = [r for p in sorted(out.glob("*.parquet")) for r in pq.read_table(p).to_pylist()]
    videos = {Path(r["video"]).name: r for r in rows if r["row_type"] == "video"}
    assert len(videos) == 14, sorted(videos)

    for name in ("good_a.mkv", "good_b.mp4", "odd_size.mkv", "grayscale.mkv", "rotated.mp4",
                 "vfr.mkv"):  # fmt: skip
        row = videos[name]
        assert row["status"] == "ok", (name, row["reason"], row["message"])
        assert row["clips"] >= 2
    assert videos["odd_size.mkv"]["width"] % 8 == 0 and videos["odd_size.mkv"]["height"] % 8 == 0
    assert videos["rotated.mp4"]["height"] > videos["rotated.mp4"]["width"]
    assert "rotat" in (videos["rotated.mp4"]["notes"] or "")

    expected = {
        "empty.mp4": {"empty_file"},
        "notes.mp4": {"unreadable"},
        "noise.mkv": {"unreadable"},
        "truncated.mp4": {"unreadable", "truncated", "decode_error"},
        "short.mkv": {"too_short"},
        "tiny.mkv": {"too_small"},
        "huge.mkv": {"too_large"},
        "no_sidecar.mkv": {"missing_sidecar"},
    }
    for name, reasons in expected.items():
        row = videos[name]
        assert row["status"] in ("failed", "partial"), name
        assert row["reason"] in reasons, (name, row["reason"], row["message"])
        assert row["message"], name
    assert "summary" in result.stdout


def test_nothing_produced_is_exit_code_1(tmp_path):
    folder = tmp_path / "raw"
    folder.mkdir()
    (folder / "empty.mp4").write_bytes(b"")
    result = subprocess.run(
        [DVG, "build", "--preset", "offline", "--videos", str(folder), "--out",
         str(tmp_path / "out"), "--no-progress"],
        capture_output=True, text=True,
    )  # fmt: skip
    assert result.returncode == 1
    assert "no sample was produced" in result.stderr


def test_invalid_configuration_is_exit_code_2_before_any_work(tmp_path):
    folder = tmp_path / "raw"
    folder.mkdir()
    (folder / "a.mp4").write_bytes(b"")
    out = tmp_path / "out"
    result = subprocess.run(
        [DVG, "build", "--videos", str(folder), "--out", str(out), "--flow-model",
         str(tmp_path / "missing-raft.pth")],
        capture_output=True, text=True,
        env={**os.environ, "HF_HUB_OFFLINE": "1", "HF_HOME": str(tmp_path / "hf")},
    )  # fmt: skip
    assert result.returncode == 2
    assert "missing-raft.pth" in result.stderr or "dpt-hybrid-midas" in result.stderr
    assert not out.exists()
