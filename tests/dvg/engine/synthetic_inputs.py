"""Small synthetic videos with sidecar depth for the data-engine tests, and their configs."""

from __future__ import annotations

from pathlib import Path

from dvg.engine import apply_overrides, preset_config
from dvg.synthetic import render_scene, write_clip


def write_scene(
    folder: Path, name: str, scene: str, *, seed=0, height=64, width=96, frames=8, eye="left"
):
    """Render ``scene`` and write one eye as ``<name>.mp4`` + sidecar depth and camera; returns
    the render."""
    render = render_scene(scene, seed=seed, height=height, width=width, num_frames=frames)
    write_clip(render, folder, name, eye=eye)
    return render


def offline_config(**sections):
    """The offline preset with small clips and one video per group."""
    base = {
        "video": {"clip_length": 4, "min_scene_length": 4},
        "output": {"videos_per_group": 1},
    }
    for name, values in sections.items():
        base.setdefault(name, {}).update(values)
    return apply_overrides(preset_config("offline"), base)
