"""RAFT optical flow in plain torch, loading the official princeton-vl/RAFT checkpoints.

Reference: Z. Teed and J. Deng, "RAFT: Recurrent All-Pairs Field Transforms for Optical Flow",
ECCV 2020 (https://github.com/princeton-vl/RAFT). Module names and the state-dict key layout
follow the official code exactly (``fnet``, ``cnet``, ``update_block.{encoder, gru, flow_head,
mask}``, the ``norm3`` / ``downsample.1`` double registration), so the official checkpoints
``raft-things.pth`` (variant "large") and ``raft-small.pth`` (variant "small") load with
``strict=True`` after their ``module.`` (``nn.DataParallel``) prefix is stripped.

Conventions: images are RGB float (B, 3, H, W) in [0, 255]; flow is (B, 2, H, W) in pixels with
channel 0 = x, and maps pixel p of ``image1`` to p + flow(p) in ``image2``.

Two reproduced quirks of the official code: the correlation lookup offsets are stacked as
(dy, dx) but added to (x, y) coordinates, and the recurrent coordinates are detached at the start
of every iteration (gradients reach the inputs through the features and the last update).

One deliberate extension: for inputs under 128 pixels a coarse correlation level has size 1 or 0,
where the official code divides by zero or fails in ``avg_pool2d``. Here a size-1 level is sampled
with the same zero-padded bilinear rule in pixel coordinates and an empty level contributes zeros.
Results for larger inputs are unchanged.
"""

from dvg.models.raft.correlation import (
    bilinear_upsample8,
    convex_upsample,
    coords_grid,
    correlation_pyramid,
    lookup_correlation,
    pad_to_multiple_of_8,
    unpad,
)
from dvg.models.raft.model import RAFT, RAFTConfig

__all__ = [
    "RAFT",
    "RAFTConfig",
    "bilinear_upsample8",
    "convex_upsample",
    "coords_grid",
    "correlation_pyramid",
    "lookup_correlation",
    "pad_to_multiple_of_8",
    "unpad",
]
