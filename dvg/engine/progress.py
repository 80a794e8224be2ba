"""What a user watching `dvg build` sees: a live progress line and a final summary table.

On a terminal it is a rich progress bar; in a log file (a cluster job) it is one plain line
every ``log_every`` seconds, because a redrawn bar is unreadable there.
"""

from __future__ import annotations

import sys
import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from rich.console import Console
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn
from rich.table import Table


@dataclass
class BuildCounters:
    """Running totals of a build."""

    videos_total: int = 0
    videos_done: int = 0
    videos_failed: int = 0
    clips: int = 0
    clips_failed: int = 0
    frames: int = 0
    groups_done: int = 0
    failures: Counter[str] = field(default_factory=Counter)
    started: float = field(default_factory=time.monotonic)

    @property
    def elapsed(self) -> float:
        return time.monotonic() - self.started

    @property
    def frames_per_second(self) -> float:
        return self.frames / max(self.elapsed, 1e-9)


class BuildProgress:
    """Receives events from an executor and shows them; quiet mode records only."""

    def __init__(self, videos_total: int, *, enabled: bool = True, log_every: float = 30.0):
        self.counters = BuildCounters(videos_total=videos_total)
        self.console = Console(stderr=True)
        self.enabled = enabled
        self.log_every = log_every
        self._last_log = time.monotonic()
        self._progress: Progress | None = None
        if enabled and self.console.is_terminal:
            self._progress = Progress(
                TextColumn("[bold]dvg build"),
                BarColumn(),
                TextColumn("{task.completed}/{task.total} videos"),
                TextColumn("{task.fields[status]}"),
                TimeElapsedColumn(),
                TimeRemainingColumn(),
                console=self.console,
            )
            self._task = self._progress.add_task("build", total=videos_total, status="")
            self._progress.start()

    def _status(self) -> str:
        c = self.counters
        return (
            f"{c.clips} clips, {c.frames_per_second:.1f} frames/s, "
            f"{c.videos_failed} failed videos, {c.clips_failed} failed clips"
        )

    def _refresh(self) -> None:
        if not self.enabled:
            return
        if self._progress is not None:
            self._progress.update(
                self._task, completed=self.counters.videos_done, status=self._status()
            )
        elif time.monotonic() - self._last_log >= self.log_every:
            self._last_log = time.monotonic()
            c = self.counters
            print(
                f"dvg build: {c.videos_done}/{c.videos_total} videos, {self._status()}",
                file=sys.stderr,
                flush=True,
            )

    def clip_done(self, row: dict[str, Any]) -> None:
        if row["status"] == "ok":
            self.counters.clips += 1
            self.counters.frames += row["frames"] or 0
        else:
            self.counters.clips_failed += 1
            self.counters.failures[row["reason"]] += 1
        self._refresh()

    def video_done(self, error: tuple[str, str] | None) -> None:
        self.counters.videos_done += 1
        if error is not None:
            self.counters.videos_failed += 1
            self.counters.failures[error[0]] += 1
        self._refresh()

    def group_done(self) -> None:
        self.counters.groups_done += 1
        self._refresh()

    def close(self) -> None:
        if self._progress is not None:
            self._progress.stop()
            self._progress = None


def summary_table(summary: Any) -> Table:
    """The end-of-run table: what was made, what was skipped, what failed and why."""
    table = Table(title="dvg build summary", show_header=False)
    table.add_column("what")
    table.add_column("value", justify="right")
    table.add_row(
        "groups written / skipped (done)", f"{summary.groups_written} / {summary.groups_skipped}"
    )
    table.add_row(
        "videos ok / partial / failed",
        f"{summary.videos_ok} / {summary.videos_partial} / {summary.videos_failed}",
    )
    table.add_row("samples (clips) in the output", str(summary.samples))
    table.add_row("clips failed", str(summary.clips_failed))
    table.add_row("frames written this run", str(summary.frames_this_run))
    table.add_row("time this run", f"{summary.seconds:.1f} s")
    table.add_row("frames/s this run", f"{summary.frames_per_second:.2f}")
    for reason, count in sorted(summary.failures_by_reason.items(), key=lambda kv: -kv[1]):
        table.add_row(f"failure: {reason}", str(count))
    table.add_row("manifest", str(summary.manifest))
    return table
