"""The methods a benchmark compares, each = a depth source + a way to fill disocclusions.

| method           | depth                                  | fill                                 |
|------------------|----------------------------------------|--------------------------------------|
| `oracle`         | ground-truth z-depth, exact            | the real target's pixels (a ceiling) |
| `vae-oracle`     | ground-truth z-depth, exact            | the same through `--model`'s VAE     |
| `warp-telea`     | depth backend, aligned by the protocol | OpenCV Telea                         |
| `warp-sd`        | depth backend, aligned by the protocol | SD inpainting (dvg backend)          |
| `spatialdreamer` | depth backend, aligned by the protocol | the exported model                   |
| LABEL            | depth backend, aligned by the protocol | the model of `--model LABEL=DIR`     |

The depth backend is any of dvg's (``dpt`` by default; ``sidecar`` reads depth files next to the
videos; ``ground-truth`` uses the benchmark's true depth as relative depth of unknown scale).
The ``oracle`` is not a method anyone can run: with exact depth and the target's own pixels in
the holes, only the warp's resampling error is left, so it is the ceiling of every hole filler
and the gap to it is what filling (and depth) loses. ``vae-oracle`` is the same target encoded
and decoded by a model's frozen VAE and composited as the model's output is: what that model
would give with exact latents, the ceiling its VAE puts on it. Every report row names both parts
(``depth_label``, ``fill_label``).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from dvg.backends import DEPTH_BACKENDS, INPAINT_BACKENDS, BackendSpec, DepthContext


@dataclass(frozen=True)
class MethodSpec:
    name: str
    depth: BackendSpec | None = None
    """None: the benchmark's ground-truth depth (as relative depth, or exact for ``oracle``)."""
    model: str | None = None
    """Exported SpatialDreamer directory (``spatialdreamer``)."""
    inpaint: BackendSpec = field(default_factory=lambda: BackendSpec("telea"))
    options: dict[str, Any] = field(default_factory=dict)


METHOD_NAMES = ("oracle", "vae-oracle", "warp-telea", "warp-sd", "spatialdreamer")
ORACLES = ("oracle", "vae-oracle")
"""Methods that read the real target (ceilings, not methods anyone can run)."""
VAE_ORACLE_NOTE = (
    "vae-oracle: exact depth and the real target encoded and decoded by the model's frozen VAE, "
    "composited on the warped view as the model's output is (same decode chunks, context and "
    "feathered margin): what the model would give with exact latents, so no model on that VAE "
    "can score above it."
)


def method_spec(name: str, *, depth: BackendSpec | None, model: str | None = None) -> MethodSpec:
    """The spec of a named method; ``depth`` None means ground truth as relative depth."""
    if name == "oracle":
        return MethodSpec("oracle")
    if name == "warp-telea":
        return MethodSpec(name, depth)
    if name == "warp-sd":
        return MethodSpec(name, depth, inpaint=BackendSpec("sd"))
    if name in ("spatialdreamer", "vae-oracle"):
        if model is None:
            raise ValueError(
                f"method {name} needs --model DIR (a directory written by `trainer export`)"
            )
        return MethodSpec(name, None if name == "vae-oracle" else depth, model=model)
    raise ValueError(f"unknown method {name!r}; known: {', '.join(METHOD_NAMES)}")


def method_specs(
    names: Sequence[str],
    *,
    depth: BackendSpec | None,
    model: str | None,
    models: Sequence[tuple[str, str]],
) -> list[MethodSpec]:
    """The named methods, then one per labelled model (``--model LABEL=DIR``). ``vae-oracle``
    takes the VAE of the unlabelled ``model``, else of the first labelled one."""
    vae_source = model if model is not None else next((path for _, path in models), None)
    specs = [method_spec(name, depth=depth, model=vae_source if name == "vae-oracle" else model)
             for name in names]  # fmt: skip
    return specs + [model_spec(label, path, depth=depth) for label, path in models]


def model_spec(label: str, model: str, *, depth: BackendSpec | None) -> MethodSpec:
    """A SpatialDreamer model as a method of its own, named ``label`` in the report (several can
    be compared side by side: ``--model untrained=DIR --model stage1=DIR``)."""
    if not label or label in METHOD_NAMES:
        raise ValueError(
            f"model label {label!r} must be a non-empty name other than {', '.join(METHOD_NAMES)}"
        )
    return MethodSpec(label, depth, model=model)


def parse_models(
    items: list[str] | tuple[str, ...],
) -> tuple[str | None, tuple[tuple[str, str], ...]]:
    """``--model`` values -> (the unlabelled directory of the ``spatialdreamer`` method or None,
    the ``(label, directory)`` pairs of ``LABEL=DIR`` values)."""
    plain, labelled = [], []
    for item in items:
        label, sep, path = item.partition("=")
        if sep and label and path:
            labelled.append((label.strip(), path))
        else:
            plain.append(item)
    if len(plain) > 1:
        raise ValueError(
            f"--model: give one unlabelled DIR (method spatialdreamer) or LABEL=DIR each, got "
            f"{', '.join(plain)}"
        )
    labels = [label for label, _ in labelled]
    if len(set(labels)) != len(labels):
        raise ValueError(f"--model: labels must differ, got {', '.join(labels)}")
    return (plain[0] if plain else None), tuple(labelled)


def depth_label(spec: MethodSpec) -> str:
    """Where a method's depth comes from, as a report row says it."""
    if spec.name in ORACLES:
        return "ground truth, exact"
    if spec.depth is None:
        return "ground truth as relative depth"
    model = f" `{spec.depth.model}`" if spec.depth.model else ""
    return f"`{spec.depth.name}`{model}"


def fill_label(spec: MethodSpec) -> str:
    """What fills a method's holes, as a report row says it."""
    if spec.name == "oracle":
        return "real target pixels (ceiling)"
    if spec.name == "vae-oracle":
        return f"real target pixels through the VAE of `{spec.model}` (its ceiling)"
    if spec.model is not None:
        return f"SpatialDreamer `{spec.model}`"
    return {"telea": "OpenCV Telea", "sd": "SD inpainting"}.get(
        spec.inpaint.name, f"`{spec.inpaint.name}`"
    )


class Method:
    """A loaded method: predicts relative inverse depth and fills holes of a warped view."""

    def __init__(self, spec: MethodSpec) -> None:
        self.spec = spec
        self.name = spec.name
        self.depth = DEPTH_BACKENDS.create(spec.depth) if spec.depth is not None else None
        self.pipeline = None
        self.inpaint = None
        if spec.model is not None:
            from pipelines.pipeline import SpatialDreamerPipeline

            self.pipeline = SpatialDreamerPipeline.from_pretrained(spec.model)
            self.pipeline.set_progress_bar_config(disable=True)
        else:
            self.inpaint = INPAINT_BACKENDS.create(spec.inpaint)

    @property
    def is_oracle(self) -> bool:
        return self.spec.name == "oracle"

    @property
    def is_vae_oracle(self) -> bool:
        return self.spec.name == "vae-oracle"

    @property
    def samples(self) -> bool:
        """A SpatialDreamer model that samples its outputs (in windows), not the VAE oracle."""
        return self.pipeline is not None and not self.is_vae_oracle

    @property
    def reads_target(self) -> bool:
        """A ceiling (``ORACLES``): exact depth and the real target, no row without them."""
        return self.spec.name in ORACLES

    @property
    def depth_label(self) -> str:
        return depth_label(self.spec)

    @property
    def fill_label(self) -> str:
        return fill_label(self.spec)

    def inverse_depth(
        self,
        image: np.ndarray,
        ground_truth: np.ndarray | None,
        video: str | None = None,
        frame_index: int = 0,
    ) -> np.ndarray:
        """(H, W) relative inverse depth of ``image`` (H, W, 3) uint8, frame ``frame_index`` of
        ``video`` when it comes from one (sidecar depth is found next to the video)."""
        if self.depth is None:
            if ground_truth is None:
                raise ValueError(f"{self.name}: this benchmark has no ground-truth depth")
            return (1.0 / ground_truth).astype(np.float32)
        from pipelines.convert.warp import identity_transform

        height, width = image.shape[:2]
        context = DepthContext(
            video_path=video or "",
            source_indices=np.array([frame_index], np.int64),
            transform=identity_transform(width, height),
        )
        return self.depth.predict(image[None], context).inverse_depth[0]

    def fill(
        self, source: np.ndarray, warped: np.ndarray, holes: np.ndarray, target: np.ndarray
    ) -> np.ndarray:
        """Complete the warped target view (H, W, 3) uint8 given its holes (H, W) bool (the
        oracle copies the real ``target`` into them): :meth:`fill_clip` on one frame."""
        return self.fill_clip(source[None], warped[None], holes[None], target[None])[0]

    def fill_clip(
        self,
        left: np.ndarray,
        warped: np.ndarray,
        holes: np.ndarray,
        right: np.ndarray,
        **sampling: Any,
    ) -> np.ndarray:
        """Complete the warped right views of a whole clip, (F, H, W, 3) uint8 given (F, H, W)
        holes: a SpatialDreamer model sees the clip as a video (its windows and TIL),
        ``sampling`` goes to its pipeline (``steps``, ``seed``...); the oracle copies the exact
        ``right`` views into the holes, the VAE oracle their VAE round trip."""
        if self.is_oracle:
            return np.where(holes[..., None], right, warped)
        if self.is_vae_oracle:
            return self.pipeline.vae_round_trip(right, warped, holes)
        if self.pipeline is not None:
            return self.pipeline.right_views(left=left, warped=warped, holes=holes, **sampling)
        return self.inpaint.inpaint(warped, holes)
