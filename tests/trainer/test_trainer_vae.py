"""Stage 0 (`trainer fit-vae`): the VAE is fitted to the shards' frames, measured on held-out
shards and loads through the model's VAE loader: the trained kind as diffusers'
AutoencoderKLTemporalDecoder (SVD's VAE class), the default linear kind as a LinearAutoencoder."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from diffusers import AutoencoderKLTemporalDecoder

from pipelines.model.autoencoders import LinearAutoencoder, load_vae
from trainer.vae import REPORT_NAME, VAEConfig, fit_vae, load_runs, psnr, split_shards

BIN = Path(sys.executable).parent


@pytest.fixture(scope="module")
def vae_run(dvg_shards, tmp_path_factory) -> Path:
    """150 steps at 32 px, factor 2, measured on both shards (two scenes are too few to learn
    one from the other in seconds; the default split is tested below)."""
    out = tmp_path_factory.mktemp("vae") / "vae"
    config = VAEConfig(
        shards=str(dvg_shards), held_out=str(dvg_shards), kind="kl", steps=150, resolution=32,
        batch_size=2, num_frames=2, warmup_steps=10, eval_every=75,
    )  # fmt: skip
    fit_vae(config, out)
    return out


def test_held_out_error_falls_and_is_reported(vae_run, dvg_shards):
    report = json.loads((vae_run / REPORT_NAME).read_text())
    held, initial = report["held_out"], report["initial"]
    assert held["psnr_mean"] > initial["psnr_mean"] + 5.0
    # Both views (x1, x2) of the four clips, 2 frames each.
    assert held["frames"] == initial["frames"] == 16
    assert held["psnr_std"] >= 0
    assert [point["step"] for point in report["curve"]] == [0, 75, 150]
    assert report["held_out_shards"] == [str(dvg_shards / f"00000{i}.tar") for i in (0, 1)]
    assert report["latent_shape"] == [4, 16, 16]


def test_the_folder_loads_as_svds_vae_class_and_reproduces_the_report(vae_run, dvg_shards):
    vae = AutoencoderKLTemporalDecoder.from_pretrained(vae_run)
    assert (vae_run / "diffusion_pytorch_model.safetensors").is_file()
    assert 2 ** (len(vae.config.block_out_channels) - 1) == 2
    assert vae.config.latent_channels == 4 and vae.config.sample_size == 32
    report = json.loads((vae_run / REPORT_NAME).read_text())
    assert vae.config.scaling_factor == pytest.approx(report["scaling_factor"])
    config = VAEConfig(**{**report["config"], "shards": str(dvg_shards)})
    _, held = split_shards(config)
    values = psnr(vae.eval(), load_runs(config, held, 1, config.held_out_runs))
    assert float(np.mean(values)) == pytest.approx(report["held_out"]["psnr_mean"], abs=1e-3)


def test_the_linear_kind_is_fitted_in_closed_form_through_the_cli(dvg_shards, tmp_path):
    """The default kind: no training steps, a held-out reconstruction far above the random
    start, latents scaled to unit variance, and the folder loads as a LinearAutoencoder that
    reproduces the report."""
    out = tmp_path / "vae"
    result = subprocess.run(
        [str(BIN / "trainer"), "fit-vae", str(dvg_shards), "--out", str(out), "--resolution",
         "32", "--num-frames", "2", "--held-out", str(dvg_shards)],
        capture_output=True, text=True,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-2000:]
    assert "fitted in closed form" in result.stdout
    report = json.loads((out / REPORT_NAME).read_text())
    assert report["kind"] == "linear" and report["latent_shape"] == [4, 16, 16]
    assert report["held_out"]["psnr_mean"] > report["initial"]["psnr_mean"] + 10.0
    assert report["held_out"]["psnr_mean"] > 25.0
    assert [point["step"] for point in report["curve"]] == [0]
    vae = load_vae(str(out), None, "stage-0 VAE")
    assert isinstance(vae, LinearAutoencoder) and vae.config.patch_size == 2
    assert vae.config.scaling_factor == pytest.approx(report["scaling_factor"])
    config = VAEConfig(**{**report["config"], "shards": str(dvg_shards)})
    _, held = split_shards(config)
    values = psnr(vae.eval(), load_runs(config, held, 1, config.held_out_runs))
    assert float(np.mean(values)) == pytest.approx(report["held_out"]["psnr_mean"], abs=1e-3)
    with pytest.raises(ValueError, match="kind must be one of linear, kl"):
        VAEConfig(shards=str(dvg_shards), kind="pca")


def test_held_out_split_and_bad_settings_are_clear_errors(dvg_shards, tmp_path):
    train, held = split_shards(VAEConfig(shards=str(dvg_shards)))
    assert [Path(u).name for u, _ in train] == ["000000.tar"]
    assert [Path(u).name for u, _ in held] == ["000001.tar"]
    train, held = split_shards(VAEConfig(shards=str(dvg_shards), held_out=str(dvg_shards)))
    assert len(train) == len(held) == 2
    with pytest.raises(ValueError, match="downsample must be 2, 4 or 8"):
        VAEConfig(shards=str(dvg_shards), downsample=3)
    result = subprocess.run(
        [str(BIN / "trainer"), "fit-vae", str(dvg_shards), "--out", str(tmp_path / "v"),
         "--downsample", "3"],
        capture_output=True, text=True,
    )  # fmt: skip
    assert result.returncode == 2
    assert "downsample must be 2, 4 or 8" in result.stderr


def test_the_temporal_decoder_trains_on_the_windows_the_pipeline_decodes():
    """fit-vae's default window is the pipeline's decode chunk: a temporal decoder trained on
    shorter runs decodes the pipeline's chunks worse (docs/benchmarks.md)."""
    import inspect

    from pipelines.pipeline import SpatialDreamerPipeline

    chunk = inspect.signature(SpatialDreamerPipeline.__call__).parameters["decode_chunk_size"]
    assert VAEConfig(shards="x").num_frames == chunk.default
