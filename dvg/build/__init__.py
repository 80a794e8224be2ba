"""`dvg build`: the DVG data engine that turns monocular videos into stereo training shards.

Stages (each a plain callable, run in-process by :mod:`dvg.build.local` or on Ray by
:mod:`dvg.build.ray_executor`): decode (:class:`~dvg.build.stages.DecodeStage`) -> the per-clip
DVG step (:class:`~dvg.build.step.DVGStage`) -> encode (:class:`~dvg.build.stages.EncodeStage`)
-> group writer (:class:`~dvg.build.output.GroupWriter`).
"""

from dvg.build.config import (
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
from dvg.build.runner import BuildSummary, build

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
