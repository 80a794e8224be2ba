"""Preflight of a whole run: every missing model in one message, no network retries offline,
one reachability check per process."""

from __future__ import annotations

import time
import urllib.request
from pathlib import Path

import pytest

from dvg.backends import (
    BackendSpec,
    MissingWeightsError,
    PreflightError,
    preflight_weights,
    weights,
)
from dvg.backends.preflight import hub_reachable


@pytest.fixture(autouse=True)
def fresh_hub_state():
    """Each test finds out about the hub itself; the process state is restored after."""
    saved = dict(weights.HUB_STATE)
    weights.HUB_STATE["reachable"] = None
    yield
    weights.HUB_STATE.update(saved)


@pytest.fixture
def empty_cache(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf-home"))
    for name in (
        "HF_HUB_CACHE",
        "HUGGINGFACE_HUB_CACHE",
        "DVG_WEIGHTS_DIR",
        "TRANSFORMERS_OFFLINE",
    ):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.chdir(tmp_path)
    return tmp_path


def test_every_missing_model_is_named_in_one_message(empty_cache: Path) -> None:
    specs = {
        "depth": BackendSpec("dpt", model=str(empty_cache / "no-dpt")),
        "inpaint": BackendSpec("sd", model=str(empty_cache / "no-sd")),
        "flow": BackendSpec("raft"),
    }
    with pytest.raises(PreflightError) as err:
        preflight_weights(specs)
    message = str(err.value)
    assert message.startswith("3 models are missing")
    for needle in ("no-dpt", "no-sd", "raft-things.pth", "--depth-model", "--inpaint-model"):
        assert needle in message
    assert [e.kind for e in err.value.errors] == ["depth", "inpaint", "flow"]
    assert isinstance(err.value, MissingWeightsError)  # callers catching one error still work


def test_offline_hub_ids_fail_at_once_without_any_request(
    empty_cache: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setattr(
        urllib.request, "urlopen", lambda *a, **k: pytest.fail("no request may be made offline")
    )
    started = time.monotonic()
    with pytest.raises(PreflightError) as err:
        preflight_weights({"depth": BackendSpec("dpt"), "inpaint": BackendSpec("sd")})
    assert time.monotonic() - started < 2
    message = str(err.value)
    assert "'Intel/dpt-hybrid-midas' is not in the local Hugging Face cache" in message
    assert "'stabilityai/stable-diffusion-2-inpainting' is not in the local" in message
    assert "HF_HUB_OFFLINE=1 forbids" in message


def test_unreachable_hub_is_found_once_and_makes_loads_local_only(
    empty_cache: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.setenv("HF_ENDPOINT", "http://127.0.0.1:9")  # discard port: refused at once
    calls = []
    real = urllib.request.urlopen

    def counting(*args, **kwargs):
        calls.append(args)
        return real(*args, **kwargs)

    monkeypatch.setattr(urllib.request, "urlopen", counting)
    with pytest.raises(PreflightError) as err:
        preflight_weights({"depth": BackendSpec("depth-anything"), "inpaint": BackendSpec("sd")})
    assert len(calls) == 1
    assert str(err.value).count("cannot be reached from here") == 2
    assert weights.hub_offline()  # later loads pass local_files_only=True: no retry storm
    assert not hub_reachable()
    assert len(calls) == 1


def test_reachable_hub_leaves_the_download_to_load_time(
    empty_cache: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    weights.HUB_STATE["reachable"] = True
    preflight_weights({"depth": BackendSpec("depth-anything"), "flow": BackendSpec("dis")})
    assert not weights.hub_offline()
