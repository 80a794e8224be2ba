"""Named synthetic scenes: a registry of builders ``(seed, height, width, num_frames) ->
ClipSetup``. Geometry is fixed per scene; the seed draws the textures."""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch

from dvg.synthetic.cameras import intrinsics, orbit_path, static_path, truck_path
from dvg.synthetic.render import ClipRender, render_clip
from dvg.synthetic.scene import Box, Motion, Plane, Scene, yaw_rotation
from dvg.synthetic.textures import CheckerTexture, ImageTexture, SinusoidTexture, Texture

_X, _Y = (1.0, 0.0, 0.0), (0.0, 1.0, 0.0)


@dataclass(frozen=True, eq=False)
class ClipSetup:
    """Everything ``render_clip`` needs: scene, (F, 4, 4) path, (3, 3) K, size, baseline, fps."""

    scene: Scene
    world_to_camera: torch.Tensor
    K: torch.Tensor
    height: int
    width: int
    baseline: float
    fps: float = 8.0

    def render(self, on_step: Callable[[int, int], None] | None = None) -> ClipRender:
        return render_clip(
            self.scene,
            self.world_to_camera,
            self.K,
            self.height,
            self.width,
            self.baseline,
            fps=self.fps,
            on_step=on_step,
        )


def _wall(z: float, texture: Texture) -> Plane:
    """An infinite fronto-parallel plane at depth ``z`` (the background)."""
    return Plane(origin=(0.0, 0.0, z), axis_u=_X, axis_v=_Y, texture=texture)


def _ground(y: float, texture: Texture, pitch: float = 0.0) -> Plane:
    """An infinite floor at height ``y`` (y points down), rising by ``pitch`` radians with z."""
    axis_v = (0.0, -math.sin(pitch), math.cos(pitch))
    return Plane(origin=(0.0, y, 0.0), axis_u=_X, axis_v=axis_v, texture=texture)


def fronto_integer(
    seed: int = 0, height: int = 48, width: int = 64, num_frames: int = 1
) -> ClipSetup:
    """Static camera, fx = fy = width, baseline 0.1; three overlapping fronto-parallel rectangles
    at disparities 4, 7 and 11 px in front of a back wall at 1 px (all exact integers). Rectangle
    edges sit half-way between pixel centres; checker + sinusoid textures."""
    rng = np.random.default_rng(seed)
    fx, baseline = float(width), 0.1
    cx, cy = (width - 1) / 2, (height - 1) / 2
    # (disparity px, left/right/top/bottom image extent as fractions of the image size); the
    # back wall is at 1 px.
    layout = [
        (4, (0.10, 0.55, 0.15, 0.70)),
        (7, (0.42, 0.82, 0.35, 0.90)),
        (11, (0.22, 0.48, 0.55, 0.85)),
    ]
    primitives = [_wall(fx * baseline / 1, CheckerTexture.random(rng, cell=5 * baseline))]
    for disparity, (x0, x1, y0, y1) in layout:
        depth = fx * baseline / disparity
        # Edges half-way between pixel centres, so that every pixel is clearly in or out.
        u0, u1 = round(x0 * width) - 0.5, round(x1 * width) - 0.5
        v0, v1 = round(y0 * height) - 0.5, round(y1 * height) - 0.5
        center = ((u0 + u1) / 2 - cx) * depth / fx, ((v0 + v1) / 2 - cy) * depth / fx, depth
        half = (u1 - u0) / 2 * depth / fx, (v1 - v0) / 2 * depth / fx
        texture = CheckerTexture.random(rng, cell=5 * depth / fx)  # 5 px cells
        primitives.append(Plane(origin=center, half_extent=half, texture=texture))
    K = intrinsics(fx, fx, cx, cy)
    return ClipSetup(Scene(tuple(primitives)), static_path(num_frames), K, height, width, baseline)


def slanted_fractional(
    seed: int = 0, height: int = 48, width: int = 64, num_frames: int = 1
) -> ClipSetup:
    """Static camera, fx = 0.95 W != fy = 1.05 W, off-centre principal point; a back wall
    (z = 10), a floor, a fronto plane, a plane slanted by 40 degrees and a yawed box. The baseline
    puts disparities between about 4 and 15 px (fractional) at any size. Smooth textures with
    periods >= 2 world units (>= 12 px at the back wall at width 64)."""
    rng = np.random.default_rng(seed)
    fx, fy = 0.95 * width, 1.05 * width
    K = intrinsics(fx, fy, 0.45 * width + 0.3, 0.55 * height - 0.2)
    baseline = 15.0 * 2.8 / fx  # 15 px at the box front (z ~ 2.8)

    def smooth() -> SinusoidTexture:
        return SinusoidTexture.random(rng, min_period=2.0)

    slant = yaw_rotation(math.radians(40.0))
    scene = Scene(
        (
            _wall(10.0, smooth()),
            _ground(1.5, smooth()),
            Plane(origin=(1.5, -0.8, 6.5), half_extent=(1.0, 0.7), texture=smooth()),
            Plane(
                origin=(-1.3, -0.2, 5.0),
                axis_u=slant[:, 0],
                axis_v=_Y,
                half_extent=(1.2, 1.0),
                texture=smooth(),
            ),
            Box(
                center=(0.6, 0.6, 3.5),
                half_size=(0.5, 0.5, 0.5),
                rotation=yaw_rotation(math.radians(30.0)),
                texture=smooth(),
            ),
        )
    )
    return ClipSetup(scene, static_path(num_frames), K, height, width, baseline)


def boxes_orbit(seed: int = 0, height: int = 48, width: int = 64, num_frames: int = 8) -> ClipSetup:
    """Four boxes on a checkered ground (y = 1) before a back wall (z = 12), seen by a camera
    orbiting the look-at point (0, 0.3, 6) at radius 6 and 1 unit above it, 3 degrees per frame,
    the sweep centred on the view along +z. fx = fy = 0.9 W; disparity 12 px at depth 4."""
    rng = np.random.default_rng(seed)
    fx = 0.9 * width
    K = intrinsics(fx, fx, (width - 1) / 2, (height - 1) / 2)
    boxes = [  # (center x, z, half sizes, yaw degrees)
        (-1.6, 6.5, (0.5, 0.6, 0.5), 20.0),
        (0.2, 5.0, (0.4, 0.4, 0.4), -15.0),
        (1.7, 7.5, (0.6, 0.9, 0.5), 35.0),
        (-0.4, 8.5, (0.7, 0.5, 0.4), 0.0),
    ]
    primitives = [
        _wall(12.0, SinusoidTexture.random(rng, min_period=1.5)),
        _ground(1.0, CheckerTexture.random(rng, cell=0.5)),
    ]
    for x, z, half, yaw in boxes:
        primitives.append(
            Box(
                center=(x, 1.0 - half[1], z),
                half_size=half,
                rotation=yaw_rotation(math.radians(yaw)),
                texture=SinusoidTexture.random(rng, min_period=0.4),
            )
        )
    path = orbit_path(
        num_frames,
        (0.0, 0.3, 6.0),
        radius=6.0,
        angle_per_frame=math.radians(3),
        start_angle=-math.radians(1.5) * (num_frames - 1),
        height=1.0,
    )
    return ClipSetup(Scene(tuple(primitives)), path, K, height, width, 12.0 * 4.0 / fx)


def moving_objects(
    seed: int = 0, height: int = 48, width: int = 64, num_frames: int = 8
) -> ClipSetup:
    """A camera trucking right (0.05 per frame) past two boxes that move on their own: one slides
    right 0.12 per frame, the other approaches 0.1 per frame while turning 0.08 rad per frame.
    Ground y = 1, back wall z = 10; fx = fy = 0.9 W; disparity 12 px at depth 3."""
    rng = np.random.default_rng(seed)
    fx = 0.9 * width
    K = intrinsics(fx, fx, (width - 1) / 2, (height - 1) / 2)
    scene = Scene(
        (
            _wall(10.0, SinusoidTexture.random(rng, min_period=1.5)),
            _ground(1.0, CheckerTexture.random(rng, cell=0.5)),
            Box(
                center=(-1.0, 0.5, 5.0),
                half_size=(0.5, 0.5, 0.5),
                texture=CheckerTexture.random(rng, cell=0.25),
                motion=Motion(velocity=(0.12, 0, 0)),
            ),
            Box(
                center=(1.2, 0.4, 4.5),
                half_size=(0.4, 0.6, 0.4),
                texture=SinusoidTexture.random(rng, min_period=0.4),
                motion=Motion(velocity=(0.0, 0.0, -0.1), yaw_per_frame=0.08),
            ),
        )
    )
    path = truck_path(num_frames, 0.05, position=(-0.2, 0.0, 0.0))
    return ClipSetup(scene, path, K, height, width, 12.0 * 3.0 / fx)


def example(seed: int = 0, height: int = 256, width: int = 448, num_frames: int = 16) -> ClipSetup:
    """Demo scene: lit, textured boxes and a slanted panel on a gently sloping checkered floor
    before an image-textured back wall (z = 14), seen from a slow orbit (1.2 degrees per frame)
    around (0, 0.2, 6.5). fx = fy = 0.9 W; disparity 4 % of the width at depth 3 (about 3.6 to
    15 px at 448 wide)."""
    rng = np.random.default_rng(seed)
    fx = 0.9 * width
    K = intrinsics(fx, fx, (width - 1) / 2, (height - 1) / 2)
    pitch = math.radians(3.0)

    def floor_y(z: float) -> float:
        return 1.2 - z * math.tan(pitch)

    # A muted palette: warm wall, wooden floor, a few coloured boxes.
    mural = np.array([0.78, 0.72, 0.62])[:, None, None] + rng.uniform(-0.12, 0.12, (3, 6, 10))
    mural = torch.as_tensor(mural).clamp(0, 1)
    floor = CheckerTexture.random(
        rng, cell=0.6, min_period=1.0, colors=((0.55, 0.40, 0.28), (0.74, 0.60, 0.44)), mix=0.25
    )
    primitives = [
        _wall(14.0, ImageTexture(mural, texel_size=1.6)),
        _ground(1.2, floor, pitch=pitch),
    ]
    boxes = [  # (center x, z, half sizes, yaw degrees, colour)
        (-1.8, 6.0, (0.6, 0.6, 0.6), 25.0, (0.25, 0.55, 0.60)),
        (0.3, 4.5, (0.35, 0.5, 0.35), -20.0, (0.85, 0.47, 0.38)),
        (1.9, 7.0, (0.7, 1.1, 0.6), 10.0, (0.85, 0.72, 0.35)),
        (-0.3, 9.0, (1.2, 0.4, 0.5), -5.0, (0.55, 0.50, 0.75)),
    ]
    for i, (x, z, half, yaw, color) in enumerate(boxes):
        if i % 2:
            lighter = tuple(min(1.0, c + 0.2) for c in color)
            texture = CheckerTexture.random(rng, cell=0.3, colors=(color, lighter), mix=0.2)
        else:
            texture = SinusoidTexture.random(rng, min_period=0.5, contrast=0.15, mean=color)
        primitives.append(
            Box(
                center=(x, floor_y(z) - half[1] + 0.1, z),
                half_size=half,
                rotation=yaw_rotation(math.radians(yaw)),
                texture=texture,
            )
        )
    panel = yaw_rotation(math.radians(35.0))
    primitives.append(
        Plane(
            origin=(-3.6, -0.4, 10.5),
            axis_u=panel[:, 0],
            axis_v=_Y,
            half_extent=(1.0, 1.2),
            texture=SinusoidTexture.random(rng, 0.8, contrast=0.2, mean=(0.35, 0.45, 0.70)),
        )
    )
    path = orbit_path(
        num_frames,
        (0.0, 0.2, 6.5),
        radius=6.0,
        angle_per_frame=math.radians(1.2),
        start_angle=-math.radians(0.6) * (num_frames - 1),
        height=0.8,
    )
    scene = Scene(tuple(primitives), light=(-0.5, -1.0, -0.6))
    return ClipSetup(scene, path, K, height, width, 0.04 * width * 3.0 / fx, fps=12.0)


SCENES: dict[str, Callable[..., ClipSetup]] = {
    "fronto_integer": fronto_integer,
    "slanted_fractional": slanted_fractional,
    "boxes_orbit": boxes_orbit,
    "moving_objects": moving_objects,
    "example": example,
}


def build_scene(
    name: str,
    seed: int = 0,
    height: int | None = None,
    width: int | None = None,
    num_frames: int | None = None,
) -> ClipSetup:
    """The setup of a registered scene; sizes left as None take the scene's defaults."""
    if name not in SCENES:
        raise ValueError(f"unknown scene {name!r}; known: {sorted(SCENES)}")
    sizes = {"height": height, "width": width, "num_frames": num_frames}
    return SCENES[name](seed, **{k: v for k, v in sizes.items() if v is not None})


def render_scene(
    name: str,
    seed: int = 0,
    height: int | None = None,
    width: int | None = None,
    num_frames: int | None = None,
) -> ClipRender:
    """Build and render a registered scene (see ``SCENES``)."""
    return build_scene(name, seed, height, width, num_frames).render()
