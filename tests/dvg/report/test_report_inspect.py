"""`inspect_output` and `render_inspect` on a tiny output folder written by the real writers."""

from __future__ import annotations

import json
import re
import shutil

import numpy as np
import pytest
from rich.console import Console

from dvg.report import inspect_output, render_inspect
from dvg.report.inspect import STATS_SUFFIX


def test_counts_and_groups(tiny_output):
    report = inspect_output(tiny_output.out_dir)
    assert report.groups_committed == ("000000",)
    assert report.groups_incomplete == ("000001",)
    assert (report.manifest_shards, report.manifest_samples) == (1, 2)
    assert report.videos == {"ok": 1, "partial": 0, "failed": 2, "total": 3}
    assert report.clips == {"ok": 2, "failed": 1, "total": 3}
    assert (report.samples, report.frames) == (2, 2 * tiny_output.frames)
    assert report.warnings == ()


def test_failure_reasons_with_examples(tiny_output):
    failures = {f.reason: f for f in inspect_output(tiny_output.out_dir).failures}
    assert set(failures) == {"unreadable", "dvg_error"}
    unreadable, dvg_error = failures["unreadable"], failures["dvg_error"]
    assert (unreadable.videos, unreadable.clips) == (1, 0)
    assert (unreadable.example_video, unreadable.example_message) == (
        "b.mp4",
        "moov atom not found",
    )
    assert (dvg_error.videos, dvg_error.clips, dvg_error.count) == (1, 1, 2)
    assert dvg_error.example_video == "c.mp4"
    # Sorted by count, most frequent first.
    assert [f.reason for f in inspect_output(tiny_output.out_dir).failures] == [
        "dvg_error",
        "unreadable",
    ]


@pytest.mark.parametrize(
    "column",
    [
        "mask_coverage",
        "mask_raw_coverage",
        "hole_coverage",
        "disparity_mean_abs",
        "max_disparity_px",
        "deviation_mean",
    ],
)
def test_distributions_equal_the_ledger_values(tiny_output, column):
    values = np.array([row[column] for row in tiny_output.clip_rows])
    d = inspect_output(tiny_output.out_dir).distributions[column]
    assert d.count == 2  # the failed clip's null is left out
    assert d.mean == pytest.approx(values.mean())
    assert (d.min, d.max) == (pytest.approx(values.min()), pytest.approx(values.max()))
    p5, p50, p95 = np.percentile(values, [5, 50, 95])
    assert (d.p5, d.p50, d.p95) == (pytest.approx(p5), pytest.approx(p50), pytest.approx(p95))


def test_mask_coverage_is_the_box_area(tiny_output):
    d = inspect_output(tiny_output.out_dir).distributions["mask_coverage"]
    # Boxes of 20x30 and 20x20 pixels in a 64x96 frame.
    assert (d.min, d.max) == (pytest.approx(400 / (64 * 96)), pytest.approx(600 / (64 * 96)))
    assert d.mean == pytest.approx(500 / (64 * 96))
    raw = inspect_output(tiny_output.out_dir).distributions["mask_raw_coverage"]
    # The raw masks have a 2-px border: 24x34 and 24x24 pixels.
    assert raw.mean == pytest.approx((816 + 576) / 2 / (64 * 96))


def test_stage_seconds_and_shares(tiny_output):
    report = inspect_output(tiny_output.out_dir)
    assert report.seconds == tiny_output.seconds
    assert list(report.seconds) == [
        "decode",
        "write",
        "depth",
        "geometry",
        "inpaint",
        "flow",
        "encode",
    ]
    assert report.seconds_share["depth"] == pytest.approx(2.0 / 5.0)
    assert sum(report.seconds_share.values()) == pytest.approx(1.0)


def test_size_on_disk(tiny_output):
    sizes = inspect_output(tiny_output.out_dir).size_bytes
    tars = sum(p.stat().st_size for p in tiny_output.out_dir.glob("*.tar"))
    assert sizes["tar"] == tars
    assert sizes["parquet"] == (tiny_output.out_dir / "000000.parquet").stat().st_size
    assert sizes["total"] == sum(p.stat().st_size for p in tiny_output.out_dir.iterdir())


def test_to_dict_is_json(tiny_output):
    data = json.loads(json.dumps(inspect_output(tiny_output.out_dir).to_dict()))
    assert data["videos"]["failed"] == 2
    assert data["groups_incomplete"] == ["000001"]
    assert {f["reason"]: f["count"] for f in data["failures"]} == {"dvg_error": 2, "unreadable": 1}
    assert data["distributions"]["mask_coverage"]["count"] == 2
    assert data["seconds_share"]["depth"] == pytest.approx(0.4)


def test_render_shows_failures_and_incomplete_groups(tiny_output):
    console = Console(record=True, width=200)
    console.print(render_inspect(inspect_output(tiny_output.out_dir)))
    text = console.export_text()
    for expected in ("unreadable", "moov atom not found", "000001", "mask M coverage", "depth"):
        assert expected in text


def test_manifest_missing_is_a_warning_not_an_error(tiny_output):
    (tiny_output.out_dir / "manifest.json").unlink()
    report = inspect_output(tiny_output.out_dir)
    assert report.samples == 2
    assert any("manifest.json" in w for w in report.warnings)


def test_manifest_listing_an_uncommitted_shard_is_a_warning(tiny_output):
    (tiny_output.out_dir / "000000_stats.json").unlink()
    report = inspect_output(tiny_output.out_dir)
    assert report.groups_committed == ()
    assert report.groups_incomplete == ("000000", "000001")
    assert report.videos["total"] == 0  # an uncommitted group's ledger is not read
    assert report.warnings == (
        "manifest.json lists shards without a done marker: 000000.tar; "
        "rerun `dvg build` to rebuild it",
    )


def test_ledger_without_done_marker_is_not_read(tiny_output):
    out = tiny_output.out_dir
    shutil.copy(out / "000000.parquet", out / "000002.parquet")
    report = inspect_output(out)
    assert report.groups_incomplete == ("000001", "000002")
    assert report.videos["total"] == 3


def test_missing_folder_is_a_clear_error(tmp_path):
    with pytest.raises(ValueError, match="nowhere: no such output folder"):
        inspect_output(tmp_path / "nowhere")


def test_folder_without_manifest_or_ledger_is_a_clear_error(tmp_path):
    (tmp_path / "notes.txt").write_text("hi")
    with pytest.raises(ValueError, match=re.escape(f"{tmp_path}: not a DVG output folder")):
        inspect_output(tmp_path)


def test_stats_suffix_matches_the_writer():
    from dvg.engine.output import STATS_SUFFIX as WRITER_SUFFIX

    assert STATS_SUFFIX == WRITER_SUFFIX
