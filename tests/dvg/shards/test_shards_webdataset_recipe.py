"""The plain-WebDataset recipe of docs/shard-format.md decodes our members with explicit handlers
and never unpickles: planted .pyd / .pth payloads stay bytes (the default decoders run them)."""

from __future__ import annotations

import io
import json
import pickle

import cv2
import numpy as np
import pytest
import torch

from dvg.shards import FIELDS, decode_sample, encode_sample, member_name, write_samples

wds = pytest.importorskip("webdataset")


def decode_member(key: str, data: bytes):
    """The recipe's handler, as in docs/shard-format.md."""
    extension = key.rsplit(".", 1)[-1].lower()
    if extension == "json":
        return json.loads(data)
    if extension in ("jpg", "png"):  # 8-bit RGB, 8-bit masks, 16-bit PNGs kept as they are
        image = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_UNCHANGED)
        return image if image.ndim == 2 else cv2.cvtColor(image, cv2.COLOR_BGR2RGB)
    if extension == "npy":
        return np.load(io.BytesIO(data), allow_pickle=False)
    return None


@pytest.fixture
def planted_shard(tmp_path, make_clip, pickle_payload):
    payload, marker = pickle_payload
    samples = [encode_sample(make_clip(f"0123abcd_s000_c{i:04d}", seed=i)) for i in range(2)]
    torch_payload = io.BytesIO()
    torch.save({"x": payload}, torch_payload)
    planted = [
        {**s, "extra.pyd": pickle.dumps(payload), "extra.pth": torch_payload.getvalue()}
        for s in samples
    ]
    path = tmp_path / "000000.tar"
    with path.open("wb") as f:
        write_samples(f, planted)
    return path, samples, marker


def test_recipe_decodes_every_member_and_never_unpickles(planted_shard):
    path, samples, marker = planted_shard
    ds = wds.WebDataset(str(path), shardshuffle=False).decode(decode_member, post=[])
    decoded = list(ds)
    assert [d["__key__"] for d in decoded] == [s["__key__"] for s in samples]
    for got, members in zip(decoded, samples, strict=True):
        assert got["json"] == json.loads(members["json"])
        assert isinstance(got["extra.pyd"], bytes) and isinstance(got["extra.pth"], bytes)
        for name in members:
            if name.endswith((".jpg", ".png", ".npy")):
                assert isinstance(got[name], np.ndarray), name
        image_format = got["json"]["image_format"]
        for field in FIELDS:  # each field's frame 0 as dvg's own decoder reads it
            want = decode_sample(members, frames=[0], fields=[field])[field][0]
            have = got[member_name(field, 0, image_format)]
            if want.dtype == np.bool_:  # masks: 0/255 grey
                np.testing.assert_array_equal(have > 127, want)
            elif want.dtype == np.uint8:  # RGB views
                np.testing.assert_array_equal(have, want)
    assert not marker.exists()


def test_default_decoders_would_run_the_payload(planted_shard):
    """Why the recipe matters: WebDataset's default handlers unpickle .pyd members."""
    path, _, marker = planted_shard
    list(wds.WebDataset(str(path), shardshuffle=False).decode("rgb8"))
    assert marker.exists()
