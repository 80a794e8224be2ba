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
default. The SpatialDreamer pipeline needs a GPU to measure; see the note in the report.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import textwrap
from pathlib import Path

import cv2
import imageio_ffmpeg
import numpy as np

from benchmarks._report import header, update_section

MEASURE = textwrap.dedent(
    """
    import json, sys
    from pipelines.convert import ConvertConfig, convert
    video, out, settings = sys.argv[1], sys.argv[2], json.loads(sys.argv[3])
    result = convert(video, out, ConvertConfig(**settings))
    status = open("/proc/self/status").read().split("VmHWM:")[1]
    print(json.dumps({
        "frames": result.frames,
        "seconds": result.seconds,
        "fps": result.fps,
        "peak_rss": int(status.split()[0]) * 1024,
    }))
    """
)


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
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1])}
    if mmap_threshold:
        env["MALLOC_MMAP_THRESHOLD_"] = "65536"
    run = subprocess.run(
        [sys.executable, "-c", MEASURE, str(video), str(out), json.dumps(settings)],
        capture_output=True,
        text=True,
        env=env,
        check=False,
    )
    if run.returncode != 0:
        raise RuntimeError(f"conversion of {video} failed:\n{run.stderr[-3000:]}")
    return json.loads(run.stdout.strip().splitlines()[-1])


def run(
    width: int,
    height: int,
    frames: int,
    lengths: list[int],
    layout: str,
    preset: str,
    dpt: bool,
) -> dict:
    results: dict = {"speed": [], "memory": []}
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        base = {"layout": layout, "preset": preset}
        video = make_clip(tmp / "speed", width, height, frames, frames)
        sidecar = {**base, "depth": str(video.parent)}
        results["speed"].append(("sidecar depth, telea", measure(video, tmp / "out", sidecar)))
        if dpt:
            from dvg.backends.random_weights import save_random_dpt

            model = save_random_dpt(tmp / "dpt", tiny=False)
            settings = {**base, "depth_model": str(model)}
            results["speed"].append(
                ("random full-size DPT-hybrid, telea", measure(video, tmp / "out", settings))
            )
        for length in lengths:
            video = make_clip(tmp / f"len{length}", width, height, frames, length)
            settings = {**base, "depth": str(video.parent)}
            report = measure(video, tmp / "out", settings)
            report["live_peak_rss"] = measure(video, tmp / "out", settings, True)["peak_rss"]
            results["memory"].append((length, report))
            shutil.rmtree(video.parent)
    return results


def report(width: int, height: int, layout: str, preset: str, results: dict) -> str:
    mb = 2**20
    lines = [
        header(),
        f"`warp-inpaint` (softmax forward splat + OpenCV Telea), {width}x{height} input, "
        f"`{layout}` output, H.264 crf 18 preset `{preset}`; wall time of `convert` in a fresh "
        "process, model loading and muxing included. Peak RSS is the converting Python process "
        "(`VmHWM`); ffmpeg's decoder and encoder run as separate processes and are not "
        "included (x264's lookahead buffers some frames, but a fixed number). Other engineers "
        "shared this 2-core machine during the run, so speeds are lower bounds.",
        "",
        "| depth, inpainting | frames | frames/s | peak RSS |",
        "|---|---|---|---|",
    ]
    for name, r in results["speed"]:
        lines.append(f"| {name} | {r['frames']} | {r['fps']:.2f} | {r['peak_rss'] / mb:.0f} MiB |")
    lines += [
        "",
        "Peak memory against video length (same settings, the clip looped):",
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
        "Frames are streamed (at most a 16-frame window in memory), so the peak does not follow "
        "the decoded size of the video. With glibc's default settings the peak creeps up with the "
        "run length because freed heap blocks are kept and fragment (the longer the run, the "
        "higher the highest fluctuation); the next column runs the same conversion with "
        "`MALLOC_MMAP_THRESHOLD_=65536`, where freed blocks go back to the system at once and RSS "
        "follows live memory. Users who want that can set the variable themselves.",
        "",
        "SpatialDreamer pipeline (paper-size architecture, random weights, 512 and 1024 wide, "
        "with and without CPU offload / chunked VAE decode): not measured, no GPU was lent to "
        "this task; it needs a GPU to run at a useful speed.",
    ]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", default="1920x1080", help="WxH of the input video")
    parser.add_argument("--frames", type=int, default=24, help="frames of the speed clip")
    parser.add_argument("--lengths", default="24,72,216", help="video lengths for memory")
    parser.add_argument("--layout", default="full-sbs")
    parser.add_argument("--preset", default="medium", help="x264 preset")
    parser.add_argument("--dpt", action="store_true", help="add a random full-size DPT row")
    parser.add_argument("--write", type=Path, help="update this markdown file")
    args = parser.parse_args()
    width, height = (int(v) for v in args.size.split("x"))
    lengths = [int(v) for v in args.lengths.split(",") if v]
    results = run(width, height, args.frames, lengths, args.layout, args.preset, args.dpt)
    body = report(width, height, args.layout, args.preset, results)
    print(body)
    if args.write:
        title = "## spatialdreamer convert, warp-inpaint (cpu)"
        update_section(args.write, "convert-cpu", f"{title}\n\n{body}")


if __name__ == "__main__":
    main()
