"""Deterministic tar writing and strict tar reading for WebDataset-style shards.

Writer: uncompressed POSIX ustar, members with mtime 0, uid/gid 0, empty user/group names and mode
0o644, samples in the given order and members of a sample in a canonical order (``json`` first,
then sorted names). The same samples therefore always give the same bytes and the same md5.

Reader: a small tar parser instead of ``tarfile``, because ``tarfile`` silently ends the archive at
a truncated or garbled header (a shard cut short by a killed writer would read as a shorter,
valid shard). Here a missing end-of-archive block, a short member or a bad header checksum is a
``ShardFormatError`` naming the tar and the byte offset.
"""

from __future__ import annotations

import os
import re
import tarfile
import warnings
from collections.abc import Iterable, Iterator, Mapping
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
    chunks, left = [], size
    while left > 0:
        chunk = stream.read(left)
        if not chunk:
            break
        chunks.append(chunk)
        left -= len(chunk)
    return b"".join(chunks)


def iter_tar_members(stream: IO[bytes], name: str) -> Iterator[tuple[str, int, bytes]]:
    """Yield ``(member name, header offset, data)`` for each regular file of an uncompressed tar.

    Understands ustar, GNU long names and pax ``path``/``size`` records; skips directories, links.

    Raises:
        ShardFormatError naming ``name`` and the offset on a truncated or corrupt archive.
    """
    offset = 0
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
        data = _read_exact(stream, size)
        padding = _read_exact(stream, -size % BLOCK)
        if len(data) < size or len(padding) < -size % BLOCK:
            raise ShardFormatError(
                f"{where}: truncated tar: member {ustar_name.decode('utf-8', 'replace')!r} needs "
                f"{size} bytes, the file ends after {len(data)} (an interrupted write?)"
            )
        header_offset, offset = offset, offset + BLOCK + size + len(padding)
        if typeflag == b"x":
            pax = _parse_pax(data, where)
            continue
        if typeflag == b"g":
            continue
        if typeflag == b"L":
            long_name = data.split(b"\0", 1)[0].decode("utf-8", "surrogateescape")
            continue
        member = pax.get("path") or long_name or ustar_name.decode("utf-8", "surrogateescape")
        long_name, pax = None, {}
        if typeflag in (b"0", b"\0", b"7"):
            yield member, header_offset, data


def iter_tar_samples(
    source: str | os.PathLike[str] | IO[bytes], *, on_error: OnError = "raise"
) -> Iterator[dict[str, Any]]:
    """Group consecutive tar members by key into samples ``{"__key__", "__url__", suffix: bytes}``.

    Args:
        source: path of an uncompressed tar, or a binary stream (read sequentially, no seeking).
        on_error: ``"raise"``: a truncated/corrupt tar raises; ``"warn"``: it emits a warning and
            ends this tar after the last complete sample (a sample cut by the damage is dropped).

    Raises:
        ShardFormatError (a ValueError) naming the tar and the byte offset on a truncated or
        corrupt tar, a member without a ``<key>.<field>`` name, a duplicate member, or a key that
        reappears after other samples.
    """
    if on_error not in ("raise", "warn"):
        raise ValueError(f"on_error must be 'raise' or 'warn', got {on_error!r}")
    if isinstance(source, str | os.PathLike):
        name = str(source)
        with Path(source).open("rb") as stream:
            yield from _group(stream, name, on_error)
    else:
        name = str(getattr(source, "name", None) or f"<{type(source).__name__}>")
        yield from _group(source, name, on_error)


def _group(stream: IO[bytes], name: str, on_error: OnError) -> Iterator[dict[str, Any]]:
    current: dict[str, Any] | None = None
    seen: set[str] = set()
    try:
        for member, offset, data in iter_tar_members(stream, name):
            if "/" not in member and member.startswith("__") and member.endswith("__"):
                continue  # WebDataset-style archive metadata, not a sample
            try:
                key, suffix = split_member_name(member)
            except ShardFormatError as exn:
                raise ShardFormatError(f"{name}: offset {offset}: {exn}") from None
            if current is not None and key == current["__key__"]:
                if suffix in current:
                    raise ShardFormatError(f"{name}: offset {offset}: duplicate member {member!r}")
                current[suffix] = data
                continue
            if current is not None:
                yield current
            if key in seen:
                raise ShardFormatError(
                    f"{name}: offset {offset}: key {key!r} reappears after other samples; "
                    "a sample's members must be consecutive"
                )
            seen.add(key)
            current = {"__key__": key, "__url__": name, suffix: data}
        if current is not None:
            yield current
    except ShardFormatError as exn:
        if on_error == "raise":
            raise
        warnings.warn(f"{exn}; skipping the rest of this tar", stacklevel=3)
