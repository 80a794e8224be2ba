"""`dvg build`'s progress counts input frames, so one long video shows an ETA: each clip says how
far into its video it reaches, unseen videos count as the average seen one."""

from __future__ import annotations

import io

from dvg.engine.progress import BuildProgress, ClipPosition


def ok_row(frames: int = 16) -> dict:
    return {"status": "ok", "frames": frames, "reason": None}


def test_frames_of_a_long_video_move_the_bar_before_the_video_ends():
    progress = BuildProgress(3, enabled=False)
    progress.clip_done(ok_row(), ClipPosition("long.mp4", 16, 1000))
    assert progress._frames() == (16, 3000, True)  # two unseen videos, each about 1000 frames
    progress.clip_done(ok_row(), ClipPosition("long.mp4", 32, 1000))
    assert progress._frames()[0] == 32
    progress.video_done(None, "long.mp4")
    assert progress._frames() == (1000, 3000, True)
    progress.clip_done(ok_row(), ClipPosition("short.mp4", 16, 200))
    assert progress._frames() == (1016, 1000 + 200 + 600, True)
    progress.video_done(("decode_error", "broken"), "broken.mp4")  # failed before any clip
    progress.video_done(None, "short.mp4")
    assert progress._frames() == (1200, 1200, False)


def test_the_log_line_names_frames_videos_clips_and_failures():
    stream = io.StringIO()
    progress = BuildProgress(2, log_every=3600)
    progress.display = type(progress.display)(
        "dvg build", None, unit="frames", stream=stream, terminal=False
    )
    progress.clip_done(ok_row(), ClipPosition("a.mp4", 16, 64))
    line = stream.getvalue().splitlines()[0]
    assert line.startswith("dvg build: 16/~128 frames (12.5%) | ")
    assert "ETA" in line and "videos 0/2 | clips 1 | failed 0 videos, 0 clips" in line
