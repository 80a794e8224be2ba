"""LPIPS v0.1 (Zhang et al., CVPR 2018) with our own AlexNet / VGG16 trunks, from local files.

The trunk weights are torchvision's ImageNet checkpoint (``alexnet-owt-7be5be79.pth`` or
``vgg16-397923af.pth``), the linear layers the official v0.1 files (``alex.pth`` / ``vgg.pth``,
keys ``lin{k}.model.1.weight``); docs/metrics.md says where to download them.
"""

from __future__ import annotations

import os

import torch
from torch import Tensor, nn

from evaluation.metrics.image import check_image_pair
from evaluation.metrics.trunks import (
    TRUNKS,
    FeatureTrunk,
    load_state_dict_file,
    load_strict,
    load_trunk,
)
from evaluation.metrics.weights import require_file

# LPIPS's ScalingLayer: maps [-1, 1] input to ImageNet-normalised input.
SHIFT = (-0.030, -0.088, -0.188)
SCALE = (0.458, 0.448, 0.450)
EPS = 1e-10
LINEAR_FILES = {"alex": "alex.pth", "vgg": "vgg.pth"}
VALUE_RANGES = ((0.0, 1.0), (-1.0, 1.0))
RANGE_TOLERANCE = 1e-3


class NetLinLayer(nn.Module):
    """LPIPS's 1x1 linear layer over squared feature differences, key ``model.1.weight``."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        # Index 0 is the official Dropout, a no-op for a metric; Identity keeps the key model.1.
        self.model = nn.Sequential(nn.Identity(), nn.Conv2d(channels, 1, 1, bias=False))

    def forward(self, x: Tensor) -> Tensor:
        return self.model(x)


def normalize_channels(features: Tensor) -> Tensor:
    """Unit-normalise the channel vector at each pixel: f / (||f||_2 + 1e-10), as LPIPS."""
    return features / (features.square().sum(dim=1, keepdim=True).sqrt() + EPS)


class LPIPS(nn.Module):
    """Learned Perceptual Image Patch Similarity v0.1 (Zhang et al. 2018); lower is closer.

    Call ``lpips(a, b)`` with (N, 3, H, W) images in [0, 1] (the project's convention, mapped to
    [-1, 1] as ``2x - 1``) or pass ``value_range=(-1, 1)`` for images already in [-1, 1]. Returns
    (N,). Build a usable metric with :meth:`from_files`; ``LPIPS("alex")`` alone has random
    weights. Parameters are frozen (gradients still flow to the inputs) and the module starts in
    eval mode.
    """

    def __init__(self, trunk: str = "alex") -> None:
        super().__init__()
        if trunk not in TRUNKS:
            raise ValueError(f"trunk must be one of {sorted(TRUNKS)}, got {trunk!r}")
        self.trunk_name = trunk
        self.net: FeatureTrunk = TRUNKS[trunk]()
        for k, channels in enumerate(self.net.channels):
            self.add_module(f"lin{k}", NetLinLayer(channels))
        self.register_buffer("shift", torch.tensor(SHIFT).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("scale", torch.tensor(SCALE).view(1, 3, 1, 1), persistent=False)
        self.requires_grad_(False)
        self.eval()

    @property
    def lins(self) -> list[NetLinLayer]:
        """The linear layers ``lin0`` ... in tap order."""
        return [getattr(self, f"lin{k}") for k in range(len(self.net.channels))]

    @classmethod
    def from_files(
        cls,
        trunk: str = "alex",
        *,
        trunk_weights: str | os.PathLike[str],
        linear_weights: str | os.PathLike[str],
        device: str | torch.device = "cpu",
    ) -> LPIPS:
        """Build LPIPS with a torchvision ImageNet checkpoint and the official v0.1 linear layers.

        Both files load strictly (see :func:`evaluation.metrics.trunks.load_trunk`); a missing
        file raises :class:`~evaluation.metrics.weights.MissingMetricWeightsError`.
        """
        if trunk not in TRUNKS:
            raise ValueError(f"trunk must be one of {sorted(TRUNKS)}, got {trunk!r}")
        metric = f"LPIPS ({trunk})"
        trunk_path = require_file(
            trunk_weights, metric=metric, official_name=TRUNKS[trunk].official_name
        )
        linear_path = require_file(linear_weights, metric=metric, official_name=LINEAR_FILES[trunk])
        model = cls(trunk)
        load_trunk(model.net, trunk_path)
        model.load_linear_layers(linear_path)
        return model.to(device)

    def load_linear_layers(self, path: str | os.PathLike[str]) -> None:
        """Load the official ``lin{k}.model.1.weight`` file strictly (exactly those keys)."""
        state = load_state_dict_file(path)
        linear = nn.ModuleDict({f"lin{k}": lin for k, lin in enumerate(self.lins)})
        load_strict(linear, state, str(path))

    def forward(
        self, a: Tensor, b: Tensor, *, value_range: tuple[float, float] = (0.0, 1.0)
    ) -> Tensor:
        """a, b: (N, 3, H, W) in ``value_range`` ((0, 1) or (-1, 1)) -> (N,) LPIPS distance."""
        check_image_pair(a, b)
        if tuple(value_range) not in VALUE_RANGES:
            raise ValueError(f"value_range must be (0, 1) or (-1, 1), got {value_range}")
        if min(a.shape[-2:]) < self.net.min_size:
            raise ValueError(
                f"LPIPS ({self.trunk_name}) needs H, W >= {self.net.min_size}, "
                f"got {tuple(a.shape[-2:])}"
            )
        low, high = value_range
        for name, x in (("a", a), ("b", b)):
            # A tolerance for codec / resampling overshoot; [-1, 1] images passed as [0, 1]
            # are off by far more.
            x_min, x_max = float(x.detach().min()), float(x.detach().max())
            if x_min < low - RANGE_TOLERANCE or x_max > high + RANGE_TOLERANCE:
                raise ValueError(
                    f"{name} has values in [{x_min:.3f}, {x_max:.3f}], outside "
                    f"value_range {value_range} (images in [0, 1] by default, "
                    "value_range=(-1, 1) for [-1, 1] images)"
                )
        dtype = self.shift.dtype
        a, b = a.to(dtype), b.to(dtype)
        if low == 0.0:
            a, b = 2 * a - 1, 2 * b - 1
        n = a.shape[0]
        # One trunk pass over both images.
        features = self.net((torch.cat([a, b]) - self.shift) / self.scale)
        total = a.new_zeros(n)
        for lin, feature in zip(self.lins, features, strict=True):
            fa, fb = normalize_channels(feature[:n]), normalize_channels(feature[n:])
            total = total + lin((fa - fb).square()).mean(dim=(1, 2, 3))
        return total
