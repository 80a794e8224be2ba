"""8-bit frames <-> unit floats for the warp on the CPU, one fused pass each (numba).

torch spends four full-frame passes turning the render into bytes (clamp, scale, round, cast)
and two turning bytes into floats (cast, divide): about 40 ms of a 1080p frame, more than the
splat's scatter loops. The loops below do the same IEEE float32 operations per element (a true
division by 255; a product by 255 rounded half to even, as ``torch.round``), so their results
are bitwise torch's (tests/pipelines/convert/test_convert_pixels.py). No numpy or torch op
fuses them.
"""

from __future__ import annotations

import numpy as np
from numba import njit


@njit(cache=True, nogil=True)
def _unit(frames: np.ndarray, out: np.ndarray) -> None:
    source, target = frames.reshape(-1), out.reshape(-1)
    scale = np.float32(255)
    for i in range(source.size):
        target[i] = np.float32(source[i]) / scale


@njit(cache=True, nogil=True)
def _bytes(image: np.ndarray, out: np.ndarray) -> None:
    source, target = image.reshape(-1), out.reshape(-1)
    low, high, scale = np.float32(0), np.float32(1), np.float32(255)
    for i in range(source.size):
        target[i] = np.uint8(np.rint(min(max(source[i], low), high) * scale))


def unit_floats(frames: np.ndarray) -> np.ndarray:
    """(..., C) uint8 -> float32 of the same shape, ``frames / 255`` (as torch's
    ``.float().div_(255)``)."""
    out = np.empty(frames.shape, dtype=np.float32)
    _unit(np.ascontiguousarray(frames), out)
    return out


def unit_to_bytes(image: np.ndarray) -> np.ndarray:
    """(...) finite float32 in any range -> uint8 of the same shape, ``round(clamp(x, 0, 1) *
    255)`` rounded half to even (as torch's ``.clamp(0, 1).mul(255).round().byte()``)."""
    if image.dtype != np.float32:
        raise ValueError(f"unit_to_bytes takes float32, got {image.dtype}")
    out = np.empty(image.shape, dtype=np.uint8)
    _bytes(np.ascontiguousarray(image), out)
    return out
