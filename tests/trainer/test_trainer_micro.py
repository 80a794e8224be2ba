"""The micro preset: micro U-Nets around a stage-0 VAE of scale factor 2, the untrained model
(`--steps 0`) exported and converting a clip, stage 2 without TIL, the data ablations, and the
validation loss (RUN/validation.jsonl)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from dvg.synthetic import render_scene, write_clip
from pipelines.convert import ConvertConfig, convert
from pipelines.model import SpatialDreamerModel
from trainer.config import apply_overrides, preset_config
from trainer.loop import fit
from trainer.stages import build_model, configure_stage, load_model, trainable_names
from trainer.vae import VAEConfig, fit_vae
from trainer.validation import validation_loss, validation_set

BIN = Path(sys.executable).parent


@pytest.fixture(scope="module")
def stage0_vae(dvg_shards, tmp_path_factory) -> Path:
    """A stage-0 VAE (factor 2, 64 px) after a few steps: 32 x 32 latents."""
    out = tmp_path_factory.mktemp("stage0") / "vae"
    fit_vae(VAEConfig(shards=str(dvg_shards), steps=3, batch_size=1, num_frames=2), out)
    return out


def micro(stage: int, shards: Path, vae: Path, **sections):
    config = preset_config("micro", stage)
    model = {"vae": str(vae), **sections.pop("model", {})}
    run = {"checkpoint_every": 1, "log_every": 1, **sections.pop("run", {})}
    data = {"shards": str(shards), "batch_size": 2, **sections.pop("data", {})}
    return apply_overrides(config, {"data": data, "model": model, "run": run, **sections})


def validation_lines(run: Path) -> list[dict]:
    return [json.loads(line) for line in (run / "validation.jsonl").read_text().splitlines()]


@pytest.fixture(scope="module")
def untrained(dvg_shards, stage0_vae, tmp_path_factory) -> Path:
    """`trainer fit --preset micro --stage 1 --vae DIR --steps 0` through the CLI, validated."""
    run = tmp_path_factory.mktemp("micro") / "untrained"
    toml = run.parent / "micro.toml"
    toml.write_text(f'[run]\nvalidation_shards = "{dvg_shards}"\nvalidation_samples = 2\n')
    result = subprocess.run(
        [str(BIN / "trainer"), "fit", str(dvg_shards), "--preset", "micro", "--stage", "1",
         "--vae", str(stage0_vae), "--steps", "0", "--config", str(toml), "--run-dir", str(run)],
        capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    return run


def test_the_micro_model_takes_the_stage_0_vae_and_its_latent_size(untrained, stage0_vae):
    model = load_model(untrained)
    assert model.vae_scale_factor == 2
    assert model.unet.config.sample_size == model.refiner.config.sample_size == 32
    images = torch.zeros(1, 3, 64, 64)
    assert model.encode_images(images).shape == (1, 4, 32, 32)
    saved = json.loads((stage0_vae / "config.json").read_text())
    assert model.vae.config.scaling_factor == pytest.approx(saved["scaling_factor"])
    # Step 0 of the learning curve, on the held-out samples.
    (line,) = validation_lines(untrained)
    assert set(line) == {"step", "loss", "loss_mask", "samples"}
    assert line["step"] == 0 and line["samples"] == 2 and line["loss"] > 0


def test_the_untrained_model_exports_and_converts_a_clip(untrained, tmp_path):
    out = tmp_path / "model"
    result = subprocess.run(
        [str(BIN / "trainer"), "export", str(untrained), "--out", str(out)],
        capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    exported = SpatialDreamerModel.from_pretrained(out)
    assert exported.vae_scale_factor == 2 and exported.til is None

    render = render_scene("fronto_integer", seed=0, height=64, width=64, num_frames=5)
    paths = write_clip(render, tmp_path / "raw", "clip")
    config = ConvertConfig(
        method="spatialdreamer", model=str(out), layout="right", steps=1, window=4, overlap=1,
        depth=str(tmp_path / "raw"),
    )  # fmt: skip
    assert convert(paths["video"], tmp_path / "right.mp4", config).frames == 5


def test_micro_without_vae_names_the_option(dvg_shards, tmp_path):
    config = apply_overrides(preset_config("micro", 1), {"data": {"shards": str(dvg_shards)}})
    with pytest.raises(ValueError, match=r"--vae DIR \(model\.vae\)"):
        build_model(config, tmp_path / "run")


def test_stage_1_trains_a_step_with_the_data_ablations(dvg_shards, stage0_vae, tmp_path):
    """A factor-2 VAE through the whole loss; mirrored views and the clean condition."""
    config = micro(1, dvg_shards, stage0_vae, run={"steps": 1},
                   data={"mirror": True, "condition": "clean"})  # fmt: skip
    result = fit(config, tmp_path / "run")
    assert result.step == 1 and all(torch.isfinite(torch.tensor(result.losses)))


def test_stage_2_without_til_trains_the_temporal_layers_alone(
    untrained, dvg_shards, stage0_vae, tmp_path
):
    config = micro(2, dvg_shards, stage0_vae, run={"steps": 1},
                   model={"init_from": str(untrained), "til": False})  # fmt: skip
    run = tmp_path / "stage2"
    fit(config, run)
    model = load_model(run)
    assert model.til is None
    names = trainable_names(model)
    assert names and all(n.startswith("unet.") for n in names)
    with_til = micro(2, dvg_shards, stage0_vae, model={"init_from": str(untrained)})
    model = build_model(with_til, tmp_path / "other")
    configure_stage(model, 2)
    assert any(n.startswith("til.") for n in trainable_names(model))


def test_validation_is_deterministic_and_leaves_the_training_stream_alone(
    untrained, dvg_shards, stage0_vae, tmp_path
):
    plain = micro(1, dvg_shards, stage0_vae, run={"steps": 2})
    validated = apply_overrides(
        plain, {"run": {"validation_shards": str(dvg_shards), "validation_every": 1,
                        "validation_samples": 2}}
    )  # fmt: skip
    first = fit(plain, tmp_path / "plain")
    second = fit(validated, tmp_path / "validated")
    assert first.losses == second.losses
    lines = validation_lines(tmp_path / "validated")
    assert [line["step"] for line in lines] == [0, 1, 2]
    assert lines[0]["loss_mask"] is not None  # the clips hold occlusions
    model = load_model(untrained)
    batches = validation_set(model, validated)
    assert validation_loss(model, batches, validated) == validation_loss(model, batches, validated)
    assert validation_loss(model, batches, validated)["loss"] == pytest.approx(
        validation_lines(untrained)[0]["loss"], rel=1e-5
    )
