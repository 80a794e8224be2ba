"""Running a benchmark's measurement in fresh processes: against an older revision of the code,
with a pinned torch thread count, and with optional background load.

Timings on a shared machine only mean something as ratios taken in one run with the variants
interleaved (A B B A ...), so every benchmark that compares variants goes through
:func:`interleaved`.
"""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import sys
import tarfile
import tempfile
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]


def checkout(revision: str, folder: Path) -> Path:
    """The tracked files of git ``revision`` of this repository, extracted into ``folder``.

    ``git archive`` rather than a worktree: nothing is registered in the repository, and the
    folder disappears with the benchmark's temporary directory.
    """
    folder.mkdir(parents=True, exist_ok=True)
    archive = folder / "tree.tar"
    with archive.open("wb") as f:
        subprocess.run(["git", "-C", str(ROOT), "archive", revision], stdout=f, check=True)
    with tarfile.open(archive) as tar:
        tar.extractall(folder, filter="data")
    archive.unlink()
    return folder


def revision_name(revision: str) -> str:
    """``revision`` as a short commit hash (what the report names)."""
    run = subprocess.run(
        ["git", "-C", str(ROOT), "rev-parse", "--short", revision],
        capture_output=True,
        text=True,
        check=True,
    )
    return run.stdout.strip()


def run_python(
    script: str,
    args: Sequence[str],
    *,
    tree: Path = ROOT,
    threads: int | None = None,
    env: dict[str, str] | None = None,
    what: str = "benchmark run",
) -> dict[str, Any]:
    """Run ``script`` with the code of ``tree`` importable first, in a fresh process; the JSON
    object on its last stdout line. ``threads`` pins torch's (and OpenMP's) thread count."""
    environment = {**os.environ, "PYTHONPATH": str(tree), **(env or {})}
    if threads is not None:
        environment["OMP_NUM_THREADS"] = str(threads)
        script = f"import torch\ntorch.set_num_threads({int(threads)})\n{script}"
    run = subprocess.run(
        [sys.executable, "-c", script, *args],
        capture_output=True,
        text=True,
        env=environment,
        cwd=tree,
        check=False,
    )
    if run.returncode != 0:
        raise RuntimeError(f"{what} failed:\n{run.stderr[-3000:]}")
    return json.loads(run.stdout.strip().splitlines()[-1])


@contextlib.contextmanager
def background_load(processes: int) -> Iterator[None]:
    """``processes`` busy Python processes while the block runs (a loaded machine)."""
    busy = [subprocess.Popen([sys.executable, "-c", "while True: pass"]) for _ in range(processes)]
    try:
        yield
    finally:
        for process in busy:
            process.kill()
            process.wait()


def interleaved(
    variants: Sequence[str], rounds: int, measure: Callable[[str], dict[str, Any]]
) -> dict[str, list[dict[str, Any]]]:
    """``measure(variant)`` for every variant, ``rounds`` times, in the order A B ... then
    reversed (A B B A ...), so slow drifts of the machine's load hit every variant alike."""
    results: dict[str, list[dict[str, Any]]] = {v: [] for v in variants}
    for r in range(rounds):
        order = list(variants) if r % 2 == 0 else list(reversed(variants))
        for variant in order:
            print(f"round {r + 1}/{rounds}: {variant}", file=sys.stderr, flush=True)
            results[variant].append(measure(variant))
    return results


def load_average() -> str:
    """The 1-minute load average, for the report (other users' processes included)."""
    try:
        return f"{os.getloadavg()[0]:.1f}"
    except OSError:
        return "n/a"


def temporary_folder() -> tempfile.TemporaryDirectory:
    return tempfile.TemporaryDirectory(prefix="spatialdreamer-bench-")
