"""Temporal Interaction Learning (TIL, paper 3.4.1, Eq. 3) on the RefinerNet's reference tokens."""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch
import torch.nn.functional as F
from torch import nn

Attend = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


def til_attention(
    r: torch.Tensor,
    neighbours: torch.Tensor | Sequence[torch.Tensor],
    lam: float,
    attend: Attend,
) -> torch.Tensor:
    """Paper Eq. 3: aug_r = lam * Attn(r, r) + (1 - lam) * mean_i Attn(r, z_i).

    r: (N, L, C) reference tokens of one frame per row.
    neighbours: (N, K, L_i, C) tokens of the K adjacent reference frames of each row, or a sequence
        of K tensors (N, L_i, C) (cheaper: no stacked copy).
    lam: lambda in [0, 1]; 1 gives plain self-attention on r.
    attend: Attn(query, context) with query (M, L, C), context (M, L', C) -> (M, L, C').
    Returns aug_r: (N, L, C').
    """
    if isinstance(neighbours, torch.Tensor):
        if neighbours.ndim != 4 or neighbours.shape[0] != r.shape[0]:
            raise ValueError(
                f"til_attention: neighbours must be (N, K, L, C) with N = {r.shape[0]}, got "
                f"{tuple(neighbours.shape)}"
            )
        neighbours = neighbours.unbind(1)
    if len(neighbours) == 0:
        raise ValueError("til_attention needs at least one neighbour frame (N_r >= 1)")
    self_term = attend(r, r)
    # Frames one at a time: memory stays at one attention map however large N_r is.
    cross_term = sum(attend(r, z) for z in neighbours) / len(neighbours)
    return lam * self_term + (1.0 - lam) * cross_term


def neighbour_indices(
    num_frames: int, window: int, device: torch.device | None = None
) -> torch.Tensor:
    """For each frame, the `window` adjacent frame indices (itself included), clamped to the clip.

    Returns (F, W) int64 with W = min(window, F): a centred window shifted to stay inside [0, F).
    """
    width = min(window, num_frames)
    frames = torch.arange(num_frames, device=device)
    start = (frames - width // 2).clamp(0, num_frames - width)
    return start[:, None] + torch.arange(width, device=device)[None, :]


class TILAttention(nn.Module):
    """Attn of Eq. 3: multi-head scaled dot-product attention with its own q/k/v projections."""

    def __init__(self, channels: int, heads: int) -> None:
        super().__init__()
        if channels % heads:
            raise ValueError(f"TILAttention: channels {channels} not divisible by heads {heads}")
        self.heads = heads
        self.to_q = nn.Linear(channels, channels, bias=False)
        self.to_k = nn.Linear(channels, channels, bias=False)
        self.to_v = nn.Linear(channels, channels, bias=False)

    def forward(self, query: torch.Tensor, context: torch.Tensor) -> torch.Tensor:
        """query: (M, L, C), context: (M, L', C) -> (M, L, C)."""
        m, length, channels = query.shape
        q = self.to_q(query).view(m, length, self.heads, -1).transpose(1, 2)
        k = self.to_k(context).view(m, context.shape[1], self.heads, -1).transpose(1, 2)
        v = self.to_v(context).view(m, context.shape[1], self.heads, -1).transpose(1, 2)
        out = F.scaled_dot_product_attention(q, k, v)
        return out.transpose(1, 2).reshape(m, length, channels)


class TemporalInteraction(nn.Module):
    """TIL for one injected layer: r + out(aug_r) with `out` zero-initialised (no-op at init).

    forward(tokens (B*F, L, C), num_frames=F) -> (B*F, L, C); frames are flattened batch-major.
    """

    def __init__(self, channels: int, heads: int, lam: float = 0.6, frames: int = 8) -> None:
        super().__init__()
        self.lam = lam
        self.frames = frames
        self.attn = TILAttention(channels, heads)
        self.out = nn.Linear(channels, channels)
        # Zero output projection: adding TIL to a stage-1 model changes nothing until trained.
        nn.init.zeros_(self.out.weight)
        nn.init.zeros_(self.out.bias)

    def forward(self, tokens: torch.Tensor, num_frames: int) -> torch.Tensor:
        batch_frames, length, channels = tokens.shape
        if batch_frames % num_frames:
            raise ValueError(
                f"TIL: {batch_frames} token rows are not a whole number of {num_frames}-frame clips"
            )
        clips = tokens.view(batch_frames // num_frames, num_frames, length, channels)
        index = neighbour_indices(num_frames, self.frames, tokens.device)
        neighbours = [clips[:, index[:, k]].reshape_as(tokens) for k in range(index.shape[1])]
        aug = til_attention(tokens, neighbours, self.lam, self.attn)
        return tokens + self.out(aug)
