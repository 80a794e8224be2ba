"""Benchmarks, by name: ``synthetic``, ``realestate10k``, ``video``, ``stereo`` and ``micro``
(see docs/evaluation.md)."""

from evaluation.benchmarks.base import Pair, Sample, score, summarise
from evaluation.benchmarks.realestate10k import (
    CameraTrack,
    RealEstate10KConfig,
    parse_camera_file,
    realestate10k_pairs,
    write_camera_file,
)
from evaluation.benchmarks.synthetic import SyntheticConfig, synthetic_pairs

IMAGE_BENCHMARKS = {"synthetic": synthetic_pairs, "realestate10k": realestate10k_pairs}
BENCHMARKS = ("synthetic", "realestate10k", "video", "stereo", "micro")

__all__ = [
    "BENCHMARKS",
    "IMAGE_BENCHMARKS",
    "CameraTrack",
    "Pair",
    "RealEstate10KConfig",
    "Sample",
    "SyntheticConfig",
    "parse_camera_file",
    "realestate10k_pairs",
    "score",
    "summarise",
    "synthetic_pairs",
    "write_camera_file",
]
