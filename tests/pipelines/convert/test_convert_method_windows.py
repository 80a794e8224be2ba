"""Stereo methods over windows: every frame once, in order, with the overlap cross-fade
(the windower itself: tests/pipelines/test_pipeline_windows.py)."""

import numpy as np

from pipelines.convert import MethodConfig, StereoMethod


def frames(n: int, h: int = 2, w: int = 3):
    for i in range(n):
        yield np.full((h, w, 3), i, np.uint8)


class Offset(StereoMethod):
    """A method whose right view is the left view plus the window's index * 10 (so windows
    disagree and the cross-fade is visible)."""

    def __init__(self, window: int, overlap: int) -> None:
        super().__init__(MethodConfig(window=window, overlap=overlap))
        self.calls = 0

    def right_views(self, frames, context):
        self.calls += 1
        return frames + np.uint8(10 * (self.calls - 1))


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
    # The window being emitted, one prepared window queued, one being cut ahead: never more.
    assert len(pulled) <= 40 + 3 * 16
    out.close()
