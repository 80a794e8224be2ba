import pytest
import torch

from dvg.geometry import (
    ClipConfidence,
    clip_flow_confidence,
    mask_flicker,
    refine_occlusion_masks,
)


def moving_square_clip(frames: int = 5, h: int = 16, w: int = 24, step: int = 1):
    """A square mask moving `step` px right per frame, with its exact consecutive flows."""
    masks = torch.zeros(1, frames, h, w, dtype=torch.bool)
    for t in range(frames):
        masks[0, t, 5:11, 4 + step * t : 10 + step * t] = True
    forward = torch.zeros(1, frames - 1, 2, h, w)
    forward[:, :, 0] = step
    return masks, forward, -forward


def trusted(frames: int, h: int, w: int) -> ClipConfidence:
    ones = torch.ones(1, frames - 1, h, w, dtype=torch.bool)
    return ClipConfidence(forward=ones, backward=ones)


def test_a_dropped_pixel_is_restored_from_its_neighbours():
    masks, fwd, bwd = moving_square_clip()
    damaged = masks.clone()
    damaged[0, 2, 7, 8] = False
    refined = refine_occlusion_masks(damaged, fwd, bwd, trusted(5, 16, 24))
    assert torch.equal(refined, masks)


def test_first_and_last_frames_use_their_one_neighbour():
    masks, fwd, bwd = moving_square_clip()
    damaged = masks.clone()
    damaged[0, 0, 6, 5] = False
    damaged[0, -1, 6, 10] = False
    refined = refine_occlusion_masks(damaged, fwd, bwd, trusted(5, 16, 24))
    assert torch.equal(refined, masks)


def test_zero_confidence_leaves_masks_unchanged():
    masks, fwd, bwd = moving_square_clip()
    damaged = masks & (torch.rand(masks.shape) > 0.3)
    zeros = torch.zeros(1, 4, 16, 24, dtype=torch.bool)
    refined = refine_occlusion_masks(damaged, fwd, bwd, ClipConfidence(zeros, zeros))
    assert torch.equal(refined, damaged)


def test_two_half_votes_make_one_but_one_half_vote_does_not():
    h, w = 4, 8
    masks = torch.zeros(1, 3, h, w)
    masks[0, 0, :, 4] = 1.0  # previous frame: pixel column 4
    masks[0, 2, :, 3] = 1.0  # next frame: pixel column 3
    fwd = torch.zeros(1, 2, 2, h, w)
    fwd[:, 1, 0] = -0.5  # frame 1 -> 2 samples column 2.5 of frame 2 (half of column 3)
    bwd = torch.zeros(1, 2, 2, h, w)
    bwd[:, 0, 0] = 0.5  # frame 1 -> 0 samples column 3.5 (half of column 4)
    conf = trusted(3, h, w)
    refined = refine_occlusion_masks(masks, fwd, bwd, conf)
    # Frame 1, column 3: 0.5 from frame 2 (column 2.5..3) + 0.5 from frame 0 (3.5) = 1.
    assert refined[0, 1, :, 3].all()
    half = ClipConfidence(forward=conf.forward, backward=torch.zeros_like(conf.backward))
    assert not refine_occlusion_masks(masks, fwd, bwd, half)[0, 1].any()


def test_random_dropout_is_repaired_exactly_where_a_neighbour_holds_the_pixel():
    torch.manual_seed(0)
    step = 2
    masks, fwd, bwd = moving_square_clip(frames=8, step=step)
    damaged = masks & (torch.rand(masks.shape) > 0.2)
    conf = clip_flow_confidence(fwd, bwd)
    refined = refine_occlusion_masks(damaged, fwd, bwd, conf)
    # Ground truth of Eq. 2 for an integer motion: frame t's pixel (y, x) is frame t+1's
    # (y, x + step) and frame t-1's (y, x - step).
    from_next = torch.zeros_like(damaged)
    from_next[:, :-1, :, :-step] = damaged[:, 1:, :, step:]
    from_prev = torch.zeros_like(damaged)
    from_prev[:, 1:, :, step:] = damaged[:, :-1, :, :-step]
    assert torch.equal(refined, damaged | from_next | from_prev)
    dropped = masks & ~damaged
    assert (refined & dropped).sum() >= 0.9 * dropped.sum()
    assert not (refined & ~masks).any()  # nothing outside the true masks is added
    before = mask_flicker(damaged, fwd, conf.forward)
    after = mask_flicker(refined, fwd, conf.forward)
    assert after < 0.5 * before


def test_flicker_is_zero_for_masks_that_follow_the_motion():
    masks, fwd, _ = moving_square_clip()
    conf = torch.ones(1, 4, 16, 24, dtype=torch.bool)
    assert mask_flicker(masks, fwd, conf).item() == 0.0
    static = masks[:, :1].expand(1, 5, 16, 24)
    assert mask_flicker(static, fwd, conf).item() > 0.0


def test_clip_confidence_shapes_and_out_of_frame_distrust():
    _, fwd, bwd = moving_square_clip()
    conf = clip_flow_confidence(fwd, bwd)
    assert conf.forward.shape == (1, 4, 16, 24) and conf.forward.dtype == torch.bool
    assert not conf.forward[..., -1].any() and conf.forward[..., :-1].all()
    assert not conf.backward[..., 0].any() and conf.backward[..., 1:].all()


def test_batch_of_clips_is_independent():
    a, fwd, bwd = moving_square_clip()
    b = a.flip(-2)
    batch = torch.cat([a, b]) & (torch.rand(2, 5, 16, 24) > 0.2)
    conf = trusted(5, 16, 24)
    conf2 = ClipConfidence(conf.forward.expand(2, -1, -1, -1), conf.backward.expand(2, -1, -1, -1))
    refined = refine_occlusion_masks(
        batch, fwd.expand(2, -1, -1, -1, -1), bwd.expand(2, -1, -1, -1, -1), conf2
    )
    single = refine_occlusion_masks(batch[1:], fwd, bwd, conf)
    assert torch.equal(refined[1:], single)


@pytest.mark.parametrize(
    ("masks", "fwd", "match"),
    [
        (torch.zeros(1, 5, 16, 24), torch.zeros(1, 5, 2, 16, 24), "flows_forward"),
        (torch.zeros(5, 16, 24), torch.zeros(1, 4, 2, 16, 24), "masks"),
        (torch.zeros(1, 5, 16, 24), torch.zeros(1, 4, 2, 16, 20), "flows_forward"),
        (torch.zeros(1, 5, 16, 24, dtype=torch.long), torch.zeros(1, 4, 2, 16, 24), "masks"),
    ],
)
def test_bad_shapes_raise(masks, fwd, match):
    with pytest.raises(ValueError, match=match):
        refine_occlusion_masks(masks, fwd, torch.zeros(1, 4, 2, 16, 24), trusted(5, 16, 24))


def test_nan_flow_raises():
    masks, fwd, bwd = moving_square_clip()
    fwd[0, 0, 0, 0, 0] = float("nan")
    with pytest.raises(ValueError, match="flows_forward"):
        refine_occlusion_masks(masks, fwd, bwd, trusted(5, 16, 24))
