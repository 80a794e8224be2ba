"""FVD: float64 Frechet distance against closed forms, and the detector plumbing through a tiny
TorchScript stand-in saved and loaded like the real ``i3d_torchscript.pt``."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from torch import Tensor, nn

from evaluation.metrics import (
    FVD,
    MissingMetricWeightsError,
    feature_statistics,
    frechet_distance,
    prepare_videos,
)

# The stand-in detector is written the way the real one was: with torch.jit.script / save.
pytestmark = pytest.mark.filterwarnings("ignore:`torch.jit.:DeprecationWarning")


def random_covariance(d: int, seed: int) -> Tensor:
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(d, d, generator=g, dtype=torch.float64)
    return x @ x.T / d + 0.1 * torch.eye(d, dtype=torch.float64)


def test_identical_feature_sets_give_zero() -> None:
    features = torch.randn(64, 12, generator=torch.Generator().manual_seed(0))
    mu, sigma = feature_statistics(features)
    assert frechet_distance(mu, sigma, mu, sigma) == pytest.approx(0.0, abs=1e-9)


def test_diagonal_closed_form() -> None:
    mu_a, mu_b = torch.tensor([0.0, 1.0, -2.0]), torch.tensor([0.5, 1.0, 1.0])
    var_a, var_b = torch.tensor([1.0, 4.0, 0.25]), torch.tensor([9.0, 1.0, 0.25])
    expected = float((mu_a - mu_b).square().sum() + (var_a.sqrt() - var_b.sqrt()).square().sum())
    assert expected == pytest.approx(0.25 + 9.0 + 4.0 + 1.0)
    got = frechet_distance(mu_a, torch.diag(var_a), mu_b, torch.diag(var_b))
    assert got == pytest.approx(expected, abs=1e-10)


def test_commuting_full_covariances_closed_form() -> None:
    # S_b = c S_a: Tr sqrtm(S_a S_b) = sqrt(c) Tr S_a, so the trace term is (1 - sqrt c)^2 Tr S_a.
    sigma_a, c = random_covariance(6, seed=1), 2.5
    mu = torch.zeros(6, dtype=torch.float64)
    expected = (1 - c**0.5) ** 2 * float(sigma_a.trace())
    assert frechet_distance(mu, sigma_a, mu, c * sigma_a) == pytest.approx(expected, rel=1e-10)


def test_general_case_matches_scipy_sqrtm() -> None:
    linalg = pytest.importorskip("scipy.linalg")
    sa, sb = random_covariance(10, seed=2), random_covariance(10, seed=3)
    mu_a, mu_b = torch.randn(10, dtype=torch.float64), torch.randn(10, dtype=torch.float64)
    root = np.real(linalg.sqrtm(sa.numpy() @ sb.numpy()))
    expected = float((mu_a - mu_b).square().sum()) + np.trace(sa.numpy() + sb.numpy() - 2 * root)
    assert frechet_distance(mu_a, sa, mu_b, sb) == pytest.approx(expected, rel=1e-9)
    # Symmetric in its arguments, and float32 inputs are promoted to float64.
    assert frechet_distance(mu_b, sb, mu_a, sa) == pytest.approx(expected, rel=1e-9)
    assert frechet_distance(mu_a.float(), sa.float(), mu_b.float(), sb.float()) == pytest.approx(
        expected, rel=1e-5
    )


def test_singular_covariances_do_not_produce_nan() -> None:
    # Fewer samples than dimensions: rank-deficient covariances, as with few videos and I3D's 400-D.
    mu_a, sigma_a = feature_statistics(torch.randn(5, 20, dtype=torch.float64))
    mu_b, sigma_b = feature_statistics(torch.randn(5, 20, dtype=torch.float64) + 1)
    distance = frechet_distance(mu_a, sigma_a, mu_b, sigma_b)
    assert np.isfinite(distance) and distance > 0


def test_feature_statistics_is_population_covariance() -> None:
    features = torch.randn(30, 4, generator=torch.Generator().manual_seed(4))
    mu, sigma = feature_statistics(features)
    assert mu.dtype == sigma.dtype == torch.float64
    np.testing.assert_allclose(mu.numpy(), features.double().mean(0).numpy(), atol=1e-12)
    np.testing.assert_allclose(
        sigma.numpy(), np.cov(features.double().numpy().T, bias=True), atol=1e-12
    )
    with pytest.raises(ValueError, match="N >= 2"):
        feature_statistics(torch.randn(1, 4))


def test_frechet_shape_errors() -> None:
    with pytest.raises(ValueError, match="sigma_b must have shape"):
        frechet_distance(torch.zeros(3), torch.eye(3), torch.zeros(3), torch.eye(4))


class StandInDetector(nn.Module):
    """TorchScript-able I3D stand-in: refuses any call but the one FVD must make and returns
    per-channel means plus the min and max of its input, so the tests can see what it got."""

    def forward(
        self, x: Tensor, rescale: bool = True, resize: bool = True, return_features: bool = False
    ) -> Tensor:
        if rescale or resize or not return_features:
            raise RuntimeError("called with the wrong flags")
        if x.dim() != 5 or x.shape[1] != 3 or x.shape[3] != 224 or x.shape[4] != 224:
            raise RuntimeError("expected (N, 3, T, 224, 224)")
        flat = x.flatten(2)
        return torch.cat(
            [
                flat.mean(dim=2),
                flat.amin(dim=(1, 2)).unsqueeze(1),
                flat.amax(dim=(1, 2)).unsqueeze(1),
            ],
            dim=1,
        )


@pytest.fixture
def detector_path(tmp_path: Path) -> Path:
    path = tmp_path / "i3d_torchscript.pt"
    torch.jit.save(torch.jit.script(StandInDetector()), str(path))
    return path


def test_detector_is_called_on_224_crops_in_minus_one_one(detector_path: Path) -> None:
    fvd = FVD.from_file(detector_path, batch_size=2)
    assert isinstance(fvd.detector, torch.jit.ScriptModule)
    levels = torch.tensor([0.0, 0.25, 1.0])
    videos = levels.view(3, 1, 1, 1, 1).expand(3, 4, 3, 60, 90).clone()
    features = fvd.features(videos)  # 3 videos in batches of 2
    assert features.shape == (3, 5) and features.dtype == torch.float64
    expected = (2 * levels - 1).double()
    for column in range(5):
        np.testing.assert_allclose(features[:, column].numpy(), expected.numpy(), atol=1e-6)


def test_prepare_videos_resizes_short_side_and_centre_crops() -> None:
    h, w = 448, 672  # short side 448 -> 224, width 672 -> 336, crop columns 56 ... 279
    ramp = torch.linspace(0, 1, w).view(1, 1, 1, 1, w).expand(1, 2, 3, h, w)
    out = prepare_videos(ramp)
    assert out.shape == (1, 3, 2, 224, 224)
    column = out[0, 0, 0, 112]  # one row: a ramp over the central two thirds of the width
    assert float(column[0]) == pytest.approx(2 * (56.5 * 2 - 0.5) / (w - 1) - 1, abs=0.01)
    assert float(column[-1]) == pytest.approx(2 * (279.5 * 2 - 0.5) / (w - 1) - 1, abs=0.01)
    assert float(column.mean()) == pytest.approx(0.0, abs=1e-3)
    small = prepare_videos(torch.rand(2, 3, 3, 100, 120))  # upsampled: short side 100 -> 224
    assert small.shape == (2, 3, 3, 224, 224) and small.min() >= -1 and small.max() <= 1


def test_fvd_zero_for_same_set_and_grows_with_shift(detector_path: Path) -> None:
    fvd = FVD.from_file(detector_path)
    g = torch.Generator().manual_seed(5)
    real = torch.rand(6, 2, 3, 32, 32, generator=g) * 0.5
    assert fvd(real, real) == pytest.approx(0.0, abs=1e-8)
    distances = [fvd(real, real + shift) for shift in (0.05, 0.1, 0.2)]
    assert 0 < distances[0] < distances[1] < distances[2]
    # A uniform brightness shift s moves every stand-in feature by 2 s and leaves covariances.
    assert distances[2] == pytest.approx(5 * (2 * 0.2) ** 2, rel=1e-3)


def test_missing_detector_error(tmp_path: Path) -> None:
    with pytest.raises(MissingMetricWeightsError) as info:
        FVD.from_file(tmp_path / "i3d.pt")
    text = str(info.value)
    assert "FVD" in text and str(tmp_path / "i3d.pt") in text and "i3d_torchscript.pt" in text
    assert "docs/metrics.md" in text and "dropbox.com" in text


def test_not_torchscript_is_a_clear_error(tmp_path: Path) -> None:
    path = tmp_path / "i3d_torchscript.pt"
    torch.save({"a": torch.zeros(1)}, path)
    with pytest.raises(ValueError, match="cannot load as a TorchScript module"):
        FVD.from_file(path)


def test_video_shape_errors() -> None:
    with pytest.raises(ValueError, match=r"\(N, T, 3, H, W\)"):
        prepare_videos(torch.rand(2, 3, 4, 32, 32))
