"""Evaluation metrics of the paper's protocol (Tables 1 and 2); definitions in docs/metrics.md.

Image metrics take (N, 3, H, W) tensors in [0, 1] and return one value per image (N,):
:func:`psnr`, :func:`ssim`, :class:`LPIPS` (v0.1, AlexNet / VGG16 trunks from local files), and
over a region such as the disoccluded holes :func:`masked_psnr` and :func:`masked_ssim` (the mean
of :func:`ssim_map` there).
Video metrics: :class:`FVD` (StyleGAN-V I3D TorchScript detector, float64 Frechet distance) and
:func:`warp_error` (E_warp of Lai et al. 2018, reported x 10^-3 via :func:`in_paper_units`).
PSNR, SSIM and E_warp need no weights; the others raise :class:`MissingMetricWeightsError`
naming the missing file and where to download it.
"""

from evaluation.metrics.fvd import FVD, feature_statistics, frechet_distance, prepare_videos
from evaluation.metrics.image import masked_psnr, masked_ssim, psnr, ssim, ssim_map
from evaluation.metrics.lpips import LPIPS
from evaluation.metrics.trunks import AlexNetFeatures, VGG16Features, load_trunk
from evaluation.metrics.warp_error import (
    in_paper_units,
    valid_masks,
    video_flows,
    warp_error,
    warp_error_with_flow,
    warp_errors,
)
from evaluation.metrics.weights import WEIGHT_FILES, MissingMetricWeightsError

__all__ = [
    "FVD",
    "LPIPS",
    "WEIGHT_FILES",
    "AlexNetFeatures",
    "MissingMetricWeightsError",
    "VGG16Features",
    "feature_statistics",
    "frechet_distance",
    "in_paper_units",
    "load_trunk",
    "masked_psnr",
    "masked_ssim",
    "prepare_videos",
    "psnr",
    "ssim",
    "ssim_map",
    "valid_masks",
    "video_flows",
    "warp_error",
    "warp_error_with_flow",
    "warp_errors",
]
