"""Forward softmax splatting (Niklaus & Liu, CVPR 2020), written in plain torch.

Each source pixel is pushed to ``p + flow(p)`` and added to the four integer neighbours of that
point with bilinear weights (a corner outside the image is dropped on its own, so border pixels
still contribute to the corners that are inside). Softmax splatting accumulates
``[I * exp(Z), exp(Z)]`` and divides, where the importance ``Z = alpha * disparity`` lets nearer
surfaces win where several land on one pixel.

Written by hand because no maintained pure-torch package provides it (the reference is a CUDA
kernel via cupy); ``index_add`` keeps it differentiable and device-agnostic. Horizontal (stereo)
flows without gradients take a fast path; on the CPU its scatters are compiled loops
(dvg/geometry/row_scatter.py) with the same bits.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor

from dvg.geometry.camera import pixel_grid
from dvg.geometry.guards import (
    check_finite,
    check_flow,
    check_image,
    check_mask,
    check_same_grid,
)
from dvg.geometry.row_scatter import corners, normalised_sums, shifted_logits


@dataclass(frozen=True)
class SplatResult:
    """Output of :func:`softmax_splat`.

    Attributes:
        image: (B, C, H, W) warped image, 0 in holes.
        weight: (B, 1, H, W) splatted bilinear weight of ones (coverage): about 1 where one
            surface lands, > 1 where several overlap, < 1 at hole borders, 0 inside holes.
        holes: (B, 1, H, W) bool, True where ``weight < hole_threshold``.
    """

    image: Tensor
    weight: Tensor
    holes: Tensor


def softmax_splat(
    image: Tensor,
    flow: Tensor,
    importance: Tensor,
    *,
    hole_threshold: float = 0.5,
    source_mask: Tensor | None = None,
) -> SplatResult:
    """Forward-warp ``image`` by ``flow`` with softmax splatting of importance ``importance``.

    Numerically exact for any importance range: at each target pixel the largest
    ``log(w) + Z`` among the contributions landing there is subtracted before ``exp``
    (a log-sum-exp per target pixel, found with ``scatter_reduce(amax)``), so far surfaces do not
    underflow to black when ``alpha * disparity`` spans hundreds. Accumulates in float32 (float64
    for float64 inputs) and returns the image's dtype. Differentiable w.r.t. ``image``, ``flow``
    and ``importance``. A flow with no vertical component (stereo) takes a faster path with
    bitwise the same result when no gradient is recorded.

    Args:
        image: (B, C, H, W) source image.
        flow: (B, 2, H, W) source -> target displacement in pixels (channel 0 = x).
        importance: (B, 1, H, W) softmax importance Z, e.g. ``alpha * disparity``.
        hole_threshold: coverage below which a target pixel is a hole.
        source_mask: (B, 1, H, W) bool; source pixels where it is False are not splatted.

    Returns:
        :class:`SplatResult`.
    """
    check_image(image, "image")
    check_flow(flow, "flow", image, "image")
    check_image(importance, "importance", channels=1)
    check_same_grid(importance, "importance", image, "image")
    check_finite(importance, "importance")
    if source_mask is not None:
        check_mask(source_mask, "source_mask", 4)
        if source_mask.shape != importance.shape:
            raise ValueError(
                f"source_mask must have shape {tuple(importance.shape)}, "
                f"got {tuple(source_mask.shape)}"
            )
    return splat(image, flow, importance, hole_threshold=hole_threshold, source_mask=source_mask)


def splat(
    image: Tensor,
    flow: Tensor,
    importance: Tensor,
    *,
    hole_threshold: float = 0.5,
    source_mask: Tensor | None = None,
) -> SplatResult:
    """:func:`softmax_splat` without argument checks, for callers that checked them once.

    ``flow`` is (B, 2, H, W), or (B, 1, H, W) for a horizontal flow (x only; y = 0, as stereo
    has). Horizontal flows take :func:`_splat_rows_compiled` on the CPU and
    :func:`_splat_rows_torch` elsewhere, unless a gradient is recorded; both give
    :func:`_splat_general`'s result bitwise.
    """
    needs_grad = torch.is_grad_enabled() and (
        image.requires_grad or flow.requires_grad or importance.requires_grad
    )
    rows = _splat_rows_compiled if image.device.type == "cpu" else _splat_rows_torch
    if flow.shape[1] == 1:
        if not needs_grad:
            return rows(image, flow, importance, hole_threshold, source_mask)
        flow = torch.cat([flow, torch.zeros_like(flow)], dim=1)
    elif not needs_grad and not bool(torch.count_nonzero(flow[:, 1]) > 0):
        return rows(image, flow[:, :1], importance, hole_threshold, source_mask)
    return _splat_general(image, flow, importance, hole_threshold, source_mask)


def _splat_general(
    image: Tensor,
    flow: Tensor,
    importance: Tensor,
    hole_threshold: float,
    source_mask: Tensor | None,
) -> SplatResult:
    """Any (B, 2, H, W) flow: up to four bilinear corners per source pixel, differentiable."""
    b, c, h, w = image.shape
    acc = torch.float64 if image.dtype == torch.float64 else torch.float32
    target = pixel_grid(h, w, device=image.device, dtype=acc) + flow.to(acc)  # (B, 2, H, W)
    x0 = torch.floor(target[:, 0])
    y0 = torch.floor(target[:, 1])
    fx = target[:, 0] - x0
    fy = target[:, 1] - y0
    # The corners every landing point touches. A second column (row) of corners only matters
    # where some x (y) is fractional: for stereo flow (integer y) half the work is skipped. The
    # check is exact, so the result is the same either way.
    xs = [(x0, 1 - fx)] + ([(x0 + 1, fx)] if bool((fx > 0).any()) else [])
    ys = [(y0, 1 - fy)] + ([(y0 + 1, fy)] if bool((fy > 0).any()) else [])
    cx = torch.stack([x for x, _ in xs for _ in ys]).long()  # (K, B, H, W), K in {1, 2, 4}
    cy = torch.stack([y for _ in xs for y, _ in ys]).long()
    bilinear = torch.stack([wx * wy for _, wx in xs for _, wy in ys])
    valid = (cx >= 0) & (cx < w) & (cy >= 0) & (cy < h) & (bilinear > 0)
    if source_mask is not None:
        valid = valid & source_mask[:, 0].bool()

    # Invalid corners go to one extra "dump" slot past the end, so no boolean indexing (and no
    # host sync on GPU) is needed; the slot is dropped at the end.
    dump = b * h * w
    batch_offset = (torch.arange(b, device=image.device) * h * w).view(1, b, 1, 1)
    index = torch.where(valid, batch_offset + cy * w + cx, dump).flatten()

    safe_bilinear = torch.where(valid, bilinear, torch.ones_like(bilinear))
    logits = torch.log(safe_bilinear) + importance.to(acc)[:, 0]
    logits = torch.where(valid, logits, torch.full_like(logits, -torch.inf))
    # The shift cancels in numerator / denominator, so it carries no gradient.
    peak = torch.full((dump + 1,), -torch.inf, dtype=acc, device=image.device)
    peak = peak.scatter_reduce(0, index, logits.detach().flatten(), reduce="amax")
    shift = torch.where(torch.isfinite(peak), peak, torch.zeros_like(peak))[index]
    contribution = torch.where(valid.flatten(), torch.exp(logits.flatten() - shift), 0.0)
    contribution = contribution.view(-1, b, 1, h, w)

    # One scatter for everything: [I * e, e, bilinear] per corner, channels last.
    packed = torch.cat(
        [
            image.to(acc).unsqueeze(0) * contribution,
            contribution,
            torch.where(valid, bilinear, 0.0).unsqueeze(2),
        ],
        dim=2,
    )  # (K, B, C + 2, H, W)
    packed = packed.permute(0, 1, 3, 4, 2).reshape(-1, c + 2)
    sums = torch.zeros(dump + 1, c + 2, dtype=acc, device=image.device).index_add(0, index, packed)
    sums = sums[:dump].view(b, h, w, c + 2).permute(0, 3, 1, 2)
    numerator, denominator, coverage = sums[:, :c], sums[:, c : c + 1], sums[:, c + 1 :]

    # Zero-eps normalisation: empty pixels divide by 1 and stay 0, covered pixels are exact.
    safe_denominator = torch.where(denominator > 0, denominator, torch.ones_like(denominator))
    return _result(numerator / safe_denominator, coverage, image.dtype, hole_threshold)


def _splat_rows_compiled(
    image: Tensor,
    flow_x: Tensor,
    importance: Tensor,
    hole_threshold: float,
    source_mask: Tensor | None,
) -> SplatResult:
    """A horizontal flow ``flow_x`` (B, 1, H, W) on the CPU: :func:`_splat_rows_torch`, bitwise,
    with its six scatters and the index they need fused into three compiled loops
    (dvg/geometry/row_scatter.py); ``log`` and ``exp`` stay torch's over the same layouts."""
    b, c, h, w = image.shape
    rows = b * h
    acc = torch.float64 if image.dtype == torch.float64 else torch.float32
    flow = flow_x[:, 0].to(acc).reshape(rows, w).contiguous()
    mask = np.zeros((0, 0), dtype=np.uint8)
    if source_mask is not None:
        mask = source_mask[:, 0].reshape(rows, w).to(torch.uint8).numpy()
    bilinear = torch.empty((2, b, h, w), dtype=acc)
    valid = np.empty((2, rows, w), dtype=np.bool_)
    left = np.empty((rows, w), dtype=np.int32)
    coverage = torch.empty((b, 1, h, w), dtype=acc)
    fractional = corners(
        torch.arange(w, dtype=acc).numpy(), flow.numpy(), mask,
        bilinear.view(2, rows, w).numpy(), valid, left, coverage.view(rows, w).numpy(),
    )  # fmt: skip
    k = 2 if fractional else 1  # integer flows touch one corner only
    # log(0) = -inf at invalid corners, as in the torch path, over its (K, B, H, W) layout.
    logits = bilinear[:k].log_().add_(importance[:, 0].to(acc))
    shifted_logits(left, valid[:k], logits.view(k, rows, w).numpy())
    contribution = logits.exp_()
    # Read in the image's own layout (a channels-last frame stays one: no strided copy) and
    # written channels last, so a caller converting to (B, H, W, C) bytes copies nothing.
    source = image.to(acc).transpose(0, 1).reshape(c, rows, w)
    warped = torch.empty((b, h, w, c), dtype=acc)
    normalised_sums(
        left, valid[:k], contribution.view(k, rows, w).numpy(), source.numpy(),
        warped.view(rows, w, c).numpy(),
    )  # fmt: skip
    return _result(warped.permute(0, 3, 1, 2), coverage, image.dtype, hole_threshold)


def _splat_rows_torch(
    image: Tensor,
    flow_x: Tensor,
    importance: Tensor,
    hole_threshold: float,
    source_mask: Tensor | None,
) -> SplatResult:
    """A horizontal flow ``flow_x`` (B, 1, H, W): :func:`_splat_general`'s result, bitwise, in
    torch ops (any device).

    A landing point's row is its source row, so each source pixel touches at most two corners,
    (x0, row) and (x0 + 1, row). The same numbers are computed with the same operations in the
    same order (``exp`` and ``log`` over the same (K, B, H, W) layout, so their vectorised and
    scalar lanes line up; every scatter adds in corner-major, then raster order), with 1-D
    indices, one 1-D scatter per channel instead of a channels-last payload, and in-place
    temporaries. Not differentiable (in-place work): :func:`splat` sends gradients elsewhere.
    """
    b, c, h, w = image.shape
    n = b * h * w
    device = image.device
    acc = torch.float64 if image.dtype == torch.float64 else torch.float32
    x = torch.arange(w, device=device, dtype=acc) + flow_x[:, 0].to(acc)  # (B, H, W)
    x0 = torch.floor(x)
    fx = x.sub_(x0)
    k = 2 if bool((fx > 0).any()) else 1  # integer flows touch one corner only
    bilinear = torch.empty((k, b, h, w), dtype=acc, device=device)
    torch.sub(1, fx, out=bilinear[0])
    valid = torch.empty((k, b, h, w), dtype=torch.bool, device=device)
    torch.ge(x0, 0, out=valid[0])
    valid[0].logical_and_(x0 < w).logical_and_(bilinear[0] > 0)
    if k == 2:
        bilinear[1].copy_(fx)
        torch.ge(x0, -1, out=valid[1])
        valid[1].logical_and_(x0 < w - 1).logical_and_(fx > 0)
    if source_mask is not None:
        valid.logical_and_(source_mask[:, 0].bool())

    # Invalid corners go to a "dump" slot past the end (as in _splat_general).
    index = torch.empty((k, b, h, w), dtype=torch.long, device=device)
    index[0].copy_(x0).add_(torch.arange(b * h, device=device).view(b, h, 1) * w)
    if k == 2:
        torch.add(index[0], 1, out=index[1])
    invalid = valid.logical_not_()
    index.masked_fill_(invalid, n)
    index = index.view(-1)

    # Fresh memory costs page faults, so each buffer is reused once its content is spent:
    # the coverage is scattered first, then the bilinear weights become the logits, their
    # shifts and the weighted colours share one buffer, and the normalised image is divided
    # in place into the sums.
    sums = torch.zeros((c + 2, n + 1), dtype=acc, device=device)
    bilinear.masked_fill_(invalid, 0.0)
    sums[c + 1].index_add_(0, index, bilinear.view(-1))
    # log(0) = -inf marks invalid corners, as the general path's where(valid, ., -inf) does.
    logits = bilinear.log_().add_(importance[:, 0].to(acc)).view(-1)
    peak = torch.full((n + 1,), -torch.inf, dtype=acc, device=device)
    peak.scatter_reduce_(0, index, logits, reduce="amax")
    peak.nan_to_num_(nan=0.0, posinf=0.0, neginf=0.0)  # the general path's isfinite guard
    scratch = torch.empty_like(logits)
    # 0 at invalid corners: exp(-inf - 0), their shift being the dump slot's.
    contribution = logits.sub_(torch.index_select(peak, 0, index, out=scratch)).exp_()
    del peak
    sums[c].index_add_(0, index, contribution)
    source = image.to(acc)
    weighted = scratch.view(k, b, h, w)
    for channel in range(c):
        torch.mul(source[:, channel], contribution.view(k, b, h, w), out=weighted)
        sums[channel].index_add_(0, index, scratch)
    sums = sums[:, :n].view(c + 2, b, h, w).transpose(0, 1)
    numerator, denominator, coverage = sums[:, :c], sums[:, c : c + 1], sums[:, c + 1 :]

    # Zero-eps normalisation, as where(denominator > 0, denominator, 1) (NaN included).
    denominator.masked_fill_(~(denominator > 0), 1.0)
    return _result(numerator.div_(denominator), coverage, image.dtype, hole_threshold)


def _result(
    warped: Tensor, coverage: Tensor, dtype: torch.dtype, hole_threshold: float
) -> SplatResult:
    """The normalised image and the coverage in the input's dtype; holes where coverage is below
    ``hole_threshold``."""
    weight = coverage.to(dtype)
    return SplatResult(image=warped.to(dtype), weight=weight, holes=weight < hole_threshold)
