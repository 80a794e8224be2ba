"""Write benchmark results into docs/benchmarks.md, one marked section per benchmark.

Each section records the machine, the exact command and the date, so figures can be traced.
"""

from __future__ import annotations

import datetime as _dt
import json
import os
import platform
import shlex
import sys
import traceback
from pathlib import Path

import torch


def machine_description() -> str:
    """One line naming the CPU (and GPU when used), core count and torch build."""
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    parts = [f"{cpu}, {os.cpu_count()} cores visible, torch {torch.__version__}"]
    parts.append(f"{torch.get_num_threads()} torch threads")
    if torch.cuda.is_available():
        parts.append(f"GPU {torch.cuda.get_device_name(0)}")
    return "; ".join(parts)


def header() -> str:
    """Machine, command and date lines for a section."""
    spec = getattr(sys.modules["__main__"], "__spec__", None)
    argv = ["-m", spec.name, *sys.argv[1:]] if spec is not None else sys.argv
    command = " ".join(shlex.quote(a) for a in ["python", *argv])
    today = _dt.date.today().isoformat()
    return f"- Machine: {machine_description()}\n- Command: `{command}`\n- Date: {today}\n"


def update_section(path: Path, name: str, body: str) -> None:
    """Replace (or append) the section between ``<!-- name:start -->`` and ``<!-- name:end -->``."""
    start, end = f"<!-- {name}:start -->", f"<!-- {name}:end -->"
    block = f"{start}\n{body.rstrip()}\n{end}"
    text = path.read_text() if path.exists() else "# Benchmarks\n"
    if start in text and end in text:
        before = text[: text.index(start)]
        after = text[text.index(end) + len(end) :]
        text = before + block + after
    else:
        text = text.rstrip() + "\n\n" + block + "\n"
    path.write_text(text)


def write_json(path: Path, payload: dict) -> None:
    """Write ``payload`` to ``path`` atomically (a reader never sees half a file): benchmarks
    that a time budget may stop rewrite it after every finished row."""
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(path.name + ".partial")
    partial.write_text(json.dumps(payload, indent=1, default=str))
    os.replace(partial, path)


def row_error(error: BaseException) -> str:
    """One table-safe line naming a failed row's error (the traceback goes to stderr)."""
    traceback.print_exception(error, file=sys.stderr)
    text = " ".join(f"{type(error).__name__}: {error}".split()).replace("|", "/")
    return text[:200]
