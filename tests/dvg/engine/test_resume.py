"""A build killed with SIGKILL mid-run resumes to exactly the output of an uninterrupted run."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

from dvg.shards import iter_clips

DVG = str(Path(sys.executable).parent / "dvg")


def dvg_build(raw: Path, out: Path) -> list[str]:
    return [
        DVG, "build", "--preset", "offline", "--videos", str(raw), "--out", str(out),
        "--clip-length", "4", "--videos-per-group", "1", "--no-progress",
    ]  # fmt: skip


def test_kill_mid_run_then_resume_gives_the_uninterrupted_result(raw_videos, tmp_path):
    raw = tmp_path / "raw"
    shutil.copytree(raw_videos, raw)
    for copy in range(3):  # six groups, so a kill lands with work left to do
        for video in sorted(raw_videos.glob("*.mp4")):
            stem = f"{video.stem}_copy{copy}"
            for sidecar in raw_videos.glob(f"{video.stem}.*"):
                shutil.copy(sidecar, raw / sidecar.name.replace(video.stem, stem, 1))
    reference, resumed = tmp_path / "reference", tmp_path / "resumed"
    assert subprocess.run(dvg_build(raw, reference), capture_output=True).returncode == 0

    process = subprocess.Popen(dvg_build(raw, resumed), stdout=subprocess.DEVNULL,
                               stderr=subprocess.DEVNULL)  # fmt: skip
    deadline = time.monotonic() + 120
    while not (resumed / "000001_stats.json").exists():
        assert process.poll() is None, "the build ended before it could be killed"
        assert time.monotonic() < deadline
        time.sleep(0.01)
    os.kill(process.pid, signal.SIGKILL)
    process.wait()
    done = sorted(resumed.glob("*_stats.json"))
    assert 2 <= len(done) < 12, "the kill must land with groups left to do"

    result = subprocess.run(dvg_build(raw, resumed), capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    ref = {c["key"]: c for c in iter_clips(reference)}
    out = {c["key"]: c for c in iter_clips(resumed)}
    assert ref.keys() == out.keys() and len(ref) == 28
    for key, clip in ref.items():
        np.testing.assert_array_equal(clip["mask"], out[key]["mask"])
        np.testing.assert_array_equal(clip["mask_raw"], out[key]["mask_raw"])
        np.testing.assert_array_equal(clip["novel"], out[key]["novel"])
        np.testing.assert_array_equal(clip["masked"], out[key]["masked"])
    # Nothing partial survives: no temporaries, no spools, every tar has its done marker.
    names = {p.name for p in resumed.iterdir()}
    assert not [n for n in names if ".tmp-" in n or n.endswith(".spool")]
    tars = {n[:-4] for n in names if n.endswith(".tar")}
    assert tars == {n[: -len("_stats.json")] for n in names if n.endswith("_stats.json")}
    assert len(tars) == 12
