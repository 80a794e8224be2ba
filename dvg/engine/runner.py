"""`dvg build` as a library call: plan groups, skip committed ones, run an executor, summarise."""

from __future__ import annotations

import json
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from dvg import __version__
from dvg.backends import preflight_weights
from dvg.engine.config import BuildConfig
from dvg.engine.lock import OutputLock
from dvg.engine.output import (
    CONFIG_FILE,
    STATS_SUFFIX,
    Group,
    atomic_write,
    clean_partial,
    plan_groups,
    read_done,
    rebuild_manifest,
)
from dvg.engine.progress import BuildProgress
from dvg.shards import FORMAT_VERSION
from dvg.video import discover_inputs


@dataclass
class BuildSummary:
    """What a build left in the output folder, and what this run did."""

    out_dir: Path
    manifest: Path
    groups_total: int
    groups_written: int
    groups_skipped: int
    videos_ok: int
    videos_partial: int
    videos_failed: int
    samples: int
    clips_failed: int
    frames_this_run: int
    seconds: float
    failures_by_reason: dict[str, int] = field(default_factory=dict)
    stage_seconds: dict[str, float] = field(default_factory=dict)
    """Seconds per stage this run (decode, depth, geometry, inpaint, flow, encode, write)."""

    @property
    def frames_per_second(self) -> float:
        return self.frames_this_run / max(self.seconds, 1e-9)

    @property
    def succeeded(self) -> bool:
        """False when there was work and nothing at all came out of it."""
        return self.samples > 0 or self.groups_total == 0

    @property
    def earlier_failures(self) -> bool:
        """True when groups committed by earlier runs recorded failed or partial videos that
        this run skipped (``--retry-failed`` redoes them)."""
        return self.groups_skipped > 0 and (self.videos_failed + self.videos_partial) > 0

    def rerun_hint(self) -> str | None:
        """What to do when this run wrote nothing new because earlier runs' failures were
        kept, or when videos lacked depth sidecars; None otherwise."""
        if self.failures_by_reason.get("missing_sidecar") and not self.samples:
            return (
                "no video had depth sidecars: make them with a depth model, `dvg depth --videos "
                "VIDEOS --out DEPTH` (once, resumable), then pass --depth-dir DEPTH (into this "
                "same --out: a folder without any sample is rebuilt)"
            )
        if self.groups_written or not self.earlier_failures:
            return None
        failed = self.videos_failed + self.videos_partial
        return (
            f"every group was already committed by an earlier run, with {failed} failed or "
            "partial videos (reasons: `dvg inspect " + str(self.out_dir) + "`); fix their cause "
            "and rerun with --retry-failed to process them again"
        )


def _remove_new_folder(out_dir: Path) -> None:
    """Remove a folder this run created and committed nothing to: its configuration record,
    the lock file (released by now) and the folder itself when nothing else is in it."""
    from dvg.engine.lock import LOCK_FILE

    for name in (CONFIG_FILE, LOCK_FILE, "manifest.json"):
        (out_dir / name).unlink(missing_ok=True)
    try:
        out_dir.rmdir()
    except OSError:  # something else is in it: leave it
        pass


def _holds_only_failures(out_dir: Path, config: BuildConfig) -> bool:
    """True when ``out_dir`` was built with another configuration and none of its committed
    groups holds a sample (e.g. every video lacked its depth sidecar): nothing to protect."""
    path = out_dir / CONFIG_FILE
    if not path.exists():
        return False
    try:
        if json.loads(path.read_text()).get("config_hash") == config.data_hash():
            return False
        markers = [json.loads(m.read_text()) for m in out_dir.glob(f"*{STATS_SUFFIX}")]
    except (OSError, ValueError):
        return False
    return bool(markers) and all(m.get("samples", 0) == 0 for m in markers)


def _check_output(out_dir: Path, config: BuildConfig, overwrite: bool) -> None:
    """Refuse to mix configurations in one output folder (unless overwriting). A configuration
    record without any committed group holds nothing to protect: it is replaced."""
    path = out_dir / CONFIG_FILE
    if overwrite or not path.exists() or not any(out_dir.glob(f"*{STATS_SUFFIX}")):
        return
    previous = json.loads(path.read_text())
    if previous.get("config_hash") != config.data_hash():
        raise ValueError(
            f"{out_dir} was built with a different configuration (config_hash "
            f"{previous.get('config_hash')} vs {config.data_hash()}); pass --overwrite to "
            "rebuild it or choose another --out"
        )


def _remove_outputs(out_dir: Path) -> None:
    """--overwrite: delete every committed group so stale shards cannot survive."""
    for stats in out_dir.glob(f"*{STATS_SUFFIX}"):
        name = stats.name[: -len(STATS_SUFFIX)]
        stats.unlink()  # the done marker goes first, so a kill here leaves "not done"
        for suffix in (".tar", ".parquet"):
            (out_dir / f"{name}{suffix}").unlink(missing_ok=True)
    (out_dir / "manifest.json").unlink(missing_ok=True)


def plan_work(
    groups: Sequence[Group], out_dir: Path, config: BuildConfig, *, retry_failed: bool
) -> tuple[list[Group], list[dict[str, Any]]]:
    """Split groups into pending ones and done markers of committed ones.

    A committed group whose recorded inputs differ from the plan means the input set changed
    since the folder was written: an error, since regrouping would silently shift shards.
    """
    pending, done = [], []
    config_hash = config.data_hash()
    for group in groups:
        stats = read_done(out_dir, group)
        if stats is None:
            pending.append(group)
            continue
        if stats.get("format_version") != FORMAT_VERSION:
            raise ValueError(
                f"group {group.name} in {out_dir} holds DVG shard format "
                f"{stats.get('format_version')!r}, this dvg build writes format "
                f"{FORMAT_VERSION}; pass --overwrite to rebuild it or choose another --out"
            )
        if stats.get("videos") != list(group.videos):
            raise ValueError(
                f"group {group.name} in {out_dir} was built from other input videos than this "
                "run plans (the input set or videos_per_group changed); pass --overwrite or use "
                "a new --out"
            )
        if stats.get("config_hash") != config_hash:
            raise ValueError(
                f"group {group.name} in {out_dir} was built with config_hash "
                f"{stats.get('config_hash')}, this run has {config_hash}; pass --overwrite"
            )
        failed = stats.get("videos_failed", 0) + stats.get("videos_partial", 0)
        if retry_failed and failed:
            pending.append(group)
        else:
            done.append(stats)
    return pending, done


def build(
    sources: Sequence[str | Path],
    out_dir: str | Path,
    config: BuildConfig,
    *,
    overwrite: bool = False,
    retry_failed: bool = False,
    show_progress: bool = True,
) -> BuildSummary:
    """Run DVG over every input video and write resumable WebDataset shards to ``out_dir``.

    Raises ``ValueError`` (bad configuration, no inputs, an output folder from another
    configuration), :class:`~dvg.backends.MissingWeightsError` or
    :class:`~dvg.engine.lock.OutputLockedError` (another build is writing ``out_dir``) before
    any work starts; once work starts, a bad video or clip becomes a ledger row and never stops
    the run. The folder is locked for the whole run (:mod:`dvg.engine.lock`).
    """
    start = time.monotonic()
    out_dir = Path(out_dir)
    videos = discover_inputs([str(s) for s in sources])
    if not videos:
        raise ValueError(f"no input videos found in {', '.join(map(str, sources))}")
    preflight_weights({kind: getattr(config, kind) for kind in ("depth", "inpaint", "flow")})

    created = not out_dir.exists()
    recorded = (out_dir / CONFIG_FILE).exists()
    out_dir.mkdir(parents=True, exist_ok=True)
    try:
        # Everything below deletes or rewrites files of the folder: only one writer at a time.
        with OutputLock(out_dir):
            if not overwrite and _holds_only_failures(out_dir, config):
                overwrite = True  # a corrected command after a run that produced nothing
            _check_output(out_dir, config, overwrite)
            clean_partial(out_dir)
            if overwrite:
                _remove_outputs(out_dir)
            groups = plan_groups(videos, config.output.videos_per_group)
            pending, _ = plan_work(groups, out_dir, config, retry_failed=retry_failed)
            written = _run(config, out_dir, pending, show_progress, recorded)
            manifest = rebuild_manifest(out_dir, _manifest_extra(config))
    except BaseException:
        if created and not any(out_dir.glob(f"*{STATS_SUFFIX}")):
            _remove_new_folder(out_dir)  # e.g. a model that failed to load: leave no trace
        raise
    return summarise(out_dir, manifest, groups, written, time.monotonic() - start)


def _manifest_extra(config: BuildConfig) -> dict[str, Any]:
    return {"config_hash": config.data_hash(), "code_version": __version__}


def _run(
    config: BuildConfig,
    out_dir: Path,
    pending: list[Group],
    show_progress: bool,
    recorded: bool = True,
) -> list[dict[str, Any]]:
    """Record the configuration, run the executor over ``pending``; the groups' done markers.
    A run that fails before its first group removes the configuration record it wrote (unless
    ``recorded``: an earlier run wrote one), so the corrected command is not refused."""
    record = {"config_hash": config.data_hash(), "code_version": __version__, **config.to_dict()}
    atomic_write(out_dir / CONFIG_FILE, lambda f: f.write(json.dumps(record, indent=1).encode()))
    progress = BuildProgress(sum(len(g.videos) for g in pending), enabled=show_progress)
    written: list[dict[str, Any]] = []
    try:
        if pending:
            if config.executor.kind == "ray":
                from dvg.engine.ray_executor import run_ray

                committed = run_ray(config, out_dir, pending, progress)
            else:
                from dvg.engine.local import run_local

                committed = run_local(config, out_dir, pending, progress)
            for stats in committed:
                written.append(stats)
                # A valid manifest after every group: a killed run is still readable.
                rebuild_manifest(out_dir, _manifest_extra(config))
    except BaseException:
        if not written and not recorded:
            (out_dir / CONFIG_FILE).unlink(missing_ok=True)
        raise
    finally:
        progress.close()
    return written


def summarise(
    out_dir: Path,
    manifest: Path,
    groups: Sequence[Group],
    written: Sequence[dict[str, Any]],
    seconds: float,
) -> BuildSummary:
    """Totals over every committed group in ``out_dir`` plus this run's own figures."""
    all_stats = [s for g in groups if (s := read_done(out_dir, g)) is not None]
    failures: Counter[str] = Counter()
    stages: Counter[str] = Counter()
    for stats in all_stats:
        failures.update(stats.get("failures_by_reason", {}))
    for stats in written:
        stages.update(stats.get("seconds", {}))
    return BuildSummary(
        out_dir=out_dir,
        manifest=manifest,
        groups_total=len(groups),
        groups_written=len(written),
        groups_skipped=len(groups) - len(written),
        videos_ok=sum(s["videos_ok"] for s in all_stats),
        videos_partial=sum(s["videos_partial"] for s in all_stats),
        videos_failed=sum(s["videos_failed"] for s in all_stats),
        samples=sum(s["samples"] for s in all_stats),
        clips_failed=sum(s["clips_failed"] for s in all_stats),
        frames_this_run=sum(s["frames"] for s in written),
        seconds=seconds,
        failures_by_reason=dict(failures),
        stage_seconds={k: round(v, 3) for k, v in stages.items()},
    )
