"""Fixtures for the data-engine tests."""

from __future__ import annotations

from pathlib import Path

import pytest
from synthetic_inputs import write_scene


@pytest.fixture(scope="session")
def raw_videos(tmp_path_factory) -> Path:
    """Three good videos: two scenes of 8 frames and a longer moving one."""
    folder = tmp_path_factory.mktemp("raw")
    write_scene(folder, "a_fronto", "fronto_integer")
    write_scene(folder, "b_slanted", "slanted_fractional", seed=1)
    write_scene(folder, "c_moving", "moving_objects", frames=12)
    return folder
