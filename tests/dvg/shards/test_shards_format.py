"""Keys, encode_sample and selective decode_sample of the DVG shard format."""

from __future__ import annotations

import dataclasses
import hashlib
import json

import cv2
import numpy as np
import pytest
from v1_shards import encode_v1_sample

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
            ("source", "jpg"),
            ("novel", "jpg"),
            ("masked", "jpg"),
            ("mask", "png"),
            ("mask_raw", "png"),
            ("disparity", "png"),
        ]
    }
    assert set(names[1:]) == expected
    meta = json.loads(members["json"])
    assert meta["format_version"] == FORMAT_VERSION == 2
    assert meta["frames"] == 3
    assert meta["size"] == [24, 40]
    assert meta["fields"] == sorted(["source", "novel", "masked", "mask", "mask_raw", "disparity"])
    assert meta["image_format"] == "jpg"
    assert meta["jpeg_quality"] == 95
    assert meta["key"] == KEY
    assert meta["stereo"] == sample.meta["stereo"]
    assert len(meta["disparity_encoding"]["offset"]) == 3
    assert "format_version" not in sample.meta  # the caller's dict is not modified
    # png members start with the PNG signature, jpg with the JPEG SOI marker
    assert members["mask.000.png"][:8] == b"\x89PNG\r\n\x1a\n"
    assert members["source.000.jpg"][:2] == b"\xff\xd8"


def test_png_round_trip_is_bit_exact(make_clip):
    sample = make_clip(KEY)
    members = encode_sample(sample, image_format="png")
    assert set(members) >= {"source.004.png", "novel.004.png", "masked.004.png"}
    out = decode_sample(members)
    for field in ("source", "novel", "masked", "mask", "mask_raw"):
        np.testing.assert_array_equal(out[field], getattr(sample, field), err_msg=field)
    np.testing.assert_array_equal(out["frame_indices"], np.arange(5))
    assert out["key"] == KEY
    assert out["meta"]["image_format"] == "png"
    assert "jpeg_quality" not in out["meta"]


def test_disparity_is_16_bit_with_a_per_frame_scale(make_clip):
    sample = make_clip(KEY)
    sample.disparity[2] *= 10  # a frame with a wider range gets a coarser step
    members = encode_sample(sample)
    out = decode_sample(members, fields=("disparity",))["disparity"]
    assert out.dtype == np.float32
    for t in range(5):
        frame = sample.disparity[t].astype(np.float64)
        step = (frame.max() - frame.min()) / 65535
        assert np.abs(out[t] - frame).max() <= step / 2 + 1e-5 * np.abs(frame).max()
        assert cv2.imdecode(
            np.frombuffer(members[f"disparity.{t:03d}.png"], np.uint8), -1
        ).dtype == (np.uint16)
    # 15 px of range: far finer than float16 (0.0078 px steps at 8-16 px)
    assert np.abs(out[0] - sample.disparity[0]).max() < 2e-4
    constant = dataclasses.replace(sample, disparity=np.full((5, 24, 40), 3.25, np.float32))
    np.testing.assert_array_equal(decode_sample(encode_sample(constant))["disparity"], 3.25)


def test_disparity_is_optional(make_clip):
    sample = dataclasses.replace(make_clip(KEY), disparity=None)
    members = encode_sample(sample)
    assert not [n for n in members if n.startswith("disparity")]
    meta = json.loads(members["json"])
    assert "disparity" not in meta["fields"] and "disparity_encoding" not in meta
    out = decode_sample(members)
    assert "disparity" not in out and "masked" in out
    with pytest.raises(ShardFormatError, match="--keep-disparity"):
        decode_sample(members, fields=("disparity",))


def test_jpeg_round_trip_within_tolerance(make_clip):
    sample = make_clip(KEY)
    out = decode_sample(encode_sample(sample, jpeg_quality=95))
    assert out["source"].shape == (5, 24, 40, 3) and out["source"].dtype == np.uint8
    for field in ("source", "novel"):
        decoded, original = out[field].astype(int), getattr(sample, field).astype(int)
        err = np.abs(decoded - original)
        assert err.mean() < 4.0 and err.max() < 60, field
        # RGB order survives: a channel swap is far worse than the JPEG error
        assert np.abs(decoded[..., ::-1] - original).mean() > 10 * err.mean()
    np.testing.assert_array_equal(out["mask"], sample.mask)
    # lower quality is smaller
    low = encode_sample(sample, jpeg_quality=30)
    assert len(low["source.000.jpg"]) < len(encode_sample(sample)["source.000.jpg"])


def test_single_frame_decodes_only_that_frame(make_clip, monkeypatch):
    sample = make_clip(KEY)
    members = encode_sample(sample, image_format="png")
    looked_up = []
    original = fmt._member

    def spy(members, name, where):
        looked_up.append(name)
        return original(members, name, where)

    monkeypatch.setattr(fmt, "_member", spy)
    out = decode_sample(members, frames=[3])
    assert sorted(looked_up) == sorted(
        [
            "source.003.png",
            "novel.003.png",
            "masked.003.png",
            "mask.003.png",
            "mask_raw.003.png",
            "disparity.003.png",
        ]
    )
    assert out["source"].shape == (1, 24, 40, 3)
    assert out["mask"].shape == (1, 24, 40)
    assert out["disparity"].shape == (1, 24, 40)
    np.testing.assert_array_equal(out["source"][0], sample.source[3])
    np.testing.assert_array_equal(out["frame_indices"], [3])

    # Members of the other frames are not even looked at.
    only_frame_3 = {k: v for k, v in members.items() if ".003." in k or k in ("__key__", "json")}
    out = decode_sample(only_frame_3, frames=[3], fields=("source", "mask"))
    assert set(out) == {"key", "meta", "frame_indices", "source", "mask"}


def test_window_slice_and_field_subset(make_clip):
    sample = make_clip(KEY)
    members = encode_sample(sample, image_format="png")
    out = decode_sample(members, frames=slice(1, 4), fields=("masked", "mask_raw"))
    np.testing.assert_array_equal(out["masked"], sample.masked[1:4])
    np.testing.assert_array_equal(out["mask_raw"], sample.mask_raw[1:4])
    np.testing.assert_array_equal(out["frame_indices"], [1, 2, 3])
    assert "novel" not in out and "mask" not in out
    out = decode_sample(members, frames=np.array([4, 0]), fields=("mask",))
    np.testing.assert_array_equal(out["mask"], sample.mask[[4, 0]])
    empty = decode_sample(members, frames=[], fields=("source", "mask", "disparity"))
    assert empty["source"].shape == (0, 24, 40, 3) and empty["mask"].dtype == np.bool_
    assert empty["disparity"].dtype == np.float32


def test_decode_errors_name_the_problem(make_clip):
    members = encode_sample(make_clip(KEY))
    with pytest.raises(ShardFormatError, match="out of range"):
        decode_sample(members, frames=[5])
    with pytest.raises(ShardFormatError, match="unknown fields"):
        decode_sample(members, fields=("depth",))
    with pytest.raises(ShardFormatError, match="unknown fields"):
        decode_sample(members, fields=("left",))  # v1's name for x1: v2 readers say source
    missing = {k: v for k, v in members.items() if k != "mask.002.png"}
    with pytest.raises(ShardFormatError, match=r"mask\.002\.png"):
        decode_sample(missing)
    broken = dict(members, **{"source.001.jpg": b"not a jpeg"})
    with pytest.raises(ShardFormatError, match=r"source\.001\.jpg"):
        decode_sample(broken)
    eight_bit = dict(members, **{"disparity.000.png": members["mask.000.png"]})
    with pytest.raises(ShardFormatError, match=r"disparity\.000\.png.*uint16"):
        decode_sample(eight_bit, fields=("disparity",))
    meta = json.loads(members["json"])
    del meta["disparity_encoding"]
    with pytest.raises(ShardFormatError, match="disparity_encoding"):
        decode_sample(dict(members, json=json.dumps(meta).encode()))


def test_unknown_format_version_names_the_key(make_clip):
    members = encode_sample(make_clip(KEY))
    meta = json.loads(members["json"])
    meta["format_version"] = 3
    future = dict(members, json=json.dumps(meta).encode())
    with pytest.raises(ValueError, match=rf"{KEY}.*format_version 3"):
        decode_sample(future)
    with pytest.raises(ValueError, match="format_version"):
        read_meta(dict(members, json=b"{}"))


def _v1_members(sample, **kwargs) -> dict:
    return encode_v1_sample(
        sample.key,
        sample.source,
        sample.novel,
        sample.mask,
        sample.mask_raw,
        sample.disparity.astype(np.float16),
        {"stereo": {"mode": "relative"}, "fps": 24.0},
        **kwargs,
    )


def test_format_v1_samples_still_decode_under_v2_names(make_clip):
    sample = make_clip(KEY)
    members = _v1_members(sample, image_format="png")
    assert "left.000.png" in members and "disparity.000.npy" in members
    meta = read_meta(members)
    assert meta["format_version"] == 1
    assert meta["stereo"]["virtual_eye"] == "right"  # v1 rendered x2 as the right eye
    assert set(meta["fields"]) == {"source", "novel", "mask", "mask_raw", "disparity"}
    out = decode_sample(members)
    np.testing.assert_array_equal(out["source"], sample.source)  # v1 "left"
    np.testing.assert_array_equal(out["novel"], sample.novel)  # v1 "right"
    np.testing.assert_array_equal(out["mask"], sample.mask)
    assert out["disparity"].dtype == np.float32
    np.testing.assert_array_equal(out["disparity"], sample.disparity.astype(np.float16))
    assert "masked" not in out
    with pytest.raises(ShardFormatError, match=r"'masked'.*v1.*rebuild"):
        decode_sample(members, fields=("source", "masked"))
    pickled = dict(members, **{"disparity.000.npy": np.lib.format.magic(1, 0) + b"junk"})
    with pytest.raises(ShardFormatError, match=r"disparity\.000\.npy"):
        decode_sample(pickled)


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"mask": np.zeros((5, 24, 40), np.uint8)}, "mask"),
        ({"mask_raw": np.zeros((5, 24, 41), bool)}, "mask_raw"),
        ({"novel": np.zeros((5, 24, 40, 3), np.float32)}, "novel"),
        ({"novel": np.zeros((4, 24, 40, 3), np.uint8)}, "novel"),
        ({"masked": np.zeros((5, 24, 40, 3), np.int16)}, "masked"),
        ({"disparity": np.zeros((5, 24, 40), np.int32)}, "disparity"),
        ({"disparity": np.zeros((5, 24, 41), np.float32)}, "disparity"),
        ({"source": np.zeros((24, 40, 3), np.uint8)}, "source"),
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
