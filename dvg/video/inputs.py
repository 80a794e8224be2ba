"""Finding the source videos of a run: directories, list files, glob patterns, single files."""

from __future__ import annotations

import glob
import os
from collections.abc import Iterable, Sequence
from pathlib import Path

VIDEO_EXTENSIONS = frozenset(
    {
        ".3g2", ".3gp", ".avi", ".flv", ".gif", ".m2ts", ".m4v", ".mkv", ".mov", ".mp4",
        ".mpeg", ".mpg", ".mts", ".mxf", ".ogv", ".ts", ".vob", ".webm", ".wmv",
    }
)  # fmt: skip
LIST_EXTENSIONS = frozenset({".txt", ".lst"})
_GLOB_CHARS = frozenset("*?[")


def is_video_file(path: str | Path) -> bool:
    """True for a non-hidden file name with a video extension (case-insensitive)."""
    name = Path(path).name
    return not name.startswith(".") and Path(name).suffix.lower() in VIDEO_EXTENSIONS


def discover_inputs(sources: Sequence[str | Path]) -> list[str]:
    """Sorted, de-duplicated absolute posix paths of the videos named by ``sources``.

    Each source is one of:
      - a directory: searched recursively for video files by extension (hidden files and
        folders skipped);
      - a list file (``.txt`` / ``.lst``): one path per line, blank lines and ``#`` comments
        skipped, relative paths resolved against the list file's folder; a listed directory
        is searched, a listed file is kept even if missing (it fails later as ``not_found``,
        so one stale line does not stop a run);
      - a glob pattern (``*``, ``?``, ``[``; ``**`` recurses): matching video files;
      - a single file: kept whatever its extension (it fails later if it is not a video).

    Raises ValueError naming a source that matches no video.
    """
    if isinstance(sources, (str, Path)):
        raise TypeError("discover_inputs takes a sequence of sources, not a single path")
    found: set[str] = set()
    for source in sources:
        matches = _expand(str(source))
        if not matches:
            raise ValueError(f"input source {str(source)!r} matches no video file")
        found.update(matches)
    return sorted(found)


def _expand(source: str) -> list[str]:
    path = Path(source)
    if path.is_dir():
        return [_absolute(p) for p in _walk_videos(path)]
    if path.is_file():
        if path.suffix.lower() in LIST_EXTENSIONS:
            return _read_list(path)
        return [_absolute(path)]
    if _GLOB_CHARS & set(source):
        matches = glob.glob(source, recursive=True)
        return [_absolute(m) for m in matches if os.path.isfile(m) and is_video_file(m)]
    return []


def _walk_videos(root: Path) -> Iterable[Path]:
    for folder, dirs, files in os.walk(root, followlinks=True):
        dirs[:] = [d for d in dirs if not d.startswith(".")]
        for name in files:
            if is_video_file(name):
                yield Path(folder) / name


def _read_list(list_file: Path) -> list[str]:
    entries: list[str] = []
    for line in list_file.read_text(encoding="utf-8").splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        path = Path(line).expanduser()
        if not path.is_absolute():
            path = list_file.parent / path
        if path.is_dir():
            entries.extend(_absolute(p) for p in _walk_videos(path))
        else:
            entries.append(_absolute(path))
    return entries


def _absolute(path: str | Path) -> str:
    """Absolute and normalised, but symlinks kept (their names are what users recognise)."""
    return Path(os.path.abspath(path)).as_posix()
