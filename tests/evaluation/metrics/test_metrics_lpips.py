"""LPIPS v0.1: our trunks load torchvision-format checkpoints strictly and the metric matches a
plain functional re-computation written here from the LPIPS definition."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

from evaluation.metrics import LPIPS, AlexNetFeatures, MissingMetricWeightsError, VGG16Features

# torchvision's layouts, written out independently of evaluation.metrics.trunks:
# (features index, out channels, in channels, kernel, stride, padding, max-pool before this conv)
ALEX_CONVS = [
    (0, 64, 3, 11, 4, 2, None),
    (3, 192, 64, 5, 1, 2, (3, 2)),
    (6, 384, 192, 3, 1, 1, (3, 2)),
    (8, 256, 384, 3, 1, 1, None),
    (10, 256, 256, 3, 1, 1, None),
]
ALEX_TAPS = {0, 3, 6, 8, 10}  # LPIPS taps the ReLU after these convs
VGG_CHANNELS = [64, 64, 128, 128, 256, 256, 256, 512, 512, 512, 512, 512, 512]
VGG_INDICES = [0, 2, 5, 7, 10, 12, 14, 17, 19, 21, 24, 26, 28]
VGG_POOL_BEFORE = {5, 10, 17, 24}
VGG_TAPS = {2, 7, 14, 21, 28}
SHIFT = torch.tensor([-0.030, -0.088, -0.188]).view(1, 3, 1, 1)
SCALE = torch.tensor([0.458, 0.448, 0.450]).view(1, 3, 1, 1)


def vgg_convs() -> list[tuple]:
    convs, c_in = [], 3
    for index, c_out in zip(VGG_INDICES, VGG_CHANNELS, strict=True):
        pool = (2, 2) if index in VGG_POOL_BEFORE else None
        convs.append((index, c_out, c_in, 3, 1, 1, pool))
        c_in = c_out
    return convs


LAYOUTS = {"alex": (ALEX_CONVS, ALEX_TAPS), "vgg": (vgg_convs(), VGG_TAPS)}


def random_trunk_state(trunk: str, seed: int = 0) -> dict[str, torch.Tensor]:
    generator = torch.Generator().manual_seed(seed)
    state = {}
    for index, c_out, c_in, k, _, _, _ in LAYOUTS[trunk][0]:
        std = (2.0 / (c_in * k * k)) ** 0.5
        state[f"features.{index}.weight"] = (
            torch.randn(c_out, c_in, k, k, generator=generator) * std
        )
        state[f"features.{index}.bias"] = torch.randn(c_out, generator=generator) * 0.1
    return state


def random_linear_state(trunk: str, seed: int = 1) -> dict[str, torch.Tensor]:
    generator = torch.Generator().manual_seed(seed)
    channels = [c for index, c, *_ in LAYOUTS[trunk][0] if index in LAYOUTS[trunk][1]]
    return {
        f"lin{k}.model.1.weight": torch.rand(1, c, 1, 1, generator=generator)
        for k, c in enumerate(channels)
    }


def reference_lpips(trunk, trunk_state, lin_state, a, b):
    """LPIPS from the definition with functional ops; a, b in [0, 1]."""
    convs, taps = LAYOUTS[trunk]

    def features(x):
        out = []
        for index, _, _, _, stride, padding, pool in convs:
            if pool is not None:
                x = F.max_pool2d(x, kernel_size=pool[0], stride=pool[1])
            w, bias = trunk_state[f"features.{index}.weight"], trunk_state[f"features.{index}.bias"]
            x = F.relu(F.conv2d(x, w, bias, stride=stride, padding=padding))
            if index in taps:
                out.append(x)
        return out

    fa = features(((a * 2 - 1) - SHIFT) / SCALE)
    fb = features(((b * 2 - 1) - SHIFT) / SCALE)
    total = torch.zeros(a.shape[0], dtype=a.dtype)
    for k, (xa, xb) in enumerate(zip(fa, fb, strict=True)):
        na = xa / (torch.sqrt((xa**2).sum(1, keepdim=True)) + 1e-10)
        nb = xb / (torch.sqrt((xb**2).sum(1, keepdim=True)) + 1e-10)
        weight = lin_state[f"lin{k}.model.1.weight"].view(1, -1, 1, 1)
        total += ((na - nb) ** 2 * weight).sum(1).mean(dim=(1, 2))
    return total


@pytest.fixture
def alex_files(tmp_path: Path) -> tuple[Path, Path]:
    trunk_path, lin_path = tmp_path / "alexnet-owt-7be5be79.pth", tmp_path / "alex.pth"
    torch.save(random_trunk_state("alex"), trunk_path)
    torch.save(random_linear_state("alex"), lin_path)
    return trunk_path, lin_path


@pytest.mark.parametrize(("trunk", "size"), [("alex", (64, 80)), ("vgg", (32, 48))])
def test_lpips_matches_functional_recomputation(tmp_path: Path, trunk: str, size) -> None:
    trunk_state, lin_state = random_trunk_state(trunk), random_linear_state(trunk)
    torch.save(trunk_state, tmp_path / "trunk.pth")
    torch.save(lin_state, tmp_path / "lin.pth")
    metric = LPIPS.from_files(
        trunk, trunk_weights=tmp_path / "trunk.pth", linear_weights=tmp_path / "lin.pth"
    )
    generator = torch.Generator().manual_seed(3)
    a = torch.rand(3, 3, *size, generator=generator)
    b = (a + 0.2 * torch.randn(a.shape, generator=generator)).clamp(0, 1)
    b[0] = a[0]  # identical pair -> 0
    ours = metric(a, b)
    expected = reference_lpips(trunk, trunk_state, lin_state, a, b)
    assert ours.shape == (3,)
    assert float(ours[0]) == 0.0 and float(ours[1]) > 1e-3
    torch.testing.assert_close(ours, expected, atol=1e-5, rtol=0)
    # [-1, 1] input gives the same values.
    torch.testing.assert_close(metric(2 * a - 1, 2 * b - 1, value_range=(-1, 1)), ours)


def test_lpips_is_differentiable_wrt_inputs(alex_files) -> None:
    metric = LPIPS.from_files("alex", trunk_weights=alex_files[0], linear_weights=alex_files[1])
    a = torch.rand(1, 3, 40, 40, requires_grad=True)
    metric(a, torch.rand(1, 3, 40, 40)).sum().backward()
    assert a.grad is not None and a.grad.abs().sum() > 0
    assert not any(p.requires_grad for p in metric.parameters())


def test_full_torchvision_state_dict_with_classifier_loads(tmp_path: Path) -> None:
    state = random_trunk_state("alex")
    # A full torchvision AlexNet state dict also holds the classifier head (small stand-ins).
    state |= {"classifier.1.weight": torch.zeros(4, 4), "classifier.1.bias": torch.zeros(4)}
    torch.save(state, tmp_path / "alexnet.pth")
    torch.save(random_linear_state("alex"), tmp_path / "alex.pth")
    metric = LPIPS.from_files(
        "alex", trunk_weights=tmp_path / "alexnet.pth", linear_weights=tmp_path / "alex.pth"
    )
    torch.testing.assert_close(metric.net.features[3].weight, state["features.3.weight"])


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (lambda s: s.pop("features.8.bias"), r"missing keys \['features.8.bias'\]"),
        (lambda s: s.update({"features.13.weight": torch.zeros(1)}), "unexpected keys"),
        (lambda s: s.update({"module.features.0.weight": torch.zeros(1)}), "unexpected keys"),
        (lambda s: s.update({"features.0.weight": torch.zeros(64, 3, 5, 5)}), "wrong tensor shape"),
    ],
)
def test_trunk_loading_is_strict(tmp_path: Path, alex_files, edit, message: str) -> None:
    state = random_trunk_state("alex")
    edit(state)
    torch.save(state, tmp_path / "bad.pth")
    with pytest.raises(ValueError, match=message) as info:
        LPIPS.from_files("alex", trunk_weights=tmp_path / "bad.pth", linear_weights=alex_files[1])
    assert "bad.pth" in str(info.value)


def test_linear_loading_is_strict(tmp_path: Path, alex_files) -> None:
    state = random_linear_state("alex")
    state["lin5.model.1.weight"] = torch.zeros(1, 8, 1, 1)
    torch.save(state, tmp_path / "lin_bad.pth")
    with pytest.raises(ValueError, match=r"lin_bad.pth.*unexpected keys \['lin5.model.1.weight'\]"):
        LPIPS.from_files(
            "alex", trunk_weights=alex_files[0], linear_weights=tmp_path / "lin_bad.pth"
        )
    torch.save(random_linear_state("vgg"), tmp_path / "vgg_lin.pth")
    with pytest.raises(ValueError, match="wrong tensor shapes"):
        LPIPS.from_files(
            "alex", trunk_weights=alex_files[0], linear_weights=tmp_path / "vgg_lin.pth"
        )


def test_not_a_state_dict_is_a_clear_error(tmp_path: Path, alex_files) -> None:
    (tmp_path / "junk.pth").write_bytes(b"not a checkpoint")
    with pytest.raises(ValueError, match=r"junk.pth: cannot read as a PyTorch state dict"):
        LPIPS.from_files("alex", trunk_weights=tmp_path / "junk.pth", linear_weights=alex_files[1])


def test_module_keys_are_torchvision_keys() -> None:
    alex = {k for k in AlexNetFeatures().state_dict() if k.endswith(".weight")}
    assert alex == {f"features.{i}.weight" for i in (0, 3, 6, 8, 10)}
    vgg = {k for k in VGG16Features().state_dict() if k.endswith(".weight")}
    assert vgg == {f"features.{i}.weight" for i in VGG_INDICES}
    lin = set(LPIPS("vgg").state_dict()) - {f"net.{k}" for k in VGG16Features().state_dict()}
    assert lin == {f"lin{k}.model.1.weight" for k in range(5)}


@pytest.mark.parametrize(("trunk", "size"), [("alex", 31), ("vgg", 16)])
def test_min_size(trunk: str, size: int) -> None:
    metric = LPIPS(trunk)
    assert metric(torch.rand(1, 3, size, size), torch.rand(1, 3, size, size)).shape == (1,)
    with pytest.raises(ValueError, match=f"H, W >= {size}"):
        metric(torch.rand(1, 3, size - 1, 64), torch.rand(1, 3, size - 1, 64))


def test_out_of_range_input_is_rejected() -> None:
    a = torch.rand(1, 3, 32, 32) * 2 - 1  # [-1, 1] images passed as the default [0, 1]
    with pytest.raises(ValueError, match=r"outside value_range \(0.0, 1.0\)"):
        LPIPS("alex")(a, a.abs())


def test_missing_weights_error_names_file_metric_and_docs(tmp_path: Path, alex_files) -> None:
    missing = tmp_path / "nowhere" / "alexnet-owt-7be5be79.pth"
    with pytest.raises(MissingMetricWeightsError) as info:
        LPIPS.from_files("alex", trunk_weights=missing, linear_weights=alex_files[1])
    text = str(info.value)
    assert str(missing) in text and "LPIPS (alex)" in text
    assert "https://download.pytorch.org/models/alexnet-owt-7be5be79.pth" in text
    assert "docs/metrics.md" in text
    with pytest.raises(MissingMetricWeightsError, match=r"v0.1/vgg.pth") as info:
        LPIPS.from_files("vgg", trunk_weights=alex_files[0], linear_weights=tmp_path / "v.pth")
    assert info.value.metric == "LPIPS (vgg)" and info.value.path == tmp_path / "v.pth"
