"""The local executor: every stage in this process, one clip at a time.

For debugging and small jobs; the Ray executor runs the same stage objects in parallel.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

from dvg.engine.config import BuildConfig
from dvg.engine.output import Group, GroupWriter
from dvg.engine.progress import BuildProgress, clip_position
from dvg.engine.stages import (
    DecodeStage,
    EncodedClip,
    EncodeStage,
    VideoOutcome,
    VideoTask,
    run_dvg,
    sidecar_check_for,
)
from dvg.engine.step import DVGStage
from dvg.engine.threads import torch_threads


def run_local(
    config: BuildConfig, out_dir: Path, groups: list[Group], progress: BuildProgress
) -> Iterator[dict[str, Any]]:
    """Process ``groups`` in order, yielding each group's done marker as it is committed."""
    with torch_threads(config.executor.threads):
        yield from _run(config, out_dir, groups, progress)


def _run(
    config: BuildConfig, out_dir: Path, groups: list[Group], progress: BuildProgress
) -> Iterator[dict[str, Any]]:
    dvg = DVGStage(config)  # loads the models once, before any work
    decode = DecodeStage(config, sidecar_check=sidecar_check_for(config))
    encode = EncodeStage(config)
    config_hash = config.data_hash()
    for group in groups:
        writer = GroupWriter(out_dir, group, config_hash)
        for video in group.inputs:
            for item in decode(VideoTask(group.name, video.name, video.path)):
                if isinstance(item, VideoOutcome):
                    writer.add_video(item)
                    progress.video_done(item.error, video.name)
                    continue
                result = run_dvg(dvg, item)
                encoded = result if isinstance(result, EncodedClip) else encode(item, result)
                writer.add_clip(encoded)
                progress.clip_done(encoded.row, clip_position(video.name, item.clip))
        stats = writer.commit()
        progress.group_done()
        yield stats
