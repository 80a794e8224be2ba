"""What every image benchmark shares: view pairs, scoring a method on them, per-sample rows."""

from __future__ import annotations

import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

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


def _to_tensor(image: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(image).permute(2, 0, 1)[None].float() / 255


def score(
    method: Method,
    pairs: Iterable[Pair],
    *,
    lpips=None,
    keep_images: int = 0,
) -> Iterator[Sample]:
    """Run ``method`` on every pair under the protocol and yield its metrics per pair."""
    for index, pair in enumerate(pairs):
        start = time.perf_counter()
        if method.is_oracle:
            if pair.depth is None:
                continue  # the oracle row exists only where ground truth depth does
            depth = pair.depth
        else:
            q = method.inverse_depth(pair.source, pair.depth)
            if pair.depth is not None:
                depth = align_to_ground_truth(q, pair.depth)
            else:
                depth, _ = align_to_target(q, pair.source, pair.target, pair.K, pair.T)
        warped = warp_view(pair.source, depth, pair.K, pair.T)
        output = method.fill(pair.source, warped.image, warped.holes)
        seconds = time.perf_counter() - start
        a, b = _to_tensor(output), _to_tensor(pair.target)
        values = {"psnr": float(psnr(a, b)[0]), "ssim": float(ssim(a, b)[0])}
        if lpips is not None:
            values["lpips"] = float(lpips(a, b)[0])
        images = {}
        if index < keep_images:
            images = {"source": pair.source, "warped": warped.image, "output": output,
                      "target": pair.target}  # fmt: skip
        yield Sample(
            pair.id, method.name, pair.offset, values, pair.baseline,
            float(warped.holes.mean()), seconds, images,
        )  # fmt: skip


def summarise(samples: list[Sample]) -> list[dict[str, Any]]:
    """Mean of each metric per (method, offset), with the sample count."""
    groups: dict[tuple[str, str], list[Sample]] = {}
    for sample in samples:
        groups.setdefault((sample.method, sample.offset), []).append(sample)
    rows = []
    for (method, offset), group in sorted(groups.items()):
        row: dict[str, Any] = {"method": method, "offset": offset, "n": len(group)}
        for name in group[0].metrics:
            values = np.array([s.metrics[name] for s in group], dtype=np.float64)
            finite = values[np.isfinite(values)]
            row[name] = float(finite.mean()) if finite.size else float("nan")
        row["seconds_per_pair"] = float(np.mean([s.seconds for s in group]))
        rows.append(row)
    return rows
