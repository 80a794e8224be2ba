"""Writing a rendered clip to disk as a source video plus depth and camera sidecars.

A RealEstate10K-style camera file (one line per frame: timestamp, fx fy cx cy, a 3x4
world-to-camera matrix) will be added next to the JSON camera file later.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Literal

import imageio_ffmpeg
import numpy as np
import torch

from dvg.synthetic.render import ClipRender


def write_clip(
    render: ClipRender,
    out_dir: str | Path,
    name: str,
    fps: float | None = None,
    eye: Literal["left", "right"] = "left",
) -> dict[str, Path]:
    """Write one eye's view of ``render`` as ``<name>.mp4`` (H.264, yuv420p, near lossless),
    its z-depth as ``<name>.depth.npy`` (float32, (F, H, W)) and its camera as
    ``<name>.camera.json`` (K, baseline, fps, world_to_camera list, width, height).

    Args:
        render: the clip; its height and width must be even (yuv420p halves the chroma).
        out_dir: directory, created if missing.
        name: file stem.
        fps: frame rate of the video; default ``render.fps``.
        eye: ``"left"`` (the source view) or ``"right"``: a right-eye video is what DVG, which
            renders its novel view to the LEFT of the input (docs/model.md), turns back into the
            renderer's exact left view.

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

    if eye not in ("left", "right"):
        raise ValueError(f"eye must be 'left' or 'right', got {eye!r}")
    view, depth = (
        (render.left, render.depth) if eye == "left" else (render.right, render.right_depth)
    )
    world_to_camera = render.world_to_camera
    if eye == "right":  # X_right = X_left - (baseline, 0, 0): same rotation, shifted translation
        world_to_camera = world_to_camera.clone()
        world_to_camera[:, 0, 3] -= render.baseline
    frames = (view.clamp(0, 1) * 255).round().to(torch.uint8)
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

    np.save(paths["depth"], depth[:, 0].numpy().astype(np.float32))
    camera = {
        "width": width,
        "height": height,
        "fps": fps,
        "baseline": render.baseline,
        "K": render.K.tolist(),
        "world_to_camera": world_to_camera.tolist(),
        "eye": eye,
        "convention": "OpenCV camera (x right, y down, z forward); X_cam = R X_world + t; "
        "pixel centres at integer coordinates; depth is z",
    }
    paths["camera"].write_text(json.dumps(camera, indent=1))
    return paths
