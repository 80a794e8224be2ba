"""Deterministic tar writing and strict tar reading (truncation, corruption, grouping)."""

from __future__ import annotations

import gzip
import hashlib
import io
import tarfile
import warnings

import pytest

from dvg.shards import (
    SampleTarWriter,
    ShardFormatError,
    encode_sample,
    iter_tar_samples,
    write_samples,
)
from dvg.shards.tario import iter_tar_members, split_member_name

KEYS = ["00000000abcd_s000_c0000", "00000000abcd_s000_c0001", "00000000abcd_s001_c0000"]


@pytest.fixture
def encoded(make_clip):
    return [encode_sample(make_clip(k, seed=i, num_frames=2)) for i, k in enumerate(KEYS)]


def _tar_bytes(samples) -> bytes:
    buf = io.BytesIO()
    assert write_samples(buf, samples) == len(samples)
    return buf.getvalue()


def test_tar_bytes_are_deterministic(make_clip, encoded):
    first = _tar_bytes(encoded)
    again = _tar_bytes(
        [encode_sample(make_clip(k, seed=i, num_frames=2)) for i, k in enumerate(KEYS)]
    )
    assert hashlib.md5(first).hexdigest() == hashlib.md5(again).hexdigest()
    # member order inside the dict does not matter either
    shuffled = [dict(reversed(list(s.items()))) for s in encoded]
    assert _tar_bytes(shuffled) == first
    assert len(first) % 10240 == 0


def test_tar_headers_are_normalised(encoded):
    with tarfile.open(fileobj=io.BytesIO(_tar_bytes(encoded))) as tar:
        members = tar.getmembers()
    assert all(m.mtime == 0 and m.uid == 0 and m.gid == 0 for m in members)
    assert all(m.uname == "" and m.gname == "" and m.mode == 0o644 and m.isreg() for m in members)
    names = [m.name for m in members]
    assert names[0] == f"{KEYS[0]}.json"
    first = [n for n in names if n.startswith(KEYS[0])]
    assert first[1:] == sorted(first[1:])
    assert names.index(f"{KEYS[1]}.json") == len(first)  # samples are contiguous, in order


def test_iter_tar_samples_round_trip(tmp_path, encoded):
    path = tmp_path / "000000.tar"
    path.write_bytes(_tar_bytes(encoded))
    samples = list(iter_tar_samples(path))
    assert [s["__key__"] for s in samples] == KEYS
    for got, want in zip(samples, encoded, strict=True):
        assert got["__url__"] == str(path)
        assert {k: v for k, v in got.items() if not k.startswith("__")} == {
            k: v for k, v in want.items() if not k.startswith("__")
        }
    # a stream works too (read sequentially, no seeking)
    with path.open("rb") as f:
        assert [s["__key__"] for s in iter_tar_samples(f)] == KEYS


def _member_offsets(data: bytes) -> list[tuple[str, int]]:
    return [(name, off) for name, off, _ in iter_tar_members(io.BytesIO(data), "x")]


def _end_of_members(data: bytes) -> int:
    *_, (_, offset, payload) = iter_tar_members(io.BytesIO(data), "x")
    return offset + 512 + -(-len(payload) // 512) * 512


@pytest.mark.parametrize("where", ["member_boundary", "mid_data", "mid_header", "end_blocks"])
def test_truncated_tar_names_file_and_offset(tmp_path, encoded, where):
    data = _tar_bytes(encoded)
    offsets = dict(_member_offsets(data))
    boundary = offsets[f"{KEYS[1]}.json"]
    cut = {
        "member_boundary": boundary,  # tarfile would read this as a valid, shorter archive
        "mid_data": boundary + 512 + 10,
        "mid_header": boundary + 100,
        "end_blocks": _end_of_members(data),  # all members present, no end-of-archive block
    }[where]
    path = tmp_path / "000007.tar"
    path.write_bytes(data[:cut])
    with pytest.raises(ShardFormatError, match=r"000007\.tar: offset \d+: truncated tar") as info:
        list(iter_tar_samples(path))
    expected_offset = cut if where == "end_blocks" else boundary
    assert f"offset {expected_offset}:" in str(info.value)


def test_truncated_tar_warn_keeps_complete_samples(tmp_path, encoded):
    data = _tar_bytes(encoded)
    boundary = dict(_member_offsets(data))[f"{KEYS[1]}.mask.001.png"]
    path = tmp_path / "000001.tar"
    path.write_bytes(data[:boundary])
    with pytest.warns(UserWarning, match=r"000001\.tar.*truncated"):
        samples = list(iter_tar_samples(path, on_error="warn"))
    assert [s["__key__"] for s in samples] == KEYS[:1]  # the cut sample is dropped


def test_corrupt_header_and_compressed_tar(tmp_path, encoded):
    data = bytearray(_tar_bytes(encoded))
    offset = dict(_member_offsets(bytes(data)))[f"{KEYS[2]}.json"]
    data[offset + 3] ^= 0x55
    path = tmp_path / "bad.tar"
    path.write_bytes(bytes(data))
    with pytest.raises(ShardFormatError, match=rf"bad\.tar: offset {offset}: corrupt tar header"):
        list(iter_tar_samples(path))
    gz = tmp_path / "c.tar"
    gz.write_bytes(gzip.compress(_tar_bytes(encoded)))
    with pytest.raises(ShardFormatError, match="not an uncompressed tar"):
        list(iter_tar_samples(gz))


def _foreign_tar(names: list[str], fmt: int = tarfile.PAX_FORMAT) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=fmt) as tar:
        for name in names:
            info = tarfile.TarInfo(name)
            payload = name.encode()
            info.size = len(payload)
            tar.addfile(info, io.BytesIO(payload))
    return buf.getvalue()


def test_non_consecutive_key_and_duplicate_member_are_errors():
    with pytest.raises(ShardFormatError, match="reappears"):
        list(iter_tar_samples(io.BytesIO(_foreign_tar(["a.json", "b.json", "a.txt"]))))
    with pytest.raises(ShardFormatError, match="duplicate member"):
        list(iter_tar_samples(io.BytesIO(_foreign_tar(["a.json", "a.json"]))))
    with pytest.raises(ShardFormatError, match=r"no '<key>\.<field>' form"):
        list(iter_tar_samples(io.BytesIO(_foreign_tar(["README"]))))


@pytest.mark.parametrize("fmt", [tarfile.PAX_FORMAT, tarfile.GNU_FORMAT])
def test_reads_long_names_from_other_writers(fmt):
    long_key = "d" * 60 + "/" + "k" * 70
    data = _foreign_tar([f"{long_key}.json", f"{long_key}.source.000.jpg", "__meta__"], fmt)
    (sample,) = iter_tar_samples(io.BytesIO(data))
    assert sample["__key__"] == long_key
    assert sample["source.000.jpg"] == f"{long_key}.source.000.jpg".encode()


def test_split_member_name_matches_webdataset():
    assert split_member_name("abc_s000_c0001.left.003.jpg") == ("abc_s000_c0001", "left.003.jpg")
    assert split_member_name("dir/abc.json") == ("dir/abc", "json")


def test_writer_rejects_bad_samples(encoded):
    buf = io.BytesIO()
    with SampleTarWriter(buf) as writer:
        writer.write(encoded[0])
        with pytest.raises(ShardFormatError, match="written twice"):
            writer.write(encoded[0])
        with pytest.raises(ShardFormatError, match="must be bytes"):
            writer.write({"__key__": "k1", "json": "text"})
        with pytest.raises(ShardFormatError, match="dot"):
            writer.write({"__key__": "k.1", "json": b"{}"})
        with pytest.raises(ShardFormatError, match="no '__key__'"):
            writer.write({"json": b"{}"})
        with pytest.raises(ShardFormatError, match="exceeds 100 bytes"):
            writer.write({"__key__": "k2", "x" * 100: b""})
    assert writer.nsamples == 1
    assert writer.bytes_written == len(buf.getvalue())
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert [s["__key__"] for s in iter_tar_samples(io.BytesIO(buf.getvalue()))] == KEYS[:1]
