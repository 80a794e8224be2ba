"""`micro`: the held-out test of the micro reproduction (issue 13; docs/evaluation.md, "micro").

Unseen procedural videos (dvg.synthetic scenes rendered with seeds the micro training never
uses) at the micro size, with the renderer's exact depth and exact right views. Every method
warps the left view to the right eye with the same exact depth (softmax splatting,
evaluation/protocol.py), so rows differ only in what fills the disoccluded holes: OpenCV Telea,
SpatialDreamer models, each under its own label (``--model untrained=DIR --model stage2=DIR``;
a model converts the whole clip at once, so it sees its windows and TIL as in `spatialdreamer
convert`), or the exact right view's own pixels (``oracle``, the ceiling).

Per frame: PSNR and SSIM over the whole frame and over the holes alone (hole SSIM is the mean of
the SSIM map over the hole pixels), LPIPS over the frame when its weights are given. Per video:
E_warp (Lai et al.) of the generated right video with flow and masks estimated (OpenCV DIS) on
the exact right video, over all consecutive frame pairs and over the pairs that straddle a window
seam of the model alone.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any

import numpy as np
import torch

from dvg.backends import FLOW_BACKENDS, BackendSpec
from dvg.geometry import stereo_pose
from dvg.progress import Progress
from dvg.synthetic import render_scene
from evaluation.benchmarks.base import Sample, spread
from evaluation.methods import VAE_ORACLE_NOTE, Method, MethodSpec, method_specs
from evaluation.metrics import (
    in_paper_units,
    masked_psnr,
    masked_ssim,
    psnr,
    ssim,
    video_flows,
    warp_error,
)
from evaluation.protocol import warp_view
from pipelines.windows import boundary_pairs

MICRO_SCENES = ("fronto_integer", "slanted_fractional", "boxes_orbit", "moving_objects")
EVALUATION_SEEDS = (1000, 1001)
"""Seeds of the held-out videos; the micro training (benchmarks/micro.py) draws its own below
these, so no evaluated texture was seen in training."""
DEPTH_LABEL = "ground truth, exact"
FRAME_METRICS = ("psnr_hole", "ssim_hole", "psnr", "ssim", "lpips")
VIDEO_METRICS = ("ewarp", "ewarp_seams")


@dataclass(frozen=True)
class MicroConfig:
    size: int = 64
    """Side of the square frames (the micro training resolution)."""
    frames: int = 12
    """Frames per video: more than a model's window, so there are window seams."""
    scenes: tuple[str, ...] = MICRO_SCENES
    seeds: tuple[int, ...] = EVALUATION_SEEDS
    """Each scene is rendered once per seed (textures; the camera paths are the scene's)."""
    steps: int = 10
    """Euler steps of the SpatialDreamer models."""
    seed: int = 0
    """Sampling seed of the SpatialDreamer models."""
    examples: int = 4
    """Videos whose middle frame goes into the example strips."""

    @classmethod
    def from_extra(cls, extra: dict[str, Any]) -> MicroConfig:
        """The config from `evaluation run`'s extra settings (unknown keys are ignored)."""
        known = {f.name for f in fields(cls)}
        values = {k: v for k, v in extra.items() if k in known and v is not None}
        for key in ("scenes", "seeds"):
            if isinstance(values.get(key), str):
                values[key] = tuple(s.strip() for s in values[key].split(",") if s.strip())
            if key in values:
                values[key] = tuple(values[key])
        if "seeds" in values:
            values["seeds"] = tuple(int(s) for s in values["seeds"])
        config = cls(**values)
        if config.size % 8 or config.size < 16:
            raise ValueError(f"micro: size must be a multiple of 8 and >= 16, got {config.size}")
        if config.frames < 2:
            raise ValueError(f"micro: frames must be >= 2 (E_warp), got {config.frames}")
        return config


@dataclass
class MicroVideo:
    """One held-out video, warped to the right eye with its exact depth."""

    name: str
    left: np.ndarray
    """(F, H, W, 3) uint8 left views (the input)."""
    right: np.ndarray
    """(F, H, W, 3) uint8 exact right views (the ground truth)."""
    warped: np.ndarray
    """(F, H, W, 3) uint8 left views forward-warped with exact depth (0 in the holes)."""
    holes: np.ndarray
    """(F, H, W) bool, right-view pixels the warp leaves empty."""
    baseline: float


def _uint8(frames: torch.Tensor) -> np.ndarray:
    """(F, 3, H, W) float in [0, 1] -> (F, H, W, 3) uint8."""
    images = (frames.clamp(0, 1) * 255).round().byte().permute(0, 2, 3, 1).numpy()
    return np.ascontiguousarray(images)


def _unit(frames: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(frames).permute(0, 3, 1, 2).float() / 255


def micro_videos(config: MicroConfig) -> list[MicroVideo]:
    """Render every (seed, scene) video and warp each left view with its exact depth; ordered
    seed by seed, so the first videos are different scenes."""
    videos = []
    for seed in config.seeds:
        for scene in config.scenes:
            render = render_scene(
                scene, seed=seed, height=config.size, width=config.size, num_frames=config.frames
            )
            left, right = _uint8(render.left), _uint8(render.right)
            K = render.K.numpy().astype(np.float64)
            T = stereo_pose(render.baseline)[0].numpy().astype(np.float64)
            depth = render.depth[:, 0].numpy().astype(np.float32)
            warps = [warp_view(view, z, K, T) for view, z in zip(left, depth, strict=True)]
            videos.append(
                MicroVideo(
                    name=f"{scene}_s{seed}",
                    left=left,
                    right=right,
                    warped=np.stack([w.image for w in warps]),
                    holes=np.stack([w.holes for w in warps]),
                    baseline=float(render.baseline),
                )
            )
    return videos


def micro_methods(
    names: Sequence[str], models: Sequence[tuple[str, str]], model: str | None
) -> list[MethodSpec]:
    """The compared methods (:func:`evaluation.methods.method_specs`), all with the exact
    depth."""
    if "warp-sd" in names:
        raise ValueError("micro: warp-sd needs SD weights; compare warp-telea and models")
    return method_specs(names, depth=None, model=model, models=models)


def _seams(method: Method, frames: int) -> list[int]:
    """Frame pairs straddling a window seam of a windowed method (none for per-frame fillers)."""
    if not method.samples:
        return []
    window, overlap = method.pipeline.resolve_window(None, None)
    return boundary_pairs(frames, window, overlap, fixed_length=True)


def score_video(
    method: Method,
    video: MicroVideo,
    flows: tuple[torch.Tensor, torch.Tensor],
    config: MicroConfig,
    *,
    lpips=None,
    keep_frame: int | None = None,
) -> tuple[list[Sample], Sample]:
    """One method on one video: a Sample per frame (image metrics) and one for the video
    (E_warp overall and at window seams)."""
    start = time.perf_counter()
    output = method.fill_clip(
        video.left, video.warped, video.holes, video.right, steps=config.steps, seed=config.seed
    )
    seconds = time.perf_counter() - start
    generated, truth = _unit(output), _unit(video.right)
    holes = torch.from_numpy(video.holes)
    values = {
        "psnr_hole": masked_psnr(generated, truth, holes),
        "ssim_hole": masked_ssim(generated, truth, holes),
        "psnr": psnr(generated, truth),
        "ssim": ssim(generated, truth),
    }
    if lpips is not None:
        values["lpips"] = lpips(generated, truth)
    depth, fill = DEPTH_LABEL, method.fill_label
    frames = []
    for f in range(len(output)):
        metrics = {name: float(v[f]) for name, v in values.items()}
        images = {}
        if f == keep_frame:
            images = {"source": video.left[f], "warped": video.warped[f], "output": output[f],
                      "target": video.right[f]}  # fmt: skip
        frames.append(
            Sample(f"{video.name}_f{f:03d}", method.name, "frame", metrics, video.baseline,
                   float(video.holes[f].mean()), seconds / len(output), images, depth, fill)
        )  # fmt: skip
    forward, backward = flows
    metrics = {"ewarp": in_paper_units(warp_error(generated, forward, backward))}
    seams = _seams(method, len(output))
    if seams:
        metrics["ewarp_seams"] = in_paper_units(
            warp_error(generated, forward, backward, pairs=seams)
        )
    clip = Sample(video.name, method.name, "video", metrics, video.baseline,
                  float(video.holes.mean()), seconds, {}, depth, fill)  # fmt: skip
    return frames, clip


def spread_with_exact(name: str, values: Sequence[float]) -> dict[str, float]:
    """:func:`spread` over the finite values, plus ``<name>_exact``: how many were +inf (PSNR of
    pixels reproduced exactly, e.g. the oracle's holes), which a mean cannot hold."""
    row = spread(name, values)
    row[f"{name}_exact"] = int(sum(1 for v in values if v == float("inf")))
    return row


def summarise_micro(frames: list[Sample], clips: list[Sample]) -> list[dict[str, Any]]:
    """One row per method, in the order the methods ran: frame metrics as mean ± std over
    frames (``n_frames``; hole metrics over the frames that have holes, ``n_hole_frames``),
    E_warp over videos (``n_videos``)."""
    rows = []
    for method in dict.fromkeys(s.method for s in frames):
        mine = [s for s in frames if s.method == method]
        videos = [s for s in clips if s.method == method]
        row: dict[str, Any] = {
            "method": method, "depth": mine[0].depth, "fill": mine[0].fill,
            "n_frames": len(mine), "n_videos": len(videos),
            "n_hole_frames": sum(1 for s in mine if s.hole_fraction > 0),
            "hole_fraction": float(np.mean([s.hole_fraction for s in mine])),
        }  # fmt: skip
        for name in FRAME_METRICS:
            if name in mine[0].metrics:
                values = [s.metrics[name] for s in mine]
                row.update(spread_with_exact(name, values) if "psnr" in name else
                           spread(name, values))  # fmt: skip
        for name in VIDEO_METRICS:
            values = [s.metrics.get(name) for s in videos]
            if any(v is not None for v in values):
                row.update(spread(name, values))
        row["seconds_per_frame"] = float(np.mean([s.seconds for s in mine]))
        rows.append(row)
    return rows


def run_micro(config: Any) -> dict[str, Path]:
    """Score every method on the held-out micro videos and write the report (one row per
    method: hole and frame image metrics, E_warp and seam E_warp)."""
    from evaluation.report import write_report
    from evaluation.runner import lpips_metric

    micro = MicroConfig.from_extra(dict(config.extra))
    notes: list[str] = []
    specs = micro_methods(config.methods, config.models, config.model)
    if not specs:
        raise ValueError("micro: no method to evaluate (--methods and/or --model LABEL=DIR)")
    lpips = lpips_metric(config, notes)
    videos = micro_videos(micro)
    flow = FLOW_BACKENDS.create(BackendSpec("dis"))
    flows = {v.name: video_flows(_unit(v.right), flow) for v in videos}
    keep = {v.name: micro.frames // 2 for v in videos[: micro.examples]}
    frames: list[Sample] = []
    clips: list[Sample] = []
    progress = Progress("evaluation run", len(specs) * len(videos), unit="videos")
    windows = {}
    for spec in specs:
        method = Method(spec)
        if method.samples:
            windows[spec.name] = method.pipeline.resolve_window(None, None)
        for video in videos:
            per_frame, clip = score_video(method, video, flows[video.name], micro, lpips=lpips,
                                          keep_frame=keep.get(video.name))  # fmt: skip
            frames += per_frame
            clips.append(clip)
            progress.update(advance=1, method=spec.name)
        del method
    progress.close()
    rows = summarise_micro(frames, clips)
    for row in rows:
        if row["method"] in windows:
            row["window"], row["overlap"] = windows[row["method"]]
    floor = [in_paper_units(warp_error(_unit(v.right), *flows[v.name])) for v in videos]
    floor_row = spread("ewarp", floor)
    holes = float(np.mean([v.holes.mean() for v in videos]))
    notes += [
        f"Videos: {', '.join(micro.scenes)} with seeds {', '.join(map(str, micro.seeds))} "
        f"({len(videos)} videos of {micro.frames} frames at {micro.size}x{micro.size}), rendered "
        "with the renderer's exact depth and exact right views; the micro training uses other "
        "seeds.",
        "Depth: the exact depth for every method (no alignment), so rows differ only in the hole "
        f"filler. Holes: the right-view pixels the exact-depth warp leaves empty ({holes:.1%} of "
        "the pixels); hole SSIM is the mean of the SSIM map over them (each pixel's 11x11 window "
        "also sees known pixels around the hole).",
        f"SpatialDreamer models: {micro.steps} Euler steps, seed {micro.seed}, the model's own "
        "window (its TIL clip length, or 8 frames without TIL) and default deviation strength; "
        "each converts a whole video at once.",
        "E_warp x 10^-3 with OpenCV DIS flow and masks estimated on the exact right video; "
        f"E_warp of the exact right video itself, the floor of this measurement: "
        f"{floor_row['ewarp']:.3f} ± {floor_row['ewarp_std']:.3f}. Seam E_warp: only the frame "
        "pairs straddling a window seam of the model (per-frame fillers have no seams).",
    ]
    if any(s.name == "oracle" for s in specs):
        notes.append(
            "oracle: the exact right view's pixels in the holes, so its hole PSNR is infinite "
            "(shown as exact); its frame figures are the warp's resampling error alone, the "
            "ceiling of every hole filler."
        )
    if any(s.name == "vae-oracle" for s in specs):
        notes.append(VAE_ORACLE_NOTE)
    settings = {**asdict(config), "micro": asdict(micro), "ewarp_floor": floor_row}
    return write_report(
        Path(config.out), "micro", settings, rows, frames + clips, notes=notes, layout="micro",
        example_options={"zoom": 3, "source_label": "left", "target_label": "exact right",
                         "methods": [s.name for s in specs if s.name != "oracle"]},
    )  # fmt: skip
