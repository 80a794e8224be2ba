"""The per-clip DVG step (paper 3.2): depth -> disparity -> forward splat -> inpaint -> x2 ->
backward render -> M and x~1 -> flows on the source view -> Eq. 2 refined masks.

The novel viewpoint P2 is the eye to the LEFT of the real frame x1 (docs/model.md, "Handedness"):
in training x1 is the target and x2 the reference, at inference the input (left) view is the
reference and the generated right view the target, so with x2 on the left the target always sits
to the right of its reference and the masks the model learns to fill lie on the same side of
their occluders as the holes it fills at inference.

:class:`DVGStage` is the GPU stage of the engine: it loads the three models once and maps a
decoded :class:`~dvg.video.VideoClip` to a :class:`ClipResult` of numpy arrays. It knows nothing
about executors, so the local loop and the Ray actors run the same code.
"""

from __future__ import annotations

import hashlib
import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from dvg.backends import (
    DEPTH_BACKENDS,
    FLOW_BACKENDS,
    INPAINT_BACKENDS,
    DepthBackend,
    DepthContext,
    FlowBackend,
    InpaintBackend,
)
from dvg.engine.config import BuildConfig, StereoConfig
from dvg.geometry import (
    backward_render,
    clip_flow_confidence,
    forward_render,
    inverse_depth_bounds,
    refine_occlusion_masks,
    relative_inverse_depth_to_disparity,
)
from dvg.video import VideoClip


class ClipStepError(Exception):
    """A clip the DVG step cannot process; ``reason`` is the ledger code."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason
        self.message = message


@dataclass
class StereoDraw:
    """The stereo viewpoint drawn for one clip, recorded in its metadata."""

    mode: str
    baseline: float | None
    """Scene-unit baseline (metric mode) or None."""
    max_disparity_px: float
    """Disparity span in pixels (relative mode) or the largest disparity (metric mode)."""
    convergence: float
    focal_px: float | None
    depth_bounds: tuple[float, float] | None
    """Clip-level inverse-depth quantiles used for normalisation (relative mode)."""


@dataclass
class ClipResult:
    """Everything DVG produced for one clip; arrays are numpy, frames first."""

    clip: VideoClip
    source: np.ndarray
    """(F, H, W, 3) uint8 x1, the real frames (the right eye of the pair)."""
    novel: np.ndarray
    """(F, H, W, 3) uint8 x2, the inpainted novel view (the left eye)."""
    masked: np.ndarray
    """(F, H, W, 3) uint8 x~1: x2 rendered back to x1's viewpoint, 0 inside ``mask``."""
    mask: np.ndarray
    """(F, H, W) bool M after Eq. 2 (True = pixel of x1 not visible from the novel viewpoint)."""
    mask_raw: np.ndarray
    """(F, H, W) bool M from backward rendering alone."""
    holes: np.ndarray
    """(F, H, W) bool novel-view holes that were inpainted."""
    disparity: np.ndarray
    """(F, H, W) float32 x1's disparity in pixels (x2 x = x1 x + d: x2 is the left eye)."""
    inverse_depth: np.ndarray
    """(F, H, W) float32 relative inverse depth from the depth backend."""
    stereo: StereoDraw
    models: dict[str, dict[str, str]]
    timings: dict[str, float] = field(default_factory=dict)
    """Seconds spent in depth, geometry, inpaint and flow."""


def _resolve_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(name)


def draw_seed(seed: int, key: str) -> int:
    """A per-clip seed that depends only on the configured seed and the sample key."""
    digest = hashlib.sha256(f"{seed}:{key}".encode()).digest()
    return int.from_bytes(digest[:8], "little")


def _uniform(rng: np.random.Generator, bounds: tuple[float, float]) -> float:
    low, high = bounds
    return float(low) if low == high else float(rng.uniform(low, high))


def disparity_from_depth(
    inverse_depth: torch.Tensor,
    config: StereoConfig,
    rng: np.random.Generator,
    *,
    metric: bool,
    focal_px: float | None,
) -> tuple[torch.Tensor, StereoDraw]:
    """Source-view disparity (F, 1, H, W) for a stereo viewpoint drawn for this clip.

    Relative mode normalises with quantile bounds over the whole clip, not per frame, so a
    bright object entering one frame does not rescale the depth of every other frame (the
    flicker per-frame normalisation causes).

    Args:
        inverse_depth: (F, 1, H, W) relative inverse depth of the clip.
    """
    width = inverse_depth.shape[-1]
    if config.mode == "metric":
        if not metric or focal_px is None:
            raise ClipStepError(
                "not_metric",
                "stereo.mode = 'metric' needs metric depth with known intrinsics "
                "(sidecar z-depth with a .camera.json); use stereo.mode = 'relative'",
            )
        baseline = _uniform(rng, config.baseline)
        disparity = inverse_depth * (focal_px * baseline)
        draw = StereoDraw("metric", baseline, float(disparity.max()), 0.0, focal_px, None)
        return disparity, draw
    span = _uniform(rng, config.max_disparity) * width
    # One batch element holding the whole clip gives clip-level bounds.
    low, high = inverse_depth_bounds(inverse_depth.transpose(0, 1), *config.depth_quantiles)
    frames = inverse_depth.shape[0]
    disparity = relative_inverse_depth_to_disparity(
        inverse_depth,
        span,
        convergence=config.convergence,
        bounds=(low.expand(frames), high.expand(frames)),
    )
    draw = StereoDraw(
        "relative",
        None,
        span,
        config.convergence,
        focal_px,
        (float(low[0]), float(high[0])),
    )
    return disparity, draw


def _to_tensor(frames: np.ndarray, device: torch.device) -> torch.Tensor:
    """(F, H, W, 3) uint8 -> (F, 3, H, W) float32 in [0, 1]."""
    # torch.tensor copies: frames from Ray's object store are read-only.
    return torch.tensor(frames, device=device).permute(0, 3, 1, 2).float() / 255


def _mirror(images: torch.Tensor) -> torch.Tensor:
    """Flip (..., W) tensors left-right."""
    return images.flip(-1)


def _to_uint8(images: torch.Tensor) -> np.ndarray:
    """(F, 3, H, W) float in [0, 1] -> (F, H, W, 3) uint8."""
    return (images.clamp(0, 1) * 255).round().byte().permute(0, 2, 3, 1).contiguous().cpu().numpy()


class DVGStage:
    """The GPU stage: load depth, inpainting and flow backends once, then process clips."""

    def __init__(
        self,
        config: BuildConfig,
        *,
        depth: DepthBackend | None = None,
        inpaint: InpaintBackend | None = None,
        flow: FlowBackend | None = None,
    ) -> None:
        self.config = config
        self.depth = depth or DEPTH_BACKENDS.create(config.depth)
        self.inpaint = inpaint or INPAINT_BACKENDS.create(config.inpaint)
        self.flow = flow or FLOW_BACKENDS.create(config.flow)
        # Geometry follows the depth backend's device setting.
        self.device = _resolve_device(config.depth.device)
        self.models = {
            kind: {"backend": backend.name, "model": str(backend.model_id)}
            for kind, backend in (
                ("depth", self.depth),
                ("inpaint", self.inpaint),
                ("flow", self.flow),
            )
        }

    def __call__(self, clip: VideoClip, key: str) -> ClipResult:
        return self.process(clip, key)

    @torch.inference_mode()
    def process(self, clip: VideoClip, key: str) -> ClipResult:
        """Run DVG on one clip; ``key`` seeds the stereo draw so reruns give the same data."""
        config = self.config
        timings: dict[str, float] = {}
        frames = clip.frames
        if frames.shape[0] < 2:
            raise ClipStepError(
                "too_short", f"a clip needs at least 2 frames, got {frames.shape[0]}"
            )

        start = time.perf_counter()
        context = DepthContext(
            video_path=clip.video, source_indices=clip.source_indices, transform=clip.transform
        )
        prediction = self.depth.predict(frames, context)
        inverse_depth = np.asarray(prediction.inverse_depth, dtype=np.float32)
        if inverse_depth.shape != frames.shape[:3]:
            raise ClipStepError(
                "depth_shape",
                f"depth backend {self.depth.name} returned {inverse_depth.shape}, "
                f"expected {frames.shape[:3]}",
            )
        if not np.isfinite(inverse_depth).all():
            raise ClipStepError(
                "depth_not_finite", f"depth backend {self.depth.name} returned NaN/inf"
            )
        timings["depth"] = time.perf_counter() - start

        start = time.perf_counter()
        rng = np.random.default_rng(draw_seed(config.stereo.seed, key))
        x1 = _to_tensor(frames, self.device)
        q = torch.from_numpy(inverse_depth).to(self.device)[:, None]
        disparity, draw = disparity_from_depth(
            q, config.stereo, rng, metric=prediction.metric, focal_px=prediction.focal_px
        )
        # The geometry renders a right eye; the left eye of a scene is the mirror image of the
        # right eye of the mirrored scene, so x1 and its disparity are mirrored around it.
        x1_mirrored, disparity_mirrored = _mirror(x1), _mirror(disparity)
        splat = forward_render(
            x1_mirrored,
            disparity_mirrored,
            alpha=config.stereo.alpha,
            hole_threshold=config.masks.hole_threshold,
        )
        holes = _mirror(splat.holes)[:, 0].cpu().numpy()
        splatted = _to_uint8(_mirror(splat.image))
        timings["geometry"] = time.perf_counter() - start

        start = time.perf_counter()
        novel = self.inpaint.inpaint(splatted, holes)
        timings["inpaint"] = time.perf_counter() - start

        start = time.perf_counter()
        x2 = _to_tensor(novel, self.device)
        back = backward_render(
            x1_mirrored,
            disparity_mirrored,
            _mirror(x2),
            alpha=config.stereo.alpha,
            hole_threshold=config.masks.hole_threshold,
        )
        mask_raw = _mirror(back.mask)[:, 0]
        rendered_back = _mirror(back.rendered_source)
        timings["geometry"] += time.perf_counter() - start

        mask = mask_raw
        if config.masks.refine:
            start = time.perf_counter()
            forward = self.flow.flow(frames[:-1], frames[1:])
            backward = self.flow.flow(frames[1:], frames[:-1])
            timings["flow"] = time.perf_counter() - start

            start = time.perf_counter()
            flows_forward = torch.from_numpy(np.asarray(forward, np.float32)).to(self.device)[None]
            flows_backward = torch.from_numpy(np.asarray(backward, np.float32)).to(self.device)[
                None
            ]
            confidence = clip_flow_confidence(
                flows_forward, flows_backward, motion_boundary=config.masks.motion_boundary
            )
            mask = refine_occlusion_masks(
                mask_raw[None], flows_forward, flows_backward, confidence
            )[0]
            timings["geometry"] += time.perf_counter() - start
        # x~1 (paper 3.2): "x2 is rendered back to the original viewpoint P1 via a back
        # rendering. After this, we can obtain the masked image x~1 with mask M" - blanked in the
        # refined M, which contains the back-rendered one.
        masked = rendered_back * (~mask)[:, None].to(rendered_back.dtype)

        return ClipResult(
            clip=clip,
            source=frames,
            novel=novel,
            masked=_to_uint8(masked),
            mask=mask.cpu().numpy(),
            mask_raw=mask_raw.cpu().numpy(),
            holes=holes,
            disparity=disparity[:, 0].float().cpu().numpy(),
            inverse_depth=inverse_depth,
            stereo=draw,
            models=self.models,
            timings=timings,
        )


def clip_statistics(result: ClipResult) -> dict[str, Any]:
    """Per-clip numbers for the ledger and the trainer's stereo deviation strength (Eq. 4).

    Eq. 4 is defined on latents (|z_0 - z_ref|), which only the trainer has (it measures s on
    every training sample and records its distribution for export); the data engine records the
    image-space deviation |x1 - x2| and the disparity magnitude per frame so users can filter
    clips on them without decoding anything.
    """
    source = result.source.astype(np.float32) / 255
    novel = result.novel.astype(np.float32) / 255
    deviation = np.abs(source - novel).mean(axis=(1, 2, 3))
    abs_disparity = np.abs(result.disparity).mean(axis=(1, 2))
    return {
        "disparity_min": float(result.disparity.min()),
        "disparity_max": float(result.disparity.max()),
        "disparity_mean_abs": float(abs_disparity.mean()),
        "mask_coverage": float(result.mask.mean()),
        "mask_raw_coverage": float(result.mask_raw.mean()),
        "hole_coverage": float(result.holes.mean()),
        "deviation_per_frame": [round(float(v), 6) for v in deviation],
        "disparity_mean_abs_per_frame": [round(float(v), 4) for v in abs_disparity],
        "mask_coverage_per_frame": [round(float(v), 6) for v in result.mask.mean(axis=(1, 2))],
    }
