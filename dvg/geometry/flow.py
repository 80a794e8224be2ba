"""Backward warping by a flow field and forward-backward flow consistency."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

from dvg.geometry.camera import pixel_grid
from dvg.geometry.guards import check_flow, check_image


def backward_warp(image: Tensor, flow: Tensor, *, mode: str = "bilinear") -> Tensor:
    """Sample ``image`` at ``p + flow(p)`` for every pixel p (``grid_sample``, zeros outside).

    With ``flow`` the flow from frame A to frame B and ``image`` frame B, the result is frame B
    brought onto frame A's pixel grid.

    Args:
        image: (B, C, H, W).
        flow: (B, 2, H, W) displacement in pixels (channel 0 = x).
        mode: ``"bilinear"`` or ``"nearest"``.

    Returns:
        (B, C, H, W); samples falling outside the image are 0.
    """
    check_image(image, "image")
    check_flow(flow, "flow", image, "image")
    if mode not in ("bilinear", "nearest"):
        raise ValueError(f"mode must be 'bilinear' or 'nearest', got {mode!r}")
    return warp(image, flow, mode)


def warp(image: Tensor, flow: Tensor, mode: str = "bilinear") -> Tensor:
    """:func:`backward_warp` without argument checks, for callers that checked them once."""
    h, w = image.shape[-2:]
    target = pixel_grid(h, w, device=flow.device, dtype=flow.dtype) + flow
    # align_corners=True maps -1 / +1 to the centres of the first / last pixel, matching the
    # pixel-centre convention (a size-1 axis would divide by zero, so it is pinned to 0).
    gx = 2 * target[:, 0] / max(w - 1, 1) - 1
    gy = 2 * target[:, 1] / max(h - 1, 1) - 1
    grid = torch.stack([gx, gy], dim=-1).to(image.dtype)
    return F.grid_sample(image, grid, mode=mode, padding_mode="zeros", align_corners=True)


def flow_in_bounds(flow: Tensor) -> Tensor:
    """Pixels whose flow target lies inside the image (pixel centres of the border included).

    Args:
        flow: (B, 2, H, W).

    Returns:
        (B, 1, H, W) bool.
    """
    check_flow(flow, "flow")
    return _in_bounds(flow)


def _in_bounds(flow: Tensor) -> Tensor:
    h, w = flow.shape[-2:]
    target = pixel_grid(h, w, device=flow.device, dtype=flow.dtype) + flow
    x, y = target[:, 0:1], target[:, 1:2]
    return (x >= 0) & (x <= w - 1) & (y >= 0) & (y <= h - 1)


def motion_boundaries(flow: Tensor, beta1: float = 0.01, beta2: float = 0.002) -> Tensor:
    """Lai et al. (ECCV 2018) motion-boundary test on forward differences of ``flow``.

    Boundary where ``|grad F_x|^2 + |grad F_y|^2 > beta1 |F|^2 + beta2``.

    Args:
        flow: (B, 2, H, W).

    Returns:
        (B, 1, H, W) bool, True on motion boundaries.
    """
    check_flow(flow, "flow")
    return _boundaries(flow, beta1, beta2)


def _boundaries(flow: Tensor, beta1: float, beta2: float) -> Tensor:
    dx = torch.zeros_like(flow)
    dy = torch.zeros_like(flow)
    dx[..., :, :-1] = flow[..., :, 1:] - flow[..., :, :-1]
    dy[..., :-1, :] = flow[..., 1:, :] - flow[..., :-1, :]
    gradient = (dx.square() + dy.square()).sum(dim=1, keepdim=True)
    return gradient > beta1 * flow.square().sum(dim=1, keepdim=True) + beta2


def forward_backward_consistency(
    flow_forward: Tensor,
    flow_backward: Tensor,
    *,
    alpha1: float = 0.01,
    alpha2: float = 0.5,
    motion_boundary: bool = False,
    beta1: float = 0.01,
    beta2: float = 0.002,
) -> Tensor:
    """Flow confidence C of the forward flow by the forward-backward check (UnFlow rule).

    A pixel is inconsistent where ``|F + B~|^2 > alpha1 (|F|^2 + |B~|^2) + alpha2`` with
    ``B~ = backward_warp(B, F)``, or where ``p + F(p)`` leaves the image; with
    ``motion_boundary`` Lai et al.'s boundary term (:func:`motion_boundaries`) is OR-ed in.

    Args:
        flow_forward: (B, 2, H, W) flow from frame A to frame B, on A's grid.
        flow_backward: (B, 2, H, W) flow from frame B to frame A, on B's grid.

    Returns:
        (B, 1, H, W) bool on A's grid, True where the forward flow is trusted.
    """
    check_flow(flow_forward, "flow_forward")
    check_flow(flow_backward, "flow_backward", flow_forward, "flow_forward")
    return consistency(
        flow_forward,
        flow_backward,
        alpha1=alpha1,
        alpha2=alpha2,
        motion_boundary=motion_boundary,
        beta1=beta1,
        beta2=beta2,
    )


def consistency(
    flow_forward: Tensor,
    flow_backward: Tensor,
    *,
    alpha1: float = 0.01,
    alpha2: float = 0.5,
    motion_boundary: bool = False,
    beta1: float = 0.01,
    beta2: float = 0.002,
) -> Tensor:
    """:func:`forward_backward_consistency` without argument checks."""
    backward_at_target = warp(flow_backward, flow_forward)
    mismatch = (flow_forward + backward_at_target).square().sum(dim=1, keepdim=True)
    magnitude = flow_forward.square().sum(dim=1, keepdim=True) + backward_at_target.square().sum(
        dim=1, keepdim=True
    )
    inconsistent = mismatch > alpha1 * magnitude + alpha2
    if motion_boundary:
        inconsistent = inconsistent | _boundaries(flow_forward, beta1, beta2)
    return ~inconsistent & _in_bounds(flow_forward)
