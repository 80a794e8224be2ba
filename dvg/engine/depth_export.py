"""`dvg depth`: run a depth backend over videos once and keep compact sidecars.

Each video ``trip.mp4`` gets a folder ``<out>/trip.mp4.invdepth/`` (or, without ``out``, one next
to the video) of 16-bit PNGs with their scale (:mod:`dvg.backends.depth_formats`), which
``dvg build --depth sidecar`` and ``spatialdreamer convert --depth`` read like any sidecar. A
frame's PNG appears whole (written to a temporary name, then renamed) and ``depth.json`` is
written last, so a killed run resumes: finished videos are skipped and a partly written video
computes depth only for its missing frames. A bad video is reported and the run goes on.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np

from dvg.backends import DEPTH_BACKENDS, BackendSpec, DepthContext, sidecar_name
from dvg.backends.depth_formats import (
    DONE_FILE,
    frame_png_name,
    write_done,
    write_inverse_depth_png,
)
from dvg.backends.preflight import preflight_weights
from dvg.video import FrameTransform, VideoConfig, VideoInput, discover_inputs, probe_video
from dvg.video.decode import read_frames

SUFFIX = ".invdepth"
# Any size ffmpeg decodes; depth models resize internally.
PROBE = VideoConfig(short_side=None, max_side=None, min_side=8, max_pixels=7680 * 4320)


@dataclass(frozen=True)
class DepthExportConfig:
    """What ``dvg depth`` runs.

    Attributes:
        depth: the depth backend (any of ``DEPTH_BACKENDS`` with weights: ``dpt``,
            ``depth-anything``, ``marigold``); ``batch_size`` frames go to the model at once.
        max_side: store maps with their long side at most this many pixels (area-averaged;
            readers resize them back to the video's size); None keeps the native size.
        overwrite: recompute videos that already have a finished sidecar.
    """

    depth: BackendSpec = field(default_factory=lambda: BackendSpec("dpt"))
    max_side: int | None = None
    overwrite: bool = False

    def __post_init__(self) -> None:
        if self.depth.name == "sidecar":
            raise ValueError(
                "dvg depth computes depth with a model: choose dpt, depth-anything "
                "or marigold, not sidecar"
            )
        DEPTH_BACKENDS.get(self.depth.name)  # unknown names: ValueError listing the known ones
        if self.max_side is not None and self.max_side < 8:
            raise ValueError(f"max_side must be >= 8 or None, got {self.max_side}")


@dataclass
class DepthExportSummary:
    """What a ``dvg depth`` run did."""

    written: list[Path] = field(default_factory=list)
    skipped: list[Path] = field(default_factory=list)
    failed: dict[str, str] = field(default_factory=dict)  # video path -> reason
    frames: int = 0
    seconds: float = 0.0


def sidecar_folder(video: VideoInput, out_dir: Path | None) -> Path:
    """Where the sidecar of ``video`` goes: ``<out>/<file name>.invdepth`` (``trip.mp4.invdepth``:
    named after the whole file name, the sidecar lookup's first choice, so ``trip.mp4`` and
    ``trip.mkv`` do not share one) or next to the video."""
    path = Path(video.path)
    folder = out_dir if out_dir is not None else path.parent
    return folder / sidecar_name(path.name, SUFFIX)


def plan(sources: Sequence[str | Path], out_dir: Path | None) -> list[tuple[VideoInput, Path]]:
    """(video, sidecar folder) pairs; ValueError when two videos would share a folder (the
    sidecar lookup is by file name, so a flat ``--out`` needs unique file names)."""
    videos = discover_inputs([str(s) for s in sources])
    if not videos:
        raise ValueError(f"no input videos found in {', '.join(map(str, sources))}")
    pairs = [(video, sidecar_folder(video, out_dir)) for video in videos]
    seen: dict[Path, str] = {}
    for video, folder in pairs:
        if folder in seen:
            raise ValueError(
                f"{seen[folder]} and {video.path} would both write {folder} (sidecars are "
                "found by the video's file name): leave out --out to write each next to its "
                "video, or run once per folder"
            )
        seen[folder] = video.path
    return pairs


def export_depth(
    sources: Sequence[str | Path],
    out_dir: str | Path | None,
    config: DepthExportConfig,
    *,
    show_progress: bool = True,
) -> DepthExportSummary:
    """Write a ``.invdepth`` sidecar folder for every input video (see the module docstring).

    Raises ValueError (no inputs, clashing names) or MissingWeightsError before anything is
    written; once work starts, a failing video is recorded in the summary and skipped.
    """
    start = time.monotonic()
    out = None if out_dir is None else Path(out_dir)
    pairs = plan(sources, out)
    preflight_weights({"depth": config.depth})
    summary = DepthExportSummary()
    todo = []
    for video, folder in pairs:
        if (folder / DONE_FILE).is_file() and not config.overwrite:
            summary.skipped.append(folder)
        else:
            todo.append((video, folder))
    if todo:
        backend = DEPTH_BACKENDS.create(config.depth)  # loads the model once
        progress = FrameProgress(show_progress)
        try:
            for video, folder in todo:
                try:
                    summary.frames += _export_video(video, folder, backend, config, progress)
                    summary.written.append(folder)
                except Exception as error:  # one bad video never stops the run
                    summary.failed[video.path] = f"{type(error).__name__}: {error}"
                    progress.note(f"dvg depth: {video.path} failed: {error}")
        finally:
            progress.close()
    summary.seconds = time.monotonic() - start
    return summary


def _export_video(video: VideoInput, folder: Path, backend, config: DepthExportConfig, progress):
    info = probe_video(video.path, PROBE)
    folder.mkdir(parents=True, exist_ok=True)
    if config.overwrite:
        (folder / DONE_FILE).unlink(missing_ok=True)
    size = info.size
    transform = FrameTransform(size, (0, 0, *size), size, size)
    stored = _stored_size(size, config.max_side)
    progress.start(Path(video.path).name, info.num_frames)
    batch: list[tuple[int, np.ndarray]] = []
    frames = 0

    def flush() -> None:
        images = np.stack([image for _, image in batch])
        indices = np.array([index for index, _ in batch], dtype=np.int64)
        context = DepthContext(video.path, indices, transform)
        inverse = backend.predict(images, context).inverse_depth
        for index, depth in zip(indices.tolist(), inverse, strict=True):
            if stored != size:
                depth = cv2.resize(depth, stored, interpolation=cv2.INTER_AREA)
            write_inverse_depth_png(folder / frame_png_name(index), np.maximum(depth, 0))
        progress.advance(len(batch))
        batch.clear()

    for frame in read_frames(info, [], size, None):
        frames += 1
        target = folder / frame_png_name(frame.index)
        if target.is_file() and not config.overwrite:
            progress.advance(1)  # done by an earlier, interrupted run
            continue
        batch.append((frame.index, frame.image))
        if len(batch) >= config.depth.batch_size:
            flush()
    if batch:
        flush()
    write_done(
        folder,
        {
            "video": video.name,
            "frames": frames,
            "width": size[0],
            "height": size[1],
            "stored_width": stored[0],
            "stored_height": stored[1],
            "backend": config.depth.to_dict(),
            "model_id": backend.model_id,
        },
    )
    return frames


def _stored_size(size: tuple[int, int], max_side: int | None) -> tuple[int, int]:
    width, height = size
    if max_side is None or max(size) <= max_side:
        return size
    scale = max_side / max(size)
    return max(1, round(width * scale)), max(1, round(height * scale))


class FrameProgress:
    """Frames of the current video with frames/s and ETA: a rich bar on a terminal, a plain
    line every ``log_every`` seconds in a log."""

    def __init__(self, enabled: bool, log_every: float = 30.0) -> None:
        from rich.console import Console

        self.enabled, self.log_every = enabled, log_every
        self.console = Console(stderr=True)
        self._bar = None
        self._task = None
        self._name, self._total, self._done = "", None, 0
        self._started = self._last = time.monotonic()
        if enabled and self.console.is_terminal:
            from rich.progress import (
                BarColumn,
                MofNCompleteColumn,
                Progress,
                TextColumn,
                TimeElapsedColumn,
                TimeRemainingColumn,
            )

            self._bar = Progress(
                TextColumn("dvg depth {task.description}"),
                BarColumn(),
                MofNCompleteColumn(),
                TimeElapsedColumn(),
                TextColumn("ETA"),
                TimeRemainingColumn(),
                console=self.console,
            )
            self._bar.start()

    def start(self, name: str, total: int | None) -> None:
        self._name, self._total, self._done = name, total, 0
        self._started = time.monotonic()
        if self._bar is not None:
            if self._task is not None:
                self._bar.remove_task(self._task)
            self._task = self._bar.add_task(name, total=total)

    def advance(self, frames: int) -> None:
        self._done += frames
        if self._bar is not None:
            self._bar.advance(self._task, frames)
        elif self.enabled and time.monotonic() - self._last >= self.log_every:
            self._last = time.monotonic()
            rate = self._done / max(time.monotonic() - self._started, 1e-9)
            total = f"/{self._total}" if self._total else ""
            eta = (
                f", ETA {(self._total - self._done) / rate:.0f} s"
                if self._total and rate > 0
                else ""
            )
            self.note(
                f"dvg depth {self._name}: {self._done}{total} frames, {rate:.2f} frames/s{eta}"
            )

    def note(self, line: str) -> None:
        if self._bar is not None:
            self._bar.console.print(line)
        else:
            print(line, file=sys.stderr, flush=True)

    def close(self) -> None:
        if self._bar is not None:
            self._bar.stop()
            self._bar = None
