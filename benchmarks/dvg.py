"""`dvg build` throughput: frames/s and where the time goes (decode, depth, geometry, inpaint,
flow, encode, write).

The offline preset (sidecar depth + OpenCV Telea + DIS) runs anywhere. The paper preset (DPT +
SD-2 inpainting + RAFT) is meant for a GPU: it builds the full-size architectures with random
weights (speed does not depend on the weights) in a temporary folder and loads them through the
same loaders a user's checkpoints take.

    python -m benchmarks.dvg [--preset offline|paper] [--size 512x288] [--frames 48]
                                [--write docs/benchmarks.md]
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

from benchmarks._report import header, update_section
from dvg.engine import apply_overrides, build, preset_config
from dvg.synthetic import render_scene, write_clip

STAGES = ("decode", "depth", "geometry", "inpaint", "flow", "encode", "write")


def make_inputs(folder: Path, width: int, height: int, frames: int, videos: int) -> None:
    """Rendered example-scene videos with sidecar depth (the offline preset needs it)."""
    for i in range(videos):
        render = render_scene("example", seed=i, height=height, width=width, num_frames=frames)
        write_clip(render, folder, f"example_{i}")


def paper_models(folder: Path) -> dict[str, dict]:
    """Full-size random-weight DPT-hybrid, SD-2-inpainting and RAFT-large in their real formats."""
    from dvg.backends.random_weights import (
        save_random_dpt,
        save_random_raft,
        save_random_sd_inpaint,
    )

    return {
        "depth": {"model": str(save_random_dpt(folder / "dpt", tiny=False))},
        "inpaint": {"model": str(save_random_sd_inpaint(folder / "sd", tiny=False))},
        "flow": {"model": str(save_random_raft(folder / "raft-things.pth", variant="large"))},
    }


def run(preset: str, width: int, height: int, frames: int, videos: int, clip: int) -> dict:
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        make_inputs(tmp / "raw", width, height, frames, videos)
        overrides = {
            "video": {"clip_length": clip, "short_side": min(width, height)},
            "output": {"videos_per_group": 1},
        }
        if preset == "paper":
            overrides.update(paper_models(tmp / "weights"))
        config = apply_overrides(preset_config(preset), overrides)
        summary = build([tmp / "raw"], tmp / "shards", config, show_progress=False)
        size = sum(p.stat().st_size for p in (tmp / "shards").glob("*.tar"))
    stages = {s: summary.stage_seconds.get(s, 0.0) for s in STAGES}
    total = sum(stages.values())
    return {
        "frames": summary.frames_this_run,
        "seconds": summary.seconds,
        "fps": summary.frames_per_second,
        "stages": stages,
        "shares": {s: v / total for s, v in stages.items()},
        "bytes_per_frame": size / max(summary.frames_this_run, 1),
        "samples": summary.samples,
    }


def report(preset: str, width: int, height: int, result: dict) -> str:
    lines = [
        header(),
        f"Preset `{preset}`, {width}x{height} input, {result['frames']} frames in "
        f"{result['samples']} clips, local executor, wall time including model loading.",
        "",
        "| frames/s | decode | depth | geometry | inpaint | flow | encode | write | "
        "shard bytes/frame |",
        "|---|---|---|---|---|---|---|---|---|",
        "| {:.2f} | {} | {:.0f} kB |".format(
            result["fps"],
            " | ".join(f"{100 * result['shares'][s]:.0f}%" for s in STAGES),
            result["bytes_per_frame"] / 1000,
        ),
        "",
        "Shares are of the summed per-stage seconds (decode includes hashing the file; geometry is "
        "forward splatting, backward rendering and Eq. 2; encode is JPEG/PNG/npy compression; "
        "write is spooling and assembling the tar).",
    ]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--preset", default="offline", choices=("offline", "paper"))
    parser.add_argument("--size", default="512x288", help="WxH of the input videos")
    parser.add_argument("--frames", type=int, default=48, help="frames per video")
    parser.add_argument("--videos", type=int, default=2)
    parser.add_argument("--clip", type=int, default=16, help="frames per clip")
    parser.add_argument("--write", type=Path, help="update this markdown file")
    args = parser.parse_args()
    width, height = (int(v) for v in args.size.split("x"))
    result = run(args.preset, width, height, args.frames, args.videos, args.clip)
    body = report(args.preset, width, height, result)
    print(body)
    if args.write:
        device = "gpu" if args.preset == "paper" else "cpu"
        title = f"## dvg build, {args.preset} preset ({device})"
        update_section(args.write, f"dvg-{args.preset}-{device}", f"{title}\n\n{body}")


if __name__ == "__main__":
    main()
