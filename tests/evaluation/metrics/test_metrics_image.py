"""PSNR and SSIM against scikit-image's reference implementations (test-only dependency)."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from evaluation.metrics import psnr, ssim
from evaluation.metrics.image import gaussian_window

skimage_metrics = pytest.importorskip("skimage.metrics")

SIZES = [(11, 11), (32, 32), (37, 23), (24, 61)]


def random_pair(h: int, w: int, n: int = 3, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Two (N, 3, H, W) float64 batches in [0, 1]; b is a noisy, clipped copy of a."""
    rng = np.random.default_rng(seed + 100 * h + w)
    a = rng.random((n, 3, h, w))
    noise = rng.uniform(0.02, 0.3, size=(n, 1, 1, 1)) * rng.standard_normal(a.shape)
    return a, np.clip(a + noise, 0, 1)


def skimage_ssim(a: np.ndarray, b: np.ndarray) -> float:
    return skimage_metrics.structural_similarity(
        a.transpose(1, 2, 0),
        b.transpose(1, 2, 0),
        gaussian_weights=True,
        sigma=1.5,
        use_sample_covariance=False,
        data_range=1,
        channel_axis=-1,
    )


@pytest.mark.parametrize(("h", "w"), SIZES)
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_psnr_matches_skimage(h: int, w: int, dtype: torch.dtype, device: torch.device) -> None:
    a, b = random_pair(h, w)
    ours = psnr(
        torch.tensor(a, dtype=dtype, device=device), torch.tensor(b, dtype=dtype, device=device)
    )
    assert ours.shape == (3,)
    # The reference is computed on the same (possibly float32-rounded) inputs.
    a_in = torch.tensor(a, dtype=dtype).double().numpy()
    b_in = torch.tensor(b, dtype=dtype).double().numpy()
    ref = [
        skimage_metrics.peak_signal_noise_ratio(x, y, data_range=1)
        for x, y in zip(a_in, b_in, strict=True)
    ]
    np.testing.assert_allclose(ours.cpu().double().numpy(), ref, rtol=0, atol=1e-4)


@pytest.mark.parametrize(("h", "w"), SIZES)
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_ssim_matches_skimage(h: int, w: int, dtype: torch.dtype, device: torch.device) -> None:
    a, b = random_pair(h, w)
    ours = ssim(
        torch.tensor(a, dtype=dtype, device=device), torch.tensor(b, dtype=dtype, device=device)
    )
    assert ours.shape == (3,)
    a_in = torch.tensor(a, dtype=dtype).double().numpy()
    b_in = torch.tensor(b, dtype=dtype).double().numpy()
    ref = [skimage_ssim(x, y) for x, y in zip(a_in, b_in, strict=True)]
    # The noise levels spread the SSIMs out, so a swapped image or a constant would fail.
    assert max(ref) - min(ref) > 0.05
    np.testing.assert_allclose(ours.cpu().double().numpy(), ref, rtol=0, atol=1e-4)


def test_ssim_border_handling_matches_skimage_on_structured_images() -> None:
    # Strong content near the border: a version without skimage's 5-px crop would differ.
    y, x = torch.meshgrid(torch.linspace(0, 1, 40), torch.linspace(0, 1, 52), indexing="ij")
    a = torch.stack([x, y, x * y])[None].double()
    b = a.clone()
    b[..., :6, :] = 1 - b[..., :6, :]
    b[..., 6:, 20:30] *= 0.5
    ref = skimage_ssim(a[0].numpy(), b[0].numpy())
    assert float(ssim(a, b)[0]) == pytest.approx(ref, abs=1e-6)


def test_identical_images() -> None:
    a = torch.rand(2, 3, 16, 20)
    assert torch.isinf(psnr(a, a)).all() and (psnr(a, a) > 0).all()
    torch.testing.assert_close(ssim(a, a), torch.ones(2), atol=1e-6, rtol=0)


def test_psnr_known_value() -> None:
    a = torch.zeros(1, 3, 8, 8)
    b = torch.full((1, 3, 8, 8), 0.1)  # MSE = 0.01 -> 20 dB
    assert float(psnr(a, b)[0]) == pytest.approx(20.0, abs=1e-4)


def test_half_precision_input_is_computed_in_float32() -> None:
    a, b = random_pair(16, 16)
    half = ssim(torch.tensor(a).half(), torch.tensor(b).half())
    full = ssim(torch.tensor(a).half().float(), torch.tensor(b).half().float())
    assert half.dtype == torch.float32
    torch.testing.assert_close(half, full)


def test_gaussian_window_is_scipy_gaussian_filter_taps() -> None:
    taps = gaussian_window(dtype=torch.float64)
    x = np.arange(-5, 6)
    expected = np.exp(-0.5 * (x / 1.5) ** 2)
    np.testing.assert_allclose(taps.numpy(), expected / expected.sum(), rtol=1e-12)
    assert math.isclose(float(taps.sum()), 1.0)


@pytest.mark.parametrize(
    ("a", "b", "message"),
    [
        (torch.rand(1, 3, 16, 16), torch.rand(1, 3, 16, 17), "shapes differ"),
        (torch.rand(3, 16, 16), torch.rand(3, 16, 16), r"\(N, C, H, W\)"),
        (torch.zeros(1, 3, 16, 16, dtype=torch.uint8), torch.zeros(1, 3, 16, 16), "floating"),
    ],
)
def test_bad_inputs_raise(a: torch.Tensor, b: torch.Tensor, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        psnr(a, b)
    with pytest.raises(ValueError, match=message):
        ssim(a, b)


def test_ssim_rejects_images_smaller_than_the_window() -> None:
    with pytest.raises(ValueError, match="H, W >= 11"):
        ssim(torch.rand(1, 3, 10, 40), torch.rand(1, 3, 10, 40))
