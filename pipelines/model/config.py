"""The SpatialDreamer model configuration and its on-disk layout (see docs/model.md)."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, fields
from pathlib import Path

# Bumped whenever the meaning of a saved model directory changes; readers refuse other versions.
# 2: trained on shard format v2 (novel view to the LEFT of the target, back-rendered x~1).
FORMAT_VERSION = 2

CONFIG_NAME = "spatialdreamer.json"
TIL_WEIGHTS_NAME = "til.safetensors"
DEVIATION_WEIGHTS_NAME = "deviation_embedding.safetensors"

# SVD feeds [noisy latents (4), conditioning-image latents (4)]; SpatialDreamer appends the mask.
SVD_IN_CHANNELS = 8
UNET_IN_CHANNELS = 9


@dataclass(frozen=True)
class ModelConfig:
    """How a SpatialDreamer model is assembled (paper 3.3-3.4).

    svd: hub id or local dir of an SVD pipeline layout (unet, vae, image_encoder, feature_extractor,
        scheduler subfolders); the denoising U-Net, VAE and CLIP image encoder come from it.
    refiner: hub id or local dir of an SD2.1 pipeline layout (subfolder unet) or a bare
        UNet2DConditionModel dir; the RefinerNet is initialised from it.
    til: whether the Temporal Interaction Learning modules are present (stage 2).
    til_lambda: lambda of paper Eq. 3 (self vs cross-frame attention blend).
    til_frames: N_r of paper Eq. 3, the number of adjacent reference frames (window incl. itself).
    default_deviation: stereo deviation strength s used when the caller gives none (Eq. 4);
        `trainer export` sets it to the median of s over the training samples.
    deviation_scale: multiplies s before the sinusoidal projection, so s in [0, 1] spreads like
        diffusion timesteps in [0, 1000].
    deviation_range: (5th, 95th) percentile of s over the training samples, None when unknown
        (a model assembled from components, not exported from a run).
    deviation_samples: how many training samples those statistics come from (0: unknown).
    """

    svd: str
    refiner: str
    til: bool = False
    til_lambda: float = 0.6
    til_frames: int = 8
    default_deviation: float = 0.1
    deviation_scale: float = 1000.0
    deviation_range: tuple[float, float] | None = None
    deviation_samples: int = 0

    def __post_init__(self) -> None:
        if self.deviation_range is not None:
            low, high = self.deviation_range
            if not 0 <= low <= high:
                raise ValueError(
                    f"ModelConfig.deviation_range must satisfy 0 <= low <= high, got "
                    f"{self.deviation_range}"
                )
            object.__setattr__(self, "deviation_range", (float(low), float(high)))
        if not 0.0 <= self.til_lambda <= 1.0:
            raise ValueError(f"ModelConfig.til_lambda must lie in [0, 1], got {self.til_lambda}")
        if self.til_frames < 1:
            raise ValueError(f"ModelConfig.til_frames must be >= 1, got {self.til_frames}")


def write_model_config(config: ModelConfig, directory: Path) -> Path:
    """Write `spatialdreamer.json` (ModelConfig + format version) into `directory`."""
    path = Path(directory) / CONFIG_NAME
    payload = {"format_version": FORMAT_VERSION, "model": asdict(config)}
    path.write_text(json.dumps(payload, indent=2, sort_keys=True) + "\n")
    return path


def read_model_config(directory: Path) -> ModelConfig:
    """Read `spatialdreamer.json` from `directory`; refuse unknown format versions and keys."""
    path = Path(directory) / CONFIG_NAME
    if not path.is_file():
        raise FileNotFoundError(
            f"{path}: not a SpatialDreamer model directory (no {CONFIG_NAME}); "
            "build one with SpatialDreamerModel.from_components(...).save_pretrained(dir)"
        )
    payload = json.loads(path.read_text())
    version = payload.get("format_version")
    if version != FORMAT_VERSION:
        why = (
            ": format 1 models were trained on shard format v1, whose stereo handedness is "
            "mirrored against inference; retrain on shards from this `dvg build`"
            if version == 1
            else ""
        )
        raise ValueError(
            f"{path}: model format version {version!r} is not supported (this code reads "
            f"version {FORMAT_VERSION}){why}"
        )
    known = {f.name for f in fields(ModelConfig)}
    unknown = set(payload["model"]) - known
    if unknown:
        raise ValueError(f"{path}: unknown ModelConfig keys {sorted(unknown)}")
    return ModelConfig(**payload["model"])
