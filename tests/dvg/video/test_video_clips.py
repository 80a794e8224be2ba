"""Clip sampling: stride, scene cuts, max clips, bounded memory, determinism."""

from __future__ import annotations

import numpy as np
import pytest
from video_helpers import rendered_frames, write_video

import dvg.video.clips as clips_module
from dvg.video import ClipSampler, VideoConfig, VideoError, iter_video_clips

ONE_SCENE = {"scene_threshold": float("inf"), "crop_letterbox": False}


def _starts(clips) -> list[int]:
    return [int(c.frame_indices[0]) for c in clips]


def test_sampler_stride_overlap_and_gaps():
    def starts(length, stride, n=20):
        sampler = ClipSampler(length, stride)
        out = [sampler.push(i, new_scene=False) for i in range(n)]
        done = [clip for clip in out if clip is not None]
        for scene, items in done:
            assert scene == 0 and items == list(range(items[0], items[0] + length))
        return [items[0] for _, items in done], sampler.peak_held

    assert starts(4, 4) == ([0, 4, 8, 12, 16], 4)
    assert starts(4, 2) == ([0, 2, 4, 6, 8, 10, 12, 14, 16], 4)  # overlapping clips
    assert starts(4, 7) == ([0, 7, 14], 4)  # frames between clips are never held
    with pytest.raises(ValueError):
        ClipSampler(0, 1)


def test_sampler_restarts_at_a_scene_cut():
    sampler = ClipSampler(4, 4)
    cuts = {6, 15}
    done = [sampler.push(i, new_scene=i in cuts) for i in range(24)]
    done = [clip for clip in done if clip is not None]
    # scene 0 = 0..5 (one clip, 4..5 dropped), scene 1 = 6..14, scene 2 = 15..23
    assert [(scene, items[0]) for scene, items in done] == [
        (0, 0),
        (1, 6),
        (1, 10),
        (2, 15),
        (2, 19),
    ]
    assert sampler.longest_scene == 9


@pytest.fixture(scope="module")
def two_scene_video(tmp_path_factory):
    frames = np.concatenate(
        [rendered_frames("example", 20), rendered_frames("moving_objects", 20, seed=1)]
    )
    return write_video(tmp_path_factory.mktemp("scenes") / "two_scenes.mp4", frames, fps=12)


def test_scene_cut_splits_clips(two_scene_video):
    config = VideoConfig(clip_length=8, min_scene_length=4, crop_letterbox=False)
    clips = list(iter_video_clips(two_scene_video, config))
    # the cut is at frame 20: scene 0 gives 0-7 and 8-15 (16-19 too few for a clip), scene 1
    # restarts its clip grid at the cut: 20-27, 28-35
    assert _starts(clips) == [0, 8, 20, 28]
    assert [c.scene for c in clips] == [0, 0, 1, 1]
    assert [c.index for c in clips] == [0, 1, 2, 3]
    for clip in clips:
        span = clip.frame_indices
        assert not (span[0] < 20 <= span[-1])  # no clip crosses the cut
        np.testing.assert_array_equal(span, np.arange(span[0], span[0] + 8))
        np.testing.assert_allclose(clip.timestamps, span / 12.0, atol=1e-9)
        assert clip.fps == 12.0 and clip.frames.dtype == np.uint8
    # ignoring cuts, the grid runs straight through
    clips = list(iter_video_clips(two_scene_video, VideoConfig(clip_length=8, **ONE_SCENE)))
    assert _starts(clips) == [0, 8, 16, 24, 32] and {c.scene for c in clips} == {0}


def test_scenes_shorter_than_a_clip_are_too_short(two_scene_video):
    config = VideoConfig(clip_length=24, min_scene_length=4, crop_letterbox=False)
    with pytest.raises(VideoError) as caught:
        list(iter_video_clips(two_scene_video, config))
    assert caught.value.reason == "too_short"
    assert "2 scene(s), the longest has 20" in caught.value.message


def test_stride_and_max_clips(plain_video):
    config = VideoConfig(clip_length=8, clip_stride=4, **ONE_SCENE)
    assert _starts(iter_video_clips(plain_video, config)) == [0, 4, 8, 12, 16, 20, 24, 28, 32]
    config = VideoConfig(clip_length=8, clip_stride=12, max_clips_per_video=2, **ONE_SCENE)
    clips = list(iter_video_clips(plain_video, config))
    assert _starts(clips) == [0, 12]
    # frames are decoded content, not just indices: frame i of the source is grey 5 * i + 20
    np.testing.assert_allclose(
        clips[1].frames.mean(axis=(1, 2, 3)), 5 * np.arange(12, 20) + 20, atol=1
    )


def test_memory_bound(plain_video, monkeypatch):
    samplers: list[ClipSampler] = []

    class RecordingSampler(ClipSampler):
        def __init__(self, *args):
            super().__init__(*args)
            samplers.append(self)

    monkeypatch.setattr(clips_module, "ClipSampler", RecordingSampler)
    for length, stride in [(4, 2), (4, 9), (6, 6)]:
        config = VideoConfig(clip_length=length, clip_stride=stride, **ONE_SCENE)
        assert len(list(iter_video_clips(plain_video, config))) > 2
        assert samplers[-1].peak_held <= length <= length + stride


def test_clips_are_independent_and_deterministic(plain_video):
    config = VideoConfig(clip_length=8, clip_stride=4, **ONE_SCENE)
    first = list(iter_video_clips(plain_video, config))
    second = list(iter_video_clips(plain_video, config))
    for a, b in zip(first, second, strict=True):
        np.testing.assert_array_equal(a.frames, b.frames)
        np.testing.assert_array_equal(a.source_indices, b.source_indices)
        assert a.transform == b.transform
    # overlapping clips own their frames (no aliasing of a reused buffer)
    assert first[0].frames.flags.c_contiguous and first[0].frames.flags.writeable
    first[0].frames[:] = 0
    assert first[1].frames[0].mean() > 10


def test_early_close_stops_decoding(plain_video):
    clips = iter_video_clips(plain_video, VideoConfig(clip_length=4, **ONE_SCENE))
    assert next(clips).index == 0
    clips.close()  # must not hang or raise; ffmpeg is stopped
    with pytest.raises(StopIteration):
        next(clips)
