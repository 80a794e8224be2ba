"""RAFT: official key layout, checkpoint loading, shapes, correlation quirk, convex upsampling."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

from dvg.models import RAFT, RAFTConfig
from dvg.models.raft import convex_upsample, correlation_pyramid, lookup_correlation

# Hand-written from the official princeton-vl/RAFT code: key -> shape.
LARGE_KEYS = {
    "fnet.conv1.weight": (64, 3, 7, 7),
    "fnet.layer1.0.conv1.weight": (64, 64, 3, 3),
    "fnet.layer2.0.conv1.weight": (96, 64, 3, 3),
    "fnet.layer2.0.downsample.0.weight": (96, 64, 1, 1),
    "fnet.layer3.1.conv2.weight": (128, 128, 3, 3),
    "fnet.conv2.weight": (256, 128, 1, 1),
    "cnet.conv1.weight": (64, 3, 7, 7),
    "cnet.norm1.running_var": (64,),
    "cnet.layer1.1.norm2.weight": (64,),
    "cnet.layer2.0.norm3.running_mean": (96,),
    "cnet.layer2.0.downsample.1.running_mean": (96,),
    "cnet.layer2.0.downsample.1.num_batches_tracked": (),
    "cnet.layer3.0.norm3.bias": (128,),
    "cnet.layer3.0.downsample.1.bias": (128,),
    "cnet.conv2.weight": (256, 128, 1, 1),
    "update_block.encoder.convc1.weight": (256, 324, 1, 1),
    "update_block.encoder.convc2.weight": (192, 256, 3, 3),
    "update_block.encoder.convf1.weight": (128, 2, 7, 7),
    "update_block.encoder.convf2.weight": (64, 128, 3, 3),
    "update_block.encoder.conv.weight": (126, 256, 3, 3),
    "update_block.gru.convz1.weight": (128, 384, 1, 5),
    "update_block.gru.convq2.weight": (128, 384, 5, 1),
    "update_block.flow_head.conv1.weight": (256, 128, 3, 3),
    "update_block.flow_head.conv2.weight": (2, 256, 3, 3),
    "update_block.mask.0.weight": (256, 128, 3, 3),
    "update_block.mask.2.weight": (576, 256, 1, 1),
    "update_block.mask.2.bias": (576,),
}
SMALL_KEYS = {
    "fnet.conv1.weight": (32, 3, 7, 7),
    "fnet.layer1.0.conv1.weight": (8, 32, 1, 1),
    "fnet.layer2.0.conv2.weight": (16, 16, 3, 3),
    "fnet.layer2.0.conv3.weight": (64, 16, 1, 1),
    "fnet.layer2.0.downsample.0.weight": (64, 32, 1, 1),
    "fnet.conv2.weight": (128, 96, 1, 1),
    "cnet.conv1.weight": (32, 3, 7, 7),
    "cnet.layer3.0.downsample.0.weight": (96, 64, 1, 1),
    "cnet.conv2.weight": (160, 96, 1, 1),
    "update_block.encoder.convc1.weight": (96, 196, 1, 1),
    "update_block.encoder.convf1.weight": (64, 2, 7, 7),
    "update_block.encoder.convf2.weight": (32, 64, 3, 3),
    "update_block.encoder.conv.weight": (80, 128, 3, 3),
    "update_block.gru.convz.weight": (96, 242, 3, 3),
    "update_block.gru.convq.weight": (96, 242, 3, 3),
    "update_block.flow_head.conv1.weight": (128, 96, 3, 3),
    "update_block.flow_head.conv2.weight": (2, 128, 3, 3),
}
# Counted by hand: large fnet 32 + cnet 117 (5 keys per BatchNorm, norm3 twice) + update 30;
# small fnet 44 + cnet 44 + update 18.
KEY_COUNTS = {"large": 179, "small": 106}


def _images(b: int = 2, h: int = 36, w: int = 44) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(0)
    image1 = torch.rand(b, 3, h, w, generator=g) * 255
    image2 = torch.roll(image1, shifts=(1, 2), dims=(-2, -1))
    return image1, image2


@pytest.mark.parametrize(("variant", "expected"), [("large", LARGE_KEYS), ("small", SMALL_KEYS)])
def test_state_dict_matches_official_layout(variant: str, expected: dict) -> None:
    state = RAFT(RAFTConfig(variant=variant)).state_dict()
    for key, shape in expected.items():
        assert key in state, key
        assert tuple(state[key].shape) == shape, key
    assert len(state) == KEY_COUNTS[variant]
    # Instance norm is affine=False: the feature encoder has no norm keys.
    assert not [k for k in state if k.startswith("fnet.") and ".norm" in k]
    if variant == "large":
        assert not [k for k in state if k.startswith("fnet.") and "downsample.1" in k]
    else:
        assert not [k for k in state if k.startswith("update_block.mask")]
        assert not [k for k in state if k.startswith("cnet.") and ".norm" in k]
        assert not [k for k in state if k.startswith("cnet.") and "downsample.1" in k]


@pytest.mark.parametrize("variant", ["large", "small"])
def test_from_checkpoint_round_trip(variant: str, tmp_path: Path) -> None:
    torch.manual_seed(0)
    model = RAFT(RAFTConfig(variant=variant)).eval()
    path = tmp_path / "raft.pth"
    torch.save({f"module.{k}": v for k, v in model.state_dict().items()}, path)

    loaded = RAFT.from_checkpoint(path)  # variant inferred from the keys
    assert loaded.config.variant == variant
    assert not loaded.training
    image1, image2 = _images()
    with torch.no_grad():
        expected = model(image1, image2, iters=2)
        actual = loaded(image1, image2, iters=2)
    assert torch.equal(actual, expected)

    broken = {f"module.{k}": v for k, v in model.state_dict().items()}
    del broken["module.update_block.flow_head.conv2.bias"]
    torch.save(broken, path)
    with pytest.raises(ValueError, match=r"update_block\.flow_head\.conv2\.bias"):
        RAFT.from_checkpoint(path)


def test_from_checkpoint_errors(tmp_path: Path) -> None:
    missing = tmp_path / "nowhere" / "raft-things.pth"
    with pytest.raises(FileNotFoundError, match=r"download_models\.sh") as info:
        RAFT.from_checkpoint(missing)
    assert str(missing) in str(info.value)

    small = RAFT(RAFTConfig(variant="small")).state_dict()
    path = tmp_path / "small.pth"
    torch.save(small, path)
    with pytest.raises(ValueError, match="missing keys"):
        RAFT.from_checkpoint(path, variant="large")


@pytest.mark.parametrize("variant", ["large", "small"])
def test_odd_sizes_and_batch(variant: str) -> None:
    torch.manual_seed(0)
    model = RAFT(RAFTConfig(variant=variant, iters=2)).eval()
    image1, image2 = _images(b=2, h=37, w=45)
    with torch.no_grad():
        flow = model(image1, image2)
        single = model(image1[1:], image2[1:])
    assert flow.shape == (2, 2, 37, 45)
    assert torch.isfinite(flow).all()
    torch.testing.assert_close(flow[1:], single, atol=1e-4, rtol=1e-4)


def test_forward_is_differentiable_and_accepts_flow_init() -> None:
    torch.manual_seed(0)
    model = RAFT(RAFTConfig(variant="small", iters=2)).eval()
    image1, image2 = _images(b=1, h=32, w=40)
    image1.requires_grad_(True)
    model(image1, image2).abs().mean().backward()
    assert image1.grad is not None and image1.grad.abs().sum() > 0
    with torch.no_grad():
        flow = model(image1, image2, iters=1, flow_init=torch.full((1, 2, 4, 5), 3.0))
    assert flow.shape == (1, 2, 32, 40)
    with pytest.raises(ValueError, match="flow_init"):
        model(image1, image2, flow_init=torch.zeros(1, 2, 3, 3))
    with pytest.raises(ValueError, match="image1"):
        model(image1[:, :2], image2[:, :2])


def _sample(img: torch.Tensor, x: float, y: float) -> float:
    """Zero-padded bilinear sample of img (H, W) at pixel (x, y), written out by hand."""
    h, w = img.shape
    x0, y0 = math.floor(x), math.floor(y)
    total = 0.0
    for xi, wx in ((x0, 1 - (x - x0)), (x0 + 1, x - x0)):
        for yi, wy in ((y0, 1 - (y - y0)), (y0 + 1, y - y0)):
            if 0 <= xi < w and 0 <= yi < h:
                total += wx * wy * float(img[yi, xi])
    return total


def test_lookup_adds_dy_dx_stacked_delta_to_xy() -> None:
    radius = 2
    n = 2 * radius + 1
    g = torch.Generator().manual_seed(0)
    fmap1 = torch.randn(1, 3, 5, 7, generator=g, dtype=torch.float64)
    fmap2 = torch.randn(1, 3, 5, 7, generator=g, dtype=torch.float64)
    pyramid = correlation_pyramid(fmap1, fmap2, num_levels=2)
    assert [tuple(p.shape) for p in pyramid] == [(35, 1, 5, 7), (35, 1, 2, 3)]
    corr0 = pyramid[0][0, 0]  # correlations of query pixel (0, 0)
    torch.testing.assert_close(
        corr0, torch.einsum("c,chw->hw", fmap1[0, :, 0, 0], fmap2[0]) / 3**0.5
    )

    coords = torch.zeros(1, 2, 5, 7, dtype=torch.float64)
    coords[0, 0, 0, 0], coords[0, 1, 0, 0] = 2.3, 1.6  # query (0, 0) looks at x=2.3, y=1.6
    out = lookup_correlation(pyramid, coords, radius)
    assert out.shape == (1, 2 * n * n, 5, 7)

    quirk, natural = [], []
    for level in range(2):
        img = pyramid[level][0, 0]
        cx, cy = 2.3 / 2**level, 1.6 / 2**level
        for a in range(n):
            for b in range(n):
                # Entry (a, b) of stack(meshgrid(dy, dx)) is (dy[a], dx[b]), added to (x, y).
                quirk.append(_sample(img, cx + (a - radius), cy + (b - radius)))
                natural.append(_sample(img, cx + (b - radius), cy + (a - radius)))
    quirk_t = torch.tensor(quirk, dtype=torch.float64)
    torch.testing.assert_close(out[0, :, 0, 0], quirk_t)
    assert not torch.allclose(out[0, :, 0, 0], torch.tensor(natural, dtype=torch.float64))


def test_convex_upsample_centre_weight_is_nearest() -> None:
    g = torch.Generator().manual_seed(0)
    flow = torch.randn(2, 2, 3, 4, generator=g)
    mask = torch.zeros(2, 9, 64, 3, 4)
    mask[:, 4] = 1e4  # all weight on the centre of the 3x3 neighbourhood
    up = convex_upsample(flow, mask.view(2, 9 * 64, 3, 4))
    expected = F.interpolate(8 * flow, scale_factor=8, mode="nearest")
    assert up.shape == (2, 2, 24, 32)
    torch.testing.assert_close(up, expected)


def test_convex_upsample_subpixel_layout() -> None:
    # Sub-pixels in the right half (column offset j >= 4) take the right neighbour (unfold index
    # 5 = (ky 1, kx 2)); the rest the centre. Checks which 8 is the column sub-index.
    flow = torch.arange(2 * 2 * 3, dtype=torch.float32).view(1, 2, 2, 3)
    mask = torch.zeros(1, 9, 8, 8, 2, 3)
    mask[:, 4, :, :4] = 1e4
    mask[:, 5, :, 4:] = 1e4
    up = convex_upsample(flow, mask.view(1, 9 * 64, 2, 3))
    right = F.pad(flow[..., 1:], (0, 1))  # zero padding beyond the border, as unfold
    left_half = F.interpolate(8 * flow, scale_factor=8, mode="nearest")
    right_half = F.interpolate(8 * right, scale_factor=8, mode="nearest")
    cols = torch.arange(24) % 8 >= 4
    torch.testing.assert_close(up, torch.where(cols, right_half, left_half))


def test_checkpoint_without_batchnorm_counters_still_loads(tmp_path: Path) -> None:
    # Checkpoints saved before PyTorch 0.4.1 have no num_batches_tracked; weights must match.
    torch.manual_seed(0)
    model = RAFT(RAFTConfig(variant="large")).eval()
    state = {
        f"module.{k}": v
        for k, v in model.state_dict().items()
        if not k.endswith("num_batches_tracked")
    }
    path = tmp_path / "old.pth"
    torch.save(state, path)
    loaded = RAFT.from_checkpoint(path)
    for key, value in model.state_dict().items():
        assert torch.equal(loaded.state_dict()[key], value), key
