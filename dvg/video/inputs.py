"""Finding the source videos of a run: directories, list files, glob patterns, single files."""

from __future__ import annotations

import glob
import os
import posixpath
from collections.abc import Sequence
from dataclasses import dataclass
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


@dataclass(frozen=True, order=True)
class VideoInput:
    """One source video: ``name`` identifies it, ``path`` is where this run reads it.

    ``name`` is the video's POSIX path relative to its input root (see :func:`discover_inputs`),
    so the same videos reached through another mount point or a copied folder keep their names,
    sample keys and shard groups, and a build resumes instead of starting over.
    """

    name: str
    path: str


def discover_inputs(sources: Sequence[str | Path]) -> list[VideoInput]:
    """The videos named by ``sources``, sorted by name, de-duplicated by absolute path.

    Each source is one of (its *root* in brackets: names are paths relative to it):
      - a directory [the directory]: searched recursively for video files by extension (hidden
        files and folders skipped);
      - a list file (``.txt`` / ``.lst``) [the list file's folder]: one path per line, blank lines
        and ``#`` comments skipped, relative paths resolved against the list file's folder (an
        absolute entry is named by its absolute path); a listed directory is searched, a listed
        file is kept even if missing (it fails later as ``not_found``, so one stale line does
        not stop a run);
      - a glob pattern (``*``, ``?``, ``[``; ``**`` recurses) [its leading non-pattern folder]:
        matching video files;
      - a single file [its folder]: kept whatever its extension (it fails later if it is not a
        video).

    Raises ValueError naming a source that matches no video, or two different files that would
    get the same name (pass their common parent folder instead).
    """
    if isinstance(sources, (str, Path)):
        raise TypeError("discover_inputs takes a sequence of sources, not a single path")
    by_path: dict[str, str] = {}
    for source in sources:
        matches = _expand(str(source))
        if not matches:
            raise ValueError(f"input source {str(source)!r} matches no video file")
        for name, path in matches:
            by_path[path] = min(name, by_path.get(path, name))
    by_name: dict[str, str] = {}
    for path, name in sorted(by_path.items()):
        if name in by_name:
            raise ValueError(
                f"input videos {by_name[name]} and {path} would both be named {name!r} (a video's "
                "name is its path relative to the folder, list or glob that found it); pass "
                "their common parent folder as --videos instead"
            )
        by_name[name] = path
    return sorted(VideoInput(name, path) for name, path in by_name.items())


def _expand(source: str) -> list[tuple[str, str]]:
    """``(name, absolute path)`` of every video ``source`` names."""
    path = Path(source)
    if path.is_dir():
        return _walk_videos(path, prefix="")
    if path.is_file():
        if path.suffix.lower() in LIST_EXTENSIONS:
            return _read_list(path)
        return [(path.name, _absolute(path))]
    if _GLOB_CHARS & set(source):
        root = _glob_root(source)
        matches = glob.glob(source, recursive=True)
        return [
            (_relative(m, root), _absolute(m))
            for m in matches
            if os.path.isfile(m) and is_video_file(m)
        ]
    return []


def _walk_videos(root: Path, prefix: str) -> list[tuple[str, str]]:
    found = []
    for folder, dirs, files in os.walk(root, followlinks=True):
        dirs[:] = [d for d in dirs if not d.startswith(".")]
        for name in files:
            if is_video_file(name):
                path = Path(folder) / name
                found.append((prefix + _relative(path, root), _absolute(path)))
    return found


def _read_list(list_file: Path) -> list[tuple[str, str]]:
    entries: list[tuple[str, str]] = []
    for line in list_file.read_text(encoding="utf-8").splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        path = Path(line).expanduser()
        # Relative entries are named as written (normalised); absolute ones by their path.
        name = posixpath.normpath(path.as_posix())
        if not path.is_absolute():
            path = list_file.parent / path
        if path.is_dir():
            entries.extend(_walk_videos(path, prefix=f"{name}/"))
        else:
            entries.append((name, _absolute(path)))
    return entries


def _glob_root(pattern: str) -> str:
    """The leading folders of a glob pattern that hold no pattern character."""
    parts = Path(pattern).parts
    fixed = []
    for part in parts[:-1]:
        if _GLOB_CHARS & set(part):
            break
        fixed.append(part)
    return str(Path(*fixed)) if fixed else "."


def _relative(path: str | Path, root: str | Path) -> str:
    return Path(os.path.relpath(os.path.abspath(path), os.path.abspath(root))).as_posix()


def _absolute(path: str | Path) -> str:
    """Absolute and normalised, but symlinks kept (their names are what users recognise)."""
    return Path(os.path.abspath(path)).as_posix()
