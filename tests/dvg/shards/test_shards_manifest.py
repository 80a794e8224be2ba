"""The wids-style shard manifest: fields, round trip, atomic writes, validation."""

from __future__ import annotations

import hashlib
import json
import os

import pytest

from dvg.shards import (
    FORMAT_VERSION,
    ShardEntry,
    ShardFormatError,
    read_manifest,
    shard_entry,
    write_manifest,
)
from dvg.shards import manifest as manifest_mod


def test_shard_entry_measures_the_file(make_shards):
    out, _, entries = make_shards(num_shards=1)
    path = out / "000000.tar"
    entry = entries[0]
    assert entry.url == "000000.tar"
    assert entry.nsamples == 2
    assert entry.filesize == path.stat().st_size
    assert entry.md5sum == hashlib.md5(path.read_bytes()).hexdigest()
    nested = shard_entry(path, 2, base=out.parent)
    assert nested.url == "shards/000000.tar"


def test_manifest_round_trip_and_wids_fields(make_shards):
    out, _, entries = make_shards(num_shards=3)
    path = write_manifest(out, list(reversed(entries)), extra={"config_hash": "abc", "clips": 6})
    assert path == out / "manifest.json"
    raw = json.loads(path.read_text())
    assert raw["__kind__"] == "wids-shard-index-v1"
    assert raw["wids_version"] == 1
    assert [s["url"] for s in raw["shardlist"]] == ["000000.tar", "000001.tar", "000002.tar"]
    assert all(set(s) == {"url", "nsamples", "filesize", "md5sum"} for s in raw["shardlist"])
    assert raw["dvg"] == {"format_version": FORMAT_VERSION, "config_hash": "abc", "clips": 6}
    read_entries, dvg = read_manifest(out)  # the directory works as well as the file
    assert read_entries == entries
    assert dvg == raw["dvg"]
    assert read_manifest(path) == (read_entries, dvg)
    assert [p.name for p in out.iterdir() if "tmp" in p.name] == []


def test_manifest_replace_is_atomic(make_shards, monkeypatch):
    out, _, entries = make_shards(num_shards=2)
    write_manifest(out, entries[:1])
    before = (out / "manifest.json").read_bytes()

    def crash(src, dst):
        raise OSError("disk full")

    monkeypatch.setattr(manifest_mod.os, "replace", crash)
    with pytest.raises(OSError, match="disk full"):
        write_manifest(out, entries)
    assert (out / "manifest.json").read_bytes() == before  # old manifest intact
    assert sorted(p.name for p in out.iterdir()) == ["000000.tar", "000001.tar", "manifest.json"]
    monkeypatch.undo()
    write_manifest(out, entries)
    assert len(read_manifest(out)[0]) == 2


def test_write_manifest_validates(tmp_path):
    good = ShardEntry("000000.tar", 1, 10, "0" * 32)
    with pytest.raises(ShardFormatError, match="relative"):
        write_manifest(tmp_path, [ShardEntry("/abs/000000.tar", 1, 10, "0" * 32)])
    with pytest.raises(ShardFormatError, match="relative"):
        write_manifest(tmp_path, [ShardEntry("../000000.tar", 1, 10, "0" * 32)])
    with pytest.raises(ShardFormatError, match="twice"):
        write_manifest(tmp_path, [good, good])
    with pytest.raises(ShardFormatError, match="format_version"):
        write_manifest(tmp_path, [good], extra={"format_version": 1})
    with pytest.raises(ShardFormatError, match="md5sum"):
        ShardEntry("000000.tar", 1, 10, "xyz")
    with pytest.raises(ShardFormatError, match="nsamples"):
        ShardEntry("000000.tar", -1, 10, "0" * 32)


def test_read_manifest_errors_name_the_file(tmp_path):
    with pytest.raises(ShardFormatError, match=r"manifest\.json.*never glob"):
        read_manifest(tmp_path)
    path = tmp_path / "manifest.json"
    index = {"__kind__": "wids-shard-index-v1", "wids_version": 1, "shardlist": []}
    for bad, match in [
        ({**index, "__kind__": "other"}, "not a wids shard index"),
        ({**index, "wids_version": 2}, "wids_version"),
        ({**index, "shardlist": [{"url": "a.tar"}]}, r"shardlist\[0\]"),
        ({**index, "dvg": {"format_version": 3}}, "format_version 3"),
    ]:
        path.write_text(json.dumps(bad))
        with pytest.raises(ShardFormatError, match=match) as info:
            read_manifest(path)
        assert str(path) in str(info.value)
    path.write_text(json.dumps({**index, "dvg": {"format_version": 1}}))
    assert read_manifest(path) == ([], {"format_version": 1})  # v1 shards are still read
    path.write_text("{not json")
    with pytest.raises(ShardFormatError, match="not valid JSON"):
        read_manifest(path)
    # a plain wids index without a dvg section reads with an empty dvg section
    path.write_text(json.dumps(index))
    assert read_manifest(path) == ([], {})


def test_fsync_dir_is_called(make_shards, monkeypatch):
    out, _, entries = make_shards(num_shards=1)
    synced = []
    real_fsync = os.fsync
    monkeypatch.setattr(manifest_mod.os, "fsync", lambda fd: synced.append(fd) or real_fsync(fd))
    write_manifest(out, entries)
    assert len(synced) == 2  # the temporary file, then the directory
