"""Resize policy, FrameTransform geometry and letterbox detection (pure, no video files)."""

from __future__ import annotations

import dataclasses

import cv2
import numpy as np
import pytest

from dvg.video import FrameTransform, VideoConfig, detect_letterbox, plan_transform


@pytest.mark.parametrize(
    ("source", "config", "resized", "output"),
    [
        # 16:9 1080p: short side 576 and long side 1024 agree
        ((1920, 1080), VideoConfig(), (1024, 576), (1024, 576)),
        # portrait phone video: same policy on the transposed sizes
        ((1080, 1920), VideoConfig(), (576, 1024), (576, 1024)),
        # 2.39:1 scope: the long side limit wins, the short side ends below 576
        ((1920, 804), VideoConfig(), (1024, 429), (1024, 424)),
        # small odd source: never upscaled, only cropped down to multiples of 8
        ((301, 199), VideoConfig(), (301, 199), (296, 192)),
        ((301, 199), VideoConfig(allow_upscale=True), (871, 576), (864, 576)),
        ((301, 199), VideoConfig(allow_upscale=True, max_side=None), (871, 576), (864, 576)),
        (
            (640, 480),
            VideoConfig(short_side=None, max_side=None, multiple=16),
            (640, 480),
            (640, 480),
        ),
        ((640, 480), VideoConfig(short_side=None, max_side=100), (100, 75), (96, 72)),
    ],
)
def test_resize_policy(source, config, resized, output):
    t = plan_transform(source, (0, 0, *source), config)
    assert t.resized_size == resized
    assert t.output_size == output
    assert all(side % config.multiple == 0 for side in t.output_size)
    # aspect preserved by the resize (up to rounding to whole pixels)
    sx, sy = t.scale
    assert abs(sx - sy) <= 1.0 / min(source)


def test_resize_policy_uses_the_letterbox_crop():
    t = plan_transform((1920, 1080), (0, 140, 1920, 800), VideoConfig())
    assert t.resized_size == (1024, 427) and t.output_size == (1024, 424)


def test_plan_rejects_results_smaller_than_one_multiple():
    with pytest.raises(ValueError, match="multiple"):
        plan_transform((200, 6), (0, 0, 200, 6), VideoConfig())


def test_transform_validates_its_boxes():
    with pytest.raises(ValueError, match="does not fit"):
        FrameTransform((100, 80), (10, 0, 100, 80), (100, 80), (96, 80))
    with pytest.raises(ValueError, match="within the resized size"):
        FrameTransform((100, 80), (0, 0, 100, 80), (50, 40), (56, 40))


# asymmetric everything (crop offsets, scales, centre-crop offsets) so a transposition fails
TRANSFORM = FrameTransform((150, 106), (12, 10, 134, 90), (71, 48), (64, 48))


def test_map_points_hand_computed():
    sx, sy = 71 / 134, 48 / 90
    assert TRANSFORM.center_offset == (3, 0)
    # the top-left corner of the crop maps to the top-left corner of the resized image
    corner = TRANSFORM.map_points(np.array([12 - 0.5, 10 - 0.5]))
    np.testing.assert_allclose(corner, [-0.5 - 3, -0.5])
    # the far corner maps to the far corner
    far = TRANSFORM.map_points(np.array([12 + 134 - 0.5, 10 + 90 - 0.5]))
    np.testing.assert_allclose(far, [71 - 0.5 - 3, 48 - 0.5])
    np.testing.assert_allclose(
        TRANSFORM.map_points(np.array([[20.0, 30.0]])),
        [[(20 - 12 + 0.5) * sx - 0.5 - 3, (30 - 10 + 0.5) * sy - 0.5]],
    )


def test_scale_intrinsics_agrees_with_map_points():
    K = np.array([[120.0, 0.0, 70.3], [0.0, 95.0, 49.1], [0.0, 0.0, 1.0]])  # fx != fy
    K_out = TRANSFORM.scale_intrinsics(K)
    points = np.random.default_rng(0).uniform([-1, -1, 1], [1, 1, 5], size=(20, 3))
    source_uv = (K @ points.T).T
    source_uv = source_uv[:, :2] / source_uv[:, 2:]
    output_uv = (K_out @ points.T).T
    output_uv = output_uv[:, :2] / output_uv[:, 2:]
    np.testing.assert_allclose(output_uv, TRANSFORM.map_points(source_uv), atol=1e-9)
    assert K_out[0, 1] == 0 and K_out[2].tolist() == [0, 0, 1]
    with pytest.raises(ValueError, match="3, 3"):
        TRANSFORM.scale_intrinsics(np.eye(4))


def test_apply_shapes_dtypes_and_pixel_positions():
    sw, sh = TRANSFORM.source_size
    depth = np.random.default_rng(0).uniform(1, 5, (sh, sw)).astype(np.float32)
    out = TRANSFORM.apply(depth, cv2.INTER_NEAREST)
    assert out.shape == (48, 64) and out.dtype == np.float32 and out.flags.c_contiguous
    # nearest sampling takes every output value from inside the crop box
    assert np.isin(out, depth[10:100, 12:146]).all()
    assert TRANSFORM.apply(np.zeros((sh, sw, 3), np.uint8)).shape == (48, 64, 3)
    assert TRANSFORM.apply(np.zeros((sh, sw, 1), np.uint16)).shape == (48, 64, 1)
    # a bright dot lands where map_points says
    dot = np.zeros((sh, sw), np.float32)
    dot[60, 90] = 1.0
    x, y = TRANSFORM.map_points(np.array([90.0, 60.0]))
    out = TRANSFORM.apply(dot)
    iy, ix = np.unravel_index(np.argmax(out), out.shape)
    assert abs(ix - x) <= 0.5 and abs(iy - y) <= 0.5
    with pytest.raises(ValueError, match="source_size"):
        TRANSFORM.apply(np.zeros((sw, sh)))


def test_identity_transform_and_filters():
    t = plan_transform((96, 64), (0, 0, 96, 64), VideoConfig())
    assert t.ffmpeg_filters() == []
    image = np.random.default_rng(0).integers(0, 255, (64, 96, 3), np.uint8)
    np.testing.assert_array_equal(t.apply(image), image)
    filters = TRANSFORM.ffmpeg_filters()
    assert filters[0] == "crop=w=134:h=90:x=12:y=10:exact=1"
    assert filters[1].startswith("scale=w=71:h=48:")
    assert filters[2] == "crop=w=64:h=48:x=3:y=0:exact=1"


def test_to_dict_round_trip():
    assert FrameTransform.from_dict(TRANSFORM.to_dict()) == TRANSFORM


def _bars(h=90, w=160, top=12, bottom=8, left=20, right=6, level=120):
    image = np.zeros((h, w), np.uint8)
    image[top : h - bottom, left : w - right] = level
    return image


def test_letterbox_finds_each_bar():
    assert detect_letterbox(_bars()) == (20, 12, 160 - 26, 90 - 20)
    assert detect_letterbox(_bars(top=0, bottom=0, left=0, right=0)) == (0, 0, 160, 90)


def test_letterbox_tolerates_noise_but_not_content():
    image = _bars()
    image[2, 5] = 200  # one noisy pixel in the top bar does not stop the crop
    assert detect_letterbox(image) == (20, 12, 134, 70)
    image[85, 30:120] = 200  # subtitles in the bottom bar: that row is content
    assert detect_letterbox(image)[1::2] == (12, 85 - 12 + 1)


def test_letterbox_keeps_dark_or_nearly_black_frames():
    assert detect_letterbox(np.zeros((90, 160), np.uint8)) == (0, 0, 160, 90)
    tiny = _bars(top=40, bottom=40, left=70, right=70)  # would keep 20x10: a dark scene
    assert detect_letterbox(tiny) == (0, 0, 160, 90)
    # threshold: bars brighter than it are content
    assert detect_letterbox(_bars() + 20) == (0, 0, 160, 90)


def test_letterbox_pillarbox_of_a_vertical_video():
    # 9:16 phone video pillarboxed in 16:9: only about a third of the width is picture
    image = _bars(h=90, w=160, top=0, bottom=0, left=55, right=54)
    assert detect_letterbox(image) == (55, 0, 51, 90)


def test_config_is_frozen():
    with pytest.raises(dataclasses.FrozenInstanceError):
        VideoConfig().fps = 3.0
