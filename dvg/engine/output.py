"""Output layout and resumability: groups, atomic shard writes, done markers, the manifest.

Layout of ``out/`` (see docs/shard-format.md)::

    000000.tar  000000.parquet  000000_stats.json   # one group of input videos
    000001.tar  ...
    manifest.json                                    # wids-style list of committed shards
    build_config.json                                # resolved configuration of the run

Inputs are sorted and cut into groups of ``videos_per_group``, so a group's name depends only on
the input list, never on execution order. A group is committed in this order: tar, parquet, then
``NNNNNN_stats.json`` (the done marker); each file is written to a temporary name in the same
folder, fsynced and renamed. A killed run leaves at most temporary files and a spool folder,
which the next run deletes before redoing the unfinished groups.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import time
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO

import pyarrow.parquet as pq

from dvg import __version__
from dvg.engine import ledger
from dvg.engine.stages import EncodedClip, VideoOutcome
from dvg.shards import FORMAT_VERSION, ShardEntry, iter_tar_samples, write_manifest, write_samples
from dvg.shards.manifest import fsync_dir
from dvg.video import VideoInput

STATS_SUFFIX = "_stats.json"
CONFIG_FILE = "build_config.json"
_TMP_MARK = ".tmp-"
_SPOOL_SUFFIX = ".spool"


@dataclass(frozen=True)
class Group:
    """A deterministic slice of the inputs sorted by name; ``name`` is its zero-padded index."""

    index: int
    inputs: tuple[VideoInput, ...]

    @property
    def name(self) -> str:
        return f"{self.index:06d}"

    @property
    def videos(self) -> tuple[str, ...]:
        """The inputs' names (paths relative to their input root): what the done marker records,
        so the same videos under another mount point plan the same groups."""
        return tuple(video.name for video in self.inputs)


def plan_groups(inputs: Sequence[VideoInput], videos_per_group: int) -> list[Group]:
    """Cut the inputs, sorted by name, into groups of ``videos_per_group``."""
    ordered = sorted(inputs)
    return [
        Group(i // videos_per_group, tuple(ordered[i : i + videos_per_group]))
        for i in range(0, len(ordered), videos_per_group)
    ]


def atomic_write(path: Path, write: Callable[[BinaryIO], None]) -> None:
    """Write ``path`` through a temporary file in the same folder: write, fsync, rename."""
    tmp = path.with_name(f"{path.name}{_TMP_MARK}{os.getpid()}")
    try:
        with open(tmp, "wb") as handle:
            write(handle)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()
    fsync_dir(path.parent)


class _HashingWriter:
    """A write-only file wrapper that computes md5 and size on the way (no second read)."""

    def __init__(self, handle: BinaryIO) -> None:
        self.handle = handle
        self.md5 = hashlib.md5()
        self.size = 0

    def write(self, data: bytes) -> int:
        self.md5.update(data)
        self.size += len(data)
        return self.handle.write(data)

    def tell(self) -> int:
        return self.size

    def flush(self) -> None:
        self.handle.flush()


def clean_partial(out_dir: Path) -> list[Path]:
    """Delete temporary files and spool folders a killed run left behind; returns them."""
    removed = []
    for path in out_dir.iterdir():
        if _TMP_MARK in path.name and path.is_file():
            path.unlink()
            removed.append(path)
        elif path.name.endswith(_SPOOL_SUFFIX) and path.is_dir():
            shutil.rmtree(path)
            removed.append(path)
    return removed


def stats_path(out_dir: Path, group: Group) -> Path:
    return out_dir / f"{group.name}{STATS_SUFFIX}"


def read_done(out_dir: Path, group: Group) -> dict[str, Any] | None:
    """The group's done marker, or None if the group was never committed."""
    path = stats_path(out_dir, group)
    if not path.exists():
        return None
    try:
        return json.loads(path.read_text())
    except json.JSONDecodeError:
        return None  # cannot happen through atomic_write; treat as not done


class GroupWriter:
    """Collects one group's samples and ledger rows, then commits them atomically.

    Samples arrive in any order (parallel executors); each is spooled to its own small tar so
    memory stays bounded, and :meth:`commit` writes the final tar in key order, so the bytes do
    not depend on scheduling.
    """

    def __init__(self, out_dir: Path, group: Group, config_hash: str) -> None:
        self.out_dir = out_dir
        self.group = group
        self.config_hash = config_hash
        self.spool = out_dir / f".{group.name}{_SPOOL_SUFFIX}"
        if self.spool.exists():
            shutil.rmtree(self.spool)
        self.spool.mkdir(parents=True)
        self.clip_rows: list[dict[str, Any]] = []
        self.outcomes: dict[str, VideoOutcome] = {}
        self.started = time.time()
        self.write_seconds = 0.0

    def add_clip(self, encoded: EncodedClip) -> None:
        self.clip_rows.append(encoded.row)
        if encoded.members is None:
            return
        start = time.perf_counter()
        with open(self.spool / f"{encoded.key}.tar", "wb") as handle:
            write_samples(handle, [encoded.members])
        self.write_seconds += time.perf_counter() - start

    def add_video(self, outcome: VideoOutcome) -> None:
        self.outcomes[outcome.task.name] = outcome

    def _video_rows(self) -> list[dict[str, Any]]:
        by_video: dict[str, list[dict[str, Any]]] = {}
        for row in self.clip_rows:
            by_video.setdefault(row["video"], []).append(row)
        rows = []
        for video in self.group.inputs:
            outcome = self.outcomes.get(video.name)
            clips = by_video.get(video.name, [])
            ok = [r for r in clips if r["status"] == "ok"]
            error = outcome.error if outcome else ("not_processed", "no outcome was reported")
            if not clips and error is None:
                error = ("no_clips", "the video produced no clip")
            if ok and error is None and len(ok) < len(clips):
                failed = Counter(r["reason"] for r in clips if r["status"] != "ok")
                status, reason = "partial", failed.most_common(1)[0][0]
                message = f"{len(clips) - len(ok)} of {len(clips)} clips failed"
            elif ok and error is None:
                status, reason, message = "ok", None, None
            elif ok:
                status, (reason, message) = "partial", error
            else:
                status = "failed"
                if error is not None:
                    reason, message = error
                else:
                    reason = Counter(r["reason"] for r in clips).most_common(1)[0][0]
                    message = next(r["message"] for r in clips if r["reason"] == reason)
            info = outcome.info if outcome else {}
            rows.append(
                ledger.video_row(
                    video=video.name,
                    path=video.path,
                    video_id=outcome.task.video_id if outcome else None,
                    status=status,
                    reason=reason,
                    message=message,
                    notes=outcome.notes if outcome else None,
                    clips=len(ok),
                    frames=sum(r["frames"] or 0 for r in ok),
                    width=info.get("width"),
                    height=info.get("height"),
                    fps=info.get("fps"),
                    sha256=outcome.sha256 if outcome else None,
                    seconds=outcome.seconds if outcome else None,
                )
            )
        return rows

    def commit(self) -> dict[str, Any]:
        """Write tar, parquet and (last) the done marker; returns the done marker's content."""
        start = time.perf_counter()
        out, name = self.out_dir, self.group.name
        keys = sorted(p.stem for p in self.spool.glob("*.tar"))

        def samples() -> Iterable[dict[str, bytes]]:
            for key in keys:
                yield from iter_tar_samples(self.spool / f"{key}.tar")

        tar_info: dict[str, Any] = {}

        def write_tar(handle: BinaryIO) -> None:
            hashing = _HashingWriter(handle)
            write_samples(hashing, samples())
            tar_info.update(filesize=hashing.size, md5sum=hashing.md5.hexdigest())

        atomic_write(out / f"{name}.tar", write_tar)
        video_rows = self._video_rows()
        table = ledger.to_table(video_rows + self.clip_rows)
        atomic_write(out / f"{name}.parquet", lambda handle: pq.write_table(table, handle))

        failures = Counter(r["reason"] for r in video_rows if r["status"] != "ok")
        failures.update(r["reason"] for r in self.clip_rows if r["status"] != "ok")
        ok_rows = [r for r in self.clip_rows if r["status"] == "ok"]
        stats = {
            "group": name,
            "format_version": FORMAT_VERSION,
            "code_version": __version__,
            "config_hash": self.config_hash,
            "videos": list(self.group.videos),
            "videos_ok": sum(r["status"] == "ok" for r in video_rows),
            "videos_partial": sum(r["status"] == "partial" for r in video_rows),
            "videos_failed": sum(r["status"] == "failed" for r in video_rows),
            "samples": len(keys),
            "clips_failed": len(self.clip_rows) - len(ok_rows),
            "frames": sum(r["frames"] for r in ok_rows),
            "failures_by_reason": dict(sorted(failures.items())),
            "seconds": {
                "decode": sum(o.seconds for o in self.outcomes.values()),
                "write": self.write_seconds + time.perf_counter() - start,
                **_stage_seconds(ok_rows),
            },
            "started": self.started,
            "finished": time.time(),
            "tar": {"url": f"{name}.tar", "nsamples": len(keys), **tar_info},
        }
        atomic_write(
            stats_path(out, self.group),
            lambda handle: handle.write(json.dumps(stats, indent=1).encode()),
        )
        shutil.rmtree(self.spool)
        return stats


def _stage_seconds(rows: Sequence[dict[str, Any]]) -> dict[str, float]:
    """Sum the per-clip stage timings (depth, geometry, inpaint, flow, encode)."""
    totals: Counter[str] = Counter()
    for row in rows:
        if row.get("timings"):
            totals.update(json.loads(row["timings"]))
    totals.pop("total", None)
    return {k: round(v, 4) for k, v in sorted(totals.items())}


def rebuild_manifest(out_dir: Path, extra: dict[str, Any] | None = None) -> Path:
    """Write ``manifest.json`` from the done markers (never from a ``*.tar`` glob).

    Shards without samples (every video of the group failed) are left out of the shard list,
    since loaders fail on empty shards; their ledgers still exist.
    """
    entries = []
    for path in sorted(out_dir.glob(f"*{STATS_SUFFIX}")):
        try:
            stats = json.loads(path.read_text())
        except json.JSONDecodeError:
            continue
        tar = stats.get("tar", {})
        if tar.get("nsamples", 0) > 0:
            entries.append(ShardEntry(tar["url"], tar["nsamples"], tar["filesize"], tar["md5sum"]))
    return write_manifest(out_dir, entries, extra=extra)
