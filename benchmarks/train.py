"""Training throughput: step time, samples/s and peak memory of `trainer fit`, and whether the
data loader keeps up (its samples/s alone against what a training step consumes).

    python -m benchmarks.train [--preset tiny] [--stage 1] [--steps 30] [--write docs/benchmarks.md]

Shards come from `dvg build --preset offline` on rendered scenes, so the benchmark runs anywhere.
"""

from __future__ import annotations

import argparse
import json
import resource
import tempfile
import time
from dataclasses import replace
from pathlib import Path

import torch

from benchmarks._report import header, update_section
from dvg.engine import apply_overrides as dvg_overrides
from dvg.engine import build
from dvg.engine import preset_config as dvg_preset
from dvg.synthetic import render_scene, write_clip
from trainer.config import apply_overrides, preset_config
from trainer.data import make_loader
from trainer.loop import fit


def make_shards(folder: Path, videos: int = 4) -> Path:
    for i in range(videos):
        scene = ("moving_objects", "boxes_orbit")[i % 2]
        render = render_scene(scene, seed=i, height=96, width=128, num_frames=16)
        write_clip(render, folder / "raw", f"video{i}")
    config = dvg_overrides(
        dvg_preset("offline"), {"video": {"clip_length": 8}, "output": {"videos_per_group": 1}}
    )
    build([folder / "raw"], folder / "shards", config, show_progress=False)
    return folder / "shards"


def loader_rate(config, batches: int = 40) -> float:
    """Samples/s of the data loader alone (decode, crop, collate), after one warm-up batch."""
    iterator = iter(make_loader(config.data))
    next(iterator)
    start = time.perf_counter()
    for _ in range(batches):
        next(iterator)
    return batches * config.data.batch_size / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--preset", default="tiny")
    parser.add_argument("--stage", type=int, default=1)
    parser.add_argument("--steps", type=int, default=30)
    parser.add_argument("--write", type=Path)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        shards = make_shards(tmp)
        config = apply_overrides(
            preset_config(args.preset, args.stage),
            {
                "data": {"shards": str(shards)},
                "run": {"steps": args.steps, "log_every": 10, "checkpoint_every": args.steps,
                        "preview_every": 0},
            },
        )  # fmt: skip
        if args.stage == 2:
            stage1 = replace(preset_config(args.preset, 1), data=config.data)
            stage1 = apply_overrides(stage1, {"run": {"steps": 1, "preview_every": 0}})
            fit(stage1, tmp / "stage1")
            config = apply_overrides(config, {"model": {"init_from": str(tmp / "stage1")}})
        if torch.cuda.is_available():
            torch.cuda.reset_peak_memory_stats()
        fit(config, tmp / "run")
        records = [json.loads(x) for x in (tmp / "run" / "metrics.jsonl").read_text().splitlines()]
        steady = records[1:] or records  # the first interval includes start-up
        sps = sum(r["samples_per_second"] for r in steady) / len(steady)
        data_sps = loader_rate(config)
    if torch.cuda.is_available():
        peak = f"{torch.cuda.max_memory_allocated() / 2**30:.2f} GiB GPU"
    else:
        peak = f"{resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20:.2f} GiB RSS"
    batch = config.data.batch_size
    frames = config.data.frames_per_sample
    body = "\n".join(
        [
            header(),
            f"Preset `{args.preset}`, stage {args.stage}: batch {batch} x {frames} frame(s) at "
            f"{config.data.resolution}x{config.data.resolution}, {args.steps} steps, "
            f"mixed precision `{config.run.mixed_precision}`.",
            "",
            "| step time | samples/s (training) | samples/s (data loader alone) | peak memory |",
            "|---|---|---|---|",
            f"| {batch / sps * 1000:.0f} ms | {sps:.2f} | {data_sps:.1f} | {peak} |",
            "",
            f"The data loader delivers {data_sps / sps:.0f}x what a step consumes, so training "
            "is compute-bound here.",
        ]
    )
    print(body)
    if args.write:
        name = f"train-{args.preset}-stage{args.stage}"
        title = f"## trainer fit, {args.preset} preset, stage {args.stage}"
        update_section(args.write, name, f"{title}\n\n{body}")


if __name__ == "__main__":
    main()
