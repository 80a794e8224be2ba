import pytest
import torch
from torch.autograd import gradcheck

from dvg.geometry import (
    backward_render,
    forward_render,
    softmax_splat,
    splatting,
    stereo_flow,
    zbuffer_disparity,
)


def zeros_flow(b: int, h: int, w: int, dtype=torch.float32) -> torch.Tensor:
    return torch.zeros(b, 2, h, w, dtype=dtype)


def test_zero_flow_is_identity_with_full_coverage(device, dtype):
    image = torch.rand(2, 3, 5, 7, device=device, dtype=dtype)
    r = softmax_splat(
        image, zeros_flow(2, 5, 7, dtype).to(device), torch.rand(2, 1, 5, 7).to(image)
    )
    torch.testing.assert_close(r.image, image)
    torch.testing.assert_close(r.weight, torch.ones_like(r.weight))
    assert not r.holes.any()
    assert r.image.dtype == dtype


def test_integer_shift_moves_pixels_and_opens_a_hole_column():
    image = torch.rand(1, 3, 4, 6)
    flow = zeros_flow(1, 4, 6)
    flow[:, 0] = 2.0
    r = softmax_splat(image, flow, torch.zeros(1, 1, 4, 6))
    torch.testing.assert_close(r.image[..., 2:], image[..., :-2])
    assert r.holes[0, 0, :, :2].all() and not r.holes[0, 0, :, 2:].any()
    assert (r.image[..., :2] == 0).all()


def test_half_pixel_shift_splits_weight_between_two_pixels():
    image = torch.zeros(1, 1, 1, 4)
    image[0, 0, 0, 1] = 1.0
    flow = zeros_flow(1, 1, 4)
    flow[:, 0] = 0.5
    r = softmax_splat(image, flow, torch.zeros(1, 1, 1, 4))
    # Coverage: pixel 0 gets half of source 0; pixels 1..3 get two halves.
    torch.testing.assert_close(r.weight[0, 0, 0], torch.tensor([0.5, 1.0, 1.0, 1.0]))
    # Pixels 1 and 2 average the two sources landing half on them (equal importance).
    torch.testing.assert_close(r.image[0, 0, 0], torch.tensor([0.0, 0.5, 0.5, 0.0]))


def test_border_corners_are_kept_one_by_one():
    # A pixel landing at x = -0.5 keeps its in-bounds corner at column 0 with weight 0.5.
    image = torch.ones(1, 1, 1, 3)
    flow = zeros_flow(1, 1, 3)
    flow[0, 0, 0, 0] = -0.5
    flow[0, 0, 0, 1:] = 10.0  # the others leave the image
    r = softmax_splat(image, flow, torch.zeros(1, 1, 1, 3))
    torch.testing.assert_close(r.weight[0, 0, 0], torch.tensor([0.5, 0.0, 0.0]))
    torch.testing.assert_close(r.image[0, 0, 0], torch.tensor([1.0, 0.0, 0.0]))


def test_higher_importance_wins_where_surfaces_collide():
    image = torch.tensor([[[[0.2, 0.9]]]])
    flow = torch.tensor([[[[1.0, 0.0]], [[0.0, 0.0]]]])  # both land on column 1
    far_wins = softmax_splat(image, flow, torch.tensor([[[[30.0, 0.0]]]]))
    near_wins = softmax_splat(image, flow, torch.tensor([[[[0.0, 30.0]]]]))
    assert far_wins.image[0, 0, 0, 1].item() == pytest.approx(0.2, abs=1e-6)
    assert near_wins.image[0, 0, 0, 1].item() == pytest.approx(0.9, abs=1e-6)
    assert far_wins.weight[0, 0, 0, 1].item() == pytest.approx(2.0)


def test_equal_importance_averages():
    image = torch.tensor([[[[0.2, 0.9]]]])
    flow = torch.tensor([[[[1.0, 0.0]], [[0.0, 0.0]]]])
    r = softmax_splat(image, flow, torch.zeros(1, 1, 1, 2))
    assert r.image[0, 0, 0, 1].item() == pytest.approx(0.55)


def test_huge_importance_range_does_not_black_out_far_surfaces():
    # alpha * disparity spanning 5000: a single global shift underflows exp() for the far pixels.
    image = torch.rand(1, 3, 8, 8)
    importance = torch.linspace(0, 5000, 64).view(1, 1, 8, 8)
    r = softmax_splat(image, zeros_flow(1, 8, 8), importance)
    torch.testing.assert_close(r.image, image)
    flow = zeros_flow(1, 8, 8)
    flow[:, 0] = 0.25
    r = softmax_splat(image, flow, importance)
    assert torch.isfinite(r.image).all()
    assert (r.image[..., 1:].sum(dim=1) > 0).all()


def test_batch_elements_are_independent_and_non_square():
    image = torch.rand(3, 2, 5, 9)
    flow = torch.randn(3, 2, 5, 9) * 2
    importance = torch.randn(3, 1, 5, 9)
    batched = softmax_splat(image, flow, importance)
    for i in range(3):
        single = softmax_splat(image[i : i + 1], flow[i : i + 1], importance[i : i + 1])
        torch.testing.assert_close(batched.image[i : i + 1], single.image)
        torch.testing.assert_close(batched.weight[i : i + 1], single.weight)


def test_half_precision_accumulates_in_float32():
    image = torch.rand(1, 3, 16, 16)
    flow = torch.randn(1, 2, 16, 16)
    importance = torch.randn(1, 1, 16, 16)
    full = softmax_splat(image, flow, importance)
    half = softmax_splat(image.half(), flow.half(), importance.half())
    assert half.image.dtype == torch.float16
    torch.testing.assert_close(half.image.float(), full.image, atol=1e-2, rtol=1e-2)


@pytest.mark.parametrize(
    ("image", "flow", "importance", "match"),
    [
        (torch.rand(1, 3, 4, 4), torch.rand(1, 3, 4, 4), torch.rand(1, 1, 4, 4), "flow"),
        (torch.rand(1, 3, 4, 4), torch.rand(1, 2, 4, 5), torch.rand(1, 1, 4, 4), "flow"),
        (torch.rand(1, 3, 4, 4), torch.rand(1, 2, 4, 4), torch.rand(1, 2, 4, 4), "importance"),
        (torch.rand(1, 3, 0, 4), torch.rand(1, 2, 0, 4), torch.rand(1, 1, 0, 4), "image"),
        (torch.rand(3, 4, 4), torch.rand(1, 2, 4, 4), torch.rand(1, 1, 4, 4), "image"),
    ],
)
def test_bad_shapes_raise(image, flow, importance, match):
    with pytest.raises(ValueError, match=match):
        softmax_splat(image, flow, importance)


def test_nan_inputs_raise():
    bad = torch.zeros(1, 1, 3, 3)
    bad[0, 0, 1, 1] = float("nan")
    with pytest.raises(ValueError, match="importance"):
        softmax_splat(torch.rand(1, 3, 3, 3), torch.zeros(1, 2, 3, 3), bad)
    with pytest.raises(ValueError, match="flow"):
        softmax_splat(torch.rand(1, 3, 3, 3), bad.expand(1, 2, 3, 3), torch.zeros(1, 1, 3, 3))


def test_gradcheck_image_flow_and_importance():
    torch.manual_seed(0)
    image = torch.rand(1, 2, 4, 5, dtype=torch.float64, requires_grad=True)
    # Fractional flows away from integers, so no corner switches under the finite differences.
    flow = torch.randint(-1, 2, (1, 2, 4, 5)).double() + 0.3 + 0.4 * torch.rand(1, 2, 4, 5)
    flow.requires_grad_()
    importance = torch.randn(1, 1, 4, 5, dtype=torch.float64, requires_grad=True)
    assert gradcheck(lambda i, f, z: softmax_splat(i, f, z).image, (image, flow, importance))
    assert gradcheck(
        lambda f: softmax_splat(image.detach(), f, importance.detach()).weight, (flow,)
    )


def assert_bitwise_equal(a: torch.Tensor, b: torch.Tensor) -> None:
    assert a.dtype == b.dtype and a.shape == b.shape
    if a.is_floating_point():
        bits = {torch.float16: torch.int16, torch.float32: torch.int32, torch.float64: torch.int64}
        a, b = a.contiguous().view(bits[a.dtype]), b.contiguous().view(bits[b.dtype])
    assert torch.equal(a, b), f"{(a != b).sum().item()} elements differ"


def stereo_disparity(kind: str, shape: tuple[int, ...], dtype, g) -> torch.Tensor:
    d = torch.randn(shape, generator=g, dtype=dtype) * 6
    if kind == "integer":
        return d.round()
    if kind == "negative":
        return -d.abs() - 0.25
    if kind == "halves":  # exact .5 landings and some pixels leaving the frame
        return (d * 2).round() / 2 + 40 * (torch.rand(shape, generator=g) < 0.05).to(dtype)
    return d  # fractional, both signs


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("kind", ["fractional", "integer", "negative", "halves"])
def test_horizontal_path_is_bitwise_the_general_splat(dtype, kind):
    """The stereo fast path reproduces the general 2-D splat (the implementation used for every
    flow before the fast path existed) bit for bit: image, coverage and holes."""
    g = torch.Generator().manual_seed(7)
    b, c, h, w = 3, 3, 11, 37
    image = torch.rand(b, c, h, w, generator=g, dtype=dtype)
    disparity = stereo_disparity(kind, (b, 1, h, w), dtype, g)
    importance = 20.0 * disparity
    source_mask = torch.rand(b, 1, h, w, generator=g) > 0.2
    flow = torch.cat([-disparity, torch.zeros_like(disparity)], dim=1)
    for mask in (None, source_mask):
        general = splatting._splat_general(image, flow, importance, 0.5, mask)
        for fast in (
            splatting._splat_rows_compiled(image, -disparity, importance, 0.5, mask),
            splatting._splat_rows_torch(image, -disparity, importance, 0.5, mask),
            softmax_splat(image, flow, importance, source_mask=mask),  # dispatches on y == 0
        ):
            assert_bitwise_equal(fast.image, general.image)
            assert_bitwise_equal(fast.weight, general.weight)
            assert torch.equal(fast.holes, general.holes)


@pytest.mark.parametrize("threads", [1, 2])
def test_renders_are_bitwise_the_general_splat_at_any_thread_count(threads):
    # Large enough for torch to split its element-wise loops between threads.
    g = torch.Generator().manual_seed(3)
    image = torch.rand(2, 3, 48, 400, generator=g)
    disparity = stereo_disparity("fractional", (2, 1, 48, 400), torch.float32, g)
    before = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        expected = splatting._splat_general(
            image, stereo_flow(disparity), 20 * disparity, 0.5, None
        )
        got = forward_render(image, disparity, alpha=20.0)
        target = got.image.flip(-1)
        zbuffered, owned = zbuffer_disparity(disparity)
        back_expected = splatting._splat_general(
            target, stereo_flow(-zbuffered), 20 * zbuffered, 0.5, owned
        )
        back = backward_render(image, disparity, target, alpha=20.0)
    finally:
        torch.set_num_threads(before)
    assert_bitwise_equal(got.image, expected.image)
    assert_bitwise_equal(got.weight, expected.weight)
    assert_bitwise_equal(back.rendered_source, back_expected.image)
    assert torch.equal(back.mask, back_expected.holes)


def test_half_precision_stereo_path_matches_the_general_splat():
    g = torch.Generator().manual_seed(5)
    image = torch.rand(1, 3, 9, 31, generator=g).half()
    disparity = stereo_disparity("fractional", (1, 1, 9, 31), torch.float32, g).half()
    flow = torch.cat([-disparity, torch.zeros_like(disparity)], dim=1)
    general = splatting._splat_general(image, flow, 20 * disparity, 0.5, None)
    fast = forward_render(image, disparity, alpha=20.0)
    assert_bitwise_equal(fast.image, general.image)
    assert_bitwise_equal(fast.weight, general.weight)


def test_gradients_take_the_general_path():
    image = torch.rand(1, 2, 3, 6, dtype=torch.float64, requires_grad=True)
    disparity = torch.full((1, 1, 3, 6), 1.5, dtype=torch.float64)
    out = forward_render(image, disparity)
    assert out.image.requires_grad
    out.image.sum().backward()
    assert image.grad is not None and image.grad.abs().sum() > 0
