"""The bundled example: render the example scene and run the DVG geometry on it.

Until ``dvg build`` exists this is what ``make demo`` runs. It renders the ``example`` scene
(dvg.synthetic) to ``example.mp4`` plus sidecar depth, then for every frame: forward-renders the
left view to the right eye, fills the holes with OpenCV's Telea inpainting (weights-free) to get
x2, backward-renders x2 to find M and x1~, and refines M over the clip with Eq. 2 using the
scene's exact flow. It writes ``preview.png`` (a contact sheet of those outputs) and reports how
the masks compare with the renderer's exact occlusion masks.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
import torch

from dvg.geometry import (
    backward_render,
    clip_flow_confidence,
    forward_render,
    mask_flicker,
    refine_occlusion_masks,
)
from dvg.synthetic import render_scene, write_clip


@dataclass(frozen=True)
class DemoConfig:
    """Settings of the geometry demo."""

    scene: str = "example"
    seed: int = 0
    num_frames: int = 8
    preview_frames: int = 3


@dataclass(frozen=True)
class DemoResult:
    """Where the demo wrote its files, and how its masks compare with the exact ones."""

    preview: Path
    video: Path
    depth: Path
    mask_iou: float
    refined_mask_iou: float
    flicker_before: float
    flicker_after: float


def _to_uint8(image: torch.Tensor) -> np.ndarray:
    """(3, H, W) float RGB in [0, 1] -> (H, W, 3) uint8 BGR for OpenCV."""
    rgb = (image.clamp(0, 1) * 255).round().byte().permute(1, 2, 0).numpy()
    return np.ascontiguousarray(rgb[..., ::-1])


def inpaint_telea(images: torch.Tensor, holes: torch.Tensor, radius: int = 3) -> torch.Tensor:
    """Fill holes of (F, 3, H, W) images with OpenCV Telea; non-hole pixels are kept exactly."""
    out = images.clone()
    for i in range(images.shape[0]):
        mask = holes[i, 0].numpy().astype(np.uint8) * 255
        filled = cv2.inpaint(_to_uint8(images[i]), mask, radius, cv2.INPAINT_TELEA)
        filled = torch.from_numpy(filled[..., ::-1].copy()).permute(2, 0, 1).float() / 255
        out[i] = torch.where(holes[i], filled, images[i])
    return out


def _overlay(image: torch.Tensor, mask: torch.Tensor, colour: tuple[float, float, float]):
    """Tint the masked pixels of a (3, H, W) image."""
    tint = torch.tensor(colour).view(3, 1, 1)
    return torch.where(mask, 0.4 * image + 0.6 * tint, image)


def _colour_depth(depth: torch.Tensor) -> np.ndarray:
    """(1, H, W) depth -> (H, W, 3) uint8 BGR of inverse depth, turbo map (near = red)."""
    inverse = 1.0 / depth[0]
    normalised = (inverse - inverse.min()) / (inverse.max() - inverse.min()).clamp_min(1e-8)
    return cv2.applyColorMap((normalised * 255).byte().numpy(), cv2.COLORMAP_TURBO)


def _label(tile: np.ndarray, text: str) -> np.ndarray:
    tile = tile.copy()
    cv2.putText(tile, text, (6, 18), cv2.FONT_HERSHEY_SIMPLEX, 0.5, (0, 0, 0), 3, cv2.LINE_AA)
    cv2.putText(tile, text, (6, 18), cv2.FONT_HERSHEY_SIMPLEX, 0.5, (255, 255, 255), 1)
    return tile


def run_demo(out_dir: Path, config: DemoConfig = DemoConfig()) -> DemoResult:
    """Render the example, run the geometry and write ``preview.png``; see the module doc."""
    out_dir.mkdir(parents=True, exist_ok=True)
    clip = render_scene(config.scene, seed=config.seed, num_frames=config.num_frames)
    paths = write_clip(clip, out_dir, config.scene)

    splat = forward_render(clip.left, clip.disparity)
    x2 = inpaint_telea(splat.image, splat.holes)
    back = backward_render(clip.left, clip.disparity, x2)
    forward, backward = clip.flow_next[None], clip.flow_prev[None]
    confidence = clip_flow_confidence(forward, backward)
    raw = back.mask[:, 0][None]
    refined = refine_occlusion_masks(raw, forward, backward, confidence)

    exact = clip.occlusion_left[:, 0][None]

    def iou(a: torch.Tensor) -> float:
        return ((a & exact).sum() / (a | exact).sum()).item()

    rows = []
    picks = np.linspace(0, clip.left.shape[0] - 1, config.preview_frames).round().astype(int)
    for t in picks:
        m = refined[0, t][None]
        tiles = [
            ("x1 (left, source)", _to_uint8(clip.left[t])),
            (
                "splat to right + holes",
                _to_uint8(_overlay(splat.image[t], splat.holes[t], (1, 0, 0))),
            ),
            ("x2 (Telea inpainted)", _to_uint8(x2[t])),
            ("M on x1 (Eq. 2 refined)", _to_uint8(_overlay(clip.left[t], m, (1, 0, 1)))),
            ("x1~ = x1 (1 - M)", _to_uint8(clip.left[t] * ~m)),
            ("inverse depth (near = red)", _colour_depth(clip.depth[t])),
        ]
        rows.append(np.concatenate([_label(tile, f"{name}  t={t}") for name, tile in tiles], 1))
    preview = out_dir / "preview.png"
    cv2.imwrite(str(preview), np.concatenate(rows, axis=0))

    return DemoResult(
        preview=preview,
        video=paths["video"],
        depth=paths["depth"],
        mask_iou=iou(raw),
        refined_mask_iou=iou(refined),
        flicker_before=mask_flicker(raw, forward, confidence.forward).item(),
        flicker_after=mask_flicker(refined, forward, confidence.forward).item(),
    )
