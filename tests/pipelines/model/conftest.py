"""Tiny SVD / SD2.1 component directories (real diffusers layouts) and model inputs."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from pipelines.model import ModelConfig, SpatialDreamerModel, save_tiny_sd, save_tiny_svd


@pytest.fixture(scope="session")
def tiny_dirs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("tiny_components")
    return {
        "svd": save_tiny_svd(root / "svd", seed=0),
        "sd": save_tiny_sd(root / "sd", seed=1),
        "sd_mismatched": save_tiny_sd(root / "sd_mismatched", seed=1, layout="mismatched"),
    }


@pytest.fixture
def tiny_config(tiny_dirs: dict[str, Path]) -> ModelConfig:
    return ModelConfig(svd=str(tiny_dirs["svd"]), refiner=str(tiny_dirs["sd"]))


@pytest.fixture
def tiny_model(tiny_config: ModelConfig) -> SpatialDreamerModel:
    return SpatialDreamerModel.from_components(tiny_config).eval()


def make_inputs(batch: int = 2, frames: int = 3, seed: int = 0) -> dict[str, torch.Tensor]:
    """Random forward() inputs for the tiny model: 8x8 latents (64x64 images), D = 32."""
    generator = torch.Generator().manual_seed(seed)

    def randn(*shape: int) -> torch.Tensor:
        return torch.randn(*shape, generator=generator)

    return {
        "noisy_latents": randn(batch, frames, 4, 8, 8),
        "timesteps": randn(batch),
        "masked_latents": randn(batch, frames, 4, 8, 8),
        "mask": (torch.rand(batch, frames, 1, 8, 8, generator=generator) > 0.5).float(),
        "reference_latents": randn(batch, frames, 4, 8, 8),
        "image_embeddings": randn(batch, 1, 32),
        "added_time_ids": torch.tensor([[6.0, 127.0, 0.02]] * batch),
    }


@pytest.fixture
def inputs() -> dict[str, torch.Tensor]:
    return make_inputs()
