"""The missing-weights error and the documentation it points to."""

from __future__ import annotations

from pathlib import Path

import pytest

from evaluation.metrics import WEIGHT_FILES, MissingMetricWeightsError
from evaluation.metrics.weights import require_file

DOCS = Path(__file__).resolve().parents[3] / "docs" / "metrics.md"


def test_docs_weights_section_lists_every_file_and_url() -> None:
    text = DOCS.read_text()
    assert "\n## Weights\n" in text
    section = text.split("\n## Weights\n", 1)[1]
    for weight_file in WEIGHT_FILES.values():
        assert weight_file.name in section and weight_file.url in section


def test_require_file(tmp_path: Path) -> None:
    present = tmp_path / "alex.pth"
    present.write_bytes(b"x")
    assert require_file(present, metric="LPIPS", official_name="alex.pth") == present
    with pytest.raises(MissingMetricWeightsError) as info:
        require_file(tmp_path, metric="LPIPS (alex)", official_name="alex.pth")  # a folder
    text = str(info.value)
    assert text.startswith(
        f"LPIPS (alex) needs the LPIPS v0.1 linear layers for AlexNet (alex.pth), but {tmp_path} "
    )
    assert WEIGHT_FILES["alex.pth"].url in text and "docs/metrics.md, section 'Weights'" in text
    assert "PSNR, SSIM, E_warp" in text  # says what still runs
    assert isinstance(info.value, FileNotFoundError)
