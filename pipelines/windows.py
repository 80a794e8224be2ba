"""Overlapping temporal windows over a frame stream, shared by every converter.

A window is ``window`` consecutive frames; windows start every ``window - overlap`` frames, so
neighbours share ``overlap`` frames, the region a method blends across to avoid seams. With
``fixed_length`` (models trained on one clip length, such as SpatialDreamer's 8-frame clips) the
last window is moved back so it ends on the last frame and still has ``window`` frames; the
frames it then shares beyond the overlap were already emitted by earlier windows and serve as
context only. Without it the last window is simply shorter. A video shorter than ``window`` is
one short window either way.

Emission rule every consumer follows: a window emits its new frames except the last ``overlap``
of them, which it holds back for the next window to blend (the stream's end flushes them). So of
a window's ``seen`` leading frames, those from the previous window's ``keep_from(overlap)`` on
are still held back (blended here) and the ones before them are already out (context).

``plan_windows`` gives the plan for a known length; ``iter_windows`` produces the same windows
from a stream of unknown length while holding at most ``window`` items, so memory does not grow
with the video.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from itertools import pairwise
from typing import Generic, TypeVar

import torch

T = TypeVar("T")


@dataclass(frozen=True)
class WindowSpan:
    """Frames ``[start, stop)`` of the stream; the first ``seen`` of them were in an earlier
    window, the rest are new."""

    start: int
    stop: int
    seen: int

    @property
    def length(self) -> int:
        return self.stop - self.start

    @property
    def new_start(self) -> int:
        """Index of the first frame no earlier window contained."""
        return self.start + self.seen

    def keep_from(self, overlap: int) -> int:
        """First frame this window holds back for the next one (emission rule above)."""
        return max(self.new_start, self.stop - overlap)


@dataclass(frozen=True)
class Window(Generic[T]):
    """One window: ``items`` are the stream's items ``span.start`` to ``span.stop`` in order."""

    span: WindowSpan
    items: list[T]


def check_window(window: int, overlap: int) -> None:
    """ValueError unless ``window >= 1`` and ``0 <= overlap < window``."""
    if isinstance(window, bool) or not isinstance(window, int) or window < 1:
        raise ValueError(f"window must be an int >= 1, got {window!r}")
    if isinstance(overlap, bool) or not isinstance(overlap, int) or not 0 <= overlap < window:
        raise ValueError(f"overlap must be an int in [0, window={window}), got {overlap!r}")


def plan_windows(
    num_frames: int, window: int, overlap: int = 0, fixed_length: bool = False
) -> list[WindowSpan]:
    """The windows covering ``num_frames`` frames (see the module docstring)."""
    check_window(window, overlap)
    if num_frames < 0:
        raise ValueError(f"num_frames must be >= 0, got {num_frames}")
    stride = window - overlap
    spans: list[WindowSpan] = []
    covered = 0  # frames [0, covered) belong to earlier windows
    start = 0
    while covered < num_frames:
        stop = min(start + window, num_frames)
        if fixed_length and stop - start < window:
            start = max(0, stop - window)
        spans.append(WindowSpan(start, stop, covered - start))
        covered = stop
        start += stride
    return spans


def boundary_pairs(
    num_frames: int, window: int, overlap: int, fixed_length: bool = False
) -> list[int]:
    """Pair indices t (frames t, t + 1) that straddle a window boundary: where the set of
    windows covering the frames changes, i.e. each window's first seen frame (the previous
    window's hand-over starts) and first new frame (the previous window's influence ends).

    Everything else is a within-window pair. This is the "seam-only" set of E_warp.
    """
    pairs: set[int] = set()
    spans = plan_windows(num_frames, window, overlap, fixed_length)
    for previous, span in pairwise(spans):
        pairs.add(previous.keep_from(overlap) - 1)
        pairs.add(span.new_start - 1)
    return sorted(t for t in pairs if 0 <= t < num_frames - 1)


def iter_windows(
    items: Iterable[T], window: int, overlap: int = 0, fixed_length: bool = False
) -> Iterator[Window[T]]:
    """Stream ``items`` as the windows ``plan_windows`` would plan.

    Holds at most ``window`` items; a window is yielded as soon as its last item arrives (the
    last window once the stream ends).
    """
    check_window(window, overlap)
    stride = window - overlap
    held: deque[T] = deque(maxlen=window)  # the latest items, for the next window
    count = 0  # items received
    covered = 0
    next_start = 0
    for item in items:
        held.append(item)
        count += 1
        if count == next_start + window:
            span = WindowSpan(next_start, count, covered - next_start)
            covered = count
            next_start += stride
            yield _make(span, held)
    if covered < count:
        start = max(0, count - window) if fixed_length else next_start
        yield _make(WindowSpan(start, count, covered - start), held)


def _make(span: WindowSpan, held: deque[T]) -> Window[T]:
    return Window(span, list(held)[len(held) - span.length :])


def crossfade_weights(held: int) -> torch.Tensor:
    """(held,) weight of the previous window for each held-back frame: a linear ramp 1 -> 0.

    Frame j of the hand-over keeps 1 - (j + 1) / (held + 1) of the previous window, so the
    hand-over is spread evenly and neither window's end is used at full weight.
    """
    j = torch.arange(held, dtype=torch.float32)
    return 1.0 - (j + 1.0) / (held + 1.0)
