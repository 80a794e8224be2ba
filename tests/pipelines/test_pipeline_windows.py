"""Temporal windows, the latent cross-fade ramp and the known-pixel compositing weight."""

from __future__ import annotations

import pytest
import torch

from pipelines.pipeline import hole_alpha
from pipelines.windows import crossfade_weights, iter_windows


def _summary(items, window, overlap):
    return [
        (w.start, w.items, w.shared, w.emit, w.last) for w in iter_windows(items, window, overlap)
    ]


def test_windows_of_twenty_frames_overlap_and_emit_each_frame_once():
    windows = _summary(range(20), 8, 2)
    assert windows == [
        (0, list(range(0, 8)), 0, 6, False),
        (6, list(range(6, 14)), 2, 6, False),
        (12, list(range(12, 20)), 2, 8, True),
    ]
    emitted = [i for _, items, _, emit, _ in windows for i in items[:emit]]
    assert emitted == list(range(20))


def test_short_last_window_and_exact_fit():
    assert _summary(range(15), 8, 2)[-1] == (12, [12, 13, 14], 2, 3, True)
    assert [w[4] for w in _summary(range(14), 8, 2)] == [False, True]
    assert _summary(range(5), 8, 2) == [(0, [0, 1, 2, 3, 4], 0, 5, True)]
    assert _summary([], 8, 2) == []


def test_no_overlap_is_plain_chunking():
    assert [(w[0], w[1], w[2]) for w in _summary(range(10), 4, 0)] == [
        (0, [0, 1, 2, 3], 0),
        (4, [4, 5, 6, 7], 0),
        (8, [8, 9], 0),
    ]


def test_windows_read_at_most_one_frame_ahead():
    consumed = []

    def stream():
        for i in range(50):
            consumed.append(i)
            yield i

    for w in iter_windows(stream(), 8, 3):
        # Everything read so far is this window plus one frame of lookahead.
        assert len(consumed) <= w.start + len(w.items) + 1
        assert len(w.items) <= 8


@pytest.mark.parametrize(("window", "overlap"), [(0, 0), (8, 8), (8, -1), (4, 5)])
def test_invalid_window_settings_raise(window, overlap):
    with pytest.raises(ValueError, match=r"window|overlap"):
        list(iter_windows(range(10), window, overlap))


def test_crossfade_ramp_hands_over_linearly():
    torch.testing.assert_close(crossfade_weights(2, 2), torch.tensor([2 / 3, 1 / 3]))
    torch.testing.assert_close(crossfade_weights(3, 3), torch.tensor([0.75, 0.5, 0.25]))
    assert crossfade_weights(0, 2).numel() == 0
    with pytest.raises(ValueError, match="overlap"):
        crossfade_weights(3, 2)


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
