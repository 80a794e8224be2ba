"""`realestate10k`: single-view novel view synthesis at t = 5 and t = 10 (paper Table 1).

Local layout (the dataset cannot be downloaded by this tool; docs/evaluation.md says how to
prepare it)::

    DIR/cameras/<clip>.txt                 one RealEstate10K camera file per clip
    DIR/frames/<clip>/<timestamp_us>.png   the frame of each camera line (.jpg also accepted)

A camera file's first line is the video URL; every further line is 19 numbers:
``timestamp_us fx fy cx cy 0 0`` and a row-major 3x4 world-to-camera matrix, with fx, cx
normalised by the image width and fy, cy by its height, in the OpenCV camera convention
(x right, y down, z forward; checked by a synthetic round trip in the tests). The relative
pose source -> target is ``T_tgt @ inv(T_src)``.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from evaluation.benchmarks.base import Pair


@dataclass
class CameraTrack:
    url: str
    timestamps: np.ndarray
    """(N,) int64 microseconds."""
    intrinsics: np.ndarray
    """(N, 4) fx, fy, cx, cy normalised by width (fx, cx) and height (fy, cy)."""
    world_to_camera: np.ndarray
    """(N, 4, 4) float64."""

    def K(self, index: int, width: int, height: int) -> np.ndarray:
        fx, fy, cx, cy = self.intrinsics[index]
        return np.array([[fx * width, 0, cx * width], [0, fy * height, cy * height], [0, 0, 1]])


def parse_camera_file(path: str | Path) -> CameraTrack:
    """Read a RealEstate10K camera file; errors name the file and the line."""
    path = Path(path)
    lines = [line for line in path.read_text().splitlines() if line.strip()]
    if not lines:
        raise ValueError(f"{path}: empty camera file")
    timestamps, intrinsics, poses = [], [], []
    for number, line in enumerate(lines[1:], start=2):
        values = line.split()
        if len(values) != 19:
            raise ValueError(f"{path}:{number}: expected 19 numbers, got {len(values)}")
        numbers = [float(v) for v in values]
        timestamps.append(int(values[0]))
        intrinsics.append(numbers[1:5])
        pose = np.eye(4)
        pose[:3, :4] = np.array(numbers[7:19]).reshape(3, 4)
        poses.append(pose)
    if not poses:
        raise ValueError(f"{path}: no camera lines after the URL")
    return CameraTrack(
        lines[0].strip(), np.array(timestamps, np.int64), np.array(intrinsics), np.stack(poses)
    )


def write_camera_file(path: str | Path, track: CameraTrack) -> None:
    """The inverse of :func:`parse_camera_file` (used to build fixtures)."""
    rows = [track.url]
    for t, k, pose in zip(track.timestamps, track.intrinsics, track.world_to_camera, strict=True):
        numbers = [*k, 0.0, 0.0, *pose[:3, :4].reshape(-1)]
        rows.append(" ".join([str(int(t)), *(f"{v:.10g}" for v in numbers)]))
    Path(path).write_text("\n".join(rows) + "\n")


@dataclass(frozen=True)
class RealEstate10KConfig:
    data: str
    offsets: tuple[int, ...] = (5, 10)
    stride: int = 10
    """Source frames every ``stride`` camera lines."""
    max_clips: int | None = None
    max_pairs_per_clip: int | None = None
    size: tuple[int, int] | None = None
    """(width, height) to resize frames to (intrinsics are normalised, so they follow)."""


def _frame(folder: Path, timestamp: int, size: tuple[int, int] | None) -> np.ndarray:
    for suffix in (".png", ".jpg", ".jpeg"):
        path = folder / f"{timestamp}{suffix}"
        if path.exists():
            image = cv2.imread(str(path), cv2.IMREAD_COLOR)
            if image is None:
                raise ValueError(f"{path}: unreadable image")
            if size is not None:
                image = cv2.resize(image, size, interpolation=cv2.INTER_AREA)
            return np.ascontiguousarray(image[..., ::-1])
    raise ValueError(f"{folder}: no frame for timestamp {timestamp} (.png or .jpg)")


def realestate10k_pairs(config: RealEstate10KConfig) -> Iterator[Pair]:
    root = Path(config.data)
    cameras = sorted((root / "cameras").glob("*.txt"))
    if not cameras:
        raise ValueError(f"{root}: no camera files in {root / 'cameras'} (see docs/evaluation.md)")
    for camera in cameras[: config.max_clips]:
        track = parse_camera_file(camera)
        folder = root / "frames" / camera.stem
        count = 0
        for i in range(0, len(track.timestamps), config.stride):
            if config.max_pairs_per_clip is not None and count >= config.max_pairs_per_clip:
                break
            source = _frame(folder, int(track.timestamps[i]), config.size)
            height, width = source.shape[:2]
            for offset in _offsets(config.offsets, i, len(track.timestamps)):
                target = _frame(folder, int(track.timestamps[i + offset]), config.size)
                T = track.world_to_camera[i + offset] @ np.linalg.inv(track.world_to_camera[i])
                yield Pair(
                    id=f"{camera.stem}_{i:05d}_t{offset}",
                    source=source,
                    target=target,
                    K=track.K(i, width, height),
                    T=T,
                    offset=f"t={offset}",
                    baseline=float(np.linalg.norm(T[:3, 3])),
                )
            count += 1


def _offsets(offsets: Sequence[int], index: int, length: int) -> list[int]:
    return [o for o in offsets if index + o < length]
