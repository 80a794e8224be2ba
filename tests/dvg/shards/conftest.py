"""Tiny DVG clips for the shard-format tests (H != W so a transposed decode fails)."""

from __future__ import annotations

import io
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
import pytest

from dvg.shards import ClipSample, ShardEntry, encode_sample, shard_entry, write_samples

NUM_FRAMES, HEIGHT, WIDTH = 5, 24, 40


def _clip_sample(
    key: str, seed: int = 0, num_frames: int = NUM_FRAMES, height: int = HEIGHT, width: int = WIDTH
) -> ClipSample:
    """A smooth, moving, JPEG-friendly clip with per-frame masks, x~1 and disparity."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:height, 0:width].astype(np.float32)
    left, right = [], []
    for t in range(num_frames):
        phase = rng.uniform(0, 2 * np.pi, size=3)
        channels = [
            127 + 100 * np.sin(x / (5 + c) + y / (7 + c) + phase[c] + 0.3 * t) for c in range(3)
        ]
        frame = np.stack(channels, axis=-1)
        left.append(frame)
        right.append(np.roll(frame, -2, axis=1) * 0.9 + 10)
    disparity = rng.uniform(-3, 12, size=(num_frames, height, width)).astype(np.float32)
    mask_raw = rng.random((num_frames, height, width)) < 0.2
    mask = mask_raw | (rng.random((num_frames, height, width)) < 0.1)
    novel = np.clip(np.stack(right), 0, 255).astype(np.uint8)
    masked = np.roll(novel, 2, axis=2) * ~mask[..., None]
    meta = {
        "video_id": key.split("_")[0],
        "scene": 0,
        "clip": seed,
        "fps": 24.0,
        "source": {"path": f"videos/{seed}.mp4", "sha256": "ab" * 32, "size_bytes": 1234},
        "stereo": {
            "mode": "fixed",
            "baseline": 0.05,
            "max_disparity_px": 12.0,
            "virtual_eye": "left",
        },
        "models": {"depth": {"backend": "midas", "model": "tiny"}},
        "config_hash": "c0ffee",
        "code_version": "0.1.0",
    }
    return ClipSample(
        key=key,
        source=np.clip(np.stack(left), 0, 255).astype(np.uint8),
        novel=novel,
        masked=masked,
        mask=mask,
        mask_raw=mask_raw,
        disparity=disparity,
        meta=meta,
    )


def _write_tar(path: Path, samples: Sequence[ClipSample], **encode_kwargs) -> bytes:
    """Encode ``samples`` into the tar at ``path``; return the tar bytes."""
    buf = io.BytesIO()
    write_samples(buf, (encode_sample(s, **encode_kwargs) for s in samples))
    path.write_bytes(buf.getvalue())
    return buf.getvalue()


@pytest.fixture
def make_clip() -> Callable[..., ClipSample]:
    """``make_clip(key, seed=0, num_frames=5, height=24, width=40)`` -> ClipSample."""
    return _clip_sample


@pytest.fixture
def write_tar() -> Callable[..., bytes]:
    """``write_tar(path, samples, **encode_kwargs)`` -> the tar bytes, also written to ``path``."""
    return _write_tar


@pytest.fixture
def make_shards(tmp_path: Path) -> Callable[..., tuple[Path, list[ClipSample], list[ShardEntry]]]:
    """Write ``num_shards`` shards of ``per_shard`` clips to tmp_path/shards (no manifest yet)."""

    def make(num_shards: int = 2, per_shard: int = 2, **encode_kwargs):
        out = tmp_path / "shards"
        out.mkdir(exist_ok=True)
        samples, entries = [], []
        for s in range(num_shards):
            shard = [
                _clip_sample(f"{s:04x}abcd_s000_c{i:04d}", seed=s * 100 + i)
                for i in range(per_shard)
            ]
            path = out / f"{s:06d}.tar"
            _write_tar(path, shard, **encode_kwargs)
            entries.append(shard_entry(path, len(shard)))
            samples.extend(shard)
        return out, samples, entries

    return make
