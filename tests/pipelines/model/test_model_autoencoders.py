"""The VAE classes a model directory may hold: the closed-form LinearAutoencoder (exact where it
can be, optimal where it cannot) and load_vae's choice by the saved config."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from diffusers import AutoencoderKLTemporalDecoder

from dvg.synthetic import render_scene
from pipelines.model.autoencoders import LinearAutoencoder, load_vae, vae_scale_factor
from pipelines.model.loading import ComponentLoadError


def frames(seed: int, count: int = 4) -> torch.Tensor:
    """(2 count, 3, 32, 32) left and right views of a rendered scene, in [-1, 1]."""
    render = render_scene("boxes_orbit", seed=seed, height=32, width=32, num_frames=count)
    return torch.cat([render.left, render.right]) * 2 - 1


def reconstruct(vae: LinearAutoencoder, x: torch.Tensor) -> torch.Tensor:
    with torch.no_grad():
        return vae.decode(vae.encode(x).latent_dist.mode(), num_frames=len(x)).sample


def test_all_components_reconstruct_exactly():
    """A patch has 3 p^2 values: with as many latent channels the PCA basis is orthonormal and
    complete, so decode(encode(x)) is x (up to float32 rounding)."""
    x = frames(0)
    vae = LinearAutoencoder(patch_size=2, latent_channels=12, decoder_kernel=1)
    vae.fit(x, chunk=3)
    assert (reconstruct(vae, x) - x).abs().max() < 1e-5
    basis = vae.encoder.weight.flatten(1).double()
    assert torch.allclose(basis @ basis.T, torch.eye(12, dtype=torch.float64), atol=1e-5)


def test_four_channels_keep_most_and_the_decoder_is_the_least_squares_one():
    """With 4 of 12 channels the held-out reconstruction is good (> 22 dB on 32 px rendered scenes),
    better than a patch-wise decoder, and perturbing the fitted decoder only makes the training
    error worse (it is the least-squares solution)."""
    train, held = frames(0, 6), frames(1)
    vae = LinearAutoencoder(patch_size=2, latent_channels=4, decoder_kernel=3)
    vae.fit(train, chunk=5)  # chunks must not change the fit
    whole = LinearAutoencoder(patch_size=2, latent_channels=4, decoder_kernel=3)
    whole.fit(train, chunk=len(train))
    assert torch.allclose(vae.decoder.weight, whole.decoder.weight, atol=1e-5)

    def psnr(model: LinearAutoencoder, x: torch.Tensor) -> float:
        error = ((reconstruct(model, x).clamp(-1, 1) - x) / 2).pow(2).mean()
        return float(10 * torch.log10(1 / error))

    patchwise = LinearAutoencoder(patch_size=2, latent_channels=4, decoder_kernel=1)
    patchwise.fit(train)
    assert psnr(vae, held) > 22.0
    assert psnr(vae, held) > psnr(patchwise, held) + 0.5  # 23.7 against 22.6 dB
    error = F.mse_loss(reconstruct(vae, train), train)
    with torch.no_grad():
        vae.decoder.weight.add_(torch.randn_like(vae.decoder.weight) * 1e-3)
    assert F.mse_loss(reconstruct(vae, train), train) > error


def test_the_posterior_is_deterministic_and_latents_are_orthonormal_projections():
    x = frames(0)
    vae = LinearAutoencoder(patch_size=2, latent_channels=4)
    vae.fit(x)
    posterior = vae.encode(x).latent_dist
    assert torch.equal(
        posterior.sample(generator=torch.Generator().manual_seed(0)), posterior.mode()
    )
    assert float(posterior.kl().abs().sum()) == 0.0
    # Latent distances are patch-space distances (of the projections): the loss in latent space
    # is a pixel-space loss.
    a, b = x[:1], x[1:2]
    za, zb = vae.encode(a).latent_dist.mode(), vae.encode(b).latent_dist.mode()
    basis = vae.encoder.weight.flatten(1)
    pa, pb = (F.pixel_unshuffle(v, 2).permute(0, 2, 3, 1) @ basis.T for v in (a, b))
    assert torch.allclose((za - zb).pow(2).sum(), (pa - pb).pow(2).sum(), rtol=1e-4)


def test_load_vae_picks_the_saved_class_and_refuses_unknown_ones(tmp_path: Path):
    linear = LinearAutoencoder(patch_size=4, sample_size=32)
    linear.fit(frames(0))
    linear.save_pretrained(tmp_path / "linear")
    loaded = load_vae(str(tmp_path / "linear"), None, "test VAE")
    assert isinstance(loaded, LinearAutoencoder) and vae_scale_factor(loaded) == 4
    assert torch.equal(loaded.decoder.weight, linear.decoder.weight)
    kl = AutoencoderKLTemporalDecoder(
        block_out_channels=(32, 32), down_block_types=("DownEncoderBlock2D",) * 2,
        layers_per_block=1, latent_channels=4,
    )  # fmt: skip
    kl.save_pretrained(tmp_path / "svd" / "vae")
    loaded = load_vae(str(tmp_path / "svd"), "vae", "test VAE", torch.float16)
    assert isinstance(loaded, AutoencoderKLTemporalDecoder) and vae_scale_factor(loaded) == 2
    assert next(loaded.parameters()).dtype == torch.float16

    config = json.loads((tmp_path / "linear" / "config.json").read_text())
    (tmp_path / "evil").mkdir()
    config["_class_name"] = "os.system"
    (tmp_path / "evil" / "config.json").write_text(json.dumps(config))
    with pytest.raises(ComponentLoadError, match=r"names class 'os\.system'; known VAE classes"):
        load_vae(str(tmp_path / "evil"), None, "test VAE")
    with pytest.raises(ComponentLoadError, match="cannot load the test VAE from"):
        load_vae(str(tmp_path / "missing"), None, "test VAE")
