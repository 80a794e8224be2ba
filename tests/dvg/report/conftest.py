"""A tiny `dvg build` output folder written through the real shard, ledger and manifest code.

Group 000000 holds two 4-frame 64x96 clips of video a.mp4 (known rectangular masks, a disparity
ramp), a failed video b.mp4 (reason "unreadable") and a video c.mp4 whose only clip failed
(reason "dvg_error"); 000001.tar has no done marker (an interrupted group).
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest

from dvg.shards import ClipSample, encode_sample, make_key, shard_entry, video_id_for, write_samples

FRAMES, HEIGHT, WIDTH = 4, 64, 96
# (top, bottom, left, right) of each clip's occlusion mask M; mask_raw adds a 2-px border.
MASK_BOXES = ((10, 30, 20, 50), (40, 60, 60, 80))
SECONDS = {
    "decode": 1.0,
    "write": 0.5,
    "depth": 2.0,
    "geometry": 0.25,
    "inpaint": 0.25,
    "flow": 0.5,
    "encode": 0.5,
}


@dataclass(frozen=True)
class TinyOutput:
    out_dir: Path
    tar: Path
    samples: tuple[ClipSample, ...]
    clip_rows: tuple[dict, ...]  # the ok clip rows, with the statistics put in the ledger
    frames: int = FRAMES
    seconds: dict | None = None  # the stage seconds of the done marker


def make_clip(key: str, box: tuple[int, int, int, int], frames: int, height: int, width: int):
    """A clip with a green/grey pattern (never magenta), a box mask and a left-to-right ramp."""
    y, x = np.mgrid[0:height, 0:width]
    left = np.stack([40 + x % 64, 120 + (y * 2) % 100, 60 + 0 * x], axis=-1).astype(np.uint8)
    left = np.repeat(left[None], frames, axis=0)
    right = np.roll(left, -3, axis=2)
    mask = np.zeros((frames, height, width), dtype=bool)
    mask_raw = np.zeros_like(mask)
    top, bottom, x0, x1 = box
    mask[:, top:bottom, x0:x1] = True
    mask_raw[:, max(top - 2, 0) : bottom + 2, max(x0 - 2, 0) : x1 + 2] = True
    ramp = np.linspace(0.0, 8.0, width, dtype=np.float32)
    disparity = np.broadcast_to(ramp, (frames, height, width)).astype(np.float32)
    masked = np.roll(left, 2, axis=2) * ~mask[..., None]  # x~1: not x1, and 0 in M
    meta = {"fps": 12.0, "stereo": {"virtual_eye": "left"}}
    return ClipSample(key, left, right, masked, mask, mask_raw, disparity, meta)


def write_tar(path: Path, samples) -> None:
    with path.open("wb") as handle:
        write_samples(handle, [encode_sample(s) for s in samples])


@pytest.fixture
def tiny_output(tmp_path: Path) -> TinyOutput:
    from dvg.engine.ledger import clip_row, to_table, video_row
    from dvg.engine.output import rebuild_manifest

    out = tmp_path / "shards"
    out.mkdir()
    video_a = video_id_for("a.mp4")
    samples = tuple(
        make_clip(make_key(video_a, 0, i), box, FRAMES, HEIGHT, WIDTH)
        for i, box in enumerate(MASK_BOXES)
    )
    tar = out / "000000.tar"
    write_tar(tar, samples)

    clip_rows = tuple(
        clip_row(
            video="a.mp4",
            video_id=video_a,
            key=s.key,
            status="ok",
            scene=0,
            clip=i,
            frames=FRAMES,
            width=WIDTH,
            height=HEIGHT,
            fps=12.0,
            baseline=0.06,
            max_disparity_px=8.0 + i,
            disparity_min=float(s.disparity.min()),
            disparity_max=float(s.disparity.max()),
            disparity_mean_abs=float(np.abs(s.disparity.astype(np.float32)).mean()) + i,
            mask_coverage=float(s.mask.mean()),
            mask_raw_coverage=float(s.mask_raw.mean()),
            hole_coverage=0.05 * (i + 1),
            deviation_mean=0.01 * (i + 1),
            seconds=2.0,
            timings={"depth": 1.0, "geometry": 0.125},
        )
        for i, s in enumerate(samples)
    )
    video_c = video_id_for("c.mp4")
    rows = [
        *clip_rows,
        video_row(video="a.mp4", video_id=video_a, status="ok", clips=2, frames=2 * FRAMES),
        video_row(
            video="b.mp4",
            video_id=video_id_for("b.mp4"),
            status="failed",
            reason="unreadable",
            message="moov atom not found",
            clips=0,
            frames=0,
        ),
        video_row(
            video="c.mp4",
            video_id=video_c,
            status="failed",
            reason="dvg_error",
            message="RuntimeError: out of memory",
            clips=0,
            frames=0,
        ),
        clip_row(
            video="c.mp4",
            video_id=video_c,
            key=make_key(video_c, 0, 0),
            status="failed",
            reason="dvg_error",
            message="RuntimeError: out of memory",
            scene=0,
            clip=0,
            frames=FRAMES,
        ),
    ]
    pq.write_table(to_table(rows), out / "000000.parquet")

    entry = shard_entry(tar, len(samples))
    stats = {
        "group": "000000",
        "videos": ["a.mp4", "b.mp4", "c.mp4"],
        "videos_ok": 1,
        "videos_partial": 0,
        "videos_failed": 2,
        "samples": len(samples),
        "clips_failed": 1,
        "frames": len(samples) * FRAMES,
        "failures_by_reason": {"dvg_error": 2, "unreadable": 1},
        "seconds": SECONDS,
        "tar": {
            "url": entry.url,
            "nsamples": entry.nsamples,
            "filesize": entry.filesize,
            "md5sum": entry.md5sum,
        },
    }
    (out / "000000_stats.json").write_text(json.dumps(stats))
    rebuild_manifest(out)
    (out / "000001.tar").write_bytes(b"\0" * 512)  # a group cut short: no done marker
    return TinyOutput(out, tar, samples, clip_rows, seconds=SECONDS)


@pytest.fixture
def odd_tar(tmp_path: Path) -> Path:
    """A single-sample shard of one 3-frame 33x47 clip (odd sizes, for the mp4 padding)."""
    tar = tmp_path / "odd.tar"
    write_tar(tar, [make_clip(make_key("odd", 0, 0), (3, 9, 4, 20), 3, 33, 47)])
    return tar


@pytest.fixture
def no_disparity_tar(tmp_path: Path) -> Path:
    """A single-sample shard built without --keep-disparity (no disparity members)."""
    tar = tmp_path / "plain.tar"
    sample = make_clip(make_key("plain", 0, 0), (10, 30, 20, 50), 2, HEIGHT, WIDTH)
    write_tar(tar, [dataclasses.replace(sample, disparity=None)])
    return tar
