"""DVG geometry: pure, batched, device- and dtype-agnostic torch functions.

Conventions, stated once for the whole package:

- Tensors are channels-first: images (B, C, H, W), depth and masks (B, 1, H, W), flow
  (B, 2, H, W) with channel 0 = x (columns) and channel 1 = y (rows).
- Pixel centres sit at integer coordinates: pixel (row v, column u) is the image point
  (x = u, y = v); the image covers [-0.5, W - 0.5] x [-0.5, H - 0.5].
- Camera frame: OpenCV, x right, y down, z forward; depth is the z coordinate (not ray length).
  Intrinsics K = [[fx, s, cx], [0, fy, cy], [0, 0, 1]] (B, 3, 3); poses are 4x4 with
  X_b = R X_a + t, and world-to-camera matrices compose as T_src_to_tgt = T_tgt @ inv(T_src).
- Flow maps pixel p of one frame to p + flow(p) in another.
- Stereo: the target (right) eye sits ``baseline`` to the right of the source (left) eye with the
  same intrinsics and orientation; a point of disparity d = fx * baseline / Z at source x appears
  at x - d in the target view, i.e. the source -> target flow is (-d, 0).
- Masks: True / 1 = occluded (invisible from the other view or frame).

Every public function checks its arguments and raises ``ValueError`` naming the argument for a
wrong shape, an empty tensor, NaN / infinite values or non-positive depth.
"""

from dvg.geometry.camera import (
    Reprojection,
    pixel_grid,
    project,
    reprojection_flow,
    stereo_flow,
    stereo_pose,
    transform_points,
    unproject,
)
from dvg.geometry.depth import (
    depth_to_disparity,
    disparity_to_depth,
    inverse_depth_bounds,
    relative_inverse_depth_to_disparity,
)
from dvg.geometry.flow import (
    backward_warp,
    flow_in_bounds,
    forward_backward_consistency,
    motion_boundaries,
)
from dvg.geometry.rendering import (
    DEFAULT_ALPHA,
    BackwardRender,
    backward_render,
    forward_render,
    zbuffer_disparity,
)
from dvg.geometry.splatting import SplatResult, softmax_splat
from dvg.geometry.temporal import (
    ClipConfidence,
    clip_flow_confidence,
    mask_flicker,
    refine_occlusion_masks,
)

__all__ = [
    "DEFAULT_ALPHA",
    "BackwardRender",
    "ClipConfidence",
    "Reprojection",
    "SplatResult",
    "backward_render",
    "backward_warp",
    "clip_flow_confidence",
    "depth_to_disparity",
    "disparity_to_depth",
    "flow_in_bounds",
    "forward_backward_consistency",
    "forward_render",
    "inverse_depth_bounds",
    "mask_flicker",
    "motion_boundaries",
    "pixel_grid",
    "project",
    "refine_occlusion_masks",
    "relative_inverse_depth_to_disparity",
    "reprojection_flow",
    "softmax_splat",
    "stereo_flow",
    "stereo_pose",
    "transform_points",
    "unproject",
    "zbuffer_disparity",
]
