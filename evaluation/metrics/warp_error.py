"""Warping error E_warp (Lai et al., "Learning Blind Video Temporal Consistency", ECCV 2018).

For frames O_0 ... O_{T-1} and flows computed on a video (the output itself, or the input video
the output was made from, as Lai et al. do), per pair of consecutive frames (t-1, t):

    E_t = sum_px M_t * mean_c (warp(O_t, F_{t-1->t}) - O_{t-1})^2 / sum_px M_t

where warp(O_t, F_{t-1->t}) samples O_t at p + F_{t-1->t}(p), bringing O_t onto frame t-1's grid,
and M_t (on t-1's grid) is 1 where F_{t-1->t} passes the forward-backward check, is off motion
boundaries and lands inside the frame (``dvg.geometry.flow.forward_backward_consistency`` with
``motion_boundary=True``). Squared errors are averaged over the RGB channels, as Lai et al.'s
evaluate_WarpError.py does (its occlusion mask is read as a 3-channel image, so its normaliser
counts every channel). A pair with no valid pixel contributes 0 (their fallback). E_warp is the
mean of E_t over the pairs; the SpatialDreamer paper reports it x 10^-3
(:func:`in_paper_units`).

Pair i is frames (i, i+1); ``pairs`` selects pairs, e.g. only those straddling a window boundary.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

import numpy as np
import torch
from torch import Tensor

from dvg.geometry.flow import backward_warp, forward_backward_consistency

if TYPE_CHECKING:
    from dvg.backends import FlowBackend

PAIRS_PER_CHUNK = 8
PAPER_SCALE = 1e3  # the paper's table lists E_warp x 10^-3, i.e. the value times 1000


def in_paper_units(value: float | Tensor) -> float | Tensor:
    """E_warp as printed in the paper's tables (x 10^-3): ``value * 1000``."""
    return value * PAPER_SCALE


def _check_inputs(frames: Tensor, flows_forward: Tensor, flows_backward: Tensor) -> None:
    if not isinstance(frames, Tensor) or frames.ndim != 4 or frames.shape[1] != 3:
        raise ValueError(f"frames must be (T, 3, H, W), got {getattr(frames, 'shape', None)}")
    if not frames.is_floating_point():
        raise ValueError(f"frames must be floating in [0, 1], got {frames.dtype}")
    t, _, h, w = frames.shape
    if t < 2:
        raise ValueError(f"E_warp needs at least 2 frames, got {t}")
    for name, flow in (("flows_forward", flows_forward), ("flows_backward", flows_backward)):
        if not isinstance(flow, Tensor) or tuple(flow.shape) != (t - 1, 2, h, w):
            raise ValueError(
                f"{name} must be (T-1, 2, H, W) = {(t - 1, 2, h, w)}, "
                f"got {tuple(getattr(flow, 'shape', ()))}"
            )


def valid_masks(flows_forward: Tensor, flows_backward: Tensor) -> Tensor:
    """M_t of Lai et al.: non-occluded, off motion boundaries, in bounds.

    Args:
        flows_forward: (P, 2, H, W) F_{t-1->t} on frame t-1's grid.
        flows_backward: (P, 2, H, W) F_{t->t-1} on frame t's grid.

    Returns:
        (P, 1, H, W) bool on frame t-1's grid.
    """
    return forward_backward_consistency(
        flows_forward.float(), flows_backward.float(), motion_boundary=True
    )


def warp_errors(
    frames: Tensor,
    flows_forward: Tensor,
    flows_backward: Tensor,
    *,
    masks: Tensor | None = None,
) -> Tensor:
    """E_t for every pair of consecutive frames (Lai et al. 2018).

    Args:
        frames: (T, 3, H, W) in [0, 1], the video being measured.
        flows_forward: (T-1, 2, H, W), pair i holds F_{i->i+1} on frame i's grid (pixels, x first).
        flows_backward: (T-1, 2, H, W), pair i holds F_{i+1->i} on frame i+1's grid.
        masks: optional (T-1, 1, H, W) bool M_t replacing :func:`valid_masks`.

    Returns:
        (T-1,) float32 per-pair error (no x 10^-3 scaling).
    """
    _check_inputs(frames, flows_forward, flows_backward)
    t, _, h, w = frames.shape
    if masks is not None and (tuple(masks.shape) != (t - 1, 1, h, w) or masks.dtype != torch.bool):
        raise ValueError(f"masks must be (T-1, 1, H, W) = {(t - 1, 1, h, w)} bool")
    errors = []
    # Pairs in chunks: temporaries for a whole long video at full resolution would not fit.
    for start in range(0, t - 1, PAIRS_PER_CHUNK):
        stop = min(start + PAIRS_PER_CHUNK, t - 1)
        forward = flows_forward[start:stop].float()
        if masks is None:
            mask = valid_masks(forward, flows_backward[start:stop])
        else:
            mask = masks[start:stop]
        previous = frames[start:stop].float()
        warped = backward_warp(frames[start + 1 : stop + 1].float(), forward.to(previous))
        weight = mask.to(previous)
        squared = (warped - previous).square().mean(dim=1, keepdim=True) * weight
        count = weight.sum(dim=(1, 2, 3))
        errors.append(squared.sum(dim=(1, 2, 3)) / count.clamp(min=1))  # no valid pixel: 0
    return torch.cat(errors)


def _select(errors: Tensor, pairs: Sequence[int] | Tensor | np.ndarray | None) -> Tensor:
    if pairs is None:
        return errors
    index = torch.as_tensor(pairs, device=errors.device)
    if index.dtype == torch.bool:
        if tuple(index.shape) != tuple(errors.shape):
            raise ValueError(f"a bool pairs mask must have shape (T-1,) = {tuple(errors.shape)}")
        selected = errors[index]
    else:
        index = index.long().flatten()
        if index.numel() and (int(index.min()) < 0 or int(index.max()) >= errors.shape[0]):
            raise ValueError(f"pairs must index 0 ... {errors.shape[0] - 1}, got {index.tolist()}")
        selected = errors[index]
    if selected.numel() == 0:
        raise ValueError("pairs selects no frame pair")
    return selected


def warp_error(
    frames: Tensor,
    flows_forward: Tensor,
    flows_backward: Tensor,
    *,
    pairs: Sequence[int] | Tensor | np.ndarray | None = None,
    masks: Tensor | None = None,
) -> float:
    """E_warp (Lai et al. 2018): mean of :func:`warp_errors` over all pairs or over ``pairs``.

    ``pairs``: pair indices (pair i = frames i, i+1) or a (T-1,) bool mask; e.g. only the pairs
    that straddle a window boundary. Returns the raw value; :func:`in_paper_units` for the table.
    """
    errors = warp_errors(frames, flows_forward, flows_backward, masks=masks)
    return float(_select(errors, pairs).mean())


def to_uint8_frames(frames: Tensor) -> np.ndarray:
    """(T, 3, H, W) in [0, 1] -> (T, H, W, 3) uint8 RGB, the flow backends' input."""
    array = (frames.detach().float().clamp(0, 1) * 255).round().to(torch.uint8)
    return array.permute(0, 2, 3, 1).cpu().numpy()


def video_flows(flow_frames: Tensor, flow_backend: FlowBackend) -> tuple[Tensor, Tensor]:
    """Forward and backward flows between consecutive frames from a dvg ``FlowBackend``.

    Args:
        flow_frames: (T, 3, H, W) in [0, 1].
        flow_backend: a ``dvg.backends.FlowBackend`` (``flow(source, target)`` on (N, H, W, 3)
            uint8 -> (N, 2, H, W) flow source -> target), e.g. ``dis`` or ``raft``.

    Returns:
        flows_forward, flows_backward: (T-1, 2, H, W) float32 on the CPU.
    """
    video = to_uint8_frames(flow_frames)
    forward = flow_backend.flow(video[:-1], video[1:])
    backward = flow_backend.flow(video[1:], video[:-1])
    return torch.from_numpy(np.ascontiguousarray(forward)), torch.from_numpy(
        np.ascontiguousarray(backward)
    )


def warp_error_with_flow(
    frames: Tensor,
    flow_backend: FlowBackend,
    *,
    flow_frames: Tensor | None = None,
    pairs: Sequence[int] | Tensor | np.ndarray | None = None,
) -> float:
    """E_warp with flows estimated by a dvg ``FlowBackend`` (RAFT or DIS).

    Args:
        frames: (T, 3, H, W) in [0, 1], the video being measured.
        flow_backend: e.g. ``FLOW_BACKENDS.create(BackendSpec("dis"))``.
        flow_frames: (T, 3, H, W) video to estimate flow and masks on (Lai et al. use the input
            video); defaults to ``frames``.
        pairs: as in :func:`warp_error`.
    """
    source = frames if flow_frames is None else flow_frames
    if source.shape != frames.shape:
        raise ValueError(
            f"flow_frames {tuple(source.shape)} and frames {tuple(frames.shape)} must match"
        )
    forward, backward = video_flows(source, flow_backend)
    device = frames.device
    return warp_error(frames, forward.to(device), backward.to(device), pairs=pairs)
