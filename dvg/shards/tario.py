"""Deterministic tar writing and strict tar reading for WebDataset-style shards.

Writer: uncompressed POSIX ustar, members with mtime 0, uid/gid 0, empty user/group names and mode
0o644, samples in the given order and members of a sample in a canonical order (``json`` first,
then sorted names). The same samples therefore always give the same bytes and the same md5.

Reader: a small tar parser instead of ``tarfile``, because ``tarfile`` silently ends the archive at
a truncated or garbled header (a shard cut short by a killed writer would read as a shorter,
valid shard). Here a missing end-of-archive block, a short member or a bad header checksum is a
``ShardFormatError`` naming the tar and the byte offset.

Member sizes are bounded before anything is read: a size is taken from the header, checked
against the bytes left in the file (a larger one is a truncated tar) and against the largest
member the sample can hold (its ``json`` member gives the frame size ``[H, W]``:
:func:`frame_member_limit`; before it, or without it, ``max_member_bytes``). An oversized
member is skipped over, never read into memory, and its sample is reported as skipped while the
rest of the tar is read on: a tar member declaring a huge size cannot exhaust memory.
"""

from __future__ import annotations

import json
import os
import re
import tarfile
import warnings
from collections.abc import Callable, Iterable, Iterator, Mapping
from pathlib import Path
from typing import IO, Any, Literal

from dvg.shards.format import ShardFormatError, validate_key

BLOCK = 512
RECORD = 20 * BLOCK  # GNU tar and Python's tarfile pad archives to 10240-byte records
_ZERO_BLOCK = bytes(BLOCK)
_USTAR_NAME_BYTES = 100
# WebDataset's split: the key is everything up to the first dot of the last path component.
_MEMBER_RE = re.compile(r"^((?:.*/|)[^.]+)[.]([^/]*)$")

OnError = Literal["raise", "warn"]
OnSkip = Callable[[ShardFormatError], None]

MAX_MEMBER_BYTES = 256 << 20  # any member: an 8K RGB frame stored raw is ~100 MB
MAX_JSON_BYTES = 16 << 20  # a sample's metadata (per-frame lists of up to 1000 frames)
MAX_HEADER_BYTES = 1 << 20  # a pax extended header or GNU long name
# An encoded frame of H x W pixels stays below this many bytes per pixel: JPEG 4:4:4 at
# quality 100 of pure noise takes ~4.2, PNG RGB ~3.0, 16-bit PNG ~2.0, float16 .npy 2.0.
FRAME_BYTES_PER_PIXEL = 8
FRAME_BYTES_OVERHEAD = 64 << 10  # headers of tiny images
_CHUNK = 16 << 20  # never ask a stream for more than this at once


class SkippedMember:
    """Stands in for the data of a member over its size limit (the data was skipped over)."""

    def __init__(self, size: int, limit: int) -> None:
        self.size, self.limit = size, limit


def frame_member_limit(meta_json: bytes, max_member_bytes: int = MAX_MEMBER_BYTES) -> int:
    """The largest a frame member of a sample may be, from its ``json`` member's ``size``
    ``[H, W]``: ``8 H W + 64 KiB`` (twice the worst encodings), at most ``max_member_bytes``;
    ``max_member_bytes`` when the metadata gives no usable size."""
    try:
        size = json.loads(meta_json).get("size")
        height, width = (int(v) for v in size) if len(size) == 2 else (0, 0)
    except (ValueError, TypeError, AttributeError, UnicodeDecodeError):
        return max_member_bytes
    if not (height > 0 and width > 0):
        return max_member_bytes
    return min(FRAME_BYTES_PER_PIXEL * height * width + FRAME_BYTES_OVERHEAD, max_member_bytes)


def split_member_name(name: str) -> tuple[str, str]:
    """``"abc_s000_c0000.left.003.jpg"`` -> ``("abc_s000_c0000", "left.003.jpg")``."""
    match = _MEMBER_RE.match(name)
    if not match:
        raise ShardFormatError(f"member {name!r} has no '<key>.<field>' form")
    return match.group(1), match.group(2)


def _header(name: str, size: int) -> bytes:
    info = tarfile.TarInfo(name)
    info.size = size
    info.mtime = 0
    info.mode = 0o644
    info.uid = info.gid = 0
    info.uname = info.gname = ""
    info.type = tarfile.REGTYPE
    return info.tobuf(format=tarfile.USTAR_FORMAT, encoding="utf-8", errors="strict")


def _canonical_members(sample: Mapping[str, Any]) -> list[tuple[str, bytes]]:
    if "__key__" not in sample:
        raise ShardFormatError("sample has no '__key__'")
    key = validate_key(sample["__key__"])
    members = []
    for suffix, data in sample.items():
        if suffix.startswith("__"):  # __key__, __url__: bookkeeping, not members
            continue
        if not suffix or "/" in suffix or "\0" in suffix or not suffix.isascii():
            raise ShardFormatError(
                f"{key}: member name {suffix!r} must be non-empty ASCII without '/'"
            )
        if not isinstance(data, bytes | bytearray | memoryview):
            raise ShardFormatError(
                f"{key}: member {suffix!r} must be bytes, got {type(data).__name__}"
            )
        name = f"{key}.{suffix}"
        if len(name) > _USTAR_NAME_BYTES:
            raise ShardFormatError(f"{key}: member name {name!r} exceeds {_USTAR_NAME_BYTES} bytes")
        members.append((suffix, bytes(data)))
    if not members:
        raise ShardFormatError(f"{key}: sample has no members")
    # json first lets a streaming reader learn F and the image format before any frame arrives.
    members.sort(key=lambda item: (item[0] != "json", item[0]))
    return [(f"{key}.{suffix}", data) for suffix, data in members]


class SampleTarWriter:
    """Write samples one at a time to a binary stream as a deterministic tar.

    ``close()`` (or leaving the ``with`` block) writes the end-of-archive blocks; the stream itself
    is not closed. Atomic placement (tmp file + rename) is the caller's job.
    """

    def __init__(self, fileobj: IO[bytes]) -> None:
        self.fileobj = fileobj
        self.nsamples = 0
        self.bytes_written = 0
        self._keys: set[str] = set()
        self._closed = False

    def _write(self, data: bytes) -> None:
        self.fileobj.write(data)
        self.bytes_written += len(data)

    def write(self, sample: Mapping[str, Any]) -> None:
        """Append one sample (``{"__key__": key, suffix: bytes, ...}``); keys must be unique."""
        if self._closed:
            raise ShardFormatError("write() on a closed SampleTarWriter")
        members = _canonical_members(sample)
        key = sample["__key__"]
        if key in self._keys:
            raise ShardFormatError(f"{key}: key written twice to the same tar")
        self._keys.add(key)
        for name, data in members:
            self._write(_header(name, len(data)))
            self._write(data)
            self._write(bytes(-len(data) % BLOCK))
        self.nsamples += 1

    def close(self) -> None:
        if self._closed:
            return
        self._write(_ZERO_BLOCK * 2)
        self._write(bytes(-self.bytes_written % RECORD))
        self._closed = True

    def __enter__(self) -> SampleTarWriter:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def write_samples(fileobj: IO[bytes], samples: Iterable[Mapping[str, Any]]) -> int:
    """Write ``samples`` as one complete deterministic tar to ``fileobj``; return the sample count.

    The count (``nsamples`` of the manifest) is returned rather than the byte count because the
    caller has the file: its size is ``fileobj.tell()`` / ``os.stat``.
    """
    with SampleTarWriter(fileobj) as writer:
        for sample in samples:
            writer.write(sample)
    return writer.nsamples


def _parse_number(field: bytes, what: str, where: str) -> int:
    if field[:1] and field[0] & 0x80:  # GNU base-256 for values that do not fit in octal
        value = int.from_bytes(field[1:], "big")
        return -value if field[0] & 0x40 else value
    text = field.split(b"\0", 1)[0].strip(b" ")
    try:
        return int(text, 8) if text else 0
    except ValueError:
        raise ShardFormatError(f"{where}: corrupt tar header: {what} field {field!r}") from None


def _check_checksum(header: bytes, where: str) -> None:
    stored = _parse_number(header[148:156], "checksum", where)
    blanked = header[:148] + b" " * 8 + header[156:]
    if stored == sum(blanked):
        return
    signed = sum(b - 256 if b > 127 else b for b in blanked)  # some old writers sum signed bytes
    if stored != signed:
        raise ShardFormatError(
            f"{where}: corrupt tar header (checksum mismatch); not an uncompressed tar, or damaged"
        )


_COMPRESSED_MAGIC = {
    b"\x1f\x8b": "gzip",
    b"BZh": "bzip2",
    b"\xfd7zXZ\x00": "xz",
    b"\x28\xb5\x2f\xfd": "zstd",
}


def _refuse_compressed(header: bytes, where: str) -> None:
    for magic, kind in _COMPRESSED_MAGIC.items():
        if header.startswith(magic):
            raise ShardFormatError(
                f"{where}: a {kind}-compressed file, not an uncompressed tar (DVG shards and "
                "wids need plain tars)"
            )


def _parse_pax(data: bytes, where: str) -> dict[str, str]:
    records, pos = {}, 0
    while pos < len(data):
        space = data.find(b" ", pos)
        try:
            length = int(data[pos:space])
            key, value = data[space + 1 : pos + length - 1].split(b"=", 1)
        except ValueError:
            raise ShardFormatError(f"{where}: corrupt pax extended header") from None
        if length <= 0:
            raise ShardFormatError(f"{where}: corrupt pax extended header")
        records[key.decode("utf-8", "surrogateescape")] = value.decode("utf-8", "surrogateescape")
        pos += length
    return records


def _read_exact(stream: IO[bytes], size: int) -> bytes:
    """Up to ``size`` bytes (fewer at the end of the stream), asked for in bounded chunks, so a
    size read from a damaged header never allocates more than the stream holds."""
    chunks, left = [], size
    while left > 0:
        chunk = stream.read(min(left, _CHUNK))
        if not chunk:
            break
        chunks.append(chunk)
        left -= len(chunk)
    return b"".join(chunks)


def _skip(stream: IO[bytes], size: int) -> int:
    """Move ``size`` bytes on without keeping them; returns how many were there."""
    if _seekable(stream):
        here = stream.tell()
        return stream.seek(size, os.SEEK_CUR) - here
    skipped = 0
    while skipped < size:
        chunk = stream.read(min(size - skipped, _CHUNK))
        if not chunk:
            break
        skipped += len(chunk)
    return skipped


def _seekable(stream: IO[bytes]) -> bool:
    try:
        return stream.seekable()
    except (AttributeError, OSError, ValueError):
        return False


def _stream_length(stream: IO[bytes]) -> int | None:
    """Bytes from the stream's position to its end, when the stream can tell (asked once: a
    seek to the end drops a buffered reader's buffer)."""
    if not _seekable(stream):
        return None
    try:
        here = stream.tell()
        end = stream.seek(0, os.SEEK_END)
        stream.seek(here)
    except (OSError, ValueError):
        return None
    return end - here


def iter_tar_members(
    stream: IO[bytes], name: str, *, limit: Callable[[str], int] | None = None
) -> Iterator[tuple[str, int, bytes | SkippedMember]]:
    """Yield ``(member name, header offset, data)`` for each regular file of an uncompressed tar.

    Understands ustar, GNU long names and pax ``path``/``size`` records; skips directories, links.
    ``limit(member name)`` gives the most bytes a member may have: a larger one is skipped over
    unread and yielded with a :class:`SkippedMember` instead of its data.

    Raises:
        ShardFormatError naming ``name`` and the offset on a truncated or corrupt archive (also
        when a header declares more bytes than the file has left).
    """
    offset = 0
    length = _stream_length(stream)
    long_name: str | None = None
    pax: dict[str, str] = {}
    while True:
        where = f"{name}: offset {offset}"
        header = _read_exact(stream, BLOCK)
        if len(header) < BLOCK:
            state = "before the end-of-archive block" if not header else "inside a member header"
            raise ShardFormatError(
                f"{where}: truncated tar: the file ends {state} (an interrupted write?)"
            )
        if header == _ZERO_BLOCK:
            return
        if offset == 0:
            _refuse_compressed(header, where)
        _check_checksum(header, where)
        size = _parse_number(header[124:136], "size", where)
        if "size" in pax:  # pax overrides the octal field for members over 8 GiB
            if not pax["size"].isdigit():
                raise ShardFormatError(f"{where}: corrupt pax size {pax['size']!r}")
            size = int(pax["size"])
        if size < 0:
            raise ShardFormatError(f"{where}: corrupt tar header: negative size")
        typeflag = header[156:157]
        ustar_name = header[:100].split(b"\0", 1)[0]
        if header[257:263] == b"ustar\0":  # POSIX ustar: a 155-byte name prefix
            prefix = header[345:500].split(b"\0", 1)[0]
            if prefix:
                ustar_name = prefix + b"/" + ustar_name
        shown = ustar_name.decode("utf-8", "replace")
        left = None if length is None else length - offset - BLOCK
        if left is not None and size + (-size % BLOCK) > left:
            raise ShardFormatError(
                f"{where}: truncated tar: member {shown!r} declares {size} bytes, the file has "
                f"{left} left (an interrupted write, or a corrupt size)"
            )
        header_offset, offset = offset, offset + BLOCK + size + (-size % BLOCK)
        if typeflag in (b"x", b"g", b"L") and size > MAX_HEADER_BYTES:
            raise ShardFormatError(
                f"{where}: corrupt tar: a {size}-byte extended header (at most "
                f"{MAX_HEADER_BYTES} expected)"
            )
        member = None
        if typeflag not in (b"x", b"g", b"L"):
            member = pax.get("path") or long_name or ustar_name.decode("utf-8", "surrogateescape")
            long_name, pax = None, {}
        keep = typeflag in (b"x", b"L") or (member is not None and typeflag in (b"0", b"\0", b"7"))
        allowed = limit(member) if keep and member is not None and limit is not None else None
        if not keep or (allowed is not None and size > allowed):
            got = _skip(stream, size + (-size % BLOCK))
            if got < size + (-size % BLOCK):
                raise ShardFormatError(
                    f"{where}: truncated tar: member {shown!r} needs {size} bytes, the file ends "
                    "before them (an interrupted write?)"
                )
            if keep:
                yield member, header_offset, SkippedMember(size, allowed)
            continue
        data = _read_exact(stream, size)
        padding = _read_exact(stream, -size % BLOCK)
        if len(data) < size or len(padding) < -size % BLOCK:
            raise ShardFormatError(
                f"{where}: truncated tar: member {shown!r} needs "
                f"{size} bytes, the file ends after {len(data)} (an interrupted write?)"
            )
        if typeflag == b"x":
            pax = _parse_pax(data, where)
        elif typeflag == b"L":
            long_name = data.split(b"\0", 1)[0].decode("utf-8", "surrogateescape")
        else:
            yield member, header_offset, data


def iter_tar_samples(
    source: str | os.PathLike[str] | IO[bytes],
    *,
    on_error: OnError = "raise",
    on_skip: OnSkip | None = None,
    max_member_bytes: int = MAX_MEMBER_BYTES,
) -> Iterator[dict[str, Any]]:
    """Group consecutive tar members by key into samples ``{"__key__", "__url__", suffix: bytes}``.

    Args:
        source: path of an uncompressed tar, or a binary stream (read sequentially; seeking, when
            the stream can, only skips oversized members).
        on_error: ``"raise"``: a truncated/corrupt tar raises; ``"warn"``: it emits a warning and
            ends this tar after the last complete sample (a sample cut by the damage is dropped).
        on_skip: called with a ShardFormatError for each sample dropped because a member exceeds
            its size limit (the tar itself is intact, so reading goes on with the next sample).
            Without it such a sample raises (``on_error="raise"``) or warns and is dropped
            (``"warn"``).
        max_member_bytes: the most bytes of any member; frame members are further bounded by
            the frame size of their sample's ``json`` (:func:`frame_member_limit`), metadata by
            ``MAX_JSON_BYTES``.

    Raises:
        ShardFormatError (a ValueError) naming the tar and the byte offset on a truncated or
        corrupt tar, a member without a ``<key>.<field>`` name, a duplicate member, or a key that
        reappears after other samples.
    """
    if on_error not in ("raise", "warn"):
        raise ValueError(f"on_error must be 'raise' or 'warn', got {on_error!r}")
    if on_skip is None:
        on_skip = _raise if on_error == "raise" else _warn_skip
    if isinstance(source, str | os.PathLike):
        name = str(source)
        with Path(source).open("rb") as stream:
            yield from _group(stream, name, on_error, on_skip, max_member_bytes)
    else:
        name = str(getattr(source, "name", None) or f"<{type(source).__name__}>")
        yield from _group(source, name, on_error, on_skip, max_member_bytes)


def _raise(error: ShardFormatError) -> None:
    raise error


def _warn_skip(error: ShardFormatError) -> None:
    warnings.warn(f"{error}; skipping this sample", stacklevel=4)


def _group(
    stream: IO[bytes], name: str, on_error: OnError, on_skip: OnSkip, max_member_bytes: int
) -> Iterator[dict[str, Any]]:
    current: dict[str, Any] | None = None
    frame_limit = max_member_bytes  # of the current sample, once its json is read
    skipped: ShardFormatError | None = None  # why the current sample is dropped
    seen: set[str] = set()

    def limit(member: str) -> int:
        suffix = member.rpartition("/")[2].partition(".")[2]
        if current is not None and member.startswith(current["__key__"] + "."):
            return MAX_JSON_BYTES if suffix == "json" and "json" not in current else frame_limit
        return min(MAX_JSON_BYTES, max_member_bytes) if suffix == "json" else max_member_bytes

    try:
        for member, offset, data in iter_tar_members(stream, name, limit=limit):
            if "/" not in member and member.startswith("__") and member.endswith("__"):
                continue  # WebDataset-style archive metadata, not a sample
            try:
                key, suffix = split_member_name(member)
            except ShardFormatError as exn:
                raise ShardFormatError(f"{name}: offset {offset}: {exn}") from None
            if current is not None and key == current["__key__"]:
                if suffix in current:
                    raise ShardFormatError(f"{name}: offset {offset}: duplicate member {member!r}")
            else:
                if current is not None:
                    yield from _emit(current, skipped, on_skip)
                if key in seen:
                    raise ShardFormatError(
                        f"{name}: offset {offset}: key {key!r} reappears after other samples; "
                        "a sample's members must be consecutive"
                    )
                seen.add(key)
                current = {"__key__": key, "__url__": name}
                frame_limit, skipped = max_member_bytes, None
            if isinstance(data, SkippedMember):
                skipped = skipped or ShardFormatError(
                    f"{name}: offset {offset}: sample {key}: member {member!r} declares "
                    f"{data.size} bytes, more than the {data.limit} allowed"
                    + (" for its frame size" if data.limit < max_member_bytes else "")
                    + " (a corrupt or hostile shard); it was not read"
                )
                current[suffix] = b""
                continue
            current[suffix] = data
            if suffix == "json":
                frame_limit = frame_member_limit(data, max_member_bytes)
        if current is not None:
            yield from _emit(current, skipped, on_skip)
    except ShardFormatError as exn:
        if on_error == "raise":
            raise
        warnings.warn(f"{exn}; skipping the rest of this tar", stacklevel=3)


def _emit(
    sample: dict[str, Any], skipped: ShardFormatError | None, on_skip: OnSkip
) -> Iterator[dict[str, Any]]:
    """A finished sample: yielded, or reported to ``on_skip`` when a member was over its limit."""
    if skipped is None:
        yield sample
    else:
        on_skip(skipped)
