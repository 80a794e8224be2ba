"""What each training stage trains (paper 3.5), enumerated parameter by parameter."""

from __future__ import annotations

import re

import pytest

from pipelines.model import ModelConfig, SpatialDreamerModel, save_tiny_sd, save_tiny_svd
from trainer.stages import configure_stage, trainable_names

# diffusers' SVD U-Net names its temporal layers so: temporal transformer blocks, temporal res
# blocks, the mixers that blend spatial and temporal paths, and the frame-position embedding.
TEMPORAL = re.compile(r"temporal|time_mixer|time_pos_embed")


@pytest.fixture(scope="module")
def components(tmp_path_factory):
    folder = tmp_path_factory.mktemp("components")
    return str(save_tiny_svd(folder / "svd")), str(save_tiny_sd(folder / "sd"))


def names(model, prefix: str) -> set[str]:
    return {f"{prefix}.{n}" for n, _ in getattr(model, prefix).named_parameters()}


def test_stage_1_trains_refinernet_spatial_unet_and_deviation_only(components):
    model = SpatialDreamerModel.from_components(ModelConfig(*components))
    configure_stage(model, 1)
    trainable = set(trainable_names(model))
    unet = names(model, "unet")
    expected = (
        {n for n in unet if not TEMPORAL.search(n)}
        | names(model, "refiner")
        | names(model, "deviation_embedding")
    )
    assert trainable == expected
    assert any(n.startswith("unet.conv_in") for n in trainable)  # the widened input is trained
    assert not any(TEMPORAL.search(n) for n in trainable)
    assert model.til is None  # TIL is absent in stage 1


def test_stage_2_trains_temporal_layers_and_til_only(components):
    model = SpatialDreamerModel.from_components(ModelConfig(*components))
    with pytest.raises(ValueError, match="TIL"):
        configure_stage(model, 2)
    model.enable_til()
    configure_stage(model, 2)
    trainable = set(trainable_names(model))
    expected = {n for n in names(model, "unet") if TEMPORAL.search(n)} | names(model, "til")
    assert trainable == expected
    assert names(model, "til")
    # Frozen throughout: VAE and CLIP image encoder.
    assert not any(n.startswith(("vae.", "image_encoder.")) for n in trainable)


def test_stage_2_without_til_trains_the_temporal_layers_alone(components):
    """The ablation of model.til = false: the same temporal layers, no TIL modules."""
    model = SpatialDreamerModel.from_components(ModelConfig(*components))
    configure_stage(model, 2, til=False)
    trainable = set(trainable_names(model))
    assert trainable == {n for n in names(model, "unet") if TEMPORAL.search(n)}
    model.enable_til()
    with pytest.raises(ValueError, match="without TIL"):
        configure_stage(model, 2, til=False)
