"""`dvg build`: the DVG data engine that turns monocular videos into stereo training shards.

Stages (each a plain callable, run in-process by :mod:`dvg.engine.local` or on Ray by
:mod:`dvg.engine.ray_executor`): decode (:class:`~dvg.engine.stages.DecodeStage`) -> the per-clip
DVG step (:class:`~dvg.engine.step.DVGStage`) -> encode (:class:`~dvg.engine.stages.EncodeStage`)
-> group writer (:class:`~dvg.engine.output.GroupWriter`).
"""

from dvg.engine.config import (
    PRESETS,
    BuildConfig,
    ExecutorConfig,
    MaskConfig,
    OutputConfig,
    StereoConfig,
    apply_overrides,
    load_config,
    preset_config,
)
from dvg.engine.runner import BuildSummary, build

__all__ = [
    "PRESETS",
    "BuildConfig",
    "BuildSummary",
    "ExecutorConfig",
    "MaskConfig",
    "OutputConfig",
    "StereoConfig",
    "apply_overrides",
    "build",
    "load_config",
    "preset_config",
]
