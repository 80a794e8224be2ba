"""`dvg build` throughput: frames/s and where the time goes (decode, depth, geometry, inpaint,
flow, encode, write), against an older revision and across torch thread counts.

The offline preset (sidecar depth + OpenCV Telea + DIS) runs anywhere. The paper preset (DPT +
SD-2 inpainting + RAFT) is meant for a GPU: it builds the full-size architectures with random
weights (speed does not depend on the weights) in a temporary folder and loads them through the
same loaders a user's checkpoints take.

Every build runs in a fresh process on the same rendered input videos; the variants (this
checkout, ``--baseline REV``'s code extracted with ``git archive``, each ``--threads`` count,
each ``--load`` of busy background processes) are interleaved round by round, so their ratios
hold on a machine other people are using.

    python -m benchmarks.dvg_speedup [--preset offline|paper] [--size 512x288] [--frames 48]
                             [--baseline 04e083b] [--threads 1] [--load 0] [--rounds 3]
                             [--write docs/benchmarks.md]
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import textwrap
from dataclasses import dataclass
from pathlib import Path

from benchmarks._report import header, update_section
from benchmarks._runs import (
    ROOT,
    background_load,
    checkout,
    interleaved,
    load_average,
    revision_name,
    run_python,
    temporary_folder,
)
from benchmarks.dvg import make_inputs, paper_models

STAGES = ("decode", "depth", "geometry", "inpaint", "flow", "encode", "write")

# Runs in the code tree being measured: only APIs that older revisions also have.
BUILD = textwrap.dedent(
    """
    import json, sys, torch
    from dataclasses import fields
    from dvg.engine import apply_overrides, build, preset_config
    from dvg.engine.config import ExecutorConfig
    raw, out, preset, overrides = sys.argv[1], sys.argv[2], sys.argv[3], json.loads(sys.argv[4])
    if "threads" in {f.name for f in fields(ExecutorConfig)}:  # keep the pinned thread count
        overrides["executor"] = {"threads": torch.get_num_threads()}
    config = apply_overrides(preset_config(preset), overrides)
    summary = build([raw], out, config, show_progress=False)
    print(json.dumps({
        "frames": summary.frames_this_run,
        "seconds": summary.seconds,
        "samples": summary.samples,
        "stages": summary.stage_seconds,
    }))
    """
)


@dataclass(frozen=True)
class Variant:
    code: str  # "this checkout" or a short commit hash
    threads: int
    load: int

    @property
    def name(self) -> str:
        return f"{self.code}, {self.threads} thread(s), load {self.load}"


def run(
    preset: str,
    width: int,
    height: int,
    frames: int,
    videos: int,
    clip: int,
    *,
    baseline: str | None = None,
    threads: tuple[int, ...] = (1,),
    loads: tuple[int, ...] = (0,),
    rounds: int = 3,
) -> dict:
    """Median figures per variant: {variant name: {"variant", "fps", "stages", "shares", ...}}."""
    with temporary_folder() as tmp:
        tmp = Path(tmp)
        make_inputs(tmp / "raw", width, height, frames, videos)
        overrides = {
            "video": {"clip_length": clip, "short_side": min(width, height)},
            "output": {"videos_per_group": 1},
        }
        if preset == "paper":
            overrides.update(paper_models(tmp / "weights"))
        trees = {"this checkout": ROOT}
        if baseline is not None:
            trees[revision_name(baseline)] = checkout(baseline, tmp / "baseline")
        # This checkout at every thread count and load; an older revision at every thread
        # count (its default was torch's: one per core) without added load.
        chosen = [Variant("this checkout", t, load) for t in threads for load in loads]
        chosen += [Variant(code, t, loads[0]) for code in list(trees)[1:] for t in threads]
        variants = {v.name: v for v in chosen}

        def measure(name: str) -> dict:
            variant = variants[name]
            out = tmp / "shards"
            shutil.rmtree(out, ignore_errors=True)
            args = [str(tmp / "raw"), str(out), preset, json.dumps(overrides)]
            with background_load(variant.load):
                result = run_python(BUILD, args, tree=trees[variant.code], threads=variant.threads)
            result["bytes"] = sum(p.stat().st_size for p in out.glob("*.tar"))
            return result

        load_before = load_average()
        runs = interleaved(list(variants), rounds, measure)
    results = {}
    for name, reports in runs.items():
        fps = [r["frames"] / r["seconds"] for r in reports]
        stages = {s: statistics.median(r["stages"].get(s, 0.0) for r in reports) for s in STAGES}
        total = sum(stages.values())
        results[name] = {
            "variant": variants[name],
            "fps": statistics.median(fps),
            "fps_all": fps,
            "stages": stages,
            "shares": {s: v / total for s, v in stages.items()},
            "frames": reports[0]["frames"],
            "samples": reports[0]["samples"],
            "bytes_per_frame": reports[0]["bytes"] / max(reports[0]["frames"], 1),
        }
    return {"results": results, "rounds": rounds, "load_before": load_before}


def report(preset: str, width: int, height: int, measured: dict) -> str:
    results = measured["results"]
    first = next(iter(results.values()))
    lines = [
        header(),
        f"Preset `{preset}`, {width}x{height} input, {first['frames']} frames in "
        f"{first['samples']} clips, local executor, wall time of `build` in a fresh process "
        f"(model loading included). Median of {measured['rounds']} interleaved rounds per row; "
        "`load` is the number of busy background processes started for the row (other "
        f"engineers' processes also shared the 2 cores: 1-minute load average "
        f"{measured['load_before']} before the run), so compare rows as ratios.",
        "",
        "| code | torch threads | load | frames/s | vs first row | decode | depth | geometry "
        "| inpaint | flow | encode | write | shard bytes/frame |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    reference = first["fps"]
    for r in results.values():
        v = r["variant"]
        shares = " | ".join(f"{100 * r['shares'][s]:.0f}%" for s in STAGES)
        lines.append(
            f"| {v.code} | {v.threads} | {v.load} | {r['fps']:.2f} | {r['fps'] / reference:.2f}x "
            f"| {shares} | {r['bytes_per_frame'] / 1000:.0f} kB |"
        )
    lines += [
        "",
        "Shares are of the summed per-stage seconds (decode includes hashing the file; geometry is "
        "disparity, forward splatting, backward rendering and Eq. 2; encode is JPEG/PNG/npy "
        "compression; write is spooling and assembling the tar).",
    ]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--preset", default="offline", choices=("offline", "paper"))
    parser.add_argument("--size", default="512x288", help="WxH of the input videos")
    parser.add_argument("--frames", type=int, default=48, help="frames per video")
    parser.add_argument("--videos", type=int, default=2)
    parser.add_argument("--clip", type=int, default=16, help="frames per clip")
    parser.add_argument("--baseline", help="also measure this git revision's code")
    parser.add_argument("--threads", default="1", help="torch thread counts, e.g. 1,2")
    parser.add_argument("--load", default="0", help="busy background processes, e.g. 0,2")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--section", help="section name in the markdown file")
    parser.add_argument("--write", type=Path, help="update this markdown file")
    args = parser.parse_args()
    width, height = (int(v) for v in args.size.split("x"))
    threads = tuple(int(v) for v in args.threads.split(","))
    loads = tuple(int(v) for v in args.load.split(","))
    measured = run(
        args.preset,
        width,
        height,
        args.frames,
        args.videos,
        args.clip,
        baseline=args.baseline,
        threads=threads,
        loads=loads,
        rounds=args.rounds,
    )
    body = report(args.preset, width, height, measured)
    print(body)
    if args.write:
        device = "gpu" if args.preset == "paper" else "cpu"
        section = args.section or f"dvg-speedup-{args.preset}-{device}"
        title = f"## dvg build, {args.preset} preset ({device})"
        update_section(args.write, section, f"{title}\n\n{body}")


if __name__ == "__main__":
    main()
