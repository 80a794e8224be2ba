"""Ray fault tolerance: a Ray worker process killed with SIGKILL in the middle of a build (the
DVG actor holding the models and its queued clips, and a decode worker streaming a video) is
restarted by Ray and its work retried; the build completes with the bytes of an uninterrupted
run."""

from __future__ import annotations

import os
import shutil
import signal
import threading
import time

import pytest
from synthetic_inputs import offline_config

from dvg.engine import build
from dvg.shards import read_manifest

ray = pytest.importorskip("ray")
psutil = pytest.importorskip("psutil")


def _ray_workers(title: str) -> list[psutil.Process]:
    """Worker processes of the Ray started by this test (descendants of this process only)
    whose title (``ray::DVGWorker``, ``ray::decode_video``) contains ``title``."""
    found = []
    for child in psutil.Process().children(recursive=True):
        try:
            if title in " ".join(child.cmdline()):
                found.append(child)
        except psutil.Error:
            continue
    return found


def test_killing_ray_workers_mid_build_gives_the_uninterrupted_bytes(raw_videos, tmp_path):
    raw = tmp_path / "raw"
    shutil.copytree(raw_videos, raw)
    for copy in range(1):  # six groups, so the kills land with work left to do
        for video in sorted(raw_videos.glob("*.mp4")):
            for sidecar in raw_videos.glob(f"{video.stem}.*"):
                shutil.copy(sidecar, raw / sidecar.name.replace(video.stem, f"{video.stem}_{copy}"))
    reference = tmp_path / "reference"
    build([raw], reference, offline_config(), show_progress=False)

    out = tmp_path / "ray"
    config = offline_config(executor={"kind": "ray", "dvg_actors": 1, "decode_workers": 2})
    ray.init(num_cpus=4, include_dashboard=False, logging_level="warning", configure_logging=False)
    try:
        result: dict = {}
        runner = threading.Thread(
            target=lambda: result.update(summary=build([raw], out, config, show_progress=False))
        )
        runner.start()
        killed: list[str] = []
        deadline = time.monotonic() + 300
        while runner.is_alive() and len(killed) < 2 and time.monotonic() < deadline:
            if out.exists() and any(out.glob("*_stats.json")):  # mid-build: a group is done
                for title in ("DVGWorker", "decode_video"):
                    victims = [] if title in killed else _ray_workers(title)
                    if victims:
                        os.kill(victims[0].pid, signal.SIGKILL)
                        killed.append(title)
            time.sleep(0.005)
        runner.join(600)
        assert not runner.is_alive()
    finally:
        ray.shutdown()
    assert sorted(killed) == ["DVGWorker", "decode_video"], "the build ended before the kills"
    summary = result["summary"]
    assert summary.videos_failed == 0 and summary.clips_failed == 0
    assert read_manifest(out)[0] == read_manifest(reference)[0]  # the same bytes (md5) per shard
