"""TIL (paper 3.4.1, Eq. 3): the pure function, the window of neighbours, the no-op at init."""

from __future__ import annotations

import pytest
import torch

from pipelines.model import (
    SpatialDreamerModel,
    TemporalInteraction,
    TILAttention,
    neighbour_indices,
    til_attention,
)


def reference_attention(
    attn: TILAttention, query: torch.Tensor, context: torch.Tensor
) -> torch.Tensor:
    """Plain softmax attention written out with attn's projections (heads split as attn does)."""
    m, length, channels = query.shape
    heads = attn.heads

    def split(t: torch.Tensor) -> torch.Tensor:
        return t.view(m, t.shape[1], heads, -1).transpose(1, 2)

    q, k, v = split(attn.to_q(query)), split(attn.to_k(context)), split(attn.to_v(context))
    weights = torch.softmax(q @ k.transpose(-1, -2) / q.shape[-1] ** 0.5, dim=-1)
    return (weights @ v).transpose(1, 2).reshape(m, length, channels)


@pytest.fixture
def attn() -> TILAttention:
    torch.manual_seed(0)
    return TILAttention(channels=16, heads=4).double()


def test_lambda_one_is_plain_self_attention_on_the_reference(attn: TILAttention) -> None:
    r = torch.randn(3, 10, 16, dtype=torch.float64)
    neighbours = torch.randn(3, 4, 10, 16, dtype=torch.float64)
    actual = til_attention(r, neighbours, 1.0, attn)
    torch.testing.assert_close(actual, reference_attention(attn, r, r), atol=1e-12, rtol=1e-12)


def test_eq3_blend_of_self_and_mean_cross_attention(attn: TILAttention) -> None:
    r = torch.randn(2, 6, 16, dtype=torch.float64)
    neighbours = torch.randn(2, 3, 6, 16, dtype=torch.float64)
    lam = 0.6
    expected = (
        lam * reference_attention(attn, r, r)
        + (1 - lam) * sum(reference_attention(attn, r, neighbours[:, i]) for i in range(3)) / 3
    )
    torch.testing.assert_close(til_attention(r, neighbours, lam, attn), expected)
    # A sequence of per-frame tensors is the same as the stacked form.
    torch.testing.assert_close(til_attention(r, list(neighbours.unbind(1)), lam, attn), expected)
    # lambda = 0: only the cross-frame term, which depends on the neighbours.
    other = til_attention(r, torch.randn_like(neighbours), 0.0, attn)
    assert (other - til_attention(r, neighbours, 0.0, attn)).abs().max() > 1e-3


def test_til_attention_rejects_bad_neighbours(attn: TILAttention) -> None:
    r = torch.randn(2, 6, 16, dtype=torch.float64)
    with pytest.raises(ValueError, match="neighbours must be"):
        til_attention(r, torch.randn(3, 2, 6, 16, dtype=torch.float64), 0.6, attn)
    with pytest.raises(ValueError, match="at least one"):
        til_attention(r, [], 0.6, attn)


def test_neighbour_window() -> None:
    # N_r = 8 on an 8-frame clip: every frame sees all 8 frames (itself included).
    assert neighbour_indices(8, 8).tolist() == [list(range(8))] * 8
    # Longer clip: a centred window of 3, shifted to stay inside the clip.
    assert neighbour_indices(5, 3).tolist() == [
        [0, 1, 2],
        [0, 1, 2],
        [1, 2, 3],
        [2, 3, 4],
        [2, 3, 4],
    ]
    assert neighbour_indices(1, 8).tolist() == [[0]]


def test_temporal_interaction_uses_frames_of_its_own_clip() -> None:
    torch.manual_seed(0)
    til = TemporalInteraction(channels=16, heads=4, lam=0.6, frames=8)
    torch.nn.init.normal_(til.out.weight)  # make it non-trivial
    tokens = torch.randn(2 * 3, 5, 16)  # 2 clips x 3 frames
    out = til(tokens, num_frames=3)
    changed = tokens.clone()
    changed[3:] += 1.0  # perturb the second clip only
    out_changed = til(changed, num_frames=3)
    torch.testing.assert_close(out_changed[:3], out[:3])
    assert (out_changed[3:] - out[3:]).abs().max() > 1e-3
    with pytest.raises(ValueError, match="whole number"):
        til(tokens, num_frames=4)


def test_til_is_identity_at_init() -> None:
    til = TemporalInteraction(channels=16, heads=4)
    tokens = torch.randn(8, 5, 16)
    assert torch.equal(til(tokens, num_frames=8), tokens)


def test_enable_til_leaves_the_stage1_output_unchanged(
    tiny_model: SpatialDreamerModel, inputs: dict[str, torch.Tensor]
) -> None:
    assert tiny_model.til is None and not tiny_model.config.til
    with torch.no_grad():
        stage1 = tiny_model(**inputs)
    tiny_model.enable_til()
    assert tiny_model.config.til and len(tiny_model.til) == len(tiny_model.pairs)
    with torch.no_grad():
        stage2 = tiny_model(**inputs)
    assert (stage2 - stage1).abs().max() < 1e-5
    # TIL does act once its output projection moves away from zero.
    torch.manual_seed(0)
    for module in tiny_model.til:
        torch.nn.init.normal_(module.out.weight, std=0.5)
    with torch.no_grad():
        trained = tiny_model(**inputs)
    assert (trained - stage1).abs().max() > 1e-4
    assert tiny_model.pairs[0].read.reference is not tiny_model.pairs[0].write.tokens
