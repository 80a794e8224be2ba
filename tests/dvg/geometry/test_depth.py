import pytest
import torch
from torch.autograd import gradcheck

from dvg.geometry import (
    depth_to_disparity,
    disparity_to_depth,
    inverse_depth_bounds,
    relative_inverse_depth_to_disparity,
)
from dvg.geometry.depth import select_quantiles


def test_depth_to_disparity_hand_computed(device, dtype):
    depth = torch.tensor([[[[1.0, 2.0], [4.0, 8.0]]]], device=device, dtype=dtype)
    d = depth_to_disparity(depth, focal=100.0, baseline=0.08)
    expected = torch.tensor([[[[8.0, 4.0], [2.0, 1.0]]]], device=device, dtype=dtype)
    torch.testing.assert_close(d, expected)
    assert d.dtype == dtype and d.device.type == device.type


def test_per_sample_focal_and_baseline_batch_and_non_square():
    depth = torch.rand(3, 1, 5, 9) + 0.5
    focal = torch.tensor([100.0, 200.0, 50.0])
    baseline = torch.tensor([0.1, 0.05, 0.2])
    d = depth_to_disparity(depth, focal, baseline)
    for i in range(3):
        torch.testing.assert_close(d[i], focal[i] * baseline[i] / depth[i])


def test_depth_disparity_round_trip():
    depth = torch.rand(2, 1, 7, 4, dtype=torch.float64) * 10 + 0.1
    back = disparity_to_depth(depth_to_disparity(depth, 320.0, 0.065), 320.0, 0.065)
    torch.testing.assert_close(back, depth)


@pytest.mark.parametrize(
    ("bad", "match"),
    [
        (torch.zeros(1, 1, 2, 2), "strictly positive"),
        (-torch.ones(1, 1, 2, 2), "strictly positive"),
        (torch.full((1, 1, 2, 2), float("nan")), "NaN"),
        (torch.ones(1, 2, 2), r"\(B, C, H, W\)"),
        (torch.ones(1, 3, 2, 2), "1 channel"),
        (torch.ones(1, 1, 0, 2), "empty"),
    ],
)
def test_depth_to_disparity_rejects_bad_depth(bad, match):
    with pytest.raises(ValueError, match=match) as info:
        depth_to_disparity(bad, 100.0, 0.1)
    assert "depth" in str(info.value)


def test_focal_of_wrong_batch_size_is_named():
    with pytest.raises(ValueError, match="focal"):
        depth_to_disparity(torch.ones(2, 1, 3, 3), torch.ones(3), 0.1)


def test_relative_inverse_depth_maps_far_to_zero_and_near_to_span():
    inv = torch.tensor([[[[0.0, 1.0], [2.0, 4.0]]]])
    d = relative_inverse_depth_to_disparity(inv, 12.0)
    torch.testing.assert_close(d, torch.tensor([[[[0.0, 3.0], [6.0, 12.0]]]]))


def test_relative_inverse_depth_is_scale_and_shift_invariant():
    inv = torch.rand(2, 1, 6, 5)
    a = relative_inverse_depth_to_disparity(inv, 10.0)
    b = relative_inverse_depth_to_disparity(inv * 37.0 + 5.0, 10.0)
    torch.testing.assert_close(a, b)


def test_convergence_plane_has_zero_parallax_and_fraction_of_width():
    inv = torch.linspace(0, 1, 11).view(1, 1, 1, 11).expand(1, 1, 4, 11).contiguous()
    d = relative_inverse_depth_to_disparity(inv, 0.1, convergence=0.5, relative_to_width=True)
    # span = 0.1 * 11 px; the middle column (n = 0.5) is on the screen.
    torch.testing.assert_close(d[0, 0, 0, 5], torch.tensor(0.0))
    torch.testing.assert_close(d[0, 0, 0, 0], torch.tensor(-0.55))
    torch.testing.assert_close(d[0, 0, 0, -1], torch.tensor(0.55))


def test_clip_bounds_keep_frames_consistent():
    clip = torch.rand(4, 1, 8, 8)
    clip[2] *= 0.5  # a frame whose own range is narrower
    low, high = inverse_depth_bounds(clip.transpose(0, 1))
    bounds = (low.expand(4), high.expand(4))
    d = relative_inverse_depth_to_disparity(clip, 10.0, bounds=bounds)
    # Same inverse depth -> same disparity in every frame (no per-frame renormalisation).
    expected = 10.0 * (clip - low) / (high - low)
    torch.testing.assert_close(d, expected)


def test_quantile_bounds_clip_outliers():
    inv = torch.linspace(0, 1, 1001).view(1, 1, 1, 1001)
    inv[..., -1] = 1000.0  # one outlier
    low, high = inverse_depth_bounds(inv, 0.0, 0.99)
    assert high.item() < 1.0
    d = relative_inverse_depth_to_disparity(inv, 5.0, bounds=(low, high))
    assert d.max().item() == pytest.approx(5.0)


def test_constant_map_gives_far_plane_not_nan():
    d = relative_inverse_depth_to_disparity(torch.full((1, 1, 3, 3), 7.0), 10.0)
    assert torch.isfinite(d).all() and (d == 0).all()


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"convergence": 1.5}, "convergence"),
        ({"max_disparity": -1.0}, "max_disparity"),
    ],
)
def test_relative_inverse_depth_rejects_bad_parameters(kwargs, match):
    args = {"max_disparity": 10.0, **kwargs}
    with pytest.raises(ValueError, match=match):
        relative_inverse_depth_to_disparity(torch.rand(1, 1, 3, 3), **args)


def test_relative_inverse_depth_rejects_nan_and_bad_quantiles():
    bad = torch.rand(1, 1, 3, 3)
    bad[0, 0, 1, 1] = float("nan")
    with pytest.raises(ValueError, match="inverse_depth"):
        relative_inverse_depth_to_disparity(bad, 10.0)
    with pytest.raises(ValueError, match="quantiles"):
        inverse_depth_bounds(torch.rand(1, 1, 3, 3), 0.5, 0.2)


def test_gradcheck():
    depth = (torch.rand(1, 1, 3, 4, dtype=torch.float64) + 0.5).requires_grad_()
    assert gradcheck(lambda z: depth_to_disparity(z, 10.0, 0.3), (depth,))
    inv = torch.rand(1, 1, 3, 4, dtype=torch.float64).requires_grad_()
    bounds = (torch.tensor([-0.1], dtype=torch.float64), torch.tensor([1.1], dtype=torch.float64))
    assert gradcheck(
        lambda q: relative_inverse_depth_to_disparity(q, 8.0, convergence=0.3, bounds=bounds),
        (inv,),
    )


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("shape", [(1, 1), (1, 2), (3, 1000), (2, 4097), (9, 301)])
def test_selected_quantiles_equal_torch_quantile_bitwise(dtype, shape):
    g = torch.Generator().manual_seed(shape[1])
    values = torch.randn(shape, generator=g, dtype=dtype)
    values[:, ::3] = values[:, :1].clone()  # ties
    for q in [(0.02, 0.98), (0.0, 0.5), (0.25, 1.0), (0.1, 0.9, 0.999)]:
        expected = torch.quantile(values, torch.tensor(q, dtype=dtype), dim=1)
        got = select_quantiles(values, q)
        assert got.dtype == expected.dtype and got.shape == expected.shape
        assert torch.equal(got, expected), q


def test_inverse_depth_bounds_are_torch_quantiles_of_the_clip():
    clip = torch.rand(5, 1, 12, 17) ** 3
    low, high = inverse_depth_bounds(clip.transpose(0, 1), 0.02, 0.98)
    expected = torch.quantile(clip.flatten(), torch.tensor([0.02, 0.98]))
    assert torch.equal(low, expected[:1]) and torch.equal(high, expected[1:])
