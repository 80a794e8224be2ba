"""What a user watching `dvg build` sees: live progress in input frames, and a summary table.

The live display is :class:`dvg.progress.Progress` (a rich bar on a terminal, a plain line every
``log_every`` seconds in a log file). It counts input frames, not whole videos, so one long video
shows an ETA too: each clip reports how far into its video it reaches and how many frames the
video has (from its duration); videos not started yet are assumed to be as long as the average
started one, so the total is marked estimated (``~``) until every video has been seen.
"""

from __future__ import annotations

import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from rich.table import Table

from dvg.progress import Progress
from dvg.video import VideoClip


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


@dataclass(frozen=True)
class ClipPosition:
    """How far into its video a clip reaches: ``reached`` output frames of about ``expected``
    (None when the video's duration is unknown)."""

    video: str
    reached: int
    expected: int | None


def clip_position(video: str, clip: VideoClip) -> ClipPosition:
    """The position of ``clip`` (decoded from the input named ``video``) in its video."""
    reached = int(clip.frame_indices[-1]) + 1
    duration = clip.info.duration
    expected = round(duration * clip.fps) if duration > 0 and clip.fps > 0 else None
    return ClipPosition(video, reached, None if expected is None else max(expected, reached))


@dataclass
class _VideoState:
    reached: int = 0
    expected: int | None = None
    finished: bool = False

    @property
    def done(self) -> int:
        if self.finished:
            return self.expected if self.expected is not None else self.reached
        return self.reached


class BuildProgress:
    """Receives events from an executor and shows them; quiet mode records only."""

    def __init__(self, videos_total: int, *, enabled: bool = True, log_every: float = 30.0):
        self.counters = BuildCounters(videos_total=videos_total)
        self.enabled = enabled
        self.display = Progress(
            "dvg build", None, unit="frames", enabled=enabled, log_every=log_every
        )
        self._videos: dict[str, _VideoState] = {}

    def _frames(self) -> tuple[int, int | None, bool]:
        """(input frames done, estimated total or None, whether the total is an estimate)."""
        known = [v.expected for v in self._videos.values() if v.expected is not None]
        done = sum(v.done for v in self._videos.values())
        if not known:
            return done, None, True
        unseen = self.counters.videos_total - len(self._videos)
        unknown = sum(1 for v in self._videos.values() if v.expected is None and not v.finished)
        mean = sum(known) / len(known)
        finished_unknown = sum(
            v.reached for v in self._videos.values() if v.expected is None and v.finished
        )
        total = round(sum(known) + finished_unknown + (unseen + unknown) * mean)
        return done, max(total, done), unseen + unknown > 0

    def _refresh(self) -> None:
        if not self.enabled:
            return
        c = self.counters
        done, total, estimated = self._frames()
        self.display.update(
            done,
            total=total,
            estimated=estimated,
            videos=f"{c.videos_done}/{c.videos_total}",
            clips=c.clips,
            failed=f"{c.videos_failed} videos, {c.clips_failed} clips",
        )

    def clip_done(self, row: dict[str, Any], position: ClipPosition | None = None) -> None:
        if row["status"] == "ok":
            self.counters.clips += 1
            self.counters.frames += row["frames"] or 0
        else:
            self.counters.clips_failed += 1
            self.counters.failures[row["reason"]] += 1
        if position is not None:
            state = self._videos.setdefault(position.video, _VideoState())
            state.reached = max(state.reached, position.reached)
            if position.expected is not None:
                state.expected = max(state.expected or 0, position.expected)
        self._refresh()

    def video_done(self, error: tuple[str, str] | None, video: str | None = None) -> None:
        self.counters.videos_done += 1
        if error is not None:
            self.counters.videos_failed += 1
            self.counters.failures[error[0]] += 1
        if video is not None:
            self._videos.setdefault(video, _VideoState()).finished = True
        self._refresh()

    def group_done(self) -> None:
        self.counters.groups_done += 1
        self._refresh()

    def close(self) -> None:
        self.display.close()


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
