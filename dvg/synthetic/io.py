"""Writing a rendered clip to disk as a source video plus depth and camera sidecars.

A RealEstate10K-style camera file (one line per frame: timestamp, fx fy cx cy, a 3x4
world-to-camera matrix) will be added next to the JSON camera file later.
"""

from __future__ import annotations

import json
from pathlib import Path

import imageio_ffmpeg
import numpy as np
import torch

from dvg.synthetic.render import ClipRender


def write_clip(
    render: ClipRender, out_dir: str | Path, name: str, fps: float | None = None
) -> dict[str, Path]:
    """Write the left view of ``render`` as ``<name>.mp4`` (H.264, yuv420p, near lossless),
    its z-depth as ``<name>.depth.npy`` (float32, (F, H, W)) and its camera as
    ``<name>.camera.json`` (K, baseline, fps, world_to_camera list, width, height).

    Args:
        render: the clip; its height and width must be even (yuv420p halves the chroma).
        out_dir: directory, created if missing.
        name: file stem.
        fps: frame rate of the video; default ``render.fps``.

    Returns: ``{"video": ..., "depth": ..., "camera": ...}`` paths.
    """
    height, width = render.height, render.width
    if height % 2 or width % 2:
        raise ValueError(f"H.264 yuv420p needs an even frame size, got {height} x {width}")
    fps = render.fps if fps is None else float(fps)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    paths = {
        "video": out / f"{name}.mp4",
        "depth": out / f"{name}.depth.npy",
        "camera": out / f"{name}.camera.json",
    }

    frames = (render.left.clamp(0, 1) * 255).round().to(torch.uint8)
    writer = imageio_ffmpeg.write_frames(
        str(paths["video"]),
        (width, height),
        fps=fps,
        codec="libx264",
        pix_fmt_out="yuv420p",
        quality=9,
        macro_block_size=2,
        ffmpeg_log_level="error",
    )
    writer.send(None)  # prime the generator
    for frame in frames.permute(0, 2, 3, 1).numpy():
        writer.send(np.ascontiguousarray(frame))
    writer.close()

    np.save(paths["depth"], render.depth[:, 0].numpy().astype(np.float32))
    camera = {
        "width": width,
        "height": height,
        "fps": fps,
        "baseline": render.baseline,
        "K": render.K.tolist(),
        "world_to_camera": render.world_to_camera.tolist(),
        "convention": "OpenCV camera (x right, y down, z forward); X_cam = R X_world + t; "
        "pixel centres at integer coordinates; depth is z",
    }
    paths["camera"].write_text(json.dumps(camera, indent=1))
    return paths
