"""Reference attention (paper 3.3): read processor == concatenate, self-attend, first half."""

from __future__ import annotations

import pytest
import torch
from diffusers.models.attention_processor import Attention

from pipelines.model import (
    ModelConfig,
    ReferencePairingError,
    ReferenceReadProcessor,
    SpatialDreamerModel,
    spatial_self_attentions,
)


def concatenated_self_attention(attn: Attention, x: torch.Tensor, r: torch.Tensor) -> torch.Tensor:
    """The paper's formulation written out: concat along tokens, softmax attention, first half."""
    tokens = torch.cat([x, r], dim=1)
    batch, length, _ = tokens.shape
    heads = attn.heads

    def split(t: torch.Tensor) -> torch.Tensor:
        return t.view(batch, length, heads, -1).transpose(1, 2)

    q, k, v = split(attn.to_q(tokens)), split(attn.to_k(tokens)), split(attn.to_v(tokens))
    weights = torch.softmax(q @ k.transpose(-1, -2) / q.shape[-1] ** 0.5, dim=-1)
    out = (weights @ v).transpose(1, 2).reshape(batch, length, -1)
    out = attn.to_out[0](out)
    return out[:, : x.shape[1]]


def test_read_processor_equals_concatenated_full_self_attention() -> None:
    torch.manual_seed(0)
    attn = Attention(query_dim=32, heads=4, dim_head=8, bias=False).eval()
    read = ReferenceReadProcessor()
    attn.set_processor(read)
    x = torch.randn(3, 20, 32, dtype=torch.float64)
    r = torch.randn(3, 12, 32, dtype=torch.float64)  # a different token count on purpose
    attn.double()
    read.reference = r
    actual = attn(x)
    expected = concatenated_self_attention(attn, x, r)
    assert actual.shape == (3, 20, 32)
    torch.testing.assert_close(actual, expected, atol=1e-10, rtol=1e-10)
    # The reference really matters: plain self-attention on x alone differs.
    plain = concatenated_self_attention(attn, x, x[:, :0])
    assert (actual - plain).abs().max() > 1e-3


def test_read_processor_with_empty_bank_raises_clearly() -> None:
    attn = Attention(query_dim=32, heads=4, dim_head=8)
    attn.set_processor(ReferenceReadProcessor())
    with pytest.raises(RuntimeError, match="reference bank is empty"):
        attn(torch.randn(1, 4, 32))


def test_read_processor_rejects_mismatched_bank() -> None:
    attn = Attention(query_dim=32, heads=4, dim_head=8)
    read = ReferenceReadProcessor()
    attn.set_processor(read)
    read.reference = torch.randn(2, 4, 32)
    with pytest.raises(ValueError, match="same batch"):
        attn(torch.randn(3, 4, 32))


def test_pairs_are_spatial_blocks_in_forward_order(tiny_model: SpatialDreamerModel) -> None:
    names = [pair.unet_name for pair in tiny_model.pairs]
    assert names == [
        "down_blocks.0.attentions.0.transformer_blocks.0.attn1",
        "down_blocks.0.attentions.1.transformer_blocks.0.attn1",
        "mid_block.attentions.0.transformer_blocks.0.attn1",
        "up_blocks.1.attentions.0.transformer_blocks.0.attn1",
        "up_blocks.1.attentions.1.transformer_blocks.0.attn1",
        "up_blocks.1.attentions.2.transformer_blocks.0.attn1",
    ]
    assert [pair.refiner_name for pair in tiny_model.pairs] == names
    assert [pair.channels for pair in tiny_model.pairs] == [32, 32, 64, 32, 32, 32]
    assert not any("temporal" in name for name, _ in spatial_self_attentions(tiny_model.unet))
    # Each processor is installed on the module it names.
    for pair in tiny_model.pairs:
        assert tiny_model.unet.get_submodule(pair.unet_name).processor is pair.read
        assert tiny_model.refiner.get_submodule(pair.refiner_name).processor is pair.write


def test_forward_writes_refiner_tokens_into_the_paired_bank(
    tiny_model: SpatialDreamerModel, inputs: dict[str, torch.Tensor]
) -> None:
    batch, frames = inputs["noisy_latents"].shape[:2]
    with torch.no_grad():
        tiny_model(**inputs)
    # 8x8 latents: 64 tokens at 32 channels, 16 tokens at 64 (mid block), one row per frame.
    for pair in tiny_model.pairs:
        tokens = 64 if pair.channels == 32 else 16
        assert pair.write.tokens.shape == (batch * frames, tokens, pair.channels)
        assert pair.read.reference is pair.write.tokens  # no TIL: the bank is used as written


def test_reference_view_changes_the_output(
    tiny_model: SpatialDreamerModel, inputs: dict[str, torch.Tensor]
) -> None:
    with torch.no_grad():
        out = tiny_model(**inputs)
        other = tiny_model(
            **{**inputs, "reference_latents": torch.randn_like(inputs["reference_latents"])}
        )
    assert out.shape == inputs["noisy_latents"].shape
    assert (out - other).abs().max() > 1e-4


def test_mismatched_refiner_fails_with_clear_error(tiny_dirs) -> None:
    config = ModelConfig(svd=str(tiny_dirs["svd"]), refiner=str(tiny_dirs["sd_mismatched"]))
    with pytest.raises(ReferencePairingError) as error:
        SpatialDreamerModel.from_components(config)
    message = str(error.value)
    assert isinstance(error.value, ValueError)
    assert "denoising U-Net" in message and "RefinerNet" in message
    assert str(tiny_dirs["sd_mismatched"]) in message and str(tiny_dirs["svd"]) in message
    assert "#0" in message and "down_blocks.0.attentions.0.transformer_blocks.0.attn1" in message
    assert "32 channels" in message and "64" in message


def test_block_count_mismatch_names_first_unpaired_block(tiny_model: SpatialDreamerModel) -> None:
    from diffusers import UNet2DConditionModel

    from pipelines.model import pair_reference_attention

    # Same down and mid blocks, no cross-attention on the way up: 3 spatial attentions against 6.
    no_up_attention = UNet2DConditionModel(
        sample_size=32,
        down_block_types=("CrossAttnDownBlock2D", "DownBlock2D"),
        up_block_types=("UpBlock2D", "UpBlock2D"),
        block_out_channels=(32, 64),
        layers_per_block=2,
        cross_attention_dim=32,
        attention_head_dim=8,
    )
    with pytest.raises(ReferencePairingError) as error:
        pair_reference_attention(tiny_model.unet, no_up_attention)
    message = str(error.value)
    assert "has 6 spatial self-attentions, RefinerNet has 3" in message
    assert "#3 is denoising U-Net 'up_blocks.1.attentions.0.transformer_blocks.0.attn1'" in message


def _gradients(
    model: SpatialDreamerModel, inputs: dict[str, torch.Tensor], checkpointing: bool
) -> dict[str, torch.Tensor]:
    if checkpointing:
        model.unet.enable_gradient_checkpointing()
        model.refiner.enable_gradient_checkpointing()
    model.train()
    model(**inputs).square().mean().backward()
    return {n: p.grad for n, p in model.named_parameters() if p.grad is not None}


def test_gradients_reach_the_refiner_and_survive_checkpointing(
    tiny_config: ModelConfig, inputs: dict[str, torch.Tensor]
) -> None:
    grads = []
    for checkpointing in (False, True):
        torch.manual_seed(0)  # same random init of the new modules in both models
        model = SpatialDreamerModel.from_components(tiny_config)
        model.enable_til()
        for module in model.til:
            torch.nn.init.normal_(module.out.weight, std=0.1)
        grads.append(_gradients(model, inputs, checkpointing))
    plain, checkpointed = grads
    # Stage 1 trains the RefinerNet through the reference attention alone.
    assert plain["refiner.conv_in.weight"].abs().max() > 0
    assert plain["til.0.attn.to_q.weight"].abs().max() > 0
    # The bank outlives forward, so recomputation in backward reads the same reference tokens.
    assert plain.keys() == checkpointed.keys()
    for name, grad in plain.items():
        torch.testing.assert_close(checkpointed[name], grad, msg=name)


def test_paper_size_svd_and_sd21_pair_one_to_one() -> None:
    from diffusers import UNet2DConditionModel, UNetSpatioTemporalConditionModel

    from pipelines.model import pair_reference_attention

    # Shapes only (meta device): SVD's default config and stabilityai/stable-diffusion-2-1/unet.
    with torch.device("meta"):
        svd = UNetSpatioTemporalConditionModel()
        sd21 = UNet2DConditionModel(
            sample_size=96,
            block_out_channels=(320, 640, 1280, 1280),
            attention_head_dim=(5, 10, 20, 20),
            cross_attention_dim=1024,
            use_linear_projection=True,
            upcast_attention=True,
        )
    pairs = pair_reference_attention(svd, sd21)
    down, mid, up = [320, 320, 640, 640, 1280, 1280], [1280], [1280] * 3 + [640] * 3 + [320] * 3
    assert [pair.channels for pair in pairs] == down + mid + up
    assert [pair.unet_name for pair in pairs] == [pair.refiner_name for pair in pairs]


def test_a_precomputed_reference_bank_gives_the_same_output_at_any_step(
    tiny_model: SpatialDreamerModel, inputs: dict[str, torch.Tensor]
) -> None:
    """The RefinerNet runs at timestep 0 on the reference and TIL mixes reference tokens only,
    so the bank computed once serves every denoising step: same output as recomputing it."""
    tiny_model.enable_til()
    with torch.no_grad():
        for module in tiny_model.til:  # TIL starts as a no-op; make it act
            torch.nn.init.normal_(module.out.weight, std=0.5)
        bank = tiny_model.reference_bank(inputs["reference_latents"], inputs["image_embeddings"])
        for step in range(3):  # other noisy latents and noise levels, as at later steps
            noisy = inputs["noisy_latents"] * (step + 1) + step
            call = {**inputs, "noisy_latents": noisy, "timesteps": inputs["timesteps"] - step}
            assert torch.equal(tiny_model(**call, reference_bank=bank), tiny_model(**call))
        wrong = tiny_model.reference_bank(
            inputs["reference_latents"][:1], inputs["image_embeddings"][:1]
        )
        with pytest.raises(ValueError, match="reference_bank"):
            tiny_model(**inputs, reference_bank=wrong)
