"""The pixel geometry from a source video to output frames: letterbox crop, resize, centre crop.

Convention (shared with ``dvg.geometry``): pixel centres at integer coordinates, so pixel (u, v)
covers ``[u - 0.5, u + 0.5] x [v - 0.5, v + 0.5]``. A resize by factors (sx, sy) maps
``u -> (u + 0.5) * sx - 0.5`` (pixel areas scale, centres follow), which is what both ffmpeg's
swscale and OpenCV's ``cv2.resize`` do, so ``FrameTransform.apply`` and the intrinsics agree
with the decoded frames.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from dvg.video.decode import VideoConfig

LETTERBOX_THRESHOLD = 16  # max luma (0-255) a bar pixel may reach over the scanned frames
LETTERBOX_LINE_FRACTION = 0.98  # share of a row/column that must be dark to count as bar
LETTERBOX_MIN_CONTENT = 0.2  # crops keeping less of the frame than this are distrusted


@dataclass(frozen=True)
class FrameTransform:
    """How decoded source frames map to output frames: crop box in source pixels, then resize,
    then centre crop. All sizes are (width, height); the source size is as displayed."""

    source_size: tuple[int, int]
    crop: tuple[int, int, int, int]  # (x0, y0, width, height) in source pixels
    resized_size: tuple[int, int]
    output_size: tuple[int, int]

    def __post_init__(self) -> None:
        sw, sh = self.source_size
        x0, y0, cw, ch = self.crop
        rw, rh = self.resized_size
        ow, oh = self.output_size
        if not (0 <= x0 and 0 <= y0 and cw > 0 and ch > 0 and x0 + cw <= sw and y0 + ch <= sh):
            raise ValueError(f"crop {self.crop} does not fit in source size {self.source_size}")
        if not (0 < ow <= rw and 0 < oh <= rh):
            raise ValueError(
                f"output size {self.output_size} must be positive and within the resized size "
                f"{self.resized_size}"
            )

    @property
    def scale(self) -> tuple[float, float]:
        """(sx, sy): resized pixels per cropped source pixel."""
        return (self.resized_size[0] / self.crop[2], self.resized_size[1] / self.crop[3])

    @property
    def center_offset(self) -> tuple[int, int]:
        """(ox, oy): top-left of the centre crop inside the resized image."""
        return (
            (self.resized_size[0] - self.output_size[0]) // 2,
            (self.resized_size[1] - self.output_size[1]) // 2,
        )

    def map_points(self, points: np.ndarray) -> np.ndarray:
        """Source pixel coordinates (..., 2) as (x, y) -> output pixel coordinates (..., 2)."""
        points = np.asarray(points, dtype=np.float64)
        (sx, sy), (ox, oy) = self.scale, self.center_offset
        x = (points[..., 0] - self.crop[0] + 0.5) * sx - 0.5 - ox
        y = (points[..., 1] - self.crop[1] + 0.5) * sy - 0.5 - oy
        return np.stack([x, y], axis=-1)

    def scale_intrinsics(self, K: np.ndarray) -> np.ndarray:
        """(3, 3) intrinsics in source pixels -> (3, 3) intrinsics of the output frames."""
        K = np.asarray(K, dtype=np.float64)
        if K.shape != (3, 3):
            raise ValueError(f"K must be (3, 3), got {K.shape}")
        (sx, sy), (ox, oy) = self.scale, self.center_offset
        x0, y0 = self.crop[:2]
        A = np.array(
            [
                [sx, 0.0, (0.5 - x0) * sx - 0.5 - ox],
                [0.0, sy, (0.5 - y0) * sy - 0.5 - oy],
                [0.0, 0.0, 1.0],
            ]
        )
        return A @ K

    def apply(self, image: np.ndarray, interpolation: int = cv2.INTER_AREA) -> np.ndarray:
        """(H0, W0) or (H0, W0, C) image at ``source_size`` -> (H, W[, C]) at ``output_size``.

        Puts per-frame data (e.g. sidecar depth maps, any dtype cv2.resize takes: uint8,
        uint16, int16, float32, float64) on the output frames' pixel grid; use
        ``cv2.INTER_NEAREST`` where blending across depth edges must not happen.
        """
        image = np.asarray(image)
        sw, sh = self.source_size
        if image.ndim not in (2, 3) or image.shape[:2] != (sh, sw):
            raise ValueError(
                f"image must be (H0, W0[, C]) = ({sh}, {sw}[, C]) to match source_size, "
                f"got {image.shape}"
            )
        x0, y0, cw, ch = self.crop
        cropped = image[y0 : y0 + ch, x0 : x0 + cw]
        if (cw, ch) != self.resized_size:
            resized = cv2.resize(cropped, self.resized_size, interpolation=interpolation)
            if image.ndim == 3 and resized.ndim == 2:  # cv2 drops a single channel axis
                resized = resized[:, :, None]
        else:
            resized = cropped
        (ox, oy), (ow, oh) = self.center_offset, self.output_size
        return np.ascontiguousarray(resized[oy : oy + oh, ox : ox + ow])

    def ffmpeg_filters(self) -> list[str]:
        """The same geometry as ffmpeg filters (crop, scale, crop); ``exact=1`` stops ffmpeg
        rounding crop offsets to the chroma grid."""
        filters = []
        x0, y0, cw, ch = self.crop
        if (cw, ch) != self.source_size:
            filters.append(f"crop=w={cw}:h={ch}:x={x0}:y={y0}:exact=1")
        if (cw, ch) != self.resized_size:
            rw, rh = self.resized_size
            filters.append(f"scale=w={rw}:h={rh}:flags=area+accurate_rnd+full_chroma_int")
        if self.resized_size != self.output_size:
            (ox, oy), (ow, oh) = self.center_offset, self.output_size
            filters.append(f"crop=w={ow}:h={oh}:x={ox}:y={oy}:exact=1")
        return filters

    def to_dict(self) -> dict:
        return {
            "source_size": list(self.source_size),
            "crop": list(self.crop),
            "resized_size": list(self.resized_size),
            "output_size": list(self.output_size),
        }

    @classmethod
    def from_dict(cls, data: dict) -> FrameTransform:
        return cls(
            source_size=tuple(data["source_size"]),
            crop=tuple(data["crop"]),
            resized_size=tuple(data["resized_size"]),
            output_size=tuple(data["output_size"]),
        )


def plan_transform(
    source_size: tuple[int, int], crop: tuple[int, int, int, int], config: VideoConfig
) -> FrameTransform:
    """The resize policy: scale the crop so its short side is ``short_side`` and its long side
    at most ``max_side`` (never above 1 unless ``allow_upscale``), preserving aspect, then
    centre-crop each side down to a multiple of ``multiple``.

    Raises ValueError if the result would be smaller than one ``multiple``.
    """
    cw, ch = crop[2], crop[3]
    scale = 1.0
    if config.short_side is not None:
        scale = config.short_side / min(cw, ch)
    if config.max_side is not None:
        scale = min(scale, config.max_side / max(cw, ch))
    if not config.allow_upscale:
        scale = min(scale, 1.0)
    rw, rh = max(1, round(cw * scale)), max(1, round(ch * scale))
    m = config.multiple
    ow, oh = rw // m * m, rh // m * m
    if ow == 0 or oh == 0:
        raise ValueError(f"crop {cw}x{ch} resized to {rw}x{rh} is smaller than one multiple of {m}")
    return FrameTransform(tuple(source_size), tuple(crop), (rw, rh), (ow, oh))


def detect_letterbox(
    max_image: np.ndarray,
    threshold: int = LETTERBOX_THRESHOLD,
    line_fraction: float = LETTERBOX_LINE_FRACTION,
    min_content: float = LETTERBOX_MIN_CONTENT,
) -> tuple[int, int, int, int]:
    """Crop box (x0, y0, width, height) without constant black bars on the borders.

    Args:
        max_image: (H, W) uint8, the per-pixel maximum luma over the first frames, so a pixel
            is dark only if it stayed dark in every scanned frame.
        threshold: a pixel is dark when its maximum is below this.
        line_fraction: a border row/column is a bar when at least this share of it is dark
            (tolerates a few noisy pixels from compression).
        min_content: if the box would keep less than this share of the width or height, the
            frames were probably just dark (a fade-in, night) and the full frame is returned.

    Returns the full frame when no bars are found.
    """
    if max_image.ndim != 2:
        raise ValueError(f"max_image must be (H, W), got {max_image.shape}")
    h, w = max_image.shape
    dark = max_image < threshold
    rows = dark.mean(axis=1) >= line_fraction
    top = _leading_true(rows)
    bottom = _leading_true(rows[::-1])
    if top + bottom >= h:
        return (0, 0, w, h)
    cols = dark[top : h - bottom].mean(axis=0) >= line_fraction
    left = _leading_true(cols)
    right = _leading_true(cols[::-1])
    cw, ch = w - left - right, h - top - bottom
    if cw < min_content * w or ch < min_content * h:
        return (0, 0, w, h)
    return (left, top, cw, ch)


def _leading_true(flags: np.ndarray) -> int:
    """Number of True values before the first False."""
    false = np.flatnonzero(~flags)
    return int(false[0]) if false.size else int(flags.size)
