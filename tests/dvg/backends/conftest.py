"""Tiny random models in their real on-disk formats (built once per session) and test inputs."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest
import torch

from dvg.backends import random_weights


@pytest.fixture(autouse=True)
def one_torch_thread():
    """Tiny models gain nothing from threads, and OpenMP spin-waiting on a shared 2-core machine
    made this directory 10x slower; restored after each test so other directories are unaffected."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="session")
def models_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("models")


@pytest.fixture(scope="session")
def dpt_dir(models_dir: Path) -> Path:
    return random_weights.save_random_dpt(models_dir / "dpt-hybrid", hybrid=True)


@pytest.fixture(scope="session")
def dpt_vit_dir(models_dir: Path) -> Path:
    return random_weights.save_random_dpt(models_dir / "dpt-vit", hybrid=False)


@pytest.fixture(scope="session")
def depth_anything_dir(models_dir: Path) -> Path:
    return random_weights.save_random_depth_anything(models_dir / "depth-anything")


@pytest.fixture(scope="session")
def marigold_dir(models_dir: Path) -> Path:
    return random_weights.save_random_marigold(models_dir / "marigold")


@pytest.fixture(scope="session")
def sd_dir(models_dir: Path) -> Path:
    return random_weights.save_random_sd_inpaint(models_dir / "sd-inpaint")


@pytest.fixture(scope="session")
def raft_paths(models_dir: Path) -> dict[str, Path]:
    return {
        "large": random_weights.save_random_raft(models_dir / "raft-things.pth", "large"),
        "small": random_weights.save_random_raft(models_dir / "raft-small.pth", "small", seed=1),
    }


def _textured(n: int = 3, h: int = 32, w: int = 48, seed: int = 0) -> np.ndarray:
    """(n, h, w, 3) uint8: smooth random texture (blurred noise), different per frame."""
    rng = np.random.default_rng(seed)
    noise = rng.uniform(0, 255, size=(n, h, w, 3)).astype(np.float32)
    blurred = np.stack([cv2.GaussianBlur(f, (0, 0), 1.5) for f in noise])
    lo, hi = blurred.min(), blurred.max()
    return ((blurred - lo) / (hi - lo) * 255).round().astype(np.uint8)


@pytest.fixture
def textured():
    """The texture factory: ``textured(n, h, w, seed)`` -> (n, h, w, 3) uint8."""
    return _textured


@pytest.fixture
def frames() -> np.ndarray:
    """(3, 32, 48, 3) uint8 textured frames."""
    return _textured()
