"""Helpers writing tiny test videos with the bundled ffmpeg (imageio_ffmpeg.write_frames)."""

from __future__ import annotations

import subprocess
from pathlib import Path

import imageio_ffmpeg
import numpy as np
import torch


def write_video(
    path: Path,
    frames: np.ndarray,
    fps: float = 10,
    codec: str = "libx264",
    pix_fmt_out: str = "yuv420p",
    quality: float | None = 10,
    output_params: list[str] | None = None,
) -> Path:
    """Write (N, H, W, 3) uint8 RGB or (N, H, W) uint8 gray frames; quality 10 is lossless
    for libx264 (crf 0) apart from the yuv conversion."""
    frames = np.asarray(frames, dtype=np.uint8)
    height, width = frames.shape[1:3]
    writer = imageio_ffmpeg.write_frames(
        str(path),
        (width, height),
        fps=fps,
        codec=codec,
        pix_fmt_in="gray" if frames.ndim == 3 else "rgb24",
        pix_fmt_out=pix_fmt_out,
        quality=quality,
        macro_block_size=1,
        ffmpeg_log_level="error",
        output_params=output_params or [],
    )
    writer.send(None)
    for frame in frames:
        writer.send(np.ascontiguousarray(frame))
    writer.close()
    return path


def run_ffmpeg(*args: str) -> None:
    cmd = [imageio_ffmpeg.get_ffmpeg_exe(), "-hide_banner", "-loglevel", "error", "-y", *args]
    subprocess.run(cmd, check=True, capture_output=True)


def level_frames(levels: list[int], height: int = 64, width: int = 96) -> np.ndarray:
    """(N, H, W, 3) frames of uniform grey ``levels[i]`` so a decoded frame names its source."""
    return np.stack([np.full((height, width, 3), level, np.uint8) for level in levels])


def rendered_frames(name: str, num_frames: int, height: int = 64, width: int = 96, seed: int = 0):
    """(N, H, W, 3) uint8 frames of a dvg.synthetic scene."""
    from dvg.synthetic.scenes import render_scene

    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # tiny renders: thread start-up costs more than it saves
    try:
        render = render_scene(name, seed=seed, height=height, width=width, num_frames=num_frames)
    finally:
        torch.set_num_threads(threads)
    return (render.left.clamp(0, 1) * 255).round().to(torch.uint8).permute(0, 2, 3, 1).numpy()
