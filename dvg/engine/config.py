"""Configuration of `dvg build`: one frozen dataclass per stage, presets, TOML loading, hashing.

The resolved configuration is written into every shard's done marker and every sample's
metadata (as ``config_hash``), so a dataset always says how it was made.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Any, Literal

import tomllib

from dvg.backends import BackendSpec
from dvg.engine.threads import check_threads
from dvg.geometry.rendering import DEFAULT_ALPHA
from dvg.video import VideoConfig

StereoMode = Literal["relative", "metric"]


@dataclass(frozen=True)
class StereoConfig:
    """How depth becomes the disparity of the sampled stereo viewpoint (paper 3.2).

    ``relative`` (any depth model): clip-level normalised inverse depth n in [0, 1] maps to
    ``d = span * (n - convergence)`` with ``span = max_disparity * W``, ``max_disparity`` drawn
    per clip from the range. ``metric`` (metric depth with known focal, e.g. sidecar z-depth with
    a camera file): ``d = f * baseline / z`` with ``baseline`` drawn per clip from its range.
    The draw is seeded by ``seed`` and the sample key, so reruns give the same data.
    """

    mode: StereoMode = "relative"
    max_disparity: tuple[float, float] = (0.02, 0.05)
    """Disparity span as a fraction of the frame width (relative mode)."""
    baseline: tuple[float, float] = (0.06, 0.065)
    """Stereo baseline in scene units, e.g. metres (metric mode)."""
    convergence: float = 0.0
    """Normalised inverse depth of the zero-parallax plane (relative mode): 0 puts the far end
    on the screen, so every disparity is >= 0."""
    depth_quantiles: tuple[float, float] = (0.02, 0.98)
    """Quantiles over the whole clip that map to the far and near ends (relative mode)."""
    alpha: float = DEFAULT_ALPHA
    """Softmax-splatting importance per pixel of disparity (Z = alpha * d); the default is
    measured in docs/benchmarks.md ("Choosing the splatting importance alpha")."""
    seed: int = 0

    def __post_init__(self) -> None:
        if self.mode not in ("relative", "metric"):
            raise ValueError(f"stereo.mode must be 'relative' or 'metric', got {self.mode!r}")
        for name in ("max_disparity", "baseline"):
            low, high = getattr(self, name)
            if not 0 <= low <= high:
                raise ValueError(f"stereo.{name} must be a range 0 <= low <= high, got {low, high}")
        low, high = self.depth_quantiles
        if not 0 <= low < high <= 1:
            raise ValueError(
                f"stereo.depth_quantiles must satisfy 0 <= low < high <= 1, got {low, high}"
            )
        if not 0 <= self.convergence <= 1:
            raise ValueError(f"stereo.convergence must be in [0, 1], got {self.convergence}")
        if self.alpha <= 0:
            raise ValueError(f"stereo.alpha must be > 0, got {self.alpha}")


@dataclass(frozen=True)
class MaskConfig:
    """Occlusion masks: backward rendering, then Eq. 2 refinement across frames."""

    refine: bool = True
    motion_boundary: bool = False
    """Also distrust flow at Lai et al. motion boundaries when computing the confidence C."""
    hole_threshold: float = 0.5


@dataclass(frozen=True)
class OutputConfig:
    """Shard layout: inputs are grouped in sorted order, ``videos_per_group`` per shard."""

    videos_per_group: int = 8
    image_format: Literal["jpg", "png"] = "jpg"
    jpeg_quality: int = 95
    keep_disparity: bool = False
    """Also store x1's disparity (16-bit PNG per frame); the trainer does not read it."""

    def __post_init__(self) -> None:
        if self.videos_per_group < 1:
            raise ValueError(f"output.videos_per_group must be >= 1, got {self.videos_per_group}")
        if self.image_format not in ("jpg", "png"):
            raise ValueError(
                f"output.image_format must be 'jpg' or 'png', got {self.image_format!r}"
            )
        if not 1 <= self.jpeg_quality <= 100:
            raise ValueError(f"output.jpeg_quality must be in [1, 100], got {self.jpeg_quality}")


@dataclass(frozen=True)
class ExecutorConfig:
    """Where the stages run. ``ray`` runs decode and encode/write as CPU tasks and the DVG step
    in an actor pool that loads each model once per actor."""

    kind: Literal["local", "ray"] = "local"
    ray_address: str | None = None
    """Cluster to join (``auto``, ``ray://host:10001``); default: ``RAY_ADDRESS`` or a local Ray."""
    dvg_actors: int | None = None
    """DVG actors; default: one per GPU / num_gpus, or 1 on a CPU-only cluster."""
    num_gpus: float = 1.0
    """GPUs per DVG actor (fractional packs several actors on one GPU)."""
    decode_workers: int = 2
    """Videos decoded concurrently."""
    encode_workers: int = 2
    """Clips encoded concurrently."""
    queue_size: int = 4
    """Clips waiting per DVG actor: the bounded queue between decode and the GPU stage."""
    threads: int | None = None
    """Torch intra-op threads of the DVG step on the CPU (per actor with Ray); None: half the
    CPUs available, at least 1 (measured: docs/benchmarks.md)."""

    def __post_init__(self) -> None:
        if self.kind not in ("local", "ray"):
            raise ValueError(f"executor.kind must be 'local' or 'ray', got {self.kind!r}")
        if self.num_gpus < 0:
            raise ValueError(f"executor.num_gpus must be >= 0, got {self.num_gpus}")
        for name in ("decode_workers", "encode_workers", "queue_size"):
            if getattr(self, name) < 1:
                raise ValueError(f"executor.{name} must be >= 1")
        if self.dvg_actors is not None and self.dvg_actors < 1:
            raise ValueError("executor.dvg_actors must be >= 1")
        check_threads(self.threads, "executor.threads")


@dataclass(frozen=True)
class BuildConfig:
    """Everything `dvg build` needs; ``preset`` names where the backend defaults came from."""

    video: VideoConfig = field(default_factory=VideoConfig)
    depth: BackendSpec = field(default_factory=lambda: BackendSpec("dpt"))
    inpaint: BackendSpec = field(default_factory=lambda: BackendSpec("sd"))
    flow: BackendSpec = field(default_factory=lambda: BackendSpec("raft"))
    stereo: StereoConfig = field(default_factory=StereoConfig)
    masks: MaskConfig = field(default_factory=MaskConfig)
    output: OutputConfig = field(default_factory=OutputConfig)
    executor: ExecutorConfig = field(default_factory=ExecutorConfig)
    preset: str = "paper"

    def to_dict(self) -> dict[str, Any]:
        return _plain(self)

    def data_hash(self) -> str:
        """Hash of everything that changes the written data (not the executor): 16 hex chars."""
        data = self.to_dict()
        data.pop("executor")
        for spec in ("depth", "inpaint", "flow"):
            # Device, dtype and batching do not change what is computed (up to float noise).
            for key in ("device", "batch_size"):
                data[spec].pop(key, None)
        text = json.dumps(data, sort_keys=True, default=str)
        return hashlib.sha256(text.encode()).hexdigest()[:16]


PRESETS: dict[str, dict[str, BackendSpec]] = {
    # The paper's models: MiDaS depth, Stable Diffusion inpainting, RAFT flow.
    "paper": {
        "depth": BackendSpec("dpt"),
        "inpaint": BackendSpec("sd"),
        "flow": BackendSpec("raft"),
    },
    # Weights-free: precomputed depth next to each video, OpenCV Telea and DIS.
    "offline": {
        "depth": BackendSpec("sidecar"),
        "inpaint": BackendSpec("telea"),
        "flow": BackendSpec("dis"),
    },
}


def preset_config(name: str) -> BuildConfig:
    """The default configuration with the backends of preset ``name``."""
    if name not in PRESETS:
        raise ValueError(f"unknown preset {name!r}; known: {', '.join(PRESETS)}")
    return BuildConfig(**PRESETS[name], preset=name)


_SECTIONS = {
    "video": VideoConfig,
    "depth": BackendSpec,
    "inpaint": BackendSpec,
    "flow": BackendSpec,
    "stereo": StereoConfig,
    "masks": MaskConfig,
    "output": OutputConfig,
    "executor": ExecutorConfig,
}


def apply_overrides(config: BuildConfig, overrides: Mapping[str, Mapping[str, Any]]) -> BuildConfig:
    """Return ``config`` with ``{section: {field: value}}`` replaced; unknown names are errors.

    A backend section that changes ``name`` starts from that backend's defaults, so
    ``{"depth": {"name": "sidecar"}}`` does not keep the old backend's model id.
    """
    changes: dict[str, Any] = {}
    for section, values in overrides.items():
        if section == "preset":
            continue
        if section not in _SECTIONS:
            raise ValueError(f"unknown config section {section!r}; known: {', '.join(_SECTIONS)}")
        if not isinstance(values, Mapping):
            raise ValueError(f"config section {section!r} must be a table of fields")
        cls = _SECTIONS[section]
        known = {f.name for f in fields(cls)}
        unknown = set(values) - known
        if unknown:
            raise ValueError(
                f"unknown field(s) {', '.join(sorted(unknown))} in [{section}]; "
                f"known: {', '.join(sorted(known))}"
            )
        current = getattr(config, section)
        if cls is BackendSpec and "name" in values and values["name"] != current.name:
            current = BackendSpec(values["name"])
        converted = {k: _coerce(cls, k, v) for k, v in values.items()}
        changes[section] = replace(current, **converted)
    return replace(config, **changes)


def _coerce(cls: type, name: str, value: Any) -> Any:
    """TOML has no tuples: ranges given as lists become tuples."""
    del cls, name
    if isinstance(value, list):
        return tuple(value)
    return value


def load_config(path: str | Path | None = None, preset: str | None = None) -> BuildConfig:
    """Build a configuration from a preset and an optional TOML file of per-section overrides.

    The file may name the preset itself (``preset = "offline"`` at the top level); the
    ``preset`` argument wins over it. Default preset: ``paper``.
    """
    data: dict[str, Any] = {}
    if path is not None:
        path = Path(path)
        try:
            data = tomllib.loads(path.read_text())
        except FileNotFoundError:
            raise ValueError(f"config file {path} does not exist") from None
        except tomllib.TOMLDecodeError as error:
            raise ValueError(f"config file {path} is not valid TOML: {error}") from None
    name = preset or data.get("preset") or "paper"
    try:
        return apply_overrides(preset_config(name), data)
    except (TypeError, ValueError) as error:
        where = f" in {path}" if path is not None else ""
        raise ValueError(f"invalid configuration{where}: {error}") from None


def _plain(value: Any) -> Any:
    """Dataclasses, tuples and mappings -> JSON-ready dicts and lists."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: _plain(getattr(value, f.name)) for f in fields(value)}
    if isinstance(value, Mapping):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    return value
