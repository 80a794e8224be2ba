"""Frechet Video Distance (Unterthiner et al. 2018) with the StyleGAN-V I3D TorchScript detector.

The detector is ``i3d_torchscript.pt`` (I3D trained on Kinetics-400, the TorchScript port
StyleGAN-V uses), loaded from a local path with ``torch.jit.load``. Videos are (N, T, 3, H, W) in
[0, 1]; each frame is resized so its short side is 224 (bilinear, antialiased), centre-cropped to
224 x 224, mapped to [-1, 1] and fed as (N, 3, T, 224, 224) to
``detector(videos, rescale=False, resize=False, return_features=True)``.

The Frechet distance is computed in float64 without scipy: ``Tr sqrtm(S_a S_b)`` equals
``Tr sqrtm(sqrt(S_a) S_b sqrt(S_a))`` (similar matrices share eigenvalues), and the latter is
symmetric positive semi-definite, so both square roots come from ``torch.linalg.eigh``.
"""

from __future__ import annotations

import math
import os
import warnings

import torch
import torch.nn.functional as F
from torch import Tensor

from evaluation.metrics.weights import require_file

I3D_SIZE = 224


def feature_statistics(features: Tensor) -> tuple[Tensor, Tensor]:
    """Mean and population covariance of a feature set (StyleGAN-V's ``FeatureStats``).

    Args:
        features: (N, D), N >= 2.

    Returns:
        mu (D,) and sigma (D, D), float64 on the CPU; sigma = E[f f^T] - mu mu^T (divides by N).
    """
    if not isinstance(features, Tensor) or features.ndim != 2:
        raise ValueError(
            f"features must be an (N, D) tensor, got {getattr(features, 'shape', None)}"
        )
    if features.shape[0] < 2:
        raise ValueError(f"feature_statistics needs N >= 2 samples, got {features.shape[0]}")
    x = features.detach().to("cpu", torch.float64)
    mu = x.mean(dim=0)
    sigma = x.T @ x / x.shape[0] - torch.outer(mu, mu)
    return mu, sigma


def _psd_sqrt(matrix: Tensor) -> Tensor:
    """Symmetric square root of a symmetric PSD matrix; round-off negative eigenvalues -> 0."""
    values, vectors = torch.linalg.eigh((matrix + matrix.T) / 2)
    return (vectors * values.clamp(min=0).sqrt()) @ vectors.T


def frechet_distance(mu_a: Tensor, sigma_a: Tensor, mu_b: Tensor, sigma_b: Tensor) -> float:
    """Frechet distance ``|mu_a - mu_b|^2 + Tr(S_a + S_b - 2 sqrtm(S_a S_b))`` in float64.

    Args:
        mu_a, mu_b: (D,). sigma_a, sigma_b: (D, D) symmetric PSD covariances.

    Returns:
        The distance (>= 0 up to round-off), as a Python float.
    """
    mu_a, mu_b, sigma_a, sigma_b = (
        torch.as_tensor(x).detach().to("cpu", torch.float64) for x in (mu_a, mu_b, sigma_a, sigma_b)
    )
    d = mu_a.shape[0] if mu_a.ndim == 1 else -1
    for name, x, shape in (
        ("mu_a", mu_a, (d,)),
        ("mu_b", mu_b, (d,)),
        ("sigma_a", sigma_a, (d, d)),
        ("sigma_b", sigma_b, (d, d)),
    ):
        if tuple(x.shape) != shape:
            raise ValueError(
                f"{name} must have shape {shape} (D = len(mu_a)), got {tuple(x.shape)}"
            )
    root_a = _psd_sqrt(sigma_a)
    product = root_a @ sigma_b @ root_a
    eigenvalues = torch.linalg.eigvalsh((product + product.T) / 2)
    trace_sqrt = eigenvalues.clamp(min=0).sqrt().sum()
    distance = (mu_a - mu_b).square().sum() + sigma_a.trace() + sigma_b.trace() - 2 * trace_sqrt
    return float(distance)


def prepare_videos(videos: Tensor, size: int = I3D_SIZE) -> Tensor:
    """(N, T, 3, H, W) in [0, 1] -> (N, 3, T, size, size) in [-1, 1] for the I3D detector.

    Short side resized to ``size`` (bilinear, antialiased when shrinking), then centre-cropped.
    """
    if not isinstance(videos, Tensor) or videos.ndim != 5 or videos.shape[2] != 3:
        raise ValueError(
            f"videos must be an (N, T, 3, H, W) tensor, got {getattr(videos, 'shape', None)}"
        )
    if not videos.is_floating_point():
        raise ValueError(f"videos must be floating in [0, 1], got {videos.dtype}")
    n, t, _, h, w = videos.shape
    frames = videos.reshape(n * t, 3, h, w).float()
    scale = size / min(h, w)
    new_h, new_w = max(size, round(h * scale)), max(size, round(w * scale))
    if (new_h, new_w) != (h, w):
        frames = F.interpolate(
            frames, size=(new_h, new_w), mode="bilinear", align_corners=False, antialias=scale < 1
        )
    top, left = (new_h - size) // 2, (new_w - size) // 2
    frames = frames[..., top : top + size, left : left + size]
    frames = frames.clamp(0, 1) * 2 - 1
    return frames.reshape(n, t, 3, size, size).permute(0, 2, 1, 3, 4).contiguous()


class FVD:
    """Frechet Video Distance with an I3D detector (the TorchScript module, or any ``nn.Module``
    with the StyleGAN-V signature ``detector(x, rescale=, resize=, return_features=) -> (N, D)``).

    ``features(videos)`` -> (N, D) float64; ``fvd(real, generated)`` -> float. Use the same
    number of frames T for every video (StyleGAN-V reports FVD over 16 frames).
    """

    def __init__(
        self, detector: torch.nn.Module, *, device: str | torch.device = "cpu", batch_size: int = 8
    ) -> None:
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        self.detector = detector.eval().to(device)
        self.device = torch.device(device)
        self.batch_size = batch_size

    @classmethod
    def from_file(
        cls,
        path: str | os.PathLike[str],
        *,
        device: str | torch.device = "cpu",
        batch_size: int = 8,
    ) -> FVD:
        """Load the TorchScript detector (e.g. ``i3d_torchscript.pt``) from a local file."""
        resolved = require_file(path, metric="FVD", official_name="i3d_torchscript.pt")
        try:
            with warnings.catch_warnings():
                # The published detector is TorchScript, so jit.load is the only way to read it.
                warnings.filterwarnings("ignore", ".*torch.jit.load.*", DeprecationWarning)
                detector = torch.jit.load(str(resolved), map_location="cpu")
        except Exception as error:  # TorchScript errors do not name the file
            raise ValueError(
                f"{resolved}: cannot load as a TorchScript module ({error})"
            ) from error
        return cls(detector, device=device, batch_size=batch_size)

    @torch.inference_mode()
    def features(self, videos: Tensor) -> Tensor:
        """videos: (N, T, 3, H, W) in [0, 1] -> (N, D) float64 detector features (CPU)."""
        chunks = []
        for start in range(0, videos.shape[0], self.batch_size):
            # Resize on the detector's device: 224 x 224 x T frames per video add up.
            batch = prepare_videos(videos[start : start + self.batch_size].to(self.device))
            out = self.detector(batch, rescale=False, resize=False, return_features=True)
            if not isinstance(out, Tensor) or out.ndim != 2 or out.shape[0] != batch.shape[0]:
                raise ValueError(
                    f"detector must return (N, D) features, got {getattr(out, 'shape', type(out))}"
                )
            chunks.append(out.to("cpu", torch.float64))
        return torch.cat(chunks)

    def __call__(self, real: Tensor, generated: Tensor) -> float:
        """FVD between two video sets, each (N_i, T, 3, H, W) in [0, 1] with N_i >= 2."""
        mu_r, sigma_r = feature_statistics(self.features(real))
        mu_g, sigma_g = feature_statistics(self.features(generated))
        distance = frechet_distance(mu_r, sigma_r, mu_g, sigma_g)
        if not math.isfinite(distance):
            raise ValueError("FVD is not finite: the detector returned NaN or infinite features")
        return distance
