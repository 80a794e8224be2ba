"""One writer per output folder: a second `dvg build` exits 2 at once naming the first, and a
lock left by a killed build never blocks the next one; the result is that of a clean run."""

from __future__ import annotations

import errno
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from dvg.engine import apply_overrides, build, preset_config
from dvg.engine import lock as lock_module
from dvg.engine.lock import LOCK_FILE, OutputLock, OutputLockedError
from dvg.shards import read_manifest

DVG = str(Path(sys.executable).parent / "dvg")
HOST = socket.gethostname()


def dvg_build(raw: Path, out: Path) -> list[str]:
    return [
        DVG, "build", "--preset", "offline", "--videos", str(raw), "--out", str(out),
        "--clip-length", "4", "--videos-per-group", "1", "--no-progress",
    ]  # fmt: skip


def _owner_pid(out: Path) -> int | None:
    try:
        return json.loads((out / LOCK_FILE).read_text()).get("pid")
    except (OSError, ValueError):
        return None


def _shards(out: Path) -> dict[str, tuple[int, str]]:
    entries, _ = read_manifest(out)
    return {e.url: (e.nsamples, e.md5sum) for e in entries}


def test_second_writer_exits_2_at_once_and_a_killed_writer_leaves_no_stale_lock(
    raw_videos, tmp_path
):
    raw = tmp_path / "raw"
    raw.mkdir()
    for sidecar in [*raw_videos.glob("a_fronto.*"), *raw_videos.glob("b_slanted.*")]:
        shutil.copy(sidecar, raw)  # two videos, two groups
    reference, out = tmp_path / "reference", tmp_path / "shards"
    config = apply_overrides(
        preset_config("offline"), {"video": {"clip_length": 4}, "output": {"videos_per_group": 1}}
    )
    build([raw], reference, config, show_progress=False)

    first = subprocess.Popen(dvg_build(raw, out), stdout=subprocess.DEVNULL,
                             stderr=subprocess.DEVNULL)  # fmt: skip
    try:
        deadline = time.monotonic() + 120
        while _owner_pid(out) != first.pid:
            assert first.poll() is None, "the first build ended before it took the lock"
            assert time.monotonic() < deadline
            time.sleep(0.01)
        # Frozen while it holds the lock (e.g. mid-group): the second writer must not wait.
        os.kill(first.pid, signal.SIGSTOP)
        second = subprocess.run(dvg_build(raw, out), capture_output=True, text=True, timeout=120)
        assert second.returncode == 2
        assert f"another dvg build ({HOST}, {first.pid}) is writing here" in second.stderr
        assert first.poll() is None
        # Killed while holding the lock: the kernel drops it with the process.
        os.kill(first.pid, signal.SIGKILL)
        first.wait()
    finally:
        if first.poll() is None:
            first.kill()
            first.wait()
    third = subprocess.run(dvg_build(raw, out), capture_output=True, text=True, timeout=300)
    assert third.returncode == 0, third.stderr
    assert _shards(out) == _shards(reference)  # every sample, the same bytes
    assert not [p for p in out.iterdir() if ".tmp-" in p.name or p.name.endswith(".spool")]


def test_lock_in_process_names_the_owner_and_is_reusable(tmp_path):
    with OutputLock(tmp_path):
        with pytest.raises(OutputLockedError) as caught:
            OutputLock(tmp_path).acquire()
        assert caught.value.owner["pid"] == os.getpid()
        assert f"another dvg build ({HOST}, {os.getpid()}) is writing here" in str(caught.value)
    with OutputLock(tmp_path) as again:  # released: free again, the file stays (hidden)
        assert again.path.exists()


@pytest.fixture
def no_flock(monkeypatch):
    """A file system without flock: the lock file itself is the lock."""

    def flock(fd, operation):
        raise OSError(errno.ENOLCK, "No locks available")

    monkeypatch.setattr(lock_module.fcntl, "flock", flock)


def test_without_flock_a_dead_owner_is_stale_and_a_live_or_remote_one_holds(tmp_path, no_flock):
    path = tmp_path / LOCK_FILE
    gone = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                          capture_output=True, text=True, check=True)  # fmt: skip
    path.write_text(json.dumps({"host": HOST, "pid": int(gone.stdout), "started": 0}))
    with OutputLock(tmp_path) as held:  # its owner is gone: taken over
        assert json.loads(path.read_text())["pid"] == os.getpid()
        with pytest.raises(OutputLockedError, match=rf"\({HOST}, {os.getpid()}\)"):
            OutputLock(tmp_path).acquire()
    assert not held.path.exists()  # here the file was the lock: released by deleting it

    sleeper = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        path.write_text(json.dumps({"host": HOST, "pid": sleeper.pid}))
        with pytest.raises(OutputLockedError, match=rf"\({HOST}, {sleeper.pid}\)"):
            OutputLock(tmp_path).acquire()
    finally:
        sleeper.kill()
        sleeper.wait()
    path.write_text(json.dumps({"host": "node-17", "pid": 4242}))
    with pytest.raises(OutputLockedError, match=r"\(node-17, 4242\).*delete .*dvg-build\.lock"):
        OutputLock(tmp_path).acquire()
