"""The warp stage: depth -> smoothed normalisation -> forward-rendered right view."""

import numpy as np
import pytest

from dvg.backends import BackendSpec, DepthContext, DepthPrediction
from pipelines.convert import DepthFile, WarpConfig, WarpStage
from pipelines.convert.warp import identity_transform


class FixedDepth:
    """A depth backend returning given inverse depth maps, indexed by source frame."""

    name = "fixed"

    def __init__(self, inverse_depth: np.ndarray) -> None:
        self.inverse_depth = inverse_depth.astype(np.float32)

    def predict(self, frames, context):
        q = self.inverse_depth[np.asarray(context.source_indices)]
        return DepthPrediction(inverse_depth=q, metric=False, focal_px=None)


def context(start: int, stop: int, w: int, h: int) -> DepthContext:
    return DepthContext("<memory>", np.arange(start, stop), identity_transform(w, h))


def config(**kwargs) -> WarpConfig:
    defaults = dict(depth_quantiles=(0.0, 1.0), depth_smoothing=0.0, device="cpu")
    return WarpConfig(depth=BackendSpec("sidecar"), **{**defaults, **kwargs})


def test_a_near_square_shifts_left_by_the_strength_and_leaves_holes_on_its_right():
    h, w = 24, 40
    frames = np.zeros((1, h, w, 3), np.uint8)
    frames[..., 2] = 200  # blue background
    frames[0, 8:16, 16:24] = (255, 0, 0)  # red square
    q = np.ones((1, h, w), np.float32)
    q[0, 8:16, 16:24] = 2.0  # nearer
    stage = WarpStage(config(strength=0.1), depth=FixedDepth(q))  # span 4 px
    result = stage(frames, context(0, 1, w, h))
    assert result.disparity[0, 12, 20] == pytest.approx(4.0)
    assert result.disparity[0, 2, 2] == pytest.approx(0.0)
    # Right eye: the square lands at x - 4, the background stays.
    assert (result.right[0, 9:15, 13:19] == (255, 0, 0)).all()
    assert (result.right[0, 2, 2] == (0, 0, 200)).all()
    # Disoccluded strip right of the square (x 20..23 in the right view) is a hole.
    assert result.holes[0, 9:15, 21:23].all()
    assert not result.holes[0, :6].any()
    assert result.right.dtype == np.uint8 and result.holes.dtype == bool


def test_constant_depth_gives_zero_disparity_and_an_identical_right_view():
    frames = np.random.default_rng(0).integers(0, 255, (2, 16, 24, 3), dtype=np.uint8)
    stage = WarpStage(config(), depth=FixedDepth(np.full((2, 16, 24), 3.0)))
    result = stage(frames, context(0, 2, 24, 16))
    assert (result.disparity == 0).all()
    assert (result.right == frames).all() and not result.holes.any()


def test_depth_bounds_are_smoothed_over_frames():
    h, w = 8, 12
    frames = np.full((2, h, w, 3), 100, np.uint8)
    q = np.zeros((2, h, w), np.float32)
    q[0, :4] = 1.0  # frame 0 range (0, 1)
    q[1, :2] = 3.0  # frame 1 range (0, 3), one band at 1
    q[1, 2:4] = 1.0
    span = 0.25 * w
    smooth = WarpStage(config(strength=0.25, depth_smoothing=0.5), depth=FixedDepth(q))
    d = smooth(frames, context(0, 2, w, h)).disparity
    # EMA bounds of frame 1: 0.5 * (0, 1) + 0.5 * (0, 3) = (0, 2): q = 1 -> n = 0.5
    assert d[1, 3, 0] == pytest.approx(0.5 * span)
    assert d[1, 0, 0] == pytest.approx(span)  # q = 3 clips at the near end
    raw = WarpStage(config(strength=0.25), depth=FixedDepth(q))
    assert raw(frames, context(0, 2, w, h)).disparity[1, 3, 0] == pytest.approx(span / 3)


def test_smoothing_restarts_at_a_scene_cut():
    h, w, n = 16, 16, 10
    frames = np.zeros((n, h, w, 3), np.uint8)
    frames[9] = 255  # hard cut after 9 frames of one scene
    q = np.zeros((n, h, w), np.float32)
    q[:, :8] = 1.0
    q[9, :8] = 4.0
    stage = WarpStage(config(strength=0.25, depth_smoothing=0.9), depth=FixedDepth(q))
    d = stage(frames, context(0, n, w, h)).disparity
    # Without the reset, frame 9's bounds would be 0.9 * (0, 1) + 0.1 * (0, 4) = (0, 1.3).
    assert d[9, 0, 0] == pytest.approx(0.25 * w)
    assert d[8, 0, 0] == pytest.approx(0.25 * w)


def test_frames_shared_by_overlapping_windows_get_the_same_disparity():
    rng = np.random.default_rng(1)
    h, w, n = 8, 12, 6
    frames = np.full((n, h, w, 3), 50, np.uint8)
    q = rng.uniform(0.5, 2.0, (n, h, w)).astype(np.float32)
    stage = WarpStage(config(depth_smoothing=0.8), depth=FixedDepth(q))
    first = stage(frames[:4], context(0, 4, w, h)).disparity
    second = stage(frames[2:6], context(2, 6, w, h)).disparity
    assert np.array_equal(first[2:], second[:2])
    whole = WarpStage(config(depth_smoothing=0.8), depth=FixedDepth(q))
    assert np.array_equal(whole(frames, context(0, n, w, h)).disparity[4:], second[2:])


def test_frames_out_of_order_are_refused():
    stage = WarpStage(config(), depth=FixedDepth(np.ones((8, 4, 4))))
    frames = np.zeros((2, 4, 4, 3), np.uint8)
    stage(frames, context(0, 2, 4, 4))
    stage(frames, context(5, 7, 4, 4))  # a gap (trimmed or dropped frames) is fine
    with pytest.raises(ValueError, match="in order: expected frame 7 or later, got 3"):
        stage(frames, context(3, 5, 4, 4))


def test_explicit_depth_files_by_name(tmp_path):
    h, w = 6, 8
    frames = np.zeros((2, h, w, 3), np.uint8)
    z = np.full((3, h, w), 2.0, np.float32)
    np.save(tmp_path / "mine.npy", z)
    np.save(tmp_path / "mine.invdepth.npy", z)
    ctx = DepthContext("/elsewhere/video.mp4", np.array([1, 2]), identity_transform(w, h))
    as_z = DepthFile(tmp_path / "mine.npy").predict(frames, ctx).inverse_depth
    as_inverse = DepthFile(tmp_path / "mine.invdepth.npy").predict(frames, ctx).inverse_depth
    assert np.allclose(as_z, 0.5) and np.allclose(as_inverse, 2.0)
    with pytest.raises(FileNotFoundError, match=r"missing\.npy"):
        DepthFile(tmp_path / "missing.npy")
    (tmp_path / "depth.txt").write_text("1")
    with pytest.raises(ValueError, match=r"depth\.txt must be \.npy"):
        DepthFile(tmp_path / "depth.txt")


def test_config_checks():
    with pytest.raises(ValueError, match="strength"):
        WarpConfig(strength=-0.1)
    with pytest.raises(ValueError, match="depth_smoothing"):
        WarpConfig(depth_smoothing=1.0)
