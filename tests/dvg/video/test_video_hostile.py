"""Inputs an unlucky or hostile user feeds `dvg build`: link loops, names that are not UTF-8,
FIFOs and broken links named like videos, extreme frame rates and aspect ratios."""

from __future__ import annotations

import os
import threading

import numpy as np
import pytest
from video_helpers import level_frames, rendered_frames, write_video

from dvg.video import (
    VideoConfig,
    VideoError,
    check_input_file,
    discover_inputs,
    iter_video_clips,
    utf8_text,
    walk_videos,
)

NON_UTF8 = os.fsdecode(b"caf\xe9 \xff.mp4")  # Latin-1 bytes: not valid UTF-8


def _discover_with_timeout(sources, seconds: float = 20.0):
    """discover_inputs in a thread, failing the test (instead of hanging it) after ``seconds``."""
    result: dict = {}
    thread = threading.Thread(target=lambda: result.update(found=discover_inputs(sources)))
    thread.daemon = True
    thread.start()
    thread.join(seconds)
    assert not thread.is_alive(), "discover_inputs hangs on a link loop"
    return result["found"]


def test_link_loops_list_each_video_once_and_end(tmp_path):
    root = tmp_path / "raw"
    (root / "sub" / "deeper").mkdir(parents=True)
    for name in ("a.mp4", "sub/b.mp4", "sub/deeper/c.mp4"):
        (root / name).write_bytes(b"x")
    (root / "self").symlink_to(".")  # a link to its own folder
    (root / "sub" / "up").symlink_to("..")  # two loops at once hung the old walk
    (root / "sub" / "deeper" / "top").symlink_to(root)
    (root / "alias").symlink_to("sub")  # a second path to a visited folder
    found = _discover_with_timeout([root])
    assert [v.name for v in found] == ["a.mp4", "alias/b.mp4", "alias/deeper/c.mp4"]
    # the same through a glob with ** (Python's glob follows the loops)
    globbed = _discover_with_timeout([f"{root}/**/*.mp4"])
    assert [v.name for v in globbed] == [v.name for v in found]


def test_a_link_to_a_folder_outside_the_root_is_followed(tmp_path):
    outside = tmp_path / "elsewhere"
    outside.mkdir()
    (outside / "x.mp4").write_bytes(b"x")
    root = tmp_path / "raw"
    root.mkdir()
    (root / "linked").symlink_to(outside)
    assert [v.name for v in discover_inputs([root])] == ["linked/x.mp4"]


def test_one_file_under_several_names_is_kept_once_under_the_first_name(tmp_path):
    root = tmp_path / "raw"
    root.mkdir()
    (root / "b.mp4").write_bytes(b"x")
    (root / "a.mp4").symlink_to("b.mp4")
    (root / "c.mp4").write_bytes(b"y")
    found = discover_inputs([root, root / "b.mp4", root / "c.mp4"])
    assert [(v.name, os.path.basename(v.path)) for v in found] == [
        ("a.mp4", "a.mp4"),
        ("c.mp4", "c.mp4"),
    ]


def test_walk_skips_unlistable_folder_with_a_warning(tmp_path, monkeypatch):
    root = tmp_path / "raw"
    (root / "locked").mkdir(parents=True)
    (root / "a.mp4").write_bytes(b"x")
    real_scandir = os.scandir

    def scandir(path):
        if os.fspath(path).endswith("locked"):
            raise PermissionError(13, "Permission denied")
        return real_scandir(path)

    monkeypatch.setattr(os, "scandir", scandir)
    with pytest.warns(UserWarning, match=r"cannot list .*locked.*Permission denied"):
        assert [os.path.basename(p) for p in walk_videos(root)] == ["a.mp4"]


def test_non_utf8_names_are_named_in_valid_utf8_and_read_from_the_exact_bytes(tmp_path):
    root = tmp_path / "raw"
    (root / os.fsdecode(b"dir\xe9")).mkdir(parents=True)
    (root / NON_UTF8).write_bytes(b"x")
    (root / os.fsdecode(b"dir\xe9") / "b.mp4").write_bytes(b"y")
    found = discover_inputs([root])
    assert [v.name for v in found] == ["caf\\xe9 \\xff.mp4", "dir\\xe9/b.mp4"]
    for video in found:
        video.name.encode("utf-8")  # valid UTF-8: JSON, parquet and the sample keys take it
        assert os.path.exists(video.path)  # the path keeps the bytes
    assert os.fsencode(found[0].path).endswith(b"caf\xe9 \xff.mp4")
    # a list file with the raw bytes in it names the same file the same way
    listing = tmp_path / "videos.txt"
    listing.write_bytes(b"raw/caf\xe9 \xff.mp4\n")
    (listed,) = discover_inputs([listing])
    assert listed.name == "raw/caf\\xe9 \\xff.mp4" and os.path.samefile(listed.path, found[0].path)


def test_utf8_text():
    assert utf8_text("plain é.mp4") == "plain é.mp4"
    assert utf8_text(os.fsdecode(b"a\xff")) == "a\\xff"
    assert utf8_text("lone \ud800") == "lone \\ud800"  # not an escaped byte: still printable


def test_fifo_broken_link_and_folder_named_like_videos_fail_at_once(tmp_path):
    fifo = tmp_path / "pipe.mp4"
    os.mkfifo(fifo)  # opening it for reading would block forever
    broken = tmp_path / "broken.mp4"
    broken.symlink_to(tmp_path / "gone.mp4")
    folder = tmp_path / "folder.mp4"
    folder.mkdir()
    loop = tmp_path / "loop.mp4"
    loop.symlink_to(loop)
    cases = {fifo: ("unreadable", "FIFO"), broken: ("not_found", "link to a missing file"),
             loop: ("not_found", "symbolic links"), folder: ("unreadable", "folder")}  # fmt: skip
    for path, (reason, words) in cases.items():
        with pytest.raises(VideoError) as caught:
            check_input_file(path)
        assert caught.value.reason == reason and words in caught.value.message, path
        with pytest.raises(VideoError) as caught:  # the probe checks the same, never opens it
            list(iter_video_clips(path, VideoConfig()))
        assert caught.value.reason == reason
    # discovery keeps them (they become ledger rows), except the folder, which is searched
    assert {v.name for v in discover_inputs([tmp_path])} == {"pipe.mp4", "broken.mp4", "loop.mp4"}


def test_short_high_frame_rate_video_decodes(tmp_path):
    """8 frames at 100 fps last 0.08 s, too short for one frame of the 4 fps letterbox scan: the
    old scan decoded nothing and the video was reported as "decoded no frames"."""
    frames = rendered_frames("fronto_integer", 8)
    path = write_video(tmp_path / "fast.mp4", frames, fps=100)
    clips = list(iter_video_clips(path, VideoConfig(clip_length=4, min_scene_length=4)))
    assert len(clips) == 2 and clips[0].fps == 100
    np.testing.assert_allclose(clips[0].timestamps, [0, 0.01, 0.02, 0.03], atol=1e-6)


def test_frame_rate_out_of_range_and_too_short_at_the_output_rate(tmp_path):
    path = write_video(tmp_path / "k.mp4", level_frames([40, 60, 80, 100] * 2), fps=1000)
    with pytest.raises(VideoError) as caught:
        list(iter_video_clips(path, VideoConfig(clip_length=4)))
    assert caught.value.reason == "fps_out_of_range"
    assert "1000 fps is outside [1, 240]" in caught.value.message
    # allowed, but 8 ms of video resampled to 12 fps has no frame at all: too short, in words
    config = VideoConfig(clip_length=4, fps=12, max_fps=2000)
    with pytest.raises(VideoError) as caught:
        list(iter_video_clips(path, config))
    assert caught.value.reason == "too_short"
    assert "no frame at 12 fps: the video lasts 0.0" in caught.value.message
    slow = write_video(tmp_path / "slow.mp4", level_frames([40, 60, 80, 100]), fps=0.5)
    with pytest.raises(VideoError, match=r"0\.5 fps is outside") as caught:
        list(iter_video_clips(slow, VideoConfig(clip_length=4)))
    with pytest.raises(ValueError, match="min_fps < max_fps"):
        VideoConfig(min_fps=30, max_fps=24)


@pytest.mark.parametrize(("height", "width"), [(4096, 64), (64, 4096)])
def test_extreme_aspect_ratio_is_too_small_after_the_resize_policy(tmp_path, height, width):
    """A 64 x 4096 video passes the 64-px source check, but fitting its long side into
    max_side=1024 would make 16-px samples."""
    path = write_video(tmp_path / "strip.mkv", level_frames([90] * 4, height, width), codec="ffv1",
                       pix_fmt_out="yuv444p", quality=None)  # fmt: skip
    with pytest.raises(VideoError) as caught:
        list(iter_video_clips(path, VideoConfig(clip_length=4)))
    assert caught.value.reason == "too_small"
    assert "aspect ratio 64.0:1" in caught.value.message
    assert "16" in caught.value.message and "min_side=64" in caught.value.message
    # a smaller min_side lets it through at the size the policy gives
    (clip,) = iter_video_clips(path, VideoConfig(clip_length=4, min_side=16))
    assert sorted(clip.frames.shape[1:3]) == [16, 1024]
