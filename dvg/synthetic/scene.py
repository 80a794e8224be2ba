"""Scene primitives (planes, boxes), their rigid motion, and exact nearest-hit ray casting.

Every primitive lives in its own object frame, placed in the world by a rigid pose
``X_world = R X_object + c`` that may change per frame (``Motion``). Rays are intersected in the
object frame, so a hit is recorded as (primitive index, object-frame point): that is all that is
needed to shade it and to follow the same surface point to another frame (exact flow).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import torch

from dvg.synthetic.textures import Texture

_DTYPE = torch.float64
_T_MIN = 1e-9  # nearest admissible hit along a ray (rays start at camera centres, off surfaces)


def _vec3(values: Sequence[float] | torch.Tensor, name: str) -> torch.Tensor:
    tensor = torch.as_tensor(values, dtype=_DTYPE)
    if tensor.shape != (3,):
        raise ValueError(f"{name} must have shape (3,), got {tuple(tensor.shape)}")
    return tensor


def yaw_rotation(angle: float) -> torch.Tensor:
    """Rotation by ``angle`` radians about the world y axis (vertical; y points down).

    Returns: (3, 3) float64. A positive angle turns +z towards +x (a camera pans right).
    """
    c, s = math.cos(angle), math.sin(angle)
    return torch.tensor([[c, 0.0, s], [0.0, 1.0, 0.0], [-s, 0.0, c]], dtype=_DTYPE)


@dataclass(frozen=True)
class Motion:
    """Per-frame rigid motion of a primitive: at frame f its pose is
    ``R_f = yaw_rotation(yaw_per_frame * f) R_0`` and ``c_f = c_0 + f * velocity``, i.e. it
    yaws about its own origin and translates by ``velocity`` world units per frame."""

    velocity: tuple[float, float, float] = (0.0, 0.0, 0.0)
    yaw_per_frame: float = 0.0


@dataclass(frozen=True, eq=False, kw_only=True)
class _Primitive:
    texture: Texture
    motion: Motion | None = None

    def base_pose(self) -> tuple[torch.Tensor, torch.Tensor]:
        raise NotImplementedError

    def pose(self, frame: int) -> tuple[torch.Tensor, torch.Tensor]:
        """Object-to-world rotation (3, 3) and origin (3,) at ``frame``."""
        rotation, origin = self.base_pose()
        if self.motion is None:
            return rotation, origin
        rotation = yaw_rotation(self.motion.yaw_per_frame * frame) @ rotation
        return rotation, origin + frame * torch.tensor(self.motion.velocity, dtype=_DTYPE)

    def intersect_local(self, origin: torch.Tensor, direction: torch.Tensor) -> torch.Tensor:
        """Ray parameters (N,) of the first hit in the object frame, ``inf`` where missed."""
        raise NotImplementedError

    def texture_coords(self, local: torch.Tensor) -> torch.Tensor:
        """Object-frame surface points (N, 3) -> texture coordinates (N, 2)."""
        raise NotImplementedError

    def normals(self, local: torch.Tensor) -> torch.Tensor:
        """Object-frame surface points (N, 3) -> object-frame unit normals (N, 3)."""
        raise NotImplementedError


@dataclass(frozen=True, eq=False, kw_only=True)
class Plane(_Primitive):
    """A plane through ``origin`` spanned by orthonormal ``axis_u`` and ``axis_v``.

    ``half_extent=(hu, hv)`` makes it the rectangle ``|s| <= hu, |t| <= hv`` in the in-plane
    coordinates ``(s, t)``, which are also its texture coordinates; ``None`` makes it infinite.
    Planes are two-sided.
    """

    origin: Sequence[float] | torch.Tensor
    axis_u: Sequence[float] | torch.Tensor = (1.0, 0.0, 0.0)
    axis_v: Sequence[float] | torch.Tensor = (0.0, 1.0, 0.0)
    half_extent: tuple[float, float] | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "origin", _vec3(self.origin, "origin"))
        object.__setattr__(self, "axis_u", _vec3(self.axis_u, "axis_u"))
        object.__setattr__(self, "axis_v", _vec3(self.axis_v, "axis_v"))
        gram = torch.stack([self.axis_u, self.axis_v]) @ torch.stack([self.axis_u, self.axis_v]).T
        if not torch.allclose(gram, torch.eye(2, dtype=_DTYPE), atol=1e-9):
            raise ValueError("axis_u and axis_v must be orthogonal unit vectors")

    def base_pose(self) -> tuple[torch.Tensor, torch.Tensor]:
        normal = torch.linalg.cross(self.axis_u, self.axis_v)
        return torch.stack([self.axis_u, self.axis_v, normal], dim=1), self.origin

    def intersect_local(self, origin: torch.Tensor, direction: torch.Tensor) -> torch.Tensor:
        dz = direction[..., 2]
        parallel = dz == 0
        t = -origin[..., 2] / torch.where(parallel, 1.0, dz)
        hit = ~parallel & (t > _T_MIN)
        if self.half_extent is not None:
            point = origin[..., :2] + t[:, None] * direction[:, :2]
            hit &= point[:, 0].abs() <= self.half_extent[0]
            hit &= point[:, 1].abs() <= self.half_extent[1]
        return torch.where(hit, t, torch.inf)

    def texture_coords(self, local: torch.Tensor) -> torch.Tensor:
        return local[:, :2]

    def normals(self, local: torch.Tensor) -> torch.Tensor:
        return torch.tensor([0.0, 0.0, 1.0], dtype=_DTYPE).expand_as(local)


_FACE_AXES = torch.tensor([[1, 2], [2, 0], [0, 1]])
_FACE_SHIFT = 17.0  # texture shift between the six faces, so that they do not look alike


@dataclass(frozen=True, eq=False, kw_only=True)
class Box(_Primitive):
    """A box ``|x_k| <= half_size_k`` in its own frame, posed by ``rotation`` (object-to-world)
    and ``center``. A face whose normal is object axis k is textured with coordinates
    ``(x_{k+1}, x_{k+2})`` (indices mod 3), shifted per face. A ray starting inside the box hits
    its exit face, so a large box can serve as a room that every ray hits."""

    center: Sequence[float] | torch.Tensor
    half_size: Sequence[float] | torch.Tensor
    rotation: torch.Tensor | None = None  # (3, 3) object-to-world; None: identity

    def __post_init__(self) -> None:
        object.__setattr__(self, "center", _vec3(self.center, "center"))
        object.__setattr__(self, "half_size", _vec3(self.half_size, "half_size"))
        rotation = torch.eye(3, dtype=_DTYPE) if self.rotation is None else self.rotation
        rotation = torch.as_tensor(rotation, dtype=_DTYPE)
        if rotation.shape != (3, 3) or not torch.allclose(
            rotation @ rotation.T, torch.eye(3, dtype=_DTYPE), atol=1e-9
        ):
            raise ValueError("rotation must be a (3, 3) rotation matrix")
        if (self.half_size <= 0).any():
            raise ValueError(f"half_size must be positive, got {self.half_size.tolist()}")
        object.__setattr__(self, "rotation", rotation)

    def base_pose(self) -> tuple[torch.Tensor, torch.Tensor]:
        return self.rotation, self.center

    def intersect_local(self, origin: torch.Tensor, direction: torch.Tensor) -> torch.Tensor:
        # Slab test; a zero direction component becomes tiny so that the slab bounds stay ordered.
        direction = torch.where(direction == 0, 1e-300, direction)
        t1 = (-self.half_size - origin) / direction
        t2 = (self.half_size - origin) / direction
        t_near = torch.minimum(t1, t2).amax(dim=-1)
        t_far = torch.maximum(t1, t2).amin(dim=-1)
        hit = (t_far >= t_near) & (t_far > _T_MIN)
        t = torch.where(t_near > _T_MIN, t_near, t_far)
        return torch.where(hit, t, torch.inf)

    def texture_coords(self, local: torch.Tensor) -> torch.Tensor:
        axis = (local.abs() / self.half_size).argmax(dim=1)
        coords = local.gather(1, _FACE_AXES[axis])
        positive = local.gather(1, axis[:, None])[:, 0] > 0
        face = 2 * axis + positive.long()
        return coords + _FACE_SHIFT * face[:, None]

    def normals(self, local: torch.Tensor) -> torch.Tensor:
        axis = (local.abs() / self.half_size).argmax(dim=1)
        sign = torch.sign(local.gather(1, axis[:, None]))
        return torch.zeros_like(local).scatter(1, axis[:, None], sign)


Primitive = Plane | Box


@dataclass(frozen=True)
class RayHits:
    """Nearest hits of N rays ``X = origin + t * direction``.

    Attributes:
        t: (N,) float64 ray parameter, ``inf`` where nothing was hit.
        index: (N,) int64 index of the primitive hit, -1 where nothing was hit.
        local: (N, 3) float64 hit point in the hit primitive's object frame (0 where missed).
    """

    t: torch.Tensor
    index: torch.Tensor
    local: torch.Tensor

    @property
    def missed(self) -> torch.Tensor:
        return self.index < 0


@dataclass(frozen=True, eq=False)
class Scene:
    """A set of textured primitives, some of which may move from frame to frame.

    With ``light`` (a world direction towards a distant light) colours are scaled by
    ``ambient + (1 - ambient) |n . l|`` (two-sided Lambert): view-independent, so both eyes and
    all frames still see a static surface point in the same colour. ``None``: unlit textures.
    """

    primitives: tuple[Primitive, ...]
    light: tuple[float, float, float] | None = None
    ambient: float = 0.45

    def __post_init__(self) -> None:
        if not self.primitives:
            raise ValueError("a scene needs at least one primitive")

    def cast(self, origin: torch.Tensor, direction: torch.Tensor, frame: int) -> RayHits:
        """Nearest hit of rays ``origin + t direction`` with the scene posed at ``frame``.

        Args:
            origin: (3,) or (N, 3) float64 ray origins in world coordinates.
            direction: (N, 3) float64 ray directions (any length) in world coordinates.
        """
        n = direction.shape[0]
        best_t = torch.full((n,), torch.inf, dtype=_DTYPE)
        best_index = torch.full((n,), -1, dtype=torch.long)
        local_rays = []
        for i, primitive in enumerate(self.primitives):
            rotation, center = primitive.pose(frame)
            local_origin = (origin - center) @ rotation  # R^T (o - c), row-vector form
            local_direction = direction @ rotation
            local_rays.append((local_origin, local_direction))
            t = primitive.intersect_local(local_origin, local_direction)
            closer = t < best_t
            best_t = torch.where(closer, t, best_t)
            best_index = torch.where(closer, i, best_index)
        best_local = torch.zeros(n, 3, dtype=_DTYPE)
        for i, (local_origin, local_direction) in enumerate(local_rays):
            mask = best_index == i
            if mask.any():
                o = local_origin if local_origin.ndim == 1 else local_origin[mask]
                best_local[mask] = o + best_t[mask, None] * local_direction[mask]
        return RayHits(best_t, best_index, best_local)

    def shade(self, hits: RayHits, frame: int) -> torch.Tensor:
        """Colours (N, 3) float64 in [0, 1] at the hit points (0 where missed) at ``frame``."""
        colors = torch.zeros(hits.index.shape[0], 3, dtype=_DTYPE)
        light = None if self.light is None else _vec3(self.light, "light")
        for i, primitive in enumerate(self.primitives):
            mask = hits.index == i
            if not mask.any():
                continue
            local = hits.local[mask]
            color = primitive.texture(primitive.texture_coords(local))
            if light is not None:
                rotation, _ = primitive.pose(frame)
                cosine = (primitive.normals(local) @ rotation.T @ (light / light.norm())).abs()
                color = color * (self.ambient + (1 - self.ambient) * cosine[:, None])
            colors[mask] = color
        return colors.clamp(0.0, 1.0)

    def to_world(self, index: torch.Tensor, local: torch.Tensor, frame: int) -> torch.Tensor:
        """Object-frame points (N, 3) of primitives ``index`` (N,) -> world points (N, 3) with
        the scene posed at ``frame`` (so moving primitives carry their points along)."""
        world = torch.full_like(local, torch.nan)
        for i, primitive in enumerate(self.primitives):
            mask = index == i
            if mask.any():
                rotation, center = primitive.pose(frame)
                world[mask] = local[mask] @ rotation.T + center
        return world
