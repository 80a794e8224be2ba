"""The ``sidecar`` depth backend: precomputed depth (and camera) files next to each video.

Lookup (docs/backends.md): a video's sidecars are named after its file name
(``clip.mkv.depth.npy``) or, failing that, its stem (``clip.depth.npy``); a stem sidecar
shared by two videos of the same stem (``clip.mp4`` and ``clip.mkv``) is refused rather than
given to either. Names that would pass the 255-byte file-name limit are hashed
(:func:`sidecar_name`). Arrays are read with ``allow_pickle=False``; a sidecar that exists but
cannot be used raises :class:`SidecarError` naming the file.
"""

from __future__ import annotations

import functools
import hashlib
import json
import os
import stat
import zipfile
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

import cv2
import numpy as np

from dvg.backends import depth_formats
from dvg.backends.depth import (
    DEPTH_BACKENDS,
    DepthBackend,
    DepthContext,
    DepthPrediction,
    check_frames,
)
from dvg.backends.registry import BackendSpec


class MissingSidecarError(FileNotFoundError):
    """No precomputed depth next to a video; the builder records ``reason`` per video."""

    reason = "missing_sidecar"


class SidecarError(ValueError):
    """A sidecar that exists but cannot be used (malformed JSON, wrong array shape or dtype,
    pickled objects); the message starts with the file. The builder records ``reason``."""

    reason = "bad_sidecar"


# Accepted sidecar files, in lookup order: (suffix after the video's name or stem, content).
SIDECAR_FORMATS = (
    (".depth.npy", "z"),
    (".depth.npz", "z"),
    (".invdepth.npy", "inverse"),
    (".disparity.npy", "inverse"),
    (".depth", "png"),
    # Relative inverse depth, any size of the video's aspect (dvg.backends.depth_formats).
    (".invdepth", "invdepth-png"),  # what `dvg depth` writes
    (".invdepth.npz", "inverse"),
    (".disparity.npz", "inverse"),
    ("/" + depth_formats.IW3_CONFIG, "iw3"),  # an iw3 export of the video (a folder)
)
FOLDER_SUFFIXES = (".depth", ".invdepth")
# Kinds read by dvg.backends.depth_formats: relative inverse depth at the native size.
RELATIVE_KINDS = ("inverse", "invdepth-png", "iw3")
CAMERA_SUFFIX = ".camera.json"
NAME_MAX = 255  # bytes in one file name on Linux, macOS and Windows file systems
_HASHED_HEAD = 128  # bytes of the video's name kept in a hashed sidecar name


def sidecar_name(base: str, suffix: str) -> str:
    """The file name of the sidecar ``suffix`` of a video named or stemmed ``base``.

    ``base + suffix`` when it fits the 255-byte file-name limit; otherwise (a long video name)
    ``<first 128 bytes of base>~<16 hex digits of sha256(base)><suffix>``, so the name can
    exist. Bytes are those of ``os.fsencode``.
    """
    name = base + suffix
    if len(os.fsencode(name)) <= NAME_MAX:
        return name
    raw = os.fsencode(base)
    digest = hashlib.sha256(raw).hexdigest()[:16]
    return os.fsdecode(raw[:_HASHED_HEAD]) + f"~{digest}{suffix}"


def _sidecar_bases(video: Path) -> list[str]:
    """The names a video's sidecars may start with, most specific first: the file name
    (``clip.mkv``), then the stem (``clip``)."""
    return [video.name] if video.stem == video.name else [video.name, video.stem]


def _same_stem_videos(video: Path) -> list[str]:
    """Other video files in ``video``'s folder with the same stem (``clip.mp4`` next to
    ``clip.mkv``): a sidecar named by the stem is then ambiguous."""
    from dvg.video import VIDEO_EXTENSIONS

    found = []
    for ext in sorted(VIDEO_EXTENSIONS):
        for variant in {ext, ext.upper()}:
            other = video.with_name(video.stem + variant)
            if other.name != video.name and _exists(other, folder=False):
                found.append(other.name)
    return found


def _exists(path: Path, folder: bool) -> bool:
    try:
        info = os.stat(path)
    except OSError:  # missing, or a path past the system limits
        return False
    return stat.S_ISDIR(info.st_mode) if folder else stat.S_ISREG(info.st_mode)


def find_sidecar(video_path: str | Path, directory: Path | None, suffixes: Sequence[str]):
    """``(path, index into suffixes)`` of the first sidecar of a video, or None.

    Lookup order: every suffix after the video's file name (``clip.mkv.depth.npy``), then every
    suffix after its stem (``clip.depth.npy``). A stem sidecar is shared by all videos of that
    stem in the folder, so when ``clip.mp4`` and ``clip.mkv`` both exist it is refused
    (SidecarError naming both) rather than given to either.
    """
    video = Path(video_path)
    directory = directory or video.parent
    for level, base in enumerate(_sidecar_bases(video)):
        for index, suffix in enumerate(suffixes):
            path = directory / sidecar_name(base, suffix)
            if _exists(path, folder=suffix in FOLDER_SUFFIXES) or _exists(path, folder=False):
                siblings = _same_stem_videos(video) if level > 0 else []
                if siblings:
                    raise SidecarError(
                        f"{path}: shared by {video.name} and {', '.join(siblings)} (same stem), "
                        f"so it is not used for either; name it "
                        f"{sidecar_name(video.name, suffix)} for {video.name}"
                    )
                return path, index
    return None


def _inverse_depth(raw: np.ndarray, kind: str, png_scale: float) -> np.ndarray:
    """Sidecar values -> float32 inverse depth, 0 where the value is not a finite positive
    depth; few passes, no temporaries the size of ``raw`` beyond the result."""
    if kind == "inverse":
        inv = raw.astype(np.float32)  # a copy, never the caller's (or a memory-mapped) array
        inv[~(np.isfinite(raw) & (raw > 0))] = 0
        return inv
    if kind == "png":  # 16-bit integers: one lookup instead of five full-frame passes
        return _png_inverse_table(png_scale)[raw]
    z = raw.astype(np.float32)
    inv = np.zeros_like(z)
    np.divide(np.float32(1.0), z, out=inv, where=np.isfinite(z) & (z > 0))
    return inv


@functools.lru_cache(maxsize=8)
def _png_inverse_table(png_scale: float) -> np.ndarray:
    """(65536,) float32: the inverse depth of every 16-bit PNG value, computed with the same
    float32 operations as the other kinds (value x scale, then 1 / z; 0 where z is not > 0)."""
    z = np.arange(65536, dtype=np.float32) * np.float32(png_scale)
    inv = np.zeros_like(z)
    np.divide(np.float32(1.0), z, out=inv, where=z > 0)
    inv.flags.writeable = False
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
        """The sidecar of ``video_path`` and its content kind ("z", "inverse", "png"), by the
        lookup order of :func:`find_sidecar`.

        Raises:
            MissingSidecarError: none of the accepted files exists.
            SidecarError: only a stem sidecar shared by same-stem videos exists.
        """
        video = Path(video_path)
        suffixes = [suffix for suffix, _ in SIDECAR_FORMATS]
        found = find_sidecar(video, self.directory, suffixes)
        if found is not None:
            return found[0], SIDECAR_FORMATS[found[1]][1]
        names = [
            sidecar_name(base, suffix) + ("/000000.png..." if suffix in FOLDER_SUFFIXES else "")
            for base in _sidecar_bases(video)
            for suffix in suffixes
        ]
        raise MissingSidecarError(
            f"no depth sidecar for {video}: expected one of {', '.join(names)} in "
            f"{self.directory or video.parent}"
        )

    def check(self, video_path: str | Path) -> tuple[Path, str]:
        """Locate the sidecars of ``video_path`` and check that they can be read (array header,
        no pickled objects, the camera JSON), before any frame is decoded.

        Raises:
            MissingSidecarError: no depth sidecar.
            SidecarError: one exists but is unusable; the message names the file.
        """
        path, kind = self.locate(video_path)
        if kind == "iw3":
            with _format_errors():
                depth_formats.Iw3Export(path)
        elif kind not in ("png", "invdepth-png"):
            if path.suffix == ".npz":
                with _reading(path), np.load(path, allow_pickle=False) as archive:
                    name = "depth" if kind == "z" else _inverse_member(archive.files)
                    if name not in archive.files:
                        raise SidecarError(
                            f"{path} has no array named {name!r} (keys: {', '.join(archive.files)})"
                        )
                    with archive.zip.open(f"{name}.npy") as member:
                        header = _npy_header(member)
            else:
                with _reading(path), open(path, "rb") as handle:
                    header = _npy_header(handle)
            shape, dtype = header
            if dtype.hasobject or dtype.kind not in "fiu" or len(shape) != 3:
                raise SidecarError(
                    f"{path} must hold an (N, H, W) array of numbers, got {dtype} {shape}"
                    + (" (pickled Python objects are never loaded)" if dtype.hasobject else "")
                )
        self._camera(Path(video_path))
        return path, kind

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
            with _format_errors():
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
                with _reading(path), np.load(path, allow_pickle=False) as archive:
                    if "depth" not in archive:
                        raise SidecarError(
                            f"{path} has no array named 'depth' (keys: {', '.join(archive.files)})"
                        )
                    self._cached = (path, archive["depth"])
            array = self._cached[1]
        else:
            with _reading(path):  # memory-mapped: bounded memory for long videos
                array = np.load(path, mmap_mode="r", allow_pickle=False)
        if array.ndim != 3 or array.shape[1:] != (h0, w0):
            raise SidecarError(
                f"{path} must hold (N, {h0}, {w0}) depth (one map per native frame of the "
                f"{w0} x {h0} video), got shape {array.shape}"
            )
        if len(indices) and (indices.min() < 0 or indices.max() >= array.shape[0]):
            raise SidecarError(
                f"{path} has {array.shape[0]} frames but frame {int(indices.max())} is needed "
                "(one depth map per native frame)"
            )
        return np.asarray(array[indices], dtype=np.float32)

    @staticmethod
    def _read_png(folder: Path, index: int, shape: tuple[int, int]) -> np.ndarray:
        path = folder / f"{index:06d}.png"
        if not path.is_file():
            raise SidecarError(f"depth PNG {path} for native frame {index} is missing")
        image = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
        if image is None or image.dtype != np.uint16 or image.shape != shape:
            got = "unreadable" if image is None else f"{image.dtype} {image.shape}"
            raise SidecarError(f"{path} must be a 16-bit single-channel {shape} PNG, got {got}")
        return image

    def _camera(self, video: Path) -> tuple[Path, np.ndarray, float, float] | None:
        """``(path, K, width, height)`` of the video's ``.camera.json`` (same lookup order as
        the depth), or None; SidecarError names the file when it cannot be used."""
        found = find_sidecar(video, self.directory, [CAMERA_SUFFIX])
        if found is None:
            return None
        path = found[0]
        try:
            camera = json.loads(path.read_bytes())
        except (OSError, ValueError) as err:  # ValueError: JSONDecodeError, UnicodeDecodeError
            raise SidecarError(f"{path}: not a readable JSON camera file ({err})") from None
        if not isinstance(camera, dict):
            raise SidecarError(f"{path}: must be a JSON object with width, height and K")
        try:
            K = np.asarray(camera["K"], dtype=np.float64)
            width, height = float(camera["width"]), float(camera["height"])
        except KeyError as err:
            raise SidecarError(f"{path} lacks the key {err} (needs width, height, K)") from None
        except (TypeError, ValueError) as err:
            raise SidecarError(f"{path}: width, height and K must be numbers ({err})") from None
        if K.shape != (3, 3) or not np.isfinite(K).all() or not width > 0 < height:
            raise SidecarError(
                f"{path}: K must be a finite 3 x 3 matrix and width, height positive, got K "
                f"of shape {K.shape}, width {width}, height {height}"
            )
        return path, K, width, height

    def _focal(self, context: DepthContext) -> float | None:
        camera = self._camera(Path(context.video_path))
        if camera is None:
            return None
        _, K, width, height = camera
        w0, h0 = context.transform.source_size
        # K is given for (width, height); bring it to the native decoded size first.
        K = np.diag([w0 / width, h0 / height, 1.0]) @ K
        return float(np.asarray(context.transform.scale_intrinsics(K))[0, 0])


def _inverse_member(names: Sequence[str]) -> str:
    """The array of an inverse-depth ``.npz``: ``invdepth``, or its only array."""
    return "invdepth" if "invdepth" in names or len(names) != 1 else names[0]


@contextmanager
def _format_errors() -> Iterator[None]:
    """depth_formats' ValueErrors (they name the file) as SidecarError, the ledger's
    ``bad_sidecar``."""
    try:
        yield
    except SidecarError:
        raise
    except ValueError as err:
        raise SidecarError(str(err)) from None


def _native_fps(video_path: str | Path) -> float | None:
    """The frame rate the container states for ``video_path`` (None when unknown)."""
    from dvg.video import VideoConfig, probe_video

    try:
        config = VideoConfig(short_side=None, max_side=None, min_side=1, max_pixels=1 << 30)
        info = probe_video(video_path, config)
    except Exception:  # the decode stage reports unusable videos itself
        return None
    return info.fps or None


@contextmanager
def _reading(path: Path) -> Iterator[None]:
    """Turn a failure to read the array file ``path`` into a SidecarError naming it (numpy's
    errors, e.g. on pickled object arrays, do not name the file)."""
    try:
        yield
    except SidecarError:
        raise
    except (OSError, ValueError, EOFError, zipfile.BadZipFile) as err:
        raise SidecarError(f"{path}: cannot be read as a numpy array file ({err})") from None


def _npy_header(handle) -> tuple[tuple[int, ...], np.dtype]:
    """Shape and dtype from an ``.npy`` header, without reading the data."""
    version = np.lib.format.read_magic(handle)
    if version == (1, 0):
        shape, _, dtype = np.lib.format.read_array_header_1_0(handle)
    else:
        shape, _, dtype = np.lib.format.read_array_header_2_0(handle)
    return shape, dtype
