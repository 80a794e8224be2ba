"""RAFT model: configuration, forward pass and official-checkpoint loading."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import torch
from torch import Tensor, nn

from dvg.models.raft.blocks import BasicEncoder, BasicUpdateBlock, SmallEncoder, SmallUpdateBlock
from dvg.models.raft.correlation import (
    bilinear_upsample8,
    convex_upsample,
    coords_grid,
    correlation_pyramid,
    lookup_correlation,
    pad_to_multiple_of_8,
    unpad,
)

Variant = Literal["large", "small"]

_DOWNLOAD_HINT = (
    "the official checkpoints (raft-things.pth, raft-small.pth) come from princeton-vl/RAFT: "
    "run its download_models.sh (https://github.com/princeton-vl/RAFT)"
)


@dataclass(frozen=True)
class RAFTConfig:
    """RAFT architecture and inference settings.

    ``variant`` fixes the architecture of the official checkpoints: "large" (raft-things.pth,
    hidden 128, context 128, radius 4) or "small" (raft-small.pth, hidden 96, context 64,
    radius 3). ``iters`` is the default number of refinement iterations (official default 12;
    the demo uses 20, the benchmarks 24-32).
    """

    variant: Variant = "large"
    iters: int = 12

    def __post_init__(self) -> None:
        if self.variant not in ("large", "small"):
            raise ValueError(f"variant must be 'large' or 'small', got {self.variant!r}")
        if self.iters < 1:
            raise ValueError(f"iters must be >= 1, got {self.iters}")

    @property
    def hidden_dim(self) -> int:
        return 128 if self.variant == "large" else 96

    @property
    def context_dim(self) -> int:
        return 128 if self.variant == "large" else 64

    @property
    def corr_levels(self) -> int:
        return 4

    @property
    def corr_radius(self) -> int:
        return 4 if self.variant == "large" else 3

    @property
    def corr_planes(self) -> int:
        return self.corr_levels * (2 * self.corr_radius + 1) ** 2


def _infer_variant(keys: set[str]) -> Variant:
    if "update_block.mask.0.weight" in keys or "update_block.gru.convz1.weight" in keys:
        return "large"
    if "update_block.gru.convz.weight" in keys:
        return "small"
    raise ValueError(
        "cannot infer the RAFT variant: the state dict has neither 'update_block.gru.convz1.weight'"
        " (large) nor 'update_block.gru.convz.weight' (small); pass variant="
    )


class RAFT(nn.Module):
    """RAFT: feature/context encoders, all-pairs correlation and a recurrent update operator."""

    def __init__(self, config: RAFTConfig | None = None) -> None:
        super().__init__()
        self.config = config or RAFTConfig()
        cfg = self.config
        if cfg.variant == "large":
            self.fnet: nn.Module = BasicEncoder(256, "instance")
            self.cnet: nn.Module = BasicEncoder(cfg.hidden_dim + cfg.context_dim, "batch")
            self.update_block: nn.Module = BasicUpdateBlock(
                cfg.corr_planes, cfg.hidden_dim, cfg.context_dim
            )
        else:
            self.fnet = SmallEncoder(128, "instance")
            self.cnet = SmallEncoder(cfg.hidden_dim + cfg.context_dim, "none")
            self.update_block = SmallUpdateBlock(cfg.corr_planes, cfg.hidden_dim, cfg.context_dim)

    @classmethod
    def from_checkpoint(cls, path: str | Path, variant: Variant | None = None) -> RAFT:
        """Load an official checkpoint (``module.``-prefixed or not) strictly, in eval mode.

        Raises:
            FileNotFoundError: ``path`` does not exist.
            ValueError: the variant cannot be inferred or the keys / shapes do not match.
        """
        path = Path(path)
        if not path.is_file():
            raise FileNotFoundError(f"RAFT checkpoint not found: {path}; {_DOWNLOAD_HINT}")
        try:  # weights_only: tensors and containers only, never code from the file
            state = torch.load(path, map_location="cpu", weights_only=True)
        except Exception as error:  # unpickling and zip errors do not name the file
            raise ValueError(f"{path}: cannot read as a PyTorch state dict ({error})") from None
        if isinstance(state, dict) and isinstance(state.get("state_dict"), dict):
            state = state["state_dict"]
        if not isinstance(state, dict):
            raise ValueError(f"{path} does not hold a state dict (got {type(state).__name__})")
        state = {k.removeprefix("module."): v for k, v in state.items()}
        variant = variant or _infer_variant(set(state))
        model = cls(RAFTConfig(variant=variant))
        own = model.state_dict()
        # BatchNorm's num_batches_tracked is a training counter, not a weight: checkpoints saved
        # before PyTorch 0.4.1 lack it, so only it may be taken from the fresh model.
        for key, value in own.items():
            if key.endswith("num_batches_tracked"):
                state.setdefault(key, value)
        expected = set(own)
        missing = sorted(expected - set(state))
        unexpected = sorted(set(state) - expected)
        if missing or unexpected:
            raise ValueError(
                f"{path} does not match RAFT variant {variant!r}: "
                f"{len(missing)} missing keys {missing[:5]}, "
                f"{len(unexpected)} unexpected keys {unexpected[:5]}"
            )
        try:
            model.load_state_dict(state, strict=True)
        except RuntimeError as err:  # shape mismatches
            raise ValueError(f"{path} does not match RAFT variant {variant!r}: {err}") from err
        return model.eval()

    def forward(
        self,
        image1: Tensor,
        image2: Tensor,
        iters: int | None = None,
        flow_init: Tensor | None = None,
    ) -> Tensor:
        """Flow from ``image1`` to ``image2``.

        Args:
            image1, image2: (B, 3, H, W) RGB float in [0, 255], any H, W.
            iters: refinement iterations (default ``config.iters``).
            flow_init: optional (B, 2, ceil(H / 8), ceil(W / 8)) initial flow at 1/8 resolution
                of the padded input, in 1/8-resolution pixels (as the official code).

        Returns:
            (B, 2, H, W) flow in pixels, channel 0 = x.
        """
        if image1.ndim != 4 or image1.shape[1] != 3 or image1.shape != image2.shape:
            raise ValueError(
                "image1 and image2 must both be (B, 3, H, W), got "
                f"{tuple(image1.shape)} and {tuple(image2.shape)}"
            )
        if not image1.is_floating_point() or not image2.is_floating_point():
            raise ValueError("image1 and image2 must be floating point in [0, 255]")
        iters = self.config.iters if iters is None else iters
        if iters < 1:
            raise ValueError(f"iters must be >= 1, got {iters}")
        cfg = self.config

        image1, pad = pad_to_multiple_of_8(image1)
        image2, _ = pad_to_multiple_of_8(image2)
        image1 = 2 * (image1 / 255.0) - 1.0
        image2 = 2 * (image2 / 255.0) - 1.0
        b = image1.shape[0]

        fmap1, fmap2 = self.fnet(torch.cat([image1, image2], dim=0)).split([b, b], dim=0)
        pyramid = correlation_pyramid(fmap1.float(), fmap2.float(), cfg.corr_levels)
        net, inp = self.cnet(image1).split([cfg.hidden_dim, cfg.context_dim], dim=1)
        net, inp = torch.tanh(net), torch.relu(inp)

        h8, w8 = fmap1.shape[-2:]
        coords0 = coords_grid(b, h8, w8, like=fmap1)
        coords1 = coords0
        if flow_init is not None:
            if flow_init.shape != (b, 2, h8, w8):
                raise ValueError(
                    f"flow_init must be {(b, 2, h8, w8)}, got {tuple(flow_init.shape)}"
                )
            coords1 = coords1 + flow_init

        mask = None
        for _ in range(iters):
            coords1 = coords1.detach()  # official: no gradient through the recurrence coords
            corr = lookup_correlation(pyramid, coords1, cfg.corr_radius)
            net, mask, delta_flow = self.update_block(net, inp, corr, coords1 - coords0)
            coords1 = coords1 + delta_flow

        flow = coords1 - coords0
        flow_up = bilinear_upsample8(flow) if mask is None else convex_upsample(flow, mask)
        return unpad(flow_up, pad)
