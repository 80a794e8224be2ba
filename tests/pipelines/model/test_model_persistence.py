"""Loading through the hub code path, save_pretrained / from_pretrained, trainable groups."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from pipelines.model import (
    FORMAT_VERSION,
    ComponentLoadError,
    ModelConfig,
    SpatialDreamerModel,
    is_temporal_parameter,
)


def test_tiny_directories_have_the_hub_layouts(tiny_dirs) -> None:
    index = json.loads((tiny_dirs["svd"] / "model_index.json").read_text())
    assert index["_class_name"] == "StableVideoDiffusionPipeline"
    assert index["unet"] == ["diffusers", "UNetSpatioTemporalConditionModel"]
    assert index["feature_extractor"] == ["transformers", "CLIPImageProcessor"]
    for sub in ("unet", "vae", "image_encoder", "feature_extractor", "scheduler"):
        assert (tiny_dirs["svd"] / sub).is_dir()
    assert (tiny_dirs["sd"] / "unet" / "config.json").is_file()


def test_from_components_loads_everything(tiny_model: SpatialDreamerModel) -> None:
    assert tiny_model.unet.config.in_channels == 9
    assert tiny_model.feature_extractor is not None
    assert tiny_model.scheduler is not None
    assert tiny_model.scheduler.config.prediction_type == "v_prediction"
    assert tiny_model.refiner.config.cross_attention_dim == 32


def test_bare_refiner_directory_loads(tiny_dirs) -> None:
    bare = tiny_dirs["sd"] / "unet"  # a UNet2DConditionModel dir without the pipeline around it
    model = SpatialDreamerModel.from_components(
        ModelConfig(svd=str(tiny_dirs["svd"]), refiner=str(bare))
    )
    assert len(model.pairs) == 6


OFFLINE_SCRIPT = """
import sys
from pipelines.model import ComponentLoadError, ModelConfig, SpatialDreamerModel
svd, sd = sys.argv[1], sys.argv[2]
for config in (ModelConfig(svd="spatialdreamer-tests/no-such-svd", refiner=sd),
               ModelConfig(svd=svd, refiner="spatialdreamer-tests/no-such-sd21")):
    try:
        SpatialDreamerModel.from_components(config)
    except ComponentLoadError as error:
        print("ERROR:", str(error).replace(chr(10), " "))
"""


def test_missing_hub_model_offline_names_it(tiny_dirs) -> None:
    # huggingface_hub and diffusers read HF_HUB_OFFLINE at import time: a fresh process.
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    result = subprocess.run(
        [sys.executable, "-c", OFFLINE_SCRIPT, str(tiny_dirs["svd"]), str(tiny_dirs["sd"])],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
        cwd=Path(__file__).resolve().parents[3],
    )
    errors = [line for line in result.stdout.splitlines() if line.startswith("ERROR:")]
    assert len(errors) == 2, result.stdout + result.stderr
    assert "spatialdreamer-tests/no-such-svd" in errors[0]
    assert "SVD denoising U-Net" in errors[0] and "HF_HUB_OFFLINE" in errors[0]
    assert "spatialdreamer-tests/no-such-sd21" in errors[1] and "RefinerNet" in errors[1]


def test_local_directory_without_a_unet_is_refused(tiny_dirs, tmp_path) -> None:
    with pytest.raises(ComponentLoadError, match="neither"):
        SpatialDreamerModel.from_components(
            ModelConfig(svd=str(tiny_dirs["svd"]), refiner=str(tmp_path))
        )


def perturb(module: torch.nn.Module, seed: int) -> None:
    """Move zero-initialised weights so a round trip that dropped them would show."""
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for parameter in module.parameters():
            parameter.add_(0.1 * torch.randn(parameter.shape, generator=generator))


@pytest.mark.parametrize("til", [False, True])
def test_save_and_load_round_trip(
    tiny_model: SpatialDreamerModel, inputs, tmp_path, til: bool
) -> None:
    if til:
        tiny_model.enable_til()
        perturb(tiny_model.til, seed=1)
    perturb(tiny_model.deviation_embedding, seed=2)
    with torch.no_grad():
        tiny_model.unet.conv_in.weight[:, 8:] = 0.3
    tiny_model.save_pretrained(tmp_path / "model")
    names = {p.name for p in (tmp_path / "model").iterdir()}
    assert {"unet", "refiner", "vae", "image_encoder", "feature_extractor", "scheduler"} <= names
    assert ("til.safetensors" in names) == til
    assert {"deviation_embedding.safetensors", "spatialdreamer.json"} <= names
    saved = json.loads((tmp_path / "model" / "spatialdreamer.json").read_text())
    assert saved["format_version"] == FORMAT_VERSION and saved["model"]["til"] == til
    assert json.loads((tmp_path / "model" / "unet" / "config.json").read_text())["in_channels"] == 9

    loaded = SpatialDreamerModel.from_pretrained(tmp_path / "model").eval()
    assert loaded.config == tiny_model.config
    assert (loaded.til is not None) == til
    with torch.no_grad():
        expected = tiny_model(**inputs, deviation=torch.tensor([0.2, 0.7]))
        actual = loaded(**inputs, deviation=torch.tensor([0.2, 0.7]))
    assert torch.equal(actual, expected)


def test_from_pretrained_refuses_unknown_format(tiny_model: SpatialDreamerModel, tmp_path) -> None:
    tiny_model.save_pretrained(tmp_path / "model")
    path = tmp_path / "model" / "spatialdreamer.json"
    payload = json.loads(path.read_text())
    payload["format_version"] = 99
    path.write_text(json.dumps(payload))
    with pytest.raises(ValueError, match="format version 99"):
        SpatialDreamerModel.from_pretrained(tmp_path / "model")
    with pytest.raises(FileNotFoundError, match=r"spatialdreamer\.json"):
        SpatialDreamerModel.from_pretrained(tmp_path)


def test_trainable_groups_partition_the_trainable_modules(tiny_model: SpatialDreamerModel) -> None:
    tiny_model.enable_til()
    groups = tiny_model.trainable_groups()
    assert set(groups) == {
        "unet_spatial",
        "unet_temporal",
        "unet_conv_in",
        "refiner",
        "til",
        "deviation",
    }
    ids = [id(p) for group in groups.values() for p in group]
    assert len(ids) == len(set(ids)), "a parameter sits in two groups"
    expected = {
        id(p)
        for module in (
            tiny_model.unet,
            tiny_model.refiner,
            tiny_model.til,
            tiny_model.deviation_embedding,
        )
        for p in module.parameters()
    }
    assert set(ids) == expected
    frozen = {id(p) for m in (tiny_model.vae, tiny_model.image_encoder) for p in m.parameters()}
    assert not frozen & set(ids)
    assert all(len(group) > 0 for group in groups.values())
    assert groups["unet_conv_in"] == [tiny_model.unet.conv_in.weight, tiny_model.unet.conv_in.bias]


def test_unet_temporal_group_follows_diffusers_naming(tiny_model: SpatialDreamerModel) -> None:
    groups = tiny_model.trainable_groups()
    named = dict(tiny_model.unet.named_parameters())
    temporal = {id(p) for p in groups["unet_temporal"]}
    spatial = {id(p) for p in groups["unet_spatial"]}
    for name in (
        "down_blocks.0.attentions.0.temporal_transformer_blocks.0.attn1.to_q.weight",
        "down_blocks.0.resnets.0.temporal_res_block.conv1.weight",
        "down_blocks.0.resnets.0.time_mixer.mix_factor",
        "mid_block.attentions.0.time_mixer.mix_factor",
        "mid_block.attentions.0.time_pos_embed.linear_1.weight",
        "up_blocks.1.attentions.2.temporal_transformer_blocks.0.ff.net.2.weight",
    ):
        assert id(named[name]) in temporal, name
    for name in (
        "down_blocks.0.attentions.0.transformer_blocks.0.attn1.to_q.weight",
        "down_blocks.0.attentions.0.proj_in.weight",
        "down_blocks.0.resnets.0.spatial_res_block.conv1.weight",
        "mid_block.resnets.0.spatial_res_block.time_emb_proj.weight",
        "time_embedding.linear_1.weight",
        "add_embedding.linear_1.weight",
        "conv_out.weight",
    ):
        assert id(named[name]) in spatial, name
    # Exactly the rule: every U-Net parameter outside conv_in is temporal iff its name says so.
    for name, parameter in named.items():
        if not name.startswith("conv_in."):
            assert (id(parameter) in temporal) == is_temporal_parameter(name), name
    assert not any("temporal" in name for name, p in named.items() if id(p) in spatial)
