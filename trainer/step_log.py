"""Per-step JSON-lines logs of a run directory (``RUN/deviation.jsonl``, ``RUN/validation.jsonl``).

One line per step, appended as the run goes. A line cut by a kill mid-write is skipped when the
log is read, and a resumed run truncates the log to its checkpoint's step (atomically, by
rename), so every step appears once.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any


class StepLog:
    """``RUN/<name>``: ``{"step": n, ...}`` per line."""

    def __init__(self, run_dir: str | os.PathLike[str], name: str) -> None:
        self.path = Path(run_dir) / name

    def append(self, step: int, fields: dict[str, Any]) -> None:
        with open(self.path, "a") as handle:
            handle.write(json.dumps({"step": int(step), **fields}) + "\n")

    def read(self, up_to_step: int | None = None) -> list[dict[str, Any]]:
        """The records of steps <= ``up_to_step`` (all when None), in file order; lines that are
        not a JSON object with an integer ``step`` are skipped."""
        if not self.path.is_file():
            return []
        out = []
        for line in self.path.read_text().splitlines():
            try:
                record = json.loads(line)
            except ValueError:
                continue
            if not isinstance(record, dict) or not isinstance(record.get("step"), int):
                continue
            if up_to_step is None or record["step"] <= up_to_step:
                out.append(record)
        return out

    def truncate(self, step: int) -> None:
        """Keep the records of steps <= ``step`` (a resumed run redoes the later ones)."""
        if not self.path.is_file():
            return
        kept = "".join(json.dumps(record) + "\n" for record in self.read(step))
        tmp = self.path.with_name(self.path.name + ".tmp")
        tmp.write_text(kept)
        os.replace(tmp, self.path)
