"""Ray-cast rendering of a stereo clip with exact depth, disparity, occlusion and flow.

Deliberately independent of ``dvg.geometry``: its own pixel grid, projection and visibility
test, so the ground truth never reuses the code it is used to judge.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import torch

from dvg.synthetic.scene import RayHits, Scene

_DTYPE = torch.float64
_VISIBILITY_RTOL = 1e-6  # a nearer hit within this fraction of the distance does not occlude


@dataclass(frozen=True, eq=False)
class ClipRender:
    """Exact ground truth of a rendered stereo clip of F frames of H x W pixels.

    Attributes:
        left: (F, 3, H, W) float32 RGB in [0, 1], the source (left-eye) view.
        depth: (F, 1, H, W) float32 z-depth (> 0) of the left view.
        right: (F, 3, H, W) float32 RGB of the right eye, ray cast from the right camera.
        right_depth: (F, 1, H, W) float32 z-depth of the right view.
        disparity: (F, 1, H, W) float32 ``fx * baseline / depth`` of the left view.
        right_disparity: (F, 1, H, W) float32 ``fx * baseline / right_depth``.
        occlusion_left: (F, 1, H, W) bool, left pixels whose surface point the right eye does not
            see (hidden by nearer geometry or projecting outside the right image).
        occlusion_right: (F, 1, H, W) bool, right pixels whose point the left eye does not see.
        flow_next: (F-1, 2, H, W) float32, left-view flow from frame t to t+1 (channel 0 = x);
            NaN only where the point is behind the frame-(t+1) camera (no projection exists).
        flow_prev: (F-1, 2, H, W) float32; ``flow_prev[t]`` lies on frame t+1's pixel grid and
            points into frame t.
        visible_next: (F-1, 1, H, W) bool, frame-t point visible in frame t+1.
        visible_prev: (F-1, 1, H, W) bool, frame-(t+1) point visible in frame t.
        K: (3, 3) float32 intrinsics (both eyes).
        world_to_camera: (F, 4, 4) float32 left-eye extrinsics.
        baseline: distance between the eyes in world units (right eye at +baseline along x).
        fps: frame rate.
    """

    left: torch.Tensor
    depth: torch.Tensor
    right: torch.Tensor
    right_depth: torch.Tensor
    disparity: torch.Tensor
    right_disparity: torch.Tensor
    occlusion_left: torch.Tensor
    occlusion_right: torch.Tensor
    flow_next: torch.Tensor
    flow_prev: torch.Tensor
    visible_next: torch.Tensor
    visible_prev: torch.Tensor
    K: torch.Tensor
    world_to_camera: torch.Tensor
    baseline: float
    fps: float

    @property
    def fx(self) -> float:
        return float(self.K[0, 0])

    @property
    def num_frames(self) -> int:
        return self.left.shape[0]

    @property
    def height(self) -> int:
        return self.left.shape[2]

    @property
    def width(self) -> int:
        return self.left.shape[3]


@dataclass(frozen=True)
class _Camera:
    """A posed pinhole camera: ``X_cam = rotation X_world + translation``."""

    K: torch.Tensor
    rotation: torch.Tensor
    translation: torch.Tensor
    height: int
    width: int

    @property
    def center(self) -> torch.Tensor:
        return -self.rotation.T @ self.translation

    def project(self, points: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """World points (N, 3) -> image points (N, 2) and z-depths (N,); NaN image points where
        z <= 0 (no projection exists)."""
        cam = points @ self.rotation.T + self.translation
        z = cam[:, 2]
        image = (cam @ self.K.T)[:, :2] / z[:, None]
        return torch.where((z > 0)[:, None], image, torch.nan), z

    def sees(self, scene: Scene, points: torch.Tensor, frame: int) -> torch.Tensor:
        """(N,) bool: world points (N, 3) lie in front of the camera, inside the image area
        ``[-0.5, W - 0.5] x [-0.5, H - 0.5]`` and are not hidden by a nearer surface."""
        image, z = self.project(points)
        inside = (z > 0) & (image[:, 0] >= -0.5) & (image[:, 0] <= self.width - 0.5)
        inside &= (image[:, 1] >= -0.5) & (image[:, 1] <= self.height - 0.5)
        visible = torch.zeros_like(inside)
        center = self.center
        # Cast from the centre towards each point: the point itself is hit at t = 1.
        hits = scene.cast(center, points[inside] - center, frame)
        visible[inside] = hits.t >= 1.0 - _VISIBILITY_RTOL
        return visible


def _pixel_grid(height: int, width: int) -> torch.Tensor:
    """(H * W, 2) float64 pixel centres ``(u, v)`` in row-major order."""
    v, u = torch.meshgrid(
        torch.arange(height, dtype=_DTYPE), torch.arange(width, dtype=_DTYPE), indexing="ij"
    )
    return torch.stack([u.reshape(-1), v.reshape(-1)], dim=1)


def _cast_view(
    scene: Scene, camera: _Camera, directions: torch.Tensor, frame: int, eye: str
) -> RayHits:
    hits = scene.cast(camera.center, directions, frame)
    missed = int(hits.missed.sum())
    if missed:
        raise ValueError(
            f"frame {frame}: {missed} of {directions.shape[0]} rays of the {eye} view hit nothing; "
            "add a background (e.g. an infinite back-wall Plane)"
        )
    return hits


@contextlib.contextmanager
def _one_thread() -> Iterator[None]:
    """torch's intra-op threads off for the block, as they were after it.

    The ray caster runs thousands of small ops per frame; splitting each across threads costs
    more than it gains: the demo scene at 128 x 224 took 1.0 s of CPU in one thread and 9.6 s in
    two on the shared 2-core machine (interleaved runs, one process).
    """
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(threads)


def render_clip(
    scene: Scene,
    world_to_camera: torch.Tensor,
    K: torch.Tensor,
    height: int,
    width: int,
    baseline: float,
    fps: float = 8.0,
    on_step: Callable[[int, int], None] | None = None,
) -> ClipRender:
    """Render ``scene`` along a camera path by ray casting, with exact stereo and flow truth.

    Args:
        scene: the scene; moving primitives are posed at each frame index.
        world_to_camera: (F, 4, 4) left-eye extrinsics, ``X_cam = R X_world + t``.
        K: (3, 3) pinhole intrinsics ``[[fx, 0, cx], [0, fy, cy], [0, 0, 1]]``.
        height, width: image size H, W in pixels.
        baseline: > 0, the right eye sits at +baseline along the left camera's x axis.
        fps: frame rate recorded in the result.
        on_step: called as ``on_step(done, total)`` after each frame's two views and each
            frame pair's flow (``total = 2 F - 1``), for a progress display.

    Raises:
        ValueError: on bad shapes, or naming the frame when a ray of either eye hits nothing.
    """
    w2c = torch.as_tensor(world_to_camera, dtype=_DTYPE)
    K64 = torch.as_tensor(K, dtype=_DTYPE)
    if w2c.ndim != 3 or w2c.shape[1:] != (4, 4) or w2c.shape[0] < 1:
        raise ValueError(f"world_to_camera must be (F, 4, 4), got {tuple(w2c.shape)}")
    if K64.shape != (3, 3) or K64[2].tolist() != [0.0, 0.0, 1.0] or K64[0, 1] != 0:
        raise ValueError("K must be a (3, 3) pinhole matrix [[fx, 0, cx], [0, fy, cy], [0, 0, 1]]")
    if height < 1 or width < 1:
        raise ValueError(f"image size must be positive, got {height} x {width}")
    if baseline <= 0:
        raise ValueError(f"baseline must be > 0, got {baseline}")
    with _one_thread():
        return _render(scene, w2c, K64, height, width, baseline, fps, on_step)


def _render(
    scene: Scene,
    w2c: torch.Tensor,
    K64: torch.Tensor,
    height: int,
    width: int,
    baseline: float,
    fps: float,
    on_step: Callable[[int, int], None] | None,
) -> ClipRender:
    num_frames = w2c.shape[0]
    steps = 2 * num_frames - 1

    def step_done(done: int) -> None:
        if on_step is not None:
            on_step(done, steps)

    pixels = _pixel_grid(height, width)
    rays = torch.cat([pixels, torch.ones_like(pixels[:, :1])], dim=1) @ torch.linalg.inv(K64).T
    rays[:, 2] = 1.0  # exactly: the ray parameter of a hit is then its z-depth
    eye_shift = torch.tensor([baseline, 0.0, 0.0], dtype=_DTYPE)  # X_right = X_left - eye_shift

    def camera(f: int, right_eye: bool = False) -> _Camera:
        translation = w2c[f, :3, 3] - eye_shift if right_eye else w2c[f, :3, 3]
        return _Camera(K64, w2c[f, :3, :3], translation, height, width)

    left, right, depth, right_depth, occ_left, occ_right, left_hits = [], [], [], [], [], [], []
    for f in range(num_frames):
        left_cam, right_cam = camera(f), camera(f, right_eye=True)
        directions = rays @ left_cam.rotation  # R^T r in row-vector form; same for both eyes
        hits_l = _cast_view(scene, left_cam, directions, f, "left")
        hits_r = _cast_view(scene, right_cam, directions, f, "right")
        points_l = left_cam.center + hits_l.t[:, None] * directions
        points_r = right_cam.center + hits_r.t[:, None] * directions
        left.append(scene.shade(hits_l, f))
        right.append(scene.shade(hits_r, f))
        depth.append(hits_l.t)
        right_depth.append(hits_r.t)
        occ_left.append(~right_cam.sees(scene, points_l, f))
        occ_right.append(~left_cam.sees(scene, points_r, f))
        left_hits.append(hits_l)
        step_done(f + 1)

    flow_next, flow_prev, visible_next, visible_prev = [], [], [], []
    for f in range(num_frames - 1):
        for src, dst, flows, visible in (
            (f, f + 1, flow_next, visible_next),
            (f + 1, f, flow_prev, visible_prev),
        ):
            hits = left_hits[src]
            points = scene.to_world(hits.index, hits.local, dst)  # the surface point at dst
            image, _ = camera(dst).project(points)
            flows.append(image - pixels)
            visible.append(camera(dst).sees(scene, points, dst))
        step_done(num_frames + f + 1)

    def images(values: list[torch.Tensor], channels: int, dtype: torch.dtype) -> torch.Tensor:
        if not values:
            return torch.zeros(0, channels, height, width, dtype=dtype)
        stacked = torch.stack(values).reshape(len(values), height, width, channels)
        return stacked.permute(0, 3, 1, 2).contiguous().to(dtype)

    fx = float(K64[0, 0])
    depth_t = images(depth, 1, _DTYPE)
    right_depth_t = images(right_depth, 1, _DTYPE)
    return ClipRender(
        left=images(left, 3, torch.float32),
        depth=depth_t.float(),
        right=images(right, 3, torch.float32),
        right_depth=right_depth_t.float(),
        disparity=(fx * baseline / depth_t).float(),
        right_disparity=(fx * baseline / right_depth_t).float(),
        occlusion_left=images(occ_left, 1, torch.bool),
        occlusion_right=images(occ_right, 1, torch.bool),
        flow_next=images(flow_next, 2, torch.float32),
        flow_prev=images(flow_prev, 2, torch.float32),
        visible_next=images(visible_next, 1, torch.bool),
        visible_prev=images(visible_prev, 1, torch.bool),
        K=K64.float(),
        world_to_camera=w2c.float(),
        baseline=float(baseline),
        fps=float(fps),
    )
