"""Training data: DVG shards streamed with WebDataset as batches of paired views (paper 3.3, 3.5).

Shards are listed from the build's ``manifest.json`` (never a ``*.tar`` glob, which would pick up
unfinished shards), split by rank (node) and by data-loader worker, read sample by sample,
shuffled in a buffer and decoded: one random frame per clip in frame mode (stage 1), a random
window of ``num_frames`` contiguous frames in clip mode (stage 2). Roles follow the paper: the
real frame x1 is the target (ground truth), x~1 (x2 rendered back to x1's viewpoint, blanked in
M) and M its conditions, the inpainted novel view x2 the reference. Since shard format v2, x2 is
the eye to the LEFT of x1, so the target sits to the right of its reference exactly as the
generated right view sits to the right of the input left view at inference (docs/model.md,
"Handedness").

The pipeline is a ``webdataset.DataPipeline`` (shard lists, ``split_by_worker``, ``shuffle``),
but tars are read by ``dvg.shards.iter_tar_samples`` instead of WebDataset's ``tarfile`` reader:
``tarfile`` ends a shard cut at a member boundary silently, as if it were complete.

Only ``dvg.shards`` is imported from the data engine (no model or video code).
"""

from __future__ import annotations

import json
import os
import warnings
import zlib
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, TypeVar

import numpy as np
import torch
import webdataset as wds
from torch.utils.data import DataLoader, IterableDataset, get_worker_info

from dvg.shards import (
    FORMAT_VERSION,
    MANIFEST_NAME,
    ShardFormatError,
    decode_sample,
    iter_tar_samples,
    member_name,
    read_manifest,
    read_meta,
)
from trainer.transforms import masks_to_tensor, resize_center_crop, views_to_tensor

T = TypeVar("T")
Condition = Literal["back_rendered", "clean"]


def decoded_fields(condition: Condition) -> tuple[str, ...]:
    """The shard fields the trainer decodes: x1, x2, M, and x~1 unless the ablation's clean
    condition x1 * (1 - M) is asked for."""
    return ("source", "novel", "mask") + (("masked",) if condition == "back_rendered" else ())


class ShardVersionError(ShardFormatError):
    """A sample written in a shard format version this trainer does not read; never skipped."""


@dataclass(frozen=True)
class DataConfig:
    """Where the training pairs come from and how they are drawn (paper 4.1: 1024 x 1024 crops,
    stage 1 single frames at batch 8, stage 2 8-frame clips at batch 2).

    Attributes:
        shards: a ``dvg build`` output folder or its ``manifest.json``.
        mode: ``"frame"`` (stage 1: one random frame per clip) or ``"clip"`` (stage 2: a random
            window of ``num_frames`` contiguous frames; shorter clips are skipped and counted).
        num_frames: window length in clip mode.
        resolution: side of the square after resizing the short side and centre-cropping.
        batch_size: samples per batch (per rank).
        num_workers: data-loader worker processes (0 = read in the training process).
        shuffle_buffer: samples held for shuffling (0 = stream order; shards are then also read in
            manifest order).
        seed: seeds shard order, resampling, frame draws and the buffer. A stream is a function of
            (seed, rank, worker): change the seed per pass or on resume to see new draws.
        resampled: True = an endless stream drawing shards with replacement (step-based training);
            False = one pass over this rank's shards (tests, validation).
        condition: ``"back_rendered"`` (the paper's x~1, the shards' ``masked`` member) or, for
            ablations only, ``"clean"``: x1 * (1 - M), pixel-exact outside M, a cleaner condition
            than inference ever gives (docs/model.md, "The condition x~1").
        mirror: ablations only: flip every view and mask left-right, which turns format-v2 data
            back into the pre-v2 handedness (x2 to the RIGHT of x1), the geometry inference never
            sees.
        max_skipped_fraction: the run stops (``TooManySkippedError``) when more than this share
            of the samples read were skipped as damaged or hostile (judged once
            ``SKIP_CHECK_AFTER`` samples were read); below it they are skipped and counted.
    """

    shards: str
    mode: Literal["frame", "clip"] = "frame"
    num_frames: int = 8
    resolution: int = 1024
    batch_size: int = 8
    num_workers: int = 2
    shuffle_buffer: int = 256
    seed: int = 0
    resampled: bool = True
    condition: Condition = "back_rendered"
    mirror: bool = False
    max_skipped_fraction: float = 0.05

    def __post_init__(self) -> None:
        if self.mode not in ("frame", "clip"):
            raise ValueError(f"DataConfig.mode must be 'frame' or 'clip', got {self.mode!r}")
        if self.condition not in ("back_rendered", "clean"):
            raise ValueError(
                f"DataConfig.condition must be 'back_rendered' or 'clean', got {self.condition!r}"
            )
        for name in ("num_frames", "resolution", "batch_size"):
            if _bad_int(getattr(self, name), 1):
                raise ValueError(
                    f"DataConfig.{name} must be an int >= 1, got {getattr(self, name)!r}"
                )
        for name in ("num_workers", "shuffle_buffer"):
            if _bad_int(getattr(self, name), 0):
                raise ValueError(
                    f"DataConfig.{name} must be an int >= 0, got {getattr(self, name)!r}"
                )
        if not 0 <= self.max_skipped_fraction <= 1:
            raise ValueError(
                "DataConfig.max_skipped_fraction must be in [0, 1], got "
                f"{self.max_skipped_fraction!r}"
            )

    @property
    def frames_per_sample(self) -> int:
        """F of the batch tensors: 1 in frame mode, ``num_frames`` in clip mode."""
        return 1 if self.mode == "frame" else self.num_frames


def _bad_int(value: Any, minimum: int) -> bool:
    return isinstance(value, bool) or not isinstance(value, int) or value < minimum


@dataclass
class DataCounters:
    """Running totals of what the loader read and skipped, for TensorBoard.

    Data-loader workers cannot share a counter with the training process, so every sample carries
    the skips its worker saw since the previous sample it emitted (batch fields ``skipped`` and
    ``skipped_shards``); ``update`` adds a batch's values, so the totals are exact whatever the
    worker count.
    """

    samples_seen: int = 0
    skipped_samples: int = 0
    skipped_shards: int = 0

    def update(self, batch: dict[str, Any]) -> DataCounters:
        """Add one batch: ``len(batch["key"])`` samples and its ``skipped``/``skipped_shards``."""
        self.samples_seen += len(batch["key"])
        self.skipped_samples += int(batch["skipped"].sum())
        self.skipped_shards += int(batch["skipped_shards"].sum())
        return self

    def check_skipped(self, max_fraction: float) -> None:
        """Raise TooManySkippedError when more than ``max_fraction`` of the samples read so far
        were skipped, once at least ``SKIP_CHECK_AFTER`` were read (a few bad samples at the
        start of a stream are not a verdict on the data set)."""
        read = self.samples_seen + self.skipped_samples
        if read >= SKIP_CHECK_AFTER and self.skipped_samples > max_fraction * read:
            raise TooManySkippedError(
                f"{self.skipped_samples} of the {read} samples read were skipped as damaged or "
                f"hostile ({self.skipped_samples / read:.1%}, above data.max_skipped_fraction="
                f"{max_fraction:g}; {self.skipped_shards} shards skipped as well): check the "
                "shards (the warnings name them) or rebuild them"
            )


SKIP_CHECK_AFTER = 100  # samples read before the skipped fraction is judged


class TooManySkippedError(ValueError):
    """More of the training data was skipped as damaged than ``max_skipped_fraction`` allows."""


def resolve_rank(rank: int | None = None, world_size: int | None = None) -> tuple[int, int]:
    """(rank, world_size): the explicit pair, else torch.distributed's when it is initialised,
    else ``RANK``/``WORLD_SIZE`` from the environment (torchrun, accelerate launch), else (0, 1)."""
    if (rank is None) != (world_size is None):
        raise ValueError("pass both rank and world_size, or neither")
    if rank is None:
        if torch.distributed.is_available() and torch.distributed.is_initialized():
            rank, world_size = torch.distributed.get_rank(), torch.distributed.get_world_size()
        elif "RANK" in os.environ and "WORLD_SIZE" in os.environ:
            rank, world_size = int(os.environ["RANK"]), int(os.environ["WORLD_SIZE"])
        else:
            rank, world_size = 0, 1
    if _bad_int(world_size, 1) or _bad_int(rank, 0) or rank >= world_size:
        raise ValueError(
            f"need 0 <= rank < world_size, got rank={rank!r}, world_size={world_size!r}"
        )
    return rank, world_size


def split_for_rank(
    items: Sequence[T], rank: int, world_size: int, *, seed: int | None = None
) -> list[T]:
    """Items ``rank::world_size`` of ``items``, after a permutation by ``seed`` when given.

    Every rank must pass the same ``seed`` so the ranks' parts are disjoint and cover ``items``.
    """
    items = list(items)
    if seed is not None:
        items = [items[i] for i in np.random.default_rng(seed).permutation(len(items))]
    return items[rank::world_size]


def list_shards(source: str | os.PathLike[str]) -> list[tuple[str, int]]:
    """``(path, filesize)`` of each shard listed in the manifest of ``source`` (a build folder or
    its ``manifest.json``). Raises ShardFormatError on a missing manifest or an unknown version."""
    path = Path(source)
    if path.suffix == ".tar" or any(c in str(source) for c in "*?[{"):
        raise ValueError(
            f"{source}: pass a dvg build folder or its manifest.json; shards are read from the "
            "manifest, never from a tar path or a glob"
        )
    manifest = path if path.suffix == ".json" else path / MANIFEST_NAME
    entries, extra = read_manifest(manifest)
    if extra.get("format_version", FORMAT_VERSION) != FORMAT_VERSION:
        raise version_error(f"{manifest}: the manifest's", extra["format_version"])
    return [(str(manifest.parent / entry.url), entry.filesize) for entry in entries]


def _worker() -> tuple[int, int]:
    info = get_worker_info()
    return (0, 1) if info is None else (info.id, info.num_workers)


def _stream_seed(*parts: int) -> int:
    return int(np.random.SeedSequence([p & 0xFFFFFFFF for p in parts]).generate_state(1)[0])


class _WorkerSeed:
    """Per-(rank, worker) seed for ``wds.ResampledShards`` (its default reads only
    torch.distributed, not an explicit rank); a class so the pipeline pickles for workers."""

    def __init__(self, rank: int) -> None:
        self.rank = rank

    def __call__(self) -> int:
        return self.rank * 1000 + _worker()[0]


class _ResampledSource:
    """Endless shard draws with replacement: a fresh ``wds.ResampledShards`` per iteration, so
    iterating again (or in a new worker) replays the same draws for the same seed."""

    def __init__(self, urls: list[str], seed: int, rank: int) -> None:
        self.urls, self.seed, self.rank = urls, seed, rank

    def __call__(self) -> Iterator[dict[str, str]]:
        shards = wds.ResampledShards(
            self.urls, seed=self.seed, worker_seed=_WorkerSeed(self.rank), deterministic=True
        )
        return iter(shards)


class _ClipReader:
    """Pipeline stage: shard urls -> decoded training samples (one per clip), with skip counts.

    Reads each shard strictly, picks the frames of each clip and keeps only their members, shuffles
    those (compressed) members in the buffer, then decodes, resizes and crops. Damaged shards and
    samples are skipped with a warning and counted; a sample of an unknown format version raises.
    """

    def __init__(self, config: DataConfig, rank: int, sizes: dict[str, int]) -> None:
        self.config, self.rank, self.sizes = config, rank, sizes

    def __call__(self, urls: Iterator[dict[str, str]]) -> Iterator[dict[str, Any]]:
        worker, _ = _worker()
        config, counters = self.config, DataCounters()
        # One-pass streams draw frames by (seed, key) so validation sees the same frames whatever
        # the worker or rank count; resampled streams revisit clips and need fresh draws.
        stream_rng = (
            np.random.default_rng([config.seed, self.rank, worker, 1]) if config.resampled else None
        )
        selected = self._select(self._read(urls, counters), stream_rng, counters)
        if config.shuffle_buffer > 0:
            seed = _stream_seed(config.seed, self.rank, worker, 2)
            shuffle = wds.shuffle(config.shuffle_buffer, initial=config.shuffle_buffer, seed=seed)
            selected = shuffle(selected)
        # Hold one decoded sample back so the skips found after the last good sample of a stream
        # (a damaged final shard) still reach a batch.
        held = None
        for members in selected:
            try:
                sample = self._decode(members)
            except ShardVersionError:
                raise
            except ShardFormatError as exn:
                warnings.warn(f"{exn}; skipping this sample", stacklevel=2)
                counters.skipped_samples += 1
                continue
            if held is not None:
                yield _attach(held, counters)
            held = sample
        if held is not None:
            yield _attach(held, counters)
        elif counters.skipped_samples or counters.skipped_shards:
            warnings.warn(
                f"rank {self.rank} worker {worker}: no readable sample; skipped "
                f"{counters.skipped_samples} samples and {counters.skipped_shards} shards "
                "(these counts reach no batch)",
                stacklevel=2,
            )

    def _read(
        self, urls: Iterator[dict[str, str]], counters: DataCounters
    ) -> Iterator[dict[str, Any]]:
        """Raw samples ``{"__key__", "__url__", member: bytes}`` of the listed shards, in order."""
        failed_in_a_row = 0
        for item in urls:
            url = item["url"]
            if self.config.resampled and failed_in_a_row > 3 * len(self.sizes) + 10:
                raise ShardFormatError(
                    f"rank {self.rank}: {failed_in_a_row} shard reads failed in a row; none of "
                    f"{sorted(self.sizes)} seems readable"
                )
            try:
                size = Path(url).stat().st_size
            except OSError as exn:
                warnings.warn(f"{url}: cannot read the shard ({exn}); skipping it", stacklevel=2)
                counters.skipped_shards += 1
                failed_in_a_row += 1
                continue
            if size != self.sizes[url]:
                warnings.warn(
                    f"{url}: {size} bytes but the manifest says {self.sizes[url]} (truncated or "
                    "rewritten); skipping the shard",
                    stacklevel=2,
                )
                counters.skipped_shards += 1
                failed_in_a_row += 1
                continue
            try:
                for members in iter_tar_samples(url, on_skip=_counting_skips(counters)):
                    failed_in_a_row = 0
                    yield members
            except ShardFormatError as exn:
                warnings.warn(f"{exn}; skipping the rest of this shard", stacklevel=2)
                counters.skipped_shards += 1
                failed_in_a_row += 1

    def _select(
        self,
        samples: Iterator[dict[str, Any]],
        stream_rng: np.random.Generator | None,
        counters: DataCounters,
    ) -> Iterator[dict[str, Any]]:
        """Choose each clip's frames and keep only their members (small to hold in the buffer)."""
        window = self.config.frames_per_sample
        for members in samples:
            try:
                _check_version(members)
                meta = read_meta(members)
                if meta["frames"] < window:
                    raise ShardFormatError(
                        f"{members['__url__']}: sample {members['__key__']}: {meta['frames']} "
                        f"frames, fewer than num_frames={window}"
                    )
                rng = stream_rng or np.random.default_rng(
                    [self.config.seed, zlib.crc32(members["__key__"].encode("utf-8"))]
                )
                start = int(rng.integers(0, meta["frames"] - window + 1))
                frames = list(range(start, start + window))
                kept = {k: members[k] for k in ("__key__", "__url__", "json")}
                for field in decoded_fields(self.config.condition):
                    for t in frames:
                        name = member_name(field, t, meta["image_format"])
                        if name not in members:
                            raise ShardFormatError(
                                f"{members['__url__']}: sample {members['__key__']}: member "
                                f"{name!r} is missing"
                            )
                        kept[name] = members[name]
            except ShardVersionError:
                raise
            except ShardFormatError as exn:
                warnings.warn(f"{exn}; skipping this sample", stacklevel=2)
                counters.skipped_samples += 1
                continue
            kept["__frames__"] = frames
            yield kept

    def _decode(self, members: dict[str, Any]) -> dict[str, Any]:
        """Decode the kept frames into the training tensors (F = number of kept frames)."""
        config = self.config
        fields = decoded_fields(config.condition)
        clip = decode_sample(members, frames=members["__frames__"], fields=fields)
        if config.mirror:  # the ablation's pre-v2 handedness
            clip.update({f: np.ascontiguousarray(clip[f][:, :, ::-1]) for f in fields})
        size = config.resolution
        target = views_to_tensor(resize_center_crop(clip["source"], size))
        reference = views_to_tensor(resize_center_crop(clip["novel"], size))
        mask = masks_to_tensor(resize_center_crop(clip["mask"], size))
        condition = target
        if config.condition == "back_rendered":
            condition = views_to_tensor(resize_center_crop(clip["masked"], size))
        return {
            "target": target,
            "reference": reference,
            "mask": mask,
            # x~1 with M re-applied after decoding (JPEG rings into M): masked pixels become 0.0,
            # mid-grey in [-1, 1], the masked-image convention of diffusers' Stable Diffusion
            # inpainting (image * (mask < 0.5)) and of the pipeline's warped view at inference.
            "masked_target": condition * (1.0 - mask),
            "fps": torch.tensor(float(clip["meta"].get("fps", 0.0)), dtype=torch.float32),
            "frame_indices": torch.from_numpy(clip["frame_indices"]),
            "key": clip["key"],
        }


def _counting_skips(counters: DataCounters):
    """``on_skip`` for ``iter_tar_samples``: a sample with an oversized (hostile) member is
    skipped unread, warned about and counted like any damaged sample."""

    def on_skip(error: ShardFormatError) -> None:
        warnings.warn(f"{error}; skipping this sample", stacklevel=2)
        counters.skipped_samples += 1

    return on_skip


def _check_version(members: dict[str, Any]) -> None:
    """Refuse a sample of another format version with ShardVersionError (never skipped: data of
    an unknown layout cannot be trusted anywhere in the shard set)."""
    try:
        meta = json.loads(members["json"])
    except (KeyError, UnicodeDecodeError, json.JSONDecodeError):
        return  # a damaged json is a corrupt sample; read_meta reports it
    version = meta.get("format_version") if isinstance(meta, dict) else None
    if version != FORMAT_VERSION:
        where = f"{members.get('__url__')}: sample {members.get('__key__')}: json key"
        raise version_error(where, version)


def version_error(where: str, version: object) -> ShardVersionError:
    """The error for data in a shard format this trainer does not train on."""
    why = (
        " Format 1 shards hold the mirrored stereo handedness (their novel view is the right eye)"
        " and no back-rendered x~1, so a model trained on them fails at conversion."
        if version == 1
        else ""
    )
    return ShardVersionError(
        f"{where} 'format_version' is {version!r}; this trainer reads DVG shard format "
        f"{FORMAT_VERSION}.{why} Rebuild the shards with this version of `dvg build` (a new "
        "--out, or --overwrite)."
    )


def _attach(sample: dict[str, Any], counters: DataCounters) -> dict[str, Any]:
    """Move the skip counts gathered so far into ``sample`` and reset them."""
    sample["skipped"] = torch.tensor(counters.skipped_samples, dtype=torch.int64)
    sample["skipped_shards"] = torch.tensor(counters.skipped_shards, dtype=torch.int64)
    counters.samples_seen += 1
    counters.skipped_samples = counters.skipped_shards = 0
    return sample


def make_dataset(
    config: DataConfig,
    *,
    rank: int | None = None,
    world_size: int | None = None,
    shard_list: Sequence[tuple[str, int]] | None = None,
) -> IterableDataset:
    """The sample stream of one rank as a ``webdataset.DataPipeline`` (a torch IterableDataset).

    Shards from the manifest are permuted by ``config.seed`` (when ``shuffle_buffer`` > 0) and
    split ``rank::world_size``, so ranks read disjoint shards. One-pass mode then splits this
    rank's shards across data-loader workers; resampled mode draws from them with replacement,
    seeded per worker. ``rank``/``world_size`` default to ``resolve_rank``. ``shard_list``:
    ``(path, filesize)`` pairs of ``list_shards`` to read instead of all of them (a held-out
    split).

    Yields per sample: ``target``/``reference``/``masked_target`` (F, 3, R, R) float32 in [-1, 1],
    ``mask`` (F, 1, R, R) float32 in {0, 1}, ``fps`` () float32, ``frame_indices`` (F,) int64,
    ``key`` str, ``skipped``/``skipped_shards`` () int64 (see DataCounters).

    Raises:
        ShardFormatError: no manifest, an unknown format version (manifest or sample).
        ValueError: this rank gets no shard.
    """
    rank, world_size = resolve_rank(rank, world_size)
    shards = list(shard_list) if shard_list is not None else list_shards(config.shards)
    order_seed = config.seed if config.shuffle_buffer > 0 else None
    mine = split_for_rank(shards, rank, world_size, seed=order_seed)
    if not mine:
        raise ValueError(
            f"{config.shards}: rank {rank} of {world_size} gets no shard ({len(shards)} listed); "
            "write more shards than ranks x workers"
        )
    urls = [url for url, _ in mine]
    if config.resampled:
        stages: list[Any] = [_ResampledSource(urls, config.seed, rank)]
    else:
        stages = [wds.SimpleShardList(urls), wds.split_by_worker]
    stages.append(_ClipReader(config, rank, dict(mine)))
    return wds.DataPipeline(*stages)


def make_loader(
    config: DataConfig,
    *,
    rank: int | None = None,
    world_size: int | None = None,
    shard_list: Sequence[tuple[str, int]] | None = None,
) -> DataLoader:
    """Batches of ``make_dataset`` samples: ``target``, ``reference``, ``masked_target``
    (B, F, 3, R, R), ``mask`` (B, F, 1, R, R), ``fps`` (B,), ``frame_indices`` (B, F),
    ``key`` list[str], ``skipped``/``skipped_shards`` (B,) int64.

    Each batch comes from one worker; the last batch of a one-pass stream of each worker may be
    smaller than ``batch_size``.
    """
    return DataLoader(
        make_dataset(config, rank=rank, world_size=world_size, shard_list=shard_list),
        batch_size=config.batch_size,
        num_workers=config.num_workers,
        pin_memory=torch.cuda.is_available(),
    )
