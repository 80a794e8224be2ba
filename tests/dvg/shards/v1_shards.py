"""Format v1 samples, written the way the v1 code path (dvg 0.1, before shard format v2) wrote
them: ``left``/``right`` JPEG or PNG members (x1, and x2 rendered as the RIGHT eye), 8-bit PNG
masks, float16 ``.npy`` disparity, ``format_version`` 1 and no x~1. A test helper instead of a
binary fixture, so the bytes it produces stay readable and reviewable."""

from __future__ import annotations

import io
import json

import cv2
import numpy as np


def encode_v1_sample(
    key: str,
    left: np.ndarray,
    right: np.ndarray,
    mask: np.ndarray,
    mask_raw: np.ndarray,
    disparity: np.ndarray,
    meta: dict,
    image_format: str = "jpg",
    jpeg_quality: int = 95,
) -> dict:
    """Members of one v1 sample: left/right (F, H, W, 3) uint8, masks (F, H, W) bool, disparity
    (F, H, W) float16 (target x = source x - disparity)."""
    frames, height, width = left.shape[:3]
    meta = dict(meta, format_version=1, key=key, frames=frames, size=[height, width])
    meta["image_format"] = image_format
    if image_format == "jpg":
        meta["jpeg_quality"] = jpeg_quality
        rgb_params = [cv2.IMWRITE_JPEG_QUALITY, jpeg_quality]
    else:
        rgb_params = [cv2.IMWRITE_PNG_COMPRESSION, 3]
    members: dict[str, bytes] = {}
    for t in range(frames):
        for field, images in (("left", left), ("right", right)):
            bgr = cv2.cvtColor(images[t], cv2.COLOR_RGB2BGR)
            members[f"{field}.{t:03d}.{image_format}"] = cv2.imencode(
                f".{image_format}", bgr, rgb_params
            )[1].tobytes()
        for field, masks in (("mask", mask), ("mask_raw", mask_raw)):
            gray = masks[t].astype(np.uint8) * np.uint8(255)
            members[f"{field}.{t:03d}.png"] = cv2.imencode(
                ".png", gray, [cv2.IMWRITE_PNG_COMPRESSION, 3]
            )[1].tobytes()
        stream = io.BytesIO()
        np.save(stream, np.ascontiguousarray(disparity[t].astype(np.float16)), allow_pickle=False)
        members[f"disparity.{t:03d}.npy"] = stream.getvalue()
    text = json.dumps(meta, sort_keys=True, ensure_ascii=False, separators=(",", ":"))
    out = {"__key__": key, "json": text.encode("utf-8")}
    out.update(sorted(members.items()))
    return out
