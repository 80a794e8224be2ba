"""`video`: temporal consistency of converted stereo videos (paper Table 2: FVD and E_warp).

Synthetic videos with a moving camera (and moving objects) are converted by each method through
the same streaming code as `spatialdreamer convert`. E_warp (Lai et al.) is measured on the
generated right views with flow and occlusion masks estimated on the input (left) video, as Lai
et al. do, over all consecutive pairs and over the pairs that straddle a window boundary alone
(where chunked converters flicker). FVD compares the generated right videos with the renderer's
exact right videos and needs the I3D TorchScript file (``--i3d``; docs/metrics.md); without it
the FVD column is left empty and the report says why.
"""

from __future__ import annotations

import tempfile
import time
from dataclasses import asdict
from pathlib import Path
from typing import Any

import numpy as np
import torch

from dvg.backends import FLOW_BACKENDS, BackendSpec
from dvg.progress import Progress
from dvg.synthetic import render_scene, write_clip
from evaluation.benchmarks.base import Sample, spread
from evaluation.methods import depth_label, fill_label, method_spec
from evaluation.metrics import in_paper_units, video_flows, warp_error
from evaluation.report import write_report
from pipelines.convert.methods import MethodConfig, StreamSource, create_method
from pipelines.convert.warp import WarpConfig
from pipelines.windows import boundary_pairs

VIDEO_SCENES = ("boxes_orbit", "moving_objects")
_METHODS = {"warp-telea": "warp-telea", "warp-sd": "warp-sd", "spatialdreamer": "spatialdreamer"}


def _frames(render_frames: torch.Tensor) -> list[np.ndarray]:
    images = (render_frames.clamp(0, 1) * 255).round().byte().permute(0, 2, 3, 1).numpy()
    return [np.ascontiguousarray(f) for f in images]


def _tensor(frames: list[np.ndarray]) -> torch.Tensor:
    return torch.from_numpy(np.stack(frames)).permute(0, 3, 1, 2).float() / 255


def run_video(config: Any) -> dict[str, Path]:
    """Convert the synthetic videos with every method and write the Table-2-style report: one
    sample per (method, video) in samples.csv, mean ± std over the videos in summary.csv."""
    notes: list[str] = []
    extra = dict(config.extra)
    frames_n = int(extra.get("frames", 24))
    height, width = int(extra.get("height", 64)), int(extra.get("width", 96))
    window = int(extra.get("window", 8))
    overlap = int(extra.get("overlap", 2))
    seeds = range(int(extra.get("videos_per_scene", 2)))
    flow = FLOW_BACKENDS.create(BackendSpec("dis"))
    fvd = None
    if extra.get("i3d"):
        from evaluation.metrics import FVD

        fvd = FVD.from_file(extra["i3d"])
    else:
        notes.append("FVD not computed: pass the I3D TorchScript file (docs/metrics.md)")
    names = [name for name in config.methods if name in _METHODS]
    for name in config.methods:
        if name not in _METHODS:
            notes.append(f"{name}: not a video method (oracle needs per-frame ground truth)")
    rows, samples = [], []
    with tempfile.TemporaryDirectory() as tmp:
        videos = []
        for scene in VIDEO_SCENES:
            for seed in seeds:
                render = render_scene(scene, seed=seed, height=height, width=width,
                                      num_frames=frames_n)  # fmt: skip
                paths = write_clip(render, tmp, f"{scene}_s{seed}")
                videos.append((f"{scene}_s{seed}", paths["video"], _frames(render.left),
                               _frames(render.right), float(render.baseline)))  # fmt: skip
        progress = Progress("evaluation run", len(names) * len(videos), unit="videos")
        for name in names:
            spec = method_spec(name, depth=BackendSpec("sidecar"), model=config.model)
            method = create_method(
                _METHODS[name],
                MethodConfig(warp=WarpConfig(depth=spec.depth), window=window, overlap=overlap,
                             model=config.model),
            )  # fmt: skip
            generated, real, method_samples = [], [], []
            for video, path, left, right_true, baseline in videos:
                start = time.perf_counter()
                right = list(method.process(iter(left), StreamSource(str(path), width, height)))
                seconds = time.perf_counter() - start
                forward, backward = video_flows(_tensor(left), flow)
                output = _tensor(right)
                metrics = {"ewarp": in_paper_units(warp_error(output, forward, backward))}
                seams = boundary_pairs(len(left), method.window, method.overlap,
                                       method.fixed_length)  # fmt: skip
                if seams:
                    seam = warp_error(output, forward, backward, pairs=seams)
                    metrics["ewarp_seams"] = in_paper_units(seam)
                sample = Sample(video, name, "video", metrics, baseline, float("nan"), seconds,
                                depth=depth_label(spec), fill=fill_label(spec))  # fmt: skip
                method_samples.append(sample)
                generated.append(output)
                real.append(_tensor(right_true))
                progress.update(advance=1, method=name)
            row: dict[str, Any] = {
                "method": name, "depth": depth_label(spec), "fill": fill_label(spec),
                "n": len(method_samples), "window": method.window, "overlap": method.overlap,
            }  # fmt: skip
            for metric in ("ewarp", "ewarp_seams"):
                values = [s.metrics.get(metric) for s in method_samples]
                if any(v is not None for v in values):
                    row.update(spread(metric, values))
            if fvd is not None:
                row["fvd"] = fvd(torch.stack(real), torch.stack(generated))
            rows.append(row)
            samples += method_samples
        progress.close()
    notes.append(
        f"Videos: {', '.join(VIDEO_SCENES)}, {len(seeds)} seed(s) each, at {width}x{height}, "
        f"{frames_n} frames, depth: the renderer's exact depth as sidecar files; windows of "
        f"{window} frames overlapping by {overlap}; flow: OpenCV DIS on the input video; "
        "E_warp x 10^-3."
    )
    return write_report(Path(config.out), "video", asdict(config), [], samples, video_rows=rows,
                        notes=notes)  # fmt: skip
