"""The shard manifest: a wids shard index (``wids-shard-index-v1``) plus a ``dvg`` section.

Readers list shards from this file, never from a ``*.tar`` glob: the output writer builds it from
the done markers, so a shard that was never finished (or is still being written) is not listed.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path, PurePosixPath

from dvg.shards.format import FORMAT_VERSION, READABLE_VERSIONS, ShardFormatError

MANIFEST_NAME = "manifest.json"
WIDS_KIND = "wids-shard-index-v1"
WIDS_VERSION = 1
_MD5_RE = re.compile(r"^[0-9a-f]{32}$")


@dataclass(frozen=True)
class ShardEntry:
    """One shard of the index: ``url`` relative to the manifest, sample count, size, md5 (hex)."""

    url: str
    nsamples: int
    filesize: int
    md5sum: str

    def __post_init__(self) -> None:
        if not isinstance(self.url, str) or not self.url:
            raise ShardFormatError(f"shard url must be a non-empty str, got {self.url!r}")
        for name in ("nsamples", "filesize"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 0:
                raise ShardFormatError(
                    f"{self.url}: {name} must be a non-negative int, got {value!r}"
                )
        if not isinstance(self.md5sum, str) or not _MD5_RE.match(self.md5sum):
            raise ShardFormatError(
                f"{self.url}: md5sum must be 32 lowercase hex digits, got {self.md5sum!r}"
            )


def file_md5(path: str | os.PathLike[str], chunk: int = 1 << 20) -> str:
    """Hex md5 of a file, read in 1 MiB chunks."""
    digest = hashlib.md5(usedforsecurity=False)
    with Path(path).open("rb") as f:
        while block := f.read(chunk):
            digest.update(block)
    return digest.hexdigest()


def shard_entry(
    path: str | os.PathLike[str], nsamples: int, *, base: str | os.PathLike[str] | None = None
) -> ShardEntry:
    """Index entry of a finished shard: size and md5 from the file; ``url`` is the path relative to
    ``base`` (the manifest's directory) in POSIX form, or the file name when ``base`` is None."""
    path = Path(path)
    url = path.name if base is None else path.resolve().relative_to(Path(base).resolve()).as_posix()
    return ShardEntry(
        url=url, nsamples=nsamples, filesize=path.stat().st_size, md5sum=file_md5(path)
    )


def _check_relative(url: str, where: str) -> None:
    posix = PurePosixPath(url)
    if "://" in url or posix.is_absolute() or ".." in posix.parts or "\\" in url:
        raise ShardFormatError(
            f"{where}: shard url {url!r} must be a relative path below the manifest"
        )


def write_manifest(
    out_dir: str | os.PathLike[str],
    entries: Sequence[ShardEntry],
    extra: Mapping | None = None,
) -> Path:
    """Write ``out_dir/manifest.json`` atomically and return its path.

    Content: ``{"__kind__": "wids-shard-index-v1", "wids_version": 1, "shardlist": [{"url",
    "nsamples", "filesize", "md5sum"}, ...], "dvg": {"format_version": FORMAT_VERSION,
    **extra}}``. Entries are sorted by url so the file does not depend on the order shards
    finished in; urls must be relative (wids resolves them against the manifest's directory).
    Atomic: a temporary file in ``out_dir`` is written, flushed and fsynced, moved over the old
    manifest with ``os.replace``, and the directory is fsynced, so a reader sees the old
    manifest or the new one, never a mix.
    """
    out_dir = Path(out_dir)
    path = out_dir / MANIFEST_NAME
    urls = [e.url for e in entries]
    for url in urls:
        _check_relative(url, str(path))
    duplicates = sorted({u for u in urls if urls.count(u) > 1})
    if duplicates:
        raise ShardFormatError(f"{path}: shard urls listed twice: {duplicates}")
    dvg_section = dict(extra or {})
    if dvg_section.get("format_version", FORMAT_VERSION) != FORMAT_VERSION:
        raise ShardFormatError(f"{path}: extra['format_version'] must be {FORMAT_VERSION}")
    dvg_section["format_version"] = FORMAT_VERSION
    index = {
        "__kind__": WIDS_KIND,
        "wids_version": WIDS_VERSION,
        "shardlist": [asdict(e) for e in sorted(entries, key=lambda e: e.url)],
        "dvg": dvg_section,
    }
    try:
        text = json.dumps(index, indent=1, sort_keys=True, allow_nan=False) + "\n"
    except (TypeError, ValueError) as exn:
        raise ShardFormatError(f"{path}: extra is not plain JSON: {exn}") from None

    tmp = out_dir / f".{MANIFEST_NAME}.{os.getpid()}.tmp"
    try:
        with tmp.open("w", encoding="utf-8") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    fsync_dir(out_dir)
    return path


def fsync_dir(directory: Path) -> None:
    """Make a rename in ``directory`` durable (a no-op where folders cannot be opened, e.g.
    Windows); shared by every atomic write of the project (shards, manifests, checkpoints)."""
    if os.name != "posix":
        return
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def manifest_path(path: str | os.PathLike[str]) -> Path:
    """``path`` itself if it is a file, else ``path/manifest.json``."""
    path = Path(path)
    return path / MANIFEST_NAME if path.is_dir() else path


def read_manifest(path: str | os.PathLike[str]) -> tuple[list[ShardEntry], dict]:
    """Read a manifest (the file or the directory holding ``manifest.json``).

    Returns: the shard entries in file order (urls as stored, relative to the manifest's
    directory) and the ``dvg`` section (``{}`` for a plain wids index).

    Raises:
        ShardFormatError (a ValueError) naming the file when it is missing, not a wids shard index,
        has malformed entries, or was written for another ``format_version``.
    """
    path = manifest_path(path)
    if not path.is_file():
        raise ShardFormatError(
            f"{path}: no shard manifest here; the output writer creates it once shards are done "
            "(readers never glob *.tar)"
        )
    try:
        index = json.loads(path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exn:
        raise ShardFormatError(f"{path}: not valid JSON: {exn}") from None
    if not isinstance(index, dict) or index.get("__kind__") != WIDS_KIND:
        raise ShardFormatError(f"{path}: not a wids shard index (__kind__ must be {WIDS_KIND!r})")
    if index.get("wids_version") != WIDS_VERSION:
        raise ShardFormatError(f"{path}: unsupported wids_version {index.get('wids_version')!r}")
    shardlist = index.get("shardlist")
    if not isinstance(shardlist, list):
        raise ShardFormatError(f"{path}: 'shardlist' must be a list")
    entries = []
    for i, item in enumerate(shardlist):
        if (
            not isinstance(item, dict)
            or not {"url", "nsamples", "filesize", "md5sum"} <= item.keys()
        ):
            raise ShardFormatError(f"{path}: shardlist[{i}] needs url, nsamples, filesize, md5sum")
        try:
            entry = ShardEntry(item["url"], item["nsamples"], item["filesize"], item["md5sum"])
        except ShardFormatError as exn:
            raise ShardFormatError(f"{path}: shardlist[{i}]: {exn}") from None
        _check_relative(entry.url, str(path))
        entries.append(entry)
    dvg_section = index.get("dvg", {})
    if not isinstance(dvg_section, dict):
        raise ShardFormatError(f"{path}: 'dvg' must be an object")
    version = dvg_section.get("format_version", FORMAT_VERSION)
    if version not in READABLE_VERSIONS:
        raise ShardFormatError(
            f"{path}: shards have format_version {version!r}; this reader reads versions "
            f"{', '.join(map(str, READABLE_VERSIONS))}"
        )
    return entries, dvg_section
