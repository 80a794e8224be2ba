"""The content-based scene-cut detector on synthetic frames."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from dvg.video import SceneCutDetector, content_score


def _flat(rgb, h=48, w=64):
    return np.full((h, w, 3), rgb, np.uint8)


def test_first_frame_and_identical_frames_are_not_cuts():
    detector = SceneCutDetector(threshold=27, min_scene_length=1)
    assert detector.update(_flat((200, 40, 40))) is False and detector.last_score is None
    assert detector.update(_flat((200, 40, 40))) is False and detector.last_score == 0.0


def test_score_is_mean_of_hsv_channel_deltas():
    a, b = _flat((0, 0, 60)), _flat((0, 0, 180))  # same hue/saturation, value 60 -> 180
    hsv_a = cv2.cvtColor(a, cv2.COLOR_RGB2HSV_FULL)
    hsv_b = cv2.cvtColor(b, cv2.COLOR_RGB2HSV_FULL)
    assert content_score(hsv_a, hsv_b) == pytest.approx((0 + 0 + 120) / 3)


def test_hue_difference_wraps_around():
    hsv_a = np.zeros((4, 4, 3), np.uint8)
    hsv_b = np.zeros((4, 4, 3), np.uint8)
    hsv_a[..., 0], hsv_b[..., 0] = 250, 5  # 11 apart around the circle, not 245
    assert content_score(hsv_a, hsv_b) == pytest.approx(11 / 3)


def test_cut_needs_threshold_and_min_scene_length():
    red, blue = _flat((220, 30, 30)), _flat((30, 30, 220))
    detector = SceneCutDetector(threshold=27, min_scene_length=3)
    sequence = [red, red, blue, blue, blue, red, red]
    # the cut to blue at frame 2 comes after only 2 red frames: ignored; the cut back to red
    # at frame 5 follows 5 frames of the (still first) scene: accepted
    assert [detector.update(f) for f in sequence] == [
        False,
        False,
        False,
        False,
        False,
        True,
        False,
    ]
    detector = SceneCutDetector(threshold=27, min_scene_length=2)
    assert [detector.update(f) for f in sequence] == [False, False, True, False, False, True, False]
    detector = SceneCutDetector(threshold=float("inf"), min_scene_length=1)
    assert not any(detector.update(f) for f in sequence)


def test_small_motion_is_not_a_cut_but_new_content_is():
    rng = np.random.default_rng(0)
    texture = cv2.resize(rng.integers(0, 255, (30, 40, 3), np.uint8), (400, 300))
    other = cv2.resize(rng.integers(0, 255, (30, 40, 3), np.uint8), (400, 300))
    detector = SceneCutDetector(threshold=27, min_scene_length=1)
    flags = [
        detector.update(np.ascontiguousarray(texture[10 + k : 250 + k, :320])) for k in range(5)
    ]
    assert not any(flags)  # a slow pan
    assert detector.update(np.ascontiguousarray(other[10:250, :320]))


def test_rejects_bad_frames():
    detector = SceneCutDetector()
    with pytest.raises(ValueError, match="uint8"):
        detector.update(np.zeros((8, 8), np.uint8))
    detector.update(_flat((1, 2, 3)))
    with pytest.raises(ValueError, match="size changed"):
        detector.update(_flat((1, 2, 3), h=32))
    with pytest.raises(ValueError):
        SceneCutDetector(threshold=0)
    detector.reset()
    assert detector.update(_flat((1, 2, 3), h=32)) is False
