"""`synthetic`: procedural scenes (dvg.synthetic) with exact depth, stereo views and poses.

Runs anywhere in minutes. Two kinds of pairs:

* ``stereo``: the left view to the exact right view of the same frame (the converter's task),
  every ``stereo_every``-th frame of every scene;
* ``t=5`` / ``t=10``: the left view at t0 to the left view at t0 + 5 / t0 + 10 along a moving
  camera in a static scene (the single-view NVS task of the paper's Table 1), from every start
  frame t0 the clip allows, in the scenes without moving objects.

With the defaults (two seeds per scene) the columns hold 12 (t=10) to 64 (stereo) pairs, so each
mean comes with a spread.
"""

from __future__ import annotations

import itertools
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
    frames: int = 16
    seeds: tuple[int, ...] = (0, 1)
    """Each scene is rendered once per seed (other textures, object and camera paths)."""
    stereo_every: int = 2
    scenes: tuple[str, ...] = tuple(name for name, _ in SCENES)
    offsets: tuple[int, ...] = (5, 10)


def _image(frame: torch.Tensor) -> np.ndarray:
    """(3, H, W) float in [0, 1] -> (H, W, 3) uint8."""
    return np.ascontiguousarray((frame.clamp(0, 1) * 255).round().byte().permute(1, 2, 0).numpy())


def synthetic_pairs(config: SyntheticConfig = SyntheticConfig()) -> Iterator[Pair]:
    moving = dict(SCENES)
    for name, seed in itertools.product(config.scenes, config.seeds):
        render = render_scene(
            name, seed=seed, height=config.height, width=config.width, num_frames=config.frames,
        )  # fmt: skip
        K = render.K.numpy().astype(np.float64)
        stereo = stereo_pose(render.baseline)[0].numpy().astype(np.float64)
        for t in range(0, config.frames, config.stereo_every):
            yield Pair(
                id=f"{name}_s{seed}_f{t:03d}_stereo",
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
            for t0 in range(config.frames - offset):
                T = w2c[t0 + offset] @ np.linalg.inv(w2c[t0])
                if np.allclose(T, np.eye(4)):
                    continue  # a static camera gives no novel view
                yield Pair(
                    id=f"{name}_s{seed}_f{t0:03d}_t{offset}",
                    source=_image(render.left[t0]),
                    target=_image(render.left[t0 + offset]),
                    K=K,
                    T=T,
                    offset=f"t={offset}",
                    depth=render.depth[t0, 0].numpy().astype(np.float32),
                    baseline=float(np.linalg.norm(T[:3, 3])),
                )
