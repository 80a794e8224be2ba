"""iter_clips: round trip through shards and manifest, windows, rank split, verification."""

from __future__ import annotations

import json

import numpy as np
import pytest
from v1_shards import encode_v1_sample

from dvg.shards import (
    ShardEntry,
    ShardFormatError,
    encode_sample,
    iter_clips,
    write_manifest,
    write_samples,
)


def _by_key(samples):
    return {s.key: s for s in samples}


@pytest.mark.parametrize("image_format", ["png", "jpg"])
def test_round_trip_through_manifest(make_shards, image_format):
    out, samples, entries = make_shards(num_shards=2, per_shard=2, image_format=image_format)
    write_manifest(out, entries)
    clips = list(iter_clips(out))
    assert [c["key"] for c in clips] == [s.key for s in samples]
    for clip, sample in zip(clips, samples, strict=True):
        assert clip["source"].shape == (5, 24, 40, 3) and clip["source"].dtype == np.uint8
        assert clip["mask"].dtype == np.bool_ and clip["disparity"].dtype == np.float32
        for field in ("source", "novel", "masked"):
            if image_format == "png":
                np.testing.assert_array_equal(clip[field], getattr(sample, field))
            elif field != "masked":  # the fixture's speckled mask is not JPEG material
                assert np.abs(clip[field].astype(int) - getattr(sample, field)).mean() < 4
        np.testing.assert_array_equal(clip["mask"], sample.mask)
        np.testing.assert_array_equal(clip["mask_raw"], sample.mask_raw)
        np.testing.assert_allclose(clip["disparity"], sample.disparity, atol=2e-4)
        np.testing.assert_array_equal(clip["frame_indices"], np.arange(5))
        expected_meta = {
            **sample.meta,
            "format_version": 2,
            "key": sample.key,
            "frames": 5,
            "size": [24, 40],
            "fields": ["disparity", "mask", "mask_raw", "masked", "novel", "source"],
            "image_format": image_format,
        }
        if image_format == "jpg":
            expected_meta["jpeg_quality"] = 95
        encoding = clip["meta"].pop("disparity_encoding")
        assert len(encoding["scale"]) == 5
        assert clip["meta"] == expected_meta
        assert clip["shard"].endswith(".tar")


def test_reader_uses_the_manifest_not_a_glob(make_shards, make_clip, write_tar):
    out, samples, entries = make_shards(num_shards=2)
    write_manifest(out, entries[:1])  # shard 1 is "not done": not listed
    write_tar(out / "000099.tar", [make_clip("ffffffffabcd_s000_c0000")])
    (out / "000100.tar.tmp").write_bytes(b"partial")
    keys = [c["key"] for c in iter_clips(out / "manifest.json", fields=("mask",))]
    assert keys == [s.key for s in samples[:2]]
    with pytest.raises(ShardFormatError, match="never glob"):
        list(iter_clips(out.parent))  # a directory without a manifest


def test_single_tar_and_list_of_tars(make_shards):
    out, samples, _ = make_shards(num_shards=2)
    one = [c["key"] for c in iter_clips(out / "000001.tar", fields=())]
    assert one == [s.key for s in samples[2:]]
    both = [c["key"] for c in iter_clips([out / "000001.tar", out / "000000.tar"], fields=())]
    assert both == [s.key for s in samples[2:] + samples[:2]]
    with pytest.raises(ShardFormatError, match="no such shard"):
        list(iter_clips([out / "000005.tar"]))


def test_fixed_frames_and_random_windows(make_shards):
    out, samples, entries = make_shards(num_shards=2, image_format="png")
    write_manifest(out, entries)
    truth = _by_key(samples)
    for clip in iter_clips(out, frames=[4, 1], fields=("source",)):
        np.testing.assert_array_equal(clip["source"], truth[clip["key"]].source[[4, 1]])
        assert set(clip) == {"key", "meta", "frame_indices", "source", "shard"}

    def windows(seed, **kwargs):
        return {
            c["key"]: (c["frame_indices"].tolist(), c)
            for c in iter_clips(out, window=3, seed=seed, **kwargs)
        }

    drawn = windows(seed=0)
    for key, (indices, clip) in drawn.items():
        start = indices[0]
        assert indices == [start, start + 1, start + 2] and 0 <= start <= 2
        np.testing.assert_array_equal(clip["mask"], truth[key].mask[start : start + 3])
        np.testing.assert_array_equal(clip["novel"], truth[key].novel[start : start + 3])
    assert {k: v[0] for k, v in windows(seed=0).items()} == {k: v[0] for k, v in drawn.items()}
    # the window of a clip does not depend on the rank split or the shard order
    split = {**windows(seed=0, rank=0, world_size=2), **windows(seed=0, rank=1, world_size=2)}
    assert {k: v[0] for k, v in split.items()} == {k: v[0] for k, v in drawn.items()}
    starts = {seed: tuple(v[0][0] for v in windows(seed).values()) for seed in range(6)}
    assert len(set(starts.values())) > 1  # the seed matters
    single = [c["frame_indices"] for c in iter_clips(out, window=1, fields=("source",))]
    assert all(len(i) == 1 for i in single)
    with pytest.raises(ShardFormatError, match="shorter than window=6"):
        list(iter_clips(out, window=6))
    with pytest.raises(ValueError, match="either frames or window"):
        list(iter_clips(out, window=1, frames=[0]))


@pytest.mark.parametrize("shuffle", [False, True])
def test_rank_split_covers_every_sample_once(make_shards, shuffle):
    out, samples, entries = make_shards(num_shards=5, per_shard=2)
    write_manifest(out, entries)
    world = 3
    per_rank = [
        [
            c["key"]
            for c in iter_clips(
                out, fields=(), rank=r, world_size=world, shuffle_shards=shuffle, seed=7
            )
        ]
        for r in range(world)
    ]
    flat = [k for keys in per_rank for k in keys]
    assert sorted(flat) == sorted(s.key for s in samples)
    assert len(flat) == len(set(flat))
    # whole shards go to one rank: both samples of a shard land together
    assert all(len(keys) % 2 == 0 and keys for keys in per_rank)
    orders = {
        tuple(c["key"] for c in iter_clips(out, fields=(), shuffle_shards=True, seed=seed))
        for seed in range(4)
    }
    assert len(orders) > 1
    with pytest.raises(ValueError, match="rank"):
        list(iter_clips(out, rank=3, world_size=3))


def test_rank_without_shards_warns(make_shards):
    out, _, entries = make_shards(num_shards=1)
    write_manifest(out, entries)
    with pytest.warns(UserWarning, match="gets no shard"):
        assert list(iter_clips(out, rank=1, world_size=2)) == []


def test_verify_and_size_checks(make_shards):
    out, _, entries = make_shards(num_shards=2)
    write_manifest(out, entries)
    assert len(list(iter_clips(out, verify=True, fields=()))) == 4
    path = out / "000001.tar"
    data = bytearray(path.read_bytes())
    data[2000] ^= 0xFF  # same size, different content
    path.write_bytes(bytes(data))
    with pytest.raises(ShardFormatError, match=r"000001\.tar: md5 .* does not match"):
        list(iter_clips(out, verify=True, fields=()))
    path.write_bytes(bytes(data[:-10240]))  # truncated after indexing
    with pytest.raises(ShardFormatError, match=r"000001\.tar: \d+ bytes but the manifest says"):
        list(iter_clips(out, fields=()))
    with pytest.raises(ShardFormatError, match="needs a manifest"):
        list(iter_clips(out / "000000.tar", verify=True))


def test_sample_count_must_match_manifest(make_shards):
    out, _, entries = make_shards(num_shards=1)
    e = entries[0]
    write_manifest(out, [ShardEntry(e.url, e.nsamples + 1, e.filesize, e.md5sum)])
    with pytest.raises(ShardFormatError, match="2 samples but the manifest says 3"):
        list(iter_clips(out, fields=()))


def test_warn_skips_bad_samples(tmp_path, make_clip):
    good = [encode_sample(make_clip(f"aaaa_s000_c{i:04d}", seed=i)) for i in range(3)]
    meta = json.loads(good[1]["json"])
    meta["format_version"] = 9
    good[1] = dict(good[1], json=json.dumps(meta).encode())
    path = tmp_path / "000000.tar"
    with path.open("wb") as f:
        write_samples(f, good)
    with pytest.raises(ShardFormatError, match=r"aaaa_s000_c0001.*format_version 9"):
        list(iter_clips(path))
    with pytest.warns(UserWarning, match="aaaa_s000_c0001"):
        keys = [c["key"] for c in iter_clips(path, on_error="warn")]
    assert keys == ["aaaa_s000_c0000", "aaaa_s000_c0002"]


def test_format_v1_shards_are_read_with_v2_field_names(tmp_path, make_clip):
    clips = [make_clip(f"0123abcd_s000_c{i:04d}", seed=i) for i in range(2)]
    v1 = [
        encode_v1_sample(
            c.key, c.source, c.novel, c.mask, c.mask_raw, c.disparity.astype(np.float16), {},
            image_format="png",
        )
        for c in clips
    ]  # fmt: skip
    path = tmp_path / "000000.tar"
    with open(path, "wb") as handle:
        write_samples(handle, v1)
    read = list(iter_clips(path, window=2, seed=1))
    assert [c["key"] for c in read] == [c.key for c in clips]
    for clip, truth in zip(read, clips, strict=True):
        start = int(clip["frame_indices"][0])
        np.testing.assert_array_equal(clip["source"], truth.source[start : start + 2])
        np.testing.assert_array_equal(clip["novel"], truth.novel[start : start + 2])
        assert clip["meta"]["format_version"] == 1 and "masked" not in clip
