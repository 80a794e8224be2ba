"""Depth -> disparity -> forward render of the right view (paper Fig. 3: inference warps only).

``WarpStage`` maps a window of left frames to the forward-rendered right view with its holes,
the input of both the ``warp-inpaint`` method and the SpatialDreamer pipeline. Depth comes from
a ``dvg.backends`` depth model or from user-supplied files (``depth_source``).

Disparity follows the data engine's relative mode (``dvg.engine.step.disparity_from_depth``):
inverse depth q is normalised between robust bounds (low, high quantiles) and mapped to
``d = strength * W * (n - convergence)`` pixels; the right eye sees source x at x - d. The bounds
are smoothed over time (iw3's "EMA normalize"): per frame, ``b_t = s * b_{t-1} + (1 - s) *
quantiles(q_t)`` with ``s = depth_smoothing``, restarted at hard scene cuts (same detector as
``dvg build``), so a bright object entering the frame does not pump the depth of the whole
scene, and window boundaries do not change the depth scale. Bounds are kept per frame index, so
a frame that appears in two overlapping windows gets the same disparity in both.
"""

from __future__ import annotations

import functools
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from dvg.backends import DEPTH_BACKENDS, BackendSpec, DepthBackend, DepthContext, SidecarDepth
from dvg.backends.depth_formats import IW3_CONFIG, is_inverse_depth_folder
from dvg.geometry import DEFAULT_ALPHA, forward_render, relative_inverse_depth_to_disparity
from dvg.video import FrameTransform, SceneCutDetector
from pipelines.convert.pixels import unit_floats, unit_to_bytes

QUANTILE_SAMPLES = 1 << 16  # pixels per frame the bounds are estimated from (strided subsample)


@dataclass(frozen=True)
class WarpConfig:
    """How the right view is forward-rendered from the left view and its depth.

    Attributes:
        depth: depth backend (``dvg.backends``): ``dpt``, ``depth-anything``, ``marigold`` or
            ``sidecar`` (``options={"dir": ...}`` for a folder of sidecar files).
        depth_file: an explicit depth file or PNG folder for the one input video; overrides
            ``depth`` (file naming decides its content, see :class:`DepthFile`).
        strength: disparity span (nearest minus farthest point) as a fraction of the width.
        convergence: normalised inverse depth of the screen plane (0: all in front of it).
        depth_quantiles: quantiles of inverse depth mapped to the far and near ends.
        depth_smoothing: EMA weight of the previous frame's bounds, in [0, 1); 0 = per frame.
        scene_threshold: content score starting a new scene (restarts the smoothing).
        alpha: softmax-splatting importance per pixel of disparity.
        hole_threshold: splat coverage below which a right-view pixel is a hole.
        device: torch device for the geometry ("auto": cuda when available).
        render_batch: most frames forward-rendered at once.
        render_pixels: most pixels forward-rendered at once; the softmax splat needs about
            250 bytes of temporaries per pixel, so the default (2^21, one 1080p frame) keeps
            them near 500 MB whatever the frame size.
    """

    depth: BackendSpec = field(default_factory=lambda: BackendSpec("dpt"))
    depth_file: str | None = None
    strength: float = 0.03
    convergence: float = 0.0
    depth_quantiles: tuple[float, float] = (0.02, 0.98)
    depth_smoothing: float = 0.9
    scene_threshold: float = 27.0
    alpha: float = DEFAULT_ALPHA
    hole_threshold: float = 0.5
    device: str = "auto"
    render_batch: int = 4
    render_pixels: int = 1 << 21

    def __post_init__(self) -> None:
        if not 0 <= self.strength <= 0.5:
            raise ValueError(
                f"strength must be in [0, 0.5] (fraction of width), got {self.strength}"
            )
        if not 0 <= self.convergence <= 1:
            raise ValueError(f"convergence must be in [0, 1], got {self.convergence}")
        low, high = self.depth_quantiles
        if not 0 <= low < high <= 1:
            raise ValueError(f"depth_quantiles must satisfy 0 <= low < high <= 1, got {low, high}")
        if not 0 <= self.depth_smoothing < 1:
            raise ValueError(f"depth_smoothing must be in [0, 1), got {self.depth_smoothing}")
        if not self.scene_threshold > 0 or not self.alpha > 0:
            raise ValueError(
                f"scene_threshold and alpha must be > 0, got {self.scene_threshold}, {self.alpha}"
            )
        if self.render_batch < 1 or self.render_pixels < 1:
            raise ValueError(
                "render_batch and render_pixels must be >= 1, got "
                f"{self.render_batch}, {self.render_pixels}"
            )


@dataclass
class WarpResult:
    """The forward-rendered right view of one window.

    Attributes:
        right: (F, H, W, 3) uint8 right view, holes black.
        holes: (F, H, W) bool, True where no left pixel landed (to be inpainted).
        disparity: (F, H, W) float32 left-view disparity in pixels (right x = left x - d).
    """

    right: np.ndarray
    holes: np.ndarray
    disparity: np.ndarray


class DepthFile(SidecarDepth):
    """User-supplied depth for one video from an explicit path (``--depth FILE``).

    The name says what it holds, as for sidecars (docs/backends.md): ``*.invdepth.npy`` /
    ``*.disparity.npy`` / ``*.npz`` (one array, or ``invdepth``) are relative inverse depth, as
    are a folder written by ``dvg depth`` and an iw3 export (its folder or its
    ``iw3_export.yml``); other ``.npy`` / ``.npz`` (array ``depth``) files are z-depth; any other
    folder holds 16-bit PNG z-depth ``000000.png`` ... in millimetres. Arrays are (N, H, W), one
    map per frame of the video.
    """

    def __init__(self, path: str | Path, png_scale: float = 0.001) -> None:
        super().__init__(BackendSpec("sidecar", options={"png_scale": png_scale}))
        self.path = Path(path)
        self.model_id = str(self.path)
        if not self.path.exists():
            raise FileNotFoundError(f"depth file {self.path} does not exist")
        if self.path.is_file() and self.path.suffix not in (".npy", ".npz", ".yml"):
            raise ValueError(
                f"depth file {self.path} must be .npy, .npz, an iw3_export.yml or a folder of "
                "16-bit PNGs"
            )

    def locate(self, video_path: str | Path) -> tuple[Path, str]:
        return depth_file_kind(self.path)


def depth_file_kind(path: Path) -> tuple[Path, str]:
    """(file, sidecar kind) of an explicit depth file or folder (see :class:`DepthFile`)."""
    if path.is_dir():
        if (path / IW3_CONFIG).is_file():
            return path / IW3_CONFIG, "iw3"
        return path, "invdepth-png" if is_inverse_depth_folder(path) else "png"
    if path.name == IW3_CONFIG:
        return path, "iw3"
    inverse = path.name.endswith((".invdepth.npy", ".disparity.npy", ".invdepth.npz"))
    inverse = inverse or path.name.endswith(".disparity.npz")
    if path.suffix == ".npz" and not inverse:
        with np.load(path, allow_pickle=False) as archive:
            inverse = "depth" not in archive.files
    return path, "inverse" if inverse else "z"


def depth_source(config: WarpConfig) -> DepthBackend:
    """The depth backend ``config`` asks for (loads its model)."""
    if config.depth_file is not None:
        return DepthFile(config.depth_file, float(config.depth.option("png_scale", 0.001)))
    return DEPTH_BACKENDS.create(config.depth)


def identity_transform(width: int, height: int) -> FrameTransform:
    """Decoded frames used as they are (the converter keeps the input size)."""
    size = (width, height)
    return FrameTransform(size, (0, 0, width, height), size, size)


def frame_bounds(inverse_depth: np.ndarray, quantiles: tuple[float, float]) -> np.ndarray:
    """(F, H, W) inverse depth -> (F, 2) per-frame (low, high) quantiles from a strided
    subsample of at most ``QUANTILE_SAMPLES`` pixels (exact quantiles of 1080p frames cost more
    than the render)."""
    f, h, w = inverse_depth.shape
    step = max(1, int(np.ceil(np.sqrt(h * w / QUANTILE_SAMPLES))))
    sample = inverse_depth[:, ::step, ::step].reshape(f, -1)
    return np.quantile(sample, quantiles, axis=1).T.astype(np.float64)


def _check_frames(frames: np.ndarray) -> None:
    if frames.ndim != 4 or frames.shape[-1] != 3 or frames.dtype != np.uint8:
        raise ValueError(f"frames must be (F, H, W, 3) uint8, got {frames.shape} {frames.dtype}")


class WarpStage:
    """Depth, temporally smoothed normalisation and forward render, one window at a time.

    Stateful across calls (smoothing and scene cuts): feed the windows of one video in order,
    and call ``reset()`` before the next video.
    """

    def __init__(self, config: WarpConfig, depth: DepthBackend | None = None) -> None:
        self.config = config
        self.depth = depth or depth_source(config)
        device = config.device
        self.device = torch.device(
            ("cuda" if torch.cuda.is_available() else "cpu") if device == "auto" else device
        )
        self.reset()

    def reset(self) -> None:
        """Forget the previous video (smoothing state, scene-cut detector)."""
        self._detector = SceneCutDetector(self.config.scene_threshold)
        self._bounds: OrderedDict[int, np.ndarray] = OrderedDict()  # frame index -> (2,)
        self._state: np.ndarray | None = None
        self._next_index = 0

    def depth_of(self, frames: np.ndarray, context: DepthContext) -> np.ndarray:
        """The depth stage alone: (F, H, W, 3) uint8 frames -> (F, H, W) float32 finite relative
        inverse depth. Stateless, so it can run ahead of :meth:`__call__` in another thread."""
        _check_frames(frames)
        prediction = self.depth.predict(frames, context)
        inverse_depth = np.asarray(prediction.inverse_depth, dtype=np.float32)
        if inverse_depth.shape != frames.shape[:3]:
            raise ValueError(
                f"depth backend {self.depth.name} returned {inverse_depth.shape}, "
                f"expected {frames.shape[:3]}"
            )
        # A NaN or inf makes the sum non-finite; only then is the element-wise check needed.
        if not np.isfinite(inverse_depth.sum(dtype=np.float64)) and not (
            np.isfinite(inverse_depth).all()
        ):
            raise ValueError(f"depth backend {self.depth.name} returned NaN or infinite depth")
        return inverse_depth

    def __call__(
        self, frames: np.ndarray, context: DepthContext, inverse_depth: np.ndarray | None = None
    ) -> WarpResult:
        """frames: (F, H, W, 3) uint8 left views; ``context.source_indices`` (F,) increasing
        native indices, never going back beyond frames already seen; ``inverse_depth``: the
        window's :meth:`depth_of` when already computed -> :class:`WarpResult`."""
        parts = [job() for job in self.batches(frames, context, inverse_depth)]
        return WarpResult(
            right=np.concatenate([p.right for p in parts]),
            holes=np.concatenate([p.holes for p in parts]),
            disparity=np.concatenate([p.disparity for p in parts]),
        )

    def batches(
        self, frames: np.ndarray, context: DepthContext, inverse_depth: np.ndarray | None = None
    ) -> list[Callable[[], WarpResult]]:
        """The window's render batches as jobs, in order. The stateful part (depth bounds
        smoothed over time, scene cuts) is done here, at once; the jobs are independent of each
        other and of this stage's state, so they may run in any thread, concurrently."""
        _check_frames(frames)
        if inverse_depth is None:
            inverse_depth = self.depth_of(frames, context)
        indices = np.asarray(context.source_indices, dtype=np.int64)
        bounds = self._smoothed_bounds(frames, inverse_depth, indices)

        n, h, w = inverse_depth.shape
        step = max(1, min(self.config.render_batch, self.config.render_pixels // (h * w)))
        return [
            functools.partial(
                self._render,
                frames[s : s + step],
                inverse_depth[s : s + step],
                bounds[s : s + step],
            )
            for s in range(0, n, step)
        ]

    @torch.inference_mode()
    def _render(self, frames: np.ndarray, inverse_depth: np.ndarray, bounds: np.ndarray):
        """One render batch: (B, H, W, 3) uint8, (B, H, W) inverse depth, (B, 2) bounds."""
        w = inverse_depth.shape[2]
        q = torch.from_numpy(inverse_depth).to(self.device)[:, None]
        b = torch.from_numpy(bounds).to(self.device, torch.float32)
        d = relative_inverse_depth_to_disparity(
            q, self.config.strength * w, convergence=self.config.convergence,
            bounds=(b[:, 0], b[:, 1]),
        )  # fmt: skip
        # Converted in the frames' own (B, H, W, 3) layout and viewed as (B, 3, H, W): the same
        # values as permuting first, without a strided copy (3x faster at 1080p). On the CPU
        # one fused pass each way (pipelines.convert.pixels) gives torch's values bitwise.
        on_cpu = self.device.type == "cpu"
        if on_cpu:
            image = torch.from_numpy(unit_floats(frames)).permute(0, 3, 1, 2)
        else:
            image = torch.from_numpy(frames).to(self.device).float().div_(255).permute(0, 3, 1, 2)
        splat = forward_render(
            image, d, alpha=self.config.alpha, hole_threshold=self.config.hole_threshold
        )
        rendered = splat.image.permute(0, 2, 3, 1)
        if on_cpu:
            right = unit_to_bytes(rendered.numpy())
        else:  # in place on the render's own tensor: the same values as out-of-place ops
            right = rendered.clamp_(0, 1).mul_(255).round_().byte().cpu().numpy()
        return WarpResult(
            right=np.ascontiguousarray(right),
            holes=splat.holes[:, 0].cpu().numpy(),
            disparity=d[:, 0].float().cpu().numpy(),
        )

    def _smoothed_bounds(
        self, frames: np.ndarray, inverse_depth: np.ndarray, indices: np.ndarray
    ) -> np.ndarray:
        """(F, 2) bounds per frame: cached for frames seen before, EMA for new ones."""
        raw = frame_bounds(inverse_depth, self.config.depth_quantiles)
        s = self.config.depth_smoothing
        out = np.empty_like(raw)
        for i, index in enumerate(indices.tolist()):
            if index in self._bounds:
                out[i] = self._bounds[index]
                continue
            if index < self._next_index:  # gaps are fine (trimmed or dropped frames)
                raise ValueError(
                    f"frames must arrive in order: expected frame {self._next_index} or later, "
                    f"got {index}"
                )
            cut = self._detector.update(np.ascontiguousarray(frames[i]))
            if self._state is None or cut:
                self._state = raw[i].copy()
            else:
                self._state = s * self._state + (1 - s) * raw[i]
            out[i] = self._state
            self._bounds[index] = self._state.copy()
            self._next_index = index + 1
        # Only the overlap with the next window can be asked for again.
        while len(self._bounds) > max(len(indices), 1):
            self._bounds.popitem(last=False)
        return out
