import pytest
import torch
from torch.autograd import gradcheck

from dvg.geometry import (
    backward_warp,
    flow_in_bounds,
    forward_backward_consistency,
    motion_boundaries,
)


def constant_flow(dx: float, dy: float, b: int = 1, h: int = 6, w: int = 8) -> torch.Tensor:
    flow = torch.zeros(b, 2, h, w, dtype=torch.float64)
    flow[:, 0], flow[:, 1] = dx, dy
    return flow


def test_zero_flow_warp_is_identity(device):
    image = torch.rand(2, 3, 5, 7, device=device)
    torch.testing.assert_close(backward_warp(image, torch.zeros(2, 2, 5, 7, device=device)), image)


def test_integer_warp_samples_the_shifted_pixel_and_zero_outside():
    image = torch.rand(1, 1, 6, 8, dtype=torch.float64)
    warped = backward_warp(image, constant_flow(2, 1))
    # out(p) = image(p + (2, 1)).
    torch.testing.assert_close(warped[..., :-1, :-2], image[..., 1:, 2:])
    assert (warped[..., -1, :] == 0).all() and (warped[..., :, -2:] == 0).all()


def test_fractional_warp_interpolates_linearly():
    ramp = torch.arange(8, dtype=torch.float64).view(1, 1, 1, 8).expand(1, 1, 3, 8).contiguous()
    warped = backward_warp(ramp, constant_flow(0.25, 0.0, h=3))
    torch.testing.assert_close(warped[..., :-1], ramp[..., :-1] + 0.25)


def test_in_bounds_mask():
    inside = flow_in_bounds(constant_flow(1.0, 0.0, h=2, w=4))
    assert inside[0, 0].tolist() == [[True, True, True, False]] * 2


def test_consistent_translation_is_trusted_inside_the_frame():
    conf = forward_backward_consistency(constant_flow(2, -1), constant_flow(-2, 1))
    expected = flow_in_bounds(constant_flow(2, -1))
    assert torch.equal(conf, expected)
    assert conf.sum() == 5 * 6  # a 6x8 frame loses two columns and one row


def test_inconsistent_flow_is_rejected():
    conf = forward_backward_consistency(constant_flow(2, 0), constant_flow(2, 0))
    assert not conf.any()


def test_small_mismatch_within_tolerance_is_accepted():
    # |F + B|^2 = 0.36 < 0.01 * (4 + 3.24) + 0.5.
    conf = forward_backward_consistency(constant_flow(2, 0), constant_flow(-1.4, 0))
    assert conf[..., :, :-2].all()


def test_motion_boundary_term_marks_flow_edges():
    flow = constant_flow(0, 0)
    flow[:, 0, :, 4:] = 3.0
    edges = motion_boundaries(flow)
    assert edges[0, 0, :, 3].all() and not edges[0, 0, :, :3].any()
    back = -flow
    plain = forward_backward_consistency(flow, back)
    with_edges = forward_backward_consistency(flow, back, motion_boundary=True)
    assert plain[0, 0, :, 3].all() and not with_edges[0, 0, :, 3].any()


@pytest.mark.parametrize(
    ("image", "flow", "match"),
    [
        (torch.rand(1, 3, 4, 4), torch.rand(1, 2, 5, 4), "flow"),
        (torch.rand(1, 3, 4, 4), torch.rand(2, 2, 4, 4), "flow"),
        (torch.rand(1, 3, 4, 4), torch.rand(1, 1, 4, 4), "flow"),
        (torch.rand(1, 3, 0, 4), torch.rand(1, 2, 0, 4), "image"),
    ],
)
def test_bad_shapes_raise(image, flow, match):
    with pytest.raises(ValueError, match=match):
        backward_warp(image, flow)


def test_consistency_shape_mismatch_raises():
    with pytest.raises(ValueError, match="flow_backward"):
        forward_backward_consistency(torch.zeros(1, 2, 4, 4), torch.zeros(1, 2, 4, 5))


def test_gradcheck_backward_warp():
    image = torch.rand(1, 2, 4, 5, dtype=torch.float64, requires_grad=True)
    flow = (0.3 + 0.4 * torch.rand(1, 2, 4, 5, dtype=torch.float64)).requires_grad_()
    assert gradcheck(backward_warp, (image, flow))
