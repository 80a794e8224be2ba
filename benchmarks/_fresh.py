"""Run a Python snippet in a fresh process: its peak memory is its own, and the GPU memory it
used is released when it exits."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

CHECKOUT = Path(__file__).resolve().parents[1]


def run_script(script: str, args: list[str], env: dict[str, str], what: str) -> str:
    """Run ``script`` with ``args`` in a fresh Python process with this checkout importable; its
    stdout. An inherited ``PYTHONPATH`` is kept (behind the checkout): on a GPU machine it
    holds the carried wheels."""
    inherited = os.environ.get("PYTHONPATH")
    path = str(CHECKOUT) + (os.pathsep + inherited if inherited else "")
    env = {**os.environ, "PYTHONPATH": path, **env}
    run = subprocess.run(
        [sys.executable, "-c", script, *args], capture_output=True, text=True, env=env, check=False
    )
    if run.returncode != 0:
        raise RuntimeError(f"{what} failed:\n{run.stderr[-3000:]}")
    return run.stdout
