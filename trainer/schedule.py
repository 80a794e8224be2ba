"""Learning-rate schedules of the training loops: a factor of the base lr per optimizer step.

Written by hand rather than with ``diffusers.optimization.get_scheduler`` because both loops
already step a ``LambdaLR`` whose warm-up starts at 1/warmup (not 0, as diffusers' does) and
whose state resumed runs restore; only the factor differs between schedules.
"""

from __future__ import annotations

import math

SCHEDULES = ("constant", "cosine")
"""``constant``: the lr after a linear warm-up; ``cosine``: then a cosine decay to
``floor`` x lr at the last step."""


def lr_factor(step: int, schedule: str, warmup: int, steps: int, floor: float = 0.1) -> float:
    """Factor of the base lr at optimizer step ``step`` (0-based) of ``steps``."""
    warmup = max(warmup, 1)
    if step < warmup:
        return (step + 1) / warmup
    if schedule == "constant":
        return 1.0
    if schedule != "cosine":
        raise ValueError(f"schedule must be one of {', '.join(SCHEDULES)}, got {schedule!r}")
    progress = min((step - warmup) / max(steps - warmup, 1), 1.0)
    return floor + (1.0 - floor) * 0.5 * (1.0 + math.cos(math.pi * progress))
