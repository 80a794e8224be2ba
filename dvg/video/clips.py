"""Streaming a source video into fixed-length training clips that never cross a scene cut.

Paper 4.2: "the videos were first split according to the transitions to ensure that a scene only
appeared in one video clip". Frames are decoded one at a time, scored for cuts on the fly and
collected into clips of ``clip_length`` frames; a clip is yielded as soon as it is complete, so
at most ``clip_length`` output frames are held at once.
"""

from __future__ import annotations

import dataclasses
from collections import deque
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Generic, TypeVar

import numpy as np

from dvg.video.decode import (
    DecodedFrame,
    VideoConfig,
    VideoError,
    VideoInfo,
    check_output_size,
    probe_video,
    read_frames,
    read_max_image,
)
from dvg.video.scenecut import SceneCutDetector
from dvg.video.transform import FrameTransform, detect_letterbox

T = TypeVar("T")


@dataclass
class VideoClip:
    """``clip_length`` consecutive output frames of one scene of one video.

    frames: (F, H, W, 3) uint8 RGB, C-contiguous; frame_indices, source_indices: (F,) int64
    (output stream / nearest native frame, the latter indexes per-native-frame sidecars);
    timestamps: (F,) float64 seconds after the first decoded frame.
    """

    video: str
    scene: int
    index: int
    frames: np.ndarray
    frame_indices: np.ndarray
    source_indices: np.ndarray
    timestamps: np.ndarray
    fps: float
    transform: FrameTransform
    info: VideoInfo


class ClipSampler(Generic[T]):
    """Cuts a stream of items into runs of ``clip_length`` that start every ``stride`` items of
    a scene and never cross a scene boundary.

    Only items of a clip still to be completed are held (at most ``clip_length``; with a stride
    larger than the clip, the items between clips are never stored). ``peak_held`` records the
    most ever held.
    """

    def __init__(self, clip_length: int, stride: int):
        if clip_length < 1 or stride < 1:
            raise ValueError(f"clip_length and stride must be >= 1, got {clip_length}, {stride}")
        self.clip_length = clip_length
        self.stride = stride
        self.scene = -1
        self.peak_held = 0
        self.longest_scene = 0
        self._held: deque[T] = deque()
        self._position = 0  # of the next item within its scene
        self._next_start = 0  # scene position where the next clip starts

    @property
    def held(self) -> int:
        return len(self._held)

    def push(self, item: T, new_scene: bool) -> tuple[int, list[T]] | None:
        """Add the next item; returns (scene, items of a completed clip) or None."""
        if new_scene or self.scene < 0:
            self.scene += 1
            self._held.clear()
            self._position = 0
            self._next_start = 0
        if self._position >= self._next_start:
            self._held.append(item)
            self.peak_held = max(self.peak_held, len(self._held))
        self._position += 1
        self.longest_scene = max(self.longest_scene, self._position)
        if len(self._held) < self.clip_length:
            return None
        clip = list(self._held)
        self._next_start += self.stride
        for _ in range(min(self.stride, self.clip_length)):
            self._held.popleft()
        return self.scene, clip


def iter_video_clips(path: str | Path, config: VideoConfig) -> Iterator[VideoClip]:
    """Decode ``path`` and yield its clips in decode order (see the module docstring).

    Deterministic for a given file and config. Raises VideoError: the probe's reasons, too_small
    when the letterbox crop leaves too little, truncated / decode_error after the clips decoded
    before the failure, too_short when no clip could be formed.
    """
    info = probe_video(path, config)
    crop = (0, 0, info.width, info.height)
    if config.crop_letterbox:
        crop = detect_letterbox(read_max_image(info))
        if crop != (0, 0, info.width, info.height):
            info = dataclasses.replace(info, notes=(*info.notes, f"letterbox crop {crop}"))
    if min(crop[2], crop[3]) < config.min_side:
        raise VideoError(
            info.path,
            "too_small",
            f"the picture inside the black bars is {crop[2]}x{crop[3]}, below "
            f"min_side={config.min_side}",
        )
    transform = check_output_size(info, crop, config)

    fps = float(config.fps) if config.fps is not None else info.fps
    detector = SceneCutDetector(config.scene_threshold, config.min_scene_length)
    sampler: ClipSampler[DecodedFrame] = ClipSampler(config.clip_length, config.stride)
    frames = read_frames(info, transform.ffmpeg_filters(), transform.output_size, config.fps)
    clips = 0
    decoded = 0
    try:
        for frame in frames:
            decoded += 1
            completed = sampler.push(frame, new_scene=detector.update(frame.image))
            if completed is None:
                continue
            scene, items = completed
            yield VideoClip(
                video=str(path),
                scene=scene,
                index=clips,
                frames=np.stack([item.image for item in items]),
                frame_indices=np.array([item.index for item in items], dtype=np.int64),
                source_indices=np.array([item.source_index for item in items], dtype=np.int64),
                timestamps=np.array([item.timestamp for item in items], dtype=np.float64),
                fps=fps,
                transform=transform,
                info=info,
            )
            clips += 1
            if config.max_clips_per_video is not None and clips >= config.max_clips_per_video:
                return
    finally:
        frames.close()  # stops ffmpeg when the consumer or max_clips_per_video ends early
    if clips == 0:
        scenes = sampler.scene + 1
        raise VideoError(
            info.path,
            "too_short",
            f"{decoded} frames decoded in {scenes} scene(s), the longest has "
            f"{sampler.longest_scene}; a clip needs {config.clip_length}",
        )
