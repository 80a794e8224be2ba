"""One DVG training clip as WebDataset members: keys, encoding and selective decoding (format v2).

A sample holds one clip of F frames. Each frame of each field is its own member
(``source.007.jpg``, ``masked.007.jpg``, ``mask.007.png``), so the trainer decodes one frame
(stage 1) or an 8-frame window (stage 2) without touching the rest of the clip. The member list,
dtypes and metadata keys are documented in ``docs/shard-format.md``.

Fields are named by their role in DVG (paper 3.2), not by eye: ``source`` is x1 (the real video
frame), ``novel`` is x2 (the inpainted view DVG rendered at the sampled viewpoint P2), ``masked``
is x~1 (x2 rendered back to P1, blanked in M). Which eye x2 is sits in ``meta["stereo"]``
(``virtual_eye``: ``"left"`` in v2, see docs/model.md "Handedness"). Version 1 shards (``left`` /
``right`` members, x2 to the right, no x~1) are still read: their members map to the same fields.

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

FORMAT_VERSION: int = 2
READABLE_VERSIONS: tuple[int, ...] = (1, 2)

# Field name -> (kind, extension or None when the image format decides it), format v2.
FIELDS: dict[str, tuple[str, str | None]] = {
    "source": ("rgb", None),
    "novel": ("rgb", None),
    "masked": ("rgb", None),
    "mask": ("mask", "png"),
    "mask_raw": ("mask", "png"),
    "disparity": ("disparity", "png"),
}
OPTIONAL_FIELDS = frozenset({"disparity"})
# Format v1 stored x1 / x2 as left / right (x2 was the right eye) and disparity as float16 .npy.
_V1_MEMBERS: dict[str, tuple[str, str | None]] = {
    "source": ("left", None),
    "novel": ("right", None),
    "mask": ("mask", "png"),
    "mask_raw": ("mask_raw", "png"),
    "disparity": ("disparity", "npy"),
}
IMAGE_FORMATS = ("jpg", "png")
# Frame numbers are zero-padded to 3 digits so that sorted member names are in frame order.
MAX_FRAMES = 1000
# Keys stay short enough that "<key>.<longest member>" fits a 100-byte ustar name field.
MAX_KEY_LENGTH = 80
# 16-bit PNG disparity: d = offset + scale * value, value in [0, 65535], per frame.
_DISPARITY_LEVELS = 65535

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


def member_name(
    field: str, frame: int, image_format: str = "jpg", version: int = FORMAT_VERSION
) -> str:
    """Member name (the part after ``<key>.``) of ``field`` at frame ``frame``: ``source.007.jpg``.

    ``version=1`` gives the name the field had in format v1 (``left.007.jpg`` for ``source``).
    """
    if version == 1:
        if field not in _V1_MEMBERS:
            raise ShardFormatError(f"field {field!r} does not exist in format v1 shards")
        name, ext = _V1_MEMBERS[field]
    else:
        name, (_, ext) = field, FIELDS[field]
    return f"{name}.{frame:03d}.{ext or image_format}"


@dataclass
class ClipSample:
    """One clip of the DVG output (paper 3.2): x1, x2, x~1, masks and (optionally) disparity.

    Attributes:
        key: sample key, see ``make_key``.
        source: (F, H, W, 3) uint8 RGB, x1: the real video frames (viewpoint P1).
        novel: (F, H, W, 3) uint8 RGB, x2: the inpainted view at the sampled viewpoint P2.
        masked: (F, H, W, 3) uint8 RGB, x~1: x2 rendered back to P1, 0 inside ``mask``.
        mask: (F, H, W) bool, refined occlusion mask M (Eq. 2); True = pixel of x1 not visible
            from P2.
        mask_raw: (F, H, W) bool, the back-rendered mask before the Eq. 2 refinement.
        disparity: (F, H, W) float, x1's disparity in pixels towards P2 (x2 x = x1 x - d for a
            virtual right eye, x + d for a virtual left eye), or None to leave it out.
        meta: JSON-serialisable metadata, see docs/shard-format.md.
    """

    key: str
    source: np.ndarray
    novel: np.ndarray
    masked: np.ndarray
    mask: np.ndarray
    mask_raw: np.ndarray
    disparity: np.ndarray | None
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


def _encode_disparity(
    key: str, disparity: np.ndarray, params: list[int]
) -> tuple[list[bytes], dict[str, list[float]]]:
    """(F, H, W) float -> one 16-bit grayscale PNG per frame and the per-frame offset and scale.

    d = offset + scale * value: the error is at most scale / 2 = (max - min) / 131070 pixels per
    frame (about 1e-3 px for a 100 px range), against float16's 0.03 px at 50 px; PNG's
    prediction filters compress smooth disparity several times better than raw float16.
    """
    pngs, offsets, scales = [], [], []
    for t, frame in enumerate(disparity.astype(np.float64)):
        low, high = float(frame.min()), float(frame.max())
        scale = (high - low) / _DISPARITY_LEVELS if high > low else 1.0
        values = np.rint((frame - low) / scale).astype(np.uint16)
        pngs.append(_encode_image(key, f"disparity frame {t}", values, "png", params))
        offsets.append(low)
        scales.append(scale)
    return pngs, {"offset": offsets, "scale": scales}


def encode_sample(
    sample: ClipSample, *, image_format: str = "jpg", jpeg_quality: int = 95
) -> dict[str, Any]:
    """Encode a clip as WebDataset members ``{"__key__", "json", "source.000.jpg", ...}`` (bytes).

    ``source``/``novel``/``masked`` are written as JPEG (``image_format="jpg"``, quality
    ``jpeg_quality``) or lossless PNG; masks as 8-bit grayscale PNG 0/255; disparity (when not
    None) as 16-bit grayscale PNG with a per-frame offset and scale in
    ``meta["disparity_encoding"]``. The returned dict lists ``json`` first, then the members in
    sorted name order (frame order per field). ``meta`` gains ``format_version``, ``key``,
    ``frames`` (F), ``size`` ([H, W]), ``fields`` (the stored fields), ``image_format`` and, for
    JPEG, ``jpeg_quality``; a value already there that disagrees raises.

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
    if not isinstance(sample.source, np.ndarray) or sample.source.ndim != 4:
        shape = getattr(sample.source, "shape", None)
        raise ShardFormatError(
            f"{key}: source must be a (F, H, W, 3) uint8 array, got shape {shape}"
        )
    num_frames, height, width = sample.source.shape[:3]
    if not 1 <= num_frames <= MAX_FRAMES or height < 1 or width < 1:
        raise ShardFormatError(
            f"{key}: source has shape {sample.source.shape}; need 1..{MAX_FRAMES} frames of "
            "size >= 1"
        )
    grid = (num_frames, height, width)
    for field in ("source", "novel", "masked"):
        _check_array(key, field, getattr(sample, field), (*grid, 3), np.uint8)
    _check_array(key, "mask", sample.mask, grid, np.bool_)
    _check_array(key, "mask_raw", sample.mask_raw, grid, np.bool_)
    stored = ["source", "novel", "masked", "mask", "mask_raw"]
    if sample.disparity is not None:
        if not isinstance(sample.disparity, np.ndarray) or sample.disparity.dtype.kind != "f":
            raise ShardFormatError(f"{key}: disparity must be a float numpy array or None")
        _check_array(key, "disparity", sample.disparity, grid, sample.disparity.dtype.type)
        if not np.isfinite(sample.disparity).all():
            raise ShardFormatError(f"{key}: disparity contains NaN or infinite values")
        stored.append("disparity")
    if not isinstance(sample.meta, Mapping):
        raise ShardFormatError(f"{key}: meta must be a dict, got {type(sample.meta).__name__}")

    png_params = [cv2.IMWRITE_PNG_COMPRESSION, 3]
    members: dict[str, bytes] = {}
    meta = dict(sample.meta)
    derived: dict[str, Any] = {
        "format_version": FORMAT_VERSION,
        "key": key,
        "frames": num_frames,
        "size": [height, width],
        "fields": sorted(stored),
        "image_format": image_format,
    }
    if image_format == "jpg":
        derived["jpeg_quality"] = jpeg_quality
    if sample.disparity is not None:
        pngs, derived["disparity_encoding"] = _encode_disparity(key, sample.disparity, png_params)
        members.update((member_name("disparity", t), png) for t, png in enumerate(pngs))
    for name, value in derived.items():
        if name in meta and meta[name] != value:
            raise ShardFormatError(
                f"{key}: meta[{name!r}] is {meta[name]!r} but the clip gives {value!r}"
            )
        meta[name] = value

    if image_format == "jpg":
        rgb_params = [cv2.IMWRITE_JPEG_QUALITY, jpeg_quality]
    else:
        rgb_params = png_params
    for t in range(num_frames):
        for field in ("source", "novel", "masked"):
            bgr = cv2.cvtColor(getattr(sample, field)[t], cv2.COLOR_RGB2BGR)
            name = member_name(field, t, image_format)
            members[name] = _encode_image(key, name, bgr, image_format, rgb_params)
        for field in ("mask", "mask_raw"):
            gray = getattr(sample, field)[t].astype(np.uint8) * np.uint8(255)
            name = member_name(field, t)
            members[name] = _encode_image(key, name, gray, "png", png_params)

    out: dict[str, Any] = {"__key__": key, "json": _dumps_meta(key, meta)}
    out.update(sorted(members.items()))
    return out


def read_meta(members: Mapping[str, Any]) -> dict:
    """Parse and check the ``json`` member of a sample (no frame is decoded).

    Format v1 metadata is returned as v1 wrote it, plus what v2 records explicitly: ``fields``
    (the v2 names of the stored fields) and ``stereo.virtual_eye = "right"``.

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
    if version not in READABLE_VERSIONS:
        raise ShardFormatError(
            f"{where}: format_version {version!r} is not supported by this reader "
            f"(it reads versions {', '.join(map(str, READABLE_VERSIONS))})"
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
    if version == 1:
        meta["fields"] = sorted(_V1_MEMBERS)
        stereo = meta.get("stereo")
        if isinstance(stereo, dict):
            stereo.setdefault("virtual_eye", "right")
    fields = meta.get("fields")
    if not isinstance(fields, list) or not set(fields) <= set(FIELDS):
        raise ShardFormatError(
            f"{where}: meta['fields'] must list fields among {sorted(FIELDS)}, got {fields!r}"
        )
    if "disparity" in fields and version == 2:
        encoding = meta.get("disparity_encoding")
        if not (
            isinstance(encoding, dict)
            and all(
                isinstance(encoding.get(k), list) and len(encoding[k]) == frames
                for k in ("offset", "scale")
            )
        ):
            raise ShardFormatError(
                f"{where}: meta['disparity_encoding'] needs per-frame 'offset' and 'scale' lists"
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


def _decode_gray(
    data: bytes, size: tuple[int, int], where: str, name: str, dtype: type
) -> np.ndarray:
    gray = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_UNCHANGED)
    if gray is None:
        raise ShardFormatError(f"{where}: cv2 could not decode member {name!r}")
    if gray.shape != size or gray.dtype != dtype:
        raise ShardFormatError(
            f"{where}: member {name!r} must be a {np.dtype(dtype)} grayscale {size} PNG, "
            f"got {gray.dtype} {gray.shape}"
        )
    return gray


def _decode_npy_disparity(data: bytes, size: tuple[int, int], where: str, name: str) -> np.ndarray:
    """Format v1's float16 ``.npy`` disparity (never unpickled)."""
    try:
        disparity = np.load(io.BytesIO(data), allow_pickle=False)
    except ValueError as exn:
        raise ShardFormatError(f"{where}: member {name!r} is not a plain .npy: {exn}") from None
    if disparity.dtype != np.float16 or disparity.shape != size:
        raise ShardFormatError(
            f"{where}: member {name!r} must be float16 {size}, "
            f"got {disparity.dtype} {disparity.shape}"
        )
    return disparity.astype(np.float32)


def _decode_frame(
    members: Mapping[str, Any], meta: dict, field: str, t: int, where: str
) -> np.ndarray:
    version, size = meta["format_version"], (meta["size"][0], meta["size"][1])
    name = member_name(field, t, meta["image_format"], version)
    data = _member(members, name, where)
    kind = FIELDS[field][0]
    if kind == "rgb":
        return _decode_rgb(data, size, where, name)
    if kind == "mask":
        return _decode_gray(data, size, where, name, np.uint8) > 127
    if version == 1:
        return _decode_npy_disparity(data, size, where, name)
    values = _decode_gray(data, size, where, name, np.uint16)
    encoding = meta["disparity_encoding"]
    offset, scale = float(encoding["offset"][t]), float(encoding["scale"][t])
    return (offset + scale * values.astype(np.float64)).astype(np.float32)


_EMPTY = {"rgb": ((3,), np.uint8), "mask": ((), np.bool_), "disparity": ((), np.float32)}


def decode_sample(
    members: Mapping[str, Any],
    frames: Sequence[int] | slice | None = None,
    fields: Sequence[str] | None = None,
) -> dict:
    """Decode the requested frames of the requested fields of one sample; nothing else is decoded.

    Args:
        members: ``{"__key__": key, "json": b..., "source.000.jpg": b..., ...}`` as produced by
            ``encode_sample`` or read by ``iter_tar_samples`` / WebDataset (format v1 or v2).
        frames: frame indices within the clip (each in [0, F)), a slice, or None for all frames.
        fields: any of ``source``, ``novel``, ``masked``, ``mask``, ``mask_raw``, ``disparity``;
            None = every field the sample stores (``meta["fields"]``).

    Returns: ``{"key", "meta", "frame_indices": (n,) int64}`` plus, for each requested field,
        ``source``/``novel``/``masked``: (n, H, W, 3) uint8 RGB, ``mask``/``mask_raw``:
        (n, H, W) bool (True = pixel of x1 not visible from the novel viewpoint),
        ``disparity``: (n, H, W) float32.

    Raises:
        ShardFormatError (a ValueError) naming the key on an unknown ``format_version``, a field
        the sample does not store (e.g. ``masked`` in a v1 shard, ``disparity`` in a v2 shard
        built without ``--keep-disparity``), a missing or undecodable member, or an out-of-range
        frame index.
    """
    where = _where(members)
    meta = read_meta(members)
    if fields is None:
        fields = meta["fields"]
    unknown = [f for f in fields if f not in FIELDS]
    if unknown or isinstance(fields, str):
        raise ShardFormatError(
            f"{where}: unknown fields {unknown or fields!r}; known: {list(FIELDS)}"
        )
    absent = [f for f in fields if f not in meta["fields"]]
    if absent:
        raise ShardFormatError(f"{where}: {_absent_reason(absent, meta['format_version'])}")
    size = (meta["size"][0], meta["size"][1])
    selected = _frame_list(frames, meta["frames"], where)
    out: dict[str, Any] = {
        "key": members.get("__key__", meta.get("key")),
        "meta": meta,
        "frame_indices": np.asarray(selected, dtype=np.int64),
    }
    for field in fields:
        decoded: dict[int, np.ndarray] = {}
        for t in selected:
            if t not in decoded:  # a repeated index is decoded once
                decoded[t] = _decode_frame(members, meta, field, t, where)
        if selected:
            out[field] = np.stack([decoded[t] for t in selected])
        else:
            tail, dtype = _EMPTY[FIELDS[field][0]]
            out[field] = np.empty((0, *size, *tail), dtype=dtype)
    return out


def _absent_reason(absent: list[str], version: int) -> str:
    if version == 1 and "masked" in absent:
        return (
            "field 'masked' (x~1, the back-rendered x2) does not exist in format v1 shards, "
            "which also hold the mirrored stereo handedness; rebuild them with this version of "
            "`dvg build` (docs/shard-format.md, 'Versions')"
        )
    if "disparity" in absent:
        return "the shard stores no disparity; rebuild with `dvg build --keep-disparity` to keep it"
    return f"fields {absent} are not stored in this sample"
