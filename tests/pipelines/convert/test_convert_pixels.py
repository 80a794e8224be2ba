"""The fused byte <-> float conversions of the CPU warp are torch's ops, bitwise."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from pipelines.convert.pixels import unit_floats, unit_to_bytes


def test_unit_floats_is_torchs_divide_by_255_for_every_byte() -> None:
    frames = np.arange(256 * 3, dtype=np.int64).reshape(2, 8, 16, 3).astype(np.uint8)
    out = unit_floats(frames[:, :, ::2])  # strided input too
    expected = torch.from_numpy(frames[:, :, ::2].copy()).float().div_(255).numpy()
    assert out.dtype == np.float32 and out.flags.c_contiguous
    np.testing.assert_array_equal(out, expected)


def test_unit_to_bytes_is_torchs_clamp_scale_round_cast() -> None:
    rng = np.random.default_rng(0)
    k = np.arange(256, dtype=np.float32)
    # Exact multiples, the half-way points (round half to even), their float neighbours,
    # and values outside [0, 1].
    halves = (k + np.float32(0.5)) / np.float32(255)
    values = np.concatenate([
        k / np.float32(255), halves, np.nextafter(halves, np.float32(0)),
        np.nextafter(halves, np.float32(1)), rng.normal(0.5, 0.7, 4000).astype(np.float32),
        np.array([-0.0, -1e-30, 1.0000001, 3e38, -3e38], np.float32),
    ])  # fmt: skip
    image = values[: values.size // 3 * 3].reshape(1, -1, 1, 3)
    expected = torch.from_numpy(image.copy()).clamp_(0, 1).mul_(255).round_().byte().numpy()
    out = unit_to_bytes(image.transpose(0, 2, 1, 3))  # strided input too
    np.testing.assert_array_equal(out, expected.transpose(0, 2, 1, 3))
    with pytest.raises(ValueError, match="float32"):
        unit_to_bytes(image.astype(np.float64))
