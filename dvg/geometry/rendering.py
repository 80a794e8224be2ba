"""Stereo view rendering for DVG (paper 3.2): forward render to the target eye, and backward
render of the (inpainted) target view to the source eye to find the occlusion mask M.

The target eye sits to the right of the source eye (see ``dvg.geometry``): source pixel x with
disparity d lands at x - d, and target pixel x' with disparity d' comes from x' + d'.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from dvg.geometry.guards import check_finite, check_image, check_same_grid
from dvg.geometry.splatting import SplatResult, splat

DEFAULT_ALPHA = 5.0
"""Softmax importance per pixel of disparity, chosen by measurement (docs/benchmarks.md, "Choosing
the splatting importance alpha"). Against the real right view of a real stereo pair, alpha 1-2
scores best and the former default 20 0.3-0.6 dB lower; but below ~4.6 a surface hidden 1 px
behind a nearer one keeps more than 1% of the weight where both land (27% at alpha 1): ghosts
of hidden surfaces on exact occlusions. 5 is the smallest round value that keeps them under
1% (e^-5), and recovers most of the loss of 20 (0.1-0.2 dB from the best on the real pair).
Holes and the backward-rendered M depend on coverage only, not on alpha."""


def forward_render(
    image: Tensor, disparity: Tensor, *, alpha: float = DEFAULT_ALPHA, hole_threshold: float = 0.5
) -> SplatResult:
    """Forward-render the source view to the target eye by softmax splatting, Z = alpha * d.

    Args:
        image: (B, C, H, W) source view.
        disparity: (B, 1, H, W) source-view pixel disparity (finite; may be negative behind the
            zero-parallax plane).
        alpha: softmax importance per pixel of disparity.
        hole_threshold: coverage below which a target pixel is a hole (disoccluded).

    Returns:
        :class:`~dvg.geometry.splatting.SplatResult` on the target grid; ``holes`` are the
        target pixels no source pixel reaches.
    """
    check_image(image, "image")
    check_image(disparity, "disparity", channels=1)
    check_same_grid(disparity, "disparity", image, "image")
    check_finite(disparity, "disparity")
    # The source -> target flow is (-d, 0): the splat's horizontal path.
    return splat(image, -disparity, alpha * disparity, hole_threshold=hole_threshold)


def zbuffer_disparity(disparity: Tensor) -> tuple[Tensor, Tensor]:
    """Disparity seen from the target eye by a nearest-pixel z-buffer.

    Each source pixel lands at x - d and is owned by the nearest target pixel; a target pixel
    keeps the largest (nearest) disparity among its owners. Unlike a softmax splat, where a
    nearer surface touching a pixel with a small bilinear weight still wins it, this puts a
    depth edge at the midpoint between the two source samples that straddle it, which is the
    unbiased guess for where the true edge lies.

    Args:
        disparity: (B, 1, H, W) source-view disparity.

    Returns:
        ``(target_disparity, owned)``: (B, 1, H, W) disparity (0 where unowned) and (B, 1, H, W)
        bool, False where no source pixel lands nearest (disocclusions, and gaps on surfaces
        stretched in the target view).
    """
    check_image(disparity, "disparity", channels=1)
    check_finite(disparity, "disparity")
    return _zbuffer(disparity)


def _zbuffer(disparity: Tensor) -> tuple[Tensor, Tensor]:
    """:func:`zbuffer_disparity` without argument checks."""
    b, _, h, w = disparity.shape
    columns = torch.arange(w, device=disparity.device, dtype=disparity.dtype)
    landing = torch.round(columns - disparity)  # (B, 1, H, W)
    inside = (landing >= 0) & (landing < w)
    rows = torch.arange(b * h, device=disparity.device).view(b, 1, h, 1) * w
    index = torch.where(inside, rows + landing.long().clamp(0, w - 1), b * h * w).flatten()
    best = torch.full((b * h * w + 1,), -torch.inf, dtype=disparity.dtype, device=disparity.device)
    best = best.scatter_reduce(0, index, disparity.flatten(), reduce="amax")[:-1]
    best = best.view(b, 1, h, w)
    owned = torch.isfinite(best)
    return torch.where(owned, best, torch.zeros_like(best)), owned


@dataclass(frozen=True)
class BackwardRender:
    """Output of :func:`backward_render`, all on the source grid except ``target_disparity``.

    Attributes:
        mask: (B, 1, H, W) bool occlusion mask M: source pixels not visible from the target eye
            (hidden behind nearer surfaces or outside the target frame).
        masked_source: (B, C, H, W) x1~ = x1 * (1 - M).
        rendered_source: (B, C, H, W) the target view rendered back to the source eye (0 in M).
        target_disparity: (B, 1, H, W) disparity seen from the target eye (0 in its holes).
        target_holes: (B, 1, H, W) bool, target pixels no source pixel lands on.
    """

    mask: Tensor
    masked_source: Tensor
    rendered_source: Tensor
    target_disparity: Tensor
    target_holes: Tensor


def backward_render(
    source: Tensor,
    disparity: Tensor,
    target: Tensor,
    *,
    alpha: float = DEFAULT_ALPHA,
    hole_threshold: float = 0.5,
) -> BackwardRender:
    """Render the inpainted target view x2 back to the source eye: M and x1~ (paper 3.2).

    The source disparity is z-buffered into the target eye (:func:`zbuffer_disparity`) and x2 is
    softmax-splatted back with that target-view disparity. Only target pixels that some source
    pixel lands on take part: a target hole shows a surface the source eye cannot see, so
    whatever the inpainter put there can never make a source pixel visible. Source pixels that
    no target pixel maps back onto are exactly those the target eye cannot see: M.

    Args:
        source: (B, C, H, W) source view x1.
        disparity: (B, 1, H, W) source-view pixel disparity.
        target: (B, C, H, W) inpainted target view x2.
        alpha: softmax importance per pixel of disparity.
        hole_threshold: coverage below which a source pixel is occluded.

    Returns:
        :class:`BackwardRender`.
    """
    check_image(source, "source")
    check_image(target, "target")
    check_image(disparity, "disparity", channels=1)
    check_same_grid(disparity, "disparity", source, "source")
    check_same_grid(target, "target", source, "source")
    if target.shape[1] != source.shape[1]:
        raise ValueError(f"target has {target.shape[1]} channels but source has {source.shape[1]}")
    check_finite(disparity, "disparity")
    target_disparity, owned = _zbuffer(disparity)
    # Target -> source flow (+d', 0): the splat's horizontal path.
    back = splat(
        target,
        target_disparity,
        alpha * target_disparity,
        hole_threshold=hole_threshold,
        source_mask=owned,
    )
    mask = back.holes
    masked = source * (~mask).to(source.dtype)
    return BackwardRender(
        mask=mask,
        masked_source=masked,
        rendered_source=back.image,
        target_disparity=target_disparity,
        target_holes=~owned,
    )
