"""Spatial latent tiles for frames too large for one U-Net call (the `tile_size` memory control).

Each denoising step evaluates the U-Net on overlapping tiles of the latents (with the same crops
of the conditioning: masked view, mask and the left-view reference) and blends the outputs with
weights that ramp linearly across each overlap, as MultiDiffusion does per step. Tiles meet
without a seam because every step re-blends them. The output is linear in the tile outputs, so
blending the v-prediction equals blending the denoised estimate.
"""

from __future__ import annotations

from collections.abc import Callable

import torch


def tile_starts(size: int, tile: int, overlap: int) -> list[int]:
    """Starts of tiles of `tile` cells covering [0, size), neighbours sharing >= `overlap` cells.

    One tile at 0 when tile >= size; otherwise the last tile ends exactly at `size`.
    """
    if tile < 1 or not 0 <= overlap < tile:
        raise ValueError(f"need tile >= 1 and 0 <= overlap < tile, got tile {tile}, {overlap}")
    if tile >= size:
        return [0]
    starts = list(range(0, size - tile, tile - overlap))
    return [*starts, size - tile]


def tile_ramp(length: int, before: int, after: int) -> torch.Tensor:
    """(length,) weight: 1, ramping up linearly over the `before` leading cells and down over
    the `after` trailing cells (the overlaps with the neighbouring tiles), never 0."""
    weight = torch.ones(length)
    if before:
        weight[:before] = torch.arange(1, before + 1) / (before + 1)
    if after:
        weight[length - after :] = torch.minimum(
            weight[length - after :], torch.arange(after, 0, -1) / (after + 1)
        )
    return weight


def _axis(size: int, tile: int, overlap: int) -> list[tuple[int, torch.Tensor]]:
    starts = tile_starts(size, tile, overlap)
    length = min(tile, size)
    tiles = []
    for i, start in enumerate(starts):
        before = starts[i - 1] + length - start if i > 0 else 0
        after = start + length - starts[i + 1] if i + 1 < len(starts) else 0
        tiles.append((start, tile_ramp(length, before, after)))
    return tiles


def tile_grid(
    height: int, width: int, tile: int, overlap: int
) -> list[tuple[int, int, torch.Tensor]]:
    """(y0, x0, weight (th, tw)) of every tile of a (height, width) latent grid."""
    return [
        (y, x, wy[:, None] * wx[None, :])
        for y, wy in _axis(height, tile, overlap)
        for x, wx in _axis(width, tile, overlap)
    ]


def tiled(
    evaluate: Callable[..., torch.Tensor],
    spatial: list[torch.Tensor],
    tile: int,
    overlap: int,
) -> torch.Tensor:
    """Blend evaluate(*crops) over the tiles of the last two dims of the `spatial` tensors.

    spatial: tensors (..., h, w) with the same h, w, cropped alike; evaluate returns (..., th, tw)
    for crops (..., th, tw). Returns the blended (..., h, w) float32 result.
    """
    height, width = spatial[0].shape[-2:]
    out: torch.Tensor | None = None
    total = torch.zeros(height, width, device=spatial[0].device)
    for y, x, weight in tile_grid(height, width, tile, overlap):
        th, tw = weight.shape
        weight = weight.to(spatial[0].device)
        crops = [t[..., y : y + th, x : x + tw] for t in spatial]
        result = evaluate(*crops).float()
        if out is None:
            out = torch.zeros(*result.shape[:-2], height, width, device=result.device)
        out[..., y : y + th, x : x + tw] += result * weight
        total[y : y + th, x : x + tw] += weight
    assert out is not None
    return out / total
