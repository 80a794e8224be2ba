"""Shared test configuration: slow-test opt-in, devices and per-dtype tolerances."""

from __future__ import annotations

import pytest
import torch

# Per-dtype tolerances (kornia style): comparisons against hand-computed or float64 results.
TOLERANCE = {torch.float16: 1e-2, torch.bfloat16: 2e-2, torch.float32: 1e-5, torch.float64: 1e-10}


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption("--runslow", action="store_true", help="run tests marked slow")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if config.getoption("--runslow"):
        return
    skip = pytest.mark.skip(reason="slow: pass --runslow to run")
    for item in items:
        if "slow" in item.keywords:
            item.add_marker(skip)


DEVICES = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])


@pytest.fixture(params=DEVICES)
def device(request: pytest.FixtureRequest) -> torch.device:
    return torch.device(request.param)


@pytest.fixture(params=[torch.float32, torch.float64])
def dtype(request: pytest.FixtureRequest) -> torch.dtype:
    return request.param


class PicklePayload:
    """Unpickling this object creates ``marker``: proof that a loader ran pickled code."""

    def __init__(self, marker) -> None:
        self.marker = str(marker)

    def __reduce__(self):
        return (open, (self.marker, "w"))


@pytest.fixture
def pickle_payload(tmp_path):
    """``(payload, marker)``: plant ``payload`` in a file (``pickle.dumps``, ``torch.save``,
    ``np.save(..., allow_pickle=True)``); a safe loader must leave ``marker`` absent."""
    marker = tmp_path / "payload-ran"
    return PicklePayload(marker), marker
