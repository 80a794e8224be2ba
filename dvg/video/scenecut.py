"""Hard scene-cut detection on a stream of frames (paper 4.2: videos are split at transitions).

A content detector in the manner of PySceneDetect's ``ContentDetector``: each frame is shrunk,
converted to HSV, and scored by the mean absolute difference to the previous frame, averaged
over the H, S and V channels on a 0-255 scale. A frame starts a new scene when its score reaches
``threshold`` and the current scene already has ``min_scene_length`` frames. Differences from
PySceneDetect: hue uses the full 0-255 range (OpenCV ``HSV_FULL``) and its difference is
circular (hue 250 and hue 5 are 11 apart, not 245), so noise on red hues does not look like a
cut. Gradual transitions (dissolves, fades) change little between consecutive frames and are
not detected.
"""

from __future__ import annotations

import cv2
import numpy as np

ANALYSIS_SIDE = 256  # frames are shrunk so their long side is at most this before scoring


class SceneCutDetector:
    """Feed frames in order; ``update`` says whether a frame starts a new scene."""

    def __init__(self, threshold: float = 27.0, min_scene_length: int = 8):
        if not threshold > 0:
            raise ValueError(f"threshold must be > 0, got {threshold!r}")
        if min_scene_length < 1:
            raise ValueError(f"min_scene_length must be >= 1, got {min_scene_length!r}")
        self.threshold = float(threshold)
        self.min_scene_length = int(min_scene_length)
        self.last_score: float | None = None  # score of the latest frame (None for the first)
        self._previous: np.ndarray | None = None
        self._scene_length = 0

    def reset(self) -> None:
        """Forget the stream (start of a new video)."""
        self.last_score = None
        self._previous = None
        self._scene_length = 0

    def update(self, frame: np.ndarray) -> bool:
        """True if ``frame`` (H, W, 3) uint8 RGB starts a new scene (never for the first)."""
        if frame.ndim != 3 or frame.shape[2] != 3 or frame.dtype != np.uint8:
            raise ValueError(f"frame must be (H, W, 3) uint8, got {frame.shape} {frame.dtype}")
        hsv = _analysis_hsv(frame)
        previous, self._previous = self._previous, hsv
        if previous is None:
            self._scene_length = 1
            return False
        if previous.shape != hsv.shape:
            raise ValueError(f"frame size changed from {previous.shape} to {hsv.shape}")
        self.last_score = content_score(previous, hsv)
        if self.last_score >= self.threshold and self._scene_length >= self.min_scene_length:
            self._scene_length = 1
            return True
        self._scene_length += 1
        return False


def content_score(hsv_a: np.ndarray, hsv_b: np.ndarray) -> float:
    """Mean of the per-channel mean absolute differences of two (H, W, 3) uint8 HSV_FULL images
    (0-255 scale; hue difference taken around the colour circle)."""
    diff = np.abs(hsv_a.astype(np.int16) - hsv_b.astype(np.int16))
    hue = np.minimum(diff[..., 0], 256 - diff[..., 0])
    return float((hue.mean() + diff[..., 1].mean() + diff[..., 2].mean()) / 3.0)


def _analysis_hsv(frame: np.ndarray) -> np.ndarray:
    h, w = frame.shape[:2]
    factor = ANALYSIS_SIDE / max(h, w)
    if factor < 1:
        size = (max(1, round(w * factor)), max(1, round(h * factor)))
        frame = cv2.resize(frame, size, interpolation=cv2.INTER_AREA)
    return cv2.cvtColor(frame, cv2.COLOR_RGB2HSV_FULL)
