"""The paper-size random builders (benchmarks) have the published architectures: parameter
counts of the released checkpoints, and SVD's and SD2.1's spatial self-attentions pair 1:1."""

from __future__ import annotations

import pytest
import torch

from pipelines.model import paper_size
from pipelines.model.reference_attention import pair_reference_attention


def count(module: torch.nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


@pytest.mark.parametrize(
    ("build", "expected"),
    [
        (paper_size.svd_unet, paper_size.SVD_UNET_PARAMETERS),
        (paper_size.svd_vae, paper_size.SVD_VAE_PARAMETERS),
        (paper_size.svd_image_encoder, paper_size.CLIP_VIT_H_VISION_PARAMETERS),
        (paper_size.sd21_unet, paper_size.SD21_UNET_PARAMETERS),
    ],
)
def test_parameter_counts_are_the_released_checkpoints(build, expected):
    with torch.device("meta"):  # shapes only: no memory, no init time
        assert count(build()) == expected


def test_svd_and_sd21_unets_pair_for_reference_attention():
    with torch.device("meta"):
        pairs = pair_reference_attention(paper_size.svd_unet(), paper_size.sd21_unet())
    assert len(pairs) == 16  # SD2.1's transformer blocks: 2 + 2 + 2 down, 1 mid, 3 + 3 + 3 up
