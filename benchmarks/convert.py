"""`spatialdreamer convert` speed and memory: frames/s and peak RSS of ``warp-inpaint``.

A short clip of the ``example`` scene is rendered by ``dvg.synthetic`` at a quarter of the
target size and upscaled with ffmpeg (rendering 1080p directly is slow); its exact depth is
upscaled into a ``clip.depth/`` sidecar (16-bit PNGs), so the default run needs no weights.
Each measurement runs ``convert`` in a fresh process that reports its own peak RSS
(``VmHWM`` of /proc/self/status, not ``ru_maxrss``: Linux carries the forking parent's RSS
over ``exec`` into ``ru_maxrss``; ffmpeg's decoder and encoder are separate processes, not
included). Longer
videos for the memory-vs-length rows loop the clip.

    python -m benchmarks.convert [--size 1920x1080] [--frames 24] [--lengths 24,72,216]
                                 [--layout full-sbs] [--preset medium] [--dpt]
                                 [--write docs/benchmarks.md]

``--dpt`` adds a row with a full-size random-weight DPT-hybrid (MiDaS architecture) loaded
through the real loader: depth on this CPU takes seconds per 1080p frame, so it is off by
default.

    python -m benchmarks.convert --spatialdreamer [--model-size paper] [--widths 512,1024]
                                 [--frames 16] [--steps 25] [--write docs/benchmarks.md]

measures the ``spatialdreamer`` method instead: an exported model with the paper's architecture
(SVD-xt U-Net + SD2.1 RefinerNet + TIL, random weights, ``pipelines.model.paper_size``) converts
16:9 clips of each width with and without the memory controls (float32; float16; float16 +
model CPU offload + 2-frame VAE decode chunks; the same + 512-pixel U-Net tiles), reporting
frames/s and peak GPU memory (``torch.cuda.max_memory_allocated``, weights included). It needs
a GPU to run at a useful speed; ``--model-size tiny`` runs the same code with the test-size
model anywhere.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path

import cv2
import imageio_ffmpeg
import numpy as np
import torch

from benchmarks._report import header, update_section
from benchmarks._runs import (
    ROOT,
    background_load,
    checkout,
    interleaved,
    revision_name,
    run_python,
    temporary_folder,
)

MEASURE = textwrap.dedent(
    """
    import json, sys, torch
    from dataclasses import fields
    from pipelines.convert import ConvertConfig, convert
    video, out, settings = sys.argv[1], sys.argv[2], json.loads(sys.argv[3])
    if "threads" in {f.name for f in fields(ConvertConfig)}:  # keep the pinned thread count
        settings.setdefault("threads", torch.get_num_threads())
    result = convert(video, out, ConvertConfig(**settings))
    status = open("/proc/self/status").read().split("VmHWM:")[1]
    import torch
    gpu = torch.cuda.max_memory_allocated() if torch.cuda.is_available() else None
    print(json.dumps({
        "frames": result.frames,
        "seconds": result.seconds,
        "fps": result.fps,
        "peak_rss": int(status.split()[0]) * 1024,
        "peak_gpu": gpu,
    }))
    """
)

BUILD_MODEL = textwrap.dedent(
    """
    import sys, tempfile, torch
    from pathlib import Path
    from pipelines.model import ModelConfig, SpatialDreamerModel, save_tiny_sd, save_tiny_svd
    from pipelines.model.paper_size import save_paper_sd, save_paper_svd
    out, size = Path(sys.argv[1]), sys.argv[2]
    device = "cuda" if torch.cuda.is_available() else "cpu"
    with tempfile.TemporaryDirectory() as tmp:
        if size == "paper":
            svd = save_paper_svd(Path(tmp) / "svd", device=device)
            sd = save_paper_sd(Path(tmp) / "sd", seed=1, device=device)
        else:
            svd, sd = save_tiny_svd(Path(tmp) / "svd"), save_tiny_sd(Path(tmp) / "sd", seed=1)
        config = ModelConfig(svd=str(svd), refiner=str(sd), til=True)
        SpatialDreamerModel.from_components(config).save_pretrained(out)
    """
)

# (row name, ConvertConfig settings) of the SpatialDreamer rows: without and with the controls.
PIPELINE_SETTINGS = [
    ("float32", {"dtype": "float32"}),
    ("float16", {"dtype": "float16"}),
    ("float16 + CPU offload + VAE decode chunks of 2",
     {"dtype": "float16", "offload": True, "decode_chunk_size": 2}),
    ("float16 + CPU offload + VAE decode chunks of 2 + 512-pixel U-Net tiles",
     {"dtype": "float16", "offload": True, "decode_chunk_size": 2, "tile_size": 512}),
]  # fmt: skip


def make_clip(folder: Path, width: int, height: int, frames: int, length: int) -> Path:
    """``clip.mp4`` of ``length`` frames at ``width`` x ``height`` (a rendered clip of
    ``frames`` frames, looped) and its ``clip.depth.npy`` sidecar at the same size."""
    from dvg.synthetic import render_scene, write_clip

    folder.mkdir(parents=True, exist_ok=True)
    small_w, small_h = 2 * (width // 8), 2 * (height // 8)
    render = render_scene("example", seed=0, height=small_h, width=small_w, num_frames=frames)
    paths = write_clip(render, folder / "small", "clip")
    video = folder / "clip.mp4"
    cmd = [imageio_ffmpeg.get_ffmpeg_exe(), "-hide_banner", "-loglevel", "error", "-y"]
    cmd += ["-stream_loop", "-1", "-i", str(paths["video"]), "-frames:v", str(length)]
    cmd += ["-vf", f"scale={width}:{height}:flags=bicubic", "-c:v", "libx264", "-crf", "16"]
    cmd += ["-preset", "veryfast", "-pix_fmt", "yuv420p", str(video)]
    subprocess.run(cmd, check=True)
    # Depth as 16-bit PNGs in millimetres (a sidecar format): a float .npy of a long 1080p
    # video would take gigabytes of disk.
    small_depth = np.load(paths["depth"])
    pngs = folder / "clip.depth"
    pngs.mkdir()
    for i in range(length):
        z = cv2.resize(small_depth[i % frames], (width, height), interpolation=cv2.INTER_LINEAR)
        millimetres = np.clip(np.rint(z * 1000), 1, 65535).astype(np.uint16)
        cv2.imwrite(str(pngs / f"{i:06d}.png"), millimetres, [cv2.IMWRITE_PNG_COMPRESSION, 1])
    return video


def measure(video: Path, out: Path, settings: dict, mmap_threshold: bool = False) -> dict:
    """Run one conversion in a fresh process; its report as a dict. ``mmap_threshold`` makes
    glibc mmap blocks over 64 KiB (returned to the system at free), so RSS tracks live memory."""
    env = {"MALLOC_MMAP_THRESHOLD_": "65536"} if mmap_threshold else {}
    stdout = run_script(MEASURE, [str(video), str(out), json.dumps(settings)], env,
                        f"conversion of {video}")  # fmt: skip
    return json.loads(stdout.strip().splitlines()[-1])


def run_script(script: str, args: list[str], env: dict[str, str], what: str) -> str:
    """Run ``script`` in a fresh Python process with this checkout importable; its stdout."""
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1]), **env}
    run = subprocess.run(
        [sys.executable, "-c", script, *args], capture_output=True, text=True, env=env, check=False
    )
    if run.returncode != 0:
        raise RuntimeError(f"{what} failed:\n{run.stderr[-3000:]}")
    return run.stdout


def make_model(folder: Path, size: str) -> Path:
    """An exported SpatialDreamer model folder with random weights (``size``: ``paper`` or
    ``tiny``), written by a fresh process so the GPU it used is released."""
    run_script(BUILD_MODEL, [str(folder), size], {}, f"building the {size} model")
    return folder


def run_spatialdreamer(
    widths: list[int], frames: int, steps: int, size: str, layout: str, preset: str
) -> list[tuple[int, int, str, dict]]:
    """(width, height, setting, report) for every width and PIPELINE_SETTINGS row."""
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        model = make_model(tmp / "model", size)
        for width in widths:
            height = 8 * round(width * 9 / 16 / 8)
            video = make_clip(tmp / f"w{width}", width, height, frames, frames)
            base = {
                "method": "spatialdreamer",
                "model": str(model),
                "steps": steps,
                "depth": str(video.parent),
                "layout": layout,
                "preset": preset,
            }
            for name, settings in PIPELINE_SETTINGS:
                report = measure(video, tmp / "out", {**base, **settings})
                rows.append((width, height, name, report))
    return rows


def report_spatialdreamer(
    rows: list[tuple[int, int, str, dict]], frames: int, steps: int, size: str
) -> str:
    gib = 2**30
    model = (
        "paper-size architecture (SVD-xt U-Net 1.52 B + SD2.1 RefinerNet 0.87 B + TIL, CLIP "
        "ViT-H/14, SVD VAE), random weights"
        if size == "paper"
        else "test-size model (pipelines.model.tiny), random weights"
    )
    lines = [
        header(),
        f"`spatialdreamer` method, {model}; {frames}-frame 16:9 clips with exact depth "
        f"sidecars, {steps} Euler steps, windows of 8 overlapping by 2, decode context 4; wall "
        "time of `convert` in a fresh process (model loading, warp and encoding included).",
        "",
        "| input | setting | frames/s | s/frame | peak GPU memory | peak RSS |",
        "|---|---|---|---|---|---|",
    ]
    for width, height, name, r in rows:
        gpu = f"{r['peak_gpu'] / gib:.1f} GiB" if r.get("peak_gpu") is not None else "no GPU"
        lines.append(
            f"| {width}x{height} | {name} | {r['fps']:.3f} | {1 / r['fps']:.1f} | {gpu} | "
            f"{r['peak_rss'] / gib:.1f} GiB |"
        )
    return "\n".join(lines)


PAIRS_HASH = textwrap.dedent(
    """
    import hashlib, json, sys
    from pipelines.convert import ConvertConfig, compose, iter_stereo_pairs
    video, settings = sys.argv[1], json.loads(sys.argv[2])
    digest, frames = hashlib.sha256(), 0
    for left, right in iter_stereo_pairs(video, ConvertConfig(**settings)):
        digest.update(compose(settings["layout"], left, right).tobytes())
        frames += 1
    print(json.dumps({"sha256": digest.hexdigest(), "frames": frames}))
    """
)

STACK = {"full-sbs": "hstack", "full-tb": "vstack"}


def ffmpeg_floor(video: Path, out: Path, layout: str, crf: int, preset: str) -> float:
    """Seconds ffmpeg alone takes to decode ``video``, put the frame beside (or above) itself
    and encode it with the converter's x264 settings: no Python, no depth, no warp."""
    stack = STACK.get(layout)
    graph = f"[0:v]split[a][b];[a][b]{stack}" if stack else "[0:v]null"
    cmd = [imageio_ffmpeg.get_ffmpeg_exe(), "-hide_banner", "-nostdin", "-y", "-loglevel"]
    cmd += ["error", "-i", str(video), "-filter_complex", graph, "-an", "-c:v", "libx264"]
    cmd += ["-crf", str(crf), "-preset", preset, "-pix_fmt", "yuv420p", "-movflags"]
    cmd += ["+faststart", str(out)]
    start = time.perf_counter()
    subprocess.run(cmd, check=True)
    return time.perf_counter() - start


def run(
    width: int,
    height: int,
    frames: int,
    lengths: list[int],
    layout: str,
    preset: str,
    dpt: bool,
    *,
    baseline: str | None = None,
    threads: tuple[int, ...] = (1,),
    loads: tuple[int, ...] = (0,),
    rounds: int = 3,
) -> dict:
    results: dict = {"speed": {}, "memory": [], "identical": None, "rounds": rounds}
    with temporary_folder() as tmp:
        tmp = Path(tmp)
        base = {"layout": layout, "preset": preset}
        video = make_clip(tmp / "speed", width, height, frames, frames)
        sidecar = {**base, "depth": str(video.parent)}
        trees = {"this checkout": ROOT}
        if baseline is not None:
            trees[revision_name(baseline)] = checkout(baseline, tmp / "baseline")
        # (name, code or "ffmpeg", torch threads, background load)
        variants = [("ffmpeg", "ffmpeg", 0, load) for load in loads]
        variants += [("this checkout", "this checkout", t, load) for t in threads for load in loads]
        variants += [(code, code, threads[0], loads[0]) for code in list(trees)[1:]]
        named = {f"{name}, {t} thread(s), load {load}": (code, t, load)
                 for name, code, t, load in variants}  # fmt: skip

        def measure_variant(name: str) -> dict:
            code, t, load = named[name]
            with background_load(load):
                if code == "ffmpeg":
                    return {"seconds": ffmpeg_floor(video, tmp / "floor.mp4", layout, 18, preset)}
                args = [str(video), str(tmp / "out"), json.dumps(sidecar)]
                return run_python(MEASURE, args, tree=trees[code], threads=t, what=code)

        runs = interleaved(list(named), rounds, measure_variant)
        for name, reports in runs.items():
            code, t, load = named[name]
            seconds = statistics.median(r["seconds"] for r in reports)
            peak = max((r.get("peak_rss", 0) for r in reports), default=0)
            results["speed"][name] = {"code": code, "threads": t, "load": load,
                                      "seconds": seconds, "peak_rss": peak}  # fmt: skip
        if baseline is not None:
            hashes = {
                code: run_python(
                    PAIRS_HASH,
                    [str(video), json.dumps(sidecar)],
                    tree=tree,
                    threads=threads[0],
                    what=f"frames of {code}",
                )
                for code, tree in trees.items()
            }
            results["identical"] = len({h["sha256"] for h in hashes.values()}) == 1
        if dpt:
            from dvg.backends.random_weights import save_random_dpt

            model = save_random_dpt(tmp / "dpt", tiny=False)
            settings = {**base, "depth_model": str(model)}
            results["dpt"] = measure(video, tmp / "out", settings)
        for length in lengths:
            video = make_clip(tmp / f"len{length}", width, height, frames, length)
            settings = {**base, "depth": str(video.parent)}
            report = measure(video, tmp / "out", settings)
            report["live_peak_rss"] = measure(video, tmp / "out", settings, True)["peak_rss"]
            results["memory"].append((length, report))
            shutil.rmtree(video.parent)
    results["frames"] = frames
    return results


def report(width: int, height: int, layout: str, preset: str, results: dict) -> str:
    mb = 2**20
    speed = results["speed"]
    floors = {r["load"]: r["seconds"] for r in speed.values() if r["code"] == "ffmpeg"}
    frames = results["frames"]
    lines = [
        header(),
        f"`warp-inpaint` (softmax forward splat + OpenCV Telea, sidecar depth), {width}x{height} "
        f"input, {frames} frames, `{layout}` output, H.264 crf 18 preset `{preset}`; wall time "
        "of `convert` in a fresh process, muxing included. The ffmpeg floor decodes the same "
        "clip, stacks each frame beside itself and encodes it with the same x264 settings. "
        f"Median of {results['rounds']} interleaved rounds; `load` is the number of busy "
        "background processes started for the row, and other engineers' processes also shared "
        "the 2 cores, so compare rows as ratios (each against the floor under the same load). "
        "Peak RSS is the converting Python process (`VmHWM`); ffmpeg's decoder and encoder run "
        "as separate processes and are not included.",
        "",
        "| code | torch threads | load | seconds | frames/s | vs ffmpeg floor | peak RSS |",
        "|---|---|---|---|---|---|---|",
    ]
    for r in speed.values():
        floor = floors.get(r["load"])
        ratio = f"{r['seconds'] / floor:.2f}x" if floor else "n/a"
        rss = f"{r['peak_rss'] / mb:.0f} MiB" if r["peak_rss"] else "n/a"
        threads = r["threads"] if r["code"] != "ffmpeg" else "-"
        lines.append(
            f"| {'ffmpeg alone' if r['code'] == 'ffmpeg' else r['code']} | {threads} | "
            f"{r['load']} | {r['seconds']:.1f} | {frames / r['seconds']:.2f} | {ratio} | {rss} |"
        )
    if results["identical"] is not None:
        verdict = "identical" if results["identical"] else "DIFFERENT"
        lines += ["", f"Stereo frames (composed, before encoding) of every code version: {verdict} "
                  "(SHA-256 over all frames of `iter_stereo_pairs`)."]  # fmt: skip
    if "dpt" in results:
        r = results["dpt"]
        lines += ["", f"With a random full-size DPT-hybrid for depth: {r['fps']:.2f} frames/s."]
    if results["memory"]:
        lines += [
            "",
            "Peak memory against video length (same settings, the clip looped, this checkout):",
            "",
            "| frames | decoded size of the video | peak RSS | peak RSS, glibc mmap threshold "
            "64 KiB | frames/s |",
            "|---|---|---|---|---|",
        ]
        for length, r in results["memory"]:
            decoded = length * width * height * 3
            lines.append(
                f"| {length} | {decoded / mb:.0f} MiB | {r['peak_rss'] / mb:.0f} MiB | "
                f"{r['live_peak_rss'] / mb:.0f} MiB | {r['fps']:.2f} |"
            )
        lines += [
            "",
            "Frames are streamed: decode, depth, warp + inpaint and encode overlap in threads "
            "joined by queues of at most a window (16 frames) each, so the peak does not follow "
            "the decoded size of the video. With glibc's default settings the peak creeps up "
            "with the run length because freed heap blocks are kept and fragment; the next "
            "column runs the same conversion with `MALLOC_MMAP_THRESHOLD_=65536`, where freed "
            "blocks go back to the system at once and RSS follows live memory.",
        ]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", default="1920x1080", help="WxH of the input video")
    parser.add_argument(
        "--frames", type=int, help="frames of the speed clip (default 24; 16 with --spatialdreamer)"
    )
    parser.add_argument("--lengths", default="24,72,216", help="video lengths for memory")
    parser.add_argument("--layout", default="full-sbs")
    parser.add_argument("--preset", default="medium", help="x264 preset")
    parser.add_argument("--dpt", action="store_true", help="add a random full-size DPT row")
    parser.add_argument("--spatialdreamer", action="store_true", help="measure that method")
    parser.add_argument("--model-size", default="paper", choices=["paper", "tiny"])
    parser.add_argument("--widths", default="512,1024", help="input widths (16:9)")
    parser.add_argument("--steps", type=int, default=25, help="Euler steps (spatialdreamer)")
    parser.add_argument("--baseline", help="also convert with this git revision's code")
    parser.add_argument("--threads", default="1", help="torch thread counts, e.g. 1,2")
    parser.add_argument("--load", default="0", help="busy background processes, e.g. 0,2")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--section", default="convert-cpu", help="markdown section name")
    parser.add_argument("--write", type=Path, help="update this markdown file")
    args = parser.parse_args()
    if args.spatialdreamer:
        frames = args.frames or 16
        widths = [int(v) for v in args.widths.split(",") if v]
        rows = run_spatialdreamer(
            widths, frames, args.steps, args.model_size, args.layout, args.preset
        )
        body = report_spatialdreamer(rows, frames, args.steps, args.model_size)
        print(body)
        if args.write:
            device = "gpu" if torch.cuda.is_available() else "cpu"
            title = f"## spatialdreamer convert, SpatialDreamer {args.model_size} model ({device})"
            update_section(args.write, f"convert-spatialdreamer-{args.model_size}",
                           f"{title}\n\n{body}")  # fmt: skip
        return
    width, height = (int(v) for v in args.size.split("x"))
    args.frames = args.frames or 24
    lengths = [int(v) for v in args.lengths.split(",") if v]
    results = run(
        width,
        height,
        args.frames,
        lengths,
        args.layout,
        args.preset,
        args.dpt,
        baseline=args.baseline,
        threads=tuple(int(v) for v in args.threads.split(",")),
        loads=tuple(int(v) for v in args.load.split(",")),
        rounds=args.rounds,
    )
    body = report(width, height, args.layout, args.preset, results)
    print(body)
    if args.write:
        title = "## spatialdreamer convert, warp-inpaint (cpu)"
        update_section(args.write, args.section, f"{title}\n\n{body}")


if __name__ == "__main__":
    main()
