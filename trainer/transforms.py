"""Resize + centre crop of decoded DVG frames to the square training resolution (paper 4.1).

Paper 4.1, stage 1: the short side is resized to 1024 and the frame centre-cropped to 1024 x 1024.
Views use area interpolation when shrinking (no aliasing) and bilinear when enlarging; masks use
nearest neighbour so they stay binary, with OpenCV's pixel-centre-aligned ``INTER_NEAREST_EXACT``
so a mask pixel lands where the view pixel it describes lands.
"""

from __future__ import annotations

import cv2
import numpy as np
import torch


def crop_geometry(height: int, width: int, size: int) -> tuple[int, int, int, int]:
    """``(resized_h, resized_w, top, left)``: scale so the short side is ``size``, then crop
    ``size x size`` at ``(top, left)`` of the resized frame (centred, odd pixel to the far side)."""
    if min(height, width, size) < 1:
        raise ValueError(f"need positive sizes, got height={height}, width={width}, size={size}")
    scale = size / min(height, width)
    resized_h = max(size, round(height * scale))
    resized_w = max(size, round(width * scale))
    return resized_h, resized_w, (resized_h - size) // 2, (resized_w - size) // 2


def resize_center_crop(frames: np.ndarray, size: int) -> np.ndarray:
    """Resize the short side to ``size`` and centre-crop a ``size x size`` square.

    Args:
        frames: (n, H, W, 3) uint8 views, or (n, H, W) bool masks (resized by nearest neighbour).
        size: side of the square output.

    Returns: (n, size, size, 3) uint8 or (n, size, size) bool, the dtype of ``frames``.
    """
    if frames.ndim not in (3, 4) or (frames.ndim == 4 and frames.shape[-1] != 3):
        raise ValueError(f"frames must be (n, H, W, 3) or (n, H, W), got shape {frames.shape}")
    is_mask = frames.dtype == np.bool_
    if is_mask != (frames.ndim == 3):
        raise ValueError(
            f"expected (n, H, W, 3) uint8 views or (n, H, W) bool masks, "
            f"got {frames.dtype} {frames.shape}"
        )
    height, width = frames.shape[1:3]
    resized_h, resized_w, top, left = crop_geometry(height, width, size)
    if (resized_h, resized_w) == (height, width):
        resized = frames
    else:
        if is_mask:
            interpolation = cv2.INTER_NEAREST_EXACT
        elif resized_h < height:
            interpolation = cv2.INTER_AREA
        else:
            interpolation = cv2.INTER_LINEAR
        source = frames.view(np.uint8) if is_mask else frames
        resized = np.stack(
            [cv2.resize(f, (resized_w, resized_h), interpolation=interpolation) for f in source]
        )
        if is_mask:
            resized = resized.astype(np.bool_)
    return np.ascontiguousarray(resized[:, top : top + size, left : left + size])


def views_to_tensor(frames: np.ndarray) -> torch.Tensor:
    """(n, H, W, 3) uint8 RGB -> (n, 3, H, W) float32 in [-1, 1] (the VAE's input range)."""
    return torch.from_numpy(frames).permute(0, 3, 1, 2).float().div_(127.5).sub_(1.0)


def masks_to_tensor(masks: np.ndarray) -> torch.Tensor:
    """(n, H, W) bool -> (n, 1, H, W) float32 in {0, 1}, 1 = occluded in the source view."""
    return torch.from_numpy(masks).unsqueeze(1).float()
