"""The trainer on hostile shards: an oversized member is skipped unread and counted, pickled
members are never decoded, and a run stops only above data.max_skipped_fraction."""

from __future__ import annotations

import io
import pickle
from pathlib import Path

import pytest
import torch

from dvg.shards import iter_tar_samples, read_manifest, shard_entry, write_manifest, write_samples
from trainer.data import (
    SKIP_CHECK_AFTER,
    DataConfig,
    DataCounters,
    TooManySkippedError,
    make_loader,
)


def _raw_samples(shards: Path) -> list[dict]:
    entries, _ = read_manifest(shards)
    return [
        {k: v for k, v in s.items() if k != "__url__"}
        for e in entries
        for s in iter_tar_samples(shards / e.url)
    ]


def _write(out: Path, samples: list[dict]) -> Path:
    out.mkdir(parents=True)
    path = out / "000000.tar"
    with path.open("wb") as f:
        write_samples(f, samples)
    write_manifest(out, [shard_entry(path, len(samples), base=out)])
    return out


def _read_all(shards: Path) -> tuple[list[str], DataCounters]:
    config = DataConfig(str(shards), resolution=32, batch_size=1, num_workers=0,
                        shuffle_buffer=0, resampled=False)  # fmt: skip
    counters, keys = DataCounters(), []
    for batch in make_loader(config):
        counters.update(batch)
        keys += batch["key"]
    return keys, counters


def test_oversized_member_is_skipped_unread_and_counted(dvg_shards, tmp_path):
    samples = _raw_samples(dvg_shards)
    victim = samples[1]
    frame = next(k for k in victim if k not in ("__key__", "json"))
    victim[frame] = b"\x00" * 400_000  # far beyond what one 64 x 96 frame can take
    shards = _write(tmp_path / "hostile", samples)
    with pytest.warns(UserWarning, match=rf"{victim['__key__']}.*declares 400000 bytes"):
        keys, counters = _read_all(shards)
    assert keys == [s["__key__"] for s in samples if s is not victim]
    assert counters == DataCounters(samples_seen=len(samples) - 1, skipped_samples=1)


def test_pickled_members_in_a_shard_are_never_decoded(dvg_shards, tmp_path, pickle_payload):
    payload, marker = pickle_payload
    samples = _raw_samples(dvg_shards)
    for sample in samples:  # the extensions plain webdataset would unpickle by default
        sample["extra.pyd"] = pickle.dumps(payload)
        buffer = io.BytesIO()
        torch.save({"x": payload}, buffer)
        sample["extra.pth"] = buffer.getvalue()
    keys, counters = _read_all(_write(tmp_path / "planted", samples))
    assert keys == [s["__key__"] for s in samples] and counters.skipped_samples == 0
    assert not marker.exists()


def test_skipped_fraction_stops_the_run_only_above_the_limit():
    counters = DataCounters(samples_seen=SKIP_CHECK_AFTER - 6, skipped_samples=5)
    counters.check_skipped(0.05)  # 5 of 99 read: too few read to judge
    counters.samples_seen += 1
    counters.check_skipped(0.05)  # 5 of 100: at the limit, not above it
    counters.skipped_samples += 1
    with pytest.raises(TooManySkippedError, match=r"6 of the 101 samples.*max_skipped_fraction"):
        counters.check_skipped(0.05)
    counters.check_skipped(0.5)
    with pytest.raises(ValueError, match="max_skipped_fraction must be in"):
        DataConfig("x", max_skipped_fraction=1.5)
