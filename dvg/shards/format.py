"""One DVG training clip as WebDataset members: keys, encoding and selective decoding (format v1).

A sample holds one clip of F frames. Each frame of each field is its own member
(``left.007.jpg``, ``mask.007.png``, ``disparity.007.npy``), so the trainer decodes one frame
(stage 1) or an 8-frame window (stage 2) without touching the rest of the clip. The member list,
dtypes and metadata keys are documented in ``docs/shard-format.md``.

Only the standard library, numpy and cv2 are imported here: the trainer imports this module and
must not pull torch or the data engine's model code.
"""

from __future__ import annotations

import hashlib
import io
import json
import operator
import os
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import cv2
import numpy as np

FORMAT_VERSION: int = 1

# Field name -> (kind, extension or None when the image format decides it).
FIELDS: dict[str, tuple[str, str | None]] = {
    "left": ("rgb", None),
    "right": ("rgb", None),
    "mask": ("mask", "png"),
    "mask_raw": ("mask", "png"),
    "disparity": ("disparity", "npy"),
}
IMAGE_FORMATS = ("jpg", "png")
# Frame numbers are zero-padded to 3 digits so that sorted member names are in frame order.
MAX_FRAMES = 1000
# Keys stay short enough that "<key>.<longest member>" fits a 100-byte ustar name field.
MAX_KEY_LENGTH = 80

_KEY_RE = re.compile(r"^[A-Za-z0-9_-]+$")
_VIDEO_ID_RE = re.compile(r"^[A-Za-z0-9-]+$")


class ShardFormatError(ValueError):
    """A shard, sample or member that does not follow the DVG shard format."""


def validate_key(key: str) -> str:
    """Return ``key`` if it is a valid sample key, else raise ``ShardFormatError``.

    WebDataset splits a member name at the first dot, so keys must be dot-free; we also restrict
    them to ``[A-Za-z0-9_-]`` (no path separators, no shell specials) and 80 characters.
    """
    if not isinstance(key, str):
        raise ShardFormatError(f"sample key must be a str, got {type(key).__name__}")
    if "." in key:
        raise ShardFormatError(
            f"sample key {key!r} contains a dot; WebDataset would cut the key at the first dot"
        )
    if not _KEY_RE.match(key):
        raise ShardFormatError(f"sample key {key!r} must be non-empty and use only [A-Za-z0-9_-]")
    if key.startswith("__"):
        raise ShardFormatError(f"sample key {key!r} must not start with '__' (WebDataset metadata)")
    if len(key) > MAX_KEY_LENGTH:
        raise ShardFormatError(f"sample key {key!r} is longer than {MAX_KEY_LENGTH} characters")
    return key


def video_id_for(path: str | os.PathLike[str]) -> str:
    """Stable id of a source video: the first 16 hex digits of sha256 of its POSIX path string.

    Pass the path relative to the input root so ids survive moving the dataset.
    """
    posix = Path(path).as_posix()
    return hashlib.sha256(posix.encode("utf-8")).hexdigest()[:16]


def make_key(video_id: str, scene: int, clip: int) -> str:
    """Sample key of clip ``clip`` of scene ``scene`` of a video: ``{video_id}_s003_c0012``."""
    if not isinstance(video_id, str) or not _VIDEO_ID_RE.match(video_id):
        raise ShardFormatError(f"video_id {video_id!r} must be non-empty and use only [A-Za-z0-9-]")
    for name, value in (("scene", scene), ("clip", clip)):
        if isinstance(value, bool) or not isinstance(value, int | np.integer) or value < 0:
            raise ShardFormatError(f"{name} must be a non-negative int, got {value!r}")
    return validate_key(f"{video_id}_s{int(scene):03d}_c{int(clip):04d}")


def member_name(field: str, frame: int, image_format: str = "jpg") -> str:
    """Member name (the part after ``<key>.``) of ``field`` at frame ``frame``: ``left.007.jpg``."""
    _, ext = FIELDS[field]
    return f"{field}.{frame:03d}.{ext or image_format}"


@dataclass
class ClipSample:
    """One clip of the DVG output (paper 3.2): source view, inpainted target view, masks, disparity.

    Attributes:
        key: sample key, see ``make_key``.
        left: (F, H, W, 3) uint8 RGB, x1, the source (reference) view.
        right: (F, H, W, 3) uint8 RGB, x2, the inpainted target view.
        mask: (F, H, W) bool, refined occlusion mask M (Eq. 2); True = occluded in the source view.
        mask_raw: (F, H, W) bool, the back-rendered mask before the Eq. 2 refinement.
        disparity: (F, H, W) float16, source->target disparity in pixels
            (target x = source x - disparity).
        meta: JSON-serialisable metadata, see docs/shard-format.md.
    """

    key: str
    left: np.ndarray
    right: np.ndarray
    mask: np.ndarray
    mask_raw: np.ndarray
    disparity: np.ndarray
    meta: dict


def _check_array(key: str, name: str, x: Any, shape: tuple[int, ...], dtype: type) -> None:
    if not isinstance(x, np.ndarray):
        raise ShardFormatError(f"{key}: {name} must be a numpy array, got {type(x).__name__}")
    if x.dtype != np.dtype(dtype):
        raise ShardFormatError(f"{key}: {name} must be {np.dtype(dtype)}, got {x.dtype}")
    if x.shape != shape:
        raise ShardFormatError(f"{key}: {name} must have shape {shape}, got {x.shape}")


def _dumps_meta(key: str, meta: Mapping) -> bytes:
    # sort_keys makes the bytes (and so the tar's md5) independent of dict insertion order.
    try:
        text = json.dumps(
            meta, sort_keys=True, ensure_ascii=False, allow_nan=False, separators=(",", ":")
        )
    except (TypeError, ValueError) as exn:
        raise ShardFormatError(
            f"{key}: meta is not plain JSON ({exn}); convert numpy values with int()/float()/"
            ".tolist() and replace NaN/inf"
        ) from None
    return text.encode("utf-8")


def _encode_image(key: str, name: str, image: np.ndarray, ext: str, params: list[int]) -> bytes:
    ok, buf = cv2.imencode(f".{ext}", image, params)
    if not ok:
        raise ShardFormatError(f"{key}: cv2 could not encode {name} as {ext}")
    return buf.tobytes()


def _encode_npy(array: np.ndarray) -> bytes:
    stream = io.BytesIO()
    np.save(stream, np.ascontiguousarray(array), allow_pickle=False)
    return stream.getvalue()


def encode_sample(
    sample: ClipSample, *, image_format: str = "jpg", jpeg_quality: int = 95
) -> dict[str, Any]:
    """Encode a clip as WebDataset members ``{"__key__": key, "json": b..., "left.000.jpg": ...}``.

    ``left``/``right`` are written as JPEG (``image_format="jpg"``, quality ``jpeg_quality``) or
    lossless PNG; masks as 8-bit grayscale PNG 0/255; disparity as float16 ``.npy``. The returned
    dict lists ``json`` first, then the members in sorted name order (frame order per field).
    ``meta`` gains ``format_version``, ``key``, ``frames`` (F), ``size`` ([H, W]),
    ``image_format`` and, for JPEG, ``jpeg_quality``; a value already there that disagrees raises.

    Raises:
        ShardFormatError (a ValueError) naming the key and field on a bad key, shape, dtype,
        non-finite disparity or non-JSON metadata.
    """
    key = validate_key(sample.key)
    if image_format not in IMAGE_FORMATS:
        raise ShardFormatError(
            f"{key}: image_format must be one of {IMAGE_FORMATS}, got {image_format!r}"
        )
    if (
        isinstance(jpeg_quality, bool)
        or not isinstance(jpeg_quality, int)
        or not 1 <= jpeg_quality <= 100
    ):
        raise ShardFormatError(
            f"{key}: jpeg_quality must be an int in [1, 100], got {jpeg_quality!r}"
        )
    if not isinstance(sample.left, np.ndarray) or sample.left.ndim != 4:
        shape = getattr(sample.left, "shape", None)
        raise ShardFormatError(f"{key}: left must be a (F, H, W, 3) uint8 array, got shape {shape}")
    num_frames, height, width = sample.left.shape[:3]
    if not 1 <= num_frames <= MAX_FRAMES or height < 1 or width < 1:
        raise ShardFormatError(
            f"{key}: left has shape {sample.left.shape}; need 1..{MAX_FRAMES} frames of size >= 1"
        )
    grid = (num_frames, height, width)
    _check_array(key, "left", sample.left, (*grid, 3), np.uint8)
    _check_array(key, "right", sample.right, (*grid, 3), np.uint8)
    _check_array(key, "mask", sample.mask, grid, np.bool_)
    _check_array(key, "mask_raw", sample.mask_raw, grid, np.bool_)
    _check_array(key, "disparity", sample.disparity, grid, np.float16)
    if not np.isfinite(sample.disparity).all():
        raise ShardFormatError(f"{key}: disparity contains NaN or infinite values")
    if not isinstance(sample.meta, Mapping):
        raise ShardFormatError(f"{key}: meta must be a dict, got {type(sample.meta).__name__}")

    meta = dict(sample.meta)
    derived: dict[str, Any] = {
        "format_version": FORMAT_VERSION,
        "key": key,
        "frames": num_frames,
        "size": [height, width],
        "image_format": image_format,
    }
    if image_format == "jpg":
        derived["jpeg_quality"] = jpeg_quality
    for name, value in derived.items():
        if name in meta and meta[name] != value:
            raise ShardFormatError(
                f"{key}: meta[{name!r}] is {meta[name]!r} but the clip gives {value!r}"
            )
        meta[name] = value

    if image_format == "jpg":
        rgb_params = [cv2.IMWRITE_JPEG_QUALITY, jpeg_quality]
    else:
        rgb_params = [cv2.IMWRITE_PNG_COMPRESSION, 3]
    mask_params = [cv2.IMWRITE_PNG_COMPRESSION, 3]

    members: dict[str, bytes] = {}
    for t in range(num_frames):
        for field in ("left", "right"):
            bgr = cv2.cvtColor(getattr(sample, field)[t], cv2.COLOR_RGB2BGR)
            name = member_name(field, t, image_format)
            members[name] = _encode_image(key, name, bgr, image_format, rgb_params)
        for field in ("mask", "mask_raw"):
            gray = getattr(sample, field)[t].astype(np.uint8) * np.uint8(255)
            name = member_name(field, t)
            members[name] = _encode_image(key, name, gray, "png", mask_params)
        members[member_name("disparity", t)] = _encode_npy(sample.disparity[t])

    out: dict[str, Any] = {"__key__": key, "json": _dumps_meta(key, meta)}
    out.update(sorted(members.items()))
    return out


def read_meta(members: Mapping[str, Any]) -> dict:
    """Parse and check the ``json`` member of a sample (no frame is decoded).

    Raises:
        ShardFormatError naming the key (and shard) on missing or invalid metadata or an unknown
        ``format_version``.
    """
    where = _where(members)
    if "json" not in members:
        raise ShardFormatError(f"{where}: sample has no 'json' member")
    try:
        meta = json.loads(members["json"])
    except (UnicodeDecodeError, json.JSONDecodeError) as exn:
        raise ShardFormatError(f"{where}: 'json' member is not valid JSON: {exn}") from None
    if not isinstance(meta, dict):
        raise ShardFormatError(f"{where}: 'json' member must be an object")
    version = meta.get("format_version")
    if version != FORMAT_VERSION:
        raise ShardFormatError(
            f"{where}: format_version {version!r} is not supported by this reader "
            f"(it reads version {FORMAT_VERSION})"
        )
    frames, size, image_format = meta.get("frames"), meta.get("size"), meta.get("image_format")
    if not isinstance(frames, int) or not 1 <= frames <= MAX_FRAMES:
        raise ShardFormatError(
            f"{where}: meta['frames'] must be an int in [1, {MAX_FRAMES}], got {frames!r}"
        )
    if (
        not isinstance(size, list)
        or len(size) != 2
        or not all(isinstance(s, int) and s >= 1 for s in size)
    ):
        raise ShardFormatError(f"{where}: meta['size'] must be [H, W], got {size!r}")
    if image_format not in IMAGE_FORMATS:
        raise ShardFormatError(
            f"{where}: meta['image_format'] must be one of {IMAGE_FORMATS}, got {image_format!r}"
        )
    return meta


def _where(members: Mapping[str, Any]) -> str:
    key = members.get("__key__", "<no key>")
    url = members.get("__url__")
    return f"{url}: sample {key}" if url else f"sample {key}"


def _frame_list(frames: Sequence[int] | slice | None, num_frames: int, where: str) -> list[int]:
    if frames is None:
        return list(range(num_frames))
    if isinstance(frames, slice):
        return list(range(num_frames)[frames])
    if isinstance(frames, str | bytes) or not isinstance(frames, Sequence | np.ndarray):
        raise ShardFormatError(f"{where}: frames must be a sequence of ints, a slice or None")
    out = []
    for t in frames:
        try:
            t = operator.index(t)
        except TypeError:
            raise ShardFormatError(f"{where}: frame index {t!r} is not an int") from None
        if not 0 <= t < num_frames:
            raise ShardFormatError(
                f"{where}: frame index {t} out of range for a clip of {num_frames} frames"
            )
        out.append(t)
    return out


def _member(members: Mapping[str, Any], name: str, where: str) -> bytes:
    try:
        return members[name]
    except KeyError:
        raise ShardFormatError(f"{where}: member {name!r} is missing") from None


def _decode_rgb(data: bytes, size: tuple[int, int], where: str, name: str) -> np.ndarray:
    bgr = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)
    if bgr is None:
        raise ShardFormatError(f"{where}: cv2 could not decode member {name!r}")
    if bgr.shape != (*size, 3):
        raise ShardFormatError(
            f"{where}: member {name!r} has shape {bgr.shape}, meta says {(*size, 3)}"
        )
    return cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)


def _decode_mask(data: bytes, size: tuple[int, int], where: str, name: str) -> np.ndarray:
    gray = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_UNCHANGED)
    if gray is None:
        raise ShardFormatError(f"{where}: cv2 could not decode member {name!r}")
    if gray.shape != size or gray.dtype != np.uint8:
        raise ShardFormatError(
            f"{where}: member {name!r} must be an 8-bit grayscale {size} PNG, "
            f"got {gray.dtype} {gray.shape}"
        )
    return gray > 127


def _decode_disparity(data: bytes, size: tuple[int, int], where: str, name: str) -> np.ndarray:
    try:
        disparity = np.load(io.BytesIO(data), allow_pickle=False)
    except ValueError as exn:
        raise ShardFormatError(f"{where}: member {name!r} is not a plain .npy: {exn}") from None
    if disparity.dtype != np.float16 or disparity.shape != size:
        raise ShardFormatError(
            f"{where}: member {name!r} must be float16 {size}, "
            f"got {disparity.dtype} {disparity.shape}"
        )
    return disparity


_DECODERS = {"rgb": _decode_rgb, "mask": _decode_mask, "disparity": _decode_disparity}
_EMPTY = {"rgb": ((3,), np.uint8), "mask": ((), np.bool_), "disparity": ((), np.float16)}


def decode_sample(
    members: Mapping[str, Any],
    frames: Sequence[int] | slice | None = None,
    fields: Sequence[str] = ("left", "right", "mask", "mask_raw", "disparity"),
) -> dict:
    """Decode the requested frames of the requested fields of one sample; nothing else is decoded.

    Args:
        members: ``{"__key__": key, "json": b..., "left.000.jpg": b..., ...}`` as produced by
            ``encode_sample`` or read by ``iter_tar_samples`` / WebDataset.
        frames: frame indices within the clip (each in [0, F)), a slice, or None for all frames.
        fields: any of ``left``, ``right``, ``mask``, ``mask_raw``, ``disparity``.

    Returns: ``{"key", "meta", "frame_indices": (n,) int64}`` plus, for each requested field,
        ``left``/``right``: (n, H, W, 3) uint8 RGB, ``mask``/``mask_raw``: (n, H, W) bool
        (True = occluded in the source view), ``disparity``: (n, H, W) float16.

    Raises:
        ShardFormatError (a ValueError) naming the key on an unknown ``format_version``, a missing
        or undecodable member, or an out-of-range frame index.
    """
    where = _where(members)
    meta = read_meta(members)
    unknown = [f for f in fields if f not in FIELDS]
    if unknown or isinstance(fields, str):
        raise ShardFormatError(
            f"{where}: unknown fields {unknown or fields!r}; known: {list(FIELDS)}"
        )
    size = (meta["size"][0], meta["size"][1])
    selected = _frame_list(frames, meta["frames"], where)
    out: dict[str, Any] = {
        "key": members.get("__key__", meta.get("key")),
        "meta": meta,
        "frame_indices": np.asarray(selected, dtype=np.int64),
    }
    for field in fields:
        kind, _ = FIELDS[field]
        decoded: dict[int, np.ndarray] = {}
        for t in selected:
            if t not in decoded:  # a repeated index is decoded once
                name = member_name(field, t, meta["image_format"])
                decoded[t] = _DECODERS[kind](_member(members, name, where), size, where, name)
        if selected:
            out[field] = np.stack([decoded[t] for t in selected])
        else:
            tail, dtype = _EMPTY[kind]
            out[field] = np.empty((0, *size, *tail), dtype=dtype)
    return out
