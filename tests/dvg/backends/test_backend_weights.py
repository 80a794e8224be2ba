"""Weights resolution: local paths, $DVG_WEIGHTS_DIR, the offline hub cache, MissingWeightsError."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from dvg.backends import (
    DEPTH_BACKENDS,
    FLOW_BACKENDS,
    INPAINT_BACKENDS,
    BackendSpec,
    MissingWeightsError,
    check_weights,
    weights,
)
from dvg.backends.weights import hub_cache_dir, looks_like_path


@pytest.fixture
def offline(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    """HF_HUB_OFFLINE=1 with an empty HF_HOME: nothing is cached, nothing can download."""
    home = tmp_path / "hf-home"
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_HOME", str(home))
    monkeypatch.delenv("HF_HUB_CACHE", raising=False)
    monkeypatch.delenv("HUGGINGFACE_HUB_CACHE", raising=False)
    monkeypatch.delenv("DVG_WEIGHTS_DIR", raising=False)
    return home


def _assert_guides(message: str, flag: str, alternative: str) -> None:
    assert flag in message
    assert alternative in message
    assert "--preset offline" in message


def test_missing_local_path_error_names_path_and_alternatives(tmp_path: Path) -> None:
    missing = str(tmp_path / "weights" / "dpt-hybrid")
    with pytest.raises(MissingWeightsError) as err:
        check_weights("depth", BackendSpec("dpt", model=missing))
    message = str(err.value)
    assert missing in message and "does not exist" in message
    assert f"huggingface-cli download Intel/dpt-hybrid-midas --local-dir {missing}" in message
    _assert_guides(message, "--depth-model PATH", "--depth sidecar")
    assert err.value.kind == "depth" and err.value.backend == "dpt" and err.value.model == missing
    with pytest.raises(MissingWeightsError, match="does not exist"):
        DEPTH_BACKENDS.create(BackendSpec("dpt", model=missing))


def test_folder_without_saved_model_is_refused(tmp_path: Path) -> None:
    with pytest.raises(MissingWeightsError, match=r"without model_index\.json"):
        check_weights("inpaint", BackendSpec("sd", model=str(tmp_path)))
    with pytest.raises(MissingWeightsError, match=r"without config\.json"):
        DEPTH_BACKENDS.create(BackendSpec("depth-anything", model=str(tmp_path)))


def test_offline_hub_id_not_cached(offline: Path) -> None:
    with pytest.raises(MissingWeightsError) as err:
        check_weights("depth", BackendSpec("dpt"))
    message = str(err.value)
    assert "'Intel/dpt-hybrid-midas'" in message
    assert "HF_HUB_OFFLINE=1" in message and str(offline / "hub") in message
    assert "huggingface-cli download Intel/dpt-hybrid-midas" in message
    _assert_guides(message, "--depth-model PATH", "--depth sidecar")


@pytest.mark.parametrize(
    ("registry", "spec", "model", "flag", "alternative"),
    [
        (
            DEPTH_BACKENDS,
            BackendSpec("dpt"),
            "Intel/dpt-hybrid-midas",
            "--depth-model",
            "--depth sidecar",
        ),
        (
            INPAINT_BACKENDS,
            BackendSpec("sd"),
            "stabilityai/stable-diffusion-2-inpainting",
            "--inpaint-model",
            "--inpaint telea",
        ),
    ],
)
def test_offline_hub_id_loader_error(
    offline: Path, registry, spec: BackendSpec, model: str, flag: str, alternative: str
) -> None:
    # The loader itself (transformers / diffusers) fails; it must surface as the same error.
    with pytest.raises(MissingWeightsError) as err:
        registry.create(spec)
    message = str(err.value)
    assert f"'{model}' is not in the local Hugging Face cache" in message
    assert f"huggingface-cli download {model}" in message
    _assert_guides(message, flag, alternative)
    assert isinstance(err.value.__cause__, OSError)


def test_offline_hub_id_loads_from_the_cache(offline: Path, dpt_dir: Path) -> None:
    # A hub snapshot laid out as huggingface_hub stores it: refs/main -> snapshots/<commit>/.
    repo = hub_cache_dir() / "models--Intel--dpt-hybrid-midas"
    commit = "0" * 40
    (repo / "refs").mkdir(parents=True)
    (repo / "refs" / "main").write_text(commit)
    shutil.copytree(dpt_dir, repo / "snapshots" / commit)
    check_weights("depth", BackendSpec("dpt"))
    backend = DEPTH_BACKENDS.create(BackendSpec("dpt", device="cpu"))
    assert backend.model_id == "Intel/dpt-hybrid-midas"


def test_online_uncached_hub_id_passes_preflight(monkeypatch: pytest.MonkeyPatch, tmp_path: Path):
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.delenv("TRANSFORMERS_OFFLINE", raising=False)
    monkeypatch.setenv("HF_HOME", str(tmp_path))
    monkeypatch.setitem(weights.HUB_STATE, "reachable", True)  # as if the hub answered
    check_weights("depth", BackendSpec("depth-anything"))  # the download happens at load time


def test_raft_missing_points_to_princeton_vl(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("DVG_WEIGHTS_DIR", raising=False)
    for call in (
        lambda: check_weights("flow", BackendSpec("raft")),
        lambda: FLOW_BACKENDS.create(BackendSpec("raft")),
    ):
        with pytest.raises(MissingWeightsError) as err:
            call()
        message = str(err.value)
        assert "'raft-things.pth' does not exist" in message
        assert "https://github.com/princeton-vl/RAFT" in message and "raft-small.pth" in message
        assert "huggingface-cli" not in message
        _assert_guides(message, "--flow-model PATH", "--flow dis")


def test_raft_found_in_weights_dir(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, raft_paths: dict[str, Path]
) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("DVG_WEIGHTS_DIR", str(raft_paths["large"].parent))
    check_weights("flow", BackendSpec("raft"))
    backend = FLOW_BACKENDS.create(BackendSpec("raft", device="cpu"))
    assert backend.model_id == str(raft_paths["large"])
    assert backend.model.config.variant == "large"


@pytest.mark.parametrize(
    ("kind", "name"), [("depth", "sidecar"), ("inpaint", "telea"), ("flow", "dis")]
)
def test_weights_free_backends_always_pass(offline: Path, kind: str, name: str) -> None:
    check_weights(kind, BackendSpec(name, model="/nowhere/at/all"))


def test_check_weights_rejects_unknown_kind_and_name() -> None:
    with pytest.raises(ValueError, match="kind must be one of"):
        check_weights("segmentation", BackendSpec("dpt"))
    with pytest.raises(ValueError, match="unknown depth backend 'zoe'"):
        check_weights("depth", BackendSpec("zoe"))


@pytest.mark.parametrize(
    ("model", "is_path"),
    [
        ("Intel/dpt-hybrid-midas", False),
        ("stabilityai/stable-diffusion-2-inpainting", False),
        ("/abs/dir", True),
        ("./dpt", True),
        ("~/weights/dpt", True),
        ("weights/intel/dpt", True),
        ("raft-things.pth", True),
    ],
)
def test_looks_like_path(model: str, is_path: bool) -> None:
    assert looks_like_path(model) is is_path
