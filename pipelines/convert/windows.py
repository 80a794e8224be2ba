"""Cutting a frame stream into (overlapping) windows with bounded memory.

A window is ``window`` consecutive frames; windows start every ``window - overlap`` frames, so
neighbours share ``overlap`` frames (the region a method blends across to avoid seams). With
``fixed_length`` (models trained on one clip length) the last window is moved back so it ends on
the last frame and still has ``window`` frames, overlapping its predecessor by more than
``overlap``; without it the last window is simply shorter. A video shorter than ``window`` is
one short window either way.

``plan_windows`` gives the plan for a known length; ``iter_windows`` produces the same windows
from a stream of unknown length while holding at most ``window`` input frames (plus the one
stacked copy handed out), so memory does not grow with the video.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable, Iterator
from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class WindowSpan:
    """Frames ``[start, stop)`` of the stream; the first ``seen`` of them were in an earlier
    window (the overlap), the rest are new."""

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


@dataclass
class Window:
    """One window of frames: ``frames`` (F, H, W, 3) uint8 with ``span`` saying where it sits."""

    span: WindowSpan
    frames: np.ndarray


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


def iter_windows(
    frames: Iterable[np.ndarray], window: int, overlap: int = 0, fixed_length: bool = False
) -> Iterator[Window]:
    """Stream ``frames`` ((H, W, 3) uint8 each) as the windows ``plan_windows`` would plan.

    Holds at most ``window`` frames; a window is yielded as soon as its last frame arrives (the
    last window once the stream ends).
    """
    check_window(window, overlap)
    stride = window - overlap
    held: deque[np.ndarray] = deque(maxlen=window)  # the latest frames, for the next window
    count = 0  # frames received
    covered = 0
    next_start = 0
    for frame in frames:
        held.append(frame)
        count += 1
        if count == next_start + window:
            span = WindowSpan(next_start, count, covered - next_start)
            covered = count
            next_start += stride
            yield _make(span, held)
    if covered < count:
        start = max(0, count - window) if fixed_length else next_start
        yield _make(WindowSpan(start, count, covered - start), held)


def _make(span: WindowSpan, held: deque[np.ndarray]) -> Window:
    frames = list(held)[len(held) - span.length :]
    return Window(span, np.stack(frames))
