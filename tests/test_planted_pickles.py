"""Model files received from elsewhere with a planted pickle payload: every loader of the project
refuses them with an error naming the file, and the payload never runs. (Checkpoints, sidecars
and shard members have their own such tests next to their packages.)"""

from __future__ import annotations

import pickle
import shutil

import pytest
import torch

from dvg.backends import DEPTH_BACKENDS, BackendSpec, MissingWeightsError
from dvg.backends.random_weights import save_random_dpt
from dvg.models.raft import RAFT
from evaluation.metrics.fvd import FVD
from evaluation.metrics.trunks import load_state_dict_file


@pytest.fixture
def planted(tmp_path, pickle_payload):
    """A ``.pth`` made by ``torch.save`` whose unpickling would run the payload."""
    payload, marker = pickle_payload
    path = tmp_path / "received.pth"
    torch.save({"module.fnet.conv1.weight": payload}, path)
    return path, marker


def test_raft_checkpoint(planted):
    path, marker = planted
    with pytest.raises(ValueError, match=r"received\.pth: cannot read as a PyTorch state dict"):
        RAFT.from_checkpoint(path)
    assert not marker.exists()


def test_lpips_trunk_weights(planted):
    path, marker = planted
    with pytest.raises(ValueError, match=r"received\.pth: cannot read"):
        load_state_dict_file(path)
    assert not marker.exists()


def test_fvd_detector(planted, tmp_path):
    path, marker = planted
    detector = tmp_path / "i3d_torchscript.pt"
    shutil.copy(path, detector)
    with pytest.raises(ValueError, match=r"i3d_torchscript\.pt: cannot load as a TorchScript"):
        FVD.from_file(detector)
    raw = tmp_path / "raw.pt"
    raw.write_bytes(pickle.dumps(marker))  # not even a zip archive
    with pytest.raises(ValueError, match=r"raw\.pt"):
        FVD.from_file(raw)
    assert not marker.exists()


def test_hub_style_model_folder_with_pickled_weights(tmp_path, pickle_payload):
    """transformers / diffusers folders (depth, inpainting, SVD, SD2.1 components) load .bin
    weights with torch.load(weights_only=True): a payload in pytorch_model.bin never runs."""
    payload, marker = pickle_payload
    folder = save_random_dpt(tmp_path / "dpt")
    for weights in folder.glob("*.safetensors"):
        weights.unlink()
    torch.save({"dpt.embeddings.cls_token": payload}, folder / "pytorch_model.bin")
    with pytest.raises(MissingWeightsError, match=r"dpt.*could not be loaded \(UnpicklingError"):
        DEPTH_BACKENDS.create(BackendSpec("dpt", model=str(folder)))
    assert not marker.exists()
