"""Keys, encode_sample and selective decode_sample of the DVG shard format."""

from __future__ import annotations

import dataclasses
import hashlib
import json

import numpy as np
import pytest

from dvg.shards import (
    FORMAT_VERSION,
    ShardFormatError,
    decode_sample,
    encode_sample,
    make_key,
    read_meta,
    validate_key,
    video_id_for,
)
from dvg.shards import format as fmt

KEY = "0123456789abcdef_s001_c0002"


def test_make_key_and_video_id():
    video_id = video_id_for("videos/a b/clip.mp4")
    assert video_id == hashlib.sha256(b"videos/a b/clip.mp4").hexdigest()[:16]
    assert make_key(video_id, 3, 12) == f"{video_id}_s003_c0012"
    assert video_id_for("videos/x.mp4") != video_id_for("videos/y.mp4")


@pytest.mark.parametrize("bad", ["a.b", "clip.000", "a/b", "", "a b", "__meta", "x" * 81, 7])
def test_bad_keys_are_rejected(bad):
    with pytest.raises(ShardFormatError):
        validate_key(bad)


def test_make_key_rejects_bad_parts():
    with pytest.raises(ShardFormatError, match="video_id"):
        make_key("abc.def", 0, 0)
    with pytest.raises(ShardFormatError, match="scene"):
        make_key("abc", -1, 0)
    with pytest.raises(ShardFormatError, match="clip"):
        make_key("abc", 0, 1.5)


def test_encode_members_order_and_meta(make_clip):
    sample = make_clip(KEY, num_frames=3)
    members = encode_sample(sample)
    names = [n for n in members if n != "__key__"]
    assert members["__key__"] == KEY
    assert names[0] == "json"
    assert names[1:] == sorted(names[1:])
    expected = {
        f"{field}.{t:03d}.{ext}"
        for t in range(3)
        for field, ext in [
            ("left", "jpg"),
            ("right", "jpg"),
            ("mask", "png"),
            ("mask_raw", "png"),
            ("disparity", "npy"),
        ]
    }
    assert set(names[1:]) == expected
    meta = json.loads(members["json"])
    assert meta["format_version"] == FORMAT_VERSION
    assert meta["frames"] == 3
    assert meta["size"] == [24, 40]
    assert meta["image_format"] == "jpg"
    assert meta["jpeg_quality"] == 95
    assert meta["key"] == KEY
    assert meta["stereo"] == sample.meta["stereo"]
    assert "format_version" not in sample.meta  # the caller's dict is not modified
    # png members start with the PNG signature, jpg with the JPEG SOI marker
    assert members["mask.000.png"][:8] == b"\x89PNG\r\n\x1a\n"
    assert members["left.000.jpg"][:2] == b"\xff\xd8"


def test_png_round_trip_is_bit_exact(make_clip):
    sample = make_clip(KEY)
    out = decode_sample(encode_sample(sample, image_format="png"))
    assert set(encode_sample(sample, image_format="png")) >= {"left.004.png", "right.004.png"}
    np.testing.assert_array_equal(out["left"], sample.left)
    np.testing.assert_array_equal(out["right"], sample.right)
    np.testing.assert_array_equal(out["mask"], sample.mask)
    np.testing.assert_array_equal(out["mask_raw"], sample.mask_raw)
    assert out["disparity"].dtype == np.float16
    np.testing.assert_array_equal(out["disparity"], sample.disparity)
    np.testing.assert_array_equal(out["frame_indices"], np.arange(5))
    assert out["key"] == KEY
    assert out["meta"]["image_format"] == "png"
    assert "jpeg_quality" not in out["meta"]


def test_jpeg_round_trip_within_tolerance(make_clip):
    sample = make_clip(KEY)
    out = decode_sample(encode_sample(sample, jpeg_quality=95))
    assert out["left"].shape == (5, 24, 40, 3) and out["left"].dtype == np.uint8
    for field in ("left", "right"):
        decoded, original = out[field].astype(int), getattr(sample, field).astype(int)
        err = np.abs(decoded - original)
        assert err.mean() < 4.0 and err.max() < 60, field
        # RGB order survives: a channel swap is far worse than the JPEG error
        assert np.abs(decoded[..., ::-1] - original).mean() > 10 * err.mean()
    np.testing.assert_array_equal(out["mask"], sample.mask)
    np.testing.assert_array_equal(out["disparity"], sample.disparity)
    # lower quality is smaller
    low = encode_sample(sample, jpeg_quality=30)
    assert len(low["left.000.jpg"]) < len(encode_sample(sample)["left.000.jpg"])


def test_single_frame_decodes_only_that_frame(make_clip, monkeypatch):
    sample = make_clip(KEY)
    members = encode_sample(sample, image_format="png")
    calls = []
    for kind, decoder in list(fmt._DECODERS.items()):

        def spy(data, size, where, name, _decoder=decoder):
            calls.append(name)
            return _decoder(data, size, where, name)

        monkeypatch.setitem(fmt._DECODERS, kind, spy)
    out = decode_sample(members, frames=[3])
    assert sorted(calls) == sorted(
        ["left.003.png", "right.003.png", "mask.003.png", "mask_raw.003.png", "disparity.003.npy"]
    )
    assert out["left"].shape == (1, 24, 40, 3)
    assert out["mask"].shape == (1, 24, 40)
    assert out["disparity"].shape == (1, 24, 40)
    np.testing.assert_array_equal(out["left"][0], sample.left[3])
    np.testing.assert_array_equal(out["frame_indices"], [3])

    # Members of the other frames are not even looked at.
    only_frame_3 = {k: v for k, v in members.items() if ".003." in k or k in ("__key__", "json")}
    out = decode_sample(only_frame_3, frames=[3], fields=("left", "mask"))
    assert set(out) == {"key", "meta", "frame_indices", "left", "mask"}


def test_window_slice_and_field_subset(make_clip):
    sample = make_clip(KEY)
    members = encode_sample(sample, image_format="png")
    out = decode_sample(members, frames=slice(1, 4), fields=("left", "disparity"))
    np.testing.assert_array_equal(out["left"], sample.left[1:4])
    np.testing.assert_array_equal(out["disparity"], sample.disparity[1:4])
    np.testing.assert_array_equal(out["frame_indices"], [1, 2, 3])
    assert "right" not in out and "mask" not in out
    out = decode_sample(members, frames=np.array([4, 0]), fields=("mask",))
    np.testing.assert_array_equal(out["mask"], sample.mask[[4, 0]])
    empty = decode_sample(members, frames=[], fields=("left", "mask"))
    assert empty["left"].shape == (0, 24, 40, 3) and empty["mask"].dtype == np.bool_


def test_decode_errors_name_the_problem(make_clip):
    members = encode_sample(make_clip(KEY))
    with pytest.raises(ShardFormatError, match="out of range"):
        decode_sample(members, frames=[5])
    with pytest.raises(ShardFormatError, match="unknown fields"):
        decode_sample(members, fields=("depth",))
    missing = {k: v for k, v in members.items() if k != "mask.002.png"}
    with pytest.raises(ShardFormatError, match=r"mask\.002\.png"):
        decode_sample(missing)
    broken = dict(members, **{"left.001.jpg": b"not a jpeg"})
    with pytest.raises(ShardFormatError, match=r"left\.001\.jpg"):
        decode_sample(broken)
    pickled = dict(members, **{"disparity.000.npy": np.lib.format.magic(1, 0) + b"junk"})
    with pytest.raises(ShardFormatError, match=r"disparity\.000\.npy"):
        decode_sample(pickled)


def test_unknown_format_version_names_the_key(make_clip):
    members = encode_sample(make_clip(KEY))
    meta = json.loads(members["json"])
    meta["format_version"] = 2
    future = dict(members, json=json.dumps(meta).encode())
    with pytest.raises(ValueError, match=rf"{KEY}.*format_version 2"):
        decode_sample(future)
    with pytest.raises(ValueError, match="format_version"):
        read_meta(dict(members, json=b"{}"))


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"mask": np.zeros((5, 24, 40), np.uint8)}, "mask"),
        ({"mask_raw": np.zeros((5, 24, 41), bool)}, "mask_raw"),
        ({"right": np.zeros((5, 24, 40, 3), np.float32)}, "right"),
        ({"right": np.zeros((4, 24, 40, 3), np.uint8)}, "right"),
        ({"disparity": np.zeros((5, 24, 40), np.float32)}, "disparity"),
        ({"left": np.zeros((24, 40, 3), np.uint8)}, "left"),
        ({"key": "bad.key"}, "dot"),
    ],
)
def test_encode_validates_fields(make_clip, change, field):
    sample = dataclasses.replace(make_clip(KEY), **change)
    with pytest.raises(ValueError, match=field):
        encode_sample(sample)


def test_encode_validates_values_and_meta(make_clip):
    sample = make_clip(KEY)
    nan = sample.disparity.copy()
    nan[0, 0, 0] = np.nan
    with pytest.raises(ShardFormatError, match="disparity"):
        encode_sample(dataclasses.replace(sample, disparity=nan))
    with pytest.raises(ShardFormatError, match="meta is not plain JSON"):
        encode_sample(dataclasses.replace(sample, meta={"fps": np.float32(24)}))
    with pytest.raises(ShardFormatError, match="format_version"):
        encode_sample(dataclasses.replace(sample, meta={"format_version": 0}))
    with pytest.raises(ShardFormatError, match="frames"):
        encode_sample(dataclasses.replace(sample, meta={"frames": 8}))
    with pytest.raises(ShardFormatError, match="image_format"):
        encode_sample(sample, image_format="webp")
    with pytest.raises(ShardFormatError, match="jpeg_quality"):
        encode_sample(sample, jpeg_quality=101)


def test_encoding_is_deterministic(make_clip):
    a = encode_sample(make_clip(KEY, seed=3))
    b = encode_sample(make_clip(KEY, seed=3))
    assert list(a) == list(b)
    assert all(a[k] == b[k] for k in a)
