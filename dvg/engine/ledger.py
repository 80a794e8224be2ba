"""The failure ledger: one parquet row per input video and per clip, failures included.

The schema is fixed (not inferred from the rows), so every group's file has the same columns
even when all of its rows are failures, and `dvg inspect` can concatenate them. Every string is
valid UTF-8: bytes of file names that are not are written as ``\\xNN``.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

import pyarrow as pa

from dvg.video import utf8_text

SCHEMA = pa.schema(
    [
        ("row_type", pa.string()),  # "video" or "clip"
        ("video", pa.string()),  # name: path relative to the input root
        ("path", pa.string()),  # video rows: where this run read the file
        ("video_id", pa.string()),
        ("key", pa.string()),  # sample key (clip rows)
        ("status", pa.string()),  # ok | partial | failed
        ("reason", pa.string()),  # short failure code, null when ok
        ("message", pa.string()),
        ("notes", pa.string()),  # what was handled, e.g. "rotated 90"
        ("scene", pa.int32()),
        ("clip", pa.int32()),
        ("clips", pa.int32()),  # video rows: samples written
        ("frames", pa.int32()),
        ("width", pa.int32()),
        ("height", pa.int32()),
        ("fps", pa.float64()),
        ("baseline", pa.float64()),
        ("max_disparity_px", pa.float64()),
        ("disparity_min", pa.float64()),
        ("disparity_max", pa.float64()),
        ("disparity_mean_abs", pa.float64()),
        ("mask_coverage", pa.float64()),
        ("mask_raw_coverage", pa.float64()),
        ("hole_coverage", pa.float64()),
        ("deviation_mean", pa.float64()),
        ("sha256", pa.string()),
        ("seconds", pa.float64()),
        ("timings", pa.string()),  # JSON {stage: seconds}
    ]
)
COLUMNS = tuple(SCHEMA.names)

# Reason codes the engine writes besides the video reasons (dvg.video.REASONS); each is
# explained, with what to do, in docs/dvg-build.md ("Failure reasons").
ENGINE_REASONS = (
    "missing_sidecar",
    "bad_sidecar",
    "missing_file",
    "not_metric",
    "too_short",
    "depth_shape",
    "depth_not_finite",
    "dvg_error",
    "worker_error",
    "decode_worker_error",
    "no_clips",
    "not_processed",
)


def _row(row_type: str, values: dict[str, Any]) -> dict[str, Any]:
    unknown = set(values) - set(COLUMNS)
    if unknown:
        raise ValueError(f"unknown ledger column(s): {', '.join(sorted(unknown))}")
    row = dict.fromkeys(COLUMNS)
    row.update(values)
    row["row_type"] = row_type
    if isinstance(row["timings"], dict):
        row["timings"] = json.dumps({k: round(v, 4) for k, v in row["timings"].items()})
    if isinstance(row["notes"], list | tuple):
        row["notes"] = "; ".join(row["notes"]) or None
    # parquet strings are UTF-8: a path or message holding a file name that is not keeps its
    # undecodable bytes as \xNN (dvg.video.utf8_text) instead of failing the group's commit.
    return {k: utf8_text(v) if isinstance(v, str) else v for k, v in row.items()}


def clip_row(**values: Any) -> dict[str, Any]:
    return _row("clip", values)


def video_row(**values: Any) -> dict[str, Any]:
    return _row("video", values)


def to_table(rows: Sequence[dict[str, Any]]) -> pa.Table:
    """Rows -> a table with :data:`SCHEMA`; video rows first, then clips, each in key order."""
    ordered = sorted(
        rows, key=lambda r: (r["row_type"] != "video", r["video"] or "", r["key"] or "")
    )
    return pa.Table.from_pylist(list(ordered), schema=SCHEMA)
