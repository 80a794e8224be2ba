"""Finding the source videos of a run: directories, list files, glob patterns, single files.

Folders are walked by :func:`walk_videos`, which follows symbolic links into folders but never
into one it has already visited (folders are told apart by device and inode), so a link to its
own folder or to a parent neither repeats videos nor hangs the walk. File names may be any
byte string: a name that is not valid UTF-8 is named in text with its undecodable bytes written
as ``\\xNN`` (:func:`utf8_text`), while ``path`` keeps the exact bytes for reading.
"""

from __future__ import annotations

import fnmatch
import os
import posixpath
import warnings
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


def utf8_text(text: str) -> str:
    """``text`` as valid UTF-8 text: file names read from the OS keep bytes that are not UTF-8 as
    lone surrogates (``os.fsdecode``), which JSON and parquet cannot hold; each such byte becomes
    the four characters ``\\xNN``. Valid text is returned unchanged."""
    try:
        raw = text.encode("utf-8", "surrogateescape")
    except UnicodeEncodeError:  # a surrogate that is not an escaped byte
        return text.encode("utf-8", "backslashreplace").decode("utf-8")
    return raw.decode("utf-8", "backslashreplace")


@dataclass(frozen=True, order=True)
class VideoInput:
    """One source video: ``name`` identifies it, ``path`` is where this run reads it.

    ``name`` is the video's POSIX path relative to its input root (see :func:`discover_inputs`),
    so the same videos reached through another mount point or a copied folder keep their names,
    sample keys and shard groups, and a build resumes instead of starting over. It is always
    valid UTF-8 (:func:`utf8_text`); ``path`` is the exact file system path (``os.fsencode``
    gives back its bytes).
    """

    name: str
    path: str


def discover_inputs(sources: Sequence[str | Path]) -> list[VideoInput]:
    """The videos named by ``sources``, sorted by name, one entry per file.

    Each source is one of (its *root* in brackets: names are paths relative to it):
      - a directory [the directory]: searched recursively for video files by extension (hidden
        files and folders skipped; links followed, never into a folder already visited);
      - a list file (``.txt`` / ``.lst``) [the list file's folder]: one path per line, blank lines
        and ``#`` comments skipped, relative paths resolved against the list file's folder (an
        absolute entry is named by its absolute path); a listed directory is searched, a listed
        file is kept even if missing (it fails later as ``not_found``, so one stale line does
        not stop a run);
      - a glob pattern (``*``, ``?``, ``[``; ``**`` recurses) [its leading non-pattern folder]:
        matching video files;
      - a single file [its folder]: kept whatever its extension (it fails later if it is not a
        video).

    A file reached under several names (links, overlapping sources) is kept once, under the
    name that sorts first. Entries that are not regular files (broken links, FIFOs) are kept so
    that they become ledger rows.

    Raises ValueError naming a source that matches no video, or two different files that would
    get the same name (pass their common parent folder instead).
    """
    if isinstance(sources, (str, Path)):
        raise TypeError("discover_inputs takes a sequence of sources, not a single path")
    by_file: dict[object, tuple[str, str]] = {}
    for source in sources:
        matches = _expand(str(source))
        if not matches:
            raise ValueError(f"input source {utf8_text(str(source))!r} matches no video file")
        for name, path in matches:
            ident = _file_id(path)
            by_file[ident] = min((name, path), by_file.get(ident, (name, path)))
    by_name: dict[str, str] = {}
    for name, path in sorted(by_file.values()):
        if name in by_name:
            raise ValueError(
                f"input videos {utf8_text(by_name[name])} and {utf8_text(path)} would both be "
                f"named {name!r} (a video's name is its path relative to the folder, list or glob "
                "that found it); pass their common parent folder as --videos instead"
            )
        by_name[name] = path
    return sorted(VideoInput(name, path) for name, path in by_name.items())


def walk_videos(root: str | Path, max_depth: int | None = None) -> list[str]:
    """Paths below ``root`` of non-hidden entries with a video extension, depth first in sorted
    order.

    Links to folders are followed unless the folder (its device and inode) was visited already,
    so loops end at once and every folder is listed once. A folder that cannot be listed is
    skipped with a warning naming it. ``max_depth`` limits how many folders deep it goes.
    """
    root_id = _dir_id(root)
    visited = {root_id} if root_id is not None else set()
    found: list[str] = []
    stack: list[tuple[str, int]] = [(os.fspath(root), 0)]
    while stack:
        folder, depth = stack.pop()
        try:
            with os.scandir(folder) as listing:
                entries = sorted(listing, key=lambda entry: entry.name)
        except OSError as error:
            warnings.warn(
                f"cannot list {utf8_text(folder)} ({error.strerror}); its videos are skipped",
                stacklevel=2,
            )
            continue
        folders = []
        for entry in entries:
            if entry.name.startswith("."):
                continue
            if _is_dir(entry):
                ident = _dir_id(entry.path)
                if ident is None or ident in visited:
                    continue  # a link back into a visited folder (a loop) or a second path to it
                visited.add(ident)
                if max_depth is None or depth < max_depth:
                    folders.append(entry.path)
            elif is_video_file(entry.name):
                found.append(entry.path)
        stack.extend((path, depth + 1) for path in reversed(folders))
    return found


def _is_dir(entry: os.DirEntry) -> bool:
    try:
        return entry.is_dir()  # follows links; False for a broken link
    except OSError:  # a link loop (ELOOP) and the like
        return False


def _dir_id(path: str | Path) -> tuple[int, int] | None:
    try:
        info = os.stat(path)
    except OSError:
        return None
    return (info.st_dev, info.st_ino)


def _file_id(path: str) -> object:
    """What makes two paths the same file: device and inode when it exists, else the path."""
    try:
        info = os.stat(path)
    except OSError:
        return path
    return (info.st_dev, info.st_ino)


def _expand(source: str) -> list[tuple[str, str]]:
    """``(name, absolute path)`` of every video ``source`` names."""
    path = Path(source)
    if path.is_dir():
        return _under(path, prefix="")
    if path.is_file():
        if path.suffix.lower() in LIST_EXTENSIONS:
            return _read_list(path)
        return [(utf8_text(path.name), _absolute(path))]
    if _GLOB_CHARS & set(source):
        return _glob(source)
    return []


def _under(root: Path, prefix: str, max_depth: int | None = None) -> list[tuple[str, str]]:
    return [
        (prefix + utf8_text(_relative(path, root)), _absolute(path))
        for path in walk_videos(root, max_depth)
    ]


def _read_list(list_file: Path) -> list[tuple[str, str]]:
    entries: list[tuple[str, str]] = []
    # Undecodable bytes stay surrogate-escaped: the path still opens the right file.
    for line in list_file.read_text(encoding="utf-8", errors="surrogateescape").splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        path = Path(line).expanduser()
        # Relative entries are named as written (normalised); absolute ones by their path.
        name = utf8_text(posixpath.normpath(path.as_posix()))
        if not path.is_absolute():
            path = list_file.parent / path
        if path.is_dir():
            entries.extend(_under(path, prefix=f"{name}/"))
        else:
            entries.append((name, _absolute(path)))
    return entries


def _glob(pattern: str) -> list[tuple[str, str]]:
    """Videos matching a glob pattern, found by :func:`walk_videos` (so links never loop) below
    the pattern's leading folders; ``**`` matches any number of folders."""
    root = _glob_root(pattern)
    parts = Path(pattern).parts[len(Path(root).parts) if root != "." else 0 :]
    depth = None if "**" in parts else len(parts) - 1
    return [
        (name, path)
        for name, path in _under(Path(root), prefix="", max_depth=depth)
        if _match(parts, Path(_relative(path, root)).parts)
    ]


def _match(pattern: Sequence[str], parts: Sequence[str]) -> bool:
    if not pattern:
        return not parts
    if pattern[0] == "**":
        return any(_match(pattern[1:], parts[i:]) for i in range(len(parts) + 1))
    return (
        bool(parts) and fnmatch.fnmatchcase(parts[0], pattern[0]) and _match(pattern[1:], parts[1:])
    )


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
