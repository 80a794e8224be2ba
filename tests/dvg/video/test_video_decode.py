"""Decoding real files: output geometry, letterbox, rotation, grayscale, frame rate."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
from video_helpers import level_frames, rendered_frames, run_ffmpeg, write_video

from dvg.video import VideoConfig, iter_video_clips, parse_probe_log, probe_video

ONE_SCENE = {"scene_threshold": float("inf")}


def _triangle(x: np.ndarray, period: int) -> np.ndarray:
    phase = (x % period) / period
    return 1.0 - np.abs(2.0 * phase - 1.0)


def _pattern(height: int, width: int) -> np.ndarray:
    """(H, W, 3) grey pattern whose value changes fast along x and y (different periods), never
    near black (so it is not mistaken for a bar)."""
    y, x = np.mgrid[0:height, 0:width]
    grey = (40 + 107 * _triangle(x, 14) + 107 * _triangle(y, 18)).round().astype(np.uint8)
    return np.repeat(grey[:, :, None], 3, axis=2)


def _grey_error(decoded: np.ndarray, expected: np.ndarray) -> float:
    return float(np.abs(decoded.astype(float).mean(-1) - expected.astype(float).mean(-1)).mean())


def test_decoded_geometry_matches_frame_transform(tmp_path):
    """Letterboxed, odd-sized content: the decoded frames equal FrameTransform.apply of the
    source frames, and the same transform shifted by one source pixel is far off."""
    h, w = 90, 134
    padded = np.zeros((4, h + 16, w + 16, 3), np.uint8)
    padded[:, 10 : 10 + h, 12 : 12 + w] = _pattern(h, w)
    path = write_video(tmp_path / "pattern.mp4", padded)
    config = VideoConfig(short_side=48, max_side=None, clip_length=4, **ONE_SCENE)
    (clip,) = list(iter_video_clips(path, config))
    t = clip.transform
    assert t.crop == (12, 10, 134, 90)  # bars found exactly
    assert t.resized_size == (71, 48) and t.output_size == (64, 48)
    assert clip.frames.shape == (4, 48, 64, 3)
    assert "letterbox crop (12, 10, 134, 90)" in clip.info.notes
    error = _grey_error(clip.frames[0], t.apply(padded[0]))
    assert error < 1.0
    for dx, dy in [(1, 0), (-1, 0), (0, 1), (0, -1)]:
        shifted = dataclasses.replace(t, crop=(t.crop[0] + dx, t.crop[1] + dy, *t.crop[2:]))
        assert _grey_error(clip.frames[0], shifted.apply(padded[0])) > 8 * max(error, 0.5)


def test_letterboxed_render_has_no_black_border(tmp_path):
    frames = rendered_frames("example", num_frames=8, height=64, width=96)
    padded = np.zeros((8, 96, 112, 3), np.uint8)  # bars: 16 top, 16 bottom, 8 left, 8 right
    padded[:, 16:80, 8:104] = frames
    path = write_video(tmp_path / "render_bars.mp4", padded)
    (clip,) = list(iter_video_clips(path, VideoConfig(clip_length=8, **ONE_SCENE)))
    assert clip.transform.crop == (8, 16, 96, 64)
    assert clip.frames.shape == (8, 64, 96, 3)
    grey = clip.frames.astype(float).mean(-1)
    for border in (grey[:, 0, :], grey[:, -1, :], grey[:, :, 0], grey[:, :, -1]):
        assert border.mean() > 30
    assert _grey_error(clip.frames[3], clip.transform.apply(padded[3])) < 3.0
    # without the crop the bars stay
    (clip,) = list(iter_video_clips(path, VideoConfig(clip_length=8, crop_letterbox=False)))
    assert clip.frames.shape == (8, 96, 112, 3) and clip.frames[:, :8].max() < 20


def test_odd_source_size_gives_multiple_of_8(tmp_path):
    frames = np.stack([_pattern(199, 301)] * 3)
    path = write_video(tmp_path / "odd.mp4", frames, pix_fmt_out="yuv444p")
    (clip,) = list(iter_video_clips(path, VideoConfig(clip_length=3, **ONE_SCENE)))
    assert clip.info.size == (301, 199)
    assert clip.frames.shape == (3, 192, 296, 3)  # no upscale; centre crop to multiples of 8
    assert clip.transform.center_offset == (2, 3)
    assert _grey_error(clip.frames[0], clip.transform.apply(frames[0])) < 1.0


def test_downscale_to_short_side(tmp_path):
    frames = np.stack([_pattern(120, 200)] * 2)
    path = write_video(tmp_path / "big.mp4", frames)
    # min_side=48: a 56-px short side is what this config asks for, not an extreme aspect ratio
    config = VideoConfig(short_side=64, max_side=96, min_side=48, clip_length=2, **ONE_SCENE)
    (clip,) = list(iter_video_clips(path, config))
    # long side limit: 200 -> 96, 120 -> 58 -> 56
    assert clip.transform.resized_size == (96, 58) and clip.frames.shape == (2, 56, 96, 3)


def test_rotated_phone_video_reports_displayed_size(tmp_path):
    frames = level_frames([60] * 6, height=64, width=96)
    frames[:, :16, :24] = 230  # a bright top-left corner shows where the rotation went
    stored = write_video(tmp_path / "stored.mp4", frames)
    rotated = tmp_path / "rotated.mp4"
    # ffmpeg >= 7 ignores ``-metadata rotate=``; the display matrix is set on a stream copy
    run_ffmpeg("-display_rotation", "90", "-i", str(stored), "-c", "copy", str(rotated))
    info = probe_video(rotated, VideoConfig())
    assert info.size == (64, 96) and info.rotation == 270  # 90 counter-clockwise
    assert "rotated 270" in info.notes
    (clip,) = list(iter_video_clips(rotated, VideoConfig(clip_length=6, crop_letterbox=False)))
    assert clip.frames.shape == (6, 96, 64, 3)
    expected = np.rot90(frames[0], k=1)  # counter-clockwise: top-left goes to bottom-left
    assert _grey_error(clip.frames[0], expected) < 2.0
    assert clip.frames[0, -10:, :10].mean() > 200


def test_grayscale_source_comes_out_rgb(tmp_path):
    gray = np.random.default_rng(0).integers(30, 255, (5, 64, 96), np.uint8)
    path = write_video(tmp_path / "gray.mkv", gray, codec="ffv1", pix_fmt_out="gray")
    info = probe_video(path, VideoConfig())
    assert info.pix_fmt == "gray" and "grayscale pix_fmt gray" in info.notes
    (clip,) = list(iter_video_clips(path, VideoConfig(clip_length=5, **ONE_SCENE)))
    assert clip.frames.shape == (5, 64, 96, 3) and clip.frames.flags.c_contiguous
    np.testing.assert_array_equal(clip.frames[..., 0], gray)  # ffv1 is lossless
    np.testing.assert_array_equal(clip.frames[..., 1], gray)
    np.testing.assert_array_equal(clip.frames[..., 2], gray)


def _single_frame_clips(path, fps):
    config = VideoConfig(clip_length=1, fps=fps, crop_letterbox=False, **ONE_SCENE)
    clips = list(iter_video_clips(path, config))
    levels = [round((float(c.frames[0].mean()) - 20) / 5) for c in clips]
    sources = [int(c.source_indices[0]) for c in clips]
    times = [float(c.timestamps[0]) for c in clips]
    return levels, sources, times


@pytest.mark.parametrize(("fps", "count"), [(None, 40), (5, 20), (15, 60), (7, 28)])
def test_fps_resampling_count_and_source_indices(plain_video, fps, count):
    levels, sources, times = _single_frame_clips(plain_video, fps)
    assert len(levels) == count
    assert levels == sources  # each output frame is the native frame source_indices names
    step = 1 / (fps or 10)
    np.testing.assert_allclose(times, np.arange(count) * step, atol=1e-9)
    # ffmpeg shows the latest native frame starting before the output time plus half an
    # output period, so it is at most that much later or one native period earlier
    lag = np.array(sources) / 10 - np.array(times)
    assert np.all(lag <= step / 2 + 1e-9) and np.all(lag > -0.1 - 1e-9)


def test_variable_frame_rate_source(tmp_path):
    # frames 5..14 dropped with their timestamps kept: a 1 s gap after frame 4
    path = write_video(
        tmp_path / "vfr.mp4",
        level_frames([5 * i + 20 for i in range(40)]),
        output_params=["-vf", r"select=not(between(n\,5\,14))", "-fps_mode", "vfr"],
    )
    assert "variable frame rate?" in probe_video(path, VideoConfig()).notes
    levels, sources, times = _single_frame_clips(path, None)  # native frames, one each
    assert len(levels) == 30 and sources == list(range(30))
    assert levels == [*range(5), *range(15, 40)]
    np.testing.assert_allclose(times[3:7], [0.3, 0.4, 1.5, 1.6], atol=1e-6)
    levels, sources, times = _single_frame_clips(path, 10)  # constant 10 fps: the gap is filled
    assert len(levels) == 40
    assert (
        levels[:5] == [0, 1, 2, 3, 4]
        and levels[5:15] == [4] * 10
        and levels[15:] == list(range(15, 40))
    )
    assert sources[4:16] == [4] * 11 + [5]  # native index 5 is the first frame after the gap


def test_parse_probe_log_of_older_ffmpeg_and_edge_cases():
    log = """Input #0, mov,mp4,m4a,3gp,3g2,mj2, from 'file:/v/phone.mov':
  Duration: 00:01:02.50, start: 0.000000, bitrate: 9000 kb/s
    Stream #0:0(und): Audio: aac (LC) (mp4a / 0x6134706D), 44100 Hz, stereo, fltp
    Stream #0:1(und): Video: h264 (High) (avc1 / 0x31637661), yuv420p(tv, bt709), 1920x1080 [SAR 1:1 DAR 16:9], 8000 kb/s, 29.97 fps, 29.97 tbr, 600 tbn (default)
    Metadata:
      rotate          : 90
      handler_name    : Core Media Video
"""  # noqa: E501
    info = parse_probe_log("/v/phone.mov", log)
    assert info.stream_index == 1 and info.codec == "h264" and info.pix_fmt == "yuv420p"
    assert info.rotation == 90 and info.size == (1080, 1920)
    assert info.duration == pytest.approx(62.5) and info.num_frames == round(62.5 * 29.97)
    log6 = log.replace("      rotate          : 90\n", "").replace(
        "      handler_name    : Core Media Video\n",
        "    Side data:\n      displaymatrix: rotation of -90.00 degrees\n",
    )
    assert parse_probe_log("/v/phone.mov", log6).rotation == 90
    cover = """  Duration: N/A, bitrate: N/A
  Stream #0:0: Video: mjpeg (Baseline), yuvj420p(pc), 600x600, 90k tbr, 90k tbn (attached pic)
  Stream #0:1: Video: vp9, yuv420p(tv), 640x360, SAR 1:1 DAR 16:9, 1k tbr, 1k tbn
"""
    info = parse_probe_log("/v/a.webm", cover)
    assert info.stream_index == 1 and info.size == (640, 360)
    assert info.fps == 0.0 and info.num_frames is None  # "1k tbr" is not a frame rate
    assert {"no duration in metadata", "no frame rate in metadata"} <= set(info.notes)
