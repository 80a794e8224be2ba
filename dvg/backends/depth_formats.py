"""Compact and foreign depth files: what ``dvg depth`` writes and what other tools export.

Three layouts hold **relative inverse depth** (larger = nearer) for a video, one map per frame,
at any size with the video's aspect ratio (maps are resized to the video's native size with
``cv2.INTER_LINEAR`` when read):

- ``<stem>.invdepth/``: the folder ``dvg depth`` writes. ``000000.png``, ``000001.png``, ... (the
  native frame index, 6 digits) are 16-bit grayscale PNGs; each holds its own scale in a PNG
  text chunk ``dvg:inverse_depth_scale``: inverse depth = value x scale. A frame's scale is its
  maximum / 65535, so every frame uses the full 16 bits and the values stay comparable across
  frames. ``depth.json`` is written last (backend, model, frame count, sizes): its presence
  marks a finished video.
- an iw3 export (nagadomi/nunif ``iw3 --export`` / "Export disparity"): a folder holding
  ``iw3_export.yml`` (``type: video``, ``fps``, ``depth_dir``, ``mapper``, ``skip_mapper``) and
  ``depth/00000000.png`` ... (8-digit frame index of iw3's output stream, 16-bit, per-frame
  normalised 0 = farthest, 65535 = nearest). The recorded mapper (``none``, ``pow2``,
  ``softplus``, ``softplus2``) is applied unless ``skip_mapper`` says iw3 already did.
- ``.npz`` / ``.npy`` arrays of shape (N, H, W) of any float or integer dtype (float16 halves
  the size of float32); an ``.npz`` holds one array, or several with one named ``invdepth``.

Readers return float32 inverse depth on the video's native grid; a file that exists but cannot
be used raises ``ValueError`` naming it. Nothing here unpickles (``allow_pickle=False``).
"""

from __future__ import annotations

import json
import math
import os
import zipfile
from collections.abc import Callable
from fractions import Fraction
from pathlib import Path

import cv2
import numpy as np

SCALE_KEY = "dvg:inverse_depth_scale"
DONE_FILE = "depth.json"
FORMAT_NAME = "dvg-inverse-depth-png-v1"
IW3_CONFIG = "iw3_export.yml"
UINT16_MAX = 65535
# Relative difference of aspect ratios accepted when a map is resized to the video's size.
ASPECT_TOLERANCE = 0.03


def frame_png_name(index: int) -> str:
    """``000042.png``: the file of native frame ``index`` in a ``.invdepth`` folder."""
    return f"{index:06d}.png"


def write_inverse_depth_png(path: str | Path, inverse_depth: np.ndarray) -> float:
    """Write one (H, W) map of inverse depth (>= 0, finite) as a 16-bit PNG with its scale.

    The file appears whole or not at all (written to ``*.tmp`` and renamed). Returns the scale.
    """
    from PIL import Image, PngImagePlugin

    inv = np.asarray(inverse_depth, dtype=np.float32)
    if inv.ndim != 2 or not np.isfinite(inv).all() or (inv < 0).any():
        raise ValueError(
            f"inverse depth for {path} must be a finite (H, W) map >= 0, got shape {inv.shape}"
        )
    peak = float(inv.max()) if inv.size else 0.0
    scale = peak / UINT16_MAX if peak > 0 else 0.0
    values = np.zeros(inv.shape, np.uint16) if scale == 0 else np.rint(inv / scale)
    info = PngImagePlugin.PngInfo()
    info.add_text(SCALE_KEY, repr(scale))
    path = Path(path)
    temporary = path.with_name(path.name + ".tmp")
    image = Image.fromarray(values.astype(np.uint16))
    image.save(temporary, format="PNG", pnginfo=info)
    os.replace(temporary, path)
    return scale


def read_inverse_depth_png(path: str | Path) -> np.ndarray:
    """(H, W) float32 inverse depth from a PNG written by :func:`write_inverse_depth_png`."""
    from PIL import Image

    path = Path(path)
    if not path.is_file():
        raise ValueError(f"depth PNG {path} is missing")
    try:
        with Image.open(path) as image:
            text = dict(getattr(image, "text", {}) or {})
            values = np.asarray(image)
    except OSError as err:
        raise ValueError(f"{path} is not a readable PNG ({err})") from None
    if SCALE_KEY not in text:
        raise ValueError(f"{path} has no {SCALE_KEY} text chunk (not written by `dvg depth`)")
    try:
        scale = float(text[SCALE_KEY])
    except ValueError:
        raise ValueError(f"{path}: {SCALE_KEY} is not a number: {text[SCALE_KEY]!r}") from None
    if values.ndim != 2 or not math.isfinite(scale) or scale < 0:
        raise ValueError(f"{path} must be a single-channel 16-bit PNG with a scale >= 0")
    return values.astype(np.float32) * np.float32(scale)


def is_inverse_depth_folder(path: Path) -> bool:
    """True for a folder ``dvg depth`` writes (its done file, or a first frame with a scale)."""
    if not path.is_dir():
        return False
    if (path / DONE_FILE).is_file():
        return True
    first = path / frame_png_name(0)
    if not first.is_file():
        return False
    from PIL import Image

    try:
        with Image.open(first) as image:
            return SCALE_KEY in (getattr(image, "text", {}) or {})
    except OSError:
        return False


def fit_to(depth: np.ndarray, size: tuple[int, int], origin: Path) -> np.ndarray:
    """Resize an (H, W) inverse-depth map to ``size`` = (width, height) with ``INTER_LINEAR``
    (exact inside planes for inverse depth); ValueError when the aspect ratios differ."""
    w0, h0 = size
    h, w = depth.shape
    if (h, w) == (h0, w0):
        return depth
    if abs((w / h) / (w0 / h0) - 1) > ASPECT_TOLERANCE:
        raise ValueError(
            f"{origin}: a {w} x {h} depth map cannot be stretched onto the {w0} x {h0} video "
            "(another aspect ratio: is it the depth of another video?)"
        )
    return cv2.resize(depth, (w0, h0), interpolation=cv2.INTER_LINEAR)


def read_inverse_depth_folder(
    folder: Path, indices: np.ndarray, size: tuple[int, int]
) -> np.ndarray:
    """(F, H0, W0) float32 inverse depth of native frames ``indices`` from a ``.invdepth``
    folder, at ``size`` = (W0, H0)."""
    maps = [
        fit_to(read_inverse_depth_png(folder / frame_png_name(int(i))), size, folder)
        for i in indices
    ]
    return np.stack(maps).astype(np.float32, copy=False)


def _softplus01(x: np.ndarray) -> np.ndarray:
    return np.log1p(np.exp(x * 12.0 - 6.0)) / 6.0


# iw3's depth mappers (iw3/mapper.py): normalised depth in [0, 1] -> the disparity it warps by.
IW3_MAPPERS: dict[str, Callable[[np.ndarray], np.ndarray]] = {
    "none": lambda x: x,
    "pow2": lambda x: x**2,
    "softplus": _softplus01,
    "softplus2": lambda x: _softplus01(x) ** 2,
}


class Iw3Export:
    """An iw3 video export: ``iw3_export.yml`` and its ``depth/`` folder of 16-bit PNGs.

    iw3 numbers its frames in its own output stream (the video's frames at ``fps``, which
    iw3 caps with ``--max-fps``): native frame i at ``video_fps`` is export frame
    ``round(i * fps / video_fps)``.
    """

    def __init__(self, config_path: Path) -> None:
        import yaml

        self.path = Path(config_path)
        try:
            config = yaml.safe_load(self.path.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, yaml.YAMLError) as err:
            raise ValueError(f"{self.path}: not a readable iw3 export config ({err})") from None
        if not isinstance(config, dict) or config.get("type") != "video":
            raise ValueError(f"{self.path}: expected an iw3 video export (type: video)")
        self.depth_dir = self.path.parent / str(config.get("depth_dir") or "depth")
        if not self.depth_dir.is_dir():
            raise ValueError(f"{self.path}: its depth folder {self.depth_dir} does not exist")
        self.fps = _parse_fps(config.get("fps"), self.path)
        mapper = str(config.get("mapper") or "none")
        if config.get("skip_mapper"):
            mapper = "none"  # "Export disparity": iw3 applied it before writing
        if mapper not in IW3_MAPPERS:
            raise ValueError(
                f"{self.path}: unknown iw3 mapper {mapper!r}; known: {', '.join(IW3_MAPPERS)}"
            )
        self.mapper = mapper

    def frame_index(self, native_index: int, video_fps: float | None) -> int:
        if not video_fps or self.fps is None or abs(self.fps - video_fps) < 1e-3 * video_fps:
            return native_index
        return round(native_index * self.fps / video_fps)

    def read(
        self, indices: np.ndarray, size: tuple[int, int], video_fps: float | None
    ) -> np.ndarray:
        """(F, H0, W0) float32: the mapped depth of native frames ``indices``."""
        maps = []
        for i in indices:
            path = self.depth_dir / f"{self.frame_index(int(i), video_fps):08d}.png"
            image = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
            if image is None:
                raise ValueError(f"iw3 depth {path} for native frame {int(i)} is missing")
            if image.ndim == 3:  # saved as RGB(A) gray: take one channel
                image = image[..., 0]
            peak = 65535.0 if image.dtype == np.uint16 else 255.0
            normalised = image.astype(np.float32) / np.float32(peak)
            mapped = IW3_MAPPERS[self.mapper](normalised).astype(np.float32)
            maps.append(fit_to(mapped, size, path))
        return np.stack(maps)


def _parse_fps(value: object, origin: Path) -> float | None:
    if value is None:
        return None
    try:
        fps = float(Fraction(str(value)))
    except (ValueError, ZeroDivisionError):
        raise ValueError(f"{origin}: fps {value!r} is not a number or fraction") from None
    return fps if fps > 0 else None


def load_inverse_array(path: Path) -> np.ndarray:
    """The (N, H, W) inverse-depth array of an ``.npz`` (one array, or the one named
    ``invdepth``) or an ``.npy`` (memory-mapped); ValueError naming the file otherwise."""
    try:
        if path.suffix == ".npz":
            with np.load(path, allow_pickle=False) as archive:
                names = archive.files
                name = "invdepth" if "invdepth" in names else names[0] if len(names) == 1 else None
                array = None if name is None else archive[name]
        else:
            names, array = [], np.load(path, mmap_mode="r", allow_pickle=False)
    except (OSError, EOFError, ValueError, zipfile.BadZipFile) as err:
        # ValueError: e.g. pickled object arrays, which are never loaded
        raise ValueError(f"{path}: cannot be read as a numpy array file ({err})") from None
    if array is None:
        raise ValueError(
            f"{path} holds several arrays ({', '.join(names)}) and none is named 'invdepth'"
        )
    if array.dtype.kind not in "fiu" or array.ndim != 3:
        raise ValueError(
            f"{path} must hold an (N, H, W) array of numbers, got {array.dtype} {array.shape}"
        )
    return array


def read_inverse_array(path: Path, array: np.ndarray, indices: np.ndarray, size) -> np.ndarray:
    """(F, H0, W0) float32 frames ``indices`` of ``array`` (loaded from ``path``), resized to
    ``size`` = (W0, H0) when stored smaller."""
    if len(indices) and (indices.min() < 0 or indices.max() >= array.shape[0]):
        raise ValueError(
            f"{path} has {array.shape[0]} frames but frame {int(indices.max())} is needed "
            "(one depth map per native frame)"
        )
    return np.stack(
        [fit_to(np.asarray(array[int(i)], dtype=np.float32), size, path) for i in indices]
    )


def write_done(folder: Path, record: dict) -> None:
    """Write ``depth.json`` (atomically): the folder is complete."""
    temporary = folder / (DONE_FILE + ".tmp")
    temporary.write_text(json.dumps({"format": FORMAT_NAME, **record}, indent=1))
    os.replace(temporary, folder / DONE_FILE)
