"""Real DVG shards for the trainer tests, built once per session by the data engine itself."""

from __future__ import annotations

from pathlib import Path

import pytest

# Frames of the rendered videos: H != W so the resize + centre crop is exercised on one axis.
HEIGHT, WIDTH, NUM_FRAMES, CLIP_LENGTH = 64, 96, 8, 4


@pytest.fixture(scope="session")
def dvg_shards(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """``dvg build`` output (offline preset): manifest.json, 000000.tar and 000001.tar, two
    4-frame 64 x 96 clips each (videos "a" and "b", one video per shard). Treat as read-only."""
    from dvg.engine import apply_overrides, build, preset_config
    from dvg.synthetic import render_scene, write_clip

    raw = tmp_path_factory.mktemp("raw_videos")
    for name, scene in (("a", "moving_objects"), ("b", "fronto_integer")):
        render = render_scene(scene, seed=0, height=HEIGHT, width=WIDTH, num_frames=NUM_FRAMES)
        write_clip(render, raw, name)
    out = tmp_path_factory.mktemp("shards")
    config = apply_overrides(
        preset_config("offline"),
        {"video": {"clip_length": CLIP_LENGTH}, "output": {"videos_per_group": 1}},
    )
    build([raw], out, config, show_progress=False)
    return out
