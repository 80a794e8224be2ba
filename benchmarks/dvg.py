"""`dvg build` throughput: frames/s and where the time goes (decode, depth, geometry, inpaint,
flow, encode, write).

The offline preset (sidecar depth + OpenCV Telea + DIS) runs anywhere. The paper preset (DPT +
SD-2 inpainting + RAFT) is meant for a GPU: it builds the full-size architectures with random
weights (speed does not depend on the weights) and loads them through the same loaders a user's
checkpoints take; ``--model-size tiny`` runs the same path with test-size models anywhere.

    python -m benchmarks.dvg [--preset offline|paper] [--size 512x288[,512x512]] [--frames 48]
                             [--model-size paper|tiny] [--weights DIR] [--inpaint-steps N]
                             [--json results.json] [--write docs/benchmarks.md]

Each size is one build (one table row). On a GPU the row also gives frames/s without model
loading, the mean GPU utilisation during the build and the peak GPU memory. ``--json`` rewrites
the file after every row, so a run stopped by a time budget keeps its finished rows.
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

import torch

from benchmarks._report import header, row_error, update_section, write_json
from benchmarks.gpu.device import UtilisationMonitor, peak_memory_bytes, reset_peak_memory
from dvg.engine import apply_overrides, build, preset_config
from dvg.synthetic import render_scene, write_clip

STAGES = ("decode", "depth", "geometry", "inpaint", "flow", "encode", "write")


def make_inputs(folder: Path, width: int, height: int, frames: int, videos: int) -> None:
    """Rendered example-scene videos with sidecar depth (the offline preset needs it)."""
    for i in range(videos):
        render = render_scene("example", seed=i, height=height, width=width, num_frames=frames)
        write_clip(render, folder, f"example_{i}")


def paper_models(folder: Path, size: str = "paper") -> dict[str, dict]:
    """DPT-hybrid, SD-2-inpainting and RAFT-large with random weights in their real formats,
    written once into ``folder`` (reused when already there). ``size``: ``paper`` (the published
    architectures) or ``tiny`` (test-size DPT and SD and RAFT-small, for a CPU)."""
    from dvg.backends.random_weights import (
        save_random_dpt,
        save_random_raft,
        save_random_sd_inpaint,
    )

    tiny = size == "tiny"
    paths = {"depth": folder / "dpt", "inpaint": folder / "sd", "flow": folder / "raft-things.pth"}
    if not (paths["depth"] / "config.json").exists():
        _on_gpu_if_any(lambda: save_random_dpt(paths["depth"], tiny=tiny))
    if not (paths["inpaint"] / "model_index.json").exists():
        _on_gpu_if_any(lambda: save_random_sd_inpaint(paths["inpaint"], tiny=tiny))
    if not paths["flow"].exists():  # the backend infers the variant from the weights
        save_random_raft(paths["flow"], variant="small" if tiny else "large")
    return {kind: {"model": str(path)} for kind, path in paths.items()}


def _on_gpu_if_any(make) -> None:
    """Run ``make`` with tensors created on the GPU (random init of 1.3 B parameters takes a
    minute on a CPU, seconds on a GPU); on a CPU, or if that fails, on the CPU."""
    if torch.cuda.is_available():
        try:
            with torch.device("cuda"):
                make()
            return
        except Exception as error:  # a GPU-only failure must not lose the whole benchmark
            print(f"building random weights on the GPU failed ({error!r}); retrying on the CPU")
    make()


def run(
    preset: str,
    width: int,
    height: int,
    frames: int,
    videos: int,
    clip: int,
    models: dict[str, dict] | None = None,
    inpaint_steps: int | None = None,
) -> dict:
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        make_inputs(tmp / "raw", width, height, frames, videos)
        overrides = {
            "video": {"clip_length": clip, "short_side": min(width, height)},
            "output": {"videos_per_group": 1},
        }
        if preset == "paper":
            overrides.update(models or paper_models(tmp / "weights"))
            if inpaint_steps is not None:
                overrides["inpaint"] = {**overrides["inpaint"], "options": {"steps": inpaint_steps}}
        config = apply_overrides(preset_config(preset), overrides)
        reset_peak_memory()
        with UtilisationMonitor() as monitor:
            summary = build([tmp / "raw"], tmp / "shards", config, show_progress=False)
        size = sum(p.stat().st_size for p in (tmp / "shards").glob("*.tar"))
    stages = {s: summary.stage_seconds.get(s, 0.0) for s in STAGES}
    total = sum(stages.values())
    return {
        "width": width,
        "height": height,
        "frames": summary.frames_this_run,
        "seconds": summary.seconds,
        "fps": summary.frames_per_second,
        # The local executor runs the stages one after another, so their sum is the build
        # without model loading (and without the first video's probe).
        "fps_stages": summary.frames_this_run / total if total else 0.0,
        "stages": stages,
        "shares": {s: v / total if total else 0.0 for s, v in stages.items()},
        "bytes_per_frame": size / max(summary.frames_this_run, 1),
        "samples": summary.samples,
        "gpu_utilisation": monitor.mean,
        "peak_gpu_bytes": peak_memory_bytes(),
    }


def report(preset: str, results: list[dict]) -> str:
    gpu = torch.cuda.is_available()
    columns = "| input | frames | frames/s | frames/s without model loading |"
    if gpu:
        columns += " GPU utilisation | peak GPU memory |"
    columns += " decode | depth | geometry | inpaint | flow | encode | write | shard bytes/frame |"
    lines = [
        header(),
        f"Preset `{preset}`, {len(results)} input size(s), local executor, wall time including "
        "model loading.",
        "",
        columns,
        "|" + "---|" * (columns.count("|") - 1),
    ]
    for r in results:
        if "error" in r:
            lines.append(f"| {r['width']}x{r['height']} | failed: {r['error']} |")
            continue
        row = f"| {r['width']}x{r['height']} | {r['frames']} in {r['samples']} clips | "
        row += f"{r['fps']:.2f} | {r['fps_stages']:.2f} |"
        if gpu:
            util = r["gpu_utilisation"]
            row += f" {'n/a' if util is None else f'{util:.0f}%'} |"
            row += f" {r['peak_gpu_bytes'] / 2**30:.1f} GiB |"
        row += "".join(f" {100 * r['shares'][s]:.0f}% |" for s in STAGES)
        row += f" {r['bytes_per_frame'] / 1000:.0f} kB |"
        lines.append(row)
    lines += [
        "",
        "Shares are of the summed per-stage seconds (decode includes hashing the file; geometry is "
        "forward splatting, backward rendering and Eq. 2; encode is JPEG/PNG/npy compression; "
        "write is spooling and assembling the tar).",
    ]
    lines.append(
        "Frames/s without model loading divides by that sum (the local executor runs the stages "
        "one after another)."
        + (
            " GPU utilisation is NVML's busy fraction sampled every 0.5 s during the build; peak "
            "GPU memory is `torch.cuda.max_memory_allocated` (model weights included)."
            if gpu
            else ""
        )
    )
    return "\n".join(lines)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--preset", default="offline", choices=("offline", "paper"))
    parser.add_argument("--size", default="512x288", help="WxH of the input videos, or a list")
    parser.add_argument("--frames", type=int, default=48, help="frames per video")
    parser.add_argument("--videos", type=int, default=2)
    parser.add_argument("--clip", type=int, default=16, help="frames per clip")
    parser.add_argument("--model-size", default="paper", choices=("paper", "tiny"),
                        help="random-weight models of the paper preset")  # fmt: skip
    parser.add_argument("--weights", type=Path, help="write (or reuse) the random models here")
    parser.add_argument("--inpaint-steps", type=int, help="SD inpainting steps (default 25)")
    parser.add_argument("--json", type=Path, help="rewrite this JSON file after every row")
    parser.add_argument("--write", type=Path, help="update this markdown file")
    args = parser.parse_args(argv)
    try:
        args.sizes = [tuple(int(v) for v in s.split("x")) for s in args.size.split(",") if s]
    except ValueError:
        parser.error(f"--size takes WxH[,WxH...], got {args.size!r}")
    return args


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    results: list[dict] = []
    with tempfile.TemporaryDirectory() as tmp:
        models = None
        if args.preset == "paper":
            models = paper_models(args.weights or Path(tmp), args.model_size)
        for width, height in args.sizes:
            try:
                results.append(run(args.preset, width, height, args.frames, args.videos,
                                   args.clip, models, args.inpaint_steps))  # fmt: skip
            except Exception as error:  # e.g. out of memory: the next size may still run
                results.append({"width": width, "height": height, "error": row_error(error)})
            body = report(args.preset, results)
            if args.json:
                write_json(args.json, {"rows": results, "markdown": body})
    print(body)
    if args.write:
        device = "gpu" if args.preset == "paper" else "cpu"
        title = f"## dvg build, {args.preset} preset ({device})"
        update_section(args.write, f"dvg-{args.preset}-{device}", f"{title}\n\n{body}")
    if any("error" in r for r in results):
        raise SystemExit(1)


if __name__ == "__main__":
    main()
