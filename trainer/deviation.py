"""The stereo deviation strength s (paper Eq. 4) measured on the training data, for export.

Eq. 4 is defined on latents, s = mean |z0 - z_ref|, so only the trainer can measure it: every
training step already computes s for each sample (it conditions the U-Net and enters the
stereo-aware loss). The loop appends those values to ``RUN/deviation.jsonl`` (one line per step,
all ranks gathered), and ``trainer export`` writes their median and 5-95% range into the model
config, so the pipeline's default strength means "like the training data" and users can see
which strengths the model has seen.
"""

from __future__ import annotations

import math
import os
from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np

from trainer.step_log import StepLog

LOG_NAME = "deviation.jsonl"


@dataclass(frozen=True)
class DeviationSummary:
    """Distribution of s over a run's training samples."""

    median: float
    low: float
    """5th percentile."""
    high: float
    """95th percentile."""
    count: int

    @classmethod
    def of(cls, values: Iterable[float]) -> DeviationSummary:
        data = np.asarray(list(values), dtype=np.float64)
        data = data[np.isfinite(data)]
        if data.size == 0:
            raise ValueError("no finite deviation-strength values to summarise")
        low, median, high = np.quantile(data, [0.05, 0.5, 0.95])
        return cls(float(median), float(low), float(high), int(data.size))


class DeviationLog(StepLog):
    """``RUN/deviation.jsonl``: ``{"step": n, "values": [s, ...]}`` per optimisation step."""

    def __init__(self, run_dir: str | os.PathLike[str]) -> None:
        super().__init__(run_dir, LOG_NAME)

    def append(self, step: int, values: Iterable[float]) -> None:
        super().append(step, {"values": [round(float(v), 6) for v in values]})

    def records(self, up_to_step: int | None = None) -> list[tuple[int, list[float]]]:
        """``(step, values)`` per logged step (<= ``up_to_step``), in file order; a line cut by
        a kill mid-write is ignored."""
        out = []
        for record in self.read(up_to_step):
            try:
                out.append((record["step"], [float(v) for v in record["values"]]))
            except (ValueError, KeyError, TypeError):
                continue
        return out

    def summary(self, up_to_step: int | None = None) -> DeviationSummary | None:
        """The distribution of every logged s up to ``up_to_step``; None when nothing is logged."""
        values = [v for _, step_values in self.records(up_to_step) for v in step_values]
        finite = [v for v in values if math.isfinite(v)]
        return DeviationSummary.of(finite) if finite else None
