"""Spatial latent tiles (the tile_size memory control): the grid and the blend weights (the
pipeline with tiles: tests/pipelines/test_pipeline_sampling.py)."""

from __future__ import annotations

import pytest
import torch

from pipelines.tiling import tile_grid, tile_ramp, tile_starts, tiled


def test_tile_starts_cover_the_axis_and_end_on_it():
    assert tile_starts(20, 8, 2) == [0, 6, 12]
    assert tile_starts(15, 8, 2) == [0, 6, 7]
    assert tile_starts(8, 8, 2) == [0]
    assert tile_starts(5, 8, 2) == [0]  # one tile when the axis is smaller
    with pytest.raises(ValueError, match="overlap"):
        tile_starts(20, 8, 8)


def test_ramps_of_neighbouring_tiles_sum_to_one_and_are_never_zero():
    assert torch.allclose(tile_ramp(6, 2, 0), torch.tensor([1 / 3, 2 / 3, 1, 1, 1, 1]))
    weights = torch.zeros(20)
    grid = tile_grid(1, 20, 8, 2)
    for _, x, w in grid:
        weights[x : x + 8] += w[0]
    torch.testing.assert_close(weights, torch.ones(20))
    assert all(bool((w > 0).all()) for _, _, w in grid)


@pytest.mark.parametrize(("height", "width", "tile", "overlap"), [(9, 20, 8, 2), (15, 15, 8, 3)])
def test_tiling_a_pointwise_function_changes_nothing(height, width, tile, overlap):
    a, b = torch.randn(2, 3, height, width), torch.randn(2, 3, height, width)
    result = tiled(lambda x, y: x * 2.0 + y.exp(), [a, b], tile, overlap)
    torch.testing.assert_close(result, a * 2.0 + b.exp())
