import pytest
import torch

from dvg.geometry import backward_render, forward_render, zbuffer_disparity


def step_scene(width: int = 12):
    """One row: background (d = 0) with a foreground block (d = 3) at columns 6-7."""
    disparity = torch.zeros(1, 1, 2, width)
    disparity[..., 6:8] = 3.0
    image = torch.rand(1, 3, 2, width)
    return image, disparity


def test_forward_render_moves_foreground_and_opens_a_hole():
    image, disparity = step_scene()
    out = forward_render(image, disparity)
    torch.testing.assert_close(out.image[..., 3:5], image[..., 6:8])  # foreground at x - 3
    assert out.holes[0, 0, 0].nonzero().flatten().tolist() == [6, 7]  # revealed background


def test_zbuffer_keeps_the_nearest_owner_and_marks_unowned():
    _, disparity = step_scene()
    target, owned = zbuffer_disparity(disparity)
    assert target[0, 0, 0].tolist() == [0, 0, 0, 3, 3, 0, 0, 0, 0, 0, 0, 0]
    assert (~owned)[0, 0, 0].nonzero().flatten().tolist() == [6, 7]


def test_zbuffer_puts_a_fractional_edge_at_the_midpoint():
    # Foreground lands at 14.72 - covering target 14 with bilinear weight 0.28 only: the
    # nearest-owner rule gives target 14 to the background.
    disparity = torch.full((1, 1, 1, 32), 4.2)
    disparity[..., 22:] = 7.28
    target, _ = zbuffer_disparity(disparity)
    assert target[0, 0, 0, 14].item() == pytest.approx(4.2)
    assert target[0, 0, 0, 15].item() == pytest.approx(7.28)


def test_backward_render_masks_the_background_hidden_by_the_foreground():
    image, disparity = step_scene()
    target = forward_render(image, disparity).image
    out = backward_render(image, disparity, target)
    # The target eye sees the foreground over columns 3-4, hiding the source background there;
    # the d = 0 background never leaves the frame, so nothing else is masked.
    assert out.mask[0, 0, 0].nonzero().flatten().tolist() == [3, 4]
    torch.testing.assert_close(out.masked_source, image * ~out.mask)
    visible = ~out.mask.expand_as(image)
    torch.testing.assert_close(out.rendered_source[visible], image[visible])


def test_inpainted_content_never_unmasks_source_pixels():
    image, disparity = step_scene()
    target = forward_render(image, disparity).image
    wild = target.clone()
    wild[..., 6:8] = 1.0  # whatever an inpainter puts into the target holes
    a = backward_render(image, disparity, target).mask
    b = backward_render(image, disparity, wild).mask
    assert torch.equal(a, b)


def test_left_border_strip_is_invisible_from_the_right_eye():
    disparity = torch.full((1, 1, 3, 10), 2.0)
    out = backward_render(torch.rand(1, 3, 3, 10), disparity, torch.rand(1, 3, 3, 10))
    assert out.mask[0, 0, 0].nonzero().flatten().tolist() == [0, 1]


@pytest.mark.parametrize(
    ("source", "disparity", "target", "match"),
    [
        (torch.rand(1, 3, 4, 4), torch.rand(1, 1, 4, 5), torch.rand(1, 3, 4, 4), "disparity"),
        (torch.rand(1, 3, 4, 4), torch.rand(1, 1, 4, 4), torch.rand(1, 1, 4, 4), "target"),
        (torch.rand(1, 3, 4, 4), torch.rand(1, 2, 4, 4), torch.rand(1, 3, 4, 4), "disparity"),
        (torch.rand(1, 3, 0, 4), torch.rand(1, 1, 0, 4), torch.rand(1, 3, 0, 4), "source"),
    ],
)
def test_backward_render_rejects_bad_shapes(source, disparity, target, match):
    with pytest.raises(ValueError, match=match):
        backward_render(source, disparity, target)


def test_nan_disparity_raises():
    disparity = torch.zeros(1, 1, 2, 4)
    disparity[0, 0, 1, 1] = float("nan")
    with pytest.raises(ValueError, match="disparity"):
        forward_render(torch.rand(1, 3, 2, 4), disparity)
    with pytest.raises(ValueError, match="disparity"):
        backward_render(torch.rand(1, 3, 2, 4), disparity, torch.rand(1, 3, 2, 4))


def test_gradcheck_forward_render():
    image = torch.rand(1, 2, 3, 6, dtype=torch.float64, requires_grad=True)
    disparity = (1.3 + 0.4 * torch.rand(1, 1, 3, 6, dtype=torch.float64)).requires_grad_()
    assert torch.autograd.gradcheck(
        lambda i, d: forward_render(i, d, alpha=1.0).image, (image, disparity)
    )
