"""E_warp (Lai et al. 2018): zero for a static or exactly-flowed video, the closed form for a
brightness flicker, the warp direction, pair selection, and flows from a dvg flow backend."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from dvg.backends import FLOW_BACKENDS, BackendSpec
from evaluation.metrics import in_paper_units, valid_masks, warp_error, warp_error_with_flow
from evaluation.metrics.warp_error import warp_errors

H, W, T = 40, 56, 6  # T - 1 = 5 pairs


def texture(h: int, w: int, seed: int = 0) -> torch.Tensor:
    """(3, h, w) smooth random texture in [0.2, 0.7], so +-0.2 offsets never clip."""
    coarse = torch.rand(1, 3, h // 4, w // 4, generator=torch.Generator().manual_seed(seed))
    fine = F.interpolate(coarse, size=(h, w), mode="bicubic", align_corners=False)[0]
    return 0.2 + 0.5 * fine.clamp(0, 1)


def panning_video(shift: int = 1) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Frames of a texture moving ``shift`` px right per frame, with its exact flows.

    O_t(x) = tex(x - shift t): pixel x of frame t-1 is at x + shift in frame t.
    """
    tex = texture(H, W + shift * T)
    start = shift * T
    frames = torch.stack([tex[:, :, start - shift * t : start - shift * t + W] for t in range(T)])
    forward = torch.zeros(T - 1, 2, H, W)
    forward[:, 0] = shift
    return frames, forward, -forward


def static_video() -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    frames = texture(H, W).expand(T, 3, H, W).clone()
    zeros = torch.zeros(T - 1, 2, H, W)
    return frames, zeros, zeros


def with_flicker(frames: torch.Tensor, amplitude: float) -> torch.Tensor:
    """Brighten every other frame by ``amplitude``."""
    out = frames.clone()
    out[1::2] += amplitude
    return out


@pytest.mark.parametrize("make_video", [static_video, panning_video])
def test_zero_without_flicker(make_video, device: torch.device) -> None:
    frames, forward, backward = (x.to(device) for x in make_video())
    assert warp_error(frames, forward, backward) == pytest.approx(0.0, abs=1e-10)


@pytest.mark.parametrize("make_video", [static_video, panning_video])
def test_brightness_flicker_gives_its_square(make_video) -> None:
    # Each pair differs by the offset a at every valid pixel and channel: E = a^2 exactly.
    frames, forward, backward = make_video()
    errors = [
        warp_error(with_flicker(frames, a), forward, backward) for a in (0.0, 0.02, 0.05, 0.1, 0.2)
    ]
    assert errors == sorted(errors) and len(set(errors)) == 5
    for a, e in zip((0.0, 0.02, 0.05, 0.1, 0.2), errors, strict=True):
        assert e == pytest.approx(a * a, rel=1e-4, abs=1e-10)
    assert in_paper_units(errors[1]) == pytest.approx(0.4, rel=1e-3)  # 4e-4 -> 0.4 (x 10^-3)


def test_warp_direction() -> None:
    # O_t is warped onto t-1 with F_{t-1->t}; flows pointing the other way (consistent with each
    # other, so the mask keeps them) misalign every pixel.
    frames, forward, backward = panning_video(shift=2)
    assert warp_error(frames, forward, backward) == pytest.approx(0.0, abs=1e-10)
    assert warp_error(frames, backward, forward) > 1e-3


def test_mask_excludes_out_of_frame_and_occluded_pixels() -> None:
    frames, forward, backward = panning_video(shift=2)
    masks = valid_masks(forward, backward)
    assert masks.shape == (T - 1, 1, H, W) and masks.dtype == torch.bool
    assert not masks[..., -2:].any() and masks[..., :-2].all()  # x + 2 leaves the frame
    # A flow the backward flow contradicts is occluded: a garbage region must not count.
    # Garbage in frame 1 at columns 10:20 lands on frame 0's columns 8:18 (x + 2 in 10:20);
    # a backward flow that disagrees there masks exactly those pixels.
    frames[1, :, 10:20, 10:20] = 1.0
    assert float(warp_errors(frames, forward, backward)[0]) > 1e-3
    bad_backward = backward.clone()
    bad_backward[0, :, 10:20, 10:20] = 5.0
    masks = valid_masks(forward, bad_backward)
    assert not masks[0, :, 10:20, 8:18].any()
    assert int((~masks[0, :, :, :-2]).sum()) == 10 * 10
    assert float(warp_errors(frames, forward, bad_backward)[0]) == pytest.approx(0.0, abs=1e-10)


def test_pairs_select_window_boundaries() -> None:
    frames, forward, backward = static_video()
    frames[3:] += 0.1  # a brightness jump between frames 2 and 3, i.e. pair 2
    per_pair = warp_errors(frames, forward, backward)
    assert per_pair.shape == (T - 1,)
    torch.testing.assert_close(per_pair, torch.tensor([0, 0, 0.01, 0, 0]), atol=1e-6, rtol=0)
    assert warp_error(frames, forward, backward, pairs=[2]) == pytest.approx(0.01, rel=1e-4)
    seam = torch.tensor([False, False, True, False, False])
    assert warp_error(frames, forward, backward, pairs=seam) == pytest.approx(0.01, rel=1e-4)
    assert warp_error(frames, forward, backward, pairs=~seam) == pytest.approx(0.0, abs=1e-10)
    assert warp_error(frames, forward, backward) == pytest.approx(0.01 / 5, rel=1e-4)
    with pytest.raises(ValueError, match=r"pairs must index 0 \.\.\. 4"):
        warp_error(frames, forward, backward, pairs=[5])
    with pytest.raises(ValueError, match="selects no frame pair"):
        warp_error(frames, forward, backward, pairs=[])


def test_pair_without_valid_pixels_counts_zero() -> None:
    frames, forward, backward = static_video()
    frames = with_flicker(frames, 0.1)
    masks = torch.ones(T - 1, 1, H, W, dtype=torch.bool)
    masks[0] = False
    per_pair = warp_errors(frames, forward, backward, masks=masks)
    assert float(per_pair[0]) == 0.0 and float(per_pair[1]) == pytest.approx(0.01, rel=1e-4)


def test_with_dis_flow_backend() -> None:
    backend = FLOW_BACKENDS.create(BackendSpec("dis"))
    frames, _, _ = panning_video(shift=2)
    # DIS recovers the pan well enough that the unflickered video scores near 0 ...
    clean = warp_error_with_flow(frames, backend)
    assert clean < 1e-5
    # ... and flicker, measured with flow from the clean (input) video, grows monotonically.
    errors = [
        warp_error_with_flow(with_flicker(frames, a), backend, flow_frames=frames)
        for a in (0.03, 0.08, 0.15)
    ]
    assert clean < errors[0] < errors[1] < errors[2]
    assert errors[2] == pytest.approx(0.15**2, rel=0.05)


@pytest.mark.parametrize(
    ("frames", "forward", "message"),
    [
        (torch.rand(1, 3, 8, 8), torch.zeros(0, 2, 8, 8), "at least 2 frames"),
        (torch.rand(3, 8, 8), torch.zeros(2, 2, 8, 8), r"frames must be \(T, 3, H, W\)"),
        (
            torch.rand(3, 3, 8, 8),
            torch.zeros(3, 2, 8, 8),
            r"flows_forward must be \(T-1, 2, H, W\)",
        ),
    ],
)
def test_shape_errors(frames, forward, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        warp_error(frames, forward, forward)


def test_long_video_pairs_align_across_internal_chunks() -> None:
    # 19 pairs span several internal chunks; each must equal the same pair measured alone.
    g = torch.Generator().manual_seed(7)
    frames = torch.rand(20, 3, 12, 16, generator=g)
    # A different uniform sub-pixel motion per pair: consistent, no motion boundaries.
    forward = (torch.rand(19, 2, 1, 1, generator=g) * 2 - 1).expand(19, 2, 12, 16).clone()
    backward = -forward
    per_pair = warp_errors(frames, forward, backward)
    alone = torch.cat(
        [warp_errors(frames[i : i + 2], forward[i : i + 1], backward[i : i + 1]) for i in range(19)]
    )
    assert per_pair.shape == (19,) and len(set(per_pair.tolist())) == 19
    torch.testing.assert_close(per_pair, alone)
