"""`dvg build` over a folder of odd and hostile inputs next to good videos: link loops, a name
that is not UTF-8, a 255-byte name, same-stem containers, a malformed camera file, a pickled
sidecar, a FIFO, extreme frame rate and aspect ratio. The run finishes (exit 0), every good
video gives its samples once, and each bad one is one ledger row naming the problem."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest

from dvg.backends import sidecar_name
from dvg.shards import iter_clips, video_id_for

DVG = str(Path(sys.executable).parent / "dvg")
LATIN1 = os.fsdecode(b"caf\xe9")  # not valid UTF-8
LONG = "v" * 251  # + ".mp4" = 255 bytes, the file-name limit


def _copy_video(raw: Path, source: str, stem: str, ext: str = ".mp4", sidecar_base=None):
    """Copy ``source``'s video as ``stem + ext`` with its depth sidecar named after
    ``sidecar_base`` (default: the stem)."""
    shutil.copy(raw / f"{source}.mp4", raw / f"{stem}{ext}")
    depth = sidecar_name(sidecar_base or stem, ".depth.npy")
    shutil.copy(raw / f"{source}.depth.npy", raw / depth)


def _encode(path: Path, frames: np.ndarray, rate: float) -> None:
    import imageio_ffmpeg

    _, h, w, _ = frames.shape
    subprocess.run(
        [imageio_ffmpeg.get_ffmpeg_exe(), "-y", "-loglevel", "error", "-f", "rawvideo",
         "-pix_fmt", "rgb24", "-s", f"{w}x{h}", "-r", str(rate), "-i", "-", "-c:v", "ffv1",
         str(path)],
        input=frames.tobytes(), check=True,
    )  # fmt: skip


@pytest.fixture(scope="module")
def hostile_folder(raw_videos, tmp_path_factory) -> Path:
    raw = tmp_path_factory.mktemp("hostile")
    for path in raw_videos.glob("a_fronto.*"):
        shutil.copy(path, raw / path.name.replace("a_fronto", "good"))
    _copy_video(raw, "good", LATIN1)
    _copy_video(raw, "good", LONG)
    # same stem, each container with its own sidecar: both build
    _copy_video(raw, "good", "twin", ".mp4", sidecar_base="twin.mp4")
    _copy_video(raw, "good", "twin", ".mkv", sidecar_base="twin.mkv")
    # same stem, one shared stem sidecar: given to neither
    _copy_video(raw, "good", "pair", ".mp4")
    shutil.copy(raw / "pair.mp4", raw / "pair.mkv")
    _copy_video(raw, "good", "badcam")
    (raw / "badcam.camera.json").write_text('{"width": 96, "height": 64, "K": [[1, 0,')
    shutil.copy(raw / "good.mp4", raw / "pickled.mp4")
    (raw / "loop").symlink_to(".")  # a link to its own folder
    (raw / "sub").mkdir()
    (raw / "sub" / "up").symlink_to("..")
    os.mkfifo(raw / "pipe.mp4")
    _encode(raw / "fast.mkv", np.full((8, 64, 96, 3), 90, np.uint8), 1000)
    _encode(raw / "strip.mkv", np.full((4, 4096, 64, 3), 90, np.uint8), 12)
    return raw


def test_hostile_folder_builds_good_videos_once_and_ledgers_each_problem(
    hostile_folder, tmp_path, pickle_payload
):
    payload, marker = pickle_payload
    planted = np.empty((8, 64, 96), dtype=object)
    planted[0, 0, 0] = payload
    np.save(hostile_folder / "pickled.depth.npy", planted, allow_pickle=True)
    out = tmp_path / "shards"
    result = subprocess.run(
        [DVG, "build", "--preset", "offline", "--videos", str(hostile_folder), "--out", str(out),
         "--clip-length", "4", "--videos-per-group", "4", "--no-progress"],
        capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    rows = [r for p in sorted(out.glob("*.parquet")) for r in pq.read_table(p).to_pylist()]
    videos = {r["video"]: r for r in rows if r["row_type"] == "video"}
    latin1, long_name = "caf\\xe9.mp4", f"{LONG}.mp4"
    ok = {"good.mp4", latin1, long_name, "twin.mp4", "twin.mkv"}
    failed = {
        "pair.mp4": ("bad_sidecar", "pair.depth.npy: shared by pair.mp4 and pair.mkv"),
        "pair.mkv": ("bad_sidecar", "pair.depth.npy: shared by pair.mkv and pair.mp4"),
        "badcam.mp4": ("bad_sidecar", f"{hostile_folder}/badcam.camera.json: not a readable JSON"),
        "pickled.mp4": ("bad_sidecar", "pickled Python objects are never loaded"),
        "pipe.mp4": ("unreadable", "not a regular file (a FIFO)"),
        "fast.mkv": ("fps_out_of_range", "1000 fps is outside [1, 240]"),
        "strip.mkv": ("too_small", "aspect ratio 64.0:1"),
    }
    assert set(videos) == ok | set(failed), sorted(videos)  # the loops added nothing
    for name in ok:
        assert videos[name]["status"] == "ok", (name, videos[name]["message"])
        assert videos[name]["clips"] == 2
    for name, (reason, words) in failed.items():
        row = videos[name]
        assert (row["status"], row["reason"]) == ("failed", reason), (name, row["message"])
        assert words in row["message"], (name, row["message"])
    assert videos[latin1]["path"].endswith("/caf\\xe9.mp4")  # UTF-8 in parquet, bytes escaped
    assert not marker.exists()

    clips = list(iter_clips(out, fields=("mask",)))
    assert len(clips) == 2 * len(ok) and len({c["key"] for c in clips}) == len(clips)
    sources = {c["meta"]["source"]["path"] for c in clips}
    assert sources == ok
    assert {c["meta"]["video_id"] for c in clips} == {video_id_for(n) for n in ok}
    stats = [json.loads(p.read_text()) for p in sorted(out.glob("*_stats.json"))]
    assert sorted(v for s in stats for v in s["videos"]) == sorted(videos)
