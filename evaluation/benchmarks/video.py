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
from dataclasses import asdict
from pathlib import Path
from typing import Any

import numpy as np
import torch

from dvg.backends import FLOW_BACKENDS, BackendSpec
from dvg.synthetic import render_scene, write_clip
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
    """Convert the synthetic videos with every method and write the Table-2-style report."""
    notes: list[str] = []
    extra = dict(config.extra)
    frames_n = int(extra.get("frames", 24))
    height, width = int(extra.get("height", 64)), int(extra.get("width", 96))
    window = int(extra.get("window", 8))
    overlap = int(extra.get("overlap", 2))
    flow = FLOW_BACKENDS.create(BackendSpec("dis"))
    fvd = None
    if extra.get("i3d"):
        from evaluation.metrics import FVD

        fvd = FVD.from_file(extra["i3d"])
    else:
        notes.append("FVD not computed: pass the I3D TorchScript file (docs/metrics.md)")
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        videos = []
        for index, scene in enumerate(VIDEO_SCENES):
            render = render_scene(scene, seed=index, height=height, width=width,
                                  num_frames=frames_n)  # fmt: skip
            paths = write_clip(render, tmp, f"{scene}")
            videos.append((scene, paths["video"], _frames(render.left), _frames(render.right)))
        for name in config.methods:
            if name not in _METHODS:
                notes.append(f"{name}: not a video method (oracle needs per-frame ground truth)")
                continue
            method = create_method(
                _METHODS[name],
                MethodConfig(
                    warp=WarpConfig(depth=BackendSpec("sidecar")),
                    window=window,
                    overlap=overlap,
                    model=config.model,
                ),
            )
            all_errors, seam_errors, generated, real = [], [], [], []
            for _scene, path, left, right_true in videos:
                source = StreamSource(str(path), width, height)
                right = list(method.process(iter(left), source))
                forward, backward = video_flows(_tensor(left), flow)
                output = _tensor(right)
                all_errors.append(warp_error(output, forward, backward))
                seams = boundary_pairs(
                    len(left), method.window, method.overlap, method.fixed_length
                )
                if seams:
                    seam_errors.append(warp_error(output, forward, backward, pairs=seams))
                generated.append(output)
                real.append(_tensor(right_true))
            row: dict[str, Any] = {
                "method": name,
                "n": len(videos),
                "ewarp": in_paper_units(float(np.mean(all_errors))),
                "ewarp_seams": in_paper_units(float(np.mean(seam_errors))) if seam_errors else None,
                "window": method.window,
                "overlap": method.overlap,
            }
            if fvd is not None:
                row["fvd"] = fvd(torch.stack(real), torch.stack(generated))
            rows.append(row)
    notes.append(
        f"Videos: {', '.join(VIDEO_SCENES)} at {width}x{height}, {frames_n} frames, sidecar exact "
        f"depth; windows of {window} frames overlapping by {overlap}; flow: OpenCV DIS on the "
        "input video; E_warp x 10^-3."
    )
    return write_report(Path(config.out), "video", asdict(config), [], [], video_rows=rows,
                        notes=notes)  # fmt: skip
