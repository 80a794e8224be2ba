"""Choosing the softmax-splatting importance alpha (Z = alpha * d) by measurement.

Two kinds of ground truth:

- A real stereo pair with ground-truth disparity: Middlebury 2014's Motorcycle as scikit-image
  ships it (``skimage.data.stereo_motorcycle``, 500 x 741, disparity of the left view, unknown
  pixels excluded). The left view is forward-rendered with the true disparity and compared with
  the real right view: PSNR on the pixels the render covers, and on the covered pixels within
  2 px of a depth edge of the target view (where alpha decides who wins). The pair is also
  resampled to 512 and 1920 pixels wide (disparity scaled with it): alpha acts per pixel of
  disparity, so its effect depends on the resolution.
- The renderer's exact scenes (``dvg.synthetic``): PSNR on non-occluded pixels against the
  ray-cast right view, IoU of the render's holes with the exact right-view occlusion, and IoU
  of the backward-rendered mask M with the exact left-view occlusion.

    python -m benchmarks.alpha [--alphas 0.5,1,2,5,10,20,50] [--write docs/benchmarks.md]
"""

from __future__ import annotations

import argparse
import math
from pathlib import Path

import cv2
import numpy as np
import torch
import torch.nn.functional as F

from benchmarks._report import header, update_section
from dvg.geometry import (
    DEFAULT_ALPHA,
    backward_render,
    forward_render,
    softmax_splat,
    stereo_flow,
    zbuffer_disparity,
)
from dvg.synthetic import render_scene

SCENES = [
    ("slanted_fractional", 192, 256, 1),
    ("boxes_orbit", 96, 128, 8),
    ("example", 256, 448, 8),
]
WIDTHS = (512, 741, 1920)


def psnr(a: torch.Tensor, b: torch.Tensor, where: torch.Tensor) -> float:
    """PSNR over the pixels ``where`` (B, 1, H, W) of (B, C, H, W) images in [0, 1]."""
    mse = (a - b).square().mean(dim=1, keepdim=True)[where].mean().item()
    return math.inf if mse == 0 else 10 * math.log10(1 / mse)


def iou(a: torch.Tensor, b: torch.Tensor) -> float:
    return ((a & b).sum() / (a | b).sum()).item()


def motorcycle(width: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """(left, right, disparity, known) of the Motorcycle pair resampled to ``width``."""
    from skimage.data import stereo_motorcycle

    left, right, disparity = stereo_motorcycle()
    known = np.isfinite(disparity) & (disparity > 0)
    h0, w0 = disparity.shape
    height = round(h0 * width / w0)
    if width != w0:
        interpolation = cv2.INTER_AREA if width < w0 else cv2.INTER_CUBIC
        left, right = (
            cv2.resize(v, (width, height), interpolation=interpolation) for v in (left, right)
        )
        # Nearest: a resampled disparity must not blend surfaces across an edge.
        disparity = cv2.resize(
            np.where(known, disparity, 0), (width, height), interpolation=cv2.INTER_NEAREST
        )
        known = (
            cv2.resize(known.astype(np.uint8), (width, height), interpolation=cv2.INTER_NEAREST) > 0
        )
        disparity = disparity * (width / w0)

    def image(v: np.ndarray) -> torch.Tensor:
        return torch.from_numpy(v).permute(2, 0, 1)[None].double() / 255

    d = torch.from_numpy(np.where(known, disparity, 0)).double()[None, None]
    return image(left), image(right), d, torch.from_numpy(known)[None, None]


def edge_band(disparity: torch.Tensor, known: torch.Tensor, radius: int = 2) -> torch.Tensor:
    """Target-view pixels within ``radius`` of a depth edge (a jump of more than 1 px of
    disparity between neighbours of the z-buffered target disparity)."""
    target, owned = zbuffer_disparity(torch.where(known, disparity, 0.0))
    jump = torch.zeros_like(owned)
    jump[..., 1:] |= (target[..., 1:] - target[..., :-1]).abs() > 1
    jump[..., :-1] |= jump[..., 1:].clone()
    jump[..., 1:, :] |= (target[..., 1:, :] - target[..., :-1, :]).abs() > 1
    size = 2 * radius + 1
    return F.max_pool2d(jump.double(), size, stride=1, padding=radius) > 0


def real_rows(alphas: list[float]) -> list[str]:
    rows = [
        "| width | " + " | ".join(f"alpha {a:g}" for a in alphas) + " |",
        "|---|" + "---|" * len(alphas),
    ]
    for width in WIDTHS:
        left, right, d, known = motorcycle(width)
        band = edge_band(d, known)
        cells = []
        for alpha in alphas:
            splat = softmax_splat(left, stereo_flow(d), alpha * d, source_mask=known)
            covered = ~splat.holes
            cells.append(
                f"{psnr(splat.image, right, covered):.2f} / "
                f"{psnr(splat.image, right, covered & band):.2f}"
            )
        rows.append(f"| {width} | " + " | ".join(cells) + " |")
        print(rows[-1], flush=True)
    return rows


def exact_rows(alphas: list[float]) -> list[str]:
    rows = [
        "| scene | HxWxF | " + " | ".join(f"alpha {a:g}" for a in alphas) + " |",
        "|---|---|" + "---|" * len(alphas),
    ]
    for name, h, w, f in SCENES:
        r = render_scene(name, seed=0, height=h, width=w, num_frames=f)
        cells = []
        for alpha in alphas:
            splat = forward_render(r.left, r.disparity, alpha=alpha)
            mask = backward_render(r.left, r.disparity, r.right, alpha=alpha).mask
            cells.append(
                f"{psnr(splat.image, r.right, ~r.occlusion_right):.1f} / "
                f"{iou(splat.holes, r.occlusion_right):.3f} / {iou(mask, r.occlusion_left):.3f}"
            )
        rows.append(f"| {name} | {h}x{w}x{f} | " + " | ".join(cells) + " |")
        print(rows[-1], flush=True)
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--alphas", default="0.5,1,2,5,10,20,50")
    parser.add_argument("--write", type=Path, help="update this Markdown file's section")
    args = parser.parse_args()
    alphas = [float(a) for a in args.alphas.split(",")]
    with torch.inference_mode():
        real = real_rows(alphas)
        exact = exact_rows(alphas)
    if args.write:
        body = "\n".join(
            [
                "## Choosing the splatting importance alpha",
                "",
                header(),
                f"Default alpha: {DEFAULT_ALPHA:g}. Real pair (Middlebury 2014 Motorcycle from "
                "scikit-image, left view forward-rendered with its true disparity, compared with "
                "the real right view): PSNR in dB on covered pixels / on covered pixels within "
                "2 px of a depth edge of the target view. The two cameras' exposure differs, so "
                "only differences between columns mean something.",
                "",
                *real,
                "",
                "Exact scenes (dvg.synthetic): PSNR on non-occluded pixels (dB) / IoU of the "
                "holes with the exact right-view occlusion / IoU of M with the exact left-view "
                "occlusion.",
                "",
                *exact,
            ]
        )
        update_section(args.write, "alpha", body)


if __name__ == "__main__":
    main()
