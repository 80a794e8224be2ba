"""Flow backends: DIS sign convention on a known shift; RAFT through the official loader."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from dvg.backends import FLOW_BACKENDS, BackendSpec
from dvg.models.raft import RAFT


def _shifted_pair(textured, dx: int = 3) -> tuple[np.ndarray, np.ndarray]:
    """source and target = source moved by +dx pixels in x (content moves right)."""
    source = textured(2, 64, 96, seed=3)
    target = np.roll(source, dx, axis=2)
    return source, target


def test_dis_flow_points_from_source_to_target(textured) -> None:
    source, target = _shifted_pair(textured, dx=3)
    flow = FLOW_BACKENDS.create(BackendSpec("dis")).flow(source, target)
    assert flow.shape == (2, 2, 64, 96) and flow.dtype == np.float32
    inner = flow[:, :, 8:-8, 8:-8]  # away from the wrapped border
    assert np.median(inner[:, 0]) == pytest.approx(3.0, abs=0.25)
    assert np.median(inner[:, 1]) == pytest.approx(0.0, abs=0.25)
    backward = FLOW_BACKENDS.create(BackendSpec("dis")).flow(target, source)
    assert np.median(backward[:, 0, 8:-8, 8:-8]) == pytest.approx(-3.0, abs=0.25)


def test_dis_validation() -> None:
    with pytest.raises(ValueError, match="preset"):
        FLOW_BACKENDS.create(BackendSpec("dis", options={"preset": "slow"}))
    dis = FLOW_BACKENDS.create(BackendSpec("dis", options={"preset": "fast"}))
    assert dis.model_id == "opencv-dis-fast"
    a = np.zeros((1, 16, 16, 3), np.uint8)
    with pytest.raises(ValueError, match="shapes differ"):
        dis.flow(a, np.zeros((1, 16, 24, 3), np.uint8))
    with pytest.raises(ValueError, match="source must be"):
        dis.flow(a[..., 0], a[..., 0])


@pytest.mark.parametrize("variant", ["large", "small"])
def test_raft_matches_the_module_it_wraps(
    raft_paths: dict[str, Path], variant: str, frames: np.ndarray
) -> None:
    path = raft_paths[variant]
    assert all(k.startswith("module.") for k in torch.load(path, weights_only=True))
    spec = BackendSpec("raft", model=str(path), device="cpu", batch_size=2, options={"iters": 3})
    backend = FLOW_BACKENDS.create(spec)
    assert backend.model.config.variant == variant and backend.model_id == str(path)
    source, target = frames, np.roll(frames, 2, axis=2)
    flow = backend.flow(source, target)
    assert flow.shape == (3, 2, 32, 48) and flow.dtype == np.float32
    reference = RAFT.from_checkpoint(path).eval()
    to_tensor = lambda a: torch.from_numpy(a).permute(0, 3, 1, 2).float()  # noqa: E731
    with torch.no_grad():
        expected = reference(to_tensor(source), to_tensor(target), iters=3).numpy()
    np.testing.assert_allclose(flow, expected, rtol=1e-4, atol=1e-4)


def test_raft_iters_and_variant_options(raft_paths: dict[str, Path], frames: np.ndarray):
    path = str(raft_paths["small"])
    one = FLOW_BACKENDS.create(BackendSpec("raft", model=path, device="cpu", options={"iters": 1}))
    two = FLOW_BACKENDS.create(BackendSpec("raft", model=path, device="cpu", options={"iters": 2}))
    target = np.roll(frames, 1, axis=1)
    assert not np.allclose(one.flow(frames, target), two.flow(frames, target))
    with pytest.raises(ValueError, match="does not match RAFT variant 'large'"):
        FLOW_BACKENDS.create(BackendSpec("raft", model=path, options={"variant": "large"}))
    with pytest.raises(ValueError, match="iters"):
        FLOW_BACKENDS.create(BackendSpec("raft", model=path, options={"iters": 0}))


def test_raft_refuses_an_incomplete_checkpoint(raft_paths: dict[str, Path], tmp_path: Path):
    state = torch.load(raft_paths["large"], weights_only=True)
    state.pop("module.update_block.mask.2.bias")
    broken = tmp_path / "raft-broken.pth"
    torch.save(state, broken)
    with pytest.raises(ValueError, match="1 missing keys"):
        FLOW_BACKENDS.create(BackendSpec("raft", model=str(broken), device="cpu"))
