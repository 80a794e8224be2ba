"""ImageNet feature trunks for LPIPS: AlexNet and VGG16 with torchvision's exact layer layout.

The modules hold an ``nn.Sequential`` named ``features`` laid out index by index like
torchvision's ``alexnet().features`` / ``vgg16().features``, so a torchvision ImageNet checkpoint
loads into them strictly without torchvision. ``forward`` returns the ReLU outputs LPIPS taps.
"""

from __future__ import annotations

import os
from pathlib import Path

import torch
from torch import Tensor, nn


class FeatureTrunk(nn.Module):
    """A ``features`` stack whose outputs at ``taps`` (layer indices) are returned in order."""

    taps: tuple[int, ...]
    channels: tuple[int, ...]
    min_size: int  # smallest H and W for which every tap is non-empty
    official_name: str  # the torchvision checkpoint's file name

    features: nn.Sequential

    def forward(self, x: Tensor) -> list[Tensor]:
        """x: (N, 3, H, W) scaled input -> one (N, C_k, H_k, W_k) map per tap."""
        outputs = []
        for index, layer in enumerate(self.features):
            x = layer(x)
            if index in self.taps:
                outputs.append(x)
                if len(outputs) == len(self.taps):
                    break
        return outputs


class AlexNetFeatures(FeatureTrunk):
    """AlexNet features (Krizhevsky 2014 "one weird trick" variant, torchvision's), conv layers at
    ``features.{0,3,6,8,10}``; taps relu1..relu5 as LPIPS (Zhang et al. 2018)."""

    taps = (1, 4, 7, 9, 11)
    channels = (64, 192, 384, 256, 256)
    min_size = 31
    official_name = "alexnet-owt-7be5be79.pth"

    def __init__(self) -> None:
        super().__init__()
        # ReLUs are not in-place: a tapped activation must not change after it is returned.
        self.features = nn.Sequential(
            nn.Conv2d(3, 64, kernel_size=11, stride=4, padding=2),
            nn.ReLU(),
            nn.MaxPool2d(kernel_size=3, stride=2),
            nn.Conv2d(64, 192, kernel_size=5, padding=2),
            nn.ReLU(),
            nn.MaxPool2d(kernel_size=3, stride=2),
            nn.Conv2d(192, 384, kernel_size=3, padding=1),
            nn.ReLU(),
            nn.Conv2d(384, 256, kernel_size=3, padding=1),
            nn.ReLU(),
            nn.Conv2d(256, 256, kernel_size=3, padding=1),
            nn.ReLU(),
            nn.MaxPool2d(kernel_size=3, stride=2),
        )


# torchvision's configuration "D" (VGG16): conv output channels per block, each block followed
# by 2x2 max pooling.
_VGG16_BLOCKS = ((64, 64), (128, 128), (256, 256, 256), (512, 512, 512), (512, 512, 512))


class VGG16Features(FeatureTrunk):
    """VGG16 features (Simonyan & Zisserman 2015, torchvision's, no batch norm), conv layers at
    ``features.{0,2,5,7,10,12,14,17,19,21,24,26,28}``; taps relu1_2 ... relu5_3 as LPIPS."""

    taps = (3, 8, 15, 22, 29)
    channels = (64, 128, 256, 512, 512)
    min_size = 16
    official_name = "vgg16-397923af.pth"

    def __init__(self) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        in_channels = 3
        for block in _VGG16_BLOCKS:
            for out_channels in block:
                layers += [
                    nn.Conv2d(in_channels, out_channels, kernel_size=3, padding=1),
                    nn.ReLU(),
                ]
                in_channels = out_channels
            layers.append(nn.MaxPool2d(kernel_size=2, stride=2))
        self.features = nn.Sequential(*layers)


TRUNKS: dict[str, type[FeatureTrunk]] = {"alex": AlexNetFeatures, "vgg": VGG16Features}


def load_state_dict_file(path: str | os.PathLike[str]) -> dict[str, Tensor]:
    """Read a ``.pth`` file holding a flat ``{key: tensor}`` state dict (CPU, weights only)."""
    try:
        state = torch.load(Path(path), map_location="cpu", weights_only=True)
    except Exception as error:  # pickle / zip errors carry no file name
        raise ValueError(f"{path}: cannot read as a PyTorch state dict ({error})") from error
    if not isinstance(state, dict) or not all(
        isinstance(k, str) and isinstance(v, Tensor) for k, v in state.items()
    ):
        raise ValueError(f"{path}: expected a flat state dict {{name: tensor}}, got {type(state)}")
    return state


def load_strict(module: nn.Module, state: dict[str, Tensor], source: str) -> None:
    """Load ``state`` into ``module``: exactly its keys and shapes; errors name ``source``."""
    expected = module.state_dict()
    missing = sorted(set(expected) - set(state))
    unexpected = sorted(set(state) - set(expected))
    if missing or unexpected:
        raise ValueError(
            f"{source}: state dict does not match {type(module).__name__}: "
            f"missing keys {missing}, unexpected keys {unexpected}"
        )
    wrong = [
        f"{k} {tuple(state[k].shape)} != {tuple(v.shape)}"
        for k, v in expected.items()
        if state[k].shape != v.shape
    ]
    if wrong:
        raise ValueError(f"{source}: wrong tensor shapes: {', '.join(wrong)}")
    module.load_state_dict(state, strict=True)


def load_trunk(trunk: FeatureTrunk, path: str | os.PathLike[str]) -> None:
    """Load a torchvision ImageNet checkpoint into ``trunk`` strictly.

    The file is torchvision's ``features.*`` state dict, or the full model's state dict: its
    ``classifier.*`` keys (the fully connected head LPIPS does not use) are dropped first. Any
    other missing or extra key is an error.
    """
    state = load_state_dict_file(path)
    features = {k: v for k, v in state.items() if not k.startswith("classifier.")}
    load_strict(trunk, features, str(path))
