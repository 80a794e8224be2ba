"""Training throughput: step time, samples/s and peak memory of `trainer fit`, and whether the
data loader keeps up (its samples/s alone against what a training step consumes).

    python -m benchmarks.train [--preset tiny] [--stage 1] [--steps 30] [--write docs/benchmarks.md]

Shards come from `dvg build --preset offline` on rendered scenes, so the benchmark runs anywhere.

    python -m benchmarks.train --random-model paper --rows 1:512,1:1024,2:512 [--steps 8]
                               [--batch-size N] [--components DIR] [--flops]
                               [--json results.json] [--write docs/benchmarks.md]

trains the paper preset (bf16, gradient checkpointing, its batch sizes) on randomly initialised
components of the paper's architecture (``benchmarks._models``: SVD-xt + SD2.1 for stage 1, an
exported model with TIL for stage 2), one row per ``stage:resolution``. ``--flops`` counts the
FLOPs of one training step with ``torch.utils.flop_counter.FlopCounterMode`` and gives the
model FLOPs utilisation against the device's peak bf16 rate (``benchmarks.gpu.device``).
``--random-model tiny`` runs the same code with the test-size model anywhere.
"""

from __future__ import annotations

import argparse
import gc
import json
import resource
import tempfile
import time
from dataclasses import replace
from pathlib import Path
from unittest import mock

import torch
from torch.utils.flop_counter import FlopCounterMode

from benchmarks._models import exported_model, random_components
from benchmarks._report import header, row_error, update_section, write_json
from benchmarks.gpu.device import (
    device_name,
    peak_bf16_tflops,
    peak_memory_bytes,
    reset_peak_memory,
)
from dvg.engine import apply_overrides as dvg_overrides
from dvg.engine import build
from dvg.engine import preset_config as dvg_preset
from dvg.synthetic import render_scene, write_clip
from trainer import loop
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


def random_model_config(
    model_size: str, components: Path, shards: Path, stage: int, resolution: int, steps: int,
    batch_size: int | None = None, num_workers: int | None = None,
):  # fmt: skip
    """The paper preset's stage settings on random components, through the config loader."""
    config = preset_config("paper", stage)
    if stage == 1:
        svd, sd = random_components(components, model_size)
        model = {"svd": str(svd), "refiner": str(sd)}
    else:
        model = {"init_from": str(exported_model(components, model_size))}
    data = {"shards": str(shards), "resolution": resolution}
    if batch_size is not None:
        data["batch_size"] = batch_size
    if num_workers is not None:
        data["num_workers"] = num_workers
    log_every = max(1, steps // 4)
    run = {"steps": steps, "log_every": log_every, "checkpoint_every": steps, "preview_every": 0}
    return apply_overrides(config, {"model": model, "data": data, "run": run})


def fit_without_checkpoints(config, run_dir: Path):
    """``fit``, minus its final checkpoint: at the paper's size that is the trainable weights
    and AdamW's state (tens of GB), written after the timed steps, which this benchmark does not
    measure and the GPU machine has no time or disk for."""
    with mock.patch.object(loop, "save_checkpoint", lambda *args, **kwargs: None):
        return fit(config, run_dir)


def step_flops(config, run_dir: Path) -> float:
    """Model FLOPs of one training step per sample: one step at batch 1 without gradient
    checkpointing (its recomputed forward is not model work) inside FlopCounterMode, which
    counts matmuls, convolutions and attention of the VAE and CLIP encoders, the U-Net and
    RefinerNet forward and backward."""
    one = apply_overrides(
        config,
        {
            "data": {"batch_size": 1},
            "run": {"steps": 1, "log_every": 1, "gradient_checkpointing": False},
        },
    )
    reset_peak_memory()  # the timed run's model, if a cycle still holds it
    with FlopCounterMode(display=False) as counter:
        fit_without_checkpoints(one, run_dir)
    return float(counter.get_total_flops())


def train_row(config, folder: Path, flops: bool) -> dict:
    """Step time, samples/s, peak memory (and FLOPs, MFU) of ``config``."""
    reset_peak_memory()
    fit_without_checkpoints(config, folder / "run")
    records = [json.loads(x) for x in (folder / "run" / "metrics.jsonl").read_text().splitlines()]
    steady = records[1:] or records  # the first interval includes start-up
    sps = sum(r["samples_per_second"] for r in steady) / len(steady)
    row = {
        "stage": config.stage,
        "resolution": config.data.resolution,
        "batch": config.data.batch_size,
        "frames": config.data.frames_per_sample,
        "steps": config.run.steps,
        "mixed_precision": config.run.mixed_precision,
        "gradient_checkpointing": config.run.gradient_checkpointing,
        "samples_per_second": sps,
        "step_seconds": config.data.batch_size / sps,
        "peak_gpu_bytes": peak_memory_bytes(),
        "peak_rss_bytes": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024,
    }
    row["loader_samples_per_second"] = loader_rate(config, batches=10)
    if flops:
        row["flops_per_sample"] = step_flops(config, folder / "flops")
        row["tflops_per_second"] = row["flops_per_sample"] * sps / 1e12
        peak = peak_bf16_tflops(device_name() or "")
        if peak is not None:
            row["peak_entry"], row["peak_tflops"] = peak
            row["mfu"] = row["tflops_per_second"] / peak[1]
    return row


def report_random_model(model_size: str, rows: list[dict]) -> str:
    model = (
        "paper-size architecture (SVD-xt U-Net 1.52 B + SD2.1 RefinerNet 0.87 B, CLIP ViT-H/14 "
        "and SVD VAE frozen; stage 2 adds TIL), random init"
        if model_size == "paper"
        else "test-size model (pipelines.model.tiny), random init"
    )
    lines = [
        header(),
        f"`trainer fit` with the paper preset's settings on the {model}; shards from "
        "`dvg build --preset offline` of rendered scenes, resized to the row's resolution by the "
        "data loader. Step time and samples/s are the mean over the logged intervals after the "
        "first (which includes start-up); the final checkpoint is not written.",
        "",
        "| stage | resolution | batch x frames | precision, checkpointing | step time | samples/s "
        "| peak GPU memory | model TFLOP/sample | achieved TFLOP/s | MFU | data loader samples/s |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        if "error" in r:
            lines.append(f"| {r['stage']} | {r['resolution']} | failed: {r['error']} |" + " |" * 8)
            continue
        gpu = r["peak_gpu_bytes"]
        flops, achieved, mfu = (r.get(k) for k in ("flops_per_sample", "tflops_per_second", "mfu"))
        cells = [
            str(r["stage"]),
            str(r["resolution"]),
            f"{r['batch']} x {r['frames']}",
            f"{r['mixed_precision']}, {'on' if r['gradient_checkpointing'] else 'off'}",
            f"{r['step_seconds'] * 1000:.0f} ms",
            f"{r['samples_per_second']:.2f}",
            "no GPU" if gpu is None else f"{gpu / 2**30:.1f} GiB",
            "n/a" if flops is None else f"{flops / 1e12:.3g}",
            "n/a" if achieved is None else f"{achieved:.3g}",
            "n/a" if mfu is None else f"{100 * mfu:.1f}%",
            f"{r['loader_samples_per_second']:.1f}",
        ]
        lines.append("| " + " | ".join(cells) + " |")
    peaks = {(r["peak_entry"], r["peak_tflops"]) for r in rows if "peak_entry" in r}
    lines += [
        "",
        "Model FLOPs are counted by `torch.utils.flop_counter.FlopCounterMode` over one step at "
        "batch 1 without gradient checkpointing (matmuls, convolutions, attention; forward and "
        "backward, frozen encoders included, checkpointing's recomputation not), times the "
        "samples/s. MFU divides by the dense bf16 peak of the device "
        + (
            ", ".join(f"{name}: {tflops} TFLOP/s" for name, tflops in sorted(peaks))
            if peaks
            else "(not in the table of benchmarks/gpu/device.py, so not given)"
        )
        + ".",
    ]
    return "\n".join(lines)


def run_random_model(args) -> None:
    rows: list[dict] = []
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        components = args.components or tmp / "models"
        shards = make_shards(tmp, videos=2)
        for index, (stage, resolution) in enumerate(args.row_list):
            try:
                config = random_model_config(
                    args.random_model, components, shards, stage, resolution, args.steps,
                    args.batch_size, args.num_workers,
                )  # fmt: skip
                rows.append(train_row(config, tmp / f"row{index}", args.flops))
            except Exception as error:  # e.g. out of memory: the next row may still run
                rows.append({"stage": stage, "resolution": resolution, "error": row_error(error)})
            gc.collect()
            body = report_random_model(args.random_model, rows)
            if args.json:
                write_json(args.json, {"rows": rows, "markdown": body})
    print(body)
    if args.write:
        device = "gpu" if torch.cuda.is_available() else "cpu"
        title = f"## trainer fit, {args.random_model}-size architecture ({device})"
        update_section(args.write, f"train-{args.random_model}-{device}", f"{title}\n\n{body}")
    if any("error" in row for row in rows):
        raise SystemExit(1)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--preset", default="tiny")
    parser.add_argument("--stage", type=int, default=1)
    parser.add_argument("--steps", type=int, default=30)
    parser.add_argument("--write", type=Path)
    parser.add_argument(
        "--random-model",
        choices=("paper", "tiny"),
        help="train the paper preset on random components of this size",
    )
    parser.add_argument("--rows", default="1:512,1:1024,2:512", help="stage:resolution rows")
    parser.add_argument("--batch-size", type=int, help="default: the paper preset's")
    parser.add_argument("--num-workers", type=int, help="data-loader workers (default: preset's)")
    parser.add_argument("--components", type=Path, help="write (or reuse) the random models here")
    parser.add_argument("--flops", action="store_true", help="count FLOPs, give the MFU")
    parser.add_argument("--json", type=Path, help="rewrite this JSON file after every row")
    args = parser.parse_args(argv)
    try:
        args.row_list = [tuple(int(v) for v in r.split(":")) for r in args.rows.split(",") if r]
    except ValueError:
        parser.error(f"--rows takes stage:resolution[,...], got {args.rows!r}")
    if any(len(r) != 2 or r[0] not in (1, 2) for r in args.row_list):
        parser.error(f"--rows takes stage:resolution with stage 1 or 2, got {args.rows!r}")
    return args


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    if args.random_model:
        run_random_model(args)
        return
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
