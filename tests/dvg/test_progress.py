"""The shared progress display: plain lines in a log (first update at once, then every
``log_every`` seconds, a final line), rate and ETA over a recent window, quiet when disabled."""

from __future__ import annotations

import io

import pytest

from dvg.progress import Progress, format_duration


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def plain(total=100, **kwargs) -> tuple[Progress, io.StringIO, Clock]:
    stream, clock = io.StringIO(), Clock()
    progress = Progress(
        "trainer fit", total, unit="steps", stream=stream, terminal=False, clock=clock, **kwargs
    )
    return progress, stream, clock


def test_a_log_gets_a_line_at_the_first_update_then_every_log_every_seconds_then_at_the_end():
    progress, stream, clock = plain(log_every=30.0)
    clock.now += 2.0
    progress.update(1, loss=0.25)
    assert stream.getvalue().splitlines() == [
        "trainer fit: 1/100 steps (1.0%) | 0.5 steps/s | ETA 0:03:18 | elapsed 0:00:02 | loss 0.25"
    ]
    for step in range(2, 16):  # 2 s per step: 28 s more, below log_every
        clock.now += 2.0
        progress.update(step, loss=0.1)
    assert len(stream.getvalue().splitlines()) == 1
    clock.now += 2.0
    progress.update(16, loss=0.125)
    lines = stream.getvalue().splitlines()
    assert len(lines) == 2 and lines[1].startswith("trainer fit: 16/100 steps (16.0%)")
    assert "ETA 0:02:48" in lines[1]  # 84 steps left at 0.5 steps/s
    progress.close()
    assert stream.getvalue().splitlines()[-1].startswith("trainer fit (done): 16/100 steps")


def test_the_rate_follows_the_recent_window_not_a_slow_start():
    progress, _, clock = plain(window=10.0)
    clock.now += 100.0  # a slow first step (model loading, data-loader start)
    progress.update(1)
    for step in range(2, 42):  # then 4 steps/s
        clock.now += 0.25
        progress.update(step)
    assert progress.rate() == pytest.approx(4.0, rel=0.05)
    assert progress.eta() == pytest.approx(59 / 4.0, rel=0.05)


def test_a_resumed_run_counts_only_its_own_steps_in_the_rate():
    progress, stream, clock = plain(start=50)
    clock.now += 10.0
    progress.update(60)
    assert progress.rate() == pytest.approx(1.0)
    assert "60/100 steps (60.0%) | 1 steps/s" in stream.getvalue()


def test_unknown_and_estimated_totals():
    progress, stream, clock = plain(total=None)
    clock.now += 1.0
    progress.update(advance=3)
    assert progress.eta() is None
    assert stream.getvalue() == "trainer fit: 3 steps | 3 steps/s | elapsed 0:00:01\n"
    assert "ETA" not in stream.getvalue()
    progress.update(total=12, estimated=True)
    assert "3/~12 steps" in progress.status()


def test_disabled_progress_writes_nothing():
    progress, stream, _ = plain(enabled=False)
    progress.update(5)
    progress.close()
    assert stream.getvalue() == ""


def test_format_duration():
    assert format_duration(3725.4) == "1:02:05"
    assert format_duration(None) == "?"
    assert format_duration(float("inf")) == "?"
