"""``convert_folder``: every video under a folder, the models loaded once, resumable.

Outputs mirror the input's sub-folders under ``out_dir`` with the layout's file names. A video
whose output exists is skipped: outputs appear only by renaming a finished file, so an existing
one is complete, and a run killed mid-video leaves only a ``*.partial.*`` file that the next run
overwrites. A video that fails is reported and the others go on.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path

from dvg.engine.threads import torch_threads
from dvg.video import discover_inputs
from pipelines.convert.converter import ConvertConfig, ConvertResult, _convert
from pipelines.convert.formats import output_name
from pipelines.convert.io import PARTIAL
from pipelines.convert.methods import create_method


@dataclass
class FolderResult:
    """What ``convert_folder`` did: converted, skipped (output already there) and failed."""

    converted: list[ConvertResult] = field(default_factory=list)
    skipped: list[Path] = field(default_factory=list)
    failed: dict[str, str] = field(default_factory=dict)  # input path -> reason
    seconds: float = 0.0


def plan_folder(input_dir: Path, out_dir: Path, layout: str) -> list[tuple[Path, Path]]:
    """(input video, output file) pairs for every video under ``input_dir`` (recursive),
    leaving out anything inside ``out_dir`` and our own temporaries."""
    out_resolved = out_dir.resolve()
    pairs = []
    for video in discover_inputs([str(input_dir)]):
        path = Path(video.path)
        if PARTIAL in path.name or out_resolved in path.resolve().parents:
            continue
        relative = Path(video.name).parent
        pairs.append((path, out_dir / relative / output_name(path, layout)))
    return pairs


def convert_folder(
    input_dir: str | Path,
    out_dir: str | Path,
    config: ConvertConfig | None = None,
    *,
    show_progress: bool = False,
) -> FolderResult:
    """Convert every video under ``input_dir`` into ``out_dir`` (see the module docstring).

    Raises ValueError when there is no video, or when ``config.depth`` names one depth file
    (it cannot serve several videos; give a folder of sidecars).
    """
    config = config or ConvertConfig()
    started = time.perf_counter()
    input_dir, out_dir = Path(input_dir), Path(out_dir)
    if config.depth is not None and not Path(config.depth).is_dir():
        raise ValueError(
            f"--depth {config.depth} is one file: with a folder of videos give a folder of "
            "depth sidecars (e.g. made by `dvg depth --videos INPUT --out DEPTH`)"
        )
    pairs = plan_folder(input_dir, out_dir, config.layout)
    if not pairs:
        raise ValueError(f"no video found under {input_dir}")
    result = FolderResult()
    todo = []
    for video, target in pairs:
        if target.exists():
            result.skipped.append(target)
        else:
            todo.append((video, target))
    with torch_threads(config.threads):
        if todo:
            config.check_weights()
        method = create_method(config.method, config.method_config()) if todo else None
        for video, target in todo:
            try:
                result.converted.append(_convert(video, target, config, show_progress, method))
            except Exception as error:  # one bad video never stops the folder
                result.failed[str(video)] = f"{type(error).__name__}: {error}"
    result.seconds = time.perf_counter() - started
    return result
