"""Depth backends: per-frame relative inverse depth for DVG (paper 3.2 uses MiDaS).

Every backend returns relative inverse depth (larger = nearer, >= 0) on the output frame grid;
the DVG step, not the backend, normalises it per clip into disparity. Registered names:
``dpt`` (MiDaS via transformers), ``depth-anything`` (Depth Anything V2), ``marigold``
(diffusers) and ``sidecar`` (precomputed depth files next to each video).
"""

from __future__ import annotations

import inspect
import json
from abc import ABC, abstractmethod
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

import cv2
import numpy as np
import torch
import torch.nn.functional as F

from dvg.backends import depth_formats
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


class MissingSidecarError(FileNotFoundError):
    """No precomputed depth next to a video; the builder records ``reason`` per video."""

    reason = "missing_sidecar"


# Accepted sidecar files, in lookup order: (name pattern, content).
SIDECAR_FORMATS = (
    ("{stem}.depth.npy", "z"),
    ("{stem}.depth.npz", "z"),
    ("{stem}.invdepth.npy", "inverse"),
    ("{stem}.disparity.npy", "inverse"),
    ("{stem}.depth", "png"),
    # Relative inverse depth, any size of the video's aspect (dvg.backends.depth_formats).
    ("{stem}.invdepth", "invdepth-png"),  # what `dvg depth` writes
    ("{stem}.invdepth.npz", "inverse"),
    ("{stem}.disparity.npz", "inverse"),
    ("{stem}/" + depth_formats.IW3_CONFIG, "iw3"),  # an iw3 export of the video
)
FOLDER_KINDS = ("png", "invdepth-png")
# Kinds read by dvg.backends.depth_formats: relative inverse depth at the native size.
RELATIVE_KINDS = ("inverse", "invdepth-png", "iw3")


def _inverse_depth(raw: np.ndarray, kind: str, png_scale: float) -> np.ndarray:
    """Sidecar values -> float32 inverse depth, 0 where the value is not a finite positive
    depth; few passes, no temporaries the size of ``raw`` beyond the result."""
    if kind == "inverse":
        inv = raw.astype(np.float32)  # a copy, never the caller's (or a memory-mapped) array
        inv[~(np.isfinite(raw) & (raw > 0))] = 0
        return inv
    z = raw.astype(np.float32)
    if kind == "png":
        z *= np.float32(png_scale)  # 16-bit integers: always finite
        valid = z > 0
    else:
        valid = np.isfinite(z) & (z > 0)
    inv = np.zeros_like(z)
    np.divide(np.float32(1.0), z, out=inv, where=valid)
    return inv


@DEPTH_BACKENDS.register("sidecar")
class SidecarDepth(DepthBackend):
    """Precomputed depth stored next to each video (formats in docs/backends.md).

    z-depth files (``.depth.npy`` / ``.depth.npz`` / ``.depth/`` PNGs) become 1 / z (metric);
    ``.invdepth.npy`` / ``.disparity.npy`` are used as relative inverse depth. z <= 0 or NaN
    means "no depth" and maps to 0. Inverse depth is resampled onto the output grid with
    ``cv2.INTER_LINEAR``: inverse depth is affine in image coordinates over any plane, so linear
    interpolation is exact inside surfaces (z-depth is not), and only the one-pixel band at depth
    edges mixes values, the same band where the area-resized RGB frame mixes colours.
    """

    needs_weights = False

    def __init__(self, spec: BackendSpec) -> None:
        super().__init__(spec)
        self.model_id = "sidecar"
        directory = spec.option("dir", None)
        self.directory = Path(directory) if directory else None
        self.png_scale = float(spec.option("png_scale", 0.001))  # metres per PNG unit (mm)
        self._cached: tuple[Path, np.ndarray] | None = None  # the current video's npz array
        self._iw3: tuple[depth_formats.Iw3Export, float | None] | None = None

    def locate(self, video_path: str | Path) -> tuple[Path, str]:
        """The sidecar of ``video_path`` and its content kind ("z", "inverse", "png").

        Raises:
            MissingSidecarError: none of the accepted files exists.
        """
        video = Path(video_path)
        directory = self.directory or video.parent
        names = [pattern.format(stem=video.stem) for pattern, _ in SIDECAR_FORMATS]
        for name, (_, kind) in zip(names, SIDECAR_FORMATS, strict=True):
            path = directory / name
            if path.is_dir() if kind in FOLDER_KINDS else path.is_file():
                return path, kind
        folders = {
            pattern.format(stem=video.stem) for pattern, k in SIDECAR_FORMATS if k in FOLDER_KINDS
        }
        raise MissingSidecarError(
            f"no depth sidecar for {video}: expected one of "
            + ", ".join(n + ("/000000.png..." if n in folders else "") for n in names)
            + f" in {directory}"
        )

    def predict(self, frames: np.ndarray, context: DepthContext) -> DepthPrediction:
        frames = check_frames(frames)
        indices = np.asarray(context.source_indices, dtype=np.int64)
        if indices.shape != (frames.shape[0],):
            raise ValueError(
                f"context.source_indices must be ({frames.shape[0]},) for {frames.shape[0]} "
                f"frames, got {indices.shape}"
            )
        out_w, out_h = context.transform.output_size
        if frames.shape[1:3] != (out_h, out_w):
            raise ValueError(
                f"frames are {frames.shape[2]} x {frames.shape[1]} but the transform's output "
                f"size is {out_w} x {out_h}"
            )
        path, kind = self.locate(context.video_path)
        if kind in RELATIVE_KINDS:
            inv = self._read_relative(path, kind, indices, context)
        else:
            raw = self._read(path, kind, indices, context.transform.source_size)
            inv = _inverse_depth(raw, kind, self.png_scale)
        transform = context.transform
        size = transform.source_size
        if transform.crop == (0, 0, *size) and transform.resized_size == size == (out_w, out_h):
            resized = inv  # decoded at the source size: nothing to resample (the converter)
        else:
            resized = np.stack(
                [transform.apply(d, interpolation=cv2.INTER_LINEAR) for d in inv]
            ).astype(np.float32)
            if resized.shape[1:] != (out_h, out_w):
                raise ValueError(
                    f"transform.apply gave {resized.shape[1:]} for depth, expected {(out_h, out_w)}"
                )
            np.maximum(resized, 0, out=resized)
        focal = self._focal(context)
        return DepthPrediction(
            inverse_depth=resized, metric=kind not in RELATIVE_KINDS, focal_px=focal
        )

    def _read_relative(
        self, path: Path, kind: str, indices: np.ndarray, context: DepthContext
    ) -> np.ndarray:
        """(F, H0, W0) relative inverse depth on the native grid, 0 where not finite and > 0."""
        size = context.transform.source_size
        if kind == "invdepth-png":
            raw = depth_formats.read_inverse_depth_folder(path, indices, size)
        elif kind == "iw3":
            if self._iw3 is None or self._iw3[0].path != path:
                self._iw3 = (depth_formats.Iw3Export(path), _native_fps(context.video_path))
            export, fps = self._iw3
            raw = export.read(indices, size, fps)
        elif path.suffix == ".npz":  # compressed: read whole once per video
            if self._cached is None or self._cached[0] != path:
                self._cached = (path, depth_formats.load_inverse_array(path))
            raw = depth_formats.read_inverse_array(path, self._cached[1], indices, size)
        else:  # memory-mapped per call: pages read are released with the map (bounded RSS)
            array = depth_formats.load_inverse_array(path)
            raw = depth_formats.read_inverse_array(path, array, indices, size)
        return _inverse_depth(raw, "inverse", self.png_scale)

    def _read(
        self, path: Path, kind: str, indices: np.ndarray, source_size: tuple[int, int]
    ) -> np.ndarray:
        w0, h0 = source_size
        if kind == "png":
            return np.stack([self._read_png(path, int(i), (h0, w0)) for i in indices])
        if path.suffix == ".npz":
            if self._cached is None or self._cached[0] != path:
                with np.load(path) as archive:
                    if "depth" not in archive:
                        raise ValueError(
                            f"{path} has no array named 'depth' (keys: {', '.join(archive.files)})"
                        )
                    self._cached = (path, archive["depth"])
            array = self._cached[1]
        else:
            array = np.load(path, mmap_mode="r")  # bounded memory for long videos
        if array.ndim != 3 or array.shape[1:] != (h0, w0):
            raise ValueError(
                f"{path} must hold (N, {h0}, {w0}) depth (one map per native frame of the "
                f"{w0} x {h0} video), got shape {array.shape}"
            )
        if len(indices) and (indices.min() < 0 or indices.max() >= array.shape[0]):
            raise ValueError(
                f"{path} has {array.shape[0]} frames but frame {int(indices.max())} is needed "
                "(one depth map per native frame)"
            )
        return np.asarray(array[indices], dtype=np.float32)

    @staticmethod
    def _read_png(folder: Path, index: int, shape: tuple[int, int]) -> np.ndarray:
        path = folder / f"{index:06d}.png"
        if not path.is_file():
            raise ValueError(f"depth PNG {path} for native frame {index} is missing")
        image = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
        if image is None or image.dtype != np.uint16 or image.shape != shape:
            got = "unreadable" if image is None else f"{image.dtype} {image.shape}"
            raise ValueError(f"{path} must be a 16-bit single-channel {shape} PNG, got {got}")
        return image

    def _focal(self, context: DepthContext) -> float | None:
        video = Path(context.video_path)
        camera_path = (self.directory or video.parent) / f"{video.stem}.camera.json"
        if not camera_path.is_file():
            return None
        camera = json.loads(camera_path.read_text())
        try:
            K = np.asarray(camera["K"], dtype=np.float64)
            width, height = float(camera["width"]), float(camera["height"])
        except KeyError as err:
            raise ValueError(
                f"{camera_path} lacks the key {err} (needs width, height, K)"
            ) from None
        if K.shape != (3, 3):
            raise ValueError(f"{camera_path}: K must be 3 x 3, got {K.shape}")
        w0, h0 = context.transform.source_size
        # K is given for (width, height); bring it to the native decoded size first.
        K = np.diag([w0 / width, h0 / height, 1.0]) @ K
        return float(np.asarray(context.transform.scale_intrinsics(K))[0, 0])


def _native_fps(video_path: str | Path) -> float | None:
    """The frame rate the container states for ``video_path`` (None when unknown)."""
    from dvg.video import VideoConfig, probe_video

    try:
        config = VideoConfig(short_side=None, max_side=None, min_side=1, max_pixels=1 << 30)
        info = probe_video(video_path, config)
    except Exception:  # the decode stage reports unusable videos itself
        return None
    return info.fps or None
