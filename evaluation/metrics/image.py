"""Full-reference image metrics PSNR and SSIM, batched, in the single-view NVS convention.

Images are (N, 3, H, W) floating tensors in [0, 1] (data range 1) on any device; each function
returns one value per image, (N,), which callers average over a test set.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

SSIM_WINDOW = 11
SSIM_SIGMA = 1.5
SSIM_K1 = 0.01
SSIM_K2 = 0.03


def check_image_pair(a: Tensor, b: Tensor, *, channels: int | None = 3) -> None:
    """Require two floating (N, C, H, W) tensors of equal shape, C == ``channels`` when given."""
    for name, x in (("a", a), ("b", b)):
        if not isinstance(x, Tensor):
            raise ValueError(f"{name} must be a torch.Tensor, got {type(x).__name__}")
        if x.ndim != 4 or x.numel() == 0:
            raise ValueError(
                f"{name} must be a non-empty (N, C, H, W) tensor, got {tuple(x.shape)}"
            )
        if channels is not None and x.shape[1] != channels:
            raise ValueError(f"{name} must have {channels} channels, got {tuple(x.shape)}")
        if not x.is_floating_point():
            raise ValueError(f"{name} must be a floating tensor in [0, 1], got {x.dtype}")
    if a.shape != b.shape:
        raise ValueError(f"a and b shapes differ: {tuple(a.shape)} vs {tuple(b.shape)}")


def _working_dtype(x: Tensor) -> torch.dtype:
    # Half precision loses the E[x^2] - E[x]^2 cancellation in SSIM; float64 is kept when given.
    return x.dtype if x.dtype in (torch.float32, torch.float64) else torch.float32


def psnr(a: Tensor, b: Tensor) -> Tensor:
    """PSNR = 10 log10(1 / MSE) per image, data range 1.

    Args:
        a, b: (N, C, H, W) in [0, 1].

    Returns:
        (N,) in dB; ``inf`` for an image identical to its reference (MSE = 0), so a mean over a
        set containing one is ``inf`` too: callers that average should report such pairs apart.
    """
    check_image_pair(a, b, channels=None)
    dtype = _working_dtype(a)
    mse = (a.to(dtype) - b.to(dtype)).square().flatten(1).mean(dim=1)
    return 10.0 * torch.log10(1.0 / mse)  # 1 / 0 = inf -> inf dB, without a warning


def gaussian_window(size: int = SSIM_WINDOW, sigma: float = SSIM_SIGMA, **like) -> Tensor:
    """Normalised 1-D Gaussian taps exp(-x^2 / 2 sigma^2), x = -(size // 2) ... size // 2.

    These are the taps of ``scipy.ndimage.gaussian_filter(sigma=1.5, truncate=3.5)`` that
    scikit-image's SSIM uses (radius int(3.5 * 1.5 + 0.5) = 5, 11 taps). ``like``: dtype/device.
    """
    x = torch.arange(size, **like) - (size // 2)
    taps = torch.exp(-0.5 * (x / sigma).square())
    return taps / taps.sum()


def ssim(a: Tensor, b: Tensor) -> Tensor:
    """SSIM (Wang et al. 2004) with a Gaussian window 11 / 1.5, C1 = 0.01^2, C2 = 0.03^2.

    Equal to scikit-image ``structural_similarity(gaussian_weights=True, sigma=1.5,
    use_sample_covariance=False, data_range=1, channel_axis=-1)``: population (co)variances, the
    SSIM map averaged over the pixels at least 5 px from every border (skimage filters with
    reflect padding, then crops that strip; a "valid" convolution yields exactly the kept
    pixels), then over channels.

    Args:
        a, b: (N, C, H, W) in [0, 1], H and W >= 11.

    Returns:
        (N,) SSIM per image, 1 for identical images.
    """
    check_image_pair(a, b, channels=None)
    h, w = a.shape[-2:]
    if h < SSIM_WINDOW or w < SSIM_WINDOW:
        raise ValueError(f"ssim needs H, W >= {SSIM_WINDOW}, got {(h, w)}")
    return _valid_ssim_map(a, b).flatten(2).mean(dim=2).mean(dim=1)


def _valid_ssim_map(a: Tensor, b: Tensor) -> Tensor:
    """(N, C, H - 10, W - 10) SSIM map of the pixels whose whole window lies inside the images."""
    dtype = _working_dtype(a)
    a, b = a.to(dtype), b.to(dtype)
    taps = gaussian_window(dtype=dtype, device=a.device)

    def blur(x: Tensor) -> Tensor:
        # Separable valid convolution, every channel of every map on its own.
        flat = x.reshape(-1, 1, *x.shape[-2:])
        flat = F.conv2d(flat, taps.view(1, 1, -1, 1))
        flat = F.conv2d(flat, taps.view(1, 1, 1, -1))
        return flat.view(*x.shape[:-2], *flat.shape[-2:])

    # One blur call for the five moment maps: (5, N, C, H, W).
    moments = blur(torch.stack([a, b, a * a, b * b, a * b]))
    mu_a, mu_b, e_aa, e_bb, e_ab = moments.unbind(0)
    var_a = e_aa - mu_a.square()
    var_b = e_bb - mu_b.square()
    cov = e_ab - mu_a * mu_b
    c1, c2 = SSIM_K1**2, SSIM_K2**2
    return ((2 * mu_a * mu_b + c1) * (2 * cov + c2)) / (
        (mu_a.square() + mu_b.square() + c1) * (var_a + var_b + c2)
    )


def ssim_map(a: Tensor, b: Tensor) -> Tensor:
    """The SSIM map of :func:`ssim` at every pixel, averaged over channels: (N, H, W).

    The images are reflect-padded by the window radius first (torch's reflect, which mirrors
    without repeating the edge pixel), so the map covers the border too; away from the 5-pixel
    border strip it equals the map :func:`ssim` averages, so
    ``ssim_map(a, b)[:, 5:-5, 5:-5].mean((1, 2)) == ssim(a, b)``.
    """
    check_image_pair(a, b, channels=None)
    h, w = a.shape[-2:]
    if h < SSIM_WINDOW or w < SSIM_WINDOW:
        raise ValueError(f"ssim_map needs H, W >= {SSIM_WINDOW}, got {(h, w)}")
    radius = SSIM_WINDOW // 2
    pads = (radius, radius, radius, radius)
    dtype = _working_dtype(a)
    padded = [F.pad(x.to(dtype), pads, mode="reflect") for x in (a, b)]
    return _valid_ssim_map(*padded).mean(dim=1)


def _region(mask: Tensor, like: Tensor) -> Tensor:
    """mask (N, 1, H, W) or (N, H, W) bool -> (N, H, W) float weights on ``like``'s device."""
    if mask.dtype != torch.bool:
        raise ValueError(f"mask must be bool, got {mask.dtype}")
    if mask.ndim == 4:
        mask = mask[:, 0]
    if mask.ndim != 3 or (mask.shape[0], *mask.shape[-2:]) != (like.shape[0], *like.shape[-2:]):
        raise ValueError(
            f"mask must be (N, 1, H, W) or (N, H, W) matching {tuple(like.shape)}, "
            f"got {tuple(mask.shape)}"
        )
    return mask.to(device=like.device, dtype=_working_dtype(like))


def masked_psnr(a: Tensor, b: Tensor, mask: Tensor) -> Tensor:
    """PSNR over the pixels of ``mask`` only (e.g. the disoccluded holes): ``10 log10(1 / MSE)``
    with the MSE over the masked pixels and all channels.

    Args:
        a, b: (N, C, H, W) in [0, 1]; mask: (N, 1, H, W) or (N, H, W) bool.

    Returns:
        (N,) in dB; ``inf`` where the masked pixels are identical, NaN where the mask is empty.
    """
    check_image_pair(a, b, channels=None)
    weight = _region(mask, a)
    dtype = _working_dtype(a)
    squared = (a.to(dtype) - b.to(dtype)).square().mean(dim=1)
    count = weight.flatten(1).sum(dim=1)
    mse = (squared * weight).flatten(1).sum(dim=1) / count
    return torch.where(count > 0, 10.0 * torch.log10(1.0 / mse), torch.nan)


def masked_ssim(a: Tensor, b: Tensor, mask: Tensor) -> Tensor:
    """Mean of :func:`ssim_map` over the pixels of ``mask`` (each pixel's SSIM still looks at
    its 11 x 11 window, known pixels around a hole included).

    Returns:
        (N,); NaN where the mask is empty.
    """
    values = ssim_map(a, b)
    weight = _region(mask, values)
    count = weight.flatten(1).sum(dim=1)
    mean = (values * weight).flatten(1).sum(dim=1) / count.clamp(min=1)
    return torch.where(count > 0, mean, torch.nan)
