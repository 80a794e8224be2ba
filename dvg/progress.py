"""Progress of long commands, shown one way everywhere: a live bar on a terminal, plain lines in
a log.

Every command that can run for more than a few seconds (`dvg build`, `dvg synth`, `trainer fit`,
`evaluation run`, ...) reports through :class:`Progress`. When stderr is a terminal it is a rich
bar; anywhere else (a cluster job's log file, a pipe, CI) a redrawn bar is unreadable, so the
same facts go out as one plain line at the first update, then every ``log_every`` seconds, and
once more at the end::

    trainer fit: 120/1000 steps (12.0%) | 1.52 steps/s | ETA 0:09:39 | elapsed 0:01:19 | loss 0.1234

The rate (and so the ETA) is measured over the last ``window`` seconds, so a slow start (model
loading, data-loader warm-up) stops weighing on the estimate once the run is going; a total
marked ``estimated`` (e.g. frames of videos not yet probed) is shown with a ``~``.
"""

from __future__ import annotations

import atexit
import sys
import time
from collections import deque
from collections.abc import Callable
from typing import Any, TextIO

from rich.console import Console
from rich.progress import BarColumn, TextColumn
from rich.progress import Progress as RichProgress
from rich.text import Text


def format_duration(seconds: float | None) -> str:
    """``H:MM:SS`` (``?`` when unknown)."""
    if seconds is None or seconds != seconds or seconds in (float("inf"), float("-inf")):
        return "?"
    seconds = max(0, round(seconds))
    return f"{seconds // 3600}:{seconds % 3600 // 60:02d}:{seconds % 60:02d}"


def _format_value(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value)


def _format_count(value: float) -> str:
    return f"{value:,.0f}" if float(value).is_integer() else f"{value:,.1f}"


class _TwoLineBar(RichProgress):
    """The bar with its counts and ETA, and under it the elapsed time and the command's fields
    (a single line would be cut off on an 80-column terminal)."""

    def get_renderables(self):
        yield self.make_tasks_table(self.tasks)
        for task in self.tasks:
            if task.fields.get("details"):
                yield Text(f"  {task.fields['details']}", overflow="fold")


class Progress:
    """Progress of one long task; see the module docstring.

    Args:
        name: prefix of every line, e.g. ``"trainer fit"``.
        total: units of work in all, None when unknown (then no percentage and no ETA).
        unit: what is counted, plural (``"steps"``, ``"frames"``, ``"pairs"``).
        start: units already done before this process started (a resumed run); the rate
            counts only this process's work.
        enabled: False records nothing and prints nothing (``--no-progress``, non-zero ranks).
        log_every: seconds between plain lines when stderr is not a terminal.
        window: seconds over which the rate is measured.
        stream: where to write (default stderr).
        terminal: force the bar (True) or plain lines (False); default: whether ``stream`` is a
            terminal, as rich decides it (``FORCE_TERMINAL`` / ``TTY_COMPATIBLE`` honoured).
        clock: seconds, monotonic (tests pass a fake one).
    """

    def __init__(
        self,
        name: str,
        total: float | None = None,
        *,
        unit: str = "items",
        start: float = 0,
        enabled: bool = True,
        log_every: float = 30.0,
        window: float = 60.0,
        stream: TextIO | None = None,
        terminal: bool | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if log_every <= 0 or window <= 0:
            raise ValueError(f"log_every and window must be > 0, got {log_every}, {window}")
        self.name, self.unit, self.enabled = name, unit, enabled
        self.total = total
        self.estimated = False
        self.completed = float(start)
        self.fields: dict[str, Any] = {}
        self.log_every, self.window, self.clock = log_every, window, clock
        self.started = clock()
        self._samples: deque[tuple[float, float]] = deque([(self.started, self.completed)])
        self._last_line: float | None = None
        self._closed = False
        self._stream = stream
        self._bar: RichProgress | None = None
        if not enabled:
            return
        console = Console(file=stream, stderr=stream is None)
        if console.is_terminal if terminal is None else terminal:
            self._bar = _TwoLineBar(
                TextColumn("[bold]{task.description}"),
                BarColumn(bar_width=24),
                TextColumn("{task.fields[counts]}"),
                console=console,
            )
            self._task = self._bar.add_task(name, total=total, counts="", details="")
            self._bar.start()
            atexit.register(self.close)  # a crash must not leave the terminal without a cursor

    # ----------------------------------------------------------------------------- reading
    def rate(self) -> float | None:
        """Units per second over the last ``window`` seconds (None before any progress)."""
        now = self.clock()
        first_time, first_done = self._samples[0]
        if now - first_time <= 0 or self.completed <= first_done:
            return None
        return (self.completed - first_done) / (now - first_time)

    def eta(self) -> float | None:
        """Seconds left at the current rate; None without a total or a rate."""
        rate = self.rate()
        if self.total is None or not rate:
            return None
        return max(self.total - self.completed, 0.0) / rate

    def counts(self) -> str:
        """``done/total unit (pct) | rate | ETA`` (the part a terminal shows beside the bar)."""
        if self.total is not None:
            tilde = "~" if self.estimated else ""
            done = f"{_format_count(self.completed)}/{tilde}{_format_count(self.total)} {self.unit}"
            if self.total > 0:
                done += f" ({100 * min(self.completed / self.total, 1.0):.1f}%)"
        else:
            done = f"{_format_count(self.completed)} {self.unit}"
        rate = self.rate()
        parts = [done, f"{rate:.3g} {self.unit}/s" if rate else f"? {self.unit}/s"]
        if self.total is not None:
            parts.append(f"ETA {format_duration(self.eta())}")
        return " | ".join(parts)

    def details(self) -> str:
        """``elapsed | fields`` (a terminal shows them on a second line)."""
        parts = [f"elapsed {format_duration(self.clock() - self.started)}"]
        parts += [f"{key} {_format_value(value)}" for key, value in self.fields.items()]
        return " | ".join(parts)

    def status(self) -> str:
        """Everything after the name in a plain line."""
        return f"{self.counts()} | {self.details()}"

    # ----------------------------------------------------------------------------- writing
    def update(
        self,
        completed: float | None = None,
        *,
        advance: float = 0,
        total: float | None = None,
        estimated: bool | None = None,
        **fields: Any,
    ) -> None:
        """Set (``completed``) or add to (``advance``) the work done; change the total or its
        ``estimated`` flag; replace the named ``fields`` shown after the timing."""
        if completed is not None:
            self.completed = float(completed)
        self.completed += advance
        if total is not None:
            self.total = total
        if estimated is not None:
            self.estimated = estimated
        self.fields.update(fields)
        now = self.clock()
        self._samples.append((now, self.completed))
        while len(self._samples) > 2 and now - self._samples[1][0] >= self.window:
            self._samples.popleft()
        self._show(now)

    def _show(self, now: float, *, final: bool = False) -> None:
        if not self.enabled:
            return
        if self._bar is not None:
            self._bar.update(
                self._task,
                completed=self.completed,
                total=self.total,
                counts=self.counts(),
                details=self.details(),
            )
        elif final or self._last_line is None or now - self._last_line >= self.log_every:
            self._last_line = now
            prefix = f"{self.name} (done)" if final else self.name
            print(f"{prefix}: {self.status()}", file=self._stream or sys.stderr, flush=True)

    def close(self) -> None:
        """Stop the bar (it stays on screen in its last state) or write the final plain line."""
        if self._closed:
            return
        self._closed = True
        if self._bar is not None:
            self._bar.update(self._task, counts=self.counts(), details=self.details())
            self._bar.stop()
            self._bar = None
            atexit.unregister(self.close)
        elif self.enabled and self._last_line is not None:
            self._show(self.clock(), final=True)

    def __enter__(self) -> Progress:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
