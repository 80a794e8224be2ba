"""Shard bytes per frame: format v1 (float16 ``.npy`` disparity always) against format v2 (x~1
added, disparity off by default, 16-bit PNG when kept), on the same DVG clips.

One `dvg build --preset offline --keep-disparity` of rendered example-scene videos; every sample
is then re-encoded three ways and written as a tar: v2 as built, v2 without disparity (the
default), and v1 (the same JPEG/PNG members under v1 names, ``masked`` dropped, disparity as the
v1 float16 ``.npy``). The JPEG and mask bytes are the very same, so the differences are the
format's.

    python -m benchmarks.shard_bytes [--size 512x288] [--frames 32] [--write docs/benchmarks.md]
"""

from __future__ import annotations

import argparse
import io
import json
import tempfile
from pathlib import Path

import numpy as np

from benchmarks._report import header, update_section
from dvg.engine import apply_overrides, build, preset_config
from dvg.shards import decode_sample, iter_tar_samples, read_manifest, write_samples
from dvg.synthetic import render_scene, write_clip

V1_NAMES = {"source": "left", "novel": "right", "mask": "mask", "mask_raw": "mask_raw"}


def _tar_bytes(samples: list[dict]) -> int:
    buffer = io.BytesIO()
    write_samples(buffer, samples)
    return len(buffer.getvalue())


def _without(members: dict, field: str) -> dict:
    meta = json.loads(members["json"])
    meta["fields"] = [f for f in meta["fields"] if f != field]
    if field == "disparity":
        meta.pop("disparity_encoding", None)
    kept = {k: v for k, v in members.items() if not k.startswith(f"{field}.")}
    kept["json"] = json.dumps(meta, sort_keys=True, separators=(",", ":")).encode()
    return kept


def _as_v1(members: dict) -> dict:
    """The v1 encoding of the same sample: same image bytes, v1 names, float16 .npy disparity."""
    disparity = decode_sample(members, fields=("disparity",))["disparity"]
    meta = json.loads(members["json"])
    meta["format_version"] = 1
    for key in ("fields", "disparity_encoding"):
        meta.pop(key, None)
    out = {"__key__": members["__key__"]}
    out["json"] = json.dumps(meta, sort_keys=True, separators=(",", ":")).encode()
    for name, data in members.items():
        field, _, rest = name.partition(".")
        if field in V1_NAMES:
            out[f"{V1_NAMES[field]}.{rest}"] = data
    for t, frame in enumerate(disparity):
        stream = io.BytesIO()
        np.save(stream, frame.astype(np.float16), allow_pickle=False)
        out[f"disparity.{t:03d}.npy"] = stream.getvalue()
    return dict(sorted(out.items(), key=lambda kv: (kv[0] != "__key__", kv[0] != "json", kv[0])))


def measure(width: int, height: int, frames: int, videos: int) -> dict:
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        for i in range(videos):
            render = render_scene("example", seed=i, height=height, width=width, num_frames=frames)
            write_clip(render, tmp / "raw", f"example_{i}")
        config = apply_overrides(
            preset_config("offline"),
            {
                "video": {"clip_length": 16, "short_side": min(width, height)},
                "output": {"keep_disparity": True},
            },
        )
        build([tmp / "raw"], tmp / "shards", config, show_progress=False)
        entries, _ = read_manifest(tmp / "shards")
        samples = [s for e in entries for s in iter_tar_samples(tmp / "shards" / e.url)]
        samples = [{k: v for k, v in s.items() if k != "__url__"} for s in samples]
        total_frames = sum(json.loads(s["json"])["frames"] for s in samples)
        per_field: dict[str, int] = {}
        for s in samples:
            for name, data in s.items():
                if not name.startswith("__") and name != "json":
                    field = name.split(".")[0]
                    per_field[field] = per_field.get(field, 0) + len(data)
        return {
            "frames": total_frames,
            "v1": _tar_bytes([_as_v1(s) for s in samples]) / total_frames,
            "v2": _tar_bytes([_without(s, "disparity") for s in samples]) / total_frames,
            "v2_disparity": _tar_bytes(samples) / total_frames,
            "v1_npy_disparity": (height * width * 2 + 128) * 1.0,
            "fields": {k: v / total_frames for k, v in sorted(per_field.items())},
        }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", default="512x288", help="WIDTHxHEIGHT")
    parser.add_argument("--frames", type=int, default=32)
    parser.add_argument("--videos", type=int, default=2)
    parser.add_argument("--write", type=Path)
    args = parser.parse_args()
    width, height = (int(v) for v in args.size.split("x"))
    r = measure(width, height, args.frames, args.videos)
    kib = 1024
    rows = [
        ("v1 (left, right, mask, mask_raw, float16 .npy disparity)", r["v1"]),
        ("v2 default (source, novel, masked x~1, mask, mask_raw)", r["v2"]),
        ("v2 --keep-disparity (+ 16-bit PNG disparity)", r["v2_disparity"]),
    ]
    table = "| format | bytes/frame | vs v1 |\n|---|---|---|\n" + "".join(
        f"| {name} | {value / kib:.1f} KiB | {value / r['v1']:.2f}x |\n" for name, value in rows
    )
    members = ", ".join(f"{k} {v / kib:.1f} KiB" for k, v in r["fields"].items())
    body = (
        f"## Shard bytes per frame (format v1 vs v2)\n\n{header()}\n"
        f"{r['frames']} frames of the rendered example scene at {width}x{height}, DVG offline "
        "preset, JPEG quality 95; every sample re-encoded three ways from the same JPEG/PNG "
        "bytes (benchmarks/shard_bytes.py), tar headers included.\n\n"
        f"{table}\nv2 member sizes per frame: {members}. The float16 `.npy` disparity of v1 was "
        f"{r['v1_npy_disparity'] / kib:.1f} KiB per frame, "
        f"{r['v1_npy_disparity'] / r['v1']:.0%} of a v1 shard.\n"
    )
    print(body)
    if args.write:
        update_section(args.write, "shard-bytes", body)


if __name__ == "__main__":
    main()
