"""Temporal refinement of occlusion masks across a clip (paper Eq. 2) and a flicker measure.

Clip tensors are (B, F, ...) with F frames. Flows between consecutive frames come as two
(B, F-1, 2, H, W) stacks, as an optical-flow model produces them pairwise:
``flows_forward[:, t]`` maps frame t to t+1 (on frame t's grid) and ``flows_backward[:, t]``
maps frame t+1 to t (on frame t+1's grid).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from dvg.geometry.flow import consistency, warp
from dvg.geometry.guards import check_finite, check_flow, check_mask


@dataclass(frozen=True)
class ClipConfidence:
    """Forward-backward confidences of a clip's consecutive flows.

    Attributes:
        forward: (B, F-1, H, W) bool, trust in ``flows_forward[:, t]`` on frame t's grid.
        backward: (B, F-1, H, W) bool, trust in ``flows_backward[:, t]`` on frame t+1's grid.
    """

    forward: Tensor
    backward: Tensor


def _check_clip_flows(masks: Tensor, flows: Tensor, name: str) -> None:
    b, f, h, w = masks.shape
    if flows.shape != (b, f - 1, 2, h, w):
        raise ValueError(
            f"{name} must have shape (B, F-1, 2, H, W) = {(b, f - 1, 2, h, w)}, "
            f"got {tuple(flows.shape)}"
        )
    check_finite(flows, name)


def _check_clip_confidence(masks: Tensor, confidence: Tensor, name: str) -> None:
    b, f, h, w = masks.shape
    if confidence.shape != (b, f - 1, h, w):
        raise ValueError(
            f"{name} must have shape (B, F-1, H, W) = {(b, f - 1, h, w)}, "
            f"got {tuple(confidence.shape)}"
        )


def clip_flow_confidence(
    flows_forward: Tensor, flows_backward: Tensor, *, motion_boundary: bool = False
) -> ClipConfidence:
    """Forward-backward confidence C of every consecutive flow of a clip, both directions.

    Args:
        flows_forward: (B, F-1, 2, H, W), frame t -> t+1.
        flows_backward: (B, F-1, 2, H, W), frame t+1 -> t.
        motion_boundary: also distrust Lai et al. motion boundaries.

    Returns:
        :class:`ClipConfidence`.
    """
    if flows_forward.ndim != 5 or flows_forward.shape[2] != 2 or flows_forward.numel() == 0:
        raise ValueError(
            f"flows_forward must have shape (B, F-1, 2, H, W), got {tuple(flows_forward.shape)}"
        )
    if flows_backward.shape != flows_forward.shape:
        raise ValueError(
            f"flows_backward {tuple(flows_backward.shape)} must match flows_forward "
            f"{tuple(flows_forward.shape)}"
        )
    b, pairs, _, h, w = flows_forward.shape
    fwd = flows_forward.reshape(b * pairs, 2, h, w)
    bwd = flows_backward.reshape(b * pairs, 2, h, w)
    check_flow(fwd, "flows_forward")
    check_flow(bwd, "flows_backward")
    forward = consistency(fwd, bwd, motion_boundary=motion_boundary)
    backward = consistency(bwd, fwd, motion_boundary=motion_boundary)
    return ClipConfidence(
        forward=forward.view(b, pairs, h, w), backward=backward.view(b, pairs, h, w)
    )


def _warp_frames(frames: Tensor, flows: Tensor) -> Tensor:
    """Warp (B, N, H, W) frames by (B, N, 2, H, W) flows, frame by frame."""
    b, n, h, w = frames.shape
    warped = warp(frames.reshape(b * n, 1, h, w), flows.reshape(b * n, 2, h, w))
    return warped.view(b, n, h, w)


def refine_occlusion_masks(
    masks: Tensor,
    flows_forward: Tensor,
    flows_backward: Tensor,
    confidence: ClipConfidence,
) -> Tensor:
    """Paper Eq. 2: m^t(p) = 1 where sum_{k in {t-1, t+1}} m^k(p + f_{t->k}(p)) * C_k(p) >= 1.

    Neighbour masks are sampled bilinearly, so one neighbour alone sets a pixel only where its
    sample lies wholly inside its mask, and two partial samples can add up. C is the
    forward-backward confidence of the flow to that neighbour (the paper's single C, made
    per-neighbour). The first and last frames use their one neighbour. A single pass: a pixel is
    only ever added, never removed.

    Args:
        masks: (B, F, H, W) bool or float in {0, 1}, occlusion masks on the source view.
        flows_forward: (B, F-1, 2, H, W), frame t -> t+1 of the source view.
        flows_backward: (B, F-1, 2, H, W), frame t+1 -> t.
        confidence: from :func:`clip_flow_confidence` (or any bool / [0, 1] weights of the
            same shapes; all zero leaves the masks unchanged).

    Returns:
        (B, F, H, W) bool refined masks.
    """
    check_mask(masks, "masks", 4)
    _check_clip_flows(masks, flows_forward, "flows_forward")
    _check_clip_flows(masks, flows_backward, "flows_backward")
    _check_clip_confidence(masks, confidence.forward, "confidence.forward")
    _check_clip_confidence(masks, confidence.backward, "confidence.backward")

    dtype = flows_forward.dtype if flows_forward.is_floating_point() else torch.float32
    m = masks.to(dtype)
    votes = torch.zeros_like(m)
    # Frame t looks at t+1 through the forward flow, and frame t+1 looks at t through the
    # backward flow; each vote is weighted by the confidence of the flow it used.
    votes[:, :-1] += _warp_frames(m[:, 1:], flows_forward) * confidence.forward.to(dtype)
    votes[:, 1:] += _warp_frames(m[:, :-1], flows_backward) * confidence.backward.to(dtype)
    # A tiny tolerance absorbs bilinear round-off (a sample that is 1 - 1e-7 counts as 1).
    return (m > 0.5) | (votes >= 1 - 1e-4)


def mask_flicker(masks: Tensor, flows_forward: Tensor, confidence_forward: Tensor) -> Tensor:
    """Motion-compensated temporal flicker of a mask sequence.

    The mean over consecutive pairs of ``|m^t - m^{t+1}(p + f_{t->t+1}(p))|`` over pixels whose
    forward flow is trusted: 0 when each mask follows the scene motion exactly, larger the more
    pixels toggle from frame to frame. Masks are compared as {0, 1}; the warped neighbour is
    sampled with nearest-neighbour so a toggle counts fully.

    Args:
        masks: (B, F, H, W) bool or {0, 1} float, F >= 2.
        flows_forward: (B, F-1, 2, H, W), frame t -> t+1.
        confidence_forward: (B, F-1, H, W) bool, trust in each forward flow.

    Returns:
        (B,) flicker in [0, 1].
    """
    check_mask(masks, "masks", 4)
    if masks.shape[1] < 2:
        raise ValueError(f"masks needs at least 2 frames, got shape {tuple(masks.shape)}")
    _check_clip_flows(masks, flows_forward, "flows_forward")
    _check_clip_confidence(masks, confidence_forward, "confidence_forward")
    b, f, h, w = masks.shape
    m = (masks > 0.5).to(flows_forward.dtype)
    nxt = warp(
        m[:, 1:].reshape(-1, 1, h, w), flows_forward.reshape(-1, 2, h, w), mode="nearest"
    ).view(b, f - 1, h, w)
    weight = confidence_forward.to(m.dtype)
    difference = (m[:, :-1] - nxt).abs() * weight
    return difference.sum(dim=(1, 2, 3)) / weight.sum(dim=(1, 2, 3)).clamp_min(1)
