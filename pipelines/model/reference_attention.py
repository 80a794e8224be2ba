"""Reference attention between the RefinerNet and the denoising U-Net (paper 3.3).

The RefinerNet's spatial self-attentions run in "write" mode: they store their input tokens (already
norm1(x) inside a BasicTransformerBlock) and attend as usual. The paired self-attention of the
denoising U-Net runs in "read" mode: queries from its own tokens, keys/values from
concat([own tokens, reference tokens]) along the token axis. That equals the paper's "concatenate,
full self-attention, keep the first half" (the second half's queries are simply not computed).
Both are diffusers attention processors set on the selected `attn1` modules; `forward` is untouched.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from diffusers.models.attention_processor import Attention, AttnProcessor2_0
from torch import nn

_ATTEND = AttnProcessor2_0()


class ReferencePairingError(ValueError):
    """The denoising U-Net and the RefinerNet do not pair block for block."""


class ReferenceWriteProcessor:
    """RefinerNet side: store the self-attention input tokens, then attend normally.

    tokens: (N, L, C) after a call, N = batch * frames of the RefinerNet input.
    """

    def __init__(self) -> None:
        self.tokens: torch.Tensor | None = None

    def __call__(
        self,
        attn: Attention,
        hidden_states: torch.Tensor,
        encoder_hidden_states: torch.Tensor | None = None,
        attention_mask: torch.Tensor | None = None,
        temb: torch.Tensor | None = None,
    ) -> torch.Tensor:
        self.tokens = hidden_states
        return _ATTEND(attn, hidden_states, encoder_hidden_states, attention_mask, temb)


class ReferenceReadProcessor:
    """Denoising U-Net side: self-attention whose keys/values also cover the reference tokens.

    reference: (N, L_r, C) set by SpatialDreamerModel before each U-Net call, one entry per
    (batch * frame) row of the U-Net's flattened hidden states.
    """

    def __init__(self) -> None:
        self.reference: torch.Tensor | None = None

    def __call__(
        self,
        attn: Attention,
        hidden_states: torch.Tensor,
        encoder_hidden_states: torch.Tensor | None = None,
        attention_mask: torch.Tensor | None = None,
        temb: torch.Tensor | None = None,
    ) -> torch.Tensor:
        if encoder_hidden_states is not None or attention_mask is not None:
            raise ValueError(
                "reference attention reads into self-attention only (attn1 without "
                "encoder_hidden_states or attention_mask)"
            )
        reference = self.reference
        if reference is None:
            raise RuntimeError(
                "the reference bank is empty: run the denoising U-Net through "
                "SpatialDreamerModel.forward, or inside model.without_reference_attention()"
            )
        if (
            reference.shape[0] != hidden_states.shape[0]
            or reference.shape[-1] != (hidden_states.shape[-1])
        ):
            raise ValueError(
                f"reference tokens {tuple(reference.shape)} do not match the U-Net tokens "
                f"{tuple(hidden_states.shape)} (same batch*frames and channels required)"
            )
        context = torch.cat([hidden_states, reference.to(hidden_states.dtype)], dim=1)
        return _ATTEND(attn, hidden_states, context, None, temb)


def spatial_self_attentions(unet: nn.Module) -> list[tuple[str, Attention]]:
    """The spatial `attn1` modules of a U-Net in forward order: down blocks, mid block, up blocks.

    Works for UNetSpatioTemporalConditionModel (TransformerSpatioTemporalModel.transformer_blocks;
    temporal_transformer_blocks are skipped) and UNet2DConditionModel (Transformer2DModel).
    Walked explicitly because diffusers registers `up_blocks` before `mid_block`.
    """
    blocks: list[tuple[str, nn.Module]] = [
        (f"down_blocks.{i}", block) for i, block in enumerate(unet.down_blocks)
    ]
    if getattr(unet, "mid_block", None) is not None:
        blocks.append(("mid_block", unet.mid_block))
    blocks += [(f"up_blocks.{i}", block) for i, block in enumerate(unet.up_blocks)]
    found = []
    for prefix, block in blocks:
        for j, transformer in enumerate(getattr(block, "attentions", None) or []):
            for k, layer in enumerate(transformer.transformer_blocks):
                found.append((f"{prefix}.attentions.{j}.transformer_blocks.{k}.attn1", layer.attn1))
    return found


@dataclass
class ReferencePair:
    """One injected layer: the U-Net's read processor and the RefinerNet's write processor."""

    unet_name: str
    refiner_name: str
    channels: int
    heads: int
    read: ReferenceReadProcessor
    write: ReferenceWriteProcessor


def _channels(attn: Attention) -> int:
    return attn.to_q.in_features


def pair_reference_attention(
    unet: nn.Module,
    refiner: nn.Module,
    unet_label: str = "denoising U-Net",
    refiner_label: str = "RefinerNet",
) -> list[ReferencePair]:
    """Pair both U-Nets' spatial self-attentions in order and install the processors.

    Raises ReferencePairingError naming both models and the first mismatching pair when the counts
    or the channel widths differ. Returns one ReferencePair per injected layer.
    """
    unet_attns = spatial_self_attentions(unet)
    refiner_attns = spatial_self_attentions(refiner)
    for index, ((u_name, u_attn), (r_name, r_attn)) in enumerate(
        zip(unet_attns, refiner_attns, strict=False)
    ):
        if _channels(u_attn) != _channels(r_attn):
            raise ReferencePairingError(
                f"{unet_label} and {refiner_label} do not pair: spatial self-attention #{index} "
                f"{unet_label} '{u_name}' has {_channels(u_attn)} channels, {refiner_label} "
                f"'{r_name}' has {_channels(r_attn)} (their block layouts must match)"
            )
    if len(unet_attns) != len(refiner_attns):
        index = min(len(unet_attns), len(refiner_attns))
        longer, names = (
            (unet_label, unet_attns) if len(unet_attns) > index else (refiner_label, refiner_attns)
        )
        raise ReferencePairingError(
            f"{unet_label} and {refiner_label} do not pair: {unet_label} has {len(unet_attns)} "
            f"spatial self-attentions, {refiner_label} has {len(refiner_attns)}; first unpaired "
            f"block #{index} is {longer} '{names[index][0]}' (their block layouts must match)"
        )
    pairs = []
    for (u_name, u_attn), (r_name, r_attn) in zip(unet_attns, refiner_attns, strict=True):
        pair = ReferencePair(
            unet_name=u_name,
            refiner_name=r_name,
            channels=_channels(u_attn),
            heads=u_attn.heads,
            read=ReferenceReadProcessor(),
            write=ReferenceWriteProcessor(),
        )
        u_attn.set_processor(pair.read)
        r_attn.set_processor(pair.write)
        pairs.append(pair)
    return pairs
