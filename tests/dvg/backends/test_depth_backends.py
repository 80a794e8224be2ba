"""Depth backends end to end through the real loaders: dpt, depth-anything, marigold, sidecar."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
import torch.nn.functional as F

from dvg.backends import (
    DEPTH_BACKENDS,
    BackendSpec,
    DepthContext,
    DPTDepth,
    MissingSidecarError,
)


class CropResize:
    """Stand-in for dvg.video.FrameTransform: crop (x0, y0, w, h) of the source, then resize."""

    def __init__(self, source_size, crop, output_size) -> None:
        self.source_size, self.crop, self.output_size = source_size, crop, output_size

    def apply(self, image: np.ndarray, interpolation: int = cv2.INTER_AREA) -> np.ndarray:
        x0, y0, cw, ch = self.crop
        assert image.shape[:2] == self.source_size[::-1]
        return cv2.resize(
            image[y0 : y0 + ch, x0 : x0 + cw], self.output_size, interpolation=interpolation
        )

    def scale_intrinsics(self, K: np.ndarray) -> np.ndarray:
        x0, y0, cw, ch = self.crop
        sx, sy = self.output_size[0] / cw, self.output_size[1] / ch
        A = np.array([[sx, 0, (0.5 - x0) * sx - 0.5], [0, sy, (0.5 - y0) * sy - 0.5], [0, 0, 1]])
        return A @ np.asarray(K, dtype=np.float64)


def _context(frames: np.ndarray, path: str = "clip.mp4") -> DepthContext:
    h, w = frames.shape[1:3]
    return DepthContext(path, np.arange(len(frames)), CropResize((w, h), (0, 0, w, h), (w, h)))


def _reference(backend, frames: np.ndarray, model_class) -> np.ndarray:
    """A freshly loaded model run by hand: processor -> model -> bicubic to the frame size."""
    model = model_class.from_pretrained(backend.model_id).eval()
    inputs = backend.processor(
        images=list(frames), return_tensors="pt", input_data_format="channels_last"
    )
    with torch.no_grad():
        depth = model(pixel_values=inputs["pixel_values"]).predicted_depth
    size = frames.shape[1:3]
    return F.interpolate(depth[:, None], size=size, mode="bicubic")[:, 0].clamp_min(0).numpy()


# ---------------------------------------------------------------- dpt / depth-anything


@pytest.mark.parametrize("fixture", ["dpt_dir", "dpt_vit_dir"])
def test_dpt_matches_a_hand_run_model(request, fixture: str, textured) -> None:
    from transformers import DPTForDepthEstimation

    frames = textured(2, 32, 32)
    spec = BackendSpec("dpt", model=str(request.getfixturevalue(fixture)), device="cpu")
    backend = DEPTH_BACKENDS.create(spec)
    pred = backend.predict(frames, _context(frames))
    assert pred.inverse_depth.shape == (2, 32, 32) and pred.inverse_depth.dtype == np.float32
    assert not pred.metric and pred.focal_px is None
    np.testing.assert_allclose(
        pred.inverse_depth, _reference(backend, frames, DPTForDepthEstimation), rtol=1e-5, atol=1e-5
    )


@pytest.mark.parametrize("fixture", ["dpt_dir", "dpt_vit_dir"])
def test_dpt_keeps_the_aspect_ratio_as_midas(request, fixture: str, frames: np.ndarray) -> None:
    # 32 x 48 frames are processed at 32 x 64 (aspect kept, sides multiples of 32), which
    # transformers' ViT DPT only accepts with the patch-grid hooks.
    spec = BackendSpec(
        "dpt", model=str(request.getfixturevalue(fixture)), device="cpu", batch_size=2
    )
    backend = DEPTH_BACKENDS.create(spec)
    inputs = backend.processor(
        images=list(frames), return_tensors="pt", input_data_format="channels_last"
    )
    assert tuple(inputs["pixel_values"].shape) == (3, 3, 32, 64)
    pred = backend.predict(frames, _context(frames))
    depth = pred.inverse_depth
    assert depth.shape == (3, 32, 48) and np.isfinite(depth).all() and (depth >= 0).all()
    assert depth.min() > 0.5  # random head with a unit bias: positive everywhere
    assert np.abs(depth[0] - depth[1]).max() > 1e-3  # depends on the image
    single = DEPTH_BACKENDS.create(
        BackendSpec(spec.name, model=spec.model, device="cpu", batch_size=1)
    )
    np.testing.assert_allclose(
        single.predict(frames, _context(frames)).inverse_depth, depth, rtol=1e-5, atol=1e-5
    )


def test_dpt_default_and_aliases() -> None:
    assert DPTDepth.resolve_model(BackendSpec("dpt")) == "Intel/dpt-hybrid-midas"
    beit = BackendSpec("dpt", model="midas-v3.1-beit-large-512")
    assert DPTDepth.resolve_model(beit) == "Intel/dpt-beit-large-512"
    assert DPTDepth.resolve_model(BackendSpec("dpt", model="/w/dpt")) == "/w/dpt"


def test_dpt_processor_overrides(dpt_dir: Path, frames: np.ndarray) -> None:
    spec = BackendSpec(
        "dpt", model=str(dpt_dir), device="cpu", options={"processor": {"keep_aspect_ratio": False}}
    )
    backend = DEPTH_BACKENDS.create(spec)
    inputs = backend.processor(
        images=list(frames), return_tensors="pt", input_data_format="channels_last"
    )
    assert tuple(inputs["pixel_values"].shape[-2:]) == (32, 32)
    assert backend.predict(frames, _context(frames)).inverse_depth.shape == (3, 32, 48)


def test_depth_anything_end_to_end(depth_anything_dir: Path, textured) -> None:
    from transformers import AutoModelForDepthEstimation

    spec = BackendSpec("depth-anything", model=str(depth_anything_dir), device="cpu", batch_size=2)
    backend = DEPTH_BACKENDS.create(spec)
    square = textured(2, 28, 28)
    pred = backend.predict(square, _context(square))
    np.testing.assert_allclose(
        pred.inverse_depth,
        _reference(backend, square, AutoModelForDepthEstimation),
        rtol=1e-5,
        atol=1e-5,
    )
    frames = textured(3, 32, 48)
    depth = backend.predict(frames, _context(frames)).inverse_depth
    assert depth.shape == (3, 32, 48) and depth.dtype == np.float32 and (depth >= 0).all()
    assert np.abs(depth[0] - depth[1]).max() > 1e-3


def test_depth_anything_metric_checkpoint_is_inverted(
    depth_anything_dir: Path, tmp_path: Path, frames: np.ndarray
) -> None:
    # The metric head (sigmoid x max_depth) has the same weights; only the config differs.
    metric_dir = tmp_path / "depth-anything-metric"
    shutil.copytree(depth_anything_dir, metric_dir)
    config = json.loads((metric_dir / "config.json").read_text())
    config.update(depth_estimation_type="metric", max_depth=20)
    (metric_dir / "config.json").write_text(json.dumps(config))
    metric = DEPTH_BACKENDS.create(BackendSpec("depth-anything", model=str(metric_dir)))
    pred = metric.predict(frames, _context(frames))
    assert pred.metric
    z = 1 / pred.inverse_depth
    assert z.min() > 0 and z.max() <= 20 + 1e-3  # metres within the head's range
    relative = DEPTH_BACKENDS.create(BackendSpec("depth-anything", model=str(depth_anything_dir)))
    assert not relative.predict(frames, _context(frames)).metric


# ---------------------------------------------------------------- marigold


def test_marigold_converts_affine_depth_to_inverse_depth(marigold_dir: Path, frames) -> None:
    spec = BackendSpec("marigold", model=str(marigold_dir), device="cpu", batch_size=2)
    backend = DEPTH_BACKENDS.create(spec)
    pred = backend.predict(frames, _context(frames))
    inv = pred.inverse_depth
    assert inv.shape == (3, 32, 48) and inv.dtype == np.float32 and not pred.metric
    # 1 / (d + 0.1) with d in [0, 1]
    assert inv.min() >= 1 / 1.1 - 1e-5 and inv.max() <= 10 + 1e-4
    # The pipeline run by hand on one frame with the same seed gives d; inverse = 1 / (d + 0.1).
    image = torch.from_numpy(frames[:1]).permute(0, 3, 1, 2).float() / 255
    d = (
        backend.pipe(image, generator=[torch.Generator().manual_seed(0)], output_type="pt")
        .prediction[:, 0]
        .numpy()
    )
    np.testing.assert_allclose(inv[:1], 1 / (d + 0.1), rtol=1e-5)
    # Deterministic, independent of the batch size, and depth_offset is the d offset.
    again = DEPTH_BACKENDS.create(
        BackendSpec(
            "marigold", model=spec.model, device="cpu", batch_size=1, options={"depth_offset": 0.5}
        )
    )
    other = again.predict(frames, _context(frames)).inverse_depth
    np.testing.assert_allclose(1 / other - 0.5, 1 / inv - 0.1, atol=1e-5)
    np.testing.assert_array_equal(backend.predict(frames, _context(frames)).inverse_depth, inv)


# ---------------------------------------------------------------- sidecar

NATIVE_W, NATIVE_H, N_NATIVE = 64, 40, 6
TRANSFORM = CropResize((NATIVE_W, NATIVE_H), (8, 4, 48, 32), (24, 16))


def _z_depth() -> np.ndarray:
    """(6, 40, 64) float32 z-depth: frame i is a ramp from 1 + i to 2 + i metres."""
    ramp = np.linspace(0, 1, NATIVE_W, dtype=np.float32)[None, None, :]
    z = np.arange(1, N_NATIVE + 1, dtype=np.float32)[:, None, None] + ramp
    return np.broadcast_to(z, (N_NATIVE, NATIVE_H, NATIVE_W)).copy()


def _sidecar(video_dir: Path, indices=(3, 0, 5)) -> tuple[np.ndarray, DepthContext]:
    """(frames, context) for native frames ``indices`` of ``video_dir/clip.mp4``."""
    frames = np.zeros((len(indices), 16, 24, 3), np.uint8)
    context = DepthContext(str(video_dir / "clip.mp4"), np.array(indices, np.int64), TRANSFORM)
    return frames, context


def _expected_from_inverse(inverse: np.ndarray, indices) -> np.ndarray:
    return np.stack([TRANSFORM.apply(inverse[i], interpolation=cv2.INTER_LINEAR) for i in indices])


@pytest.fixture
def sidecar():
    return DEPTH_BACKENDS.create(BackendSpec("sidecar"))


@pytest.mark.parametrize("fmt", ["npy", "npz", "png"])
def test_sidecar_z_depth_formats(sidecar, tmp_path: Path, fmt: str) -> None:
    z = _z_depth()
    if fmt == "npy":
        np.save(tmp_path / "clip.depth.npy", z)
    elif fmt == "npz":
        np.savez_compressed(tmp_path / "clip.depth.npz", depth=z)
    else:
        folder = tmp_path / "clip.depth"
        folder.mkdir()
        z = np.round(z * 1000) / 1000  # millimetre PNGs
        for i, frame in enumerate(z):
            cv2.imwrite(str(folder / f"{i:06d}.png"), np.round(frame * 1000).astype(np.uint16))
    frames, context = _sidecar(tmp_path)
    pred = sidecar.predict(frames, context)
    assert pred.metric and pred.focal_px is None  # no camera.json
    assert pred.inverse_depth.shape == (3, 16, 24) and pred.inverse_depth.dtype == np.float32
    np.testing.assert_allclose(
        pred.inverse_depth, _expected_from_inverse(1 / z, (3, 0, 5)), rtol=1e-5
    )
    # frame 3 spans z in [4, 5] over the crop: 1/z within [1/5, 1/4]
    assert 0.2 - 1e-6 <= pred.inverse_depth[0].min() <= pred.inverse_depth[0].max() <= 0.25


@pytest.mark.parametrize("scale", [0.001, 0.0003, 2.5])
def test_png_depth_table_is_bitwise_the_per_pixel_arithmetic(scale: float) -> None:
    """The 16-bit PNG lookup gives every value exactly what value x scale, then 1 / z (0 for 0)
    computed on the frame gives, in float32."""
    from dvg.backends.sidecar import _inverse_depth

    raw = np.arange(65536, dtype=np.uint16).reshape(2, 128, 256)
    z = raw.astype(np.float32) * np.float32(scale)
    expected = np.where(z > 0, np.float32(1) / np.where(z > 0, z, 1), 0).astype(np.float32)
    got = _inverse_depth(raw, "png", scale)
    assert got.dtype == np.float32 and got.shape == raw.shape
    assert np.array_equal(got.view(np.int32), expected.view(np.int32))
    got[0, 0, 1] = -1  # the result is the caller's own array, not the shared table
    assert _inverse_depth(raw, "png", scale)[0, 0, 1] == expected[0, 0, 1]


@pytest.mark.parametrize("name", ["invdepth", "disparity"])
def test_sidecar_inverse_formats(sidecar, tmp_path: Path, name: str) -> None:
    inverse = 1 / _z_depth() * 7.0  # relative: any scale
    inverse[5, :2, :] = np.nan
    inverse[5, 2:4, :] = -1.0
    np.save(tmp_path / f"clip.{name}.npy", inverse)
    frames, context = _sidecar(tmp_path)
    pred = sidecar.predict(frames, context)
    assert not pred.metric
    cleaned = np.where(np.isfinite(inverse) & (inverse > 0), inverse, 0)
    np.testing.assert_allclose(
        pred.inverse_depth, _expected_from_inverse(cleaned, (3, 0, 5)), rtol=1e-5
    )
    assert (pred.inverse_depth >= 0).all() and np.isfinite(pred.inverse_depth).all()


def test_sidecar_camera_gives_focal_in_output_pixels(sidecar, tmp_path: Path) -> None:
    np.save(tmp_path / "clip.depth.npy", _z_depth())
    # The camera is given at twice the native size: fx 100 -> 50 native -> 25 after the 0.5 resize.
    K = [[100.0, 0, 64], [0, 90.0, 40], [0, 0, 1]]
    camera = {"width": 2 * NATIVE_W, "height": 2 * NATIVE_H, "K": K}
    (tmp_path / "clip.camera.json").write_text(json.dumps(camera))
    frames, context = _sidecar(tmp_path)
    pred = sidecar.predict(frames, context)
    assert pred.metric and pred.focal_px == pytest.approx(25.0)


def test_sidecar_zero_depth_means_no_depth(sidecar, tmp_path: Path) -> None:
    z = _z_depth()
    z[3] = 0
    np.save(tmp_path / "clip.depth.npy", z)
    frames, context = _sidecar(tmp_path)
    pred = sidecar.predict(frames, context)
    assert (pred.inverse_depth[0] == 0).all() and (pred.inverse_depth[1] > 0).all()


def test_sidecar_lookup_order_and_dir_option(tmp_path: Path) -> None:
    elsewhere = tmp_path / "depth-store"
    elsewhere.mkdir()
    np.save(elsewhere / "clip.depth.npy", _z_depth())
    np.save(elsewhere / "clip.invdepth.npy", np.ones_like(_z_depth()))
    backend = DEPTH_BACKENDS.create(BackendSpec("sidecar", options={"dir": str(elsewhere)}))
    assert backend.locate(tmp_path / "clip.mp4") == (elsewhere / "clip.depth.npy", "z")
    frames, context = _sidecar(tmp_path)
    assert backend.predict(frames, context).metric


def test_sidecar_missing_names_the_expected_files(sidecar, tmp_path: Path) -> None:
    frames, context = _sidecar(tmp_path)
    with pytest.raises(MissingSidecarError) as err:
        sidecar.predict(frames, context)
    assert isinstance(err.value, FileNotFoundError) and err.value.reason == "missing_sidecar"
    message = str(err.value)
    for name in (
        "clip.depth.npy",
        "clip.depth.npz",
        "clip.invdepth.npy",
        "clip.disparity.npy",
        "clip.depth/000000.png",
    ):
        assert name in message


def test_sidecar_wrong_shape_and_count(sidecar, tmp_path: Path) -> None:
    np.save(tmp_path / "clip.depth.npy", _z_depth()[:, :, :-2])
    frames, context = _sidecar(tmp_path)
    with pytest.raises(ValueError, match=r"clip.depth.npy must hold \(N, 40, 64\)"):
        sidecar.predict(frames, context)
    np.save(tmp_path / "clip.depth.npy", _z_depth()[:4])
    with pytest.raises(ValueError, match="has 4 frames but frame 5 is needed"):
        sidecar.predict(frames, context)
    np.savez(tmp_path / "other.depth.npz", z=_z_depth())
    frames, context = _sidecar(tmp_path)
    context = DepthContext(str(tmp_path / "other.mkv"), context.source_indices, TRANSFORM)
    with pytest.raises(ValueError, match="no array named 'depth'"):
        sidecar.predict(frames, context)


def test_sidecar_png_errors(sidecar, tmp_path: Path) -> None:
    folder = tmp_path / "clip.depth"
    folder.mkdir()
    cv2.imwrite(str(folder / "000000.png"), np.full((NATIVE_H, NATIVE_W), 1000, np.uint16))
    cv2.imwrite(str(folder / "000003.png"), np.full((NATIVE_H, NATIVE_W), 10, np.uint8))
    frames, context = _sidecar(tmp_path, indices=(0,))
    assert sidecar.predict(frames, context).inverse_depth == pytest.approx(1.0)
    with pytest.raises(ValueError, match=r"000003\.png must be a 16-bit"):
        sidecar.predict(*_sidecar(tmp_path, indices=(3,)))
    with pytest.raises(ValueError, match=r"000005\.png for native frame 5 is missing"):
        sidecar.predict(*_sidecar(tmp_path, indices=(5,)))


def test_sidecar_with_the_real_frame_transform(sidecar, tmp_path: Path) -> None:
    video = pytest.importorskip("dvg.video.transform")
    transform = video.FrameTransform((NATIVE_W, NATIVE_H), (8, 4, 48, 32), (24, 16), (24, 16))
    np.save(tmp_path / "clip.depth.npy", _z_depth())
    frames = np.zeros((2, 16, 24, 3), np.uint8)
    context = DepthContext(str(tmp_path / "clip.mp4"), np.array([1, 2]), transform)
    pred = sidecar.predict(frames, context)
    expected = np.stack([transform.apply(1 / _z_depth()[i], cv2.INTER_LINEAR) for i in (1, 2)])
    np.testing.assert_allclose(pred.inverse_depth, expected, rtol=1e-6)
