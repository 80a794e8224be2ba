"""Window planning, streaming with bounded memory, and the overlap cross-fade of methods."""

import numpy as np
import pytest

from pipelines.convert import MethodConfig, StereoMethod, WindowSpan, iter_windows, plan_windows


def frames(n: int, h: int = 2, w: int = 3):
    for i in range(n):
        yield np.full((h, w, 3), i, np.uint8)


def test_plan_windows_by_hand():
    assert plan_windows(10, 4) == [WindowSpan(0, 4, 0), WindowSpan(4, 8, 0), WindowSpan(8, 10, 0)]
    assert plan_windows(10, 4, 1) == [
        WindowSpan(0, 4, 0),
        WindowSpan(3, 7, 1),
        WindowSpan(6, 10, 1),
    ]
    # fixed length: the last window moves back to keep 4 frames, sharing 3 with its predecessor
    assert plan_windows(9, 4, 1, fixed_length=True) == [
        WindowSpan(0, 4, 0),
        WindowSpan(3, 7, 1),
        WindowSpan(5, 9, 2),
    ]
    assert plan_windows(3, 4, 1, fixed_length=True) == [WindowSpan(0, 3, 0)]
    assert plan_windows(0, 4) == []


@pytest.mark.parametrize("n", [1, 7, 8, 9, 23])
@pytest.mark.parametrize(
    ("window", "overlap", "fixed"), [(4, 0, False), (4, 2, False), (5, 2, True)]
)
def test_streamed_windows_match_the_plan_and_carry_the_right_frames(n, window, overlap, fixed):
    windows = list(iter_windows(frames(n), window, overlap, fixed))
    assert [w.span for w in windows] == plan_windows(n, window, overlap, fixed)
    for w in windows:
        assert w.frames[:, 0, 0, 0].tolist() == list(range(w.span.start, w.span.stop))
    # every frame is new in exactly one window
    new = [i for w in windows for i in range(w.span.new_start, w.span.stop)]
    assert new == list(range(n))


def test_windows_are_yielded_as_soon_as_complete():
    pulled = []

    def source():
        for i, frame in enumerate(frames(100)):
            pulled.append(i)
            yield frame

    stream = iter_windows(source(), 8, 2)
    next(stream)
    assert len(pulled) == 8  # no read-ahead beyond the window
    next(stream)
    assert len(pulled) == 14


def test_bad_window_settings_are_refused():
    with pytest.raises(ValueError, match="overlap"):
        plan_windows(10, 4, 4)
    with pytest.raises(ValueError, match="window"):
        list(iter_windows(frames(3), 0))


class Offset(StereoMethod):
    """A method whose right view is the left view plus the window's index * 10 (so windows
    disagree and the cross-fade is visible)."""

    def __init__(self, window: int, overlap: int) -> None:
        super().__init__(MethodConfig(window=window, overlap=overlap))
        self.calls = 0

    def right_views(self, window, context):
        self.calls += 1
        return window.frames + np.uint8(10 * (self.calls - 1))


def test_methods_emit_every_frame_once_in_order_with_a_linear_crossfade():
    method = Offset(window=4, overlap=2)
    pairs = list(method.process_pairs(frames(8)))
    lefts = [int(left[0, 0, 0]) for left, _ in pairs]
    rights = [int(right[0, 0, 0]) for _, right in pairs]
    assert lefts == list(range(8))
    # windows [0,4) +0, [2,6) +10, [4,8) +20; shared frames fade 1/3, 2/3 towards the new window
    expected = [0, 1, 2 + 10 / 3, 3 + 20 / 3, 4 + 10 + 10 / 3, 5 + 10 + 20 / 3, 6 + 20, 7 + 20]
    assert rights == [round(v) for v in expected]


def test_methods_stream_with_bounded_lookahead():
    pulled = []

    def source():
        for i, frame in enumerate(frames(1000)):
            pulled.append(i)
            yield frame

    method = Offset(window=16, overlap=0)
    out = method.process(source())
    for _ in range(40):
        next(out)
    assert len(pulled) <= 40 + 16
