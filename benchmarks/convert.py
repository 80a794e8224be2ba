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
                                 [--layout full-sbs] [--encoder-preset medium] [--dpt]
                                 [--write docs/benchmarks.md]

``--dpt`` adds a row with a full-size random-weight DPT-hybrid (MiDaS architecture) loaded
through the real loader: depth on this CPU takes seconds per 1080p frame, so it is off by
default.

    python -m benchmarks.convert --spatialdreamer [--model-size paper] [--widths 512,1024]
                                 [--frames 16] [--steps 25] [--write docs/benchmarks.md]

measures the ``spatialdreamer`` method instead: an exported model with the paper's architecture
(SVD-xt U-Net + SD2.1 RefinerNet + TIL, random weights, ``pipelines.model.paper_size``) converts
16:9 clips of each width with and without the memory controls (``--settings``, default
fp32,fp16,fp16-offload,fp16-offload-tiles; see SETTINGS), reporting frames/s, frames/s without
model loading and peak GPU memory (``torch.cuda.max_memory_allocated``, weights included). It
needs a GPU to run at a useful speed; ``--model-size tiny`` runs the same code with the
test-size model anywhere. ``--rows 512:fp16,1024:fp16-offload-tiles`` gives (width, setting)
rows in the order to run them instead of every width with every setting; ``--models DIR`` writes
(or reuses) the random model there (``benchmarks._models``); ``--json`` rewrites a results
file after every row.
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import subprocess
import tempfile
import textwrap
import time
from pathlib import Path

import cv2
import imageio_ffmpeg
import numpy as np
import torch

from benchmarks._fresh import run_script
from benchmarks._models import exported_model
from benchmarks._report import header, row_error, update_section, write_json
from benchmarks._runs import (
    ROOT,
    background_load,
    checkout,
    interleaved,
    revision_name,
    run_python,
    temporary_folder,
)

# One conversion; model loading (``create_method``) is timed on its own, so frames/s can be
# given with and without it.
MEASURE = textwrap.dedent(
    """
    import json, sys, time, torch
    from dataclasses import fields
    import pipelines.convert.converter as converter
    from pipelines.convert import ConvertConfig, convert
    video, out, settings = sys.argv[1], sys.argv[2], json.loads(sys.argv[3])
    names = {f.name for f in fields(ConvertConfig)}
    if "threads" in names:  # keep the pinned thread count
        settings.setdefault("threads", torch.get_num_threads())
    if "encoder_preset" not in names:  # a baseline from before the rename
        settings["preset"] = settings.pop("encoder_preset")
    create, loading = converter.create_method, []
    def timed_create(*args, **kwargs):
        start = time.perf_counter()
        method = create(*args, **kwargs)
        loading.append(time.perf_counter() - start)
        return method
    converter.create_method = timed_create
    result = convert(video, out, ConvertConfig(**settings))
    status = open("/proc/self/status").read().split("VmHWM:")[1]
    import torch
    gpu = torch.cuda.max_memory_allocated() if torch.cuda.is_available() else None
    print(json.dumps({
        "frames": result.frames,
        "seconds": result.seconds,
        "fps": result.fps,
        "load_seconds": sum(loading),
        "peak_rss": int(status.split()[0]) * 1024,
        "peak_gpu": gpu,
    }))
    """
)

# name -> (row label, ConvertConfig settings) of the SpatialDreamer rows: without and with the
# memory controls.
SETTINGS: dict[str, tuple[str, dict]] = {
    "fp32": ("float32", {"dtype": "float32"}),
    "fp16": ("float16", {"dtype": "float16"}),
    "bf16": ("bfloat16", {"dtype": "bfloat16"}),
    "fp16-offload": ("float16 + CPU offload + VAE decode chunks of 2",
                     {"dtype": "float16", "offload": True, "decode_chunk_size": 2}),
    "fp16-offload-tiles": (
        "float16 + CPU offload + VAE decode chunks of 2 + 512-pixel U-Net tiles",
        {"dtype": "float16", "offload": True, "decode_chunk_size": 2, "tile_size": 512}),
}  # fmt: skip
DEFAULT_SETTINGS = "fp32,fp16,fp16-offload,fp16-offload-tiles"


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


def spatialdreamer_rows(rows: str | None, widths: str, settings: str) -> list[tuple[int, str]]:
    """(width, setting name) pairs: ``rows`` ("512:fp16,1024:bf16") in its order, else every
    width with every setting."""
    if rows:
        pairs = [(int(w), name) for w, name in (item.split(":") for item in rows.split(","))]
    else:
        names = [n for n in settings.split(",") if n]
        pairs = [(int(w), name) for w in widths.split(",") if w for name in names]
    unknown = sorted({name for _, name in pairs} - set(SETTINGS))
    if unknown:
        raise SystemExit(f"unknown setting(s) {unknown}; known: {', '.join(SETTINGS)}")
    return pairs


def run_spatialdreamer(
    pairs: list[tuple[int, str]],
    frames: int,
    steps: int,
    size: str,
    layout: str,
    preset: str,
    models: Path | None = None,
    on_row=None,
) -> list[dict]:
    """One report per (width, setting) pair, in order; ``on_row(rows)`` after each."""
    rows: list[dict] = []
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        model = exported_model(models or tmp / "models", size)
        clips: dict[int, Path] = {}
        for width, name in pairs:
            height = 8 * round(width * 9 / 16 / 8)
            if width not in clips:
                clips[width] = make_clip(tmp / f"w{width}", width, height, frames, frames)
            video = clips[width]
            base = {
                "method": "spatialdreamer",
                "model": str(model),
                "steps": steps,
                "depth": str(video.parent),
                "layout": layout,
                "encoder_preset": preset,
            }
            row = {"width": width, "height": height, "setting": name}
            try:
                row.update(measure(video, tmp / "out", {**base, **SETTINGS[name][1]}))
            except Exception as error:  # e.g. out of memory: the next row may still run
                row["error"] = row_error(error)
            rows.append(row)
            if on_row is not None:
                on_row(rows)
    return rows


def report_spatialdreamer(rows: list[dict], frames: int, steps: int, size: str) -> str:
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
        "time of `convert` in a fresh process (model loading, warp and encoding included; the "
        "next column leaves model loading out).",
        "",
        "| input | setting | frames/s | frames/s without model loading | model loading | "
        "peak GPU memory | peak RSS |",
        "|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        if "error" in r:
            lines.append(f"| {r['width']}x{r['height']} | {SETTINGS[r['setting']][0]} | "
                         f"failed: {r['error']} |" + " |" * 4)  # fmt: skip
            continue
        gpu = f"{r['peak_gpu'] / gib:.1f} GiB" if r.get("peak_gpu") is not None else "no GPU"
        work = r["seconds"] - r["load_seconds"]
        lines.append(
            f"| {r['width']}x{r['height']} | {SETTINGS[r['setting']][0]} | {r['fps']:.3f} | "
            f"{r['frames'] / work if work > 0 else 0:.3f} | {r['load_seconds']:.1f} s | {gpu} | "
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
    speed_lengths: tuple[int, ...] = (),
) -> dict:
    results: dict = {"speed": {}, "memory": [], "identical": None, "rounds": rounds}
    with temporary_folder() as tmp:
        tmp = Path(tmp)
        base = {"layout": layout, "encoder_preset": preset}
        # Speed clips: the rendered clip, and longer ones looping it. On a short clip x264's
        # lookahead (40 frames at `medium`) holds every frame until the input ends, so the
        # whole encode comes after the converter's work; long clips show the steady state.
        clips = {n: make_clip(tmp / f"speed{n}", width, height, frames, n)
                 for n in (speed_lengths or (frames,))}  # fmt: skip
        video = clips[min(clips)]
        sidecar = {**base, "depth": str(video.parent)}
        trees = {"this checkout": ROOT}
        if baseline is not None:
            trees[revision_name(baseline)] = checkout(baseline, tmp / "baseline")
        # (name, code or "ffmpeg", torch threads, background load)
        variants = [("ffmpeg", "ffmpeg", 0, load) for load in loads]
        variants += [("this checkout", "this checkout", t, load) for t in threads for load in loads]
        variants += [(code, code, threads[0], loads[0]) for code in list(trees)[1:]]
        named = {f"{name}, {t} thread(s), load {load}, {n} frames": (code, t, load, n)
                 for n in clips for name, code, t, load in variants}  # fmt: skip

        def measure_variant(name: str) -> dict:
            code, t, load, n = named[name]
            clip = clips[n]
            with background_load(load):
                if code == "ffmpeg":
                    return {"seconds": ffmpeg_floor(clip, tmp / "floor.mp4", layout, 18, preset)}
                settings = {**base, "depth": str(clip.parent)}
                args = [str(clip), str(tmp / "out"), json.dumps(settings)]
                return run_python(MEASURE, args, tree=trees[code], threads=t, what=code)

        runs = interleaved(list(named), rounds, measure_variant)
        for name, reports in runs.items():
            code, t, load, n = named[name]
            seconds = statistics.median(r["seconds"] for r in reports)
            peak = max((r.get("peak_rss", 0) for r in reports), default=0)
            results["speed"][name] = {"code": code, "threads": t, "load": load, "frames": n,
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
    floors = {(r["load"], r.get("frames")): r["seconds"]
              for r in speed.values() if r["code"] == "ffmpeg"}  # fmt: skip
    frames = results["frames"]
    lengths = sorted({r.get("frames", frames) for r in speed.values()})
    lines = [
        header(),
        f"`warp-inpaint` (softmax forward splat + OpenCV Telea, sidecar depth), {width}x{height} "
        f"input, {' and '.join(map(str, lengths))} frames (a {frames}-frame rendered clip, "
        f"looped), `{layout}` output, H.264 crf 18 preset `{preset}`; wall time "
        "of `convert` in a fresh process, muxing included. The ffmpeg floor decodes the same "
        "clip, stacks each frame beside itself and encodes it with the same x264 settings. "
        f"Median of {results['rounds']} interleaved rounds; `load` is the number of busy "
        "background processes started for the row, and other engineers' processes also shared "
        "the 2 cores, so compare rows as ratios (each against the floor under the same load). "
        "Peak RSS is the converting Python process (`VmHWM`); ffmpeg's decoder and encoder run "
        "as separate processes and are not included.",
        "",
        "| frames | code | torch threads | load | seconds | frames/s | vs ffmpeg floor "
        "| peak RSS |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for r in sorted(speed.values(), key=lambda r: r.get("frames", frames)):
        n = r.get("frames", frames)
        floor = floors.get((r["load"], r.get("frames")))
        ratio = f"{r['seconds'] / floor:.2f}x" if floor else "n/a"
        rss = f"{r['peak_rss'] / mb:.0f} MiB" if r["peak_rss"] else "n/a"
        threads = r["threads"] if r["code"] != "ffmpeg" else "-"
        lines.append(
            f"| {n} | {'ffmpeg alone' if r['code'] == 'ffmpeg' else r['code']} | {threads} | "
            f"{r['load']} | {r['seconds']:.1f} | {n / r['seconds']:.2f} | {ratio} | {rss} |"
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
            "joined by queues of at most a window (4 frames with Telea) each, so the peak does "
            "not follow the decoded size of the video. With glibc's default settings the peak "
            "creeps up with the run length because freed heap blocks are kept and fragment; the "
            "next column runs the same conversion with `MALLOC_MMAP_THRESHOLD_=65536`, where freed "
            "blocks go back to the system at once and RSS follows live memory.",
        ]
    return "\n".join(lines)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", default="1920x1080", help="WxH of the input video")
    parser.add_argument(
        "--frames", type=int, help="frames of the speed clip (default 24; 16 with --spatialdreamer)"
    )
    parser.add_argument("--lengths", default="24,72,216", help="video lengths for memory")
    parser.add_argument(
        "--speed-lengths", default="", help="speed clip lengths, e.g. 24,120 (default --frames)"
    )
    parser.add_argument("--layout", default="full-sbs")
    parser.add_argument(
        "--encoder-preset", dest="preset", default="medium", help="x264 speed preset"
    )
    parser.add_argument("--dpt", action="store_true", help="add a random full-size DPT row")
    parser.add_argument("--spatialdreamer", action="store_true", help="measure that method")
    parser.add_argument("--model-size", default="paper", choices=["paper", "tiny"])
    parser.add_argument("--widths", default="512,1024", help="input widths (16:9)")
    parser.add_argument("--settings", default=DEFAULT_SETTINGS, help="setting names per width")
    parser.add_argument("--rows", help="width:setting pairs in run order (overrides the two above)")
    parser.add_argument("--models", type=Path, help="write (or reuse) the random model here")
    parser.add_argument("--json", type=Path, help="rewrite this JSON file after every row")
    parser.add_argument("--steps", type=int, default=25, help="Euler steps (spatialdreamer)")
    parser.add_argument("--baseline", help="also convert with this git revision's code")
    parser.add_argument("--threads", default="1", help="torch thread counts, e.g. 1,2")
    parser.add_argument("--load", default="0", help="busy background processes, e.g. 0,2")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--section", default="convert-cpu", help="markdown section name")
    parser.add_argument("--write", type=Path, help="update this markdown file")
    args = parser.parse_args(argv)
    if args.spatialdreamer:
        args.pairs = spatialdreamer_rows(args.rows, args.widths, args.settings)
    return args


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    if args.spatialdreamer:
        frames = args.frames or 16
        pairs = args.pairs

        def on_row(rows: list[dict]) -> None:
            if args.json:
                body = report_spatialdreamer(rows, frames, args.steps, args.model_size)
                write_json(args.json, {"rows": rows, "markdown": body})

        rows = run_spatialdreamer(pairs, frames, args.steps, args.model_size, args.layout,
                                  args.preset, args.models, on_row)  # fmt: skip
        body = report_spatialdreamer(rows, frames, args.steps, args.model_size)
        print(body)
        if args.write:
            device = "gpu" if torch.cuda.is_available() else "cpu"
            title = f"## spatialdreamer convert, SpatialDreamer {args.model_size} model ({device})"
            update_section(args.write, f"convert-spatialdreamer-{args.model_size}",
                           f"{title}\n\n{body}")  # fmt: skip
        if any("error" in r for r in rows):
            raise SystemExit(1)
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
        speed_lengths=tuple(int(v) for v in args.speed_lengths.split(",") if v),
    )
    body = report(width, height, args.layout, args.preset, results)
    print(body)
    if args.write:
        title = "## spatialdreamer convert, warp-inpaint (cpu)"
        update_section(args.write, args.section, f"{title}\n\n{body}")


if __name__ == "__main__":
    main()
