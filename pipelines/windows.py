"""Overlapping temporal windows over a frame stream, and the latent cross-fade between them.

A long video is denoised in windows of the trained clip length (paper 3.5: 8-frame clips). Window
k + 1 starts `overlap` frames before window k ends; those shared frames are anchored to window
k's final latents with a linear cross-fade at every denoising step (see docs/inference.md), so
window k + 1's temporal layers continue window k instead of starting afresh. Only the previous
window's last `overlap` latents carry over, so memory does not grow with the video length.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from itertools import islice
from typing import Generic, TypeVar

import torch

T = TypeVar("T")


@dataclass(frozen=True)
class Window(Generic[T]):
    """One window of a stream.

    start: global index of items[0]; items: the window's frames in order; shared: how many
    leading items the previous window also covered (0 for the first window); emit: how many
    leading items are final after this window (the rest, `overlap` items, are held back and become
    the next window's shared items); last: whether the stream ends with this window.
    """

    start: int
    items: list[T]
    shared: int
    emit: int
    last: bool


def check_window(window: int, overlap: int) -> None:
    """Raise ValueError unless 1 <= window and 0 <= overlap < window."""
    if window < 1:
        raise ValueError(f"window must be >= 1 frame, got {window}")
    if not 0 <= overlap < window:
        raise ValueError(f"overlap must lie in [0, window={window}), got {overlap}")


def iter_windows(items: Iterable[T], window: int, overlap: int) -> Iterator[Window[T]]:
    """Split a stream into windows of `window` items overlapping by `overlap` items.

    The last window may be shorter (it still holds at least one item no earlier window had).
    Holds at most window + 1 items (one item of lookahead tells whether a window is the last).
    """
    check_window(window, overlap)
    stream = iter(items)
    pending = list(islice(stream, window + 1))
    start, shared = 0, 0
    while pending:
        current, lookahead = pending[:window], pending[window:]
        last = not lookahead
        emit = len(current) if last else len(current) - overlap
        yield Window(start=start, items=current, shared=shared, emit=emit, last=last)
        if last:
            return
        held = current[emit:]
        pending = held + lookahead
        pending += list(islice(stream, window + 1 - len(pending)))
        start, shared = start + emit, len(held)


def crossfade_weights(shared: int, overlap: int) -> torch.Tensor:
    """(shared,) weight of the previous window for each shared frame: a linear ramp 1 -> 0.

    Frame j of the overlap keeps 1 - (j + 1) / (overlap + 1) of the previous window, so the
    hand-over is spread evenly over the overlap and neither window's end is used at full weight.
    """
    if shared > overlap:
        raise ValueError(f"a window cannot share {shared} frames with an overlap of {overlap}")
    j = torch.arange(shared, dtype=torch.float32)
    return 1.0 - (j + 1.0) / (overlap + 1.0)
