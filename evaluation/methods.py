"""The methods a benchmark compares, each = a depth source + a way to fill disocclusions.

| method           | depth                                  | fill                          |
|------------------|----------------------------------------|-------------------------------|
| `oracle`         | ground-truth z-depth (synthetic only)  | OpenCV Telea                  |
| `warp-telea`     | depth backend, aligned by the protocol | OpenCV Telea                  |
| `warp-sd`        | depth backend, aligned by the protocol | SD inpainting (dvg backend)   |
| `spatialdreamer` | depth backend, aligned by the protocol | the exported model            |

The depth backend is any of dvg's (``dpt`` by default; ``ground-truth`` uses the benchmark's
true depth as relative depth of unknown scale, so the alignment is the only difference from the
oracle).
"""

from __future__ import annotations

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


METHOD_NAMES = ("oracle", "warp-telea", "warp-sd", "spatialdreamer")


def method_spec(name: str, *, depth: BackendSpec | None, model: str | None = None) -> MethodSpec:
    """The spec of a named method; ``depth`` None means ground truth as relative depth."""
    if name == "oracle":
        return MethodSpec("oracle")
    if name == "warp-telea":
        return MethodSpec(name, depth)
    if name == "warp-sd":
        return MethodSpec(name, depth, inpaint=BackendSpec("sd"))
    if name == "spatialdreamer":
        if model is None:
            raise ValueError(
                "method spatialdreamer needs --model DIR (a directory written by `trainer export`)"
            )
        return MethodSpec(name, depth, model=model)
    raise ValueError(f"unknown method {name!r}; known: {', '.join(METHOD_NAMES)}")


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
        else:
            self.inpaint = INPAINT_BACKENDS.create(spec.inpaint)

    @property
    def is_oracle(self) -> bool:
        return self.spec.name == "oracle"

    def inverse_depth(self, image: np.ndarray, ground_truth: np.ndarray | None) -> np.ndarray:
        """(H, W) relative inverse depth of ``image`` (H, W, 3) uint8."""
        if self.depth is None:
            if ground_truth is None:
                raise ValueError(f"{self.name}: this benchmark has no ground-truth depth")
            return (1.0 / ground_truth).astype(np.float32)
        context = DepthContext(video_path="", source_indices=np.zeros(1, np.int64), transform=None)
        return self.depth.predict(image[None], context).inverse_depth[0]

    def fill(self, source: np.ndarray, warped: np.ndarray, holes: np.ndarray) -> np.ndarray:
        """Complete the warped target view (H, W, 3) uint8 given its holes (H, W) bool."""
        if self.pipeline is not None:
            out = self.pipeline.right_views(
                left=source[None], warped=warped[None], holes=holes[None]
            )
            return out[0]
        return self.inpaint.inpaint(warped[None], holes[None])[0]
