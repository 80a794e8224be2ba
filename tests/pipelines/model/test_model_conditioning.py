"""Widened conv_in (paper 3.3), stereo deviation strength (paper 3.4.2), image conditioning."""

from __future__ import annotations

import copy

import cv2
import numpy as np
import pytest
import torch
from diffusers import UNetSpatioTemporalConditionModel

from pipelines.model import SpatialDreamerModel, deviation_strength
from pipelines.model.spatialdreamer import svd_resize


def test_conv_in_is_widened_with_a_zero_mask_channel(
    tiny_model: SpatialDreamerModel, tiny_dirs
) -> None:
    svd = UNetSpatioTemporalConditionModel.from_pretrained(tiny_dirs["svd"], subfolder="unet")
    conv = tiny_model.unet.conv_in
    assert conv.in_channels == 9 and tiny_model.unet.config.in_channels == 9
    assert torch.equal(conv.weight[:, :8], svd.conv_in.weight)
    assert torch.equal(conv.weight[:, 8:], torch.zeros_like(conv.weight[:, 8:]))
    assert torch.equal(conv.bias, svd.conv_in.bias)


def test_zero_mask_reproduces_the_original_svd_unet(
    tiny_model: SpatialDreamerModel, tiny_dirs, inputs: dict[str, torch.Tensor]
) -> None:
    svd = UNetSpatioTemporalConditionModel.from_pretrained(
        tiny_dirs["svd"], subfolder="unet"
    ).eval()
    noisy, masked = inputs["noisy_latents"], inputs["masked_latents"]
    zero_mask = torch.zeros_like(inputs["mask"])
    conditioning = masked / tiny_model.vae.config.scaling_factor  # SVD's unscaled image latents
    call = {
        "timestep": inputs["timesteps"],
        "encoder_hidden_states": inputs["image_embeddings"],
        "added_time_ids": inputs["added_time_ids"],
    }
    with torch.no_grad():
        expected = svd(torch.cat([noisy, conditioning], dim=2), **call).sample
        with tiny_model.without_reference_attention():
            widened_input = tiny_model.unet_input(noisy, masked, zero_mask)
            actual = tiny_model.unet(widened_input, **call).sample
            # At initialisation the mask channel is inert whatever the mask.
            any_mask = tiny_model.unet(
                tiny_model.unet_input(noisy, masked, inputs["mask"]), **call
            ).sample
    assert widened_input.shape[2] == 9
    torch.testing.assert_close(actual, expected, atol=1e-6, rtol=1e-5)
    torch.testing.assert_close(any_mask, expected, atol=1e-6, rtol=1e-5)
    # The context manager restored the read processors.
    for pair in tiny_model.pairs:
        assert tiny_model.unet.get_submodule(pair.unet_name).processor is pair.read
    # The mask channel is wired: once its weights move, the mask changes the output.
    with torch.no_grad():
        tiny_model.unet.conv_in.weight[:, 8:] = 1.0
        with tiny_model.without_reference_attention():
            moved = tiny_model.unet(
                tiny_model.unet_input(noisy, masked, inputs["mask"]), **call
            ).sample
    assert (moved - expected).abs().max() > 1e-3


def test_deviation_strength_is_mean_abs_difference_per_sample() -> None:
    z0 = torch.zeros(2, 3, 4, 2, 2)
    z_ref = torch.zeros(2, 3, 4, 2, 2)
    z_ref[0] = 0.5
    z_ref[1, 0] = -3.0  # one frame in three differs by 3
    torch.testing.assert_close(deviation_strength(z0, z_ref), torch.tensor([0.5, 1.0]))
    with pytest.raises(ValueError, match="same"):
        deviation_strength(z0, z_ref[:, :2])


def test_deviation_embedding_is_a_noop_at_init(
    tiny_model: SpatialDreamerModel, inputs: dict[str, torch.Tensor]
) -> None:
    with torch.no_grad():
        low = tiny_model(**inputs, deviation=torch.zeros(2))
        high = tiny_model(**inputs, deviation=torch.full((2,), 5.0))
        default = tiny_model(**inputs)
    assert torch.equal(low, high) and torch.equal(low, default)
    torch.manual_seed(0)
    torch.nn.init.normal_(tiny_model.deviation_embedding.mlp.linear_2.weight, std=0.5)
    with torch.no_grad():
        low = tiny_model(**inputs, deviation=torch.zeros(2))
        high = tiny_model(**inputs, deviation=torch.full((2,), 5.0))
    assert (low - high).abs().max() > 1e-4
    # The hook only acts inside forward: the U-Net alone is unaffected afterwards.
    assert tiny_model._pending_deviation is None


def test_deviation_reaches_every_frame_through_the_time_embedding(
    tiny_model: SpatialDreamerModel, inputs: dict[str, torch.Tensor]
) -> None:
    seen = []
    handle = tiny_model.unet.time_embedding.register_forward_hook(
        lambda module, args, output: seen.append(output.detach().clone())
    )
    torch.nn.init.normal_(tiny_model.deviation_embedding.mlp.linear_2.bias)
    try:
        with torch.no_grad():
            tiny_model(**inputs, deviation=torch.tensor([0.1, 0.3]))
    finally:
        handle.remove()
    # Hooks run in registration order: ours first, so the observer sees the sum, one row per sample.
    time_embedding = tiny_model.unet.time_embedding(
        tiny_model.unet.time_proj(inputs["timesteps"]).to(torch.float32)
    )
    deviation = tiny_model.deviation_embedding(torch.tensor([0.1, 0.3]))
    torch.testing.assert_close(seen[0], time_embedding + deviation)


def test_forward_validates_shapes(tiny_model: SpatialDreamerModel, inputs) -> None:
    with pytest.raises(ValueError, match="mask must be"):
        tiny_model(**{**inputs, "mask": inputs["mask"][:, :, :, :4]})
    with pytest.raises(ValueError, match="deviation must be"):
        tiny_model(**inputs, deviation=torch.zeros(3))


def test_encode_images_and_image_embeddings(tiny_model: SpatialDreamerModel) -> None:
    torch.manual_seed(0)
    images = torch.rand(3, 3, 64, 64) * 2 - 1
    latents = tiny_model.encode_images(images)
    assert latents.shape == (3, 4, 8, 8)
    posterior = tiny_model.vae.encode(images).latent_dist.mode()
    torch.testing.assert_close(latents, posterior * tiny_model.vae.config.scaling_factor)
    embeddings = tiny_model.image_embeddings(images)
    assert embeddings.shape == (3, 1, 32)
    # Resized to the encoder's 32x32 input: a 96x96 image gives an embedding too.
    assert tiny_model.image_embeddings(torch.zeros(1, 3, 96, 96)).shape == (1, 1, 32)
    assert not any(p.requires_grad for p in tiny_model.vae.parameters())
    assert not any(p.requires_grad for p in tiny_model.image_encoder.parameters())
    decoded = tiny_model.decode_latents(latents, num_frames=3)
    assert decoded.shape == (3, 3, 64, 64)


def test_clip_preprocessing_equals_diffusers_svd_encode_image(
    tiny_model: SpatialDreamerModel,
) -> None:
    """model.image_embeddings against diffusers' own StableVideoDiffusionPipeline._encode_image
    on the same image (a CLIP encoder at SVD's 224 px input, OpenAI mean/std)."""
    from diffusers import StableVideoDiffusionPipeline
    from PIL import Image
    from transformers import CLIPVisionConfig, CLIPVisionModelWithProjection

    from pipelines.model.spatialdreamer import CLIPImageProcessor

    torch.manual_seed(0)
    encoder = CLIPVisionModelWithProjection(
        CLIPVisionConfig(
            hidden_size=32, projection_dim=32, num_hidden_layers=2, num_attention_heads=4,
            intermediate_size=37, image_size=224, patch_size=32,
        )
    ).eval()  # fmt: skip
    extractor = CLIPImageProcessor(crop_size=224, size=224)
    tiny_model.image_encoder, tiny_model.feature_extractor = encoder, extractor
    svd = StableVideoDiffusionPipeline(
        vae=tiny_model.vae, image_encoder=encoder, unet=tiny_model.unet,
        scheduler=tiny_model.scheduler, feature_extractor=extractor,
    )  # fmt: skip
    rng = np.random.default_rng(0)
    pixels = cv2.GaussianBlur(rng.integers(0, 256, (90, 160, 3), dtype=np.uint8), (5, 5), 1.5)
    with torch.no_grad():
        expected = svd._encode_image(Image.fromarray(pixels), "cpu", 1, False)
    image = torch.from_numpy(pixels).permute(2, 0, 1)[None].float() / 127.5 - 1.0
    ours = tiny_model.image_embeddings(image)
    assert ours.shape == expected.shape == (1, 1, 32)
    torch.testing.assert_close(ours, expected, atol=1e-5, rtol=1e-4)
    # The resize matters: a plain antialiased bicubic (the pre-fix preprocessing) differs.
    plain = torch.nn.functional.interpolate(
        image, size=(224, 224), mode="bicubic", align_corners=False, antialias=True
    )
    assert (plain - svd_resize(image, (224, 224))).abs().mean() > 1e-3


@pytest.mark.parametrize("half", [torch.float16, torch.bfloat16])
def test_vae_runs_in_float32_when_force_upcast_is_set(
    tiny_model: SpatialDreamerModel, half: torch.dtype
) -> None:
    vae = tiny_model.vae
    images = torch.rand(2, 3, 64, 64) * 2 - 1
    vae.to(half)
    reference = copy.deepcopy(vae).to(torch.float32)  # the same (rounded) weights in float32
    seen: list[torch.dtype] = []
    hook = vae.encoder.conv_in.register_forward_pre_hook(lambda m, a: seen.append(a[0].dtype))
    vae.register_to_config(force_upcast=True)
    latents = tiny_model.encode_images(images)
    expected = reference.encode(images).latent_dist.mode() * vae.config.scaling_factor
    torch.testing.assert_close(latents, expected, atol=0, rtol=0)
    decoded = tiny_model.decode_latents(latents, num_frames=2)
    assert decoded.dtype == torch.float32
    assert next(vae.parameters()).dtype == half  # cast back after each call
    vae.register_to_config(force_upcast=False)
    tiny_model.encode_images(images)
    hook.remove()
    assert seen == [torch.float32, half]
