"""Temporal windows (plan, streaming, boundary pairs), the cross-fade ramp and the known-pixel
compositing weight."""

from __future__ import annotations

import pytest
import torch

from pipelines.pipeline import hole_alpha
from pipelines.windows import (
    WindowSpan,
    boundary_pairs,
    crossfade_weights,
    iter_windows,
    plan_windows,
)


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


def test_twenty_frames_in_windows_of_eight_overlapping_by_two():
    spans = plan_windows(20, 8, 2, fixed_length=True)
    assert spans == [WindowSpan(0, 8, 0), WindowSpan(6, 14, 2), WindowSpan(12, 20, 2)]
    assert [s.keep_from(2) for s in spans] == [6, 12, 18]
    # A 27-frame video: after [18, 26) (which emits 18..23 and holds 24, 25 back) the last
    # window moves back to 8 frames: 19..23 are context, 24, 25 the hand-over, 26 is new.
    previous, last = plan_windows(27, 8, 2, fixed_length=True)[-2:]
    assert (previous, previous.keep_from(2)) == (WindowSpan(18, 26, 2), 24)
    assert last == WindowSpan(19, 27, 7)


def test_boundary_pairs_are_where_the_covering_windows_change():
    # windows [0,8) [6,14) [12,20): hand-overs over frames 6-7 and 12-13
    assert boundary_pairs(20, 8, 2) == [5, 7, 11, 13]
    assert boundary_pairs(12, 4, 0) == [3, 7]  # plain chunks: one pair per boundary
    assert boundary_pairs(5, 8, 2) == []
    # overlap 1: hand-overs of frame 3 and (moved-back last window [5, 9)) of frame 6 only
    assert boundary_pairs(9, 4, 1, fixed_length=True) == [2, 3, 5, 6]


@pytest.mark.parametrize("n", [1, 7, 8, 9, 23])
@pytest.mark.parametrize(
    ("window", "overlap", "fixed"), [(4, 0, False), (4, 2, False), (5, 2, True), (8, 6, True)]
)
def test_streamed_windows_match_the_plan_and_carry_the_right_items(n, window, overlap, fixed):
    windows = list(iter_windows(range(n), window, overlap, fixed))
    assert [w.span for w in windows] == plan_windows(n, window, overlap, fixed)
    for w in windows:
        assert w.items == list(range(w.span.start, w.span.stop))
        if fixed and n >= window:
            assert len(w.items) == window
    # every frame is new in exactly one window
    new = [i for w in windows for i in range(w.span.new_start, w.span.stop)]
    assert new == list(range(n))
    # the emission rule emits every frame exactly once, in order
    emitted, out = 0, []
    for w in windows:
        keep = w.span.keep_from(overlap)
        out += list(range(emitted, keep))
        emitted = keep
    out += list(range(emitted, n))
    assert out == list(range(n))


def test_windows_are_yielded_as_soon_as_complete():
    pulled = []

    def source():
        for i in range(100):
            pulled.append(i)
            yield i

    stream = iter_windows(source(), 8, 2)
    next(stream)
    assert len(pulled) == 8  # no read-ahead beyond the window
    next(stream)
    assert len(pulled) == 14


@pytest.mark.parametrize(("window", "overlap"), [(0, 0), (8, 8), (8, -1), (4, 5)])
def test_invalid_window_settings_raise(window, overlap):
    with pytest.raises(ValueError, match=r"window|overlap"):
        list(iter_windows(range(10), window, overlap))
    with pytest.raises(ValueError, match=r"window|overlap"):
        plan_windows(10, window, overlap)


def test_crossfade_ramp_hands_over_linearly():
    torch.testing.assert_close(crossfade_weights(2), torch.tensor([2 / 3, 1 / 3]))
    torch.testing.assert_close(crossfade_weights(3), torch.tensor([0.75, 0.5, 0.25]))
    assert crossfade_weights(0).numel() == 0


def test_hole_alpha_is_one_on_holes_zero_far_away_and_feathered_between():
    holes = torch.zeros(1, 1, 20, 20, dtype=torch.bool)
    holes[..., 8:12, 8:12] = True
    assert torch.equal(hole_alpha(holes, 0), holes.float())
    alpha = hole_alpha(holes, 2)
    assert torch.all(alpha[holes] == 1.0)
    # Support: within 2 * margin = 4 pixels (Chebyshev) of a hole.
    far = torch.ones_like(holes)
    far[..., 4:16, 4:16] = False
    assert torch.all(alpha[far] == 0.0)
    ring = alpha[..., 6, 4:16]
    assert torch.all(ring > 0) and torch.all(ring < 1)
    assert alpha[0, 0, 10, 7] > alpha[0, 0, 10, 5] > 0  # decreasing away from the hole
