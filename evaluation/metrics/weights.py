"""Locating metric weight files and the one error raised when one is missing.

Metric weights never download themselves: every file is a local path the caller passes.
docs/metrics.md ("Weights") lists each file, where to download it and where to put it.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

DOCS = "docs/metrics.md, section 'Weights'"


@dataclass(frozen=True)
class WeightFile:
    """One official weight file: its upstream name, what it holds and where it is published."""

    name: str
    description: str
    url: str


WEIGHT_FILES = {
    f.name: f
    for f in (
        WeightFile(
            "alexnet-owt-7be5be79.pth",
            "the torchvision AlexNet ImageNet checkpoint",
            "https://download.pytorch.org/models/alexnet-owt-7be5be79.pth",
        ),
        WeightFile(
            "vgg16-397923af.pth",
            "the torchvision VGG16 ImageNet checkpoint",
            "https://download.pytorch.org/models/vgg16-397923af.pth",
        ),
        WeightFile(
            "alex.pth",
            "the LPIPS v0.1 linear layers for AlexNet",
            "https://github.com/richzhang/PerceptualSimilarity/raw/master/lpips/weights/v0.1/alex.pth",
        ),
        WeightFile(
            "vgg.pth",
            "the LPIPS v0.1 linear layers for VGG16",
            "https://github.com/richzhang/PerceptualSimilarity/raw/master/lpips/weights/v0.1/vgg.pth",
        ),
        WeightFile(
            "i3d_torchscript.pt",
            "the StyleGAN-V I3D (Kinetics-400) TorchScript detector",
            "https://www.dropbox.com/s/ge9e5ujwgetktms/i3d_torchscript.pt?dl=1",
        ),
    )
}


class MissingMetricWeightsError(FileNotFoundError):
    """A metric's weight file does not exist (or is not a file).

    The message names the metric, the path, the official file it should be, its download URL and
    the documentation section. Attributes: ``metric``, ``path``, ``weight_file``.
    """

    def __init__(self, metric: str, path: str | os.PathLike[str], weight_file: WeightFile) -> None:
        self.metric, self.path, self.weight_file = metric, Path(path), weight_file
        super().__init__(
            f"{metric} needs {weight_file.description} ({weight_file.name}), but {self.path} "
            f"does not exist or is not a file. Download {weight_file.name} from "
            f"{weight_file.url} and pass its local path; see {DOCS}. Metrics that need no "
            "weights (PSNR, SSIM, E_warp) run without it."
        )


def require_file(path: str | os.PathLike[str], *, metric: str, official_name: str) -> Path:
    """``path`` with ``~`` expanded if it is an existing file, else
    :class:`MissingMetricWeightsError` describing the official file ``official_name``."""
    resolved = Path(path).expanduser()
    if not resolved.is_file():
        raise MissingMetricWeightsError(metric, resolved, WEIGHT_FILES[official_name])
    return resolved
