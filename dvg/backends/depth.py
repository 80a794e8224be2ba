"""Depth backends: per-frame relative inverse depth for DVG (paper 3.2 uses MiDaS).

Every backend returns relative inverse depth (larger = nearer, >= 0) on the output frame grid;
the DVG step, not the backend, normalises it per clip into disparity. Registered names:
``dpt`` (MiDaS via transformers), ``depth-anything`` (Depth Anything V2), ``marigold``
(diffusers) and ``sidecar`` (precomputed depth files next to each video, in
:mod:`dvg.backends.sidecar`).
"""

from __future__ import annotations

import inspect
from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np
import torch
import torch.nn.functional as F

from dvg.backends.registry import Backend, BackendSpec, Registry
from dvg.backends.weights import diffusers_dtype, load_pretrained

# Aliases accepted for ``dpt`` models: the MiDaS checkpoints converted to transformers.
DPT_ALIASES = {
    "midas-v3-hybrid": "Intel/dpt-hybrid-midas",
    "midas-v3-large": "Intel/dpt-large",
    "midas-v3.1-beit-large-512": "Intel/dpt-beit-large-512",
}

# MiDaS preprocessing (keep the aspect ratio, sides multiples of 32, bicubic, mean = std = 0.5);
# the hub processor configs of the converted checkpoints do not all set these.
MIDAS_PROCESSOR = {
    "keep_aspect_ratio": True,
    "ensure_multiple_of": 32,
    "resample": 3,  # PIL bicubic
    "image_mean": [0.5, 0.5, 0.5],
    "image_std": [0.5, 0.5, 0.5],
}


@dataclass(frozen=True)
class DepthContext:
    """What a depth backend may need beyond the frames.

    Attributes:
        video_path: the source video (sidecar files sit next to it).
        source_indices: (F,) int64 indices of the frames among the video's native decoded frames.
        transform: the ``dvg.video.FrameTransform`` that produced the frames from native ones:
            ``apply(image, interpolation=...)``, ``scale_intrinsics(K)``, ``source_size`` and
            ``output_size`` (both (w, h)).
    """

    video_path: str
    source_indices: np.ndarray
    transform: Any


@dataclass
class DepthPrediction:
    """Per-frame depth of one chunk.

    Attributes:
        inverse_depth: (F, H, W) float32, >= 0, relative inverse depth (larger = nearer).
        metric: True when ``inverse_depth`` is exactly 1 / z in scene units (sidecar z-depth).
        focal_px: focal length in output pixels when known (sidecar camera), else None.
    """

    inverse_depth: np.ndarray
    metric: bool
    focal_px: float | None


class DepthBackend(Backend, ABC):
    """Turns RGB frames into relative inverse depth; loads its model once in ``__init__``."""

    def __init__(self, spec: BackendSpec) -> None:
        self.spec = spec
        self.model_id = self.resolve_model(spec)

    @abstractmethod
    def predict(self, frames: np.ndarray, context: DepthContext) -> DepthPrediction:
        """frames: (F, H, W, 3) uint8 RGB -> inverse depth (F, H, W) on the same grid."""


DEPTH_BACKENDS: Registry[DepthBackend] = Registry("depth")


def dpt_processor_class() -> type:
    """The PIL-based DPT image processor (transformers 5 names it ``DPTImageProcessorPil``;
    its torchvision twin would need torchvision, which this project never installs)."""
    try:
        from transformers import DPTImageProcessorPil

        return DPTImageProcessorPil
    except ImportError:  # transformers 4.x: DPTImageProcessor is the PIL one
        from transformers import DPTImageProcessor

        return DPTImageProcessor


def check_frames(frames: np.ndarray) -> np.ndarray:
    """Validate ``frames``: (F, H, W, 3) uint8, F >= 1."""
    if not isinstance(frames, np.ndarray) or frames.dtype != np.uint8:
        raise ValueError(
            f"frames must be a uint8 numpy array, got {type(frames).__name__} "
            f"{getattr(frames, 'dtype', '')}"
        )
    if frames.ndim != 4 or frames.shape[-1] != 3 or frames.shape[0] == 0:
        raise ValueError(f"frames must be (F, H, W, 3) with F >= 1, got {frames.shape}")
    return frames


class _TransformersDepth(DepthBackend):
    """A transformers depth-estimation model whose ``predicted_depth`` is relative inverse
    depth, batched over frames, resized back to the frame size."""

    weights_marker = "config.json"
    processor_defaults: ClassVar[dict] = {}

    def __init__(self, spec: BackendSpec) -> None:
        super().__init__(spec)
        self.device = spec.torch_device()
        self.dtype = spec.torch_dtype(self.device)
        overrides = {**self.processor_defaults, **dict(spec.option("processor", {}))}
        model_class = self._model_class()

        def load(source: str, **kwargs: Any) -> tuple:
            model = model_class.from_pretrained(source, **kwargs)
            processor = dpt_processor_class().from_pretrained(source, **kwargs, **overrides)
            return model, processor

        self.model, self.processor = load_pretrained(
            "depth", self.name, self.model_id, load, self.weights_marker, self.default_model
        )
        self.model.to(device=self.device, dtype=self.dtype).eval()
        # Depth Anything's metric checkpoints (depth_estimation_type "metric") predict z in
        # metres, not inverse depth: invert them, and report metric=True.
        self.metric = getattr(self.model.config, "depth_estimation_type", None) == "metric"
        self._patch: int | None = None  # set for ViT-based DPT, see _patch_grid_hook
        self._grid: tuple[int, int] | None = None
        self._patch_grid_hook()

    @staticmethod
    def _model_class() -> type:
        raise NotImplementedError

    def _patch_grid_hook(self) -> None:
        # transformers' DPT with its own ViT / ViT-hybrid encoder (MiDaS v3: dpt-hybrid-midas,
        # dpt-large) only runs at its 384 x 384 training size: the hybrid embeddings refuse
        # other sizes unless asked to interpolate the position embeddings, and the neck
        # reshapes tokens into a sqrt(N) x sqrt(N) grid unless given the patch grid. MiDaS itself
        # runs at aspect-preserving sizes (e.g. 384 x 672), so both are supplied here. The
        # backbone-based DPT (BEiT-512) and Depth Anything handle any size already.
        config = self.model.config
        if getattr(config, "model_type", None) != "dpt" or (
            config.backbone_config is not None and not config.is_hybrid
        ):
            return
        patch = config.patch_size
        self._patch = patch[0] if isinstance(patch, list | tuple) else int(patch)

        def give_grid(module: torch.nn.Module, args: tuple) -> tuple | None:
            if len(args) == 3 and args[1] is None and args[2] is None and self._grid:
                return (args[0], *self._grid)
            return None

        self.model.neck.register_forward_pre_hook(give_grid)
        embeddings = self.model.dpt.embeddings
        if "interpolate_pos_encoding" in inspect.signature(embeddings.forward).parameters:

            def interpolate(module: torch.nn.Module, args: tuple, kwargs: dict) -> tuple:
                return args, {**kwargs, "interpolate_pos_encoding": True}

            embeddings.register_forward_pre_hook(interpolate, with_kwargs=True)

    def predict(self, frames: np.ndarray, context: DepthContext) -> DepthPrediction:
        frames = check_frames(frames)
        n, h, w = frames.shape[:3]
        out = np.empty((n, h, w), np.float32)
        for start in range(0, n, self.spec.batch_size):
            batch = frames[start : start + self.spec.batch_size]
            inputs = self.processor(
                images=list(batch), return_tensors="pt", input_data_format="channels_last"
            )
            pixels = inputs["pixel_values"].to(self.device, self.dtype)
            if self._patch:
                self._grid = (pixels.shape[-2] // self._patch, pixels.shape[-1] // self._patch)
            with torch.inference_mode():
                depth = self.model(pixel_values=pixels).predicted_depth  # (B, h', w')
            # Bicubic back to the frame grid can overshoot below zero near edges: clamp.
            depth = F.interpolate(
                depth[:, None].float(), size=(h, w), mode="bicubic", align_corners=False
            )[:, 0].clamp_min(0)
            if self.metric:
                depth = torch.where(depth > 0, 1.0 / depth.clamp_min(1e-6), 0.0)
            out[start : start + len(batch)] = depth.cpu().numpy()
        return DepthPrediction(inverse_depth=out, metric=self.metric, focal_px=None)


@DEPTH_BACKENDS.register("dpt")
class DPTDepth(_TransformersDepth):
    """MiDaS (DPT) via transformers ``DPTForDepthEstimation``; the paper's depth model."""

    default_model = "Intel/dpt-hybrid-midas"
    processor_defaults: ClassVar[dict] = MIDAS_PROCESSOR

    @classmethod
    def resolve_model(cls, spec: BackendSpec) -> str:
        model = spec.model or cls.default_model
        return DPT_ALIASES.get(model, model)

    @staticmethod
    def _model_class() -> type:
        from transformers import DPTForDepthEstimation

        return DPTForDepthEstimation


@DEPTH_BACKENDS.register("depth-anything")
class DepthAnythingDepth(_TransformersDepth):
    """Depth Anything V2 via transformers ``AutoModelForDepthEstimation``."""

    default_model = "depth-anything/Depth-Anything-V2-Small-hf"

    @staticmethod
    def _model_class() -> type:
        from transformers import AutoModelForDepthEstimation

        return AutoModelForDepthEstimation


@DEPTH_BACKENDS.register("marigold")
class MarigoldDepth(DepthBackend):
    """Marigold (diffusers ``MarigoldDepthPipeline``), converted to relative inverse depth.

    Marigold predicts affine-invariant depth d in [0, 1] (0 = nearest, 1 = farthest point of
    the frame). Inverse depth is ``1 / (d + depth_offset)``: with true depth
    z = z_near + d (z_far - z_near), 1 / z is proportional to 1 / (d + z_near / (z_far - z_near)),
    so ``depth_offset`` is the assumed near / (far - near) ratio (default 0.1: far is 11x near).
    ``1 - d`` would be linear in depth and bend planes under reprojection. Pipelines saved with
    ``prediction_type="disparity"`` already give affine-invariant disparity, used as is.
    """

    default_model = "prs-eth/marigold-depth-v1-1"
    weights_marker = "model_index.json"

    def __init__(self, spec: BackendSpec) -> None:
        super().__init__(spec)
        from diffusers import MarigoldDepthPipeline

        self.device = spec.torch_device()
        self.dtype = spec.torch_dtype(self.device)
        self.steps = spec.option("steps", None)
        self.ensemble = int(spec.option("ensemble", 1))
        self.resolution = spec.option("processing_resolution", None)
        self.seed = int(spec.option("seed", 0))
        self.offset = float(spec.option("depth_offset", 0.1))
        if self.offset <= 0:
            raise ValueError(f"marigold option depth_offset must be > 0, got {self.offset}")

        def load(source: str, **kwargs: Any):
            return MarigoldDepthPipeline.from_pretrained(
                source, **diffusers_dtype(self.dtype), **kwargs
            )

        self.pipe = load_pretrained(
            "depth", self.name, self.model_id, load, self.weights_marker, self.default_model
        )
        self.pipe.to(self.device)
        self.pipe.set_progress_bar_config(disable=True)

    def predict(self, frames: np.ndarray, context: DepthContext) -> DepthPrediction:
        frames = check_frames(frames)
        n, h, w = frames.shape[:3]
        out = np.empty((n, h, w), np.float32)
        disparity = self.pipe.config.get("prediction_type") == "disparity"
        for start in range(0, n, self.spec.batch_size):
            batch = frames[start : start + self.spec.batch_size]
            images = torch.from_numpy(batch).permute(0, 3, 1, 2).float().div(255)
            # Same noise for every frame (one generator per frame and ensemble member, seeded
            # alike): reruns and any batch size give identical depth, and frames do not
            # flicker from independent noise draws.
            generators = [
                torch.Generator("cpu").manual_seed(self.seed + e)
                for _ in range(len(batch))
                for e in range(self.ensemble)
            ]
            result = self.pipe(
                images.to(self.device, self.dtype),
                num_inference_steps=self.steps,
                ensemble_size=self.ensemble,
                processing_resolution=self.resolution,
                batch_size=len(batch) * self.ensemble,
                generator=generators,
                output_type="pt",
            )
            pred = result.prediction.float()[:, 0]  # (B, H, W) in [0, 1]
            if pred.shape[-2:] != (h, w):
                pred = F.interpolate(pred[:, None], size=(h, w), mode="bilinear")[:, 0]
            inv = pred.clamp_min(0) if disparity else 1.0 / (pred.clamp(0, 1) + self.offset)
            out[start : start + len(batch)] = inv.cpu().numpy()
        return DepthPrediction(inverse_depth=out, metric=False, focal_px=None)
