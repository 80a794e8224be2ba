"""Inpainting backends: only holes change, everything else is bit-identical; sd is seeded."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest

from dvg.backends import INPAINT_BACKENDS, BackendSpec
from dvg.backends.inpaint import composite

SENTINEL = np.array([255, 0, 255], np.uint8)  # magenta marks unfilled hole pixels


def _holes(n: int = 3, h: int = 32, w: int = 48) -> np.ndarray:
    holes = np.zeros((n, h, w), bool)
    holes[:, 8:20, 10:17] = True  # a disocclusion band
    holes[:, 25, 40] = True  # a single pixel
    holes[1] = False  # a frame without holes
    return holes


def _with_sentinel(frames: np.ndarray, holes: np.ndarray) -> np.ndarray:
    images = frames.copy()
    images[holes] = SENTINEL
    return images


def _assert_only_holes_changed(images, out, holes) -> None:
    assert out.shape == images.shape and out.dtype == np.uint8
    np.testing.assert_array_equal(out[~holes], images[~holes])  # bit-identical outside
    assert not (out[holes] == SENTINEL).all(axis=-1).any()  # every hole pixel repainted


@pytest.fixture(scope="module")
def sd(sd_dir: Path):
    spec = BackendSpec("sd", model=str(sd_dir), device="cpu", batch_size=2, options={"steps": 2})
    return INPAINT_BACKENDS.create(spec)


def test_telea_fills_holes_from_their_surroundings(frames: np.ndarray) -> None:
    holes = _holes()
    gray = np.full_like(frames, 120)
    images = _with_sentinel(gray, holes)
    out = INPAINT_BACKENDS.create(BackendSpec("telea")).inpaint(images, holes)
    _assert_only_holes_changed(images, out, holes)
    # Surrounded by uniform gray, the fill is that gray (not the magenta inside the hole).
    assert np.abs(out[holes].astype(int) - 120).max() <= 3


def test_telea_is_the_composite_of_opencvs_whole_frame_inpaint() -> None:
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, (4, 40, 64, 3), dtype=np.uint8)
    holes = rng.random((4, 40, 64)) < 0.2
    holes[:, 10:30, 20:31] = True  # a wide band beside scattered pixels
    holes[2] = False
    out = INPAINT_BACKENDS.create(BackendSpec("telea", options={"radius": 4})).inpaint(
        images, holes
    )
    filled = np.stack(
        [cv2.inpaint(im, h.astype(np.uint8) * 255, 4, cv2.INPAINT_TELEA)
         for im, h in zip(images, holes, strict=True)]
    )  # fmt: skip
    np.testing.assert_array_equal(out, composite(images, filled, holes))
    assert not np.shares_memory(out, images)


def test_telea_radius_option_and_validation(frames: np.ndarray) -> None:
    with pytest.raises(ValueError, match="radius"):
        INPAINT_BACKENDS.create(BackendSpec("telea", options={"radius": 0}))
    telea = INPAINT_BACKENDS.create(BackendSpec("telea", options={"radius": 5}))
    with pytest.raises(ValueError, match="multiples of 8"):
        telea.inpaint(frames[:, :30], np.zeros(frames[:, :30].shape[:3], bool))
    with pytest.raises(ValueError, match="holes must be"):
        telea.inpaint(frames, np.zeros(frames.shape[:3], np.uint8))
    with pytest.raises(ValueError, match="images must be"):
        telea.inpaint(frames.astype(np.float32), np.zeros(frames.shape[:3], bool))


def test_sd_repaints_only_the_holes(sd, frames: np.ndarray) -> None:
    holes = _holes()
    images = _with_sentinel(frames, holes)
    out = sd.inpaint(images, holes)
    _assert_only_holes_changed(images, out, holes)
    np.testing.assert_array_equal(out[1], images[1])  # hole-free frame untouched


def test_sd_is_deterministic_and_seeded(sd, sd_dir: Path, frames: np.ndarray) -> None:
    holes = _holes()
    images = _with_sentinel(frames, holes)
    first = sd.inpaint(images, holes)
    np.testing.assert_array_equal(sd.inpaint(images, holes), first)
    # One generator per frame: a different batch size gives the same pixels (up to rounding).
    single = INPAINT_BACKENDS.create(
        BackendSpec("sd", model=str(sd_dir), device="cpu", batch_size=1, options={"steps": 2})
    )
    assert np.abs(single.inpaint(images, holes).astype(int) - first).max() <= 1
    reseeded = INPAINT_BACKENDS.create(
        BackendSpec("sd", model=str(sd_dir), device="cpu", options={"steps": 2, "seed": 7})
    )
    assert (reseeded.inpaint(images, holes)[holes] != first[holes]).any()


def test_sd_prompt_and_guidance_reach_the_model(sd, sd_dir: Path, frames: np.ndarray) -> None:
    holes = _holes()
    images = _with_sentinel(frames, holes)
    base = sd.inpaint(images, holes)
    prompted = INPAINT_BACKENDS.create(
        BackendSpec(
            "sd",
            model=str(sd_dir),
            device="cpu",
            options={
                "steps": 2,
                "prompt": "a brick wall",
                "negative_prompt": "blur",
                "guidance_scale": 5.0,
            },
        )
    )
    out = prompted.inpaint(images, holes)
    _assert_only_holes_changed(images, out, holes)
    assert (out[holes] != base[holes]).any()


def test_sd_model_mask_covers_whole_latent_cells(sd) -> None:
    cell = sd.cell  # the tiny VAE downsamples by 2 (the real one by 8)
    holes = np.zeros((1, 32, 48), bool)
    holes[0, 13, 21] = True
    mask = sd.model_mask(holes)[0]
    d = sd.mask_dilation
    assert mask[13, 21] and mask[13 - d, 21] and mask[13, 21 + d]
    ys, xs = np.nonzero(mask)
    assert ys.min() % cell == 0 and (ys.max() + 1) % cell == 0
    assert xs.min() % cell == 0 and (xs.max() + 1) % cell == 0
    blocks = mask.reshape(32 // cell, cell, 48 // cell, cell)
    assert (blocks.all(axis=(1, 3)) == blocks.any(axis=(1, 3))).all()  # whole cells only
