"""PSNR and SSIM over a region (the disoccluded holes): masked_psnr, ssim_map, masked_ssim."""

from __future__ import annotations

import math

import pytest
import torch

from evaluation.metrics import masked_psnr, masked_ssim, psnr, ssim, ssim_map


def pair(n: int = 2, h: int = 24, w: int = 31, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    generator = torch.Generator().manual_seed(seed)
    a = torch.rand(n, 3, h, w, generator=generator, dtype=torch.float64)
    noise = 0.1 * torch.randn(a.shape, generator=generator, dtype=torch.float64)
    return a, (a + noise).clamp(0, 1)


def test_over_the_whole_frame_they_are_psnr_and_the_ssim_map_mean() -> None:
    a, b = pair()
    everywhere = torch.ones(2, 1, 24, 31, dtype=torch.bool)
    torch.testing.assert_close(masked_psnr(a, b, everywhere), psnr(a, b))
    torch.testing.assert_close(masked_ssim(a, b, everywhere[:, 0]), ssim_map(a, b).mean((1, 2)))


def test_the_ssim_map_away_from_the_border_is_what_ssim_averages() -> None:
    a, b = pair()
    values = ssim_map(a, b)
    assert values.shape == (2, 24, 31)
    torch.testing.assert_close(values[:, 5:-5, 5:-5].mean((1, 2)), ssim(a, b))
    assert torch.allclose(ssim_map(a, a), torch.ones(2, 24, 31, dtype=torch.float64))


def test_only_the_masked_pixels_count() -> None:
    a = torch.zeros(1, 3, 16, 16)
    b = a.clone()
    b[..., :8] = 0.1  # error 0.1 on the left half only
    left = torch.zeros(1, 16, 16, dtype=torch.bool)
    left[..., :4] = True
    assert float(masked_psnr(a, b, left)[0]) == pytest.approx(20.0, abs=1e-4)
    assert math.isinf(float(masked_psnr(a, b, ~left & (torch.arange(16) >= 8))[0]))
    # SSIM far from the changed half is 1, inside it below 1.
    far = torch.zeros(1, 16, 16, dtype=torch.bool)
    far[..., 14:] = True
    assert float(masked_ssim(a, b, far)[0]) == pytest.approx(1.0, abs=1e-6)
    assert float(masked_ssim(a, b, left)[0]) < 0.9


def test_an_empty_region_is_nan_and_bad_masks_raise() -> None:
    a, b = pair()
    empty = torch.zeros(2, 24, 31, dtype=torch.bool)
    assert (
        torch.isnan(masked_psnr(a, b, empty)).all() and torch.isnan(masked_ssim(a, b, empty)).all()
    )
    with pytest.raises(ValueError, match="bool"):
        masked_psnr(a, b, empty.float())
    with pytest.raises(ValueError, match="matching"):
        masked_psnr(a, b, empty[:, :10])
