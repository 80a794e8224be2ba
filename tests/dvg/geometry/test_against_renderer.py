"""The geometry core against the exact answers of the ray-casting renderer (dvg.synthetic).

Figures for docs/benchmarks.md come from benchmarks/geometry_accuracy.py on the same scenes.
"""

import pytest
import torch

from dvg.geometry import (
    ClipConfidence,
    backward_render,
    clip_flow_confidence,
    forward_render,
    mask_flicker,
    refine_occlusion_masks,
    reprojection_flow,
)
from dvg.synthetic import render_scene


def iou(a: torch.Tensor, b: torch.Tensor) -> float:
    return ((a & b).sum() / (a | b).sum()).item()


def psnr_on(prediction: torch.Tensor, truth: torch.Tensor, where: torch.Tensor) -> float:
    mse = (prediction - truth).square().mean(dim=1, keepdim=True)[where].mean()
    return (10 * torch.log10(1 / mse)).item()


@pytest.fixture(scope="module")
def integer_scene():
    return render_scene("fronto_integer", seed=0)


@pytest.fixture(scope="module")
def fractional_scene():
    return render_scene("slanted_fractional", seed=0, height=96, width=128)


@pytest.fixture(scope="module")
def orbit_clip():
    return render_scene("boxes_orbit", seed=0)


@pytest.fixture(scope="module")
def moving_clip():
    return render_scene("moving_objects", seed=0)


def test_reprojection_reproduces_the_renderer_flow(orbit_clip):
    r = orbit_clip
    pairs = r.depth.shape[0] - 1
    T = r.world_to_camera[1:].double() @ torch.linalg.inv(r.world_to_camera[:-1].double())
    K = r.K.double().expand(pairs, 3, 3)
    flow = reprojection_flow(r.depth[:-1].double(), K, T).flow
    assert flow.abs().max() > 1.0  # the camera really moves
    assert (flow - r.flow_next.double()).abs().max() < 1e-3


def test_stereo_reprojection_is_the_disparity_flow(fractional_scene):
    r = fractional_scene
    T = torch.eye(4, dtype=torch.float64)[None]
    T[0, 0, 3] = -r.baseline
    flow = reprojection_flow(r.depth.double(), r.K.double()[None], T).flow
    torch.testing.assert_close(flow[:, 0], -r.disparity[:, 0].double(), atol=1e-4, rtol=0)


def test_integer_disparity_splat_is_exact_on_visible_pixels(integer_scene):
    # Exact to 1e-4 needs a sharp ordering (z-buffer behaviour): the default alpha = 5 leaves a
    # surface landing 1 px behind a nearer one e^-5 of the weight, traded for accuracy on real
    # pairs (docs/benchmarks.md, "Choosing the splatting importance alpha").
    r = integer_scene
    out = forward_render(r.left, r.disparity, alpha=20.0)
    visible = ~r.occlusion_right
    assert visible.float().mean() > 0.8
    assert (out.image - r.right).abs().amax(dim=1, keepdim=True)[visible].max() < 1e-4
    assert iou(out.holes, r.occlusion_right) == 1.0


def test_fractional_disparity_splat_psnr(fractional_scene):
    r = fractional_scene
    out = forward_render(r.left, r.disparity)
    assert psnr_on(out.image, r.right, ~r.occlusion_right) >= 35.0


@pytest.mark.parametrize("scene", ["fractional_scene", "orbit_clip", "moving_clip"])
def test_hole_mask_and_backward_mask_match_exact_occlusions(scene, request):
    r = request.getfixturevalue(scene)
    holes = forward_render(r.left, r.disparity).holes
    assert iou(holes, r.occlusion_right) >= 0.9
    back = backward_render(r.left, r.disparity, r.right)
    assert iou(back.mask, r.occlusion_left) >= 0.9
    torch.testing.assert_close(back.masked_source, r.left * ~back.mask)


def test_integer_backward_mask_is_exact(integer_scene):
    r = integer_scene
    assert torch.equal(backward_render(r.left, r.disparity, r.right).mask, r.occlusion_left)


def test_eq2_restores_dropped_mask_pixels_and_reduces_flicker(moving_clip):
    r = moving_clip
    masks = r.occlusion_left[:, 0][None]
    forward, backward = r.flow_next[None], r.flow_prev[None]
    confidence = clip_flow_confidence(forward, backward)
    damaged = masks & (torch.rand(masks.shape, generator=torch.Generator().manual_seed(0)) > 0.1)
    refined = refine_occlusion_masks(damaged, forward, backward, confidence)
    dropped = masks & ~damaged
    assert (refined & dropped).sum() >= 0.8 * dropped.sum()
    assert (refined & ~masks).sum() <= 0.05 * masks.sum()
    before = mask_flicker(damaged, forward, confidence.forward)
    after = mask_flicker(refined, forward, confidence.forward)
    assert after < 0.6 * before
    none = ClipConfidence(
        forward=torch.zeros_like(confidence.forward), backward=torch.zeros_like(confidence.backward)
    )
    assert torch.equal(refine_occlusion_masks(damaged, forward, backward, none), damaged)
