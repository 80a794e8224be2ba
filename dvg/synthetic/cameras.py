"""Pinhole intrinsics and camera paths as ``world_to_camera`` matrices (OpenCV camera frame)."""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

import torch

from dvg.synthetic.scene import yaw_rotation

_DTYPE = torch.float64


def intrinsics(fx: float, fy: float, cx: float, cy: float) -> torch.Tensor:
    """Pinhole matrix ``[[fx, 0, cx], [0, fy, cy], [0, 0, 1]]``. Returns: (3, 3) float64."""
    return torch.tensor([[fx, 0.0, cx], [0.0, fy, cy], [0.0, 0.0, 1.0]], dtype=_DTYPE)


def world_to_camera(rotation: torch.Tensor, center: torch.Tensor) -> torch.Tensor:
    """Extrinsics of a camera with camera-to-world ``rotation`` (3, 3) whose centre is ``center``
    (3,): ``X_cam = R^T (X_world - center)``. Returns: (4, 4) float64."""
    pose = torch.eye(4, dtype=_DTYPE)
    pose[:3, :3] = rotation.T
    pose[:3, 3] = -rotation.T @ center
    return pose


def look_at(eye: Sequence[float], target: Sequence[float]) -> torch.Tensor:
    """``world_to_camera`` (4, 4) of a camera at ``eye`` looking at ``target``, image rows
    pointing down the world y axis (world "up" is -y)."""
    eye_t = torch.as_tensor(eye, dtype=_DTYPE)
    forward = torch.as_tensor(target, dtype=_DTYPE) - eye_t
    forward = forward / forward.norm()
    up = torch.tensor([0.0, -1.0, 0.0], dtype=_DTYPE)
    right = torch.linalg.cross(forward, up)
    if right.norm() < 1e-9:
        raise ValueError("look_at: viewing direction is vertical")
    right = right / right.norm()
    down = torch.linalg.cross(forward, right)
    return world_to_camera(torch.stack([right, down, forward], dim=1), eye_t)


def _yawed_path(num_frames: int, yaws: torch.Tensor, centers: torch.Tensor) -> torch.Tensor:
    if num_frames < 1:
        raise ValueError(f"num_frames must be >= 1, got {num_frames}")
    return torch.stack(
        [world_to_camera(yaw_rotation(float(y)), c) for y, c in zip(yaws, centers, strict=True)]
    )


def static_path(
    num_frames: int, position: Sequence[float] = (0.0, 0.0, 0.0), yaw: float = 0.0
) -> torch.Tensor:
    """A camera that does not move. Returns: (F, 4, 4) float64 world_to_camera."""
    center = torch.as_tensor(position, dtype=_DTYPE)
    return _yawed_path(num_frames, torch.full((num_frames,), yaw), center.expand(num_frames, 3))


def pan_path(
    num_frames: int,
    yaw_per_frame: float,
    position: Sequence[float] = (0.0, 0.0, 0.0),
    start_yaw: float = 0.0,
) -> torch.Tensor:
    """A camera turning about the vertical axis through its centre (positive: pans right)."""
    yaws = start_yaw + yaw_per_frame * torch.arange(num_frames, dtype=_DTYPE)
    center = torch.as_tensor(position, dtype=_DTYPE)
    return _yawed_path(num_frames, yaws, center.expand(num_frames, 3))


def _translated_path(
    num_frames: int, step: float, axis: int, position: Sequence[float], yaw: float
) -> torch.Tensor:
    direction = yaw_rotation(yaw)[:, axis]
    frames = torch.arange(num_frames, dtype=_DTYPE)[:, None]
    centers = torch.as_tensor(position, dtype=_DTYPE) + frames * step * direction
    return _yawed_path(num_frames, torch.full((num_frames,), yaw), centers)


def dolly_path(
    num_frames: int, step: float, position: Sequence[float] = (0.0, 0.0, 0.0), yaw: float = 0.0
) -> torch.Tensor:
    """A camera moving ``step`` world units per frame along its viewing direction."""
    return _translated_path(num_frames, step, 2, position, yaw)


def truck_path(
    num_frames: int, step: float, position: Sequence[float] = (0.0, 0.0, 0.0), yaw: float = 0.0
) -> torch.Tensor:
    """A camera moving ``step`` world units per frame along its x axis (to the right)."""
    return _translated_path(num_frames, step, 0, position, yaw)


def orbit_path(
    num_frames: int,
    target: Sequence[float],
    radius: float,
    angle_per_frame: float,
    start_angle: float = 0.0,
    height: float = 0.0,
) -> torch.Tensor:
    """A camera circling ``target`` at ``radius`` (horizontally) and ``height`` world units above
    it, always looking at it. At angle 0 it sits at ``target - radius * z``; positive angles
    move it towards -x."""
    eyes = []
    for f in range(num_frames):
        angle = start_angle + angle_per_frame * f
        offset = (-radius * math.sin(angle), -height, -radius * math.cos(angle))
        eyes.append([t + o for t, o in zip(target, offset, strict=True)])
    if num_frames < 1:
        raise ValueError(f"num_frames must be >= 1, got {num_frames}")
    return torch.stack([look_at(eye, target) for eye in eyes])


CAMERA_PATHS: dict[str, Callable[..., torch.Tensor]] = {
    "static": static_path,
    "pan": pan_path,
    "dolly": dolly_path,
    "truck": truck_path,
    "orbit": orbit_path,
}
