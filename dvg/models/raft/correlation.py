"""RAFT correlation volume, lookup, flow upsampling and input padding: pure torch functions.

Follows princeton-vl/RAFT (``core/corr.py``, ``core/utils/utils.py``) including the lookup quirk
documented in :func:`lookup_correlation`.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor


def correlation_pyramid(fmap1: Tensor, fmap2: Tensor, num_levels: int = 4) -> list[Tensor]:
    """All-pairs correlation fmap1^T fmap2 / sqrt(C) and its average-pooled pyramid.

    Args:
        fmap1, fmap2: (B, C, H, W) feature maps.

    Returns:
        ``num_levels`` tensors (B * H * W, 1, H_i, W_i) with H_i = H // 2**i; a level that would
        be smaller than one pixel is empty (size 0), where the official code fails.
    """
    if fmap1.ndim != 4 or fmap1.shape != fmap2.shape:
        raise ValueError(
            f"fmap1 and fmap2 must both be (B, C, H, W), got {tuple(fmap1.shape)} and "
            f"{tuple(fmap2.shape)}"
        )
    b, c, h, w = fmap1.shape
    corr = torch.matmul(fmap1.reshape(b, c, h * w).transpose(1, 2), fmap2.reshape(b, c, h * w))
    corr = corr / torch.sqrt(torch.tensor(c, dtype=corr.dtype, device=corr.device))
    corr = corr.reshape(b * h * w, 1, h, w)
    pyramid = [corr]
    for _ in range(num_levels - 1):
        hh, ww = corr.shape[-2:]
        if hh < 2 or ww < 2:
            corr = corr.new_zeros(corr.shape[0], 1, hh // 2, ww // 2)
        else:
            corr = F.avg_pool2d(corr, 2, stride=2)
        pyramid.append(corr)
    return pyramid


def _bilinear_sample(img: Tensor, coords: Tensor) -> Tensor:
    """Zero-padded bilinear sampling of img (N, 1, H, W) at pixel coords (N, h, w, 2) = (x, y).

    Matches the official ``bilinear_sampler`` (align_corners=True, 2 * x / (W - 1) - 1) whenever
    H, W > 1; a size-1 axis uses the equivalent align_corners=False normalisation; an empty
    level gives zeros.
    """
    h, w = img.shape[-2:]
    if h == 0 or w == 0:
        return img.new_zeros(img.shape[0], img.shape[1], *coords.shape[1:3])
    x, y = coords.split([1, 1], dim=-1)
    if h > 1 and w > 1:
        grid = torch.cat([2 * x / (w - 1) - 1, 2 * y / (h - 1) - 1], dim=-1)
        return F.grid_sample(img, grid, align_corners=True)
    grid = torch.cat([(2 * x + 1) / w - 1, (2 * y + 1) / h - 1], dim=-1)
    return F.grid_sample(img, grid, align_corners=False)


def lookup_correlation(pyramid: list[Tensor], coords: Tensor, radius: int) -> Tensor:
    """Sample a (2r+1)^2 window of every pyramid level around ``coords`` / 2**level.

    Reproduces the official quirk: the offset grid is ``stack(meshgrid(dy, dx), -1)`` (a (dy, dx)
    pair) yet added to (x, y), so window entry (a, b), flattened as a * (2r + 1) + b, samples
    x + (a - r), y + (b - r).

    Args:
        pyramid: from :func:`correlation_pyramid`, level i of shape (B * h * w, 1, H_i, W_i).
        coords: (B, 2, h, w) pixel coordinates (x, y) in the second feature map.

    Returns:
        (B, levels * (2r + 1)^2, h, w).
    """
    if coords.ndim != 4 or coords.shape[1] != 2:
        raise ValueError(f"coords must be (B, 2, h, w), got {tuple(coords.shape)}")
    b, _, h, w = coords.shape
    if pyramid[0].shape[0] != b * h * w:
        raise ValueError(f"pyramid has {pyramid[0].shape[0]} query pixels, coords has {b}x{h}x{w}")
    n = 2 * radius + 1
    d = torch.linspace(-radius, radius, n, device=coords.device, dtype=coords.dtype)
    dx, dy = d, d
    delta = torch.stack(torch.meshgrid(dy, dx, indexing="ij"), dim=-1).view(1, n, n, 2)
    centroid = coords.permute(0, 2, 3, 1).reshape(b * h * w, 1, 1, 2)
    out = []
    for i, corr in enumerate(pyramid):
        sampled = _bilinear_sample(corr, centroid / 2**i + delta)
        out.append(sampled.view(b, h, w, -1))
    return torch.cat(out, dim=-1).permute(0, 3, 1, 2).contiguous()


def coords_grid(batch: int, height: int, width: int, *, like: Tensor) -> Tensor:
    """Pixel grid (B, 2, H, W) with channel 0 = x (column) and 1 = y (row)."""
    ys, xs = torch.meshgrid(
        torch.arange(height, device=like.device, dtype=like.dtype),
        torch.arange(width, device=like.device, dtype=like.dtype),
        indexing="ij",
    )
    return torch.stack([xs, ys], dim=0)[None].expand(batch, -1, -1, -1)


def convex_upsample(flow: Tensor, mask: Tensor) -> Tensor:
    """Upsample 1/8 flow (N, 2, H, W) by 8 as a softmax-weighted sum of its 3x3 neighbours.

    Args:
        flow: (N, 2, H, W) flow at 1/8 resolution, in 1/8-resolution pixels.
        mask: (N, 9 * 64, H, W) logits, viewed as (N, 1, 9, 8, 8, H, W).

    Returns:
        (N, 2, 8H, 8W) flow in full-resolution pixels.
    """
    n, _, h, w = flow.shape
    if mask.shape != (n, 9 * 64, h, w):
        raise ValueError(f"mask must be {(n, 9 * 64, h, w)}, got {tuple(mask.shape)}")
    weights = torch.softmax(mask.view(n, 1, 9, 8, 8, h, w), dim=2)
    neighbours = F.unfold(8 * flow, [3, 3], padding=1).view(n, 2, 9, 1, 1, h, w)
    up = torch.sum(weights * neighbours, dim=2)  # (N, 2, 8, 8, H, W)
    return up.permute(0, 1, 4, 2, 5, 3).reshape(n, 2, 8 * h, 8 * w)


def bilinear_upsample8(flow: Tensor) -> Tensor:
    """Official ``upflow8``: 8 * bilinear x8 upsampling with align_corners=True."""
    h, w = flow.shape[-2:]
    return 8 * F.interpolate(flow, size=(8 * h, 8 * w), mode="bilinear", align_corners=True)


def pad_to_multiple_of_8(x: Tensor) -> tuple[Tensor, tuple[int, int, int, int]]:
    """Replicate-pad (..., H, W) to multiples of 8, split evenly (official InputPadder 'sintel').

    Returns:
        The padded tensor and the padding (left, right, top, bottom).
    """
    ht, wd = x.shape[-2:]
    pad_ht = (((ht // 8) + 1) * 8 - ht) % 8
    pad_wd = (((wd // 8) + 1) * 8 - wd) % 8
    pad = (pad_wd // 2, pad_wd - pad_wd // 2, pad_ht // 2, pad_ht - pad_ht // 2)
    return F.pad(x, list(pad), mode="replicate"), pad


def unpad(x: Tensor, pad: tuple[int, int, int, int]) -> Tensor:
    """Crop the padding added by :func:`pad_to_multiple_of_8`."""
    ht, wd = x.shape[-2:]
    return x[..., pad[2] : ht - pad[3], pad[0] : wd - pad[1]]
