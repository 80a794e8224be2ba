"""Stereo output layouts, the Dubois red-cyan anaglyph, and player-friendly file names.

Layouts (left eye first, as headset players expect):

| layout     | frame (input W x H)  | suffix           |
|------------|----------------------|------------------|
| full-sbs   | 2W x H               | ``_LRF_Full_SBS`` |
| half-sbs   | W x H (each eye W/2) | ``_LRF_Half_SBS`` |
| full-tb    | W x 2H               | ``_LRF_Full_TB``  |
| half-tb    | W x H (each eye H/2) | ``_LRF_Half_TB``  |
| anaglyph   | W x H                | ``_Anaglyph``     |
| right      | W x H (right eye)    | ``_R``            |

The suffixes are the ones iw3 writes and DeoVR / Skybox / Pigasus recognise in file names
(``LRF`` = left-right, full frame). Half layouts squeeze each eye to half the width (height)
with area averaging so the frame keeps the input size.
"""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

LAYOUT_SUFFIXES: dict[str, str] = {
    "full-sbs": "_LRF_Full_SBS",
    "half-sbs": "_LRF_Half_SBS",
    "full-tb": "_LRF_Full_TB",
    "half-tb": "_LRF_Half_TB",
    "anaglyph": "_Anaglyph",
    "right": "_R",
}
LAYOUTS: tuple[str, ...] = tuple(LAYOUT_SUFFIXES)
# Layouts whose frames pack both eyes, and how (signalled in the stream and the container).
STEREO_PACKING: dict[str, str] = {
    "full-sbs": "sbs",
    "half-sbs": "sbs",
    "full-tb": "tb",
    "half-tb": "tb",
}

# Dubois least-squares red-cyan matrices (E. Dubois, "A projection method to generate anaglyph
# stereo images", ICASSP 2001; the values published on his site and used by iw3, Bino, etc.).
# Rows are output R, G, B; columns input R, G, B. Like most tools they are applied to the
# sRGB-encoded values directly (not linear light), then clipped to [0, 1].
DUBOIS_LEFT = np.array(
    [[0.456, 0.500, 0.176], [-0.040, -0.038, -0.016], [-0.015, -0.021, -0.005]],
    dtype=np.float32,
)
DUBOIS_RIGHT = np.array(
    [[-0.043, -0.088, -0.002], [0.378, 0.734, -0.018], [-0.072, -0.113, 1.226]],
    dtype=np.float32,
)


def check_layout(layout: str) -> str:
    """``layout`` if known, else ValueError listing the layouts."""
    if layout not in LAYOUT_SUFFIXES:
        raise ValueError(f"unknown layout {layout!r}; choose one of {', '.join(LAYOUTS)}")
    return layout


def frame_size(layout: str, width: int, height: int) -> tuple[int, int]:
    """(width, height) of a composed frame for views of ``width`` x ``height``."""
    check_layout(layout)
    if layout == "full-sbs":
        return 2 * width, height
    if layout == "full-tb":
        return width, 2 * height
    if layout == "half-sbs":
        return 2 * max(1, width // 2), height
    if layout == "half-tb":
        return width, 2 * max(1, height // 2)
    return width, height


def anaglyph(left: np.ndarray, right: np.ndarray) -> np.ndarray:
    """Dubois red-cyan anaglyph: left, right (H, W, 3) uint8 RGB -> (H, W, 3) uint8."""
    mixed = left.astype(np.float32) @ DUBOIS_LEFT.T + right.astype(np.float32) @ DUBOIS_RIGHT.T
    return np.clip(np.rint(mixed), 0, 255).astype(np.uint8)


def compose(layout: str, left: np.ndarray, right: np.ndarray) -> np.ndarray:
    """One output frame from a stereo pair.

    Args:
        layout: one of ``LAYOUTS``.
        left, right: (H, W, 3) uint8 RGB views of the same size.

    Returns:
        (H', W', 3) uint8 with (W', H') = ``frame_size(layout, W, H)``.
    """
    check_layout(layout)
    if left.shape != right.shape or left.ndim != 3 or left.shape[2] != 3:
        raise ValueError(
            f"left and right must be (H, W, 3) of one size, got {left.shape} and {right.shape}"
        )
    h, w = left.shape[:2]
    if layout == "right":
        return np.ascontiguousarray(right)
    if layout == "anaglyph":
        return anaglyph(left, right)
    if layout == "full-sbs":
        return np.concatenate([left, right], axis=1)
    if layout == "full-tb":
        return np.concatenate([left, right], axis=0)
    if layout == "half-sbs":
        size = (max(1, w // 2), h)
        axis = 1
    else:  # half-tb
        size = (w, max(1, h // 2))
        axis = 0
    views = [cv2.resize(v, size, interpolation=cv2.INTER_AREA) for v in (left, right)]
    return np.concatenate(views, axis=axis)


def output_name(input_path: str | Path, layout: str, extension: str = ".mp4") -> str:
    """``<stem><suffix><extension>``, e.g. ``clip_LRF_Full_SBS.mp4``."""
    return f"{Path(input_path).stem}{LAYOUT_SUFFIXES[check_layout(layout)]}{extension}"


def resolve_output(input_path: str | Path, output: str | Path, layout: str) -> Path:
    """The file to write: ``output`` itself when it names a file (has a suffix and is not an
    existing directory), else ``output / output_name(input_path, layout)``."""
    out = Path(output)
    if out.is_dir() or not out.suffix:
        return out / output_name(input_path, layout)
    return out
