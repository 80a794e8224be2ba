"""The Ray executor: decode and encode as CPU tasks, the DVG step in a GPU actor pool.

Stages and the queues between them::

    videos --(decode tasks, streaming)--> clips --(DVG actors, <= queue_size each)--> results
           --(encode tasks)--> samples --(driver: GroupWriter)--> NNNNNN.tar/.parquet/_stats.json

* Decode runs as streaming generator tasks (``decode_workers`` at a time); Ray's generator
  backpressure stops a decoder when the driver has not taken its clips, so a fast decoder
  never floods the object store.
* Each DVG actor loads the three models once (``num_gpus`` per actor, fractional allowed) and
  never holds more than ``queue_size`` clips, so GPUs always have the next clip ready while
  decode and encode run on CPUs elsewhere in the cluster.
* The driver only ever fetches small headers and encoded samples; frames move between
  workers as object references.
* Actors restart if they die (``max_restarts``) and retry the clip they held; a clip that still
  fails becomes a ledger row, like any other failure.

The driver writes the shards, so ``--out`` must be on storage the driver can write (on a
multi-node cluster, run ``dvg build`` on the head node or point it at a shared filesystem).
"""

from __future__ import annotations

import os
from collections import deque
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from dvg.engine import ledger
from dvg.engine.config import BuildConfig
from dvg.engine.output import Group, GroupWriter
from dvg.engine.progress import BuildProgress, ClipPosition, clip_position
from dvg.engine.stages import (
    ClipTask,
    DecodeStage,
    EncodedClip,
    EncodeStage,
    VideoOutcome,
    VideoTask,
    run_dvg,
    sidecar_check_for,
)
from dvg.engine.step import DVGStage
from dvg.engine.threads import default_torch_threads


@dataclass(frozen=True)
class ClipHeader:
    """What the driver learns about a clip without fetching its frames."""

    group: str
    video: str
    video_id: str
    key: str
    scene: int
    clip: int
    frames: int
    position: ClipPosition | None = None
    """How far into its video the clip reaches (for the progress display)."""


def decode_video(config: BuildConfig, task: VideoTask) -> Iterator[Any]:
    """Decode generator for a Ray task: a small header, then the clip payload, per clip;
    finally the :class:`VideoOutcome`."""
    for item in DecodeStage(config, sidecar_check=sidecar_check_for(config))(task):
        if isinstance(item, ClipTask):
            yield ClipHeader(
                task.group,
                task.name,
                task.video_id,
                item.key,
                item.clip.scene,
                item.clip.index,
                int(item.clip.frames.shape[0]),
                clip_position(task.name, item.clip),
            )
        yield item


class DVGWorker:
    """Actor body: one :class:`DVGStage` (models loaded once) per actor."""

    def __init__(self, config: BuildConfig) -> None:
        # The actor's own process: set for good, nothing to restore.
        torch.set_num_threads(config.executor.threads or default_torch_threads())
        self.stage = DVGStage(config)

    def process(self, item: ClipTask) -> tuple[ClipTask, Any]:
        return item, run_dvg(self.stage, item)


def encode_clip(config: BuildConfig, processed: tuple[ClipTask, Any]) -> EncodedClip:
    item, result = processed
    if isinstance(result, EncodedClip):  # the DVG step failed; the row says why
        return result
    return EncodeStage(config)(item, result)


def _init_ray(config: BuildConfig) -> bool:
    """Join ``--ray-address`` / ``RAY_ADDRESS`` or start a local Ray; True if we started it."""
    import ray

    if ray.is_initialized():
        return False
    address = config.executor.ray_address or os.environ.get("RAY_ADDRESS")
    if address:
        ray.init(address=address, logging_level="warning")
        return False
    # A local Ray sized so decoders, the actor and encoders can all be scheduled even on a
    # 2-core machine (Ray CPUs are scheduling labels, not a hard limit).
    ex = config.executor
    needed = ex.decode_workers + (ex.dvg_actors or 1) + ex.encode_workers
    ray.init(
        num_cpus=max(os.cpu_count() or 1, needed),
        include_dashboard=False,
        logging_level="warning",
        configure_logging=False,
    )
    return True


@dataclass
class _GroupState:
    writer: GroupWriter
    videos_left: int
    clips_pending: int = 0


def run_ray(
    config: BuildConfig, out_dir: Path, groups: list[Group], progress: BuildProgress
) -> Iterator[dict[str, Any]]:
    """Process ``groups`` on Ray, yielding each group's done marker as it is committed."""
    import ray

    started_here = _init_ray(config)
    try:
        yield from _run(ray, config, out_dir, groups, progress)
    finally:
        if started_here:
            ray.shutdown()


def _run(ray, config, out_dir, groups, progress) -> Iterator[dict[str, Any]]:
    ex = config.executor
    gpus = ray.cluster_resources().get("GPU", 0)
    num_gpus = ex.num_gpus if gpus > 0 else 0
    actors_n = ex.dvg_actors or (max(1, int(gpus // num_gpus)) if num_gpus else 1)
    actor_cls = ray.remote(
        num_gpus=num_gpus, num_cpus=0 if num_gpus else 1, max_restarts=2, max_task_retries=2
    )(DVGWorker)
    config_ref = ray.put(config)
    actors = [actor_cls.remote(config) for _ in range(actors_n)]  # by value: restartable
    # Models load before any video is decoded: a broken model fails the run up front.
    ray.get([a.__ray_ready__.remote() for a in actors])

    decode_task = ray.remote(
        num_cpus=1, num_returns="streaming", _generator_backpressure_num_objects=2 * ex.queue_size
    )(decode_video)
    encode_task = ray.remote(num_cpus=0.5)(encode_clip)

    config_hash = config.data_hash()
    videos = deque(VideoTask(g.name, v.name, v.path) for g in groups for v in g.inputs)
    states = {
        g.name: _GroupState(GroupWriter(out_dir, g, config_hash), len(g.videos)) for g in groups
    }
    decoders: dict[Any, VideoTask] = {}
    headers: dict[Any, ClipHeader] = {}  # generator -> header of the payload it yields next
    waiting: deque[tuple[ClipHeader, Any]] = deque()  # (header, clip ref) ready for an actor
    on_actor: dict[Any, tuple[int, ClipHeader]] = {}
    load = [0] * actors_n
    encoding: dict[Any, ClipHeader] = {}
    capacity = actors_n * ex.queue_size

    def finish_clip(header: ClipHeader, encoded: EncodedClip) -> Iterator[dict[str, Any]]:
        state = states[header.group]
        state.writer.add_clip(encoded)
        state.clips_pending -= 1
        progress.clip_done(encoded.row, header.position)
        yield from maybe_commit(header.group)

    def maybe_commit(name: str) -> Iterator[dict[str, Any]]:
        state = states[name]
        if state.videos_left == 0 and state.clips_pending == 0:
            del states[name]
            stats = state.writer.commit()
            progress.group_done()
            yield stats

    while videos or decoders or waiting or on_actor or encoding:
        while videos and len(decoders) < ex.decode_workers:
            task = videos.popleft()
            decoders[decode_task.remote(config_ref, task)] = task
        while waiting and min(load) < ex.queue_size:
            header, clip_ref = waiting.popleft()
            index = load.index(min(load))
            load[index] += 1
            on_actor[actors[index].process.remote(clip_ref)] = (index, header)

        # Backpressure: take more clips from decoders only while the actors' queues have room.
        pulling = list(decoders) if len(waiting) + len(on_actor) < capacity else []
        waitables = pulling + list(on_actor) + list(encoding)
        ready, _ = ray.wait(waitables, num_returns=1, timeout=1.0)
        for ref in ready:
            if ref in decoders:
                yield from _pull_decoder(
                    ref, decoders, headers, waiting, states, progress, maybe_commit
                )
            elif ref in on_actor:
                index, header = on_actor.pop(ref)
                load[index] -= 1
                encoding[encode_task.remote(config_ref, ref)] = header
            else:
                header = encoding.pop(ref)
                try:
                    encoded = ray.get(ref)
                except Exception as problem:  # a worker died twice, a node was lost, ...
                    encoded = EncodedClip(header.key, None, _lost_row(header, problem))
                yield from finish_clip(header, encoded)


def _pull_decoder(gen, decoders, headers, waiting, states, progress, maybe_commit):
    import ray

    task = decoders[gen]
    try:
        ref = next(gen)
    except StopIteration:
        del decoders[gen]
        headers.pop(gen, None)
        return
    try:
        if gen in headers:  # the payload that follows a header: keep it remote
            header = headers.pop(gen)
            states[header.group].clips_pending += 1
            waiting.append((header, ref))
            return
        item = ray.get(ref)
    except Exception as problem:  # the decode worker died: the video fails, the run goes on
        item = VideoOutcome(
            task, 0, None, ("decode_worker_error", f"{type(problem).__name__}: {problem}")
        )
        del decoders[gen]
    if isinstance(item, ClipHeader):
        headers[gen] = item
        return
    state = states[task.group]
    state.writer.add_video(item)
    state.videos_left -= 1
    progress.video_done(item.error, task.name)
    yield from maybe_commit(task.group)


def _lost_row(header: ClipHeader, problem: Exception) -> dict[str, Any]:
    return ledger.clip_row(
        video=header.video,
        video_id=header.video_id,
        key=header.key,
        status="failed",
        reason="worker_error",
        message=f"{type(problem).__name__}: {problem}"[:2000],
        scene=header.scene,
        clip=header.clip,
        frames=header.frames,
    )
