"""Argument checks shared by the geometry functions.

Every public geometry function validates its tensors here, so a wrong shape, an empty image or an
invalid depth fails with a ``ValueError`` that names the argument instead of producing a silently
wrong answer.
"""

from __future__ import annotations

import torch
from torch import Tensor


def check_image(x: Tensor, name: str, channels: int | None = None) -> None:
    """Require a non-empty floating (B, C, H, W) tensor, with C == ``channels`` when given."""
    if not isinstance(x, Tensor):
        raise ValueError(f"{name} must be a torch.Tensor, got {type(x).__name__}")
    if x.ndim != 4:
        raise ValueError(f"{name} must have shape (B, C, H, W), got {tuple(x.shape)}")
    if x.numel() == 0:
        raise ValueError(f"{name} is empty: shape {tuple(x.shape)}")
    if channels is not None and x.shape[1] != channels:
        raise ValueError(
            f"{name} must have {channels} channel(s) (B, {channels}, H, W), got {tuple(x.shape)}"
        )
    if not x.is_floating_point():
        raise ValueError(f"{name} must be a floating tensor, got {x.dtype}")


def check_same_grid(a: Tensor, a_name: str, b: Tensor, b_name: str) -> None:
    """Require equal batch size and spatial size (the channel count may differ)."""
    if a.shape[0] != b.shape[0] or a.shape[-2:] != b.shape[-2:]:
        raise ValueError(
            f"{a_name} {tuple(a.shape)} and {b_name} {tuple(b.shape)} must share batch size "
            "and (H, W)"
        )


def check_flow(flow: Tensor, name: str, like: Tensor | None = None, like_name: str = "") -> None:
    """Require a finite (B, 2, H, W) flow, on the same grid as ``like`` when given."""
    check_image(flow, name, channels=2)
    check_finite(flow, name)
    if like is not None:
        check_same_grid(flow, name, like, like_name)


def check_finite(x: Tensor, name: str) -> None:
    """Require every element to be finite (no NaN, no +-inf).

    Exact and cheap: a NaN or an infinity makes the sum non-finite, so a finite sum (one read,
    no temporaries) proves every element finite; only a non-finite sum, which a large but
    finite tensor can also give by overflowing, pays for the element-wise check.
    """
    if not x.is_floating_point():
        return
    # Half-precision sums would overflow their own range early: add them up in float32.
    total = x.sum(dtype=torch.float64 if x.dtype == torch.float64 else torch.float32)
    if bool(torch.isfinite(total)):
        return
    if not bool(torch.isfinite(x).all()):
        raise ValueError(f"{name} contains NaN or infinite values")


def check_depth(depth: Tensor, name: str = "depth") -> None:
    """Require a (B, 1, H, W) depth map that is finite and strictly positive."""
    check_image(depth, name, channels=1)
    check_finite(depth, name)
    if not bool((depth > 0).all()):
        raise ValueError(f"{name} must be strictly positive (zero or negative depth found)")


def check_mask(x: Tensor, name: str, ndim: int) -> None:
    """Require a non-empty bool or floating tensor of ``ndim`` dimensions."""
    if not isinstance(x, Tensor):
        raise ValueError(f"{name} must be a torch.Tensor, got {type(x).__name__}")
    if x.ndim != ndim:
        raise ValueError(f"{name} must have {ndim} dimensions, got shape {tuple(x.shape)}")
    if x.numel() == 0:
        raise ValueError(f"{name} is empty: shape {tuple(x.shape)}")
    if not (x.dtype == torch.bool or x.is_floating_point()):
        raise ValueError(f"{name} must be bool or floating, got {x.dtype}")


def check_matrices(m: Tensor, name: str, batch: int, rows: int, cols: int) -> None:
    """Require a (B, rows, cols) floating tensor with finite entries and B == ``batch``."""
    if not isinstance(m, Tensor) or m.ndim != 3 or m.shape[1:] != (rows, cols):
        shape = tuple(m.shape) if isinstance(m, Tensor) else type(m).__name__
        raise ValueError(f"{name} must have shape (B, {rows}, {cols}), got {shape}")
    if m.shape[0] != batch:
        raise ValueError(f"{name} has batch size {m.shape[0]}, expected {batch}")
    if not m.is_floating_point():
        raise ValueError(f"{name} must be a floating tensor, got {m.dtype}")
    check_finite(m, name)


def per_sample(value: float | Tensor, name: str, like: Tensor) -> Tensor:
    """Turn a Python scalar or a (B,) tensor into a (B, 1, 1, 1) tensor on ``like``'s device."""
    batch = like.shape[0]
    v = torch.as_tensor(value, dtype=like.dtype, device=like.device)
    if v.ndim == 0:
        v = v.expand(batch)
    if v.shape != (batch,):
        raise ValueError(f"{name} must be a scalar or shape ({batch},), got {tuple(v.shape)}")
    check_finite(v, name)
    return v.view(batch, 1, 1, 1)
