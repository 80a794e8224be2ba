"""Optical-flow backends for DVG's temporal mask refinement (paper 3.2, Eq. 2; RAFT [58]).

Flow maps pixel p of ``source`` to p + flow(p) in ``target`` (channel 0 = x), the convention of
``dvg.models.raft`` and ``dvg.geometry.flow``. Registered names: ``raft`` (our RAFT module with
the official princeton-vl checkpoints) and ``dis`` (OpenCV DIS, weights-free).
"""

from __future__ import annotations

import logging
from abc import ABC, abstractmethod

import cv2
import numpy as np
import torch

from dvg.backends.registry import Backend, BackendSpec, Registry
from dvg.backends.weights import MissingWeightsError, find_local

logger = logging.getLogger(__name__)

RAFT_DOWNLOAD = (
    "download the official checkpoints from https://github.com/princeton-vl/RAFT: its "
    "download_models.sh fetches models.zip, which holds raft-things.pth (variant large, the "
    "default) and raft-small.pth; pass one with --flow-model PATH, or put it in the current "
    "folder or in $DVG_WEIGHTS_DIR"
)


class FlowBackend(Backend, ABC):
    """Dense optical flow between frame pairs; loads its model once in ``__init__``."""

    def __init__(self, spec: BackendSpec) -> None:
        self.spec = spec
        self.model_id = self.resolve_model(spec)

    @abstractmethod
    def flow(self, source: np.ndarray, target: np.ndarray) -> np.ndarray:
        """source, target: (N, H, W, 3) uint8 RGB -> (N, 2, H, W) float32 flow in pixels."""


FLOW_BACKENDS: Registry[FlowBackend] = Registry("flow")


def check_pairs(source: np.ndarray, target: np.ndarray) -> None:
    """Validate ``source`` and ``target``: both (N, H, W, 3) uint8 with the same shape."""
    for name, array in (("source", source), ("target", target)):
        if (
            not isinstance(array, np.ndarray)
            or array.dtype != np.uint8
            or array.ndim != 4
            or array.shape[-1] != 3
        ):
            raise ValueError(
                f"{name} must be (N, H, W, 3) uint8, got {getattr(array, 'shape', None)} "
                f"{getattr(array, 'dtype', type(array).__name__)}"
            )
    if source.shape != target.shape:
        raise ValueError(f"source and target shapes differ: {source.shape} vs {target.shape}")


_DIS_PRESETS = {
    "ultrafast": cv2.DISOPTICAL_FLOW_PRESET_ULTRAFAST,
    "fast": cv2.DISOPTICAL_FLOW_PRESET_FAST,
    "medium": cv2.DISOPTICAL_FLOW_PRESET_MEDIUM,
}


@FLOW_BACKENDS.register("dis")
class DISFlow(FlowBackend):
    """OpenCV Dense Inverse Search flow on grayscale frames, per pair; option ``preset``
    ("ultrafast" / "fast" / "medium", default "medium")."""

    needs_weights = False

    def __init__(self, spec: BackendSpec) -> None:
        super().__init__(spec)
        preset = str(spec.option("preset", "medium"))
        if preset not in _DIS_PRESETS:
            raise ValueError(
                f"dis option preset must be one of {list(_DIS_PRESETS)}, got {preset!r}"
            )
        self.model_id = f"opencv-dis-{preset}"
        self._dis = cv2.DISOpticalFlow_create(_DIS_PRESETS[preset])

    def flow(self, source: np.ndarray, target: np.ndarray) -> np.ndarray:
        check_pairs(source, target)
        n, h, w = source.shape[:3]
        out = np.empty((n, 2, h, w), np.float32)
        for i in range(n):
            a = cv2.cvtColor(source[i], cv2.COLOR_RGB2GRAY)
            b = cv2.cvtColor(target[i], cv2.COLOR_RGB2GRAY)
            out[i] = self._dis.calc(a, b, None).transpose(2, 0, 1)  # (H, W, 2) -> (2, H, W)
        return out


@FLOW_BACKENDS.register("raft")
class RAFTFlow(FlowBackend):
    """RAFT (Teed & Deng 2020) from an official princeton-vl checkpoint, loaded strictly.

    Options: ``iters`` (12, the official default), ``variant`` ("large" / "small"; inferred
    from the checkpoint keys when absent). Always float32, whatever ``spec.dtype`` says: RAFT's
    correlation volume and recurrent updates drift in half precision.
    """

    default_model = "raft-things.pth"
    local_only = True
    download_hint = RAFT_DOWNLOAD

    def __init__(self, spec: BackendSpec) -> None:
        super().__init__(spec)
        from dvg.models.raft import RAFT

        path = find_local(self.model_id)
        if path is None or not path.is_file():
            problem = "does not exist" if path is None else "is not a file"
            raise MissingWeightsError("flow", self.name, self.model_id, problem, RAFT_DOWNLOAD)
        self.model_id = str(path)
        self.iters = int(spec.option("iters", 12))
        if self.iters < 1:
            raise ValueError(f"raft option iters must be >= 1, got {self.iters}")
        if spec.dtype not in ("auto", "float32"):
            logger.warning("raft runs in float32; ignoring dtype=%s", spec.dtype)
        self.device = spec.torch_device()
        self.model = RAFT.from_checkpoint(path, variant=spec.option("variant", None))
        self.model.to(self.device)

    def flow(self, source: np.ndarray, target: np.ndarray) -> np.ndarray:
        check_pairs(source, target)
        n, h, w = source.shape[:3]
        out = np.empty((n, 2, h, w), np.float32)
        for start in range(0, n, self.spec.batch_size):
            stop = start + self.spec.batch_size
            a = torch.from_numpy(source[start:stop]).to(self.device).permute(0, 3, 1, 2).float()
            b = torch.from_numpy(target[start:stop]).to(self.device).permute(0, 3, 1, 2).float()
            with torch.inference_mode():
                out[start:stop] = self.model(a, b, iters=self.iters).cpu().numpy()
        return out
