"""Pinhole cameras: unprojection, rigid transforms, projection and the flow they induce."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from dvg.geometry.guards import check_depth, check_image, check_matrices


def pixel_grid(
    height: int, width: int, *, device: torch.device | None = None, dtype: torch.dtype | None = None
) -> Tensor:
    """Pixel-centre coordinates: out[0, 0, v, u] = u (x) and out[0, 1, v, u] = v (y).

    ``dtype`` defaults to torch's default floating dtype.

    Returns:
        (1, 2, H, W).
    """
    if height <= 0 or width <= 0:
        raise ValueError(f"height and width must be positive, got {height}x{width}")
    dtype = dtype or torch.get_default_dtype()
    ys, xs = torch.meshgrid(
        torch.arange(height, device=device, dtype=dtype),
        torch.arange(width, device=device, dtype=dtype),
        indexing="ij",
    )
    return torch.stack([xs, ys]).unsqueeze(0)


def unproject(depth: Tensor, K: Tensor) -> Tensor:
    """Lift every pixel to its 3D point X = Z * K^-1 [x, y, 1] in the camera frame.

    Args:
        depth: (B, 1, H, W) z-depth, finite and > 0.
        K: (B, 3, 3) intrinsics.

    Returns:
        (B, 3, H, W) points.
    """
    check_depth(depth, "depth")
    check_matrices(K, "K", depth.shape[0], 3, 3)
    b, _, h, w = depth.shape
    grid = pixel_grid(h, w, device=depth.device, dtype=depth.dtype)
    homogeneous = torch.cat([grid, torch.ones_like(grid[:, :1])], dim=1).flatten(2)  # (1, 3, HW)
    rays = torch.linalg.inv(K.to(depth.dtype)) @ homogeneous  # (B, 3, HW)
    return rays.view(b, 3, h, w) * depth


def transform_points(points: Tensor, T: Tensor) -> Tensor:
    """Apply a rigid 4x4 transform: out = R @ X + t.

    Args:
        points: (B, 3, H, W).
        T: (B, 4, 4); only the top 3x4 block is used.

    Returns:
        (B, 3, H, W).
    """
    check_image(points, "points", channels=3)
    check_matrices(T, "T", points.shape[0], 4, 4)
    T = T.to(points.dtype)
    flat = points.flatten(2)
    return (T[:, :3, :3] @ flat + T[:, :3, 3:]).view_as(points)


def project(points: Tensor, K: Tensor, eps: float = 1e-8) -> tuple[Tensor, Tensor]:
    """Perspective projection x = K X / Z.

    Args:
        points: (B, 3, H, W) in the camera frame.
        K: (B, 3, 3).
        eps: smallest z treated as in front of the camera.

    Returns:
        ``(pixels, in_front)``: (B, 2, H, W) image coordinates and (B, 1, H, W) bool, True where
        z > eps (elsewhere the coordinates are meaningless but finite).
    """
    check_image(points, "points", channels=3)
    check_matrices(K, "K", points.shape[0], 3, 3)
    z = points[:, 2:3]
    in_front = z > eps
    safe_z = torch.where(in_front, z, torch.ones_like(z))
    xy = points[:, :2] / safe_z
    K = K.to(points.dtype)
    x = (
        K[:, 0, 0, None, None] * xy[:, 0]
        + K[:, 0, 1, None, None] * xy[:, 1]
        + K[:, 0, 2, None, None]
    )
    y = K[:, 1, 1, None, None] * xy[:, 1] + K[:, 1, 2, None, None]
    return torch.stack([x, y], dim=1), in_front


@dataclass(frozen=True)
class Reprojection:
    """Where each source pixel lands in a target camera.

    Attributes:
        flow: (B, 2, H, W) target position minus source position, in pixels (channel 0 = x).
        depth: (B, 1, H, W) z-depth of each source point in the target camera frame.
        in_front: (B, 1, H, W) bool, True where the point is in front of the target camera.
    """

    flow: Tensor
    depth: Tensor
    in_front: Tensor


def reprojection_flow(
    depth: Tensor, K_src: Tensor, T_src_to_tgt: Tensor, K_tgt: Tensor | None = None
) -> Reprojection:
    """Source -> target flow field of a static scene under any 6-DoF relative pose.

    Args:
        depth: (B, 1, H, W) source z-depth, finite and > 0.
        K_src: (B, 3, 3) source intrinsics.
        T_src_to_tgt: (B, 4, 4) relative pose, X_tgt = R X_src + t (for world-to-camera poses
            T_src and T_tgt this is T_tgt @ inv(T_src)).
        K_tgt: (B, 3, 3) target intrinsics; ``K_src`` when omitted.

    Returns:
        :class:`Reprojection` with the flow, target depth and in-front mask.
    """
    points = unproject(depth, K_src)
    moved = transform_points(points, T_src_to_tgt)
    pixels, in_front = project(moved, K_src if K_tgt is None else K_tgt)
    grid = pixel_grid(*depth.shape[-2:], device=depth.device, dtype=depth.dtype)
    return Reprojection(flow=pixels - grid, depth=moved[:, 2:3], in_front=in_front)


def stereo_pose(
    baseline: float | Tensor, batch: int = 1, dtype: torch.dtype = torch.float32
) -> Tensor:
    """Relative pose source eye -> target eye for a rectified pair: X_tgt = X_src - [b, 0, 0].

    Args:
        baseline: eye distance (positive: the target eye is to the right), scalar or (B,).
        batch: B when ``baseline`` is a scalar.

    Returns:
        (B, 4, 4).
    """
    b = torch.as_tensor(baseline, dtype=dtype)
    b = b.expand(batch) if b.ndim == 0 else b
    T = torch.eye(4, dtype=dtype, device=b.device).repeat(b.shape[0], 1, 1)
    T[:, 0, 3] = -b
    return T


def stereo_flow(disparity: Tensor) -> Tensor:
    """Source -> target flow of a rectified pair: a pixel moves by (-d, 0).

    The target eye sits to the right of the source eye; for the opposite direction (target ->
    source, or a left eye) pass ``-disparity``.

    Args:
        disparity: (B, 1, H, W) pixel disparity.

    Returns:
        (B, 2, H, W).
    """
    check_image(disparity, "disparity", channels=1)
    return torch.cat([-disparity, torch.zeros_like(disparity)], dim=1)
