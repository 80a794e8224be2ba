"""Public reader of DVG shards: clips as numpy arrays, for the trainer and for inspection.

``iter_clips`` lists shards from the manifest (never a ``*.tar`` glob), optionally shuffles them,
splits them across ranks, and decodes only the frames asked for: a fixed set (``frames``) or a
random contiguous window per clip (``window``: 1 for training stage 1, 8 for stage 2).
"""

from __future__ import annotations

import os
import warnings
import zlib
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from dvg.shards.format import ShardFormatError, decode_sample, read_meta
from dvg.shards.manifest import ShardEntry, file_md5, manifest_path, read_manifest
from dvg.shards.tario import OnError, iter_tar_samples

Source = str | os.PathLike[str] | Sequence[str | os.PathLike[str]]


def resolve_shards(source: Source) -> list[tuple[Path, ShardEntry | None]]:
    """Shard paths of ``source`` with their manifest entries (None for tars given directly).

    ``source``: a shards directory (its ``manifest.json`` is read), a ``manifest.json`` path, a
    single ``.tar`` path, or a list of ``.tar`` paths.
    """
    if isinstance(source, str | os.PathLike):
        path = Path(source)
        if path.is_dir() or path.suffix == ".json":
            manifest = manifest_path(path)
            entries, _ = read_manifest(manifest)
            return [(manifest.parent / entry.url, entry) for entry in entries]
        sources: Sequence[str | os.PathLike[str]] = [path]
    else:
        sources = source
    paths = [Path(p) for p in sources]
    for p in paths:
        if not p.is_file():
            raise ShardFormatError(f"{p}: no such shard file")
    return [(p, None) for p in paths]


def _check_shard(path: Path, entry: ShardEntry | None, verify: bool) -> None:
    if entry is None:
        if verify:
            raise ShardFormatError(f"{path}: verify=True needs a manifest (it holds the md5)")
        return
    if not path.is_file():
        raise ShardFormatError(f"{path}: listed in the manifest but missing")
    size = path.stat().st_size
    if size != entry.filesize:  # cheap, and catches a shard truncated or rewritten after indexing
        raise ShardFormatError(
            f"{path}: {size} bytes but the manifest says {entry.filesize}; truncated or rewritten"
        )
    if verify:
        md5 = file_md5(path)
        if md5 != entry.md5sum:
            raise ShardFormatError(
                f"{path}: md5 {md5} does not match the manifest's {entry.md5sum}"
            )


def _clip_rng(seed: int, key: str) -> np.random.Generator:
    # Seeded by (seed, key), not by position: the same clip gets the same window whatever the
    # rank count, shard order or worker split.
    return np.random.default_rng([seed, zlib.crc32(key.encode("utf-8"))])


def iter_clips(
    source: Source,
    *,
    frames: Sequence[int] | slice | None = None,
    window: int | None = None,
    fields: Sequence[str] | None = None,
    shuffle_shards: bool = False,
    seed: int = 0,
    rank: int = 0,
    world_size: int = 1,
    verify: bool = False,
    on_error: OnError = "raise",
) -> Iterator[dict[str, Any]]:
    """Yield decoded clips from DVG shards.

    Args:
        source: a shards directory or its ``manifest.json`` (shards are listed from the manifest,
            never globbed), a single ``.tar``, or a list of ``.tar`` paths.
        frames: fixed frame indices (or a slice) to decode from every clip; None = all frames.
        window: draw a random contiguous window of ``window`` frames per clip (stage 1: 1,
            stage 2: 8), seeded by ``seed`` and the clip key. Exclusive with ``frames``; a clip
            shorter than the window raises (or, with ``on_error="warn"``, is skipped).
        fields: which of ``source``, ``novel``, ``masked``, ``mask``, ``mask_raw``,
            ``disparity`` to decode; None = every field each sample stores.
        shuffle_shards: permute the shard order with ``seed`` before splitting (use the same seed
            on every rank; change it per epoch).
        seed: seed of the shard permutation and of the window draws.
        rank, world_size: keep shards ``rank::world_size`` of the (permuted) list. For data-loader
            workers pass ``rank = node_rank * num_workers + worker_id`` and
            ``world_size = world * num_workers``.
        verify: check each shard's md5 against the manifest before reading it (reads it twice).
            The file size is always checked against the manifest.
        on_error: ``"raise"`` or ``"warn"`` (warn and skip a bad sample, or the rest of a damaged
            shard).

    Yields: ``{"key", "meta", "frame_indices": (n,) int64, "shard": str}`` plus the requested
        fields: ``source``/``novel``/``masked`` (n, H, W, 3) uint8 (x1, x2, x~1),
        ``mask``/``mask_raw`` (n, H, W) bool (True = pixel of x1 not visible from the novel
        viewpoint), ``disparity`` (n, H, W) float32. Format v1 shards are read too (their
        ``left``/``right`` members come out as ``source``/``novel``; they have no ``masked``).
    """
    if frames is not None and window is not None:
        raise ValueError("pass either frames or window, not both")
    if window is not None and (
        isinstance(window, bool) or not isinstance(window, int) or window < 1
    ):
        raise ValueError(f"window must be a positive int, got {window!r}")
    if not (
        isinstance(world_size, int)
        and world_size >= 1
        and isinstance(rank, int)
        and 0 <= rank < world_size
    ):
        raise ValueError(
            f"need 0 <= rank < world_size, got rank={rank!r}, world_size={world_size!r}"
        )
    if on_error not in ("raise", "warn"):
        raise ValueError(f"on_error must be 'raise' or 'warn', got {on_error!r}")

    shards = resolve_shards(source)
    if shuffle_shards:
        order = np.random.default_rng(seed).permutation(len(shards))
        shards = [shards[i] for i in order]
    mine = shards[rank::world_size]
    if not mine:
        warnings.warn(
            f"rank {rank} of {world_size} gets no shard ({len(shards)} in all); "
            "write more shards than ranks x workers",
            stacklevel=2,
        )

    for path, entry in mine:
        _check_shard(path, entry, verify)
        count, damaged = 0, False
        skipped: list[ShardFormatError] = []  # samples with an oversized member, never read
        samples = iter_tar_samples(path, on_skip=_skipper(on_error, skipped))
        while True:
            try:
                members = next(samples)
            except StopIteration:
                break
            except ShardFormatError as exn:
                if on_error == "raise":
                    raise
                warnings.warn(f"{exn}; skipping the rest of this shard", stacklevel=2)
                damaged = True
                break
            count += 1
            try:
                clip = _decode(members, frames, window, fields, seed)
            except ShardFormatError as exn:
                if on_error == "raise":
                    raise
                warnings.warn(f"{exn}; skipping this sample", stacklevel=2)
                continue
            clip["shard"] = str(path)
            yield clip
        if entry is not None and not damaged and count + len(skipped) != entry.nsamples:
            raise ShardFormatError(
                f"{path}: {count + len(skipped)} samples but the manifest says {entry.nsamples}"
            )


def _skipper(on_error: OnError, skipped: list[ShardFormatError]):
    """``on_skip`` for iter_tar_samples: raise, or warn and remember the skipped sample."""

    def on_skip(error: ShardFormatError) -> None:
        if on_error == "raise":
            raise error
        warnings.warn(f"{error}; skipping this sample", stacklevel=4)
        skipped.append(error)

    return on_skip


def _decode(
    members: dict[str, Any],
    frames: Sequence[int] | slice | None,
    window: int | None,
    fields: Sequence[str] | None,
    seed: int,
) -> dict[str, Any]:
    if window is not None:
        num_frames = read_meta(members)["frames"]
        if num_frames < window:
            raise ShardFormatError(
                f"{members['__url__']}: sample {members['__key__']}: {num_frames} frames, "
                f"shorter than window={window}"
            )
        start = int(_clip_rng(seed, members["__key__"]).integers(0, num_frames - window + 1))
        frames = range(start, start + window)
    return decode_sample(members, frames=frames, fields=fields)
