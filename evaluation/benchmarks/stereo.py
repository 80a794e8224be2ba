"""`stereo`: score methods on the user's own stereo videos against their real right views.

``evaluation run --benchmark stereo --pairs DIR`` finds, anywhere under DIR:

* **two files per clip**: ``NAME_L.mp4`` + ``NAME_R.mp4`` (also ``_left``/``_right``,
  ``.left``/``.right``, any case, any video extension);
* **one packed file**: ``NAME_SBS.mp4`` (also ``_LR``; left eye in the left half) or ``NAME_TB``
  (also ``_OU``; left eye on top). Half- and full-width packing are the same to this reader: the
  frame is cut in two.

Every ``--every``-th frame (default 10, at most ``--max-frames`` per clip) becomes a pair: the
left view is the source, the real right view the target. Each method predicts depth for the left
view (``--depth-model``: a dvg depth backend; ``sidecar`` reads ``NAME_L.depth.npy`` etc. next
to the left file, or next to the packed file with the size of one eye), warps it to the right eye
and fills the holes. A rig's focal length and baseline are unknown, so the scale of each
method's disparity is fitted to the real right view with the photometric rule the RealEstate10K
benchmark uses (evaluation/protocol.py), identically for every method; a parallel rig is assumed
(disparity >= 0), so footage converged on a screen plane (negative disparities) scores lower for
every method alike. Frames are scored one at a time (PSNR, SSIM, LPIPS): temporal consistency is
the ``video`` benchmark's measure.
"""

from __future__ import annotations

import itertools
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from dvg.geometry import stereo_pose
from dvg.video import is_video_file
from evaluation.benchmarks.base import Pair

_SPLIT = re.compile(r"^(?P<name>.+?)[._-](?P<tag>l|r|left|right|sbs|lr|tb|ou)$", re.IGNORECASE)
_PACKED = {"sbs": "sbs", "lr": "sbs", "tb": "tb", "ou": "tb"}

DISPARITY_AT_UNIT_SCALE = 0.01
"""Median disparity, as a fraction of the width, at scale 1 of the protocol's scale grid (the
grid then spans 0.05% to 20% of the width)."""


@dataclass(frozen=True)
class StereoConfig:
    pairs: str
    """Folder of the user's stereo clips (searched recursively)."""
    every: int = 10
    """Score every n-th frame."""
    max_frames: int | None = 30
    """At most this many scored frames per clip (None: all)."""


@dataclass(frozen=True)
class StereoClip:
    """One clip: a left and a right file, or one packed file (``layout`` "sbs" or "tb")."""

    name: str
    left: Path
    right: Path | None
    layout: str = "files"


def find_clips(folder: str | Path) -> tuple[list[StereoClip], list[str]]:
    """The stereo clips under ``folder`` and the video files that are not part of one."""
    folder = Path(folder)
    if not folder.is_dir():
        raise ValueError(f"--pairs {folder}: not a folder")
    halves: dict[tuple[Path, str], dict[str, Path]] = {}
    clips, ignored = [], []
    for path in sorted(p for p in folder.rglob("*") if p.is_file() and is_video_file(p)):
        match = _SPLIT.match(path.stem)
        tag = match["tag"].lower() if match else ""
        if tag in _PACKED:
            clips.append(StereoClip(match["name"], path, None, _PACKED[tag]))
        elif match:
            halves.setdefault((path.parent, match["name"]), {})[tag[0]] = path
        else:
            ignored.append(str(path))
    for (_, name), eyes in sorted(halves.items()):
        if set(eyes) == {"l", "r"}:
            clips.append(StereoClip(name, eyes["l"], eyes["r"]))
        else:
            missing = "right" if "l" in eyes else "left"
            ignored += [f"{path} (no {missing} file)" for path in eyes.values()]
    return clips, ignored


def _split(frame: np.ndarray, layout: str) -> tuple[np.ndarray, np.ndarray]:
    """A packed frame (H, W, 3) -> (left, right) eyes."""
    if layout == "sbs":
        half = frame.shape[1] // 2
        return frame[:, :half], frame[:, half : 2 * half]
    half = frame.shape[0] // 2
    return frame[:half], frame[half : 2 * half]


def _eye_frames(clip: StereoClip) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    from pipelines.convert.io import iter_frames, probe

    if clip.right is None:
        for frame in iter_frames(probe(clip.left)):
            yield _split(frame, clip.layout)
        return
    lefts, rights = iter_frames(probe(clip.left)), iter_frames(probe(clip.right))
    for left, right in zip(lefts, rights, strict=False):  # the shorter file ends the clip
        if left.shape != right.shape:
            raise ValueError(
                f"{clip.left} and {clip.right}: frames of {left.shape[1]}x{left.shape[0]} and "
                f"{right.shape[1]}x{right.shape[0]} differ"
            )
        yield left, right


def rig(width: int, height: int) -> tuple[np.ndarray, np.ndarray]:
    """(K, T) of an uncalibrated parallel rig: focal = width, centred principal point, and the
    baseline that gives DISPARITY_AT_UNIT_SCALE at scale 1 (the fit finds the real scale)."""
    K = np.array([[width, 0, (width - 1) / 2], [0, width, (height - 1) / 2], [0, 0, 1]], float)
    T = stereo_pose(DISPARITY_AT_UNIT_SCALE)[0].numpy().astype(np.float64)
    return K, T


def stereo_pairs(config: StereoConfig, clips: list[StereoClip]) -> Iterator[Pair]:
    """Every ``config.every``-th frame of each clip as a left -> right pair."""
    if config.every < 1:
        raise ValueError(f"--every must be >= 1, got {config.every}")
    for clip in clips:
        frames = itertools.islice(enumerate(_eye_frames(clip)), 0, None, config.every)
        for index, (left, right) in itertools.islice(frames, config.max_frames):
            K, T = rig(left.shape[1], left.shape[0])
            yield Pair(
                id=f"{clip.name}_f{index:06d}",
                source=np.ascontiguousarray(left),
                target=np.ascontiguousarray(right),
                K=K,
                T=T,
                offset="stereo",
                video=str(clip.left),
                frame_index=index,
            )
