"""`dvg inspect`: summarise a DVG output folder from its ledgers, done markers and manifest.

Only ``NNNNNN.parquet`` (the ledger), ``NNNNNN_stats.json`` (the done marker) and
``manifest.json`` are read, never a shard's images, so a folder of millions of clips is
summarised in seconds. A group counts as committed when its done marker exists; a ``.tar`` or
``.parquet`` without one is reported as incomplete (a killed or running build) and its ledger is
not read. Groups that were planned but never started cannot be seen from the folder.
"""

from __future__ import annotations

import json
import math
import re
from collections import Counter
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
from rich.console import Group
from rich.table import Table

from dvg.shards import MANIFEST_NAME, read_manifest

# dvg.engine.output.STATS_SUFFIX; not imported because dvg.engine pulls torch and the model
# backends, and inspecting a folder must stay instant (a test checks the two agree).
STATS_SUFFIX = "_stats.json"

# The build's stage order (GroupWriter.commit); stages not listed here are shown after these.
STAGES = ("decode", "write", "depth", "geometry", "inpaint", "flow", "encode")
# Per-clip ledger columns summarised as distributions, with the label shown by `render_inspect`.
DISTRIBUTIONS = {
    "mask_coverage": "mask M coverage (as stored)",
    "mask_raw_coverage": "mask coverage (raw, back-rendered)",
    "hole_coverage": "forward-render hole coverage",
    "disparity_min": "disparity min (px)",
    "disparity_max": "disparity max (px)",
    "disparity_mean_abs": "disparity mean |d| (px)",
    "max_disparity_px": "max_disparity_px (drawn)",
    "deviation_mean": "deviation mean |x1 - x2| (image)",
}
_LEDGER_COLUMNS = ["row_type", "video", "key", "status", "reason", "message", *DISTRIBUTIONS]
_GROUP_FILE_RE = re.compile(r"^(\d+)\.(tar|parquet)$")


@dataclass(frozen=True)
class Distribution:
    """Summary of one per-clip quantity over the ok clips; all None when no clip has a value."""

    count: int
    mean: float | None = None
    min: float | None = None
    p5: float | None = None
    p50: float | None = None
    p95: float | None = None
    max: float | None = None

    @classmethod
    def of(cls, values: np.ndarray) -> Distribution:
        """values: (N,) float, NaN for missing (null) entries, which are left out."""
        values = values[np.isfinite(values)]
        if values.size == 0:
            return cls(count=0)
        p5, p50, p95 = np.percentile(values, [5, 50, 95])
        return cls(
            count=int(values.size),
            mean=float(values.mean()),
            min=float(values.min()),
            p5=float(p5),
            p50=float(p50),
            p95=float(p95),
            max=float(values.max()),
        )


@dataclass(frozen=True)
class FailureReason:
    """One failure code of the ledger: how many video and clip rows carry it, and one example."""

    reason: str
    videos: int
    clips: int
    example_video: str | None
    example_message: str | None

    @property
    def count(self) -> int:
        return self.videos + self.clips


@dataclass(frozen=True)
class InspectReport:
    """What a DVG output folder holds, read from ledgers, done markers and the manifest.

    ``videos`` counts video rows by status (ok / partial / failed) and ``clips`` clip rows by
    status; ``samples`` and ``frames`` come from the done markers (what the tars hold). A video
    marked partial carries the reason of its failed clips, so a reason's ``videos`` and ``clips``
    overlap; the two are kept apart rather than summed into one misleading count.
    """

    out_dir: str
    groups_committed: tuple[str, ...]
    groups_incomplete: tuple[str, ...]
    manifest_shards: int
    manifest_samples: int
    videos: dict[str, int]
    clips: dict[str, int]
    samples: int
    frames: int
    failures: tuple[FailureReason, ...]
    distributions: dict[str, Distribution]
    seconds: dict[str, float]
    size_bytes: dict[str, int]
    warnings: tuple[str, ...] = field(default=())

    @property
    def seconds_share(self) -> dict[str, float]:
        """Each stage's fraction of the summed stage seconds (0 when nothing was timed)."""
        total = sum(self.seconds.values())
        return {k: (v / total if total > 0 else 0.0) for k, v in self.seconds.items()}

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-serialisable dict (for ``dvg inspect --json``)."""
        out = asdict(self)
        out["failures"] = [{**asdict(f), "count": f.count} for f in self.failures]
        out["seconds_share"] = self.seconds_share
        for name in ("groups_committed", "groups_incomplete", "warnings"):
            out[name] = list(out[name])
        return out


def _read_stats(out_dir: Path) -> dict[str, dict[str, Any]]:
    stats = {}
    for path in sorted(out_dir.glob(f"*{STATS_SUFFIX}")):
        try:
            stats[path.name[: -len(STATS_SUFFIX)]] = json.loads(path.read_text())
        except json.JSONDecodeError as exn:
            raise ValueError(f"{path}: done marker is not valid JSON ({exn})") from None
    return stats


def _read_ledgers(out_dir: Path, groups: list[str]) -> pa.Table | None:
    tables = []
    for name in groups:
        path = out_dir / f"{name}.parquet"
        if not path.is_file():
            continue  # reported as a warning by the caller
        try:
            tables.append(pq.read_table(path, columns=_LEDGER_COLUMNS))
        except (pa.ArrowInvalid, KeyError) as exn:
            raise ValueError(f"{path}: not a DVG ledger ({exn})") from None
    return pa.concat_tables(tables) if tables else None


def _floats(table: pa.Table, column: str) -> np.ndarray:
    """(N,) float64 with NaN where the ledger has null."""
    return table[column].to_numpy().astype(np.float64, copy=False)


def _failures(table: pa.Table) -> tuple[FailureReason, ...]:
    failed = table.filter(pc.not_equal(table["status"], "ok")).to_pylist()
    counts: dict[str, Counter[str]] = {}
    examples: dict[str, dict[str, Any]] = {}
    for row in failed:
        reason = row["reason"] or "unknown"
        counts.setdefault(reason, Counter())[row["row_type"]] += 1
        # The first failed row with a message is the example; video rows come first (ledger order).
        if reason not in examples or (not examples[reason]["message"] and row["message"]):
            examples[reason] = row
    out = [
        FailureReason(
            reason=reason,
            videos=counts[reason]["video"],
            clips=counts[reason]["clip"],
            example_video=examples[reason]["video"],
            example_message=examples[reason]["message"],
        )
        for reason in counts
    ]
    return tuple(sorted(out, key=lambda f: (-f.count, f.reason)))


def _status_counts(table: pa.Table | None, row_type: str, statuses: tuple[str, ...]) -> dict:
    counts = Counter()
    if table is not None:
        rows = table.filter(pc.equal(table["row_type"], row_type))
        counts.update(
            {d["values"]: d["counts"] for d in pc.value_counts(rows["status"]).to_pylist()}
        )
    out = {status: counts.pop(status, 0) for status in statuses}
    out.update(counts)  # a status this reader does not know still shows up
    out["total"] = sum(out.values())
    return out


def _sizes(out_dir: Path) -> dict[str, int]:
    """Bytes on disk by file kind (tar, parquet, json, other) and in total."""
    kinds = ("tar", "parquet", "json")
    sizes = dict.fromkeys((*kinds, "other"), 0)
    for path in out_dir.rglob("*"):
        if path.is_file():
            kind = path.suffix.lstrip(".")
            sizes[kind if kind in kinds else "other"] += path.stat().st_size
    return {**sizes, "total": sum(sizes.values())}


def inspect_output(out_dir: str | Path) -> InspectReport:
    """Summarise a ``dvg build`` output folder without decoding any image.

    Raises:
        ValueError naming the folder when it does not exist or holds neither a manifest nor any
        ledger / done marker, or naming a file that is not a valid ledger / done marker / manifest.
    """
    out_dir = Path(out_dir)
    if not out_dir.is_dir():
        raise ValueError(f"{out_dir}: no such output folder")
    has_manifest = (out_dir / MANIFEST_NAME).is_file()
    stats = _read_stats(out_dir)
    group_files = {m.group(1) for p in out_dir.iterdir() if (m := _GROUP_FILE_RE.match(p.name))}
    if not has_manifest and not stats and not group_files:
        raise ValueError(
            f"{out_dir}: not a DVG output folder (no {MANIFEST_NAME}, no *.parquet ledger, "
            f"no *{STATS_SUFFIX} done marker); run `dvg build --out {out_dir}` first"
        )

    committed = sorted(stats)
    warnings: list[str] = []
    manifest_shards = manifest_samples = 0
    if has_manifest:
        entries, _ = read_manifest(out_dir)
        manifest_shards = len(entries)
        manifest_samples = sum(e.nsamples for e in entries)
        listed = {e.url for e in entries}
        expected = {s["tar"]["url"] for s in stats.values() if s.get("tar", {}).get("nsamples")}
        if listed - expected:
            warnings.append(
                f"{MANIFEST_NAME} lists shards without a done marker: "
                f"{', '.join(sorted(listed - expected))}; rerun `dvg build` to rebuild it"
            )
        if expected - listed:
            warnings.append(
                f"{MANIFEST_NAME} misses committed shards: {', '.join(sorted(expected - listed))}; "
                "rerun `dvg build` to rebuild it"
            )
    else:
        warnings.append(f"no {MANIFEST_NAME}: the build has not finished (or was killed)")
    missing_ledgers = [g for g in committed if not (out_dir / f"{g}.parquet").is_file()]
    if missing_ledgers:
        warnings.append(f"done markers without a ledger: {', '.join(missing_ledgers)}")

    table = _read_ledgers(out_dir, committed)
    ok_clips = None
    if table is not None:
        ok_clips = table.filter(
            pc.and_(pc.equal(table["row_type"], "clip"), pc.equal(table["status"], "ok"))
        )
    distributions = {
        name: Distribution.of(_floats(ok_clips, name) if ok_clips is not None else np.empty(0))
        for name in DISTRIBUTIONS
    }
    seconds: Counter[str] = Counter()
    for group in stats.values():
        seconds.update({k: float(v) for k, v in group.get("seconds", {}).items()})
    ordered = [s for s in STAGES if s in seconds] + sorted(set(seconds) - set(STAGES))

    return InspectReport(
        out_dir=str(out_dir),
        groups_committed=tuple(committed),
        groups_incomplete=tuple(sorted(group_files - set(stats))),
        manifest_shards=manifest_shards,
        manifest_samples=manifest_samples,
        videos=_status_counts(table, "video", ("ok", "partial", "failed")),
        clips=_status_counts(table, "clip", ("ok", "failed")),
        samples=sum(int(s.get("samples", 0)) for s in stats.values()),
        frames=sum(int(s.get("frames", 0)) for s in stats.values()),
        failures=_failures(table) if table is not None else (),
        distributions=distributions,
        seconds={k: round(seconds[k], 4) for k in ordered},
        size_bytes=_sizes(out_dir),
        warnings=tuple(warnings),
    )


def _fmt(value: float | None, digits: int = 4) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "-"
    return f"{value:.{digits}g}"


def _human_bytes(size: int) -> str:
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if size < 1024 or unit == "TiB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    raise AssertionError("unreachable")


def render_inspect(report: InspectReport) -> Group:
    """Rich tables of a report: overview, failures, distributions, stage seconds, warnings."""
    overview = Table(title=f"DVG output {report.out_dir}", show_header=False)
    overview.add_column("what", style="bold")
    overview.add_column("value")
    incomplete = ", ".join(report.groups_incomplete) or "none"
    overview.add_row("groups committed", str(len(report.groups_committed)))
    overview.add_row("groups incomplete (no done marker)", incomplete)
    overview.add_row(
        "manifest", f"{report.manifest_shards} shards, {report.manifest_samples} samples"
    )
    videos = ", ".join(f"{k} {v}" for k, v in report.videos.items() if k != "total")
    overview.add_row("videos", f"{report.videos['total']} ({videos})")
    clips = ", ".join(f"{k} {v}" for k, v in report.clips.items() if k != "total")
    overview.add_row("clips", f"{report.clips['total']} ({clips})")
    overview.add_row("samples / frames", f"{report.samples} / {report.frames}")
    sizes = ", ".join(
        f"{k} {_human_bytes(v)}" for k, v in report.size_bytes.items() if k != "total" and v
    )
    overview.add_row("size on disk", f"{_human_bytes(report.size_bytes['total'])} ({sizes})")

    failures = Table(title="Failures by reason")
    for name in ("reason", "videos", "clips", "example video", "message"):
        failures.add_column(name, overflow="fold")
    for f in report.failures:
        message = (f.example_message or "").splitlines()[0] if f.example_message else "-"
        failures.add_row(f.reason, str(f.videos), str(f.clips), f.example_video or "-", message)

    quality = Table(title="Per-clip statistics (ok clips)")
    for name in ("quantity", "n", "mean", "p5", "p50", "p95", "min", "max"):
        quality.add_column(name, justify="left" if name == "quantity" else "right")
    for name, label in DISTRIBUTIONS.items():
        d = report.distributions[name]
        values = (d.mean, d.p5, d.p50, d.p95, d.min, d.max)
        quality.add_row(label, str(d.count), *(_fmt(v) for v in values))

    timing = Table(title="Stage seconds")
    for name in ("stage", "seconds", "share"):
        timing.add_column(name, justify="left" if name == "stage" else "right")
    shares = report.seconds_share
    for stage, value in report.seconds.items():
        timing.add_row(stage, f"{value:.2f}", f"{100 * shares[stage]:.1f}%")

    parts: list[Any] = [overview]
    if report.failures:
        parts.append(failures)
    parts += [quality, timing]
    if report.warnings:
        parts.append(_warnings_table(report.warnings))
    return Group(*parts)


def _warnings_table(warnings: tuple[str, ...]) -> Table:
    table = Table(title="Warnings", show_header=False)
    table.add_column("warning", style="yellow", overflow="fold")
    for warning in warnings:
        table.add_row(warning)
    return table
