"""Fixtures for the video-input tests."""

from __future__ import annotations

from pathlib import Path

import pytest
from video_helpers import level_frames, write_video


@pytest.fixture
def plain_video(tmp_path: Path) -> Path:
    """40 frames, 96x64 at 10 fps, frame i uniform grey 5 * i + 20."""
    return write_video(tmp_path / "plain.mp4", level_frames([5 * i + 20 for i in range(40)]))
