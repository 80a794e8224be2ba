"""Registries and BackendSpec: names, lookup errors, registration, spec validation."""

from __future__ import annotations

import json

import pytest
import torch

from dvg.backends import (
    DEPTH_BACKENDS,
    FLOW_BACKENDS,
    INPAINT_BACKENDS,
    BackendSpec,
    DISFlow,
    DPTDepth,
    Registry,
    SidecarDepth,
    TeleaInpaint,
)


def test_registry_names() -> None:
    assert DEPTH_BACKENDS.names() == ["dpt", "depth-anything", "marigold", "sidecar"]
    assert INPAINT_BACKENDS.names() == ["telea", "sd"]
    assert FLOW_BACKENDS.names() == ["dis", "raft"]


def test_get_returns_the_class_and_its_name() -> None:
    assert DEPTH_BACKENDS.get("dpt") is DPTDepth
    assert DPTDepth.name == "dpt"
    assert SidecarDepth.name == "sidecar" and not SidecarDepth.needs_weights
    assert not TeleaInpaint.needs_weights and not DISFlow.needs_weights
    assert all(DEPTH_BACKENDS.get(n).needs_weights for n in ("dpt", "depth-anything", "marigold"))
    assert INPAINT_BACKENDS.get("sd").needs_weights and FLOW_BACKENDS.get("raft").needs_weights


@pytest.mark.parametrize(
    ("registry", "known"),
    [(DEPTH_BACKENDS, "dpt, depth-anything, marigold, sidecar"), (FLOW_BACKENDS, "dis, raft")],
)
def test_unknown_name_lists_known_names(registry: Registry, known: str) -> None:
    with pytest.raises(
        ValueError, match=f"unknown {registry.kind} backend 'midas'; known: {known}"
    ):
        registry.create(BackendSpec("midas"))


def test_register_sets_name_and_refuses_duplicates() -> None:
    registry: Registry[object] = Registry("test")

    @registry.register("a")
    class A:
        def __init__(self, spec: BackendSpec) -> None:
            self.spec = spec

    assert A.name == "a" and "a" in registry and registry.names() == ["a"]
    built = registry.create(BackendSpec("a", batch_size=3))
    assert isinstance(built, A) and built.spec.batch_size == 3
    with pytest.raises(ValueError, match="already registered"):
        registry.register("a")(type("B", (), {}))


def test_spec_validation() -> None:
    with pytest.raises(ValueError, match="dtype"):
        BackendSpec("dpt", dtype="fp16")
    with pytest.raises(ValueError, match="batch_size"):
        BackendSpec("dpt", batch_size=0)
    with pytest.raises(ValueError, match="name"):
        BackendSpec("")


def test_spec_to_dict_is_json_and_complete() -> None:
    spec = BackendSpec("sd", model="/w/sd", dtype="bfloat16", batch_size=4, options={"steps": 5})
    data = json.loads(json.dumps(spec.to_dict()))
    assert data == {
        "name": "sd",
        "model": "/w/sd",
        "device": "auto",
        "dtype": "bfloat16",
        "batch_size": 4,
        "options": {"steps": 5},
    }
    assert BackendSpec(**data) == spec


def test_spec_device_and_dtype_resolution() -> None:
    cpu = BackendSpec("dpt", device="cpu")
    assert cpu.torch_device() == torch.device("cpu")
    assert cpu.torch_dtype() == torch.float32
    assert BackendSpec("dpt").torch_dtype(torch.device("cuda")) == torch.float16
    assert BackendSpec("dpt", dtype="bfloat16").torch_dtype(torch.device("cpu")) == torch.bfloat16
    expected = "cuda" if torch.cuda.is_available() else "cpu"
    assert BackendSpec("dpt").torch_device().type == expected
