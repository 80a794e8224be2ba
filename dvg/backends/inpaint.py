"""Inpainting backends: fill the disocclusion holes of the splatted right view (paper 3.2).

Every backend repaints only the hole pixels: everything outside ``holes`` is returned
bit-identical. Registered names: ``sd`` (diffusers Stable Diffusion inpainting) and ``telea``
(OpenCV, weights-free).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import Any, ClassVar

import cv2
import numpy as np
import torch
import torch.nn.functional as F

from dvg.backends.registry import Backend, BackendSpec, Registry
from dvg.backends.weights import diffusers_dtype, load_pretrained


class InpaintBackend(Backend, ABC):
    """Fills holes in RGB frames; loads its model once in ``__init__``."""

    frame_independent: ClassVar[bool] = False
    """Each frame is filled on its own, so a window may be filled in pieces with the same
    result (a converter fills each piece while rendering the next)."""

    def __init__(self, spec: BackendSpec) -> None:
        self.spec = spec
        self.model_id = self.resolve_model(spec)

    @abstractmethod
    def inpaint(self, images: np.ndarray, holes: np.ndarray) -> np.ndarray:
        """images: (F, H, W, 3) uint8, holes: (F, H, W) bool (True = fill), H and W multiples
        of 8 -> (F, H, W, 3) uint8, bit-identical to ``images`` wherever ``holes`` is False."""


INPAINT_BACKENDS: Registry[InpaintBackend] = Registry("inpaint")


def check_inpaint_inputs(images: np.ndarray, holes: np.ndarray) -> None:
    """Validate ``images`` (F, H, W, 3) uint8 and ``holes`` (F, H, W) bool, H, W multiples of 8."""
    if (
        not isinstance(images, np.ndarray)
        or images.dtype != np.uint8
        or images.ndim != 4
        or images.shape[-1] != 3
    ):
        raise ValueError(
            f"images must be (F, H, W, 3) uint8, got {getattr(images, 'shape', None)} "
            f"{getattr(images, 'dtype', type(images).__name__)}"
        )
    if (
        not isinstance(holes, np.ndarray)
        or holes.dtype != np.bool_
        or holes.shape != images.shape[:3]
    ):
        raise ValueError(
            f"holes must be {images.shape[:3]} bool, got {getattr(holes, 'shape', None)} "
            f"{getattr(holes, 'dtype', type(holes).__name__)}"
        )
    h, w = images.shape[1:3]
    if h % 8 or w % 8:
        raise ValueError(f"inpainting needs H and W multiples of 8, got {h} x {w}")


def composite(images: np.ndarray, filled: np.ndarray, holes: np.ndarray) -> np.ndarray:
    """``filled`` inside ``holes``, ``images`` (bit-exact) elsewhere: (F, H, W, 3) uint8."""
    return np.where(holes[..., None], filled, images)


@INPAINT_BACKENDS.register("telea")
class TeleaInpaint(InpaintBackend):
    """OpenCV fast-marching inpainting (Telea 2004), per frame; option ``radius`` (px, 3)."""

    needs_weights = False
    frame_independent = True

    def __init__(self, spec: BackendSpec) -> None:
        super().__init__(spec)
        self.model_id = "opencv-telea"
        self.radius = float(spec.option("radius", 3))
        if self.radius <= 0:
            raise ValueError(f"telea option radius must be > 0, got {self.radius}")

    def inpaint(self, images: np.ndarray, holes: np.ndarray) -> np.ndarray:
        check_inpaint_inputs(images, holes)
        out = np.empty_like(images)
        for i in range(images.shape[0]):
            if not holes[i].any():
                out[i] = images[i]
                continue
            # OpenCV copies the image and writes only mask pixels, so its output is already
            # composite()'s (tested); the mask is any nonzero uint8, a view of the bools.
            mask = holes[i].view(np.uint8)
            cv2.inpaint(images[i], mask, self.radius, cv2.INPAINT_TELEA, dst=out[i])
        return out


@INPAINT_BACKENDS.register("sd")
class StableDiffusionInpaint(InpaintBackend):
    """Stable Diffusion inpainting (diffusers ``StableDiffusionInpaintPipeline``).

    Options: ``steps`` (25), ``prompt`` (""), ``negative_prompt`` (None), ``guidance_scale``
    (1.0: classifier-free guidance off, since with an empty prompt both branches predict the
    same; raise it, e.g. to 7.5, with a prompt or negative prompt), ``seed`` (0),
    ``mask_dilation`` (4 px). The hole mask given to the model is dilated by ``mask_dilation``
    and then grown to whole latent cells (the VAE's 8 x 8 pixel blocks), because the pipeline
    samples the mask to latent resolution by nearest neighbour and would otherwise miss holes
    narrower than a cell. The result is composited back only inside the original holes.
    """

    default_model = "stabilityai/stable-diffusion-2-inpainting"
    weights_marker = "model_index.json"

    def __init__(self, spec: BackendSpec) -> None:
        super().__init__(spec)
        from diffusers import StableDiffusionInpaintPipeline

        self.device = spec.torch_device()
        self.dtype = spec.torch_dtype(self.device)
        self.steps = int(spec.option("steps", 25))
        self.prompt = str(spec.option("prompt", ""))
        self.negative_prompt = spec.option("negative_prompt", None)
        self.guidance_scale = float(spec.option("guidance_scale", 1.0))
        self.seed = int(spec.option("seed", 0))
        self.mask_dilation = int(spec.option("mask_dilation", 4))
        if self.steps < 1 or self.mask_dilation < 0:
            raise ValueError(
                f"sd options need steps >= 1 and mask_dilation >= 0, got steps={self.steps}, "
                f"mask_dilation={self.mask_dilation}"
            )

        def load(source: str, **kwargs: Any):
            return StableDiffusionInpaintPipeline.from_pretrained(
                source,
                **diffusers_dtype(self.dtype),
                safety_checker=None,
                requires_safety_checker=False,
                **kwargs,
            )

        self.pipe = load_pretrained(
            "inpaint", self.name, self.model_id, load, self.weights_marker, self.default_model
        )
        self.pipe.to(self.device)
        self.pipe.set_progress_bar_config(disable=True)
        self.cell = int(self.pipe.vae_scale_factor)

    def model_mask(self, holes: np.ndarray) -> np.ndarray:
        """The mask given to the pipeline: holes (F, H, W) bool dilated by ``mask_dilation`` px
        and grown to whole latent cells -> (F, H, W) bool."""
        if self.mask_dilation:
            size = 2 * self.mask_dilation + 1
            kernel = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (size, size))
            holes = np.stack([cv2.dilate(m.astype(np.uint8), kernel) for m in holes]) > 0
        t = torch.from_numpy(holes)[:, None].float()
        cells = F.max_pool2d(t, self.cell, self.cell, ceil_mode=True)
        grown = F.interpolate(cells, scale_factor=self.cell, mode="nearest")
        return grown[:, 0, : holes.shape[1], : holes.shape[2]].numpy() > 0.5

    def inpaint(self, images: np.ndarray, holes: np.ndarray) -> np.ndarray:
        check_inpaint_inputs(images, holes)
        filled = images.copy()
        todo = np.flatnonzero(holes.reshape(len(holes), -1).any(axis=1))  # skip hole-free frames
        h, w = images.shape[1:3]
        for start in range(0, len(todo), self.spec.batch_size):
            idx = todo[start : start + self.spec.batch_size]
            image = torch.from_numpy(images[idx]).permute(0, 3, 1, 2).float().div(255)
            mask = torch.from_numpy(self.model_mask(holes[idx]))[:, None].float()
            negative = None
            if self.negative_prompt is not None:
                negative = [str(self.negative_prompt)] * len(idx)
            # One generator per frame, all seeded alike: identical reruns, results that do not
            # depend on the batch size, and the same starting noise in every frame.
            generators = [torch.Generator("cpu").manual_seed(self.seed) for _ in idx]
            result = self.pipe(
                prompt=[self.prompt] * len(idx),
                negative_prompt=negative,
                image=image,
                mask_image=mask,
                height=h,
                width=w,
                num_inference_steps=self.steps,
                guidance_scale=self.guidance_scale,
                generator=generators,
                output_type="pt",
            ).images  # (B, 3, H, W) in [0, 1]
            rgb = (result.float().clamp(0, 1) * 255).round().to(torch.uint8)
            filled[idx] = rgb.permute(0, 2, 3, 1).cpu().numpy()
        return composite(images, filled, holes)
