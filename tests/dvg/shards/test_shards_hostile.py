"""Hostile tar members: sizes are bounded from the header before anything is read, an oversized
member's sample is skipped (unread) and the rest of the shard is read on."""

from __future__ import annotations

import io
import tarfile
import warnings
from pathlib import Path

import pytest

from dvg.shards import (
    ShardFormatError,
    encode_sample,
    iter_clips,
    iter_tar_samples,
    shard_entry,
    write_manifest,
)
from dvg.shards.tario import frame_member_limit

BLOCK = 512


def _member(name: str, data: bytes, *, declared: int | None = None, kind=tarfile.REGTYPE):
    """One tar member; ``declared`` puts another size in the header than the data's."""
    info = tarfile.TarInfo(name)
    info.size = len(data) if declared is None else declared
    info.type = kind
    header = info.tobuf(format=tarfile.GNU_FORMAT)  # base-256 sizes beyond 8 GiB
    return header + data + bytes(-len(data) % BLOCK)


def _sample(members: dict) -> bytes:
    key = members["__key__"]
    return b"".join(_member(f"{key}.{k}", v) for k, v in members.items() if k != "__key__")


def _tar(*parts: bytes) -> bytes:
    return b"".join(parts) + bytes(2 * BLOCK)


@pytest.fixture
def three(make_clip):
    """Encoded samples a, b, c (24 x 40 frames): b is the one made hostile."""
    keys = ("0aaa_s000_c0000", "0bbb_s000_c0000", "0ccc_s000_c0000")
    return [encode_sample(make_clip(k, seed=i, num_frames=2)) for i, k in enumerate(keys)]


def _hostile_b(b: dict, size: int) -> dict:
    """b with its second member (a frame, after the json) replaced by ``size`` junk bytes."""
    frame = next(k for k in b if k not in ("__key__", "json"))
    return {**b, frame: b"\x00" * size}


def test_frame_limit_comes_from_the_sample_metadata(three):
    limit = frame_member_limit(three[0]["json"])
    assert limit == 8 * 24 * 40 + 64 * 1024
    assert all(len(v) < limit for k, v in three[0].items() if k != "__key__")
    assert frame_member_limit(b"not json", max_member_bytes=123) == 123
    assert frame_member_limit(b'{"size": [100000, 100000]}', max_member_bytes=99) == 99


def test_oversized_member_skips_its_sample_and_the_shard_goes_on(tmp_path, three):
    a, b, c = three
    path = tmp_path / "000000.tar"
    path.write_bytes(_tar(_sample(a), _sample(_hostile_b(b, 200_000)), _sample(c)))
    skipped: list[ShardFormatError] = []
    keys = [s["__key__"] for s in iter_tar_samples(path, on_skip=skipped.append)]
    assert keys == [a["__key__"], c["__key__"]]
    (error,) = skipped
    assert f"sample {b['__key__']}" in str(error) and "declares 200000 bytes" in str(error)
    assert "not read" in str(error) and "000000.tar: offset" in str(error)
    with pytest.raises(ShardFormatError, match="declares 200000 bytes"):
        list(iter_tar_samples(path))  # strict by default
    with pytest.warns(UserWarning, match="declares 200000 bytes.*skipping this sample"):
        assert len(list(iter_tar_samples(path, on_error="warn"))) == 2
    # a stream that cannot seek is skipped over by reading, with the same result
    stream = io.BufferedReader(io.BytesIO(path.read_bytes()))
    stream.seekable = lambda: False
    assert len(list(iter_tar_samples(stream, on_skip=skipped.append))) == 2


def test_member_before_any_json_is_bounded_by_max_member_bytes(tmp_path, three):
    a, _, c = three
    junk = _member("0ddd_s000_c0000.left.000.jpg", b"\x01" * 5000)  # no json first
    path = tmp_path / "x.tar"
    path.write_bytes(_tar(_sample(a), junk, _sample(c)))
    skipped = []
    found = list(iter_tar_samples(path, on_skip=skipped.append, max_member_bytes=4096))
    assert [s["__key__"] for s in found] == [a["__key__"], c["__key__"]]
    assert "more than the 4096 allowed" in str(skipped[0])


@pytest.mark.parametrize("declared", [2**40, 2**62])
def test_huge_declared_size_is_a_truncated_tar_not_a_memory_error(tmp_path, three, declared):
    a, b, _ = three
    meta = _member(f"{b['__key__']}.json", b["json"])
    huge = _member(f"{b['__key__']}.left.000.jpg", b"", declared=declared)
    path = tmp_path / "huge.tar"
    path.write_bytes(_sample(a) + meta + huge + bytes(4 * BLOCK))
    with pytest.raises(ShardFormatError, match=rf"declares {declared} bytes, the file has \d+"):
        list(iter_tar_samples(path))
    with pytest.warns(UserWarning, match="truncated tar.*skipping the rest"):
        assert [s["__key__"] for s in iter_tar_samples(path, on_error="warn")] == [a["__key__"]]
    # a stream that cannot tell its length reads in bounded chunks and finds the end
    stream = io.BufferedReader(io.BytesIO(path.read_bytes()))
    stream.seekable = lambda: False
    with pytest.raises(ShardFormatError, match="truncated tar"):
        list(iter_tar_samples(stream))


def test_huge_extended_header_is_corrupt(tmp_path, three):
    a = three[0]
    pax = _member("././@PaxHeader", b"x" * (2 << 20), kind=tarfile.XHDTYPE)
    path = tmp_path / "pax.tar"
    path.write_bytes(_tar(_sample(a), pax, _sample(three[2])))
    with pytest.raises(ShardFormatError, match="extended header"):
        list(iter_tar_samples(path))


def test_iter_clips_skips_and_counts_the_hostile_sample_against_the_manifest(tmp_path, three):
    a, b, c = three
    out = tmp_path / "shards"
    out.mkdir()
    path = out / "000000.tar"
    path.write_bytes(_tar(_sample(a), _sample(_hostile_b(b, 300_000)), _sample(c)))
    write_manifest(out, [shard_entry(path, 3, base=out)])
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        clips = list(iter_clips(out, fields=("mask",), on_error="warn"))
    assert [clip["key"] for clip in clips] == [a["__key__"], c["__key__"]]
    assert any("declares 300000 bytes" in str(w.message) for w in caught)
    with pytest.raises(ShardFormatError, match="declares 300000 bytes"):
        list(iter_clips(out, fields=("mask",)))
    assert Path(path).stat().st_size > 300_000  # the member was there, just never read
