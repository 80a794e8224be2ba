"""Procedural scenes rendered by ray casting, with exact stereo, depth, occlusion and flow truth.

Used to test the geometry code (splatting, reprojection, occlusion masks, flow) against answers
that were never produced by warping. Everything is computed in float64 and returned as float32
(bool for masks) torch tensors; randomness comes only from the ``seed`` given to a scene builder.

Conventions (shared with ``dvg.geometry``):

- Camera frame OpenCV: x right, y down, z forward. Intrinsics
  ``K = [[fx, 0, cx], [0, fy, cy], [0, 0, 1]]`` (fx != fy and any cx, cy allowed).
- Pixel centres at integer coordinates: pixel (row v, col u) is the image point (x=u, y=v); the
  image covers ``[-0.5, W - 0.5] x [-0.5, H - 0.5]``; pixel (u, v) is cast along
  ``K^-1 [u, v, 1]``. Images are channels-first.
- depth is the z coordinate in the camera frame (not the ray length).
- Poses are ``world_to_camera`` 4x4 matrices: ``X_cam = R X_world + t``.
- Stereo: the rendered source camera is the left eye. The right eye has the same K and
  orientation, its centre at +baseline along the left camera's x axis
  (``X_right = X_left - [baseline, 0, 0]``), so ``disparity = fx * baseline / depth`` and a left
  pixel at x appears in the right view at ``x - disparity``.
- Flow ``(2, H, W)``, channel 0 = x, channel 1 = y: pixel p of frame t moves to
  ``p + flow_next(p)`` in frame t+1, the exact projection of the same surface point (moving
  objects carry it along), whether or not it is visible there.
"""

from dvg.synthetic.cameras import (
    CAMERA_PATHS,
    dolly_path,
    intrinsics,
    look_at,
    orbit_path,
    pan_path,
    static_path,
    truck_path,
)
from dvg.synthetic.io import write_clip
from dvg.synthetic.render import ClipRender, render_clip
from dvg.synthetic.scene import Box, Motion, Plane, RayHits, Scene, yaw_rotation
from dvg.synthetic.scenes import SCENES, ClipSetup, build_scene, render_scene
from dvg.synthetic.textures import CheckerTexture, ImageTexture, SinusoidTexture, Texture

__all__ = [
    "CAMERA_PATHS",
    "SCENES",
    "Box",
    "CheckerTexture",
    "ClipRender",
    "ClipSetup",
    "ImageTexture",
    "Motion",
    "Plane",
    "RayHits",
    "Scene",
    "SinusoidTexture",
    "Texture",
    "build_scene",
    "dolly_path",
    "intrinsics",
    "look_at",
    "orbit_path",
    "pan_path",
    "render_clip",
    "render_scene",
    "static_path",
    "truck_path",
    "write_clip",
    "yaw_rotation",
]
