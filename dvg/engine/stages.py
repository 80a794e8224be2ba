"""The CPU stages around the DVG step: decode a video into clips, encode a clip into a sample.

Every stage is a plain callable class, so the local loop calls it directly and the Ray
executor wraps it in a task or actor unchanged. Work items are small dataclasses that pickle
cheaply (numpy arrays inside).
"""

from __future__ import annotations

import hashlib
import time
import traceback
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from dvg import __version__
from dvg.engine import ledger
from dvg.engine.config import BuildConfig
from dvg.engine.step import ClipResult, ClipStepError, DVGStage, clip_statistics
from dvg.shards import ClipSample, encode_sample, make_key, video_id_for
from dvg.video import VideoClip, VideoError, check_input_file, iter_video_clips, probe_video

_HASH_CHUNK = 1 << 20


@dataclass(frozen=True)
class VideoTask:
    """One input video of one output group: ``name`` (path relative to its input root) gives
    its id and sample keys, ``path`` is where this run reads it."""

    group: str
    name: str
    path: str

    @property
    def video_id(self) -> str:
        return video_id_for(self.name)


@dataclass
class ClipTask:
    """A decoded clip on its way to the DVG step."""

    task: VideoTask
    key: str
    clip: VideoClip
    sha256: str
    size_bytes: int


@dataclass
class VideoOutcome:
    """The end of one video's decode: how many clips it gave and why it stopped early, if so."""

    task: VideoTask
    clips: int
    sha256: str | None
    error: tuple[str, str] | None
    """``(reason, message)`` when decoding failed; clips already yielded stay valid."""
    notes: tuple[str, ...] = ()
    seconds: float = 0.0
    info: dict[str, Any] = field(default_factory=dict)


@dataclass
class EncodedClip:
    """A sample ready for the tar, plus its ledger row."""

    key: str
    members: dict[str, bytes] | None
    """``None`` when the clip failed; then ``row`` says why."""
    row: dict[str, Any]


def file_sha256(path: str) -> tuple[str, int]:
    """Hash a file in chunks (bounded memory); returns ``(hex digest, size in bytes)``."""
    digest = hashlib.sha256()
    size = 0
    with open(path, "rb") as handle:
        while chunk := handle.read(_HASH_CHUNK):
            digest.update(chunk)
            size += len(chunk)
    return digest.hexdigest(), size


class DecodeStage:
    """CPU stage: stream one video into :class:`ClipTask` items, then its :class:`VideoOutcome`.

    Never raises for a bad video: every problem ends up in the outcome's ``error``.
    """

    def __init__(self, config: BuildConfig, *, sidecar_check=None) -> None:
        self.config = config
        # The sidecar depth backend needs a file next to each video: checking before decoding
        # turns a missing one into one ledger row instead of a failure per clip.
        self.sidecar_check = sidecar_check

    def __call__(self, task: VideoTask) -> Iterator[ClipTask | VideoOutcome]:
        start = time.perf_counter()
        busy = 0.0
        clips = 0
        sha256: str | None = None
        error: tuple[str, str] | None = None
        notes: tuple[str, ...] = ()
        info: dict[str, Any] = {}
        try:
            check_input_file(task.path)  # before opening: a FIFO named x.mp4 would block
            sha256, size_bytes = file_sha256(task.path)
            if self.sidecar_check is not None:
                # Probe first so a broken file is reported as broken, not as lacking depth.
                probe_video(task.path, self.config.video)
                self.sidecar_check(task.path)
            # Time only this stage's own work: the consumer runs between our yields.
            busy = time.perf_counter() - start
            clips_iter = iter_video_clips(task.path, self.config.video)
            while True:
                resumed = time.perf_counter()
                try:
                    clip = next(clips_iter)
                finally:
                    busy += time.perf_counter() - resumed
                notes = clip.info.notes
                info = {
                    "width": clip.frames.shape[2],
                    "height": clip.frames.shape[1],
                    "fps": clip.fps,
                }
                key = make_key(task.video_id, clip.scene, clip.index)
                clips += 1
                yield ClipTask(task, key, clip, sha256, size_bytes)
        except StopIteration:
            pass
        except VideoError as problem:
            error = (problem.reason, problem.message)
        except Exception as problem:  # a bad file must never stop a run of thousands
            error = failure_reason(problem, "decode_error")
        if busy == 0.0:  # failed before decoding started
            busy = time.perf_counter() - start
        yield VideoOutcome(task, clips, sha256, error, notes, busy, info)


def run_dvg(stage: DVGStage, item: ClipTask) -> ClipResult | EncodedClip:
    """Run the DVG step, turning a clip's failure into a failed ledger row."""
    start = time.perf_counter()
    try:
        result = stage.process(item.clip, item.key)
    except ClipStepError as problem:
        return failed_clip(item, problem.reason, problem.message, time.perf_counter() - start)
    except Exception as problem:  # out of memory, a model error, a bad sidecar: record, go on
        reason, message = failure_reason(problem, "dvg_error")
        if reason == "dvg_error":  # unexpected: words first, the traceback after them
            message = f"{message}\n{traceback.format_exc(limit=3)}"
        return failed_clip(item, reason, message, time.perf_counter() - start)
    result.timings["total"] = time.perf_counter() - start
    return result


def failure_reason(problem: Exception, default: str) -> tuple[str, str]:
    """``(reason, message)`` for the ledger: errors that carry a ``reason`` (a missing or bad
    sidecar) keep it and their own words; anything else is ``default`` with its type named."""
    reason = getattr(problem, "reason", None)
    if isinstance(reason, str) and reason:
        return reason, str(problem)
    if isinstance(problem, FileNotFoundError):
        return "missing_file", str(problem)
    return default, f"{type(problem).__name__}: {problem}"


def failed_clip(item: ClipTask, reason: str, message: str, seconds: float) -> EncodedClip:
    row = ledger.clip_row(
        video=item.task.name,
        video_id=item.task.video_id,
        key=item.key,
        status="failed",
        reason=reason,
        message=message,
        scene=item.clip.scene,
        clip=item.clip.index,
        frames=int(item.clip.frames.shape[0]),
        seconds=seconds,
    )
    return EncodedClip(item.key, None, row)


class EncodeStage:
    """CPU stage: compress a :class:`ClipResult` into tar members with its metadata."""

    def __init__(self, config: BuildConfig) -> None:
        self.config = config
        self.config_hash = config.data_hash()

    def __call__(self, item: ClipTask, result: ClipResult) -> EncodedClip:
        start = time.perf_counter()
        clip = result.clip
        stats = clip_statistics(result)
        draw = result.stereo
        meta = {
            "key": item.key,
            "source": {
                "path": item.task.name,
                "sha256": item.sha256,
                "size_bytes": item.size_bytes,
            },
            "video_id": item.task.video_id,
            "scene": clip.scene,
            "clip": clip.index,
            "frame_indices": clip.frame_indices.tolist(),
            "source_frame_indices": clip.source_indices.tolist(),
            "timestamps": [round(float(t), 6) for t in clip.timestamps],
            "fps": clip.fps,
            "transform": clip.transform.to_dict(),
            "stereo": {
                "mode": draw.mode,
                "baseline": draw.baseline,
                "max_disparity_px": draw.max_disparity_px,
                "convergence": draw.convergence,
                "focal_px": draw.focal_px,
                "depth_bounds": draw.depth_bounds,
                "disparity_min": stats["disparity_min"],
                "disparity_max": stats["disparity_max"],
                "disparity_mean_abs": stats["disparity_mean_abs"],
                "virtual_eye": "left",
                "convention": "novel (x2) is the left eye: x2 x = source x + disparity",
            },
            "deviation": {
                "image_mean_abs_per_frame": stats["deviation_per_frame"],
                "disparity_mean_abs_per_frame": stats["disparity_mean_abs_per_frame"],
            },
            "masks": {
                "coverage": stats["mask_coverage"],
                "coverage_raw": stats["mask_raw_coverage"],
                "coverage_per_frame": stats["mask_coverage_per_frame"],
                "holes": stats["hole_coverage"],
                "refined": self.config.masks.refine,
            },
            "models": result.models,
            "config_hash": self.config_hash,
            "code_version": __version__,
        }
        sample = ClipSample(
            key=item.key,
            source=result.source,
            novel=result.novel,
            masked=result.masked,
            mask=result.mask,
            mask_raw=result.mask_raw,
            disparity=result.disparity if self.config.output.keep_disparity else None,
            meta=meta,
        )
        members = encode_sample(
            sample,
            image_format=self.config.output.image_format,
            jpeg_quality=self.config.output.jpeg_quality,
        )
        seconds = result.timings.get("total", 0.0) + time.perf_counter() - start
        row = ledger.clip_row(
            video=item.task.name,
            video_id=item.task.video_id,
            key=item.key,
            status="ok",
            scene=clip.scene,
            clip=clip.index,
            frames=int(result.source.shape[0]),
            width=int(result.source.shape[2]),
            height=int(result.source.shape[1]),
            fps=float(clip.fps),
            baseline=draw.baseline,
            max_disparity_px=draw.max_disparity_px,
            disparity_min=stats["disparity_min"],
            disparity_max=stats["disparity_max"],
            disparity_mean_abs=stats["disparity_mean_abs"],
            mask_coverage=stats["mask_coverage"],
            mask_raw_coverage=stats["mask_raw_coverage"],
            hole_coverage=stats["hole_coverage"],
            deviation_mean=float(sum(stats["deviation_per_frame"]) / len(result.source)),
            seconds=seconds,
            timings=dict(result.timings, encode=time.perf_counter() - start),
        )
        return EncodedClip(item.key, members, row)


def sidecar_check_for(config: BuildConfig):
    """The sidecar-depth presence check for the decode stage, or None for other backends."""
    if config.depth.name != "sidecar":
        return None
    from dvg.backends import DEPTH_BACKENDS

    return DEPTH_BACKENDS.create(config.depth).check  # weights-free: cheap to create
