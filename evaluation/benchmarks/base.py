"""What every image benchmark shares: view pairs, scoring a method on them, per-sample rows."""

from __future__ import annotations

import math
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from dvg.progress import Progress
from evaluation.methods import Method
from evaluation.metrics import psnr, ssim
from evaluation.protocol import align_to_ground_truth, align_to_target, warp_view


@dataclass
class Pair:
    """A source view and the target view to synthesise from it."""

    id: str
    source: np.ndarray
    """(H, W, 3) uint8."""
    target: np.ndarray
    """(H, W, 3) uint8 ground truth."""
    K: np.ndarray
    """(3, 3) intrinsics in pixels, shared by both views."""
    T: np.ndarray
    """(4, 4) source -> target camera transform."""
    offset: str
    """Which column of the table: e.g. "t=5", "t=10", "stereo"."""
    depth: np.ndarray | None = None
    """(H, W) ground-truth z-depth of the source view, when known."""
    baseline: float = 0.0
    """Camera translation |t| of the pair (for the metric-vs-baseline plot)."""
    video: str | None = None
    """The video the source view was decoded from (sidecar depth sits next to it)."""
    frame_index: int = 0
    """The source view's index among the video's decoded frames."""


@dataclass
class Sample:
    """One scored pair: metric values and, for the example grid, the images."""

    pair_id: str
    method: str
    offset: str
    metrics: dict[str, float]
    baseline: float
    hole_fraction: float
    seconds: float
    images: dict[str, np.ndarray] = field(default_factory=dict)
    depth: str = ""
    """The method's depth source (Method.depth_label)."""
    fill: str = ""
    """The method's hole filler (Method.fill_label)."""


def _to_tensor(image: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(image).permute(2, 0, 1)[None].float() / 255


def score(
    method: Method,
    pairs: Iterable[Pair],
    *,
    lpips=None,
    keep_images: int = 0,
    progress: Progress | None = None,
) -> Iterator[Sample]:
    """Run ``method`` on every pair under the protocol and yield its metrics per pair (each
    pair, scored or skipped, advances ``progress`` by one)."""
    for index, pair in enumerate(pairs):
        sample = score_pair(method, pair, lpips=lpips, keep_images=index < keep_images)
        if progress is not None:
            progress.update(advance=1, method=method.name)
        if sample is not None:
            yield sample


def score_pair(method: Method, pair: Pair, *, lpips=None, keep_images: bool = False):
    """One pair under the protocol -> Sample, or None where the method has no row (the oracle
    without ground-truth depth)."""
    start = time.perf_counter()
    if method.reads_target:
        if pair.depth is None:
            return None
        depth = pair.depth
    else:
        q = method.inverse_depth(pair.source, pair.depth, pair.video, pair.frame_index)
        if pair.depth is not None:
            depth = align_to_ground_truth(q, pair.depth)
        else:
            depth, _ = align_to_target(q, pair.source, pair.target, pair.K, pair.T)
    warped = warp_view(pair.source, depth, pair.K, pair.T)
    output = method.fill(pair.source, warped.image, warped.holes, pair.target)
    seconds = time.perf_counter() - start
    a, b = _to_tensor(output), _to_tensor(pair.target)
    values = {"psnr": float(psnr(a, b)[0]), "ssim": float(ssim(a, b)[0])}
    if lpips is not None:
        values["lpips"] = float(lpips(a, b)[0])
    images = {}
    if keep_images:
        images = {"source": pair.source, "warped": warped.image, "output": output,
                  "target": pair.target}  # fmt: skip
    return Sample(
        pair.id, method.name, pair.offset, values, pair.baseline, float(warped.holes.mean()),
        seconds, images, method.depth_label, method.fill_label,
    )  # fmt: skip


def summarise(samples: list[Sample]) -> list[dict[str, Any]]:
    """Per (method, offset): the method's depth and fill, the pair count ``n``, and for each
    metric its mean and sample standard deviation (``<metric>_std``, 0 for one pair)."""
    groups: dict[tuple[str, str], list[Sample]] = {}
    for sample in samples:
        groups.setdefault((sample.method, sample.offset), []).append(sample)
    rows = []
    for (method, offset), group in sorted(groups.items()):
        row: dict[str, Any] = {"method": method, "depth": group[0].depth, "fill": group[0].fill,
                               "offset": offset, "n": len(group)}  # fmt: skip
        for name in group[0].metrics:
            row.update(spread(name, [s.metrics[name] for s in group]))
        row["seconds_per_pair"] = float(np.mean([s.seconds for s in group]))
        rows.append(row)
    return rows


def spread(name: str, values: Iterable[float | None]) -> dict[str, float]:
    """``{name: mean, name_std: sample std}`` over the finite values (NaN when there are none)."""
    finite = np.array([v for v in values if v is not None and math.isfinite(v)], np.float64)
    if not finite.size:
        return {name: float("nan"), f"{name}_std": float("nan")}
    std = float(finite.std(ddof=1)) if finite.size > 1 else 0.0
    return {name: float(finite.mean()), f"{name}_std": std}
