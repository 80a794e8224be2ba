"""Every way a source video can be unusable ends as a VideoError with the right reason code."""

from __future__ import annotations

import pickle
from pathlib import Path

import numpy as np
import pytest
from video_helpers import level_frames, run_ffmpeg, write_video

from dvg.video import REASONS, VideoConfig, VideoError, iter_video_clips, probe_video
from dvg.video.decode import read_frames

CONFIG = VideoConfig(clip_length=8, crop_letterbox=False)


def reason_of(path: Path, config: VideoConfig = CONFIG) -> tuple[str, str]:
    with pytest.raises(VideoError) as caught:
        list(iter_video_clips(path, config))
    return caught.value.reason, str(caught.value)


def test_video_error_names_file_problem_and_reason_and_pickles():
    err = VideoError("/data/a.mp4", "truncated", "the file ends early")
    assert str(err) == "/data/a.mp4: the file ends early [truncated]"
    back = pickle.loads(pickle.dumps(err))  # crosses process boundaries on a cluster
    assert (back.path, back.reason, back.message) == (err.path, err.reason, err.message)
    with pytest.raises(ValueError, match="unknown VideoError reason"):
        VideoError("a.mp4", "bad_codec", "x")


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("short_side", 0),
        ("short_side", 4),  # below multiple: empty output
        ("max_side", -1),
        ("multiple", 0),
        ("fps", 0.0),
        ("fps", float("nan")),
        ("clip_length", 0),
        ("clip_stride", 0),
        ("max_clips_per_video", 0),
        ("scene_threshold", 0.0),
        ("min_scene_length", 0),
        ("min_side", 2.5),
        ("crop_letterbox", 1),
    ],
)
def test_config_rejects_bad_values_naming_the_field(field, value):
    with pytest.raises(ValueError, match=field):
        VideoConfig(**{field: value})


def test_config_defaults_and_stride():
    config = VideoConfig()
    assert (config.short_side, config.max_side, config.multiple) == (576, 1024, 8)
    assert config.max_pixels == 4096 * 2160 and config.min_side == 64
    assert config.stride == 16 and VideoConfig(clip_stride=4).stride == 4
    assert VideoConfig(scene_threshold=float("inf")).to_dict()["scene_threshold"] == float("inf")


def test_missing_and_empty_files(tmp_path):
    assert reason_of(tmp_path / "missing.mp4")[0] == "not_found"
    (tmp_path / "empty.mp4").write_bytes(b"")
    assert reason_of(tmp_path / "empty.mp4")[0] == "empty_file"


def test_text_and_random_bytes_named_mp4_are_unreadable(tmp_path):
    (tmp_path / "notes.mp4").write_text("this is not a video\n" * 20)
    (tmp_path / "noise.mp4").write_bytes(np.random.default_rng(0).bytes(5000))
    for name in ("notes.mp4", "noise.mp4"):
        reason, message = reason_of(tmp_path / name)
        assert reason == "unreadable"
        assert name in message


def test_audio_only_file_has_no_video_stream(tmp_path):
    run_ffmpeg("-f", "lavfi", "-i", "sine=d=0.3", str(tmp_path / "audio.mp4"))
    reason, message = reason_of(tmp_path / "audio.mp4")
    assert reason == "unreadable" and "no video stream" in message


def test_mp4_cut_in_half_is_truncated(plain_video, tmp_path):
    data = plain_video.read_bytes()
    cut = tmp_path / "cut.mp4"
    cut.write_bytes(data[: len(data) // 2])  # the index (moov) is at the end and is lost
    reason, message = reason_of(cut)
    assert reason == "truncated" and "moov" in message


def test_faststart_mp4_cut_in_half_yields_clips_then_truncated(tmp_path):
    source = write_video(
        tmp_path / "fast.mp4",
        np.random.default_rng(1).integers(0, 255, (40, 64, 96, 3), np.uint8),
        output_params=["-movflags", "+faststart"],
    )
    data = source.read_bytes()
    cut = tmp_path / "fast_cut.mp4"
    cut.write_bytes(data[: len(data) // 2])
    config = VideoConfig(clip_length=4, crop_letterbox=False, scene_threshold=float("inf"))
    clips = []
    with pytest.raises(VideoError) as caught:
        for clip in iter_video_clips(cut, config):
            clips.append(clip)
    assert caught.value.reason == "truncated"
    # roughly half the 40 frames decode; the clips before the damage are whole and in order
    assert 2 <= len(clips) <= 7
    assert [int(c.frame_indices[0]) for c in clips] == [4 * i for i in range(len(clips))]
    # stopping at max_clips_per_video before the damage is not an error
    config = VideoConfig(
        clip_length=4, crop_letterbox=False, scene_threshold=float("inf"), max_clips_per_video=2
    )
    assert len(list(iter_video_clips(cut, config))) == 2


def test_too_short(tmp_path):
    path = write_video(tmp_path / "short.mp4", level_frames(list(range(20, 80, 10))))
    reason, message = reason_of(path)
    assert reason == "too_short" and "6 frames" in message


def test_too_small(tmp_path):
    path = write_video(tmp_path / "small.mp4", level_frames([50] * 10, height=48, width=96))
    reason, message = reason_of(path)
    assert reason == "too_small" and "96x48" in message
    assert probe_video(path, VideoConfig(min_side=32)).height == 48


def test_too_large_beyond_4k(tmp_path):
    path = write_video(
        tmp_path / "huge.mp4",
        np.zeros((1, 2200, 4200, 3), np.uint8),
        quality=1,
        output_params=["-preset", "ultrafast"],
    )
    reason, message = reason_of(path)
    assert reason == "too_large" and "4200x2200" in message
    assert probe_video(path, VideoConfig(max_pixels=4200 * 2200)).width == 4200


def test_ffmpeg_failure_is_decode_error(plain_video):
    info = probe_video(plain_video, CONFIG)
    with pytest.raises(VideoError) as caught:
        list(read_frames(info, ["no_such_filter"], (96, 64), None))
    assert caught.value.reason == "decode_error"
    # frames of another size than planned are refused, not sliced into garbage
    with pytest.raises(VideoError, match="produced 48x32 frames, expected 96x64"):
        list(read_frames(info, ["scale=w=48:h=32"], (96, 64), None))


def test_reason_table_lists_every_code_in_the_brief():
    assert set(REASONS) == {
        "not_found",
        "empty_file",
        "unreadable",
        "too_small",
        "too_large",
        "too_short",
        "fps_out_of_range",
        "truncated",
        "decode_error",
    }
