"""The evaluation protocol: how a source view, a depth and a relative pose become a target view.

Every method is scored the same way: its depth (an oracle, a depth model, or ground truth
with unknown scale) is brought to the scene's metric scale by one documented rule, the source
view is forward-warped to the target camera with softmax splatting, and only then does the
method fill the disoccluded holes. The rules (docs/evaluation.md):

* **Ground-truth depth available** (synthetic): the predicted relative inverse depth q is
  aligned to the true inverse depth by least squares, ``1/z ~ s q + t`` (the MiDaS protocol).
* **No ground truth** (RealEstate10K, SfM poses of unknown scale): the scale s of
  ``1/z = s q / median(q)`` is chosen from a fixed log-spaced grid to minimise the mean
  absolute photometric error of the warped source against the target on covered pixels. This
  uses the target, so it is an upper bound on what a method could do unaided; it is applied
  identically to every method, which is what makes the rows comparable.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from dvg.geometry import reprojection_flow, softmax_splat

SCALE_GRID = tuple(float(s) for s in np.geomspace(0.05, 20.0, 41))
"""Candidate scales of the median-normalised inverse depth (RealEstate10K protocol)."""

WARP_SHARPNESS = 50.0
"""Softmax importance per unit of -log(target depth): a surface 10% nearer weighs 100x more."""


@dataclass
class Warped:
    image: np.ndarray
    """(H, W, 3) uint8 source view forward-warped to the target camera (0 in holes)."""
    holes: np.ndarray
    """(H, W) bool, target pixels no source pixel reaches."""


def warp_view(source: np.ndarray, depth: np.ndarray, K: np.ndarray, T: np.ndarray) -> Warped:
    """Forward-warp ``source`` (H, W, 3) uint8 with z-depth (H, W) by the pose T (4, 4).

    ``T`` maps source-camera points to target-camera points (X_tgt = R X_src + t); ``K`` is
    (3, 3) in pixels, shared by both cameras.
    """
    if source.ndim != 3 or source.shape[2] != 3 or depth.shape != source.shape[:2]:
        raise ValueError(
            f"source (H, W, 3) and depth (H, W) must match, got {source.shape}, {depth.shape}"
        )
    if not np.isfinite(depth).all() or (depth <= 0).any():
        raise ValueError("depth must be finite and > 0")
    image = torch.from_numpy(source).permute(2, 0, 1)[None].float() / 255
    z = torch.from_numpy(depth.astype(np.float32))[None, None]
    K_t = torch.from_numpy(np.asarray(K, np.float32))[None]
    T_t = torch.from_numpy(np.asarray(T, np.float32))[None]
    reprojection = reprojection_flow(z, K_t, T_t)
    importance = -WARP_SHARPNESS * reprojection.depth.clamp_min(1e-6).log()
    splat = softmax_splat(image, reprojection.flow, importance, source_mask=reprojection.in_front)
    warped = (splat.image[0].clamp(0, 1) * 255).round().byte().permute(1, 2, 0).numpy()
    holes = splat.holes[0, 0].numpy()
    warped = np.where(holes[..., None], 0, warped).astype(np.uint8)
    return Warped(np.ascontiguousarray(warped), holes)


def align_to_ground_truth(inverse_depth: np.ndarray, depth: np.ndarray) -> np.ndarray:
    """Least-squares ``1/z ~ s q + t`` over all pixels; returns the aligned z-depth (H, W)."""
    q = inverse_depth.astype(np.float64).ravel()
    target = 1.0 / depth.astype(np.float64).ravel()
    design = np.stack([q, np.ones_like(q)], axis=1)
    (scale, shift), *_ = np.linalg.lstsq(design, target, rcond=None)
    aligned = scale * inverse_depth + shift
    floor = 1.0 / (depth.max() * 10)  # never behind ten times the farthest true point
    return (1.0 / np.maximum(aligned, floor)).astype(np.float32)


def align_to_target(
    inverse_depth: np.ndarray,
    source: np.ndarray,
    target: np.ndarray,
    K: np.ndarray,
    T: np.ndarray,
    grid: tuple[float, ...] = SCALE_GRID,
) -> tuple[np.ndarray, float]:
    """Photometric scale fit (no ground-truth depth); returns (z-depth, chosen scale)."""
    q = np.maximum(inverse_depth.astype(np.float64), 0)
    median = float(np.median(q[q > 0])) if (q > 0).any() else 1.0
    q = np.maximum(q / median, 1e-3)
    best, best_error = grid[0], np.inf
    for scale in grid:
        warped = warp_view(source, (1.0 / (scale * q)).astype(np.float32), K, T)
        covered = ~warped.holes
        if covered.mean() < 0.2:  # a scale that throws the view out of frame is not a fit
            continue
        error = np.abs(warped.image.astype(np.float32) - target)[covered].mean()
        if error < best_error:
            best, best_error = scale, error
    return (1.0 / (best * q)).astype(np.float32), best
