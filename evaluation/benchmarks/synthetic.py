"""`synthetic`: procedural scenes (dvg.synthetic) with exact depth, stereo views and poses.

Runs anywhere in minutes. Two kinds of pairs:

* ``stereo``: the left view to the exact right view of the same frame (the converter's task);
* ``t=5`` / ``t=10``: the left view at t to the left view at t + 5 / t + 10 along a moving camera
  in a static scene (the single-view NVS task of the paper's Table 1), where the scene has no
  moving objects.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np
import torch

from dvg.geometry import stereo_pose
from dvg.synthetic import render_scene
from evaluation.benchmarks.base import Pair

# (scene, has independently moving objects)
SCENES = (
    ("fronto_integer", False),
    ("slanted_fractional", False),
    ("boxes_orbit", False),
    ("moving_objects", True),
)


@dataclass(frozen=True)
class SyntheticConfig:
    height: int = 96
    width: int = 128
    frames: int = 12
    seed: int = 0
    scenes: tuple[str, ...] = tuple(name for name, _ in SCENES)
    offsets: tuple[int, ...] = (5, 10)


def _image(frame: torch.Tensor) -> np.ndarray:
    """(3, H, W) float in [0, 1] -> (H, W, 3) uint8."""
    return np.ascontiguousarray((frame.clamp(0, 1) * 255).round().byte().permute(1, 2, 0).numpy())


def synthetic_pairs(config: SyntheticConfig = SyntheticConfig()) -> Iterator[Pair]:
    moving = dict(SCENES)
    for name in config.scenes:
        render = render_scene(
            name, seed=config.seed, height=config.height, width=config.width,
            num_frames=config.frames,
        )  # fmt: skip
        K = render.K.numpy().astype(np.float64)
        stereo = stereo_pose(render.baseline)[0].numpy().astype(np.float64)
        for t in (0, config.frames // 2):
            yield Pair(
                id=f"{name}_f{t:03d}_stereo",
                source=_image(render.left[t]),
                target=_image(render.right[t]),
                K=K,
                T=stereo,
                offset="stereo",
                depth=render.depth[t, 0].numpy().astype(np.float32),
                baseline=float(render.baseline),
            )
        if moving.get(name, True):
            continue  # a moving object breaks the static-scene assumption of pose warping
        w2c = render.world_to_camera.numpy().astype(np.float64)
        for offset in config.offsets:
            if offset >= config.frames:
                continue
            T = w2c[offset] @ np.linalg.inv(w2c[0])
            if np.allclose(T, np.eye(4)):
                continue  # a static camera gives no novel view
            yield Pair(
                id=f"{name}_f000_t{offset}",
                source=_image(render.left[0]),
                target=_image(render.left[offset]),
                K=K,
                T=T,
                offset=f"t={offset}",
                depth=render.depth[0, 0].numpy().astype(np.float32),
                baseline=float(np.linalg.norm(T[:3, 3])),
            )
