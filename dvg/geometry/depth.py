"""Depth, metric disparity and relative inverse depth (MiDaS-style) to stereo pixel disparity.

Stereo convention (see ``dvg.geometry``): the target eye sits ``baseline`` to the right of the
source eye, so a point of disparity ``d`` at source pixel x appears at x - d in the target view.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import Tensor

from dvg.geometry.guards import check_depth, check_finite, check_image, per_sample


def depth_to_disparity(depth: Tensor, focal: float | Tensor, baseline: float | Tensor) -> Tensor:
    """Pixel disparity d = f * b / Z of a rectified pair.

    Args:
        depth: (B, 1, H, W) z-depth, finite and > 0.
        focal: horizontal focal length fx in pixels, scalar or (B,).
        baseline: distance between the eyes in depth units, scalar or (B,).

    Returns:
        (B, 1, H, W) disparity in pixels.
    """
    check_depth(depth, "depth")
    return per_sample(focal, "focal", depth) * per_sample(baseline, "baseline", depth) / depth


def disparity_to_depth(
    disparity: Tensor, focal: float | Tensor, baseline: float | Tensor
) -> Tensor:
    """Z-depth Z = f * b / d of a rectified pair; the inverse of :func:`depth_to_disparity`.

    Args:
        disparity: (B, 1, H, W) pixel disparity, finite and > 0.
        focal: fx in pixels, scalar or (B,).
        baseline: eye distance, scalar or (B,).

    Returns:
        (B, 1, H, W) z-depth.
    """
    check_depth(disparity, "disparity")
    return (
        per_sample(focal, "focal", disparity)
        * per_sample(baseline, "baseline", disparity)
        / (disparity)
    )


def inverse_depth_bounds(
    inverse_depth: Tensor, low_quantile: float = 0.0, high_quantile: float = 1.0
) -> tuple[Tensor, Tensor]:
    """Robust range of a relative inverse depth map, one pair per batch element.

    Pass a whole clip as one batch element (e.g. ``x.transpose(0, 1)`` of a (F, 1, H, W) clip) to
    get clip-level bounds, so normalised depth does not flicker from frame to frame.

    Args:
        inverse_depth: (B, C, H, W) relative inverse depth (any scale and shift).
        low_quantile: quantile mapped to the far end, in [0, 1).
        high_quantile: quantile mapped to the near end, in (low_quantile, 1].

    Returns:
        ``(low, high)``, each (B,).
    """
    check_image(inverse_depth, "inverse_depth")
    check_finite(inverse_depth, "inverse_depth")
    if not 0.0 <= low_quantile < high_quantile <= 1.0:
        raise ValueError(
            f"quantiles must satisfy 0 <= low < high <= 1, got {low_quantile}, {high_quantile}"
        )
    return _bounds(inverse_depth, low_quantile, high_quantile)


def _bounds(
    inverse_depth: Tensor, low_quantile: float, high_quantile: float
) -> tuple[Tensor, Tensor]:
    """:func:`inverse_depth_bounds` without argument checks."""
    flat = inverse_depth.flatten(1)
    if low_quantile == 0.0 and high_quantile == 1.0:
        return flat.amin(dim=1), flat.amax(dim=1)
    q = (low_quantile, high_quantile)
    if torch.is_grad_enabled() and flat.requires_grad:  # selection has no gradient
        low, high = torch.quantile(flat, torch.tensor(q, dtype=flat.dtype, device=flat.device), 1)
    else:
        low, high = select_quantiles(flat, q)
    return low, high


def select_quantiles(flat: Tensor, q: tuple[float, ...]) -> Tensor:
    """``torch.quantile(flat, q, dim=1)`` (linear interpolation), bitwise, without sorting.

    Only the order statistics the interpolation reads are selected (``np.partition`` on the
    CPU, ``kthvalue`` elsewhere: O(N) instead of a sort's O(N log N)), then combined with the
    same rank, weight and ``lerp_`` steps as torch's own implementation, on tensors of the
    same shape. Finite input only.

    Args:
        flat: (B, N) values.
        q: quantiles in [0, 1].

    Returns:
        (len(q), B).
    """
    b, n = flat.shape
    probabilities = torch.tensor(q, dtype=flat.dtype, device=flat.device)
    ranks = (probabilities * (n - 1)).expand(b, len(q)).contiguous()
    below = ranks.long()
    weights = ranks - below
    above = ranks.ceil_().long()
    wanted = sorted({int(r) for r in torch.cat([below[0], above[0]]).tolist()})
    if flat.device.type == "cpu" and flat.dtype in (torch.float32, torch.float64):
        selected = np.partition(flat.detach().numpy(), wanted, axis=1)
        order = {r: torch.from_numpy(selected[:, r].copy()) for r in wanted}
    else:
        order = {r: flat.kthvalue(r + 1, dim=1).values for r in wanted}
    values_below = torch.stack([order[int(r)] for r in below[0].tolist()], dim=1)
    values_above = torch.stack([order[int(r)] for r in above[0].tolist()], dim=1)
    return values_below.lerp_(values_above, weights).T


def relative_inverse_depth_to_disparity(
    inverse_depth: Tensor,
    max_disparity: float | Tensor,
    *,
    convergence: float = 0.0,
    relative_to_width: bool = False,
    bounds: tuple[Tensor, Tensor] | None = None,
) -> Tensor:
    """Map relative inverse depth to a signed pixel disparity for a stereo pair.

    Relative inverse depth ``q`` (MiDaS, Depth Anything: larger = nearer, unknown scale and shift)
    is normalised to ``n = (q - low) / (high - low)`` clipped to [0, 1], so n = 0 is the far end
    and n = 1 the near end. The disparity is ``max_disparity * (n - convergence)``:
    ``max_disparity`` is the disparity span between the farthest and nearest point, and the
    zero-parallax (screen) plane sits at ``n = convergence``. With ``convergence = 0`` everything
    is in front of or on the screen (d >= 0); with 0.5 the screen is mid-way.

    Args:
        inverse_depth: (B, 1, H, W) relative inverse depth, finite.
        max_disparity: disparity span, in pixels or, with ``relative_to_width``, as a fraction of
            the image width; scalar or (B,), >= 0.
        convergence: normalised inverse depth of the zero-parallax plane, in [0, 1].
        relative_to_width: interpret ``max_disparity`` as a fraction of W.
        bounds: ``(low, high)`` each (B,), e.g. clip-level bounds from
            :func:`inverse_depth_bounds`; per-sample min / max when omitted.

    Returns:
        (B, 1, H, W) disparity in pixels (positive = in front of the screen).
    """
    check_image(inverse_depth, "inverse_depth", channels=1)
    check_finite(inverse_depth, "inverse_depth")
    if not 0.0 <= convergence <= 1.0:
        raise ValueError(f"convergence must be in [0, 1], got {convergence}")
    span = per_sample(max_disparity, "max_disparity", inverse_depth)
    if bool((span < 0).any()):
        raise ValueError("max_disparity must be >= 0")
    if relative_to_width:
        span = span * inverse_depth.shape[-1]
    low, high = bounds if bounds is not None else _bounds(inverse_depth, 0.0, 1.0)
    low = per_sample(low, "bounds[0]", inverse_depth)
    high = per_sample(high, "bounds[1]", inverse_depth)
    # A constant map has no depth structure: it lands on the far plane rather than dividing by 0.
    scale = (high - low).clamp_min(torch.finfo(inverse_depth.dtype).eps)
    normalised = ((inverse_depth - low) / scale).clamp(0.0, 1.0)
    return span * (normalised - convergence)
