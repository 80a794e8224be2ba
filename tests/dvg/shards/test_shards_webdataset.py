"""Our shards read with plain webdataset (WebDataset 1.0 API): same keys, members and decodes."""

from __future__ import annotations

import numpy as np
import pytest

from dvg.shards import decode_sample, encode_sample

wds = pytest.importorskip("webdataset")


def test_plain_webdataset_reads_our_shards(tmp_path, make_clip, write_tar):
    samples = [make_clip(f"0123abcd_s000_c{i:04d}", seed=i, num_frames=3) for i in range(2)]
    path = tmp_path / "000000.tar"
    write_tar(path, samples)
    ours = [encode_sample(s) for s in samples]

    raw = list(wds.WebDataset(str(path), shardshuffle=False, empty_check=False))
    assert [r["__key__"] for r in raw] == [s.key for s in samples]
    for got, want in zip(raw, ours, strict=True):
        members = {k: v for k, v in got.items() if not k.startswith("__")}
        assert members == {k: v for k, v in want.items() if not k.startswith("__")}

    decoded = list(wds.WebDataset(str(path), shardshuffle=False).decode("rgb8"))
    for got, sample in zip(decoded, samples, strict=True):
        ours_source = decode_sample(encode_sample(sample), fields=("source",))["source"]
        source = got["source.000.jpg"]  # dispatched on the last extension: a JPEG
        assert isinstance(source, np.ndarray) and source.shape == (24, 40, 3)
        assert source.dtype == np.uint8
        # PIL and OpenCV may use different IDCTs: agree to within a level or two
        assert np.abs(source.astype(int) - ours_source[0]).mean() < 1.5
        mask = got["mask.002.png"]  # grayscale PNG, expanded to RGB by "rgb8"
        np.testing.assert_array_equal(mask[..., 0] > 127, sample.mask[2])
        assert got["masked.001.jpg"].shape == (24, 40, 3)
        assert got["json"]["key"] == sample.key and got["json"]["format_version"] == 2
