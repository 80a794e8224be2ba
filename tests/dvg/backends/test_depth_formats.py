"""Compact and foreign depth files: dvg's 16-bit PNG + scale, iw3 exports, inverse-depth npz;
each read through the sidecar backend onto the video's native grid."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest

from dvg.backends import DEPTH_BACKENDS, BackendSpec, DepthContext
from dvg.backends.depth_formats import (
    SCALE_KEY,
    frame_png_name,
    read_inverse_depth_png,
    write_inverse_depth_png,
)
from dvg.synthetic import render_scene, write_clip
from dvg.video import FrameTransform
from pipelines.convert.warp import DepthFile

H, W, N = 32, 48, 4


def _ramp(n: int = N, h: int = H, w: int = W) -> np.ndarray:
    """(n, h, w) smooth positive inverse depth, different per frame (asymmetric in x, y)."""
    y, x = np.mgrid[0:h, 0:w].astype(np.float32)
    return np.stack([0.2 + 0.01 * x + 0.03 * y + 0.1 * k for k in range(n)]).astype(np.float32)


def _context(video: Path, indices, size=(W, H)) -> DepthContext:
    transform = FrameTransform(size, (0, 0, *size), size, size)
    return DepthContext(str(video), np.asarray(indices, np.int64), transform)


def _frames(n: int) -> np.ndarray:
    return np.zeros((n, H, W, 3), np.uint8)


def test_png_keeps_the_scale_and_16_bits_of_each_frame(tmp_path):
    depth = _ramp()[2] * 7.5  # any scale: relative values across frames must survive
    path = tmp_path / "f.png"
    scale = write_inverse_depth_png(path, depth)
    assert scale == pytest.approx(depth.max() / 65535)
    image = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
    assert image.dtype == np.uint16 and image.max() == 65535  # the full range is used
    back = read_inverse_depth_png(path)
    np.testing.assert_allclose(back, depth, atol=depth.max() / 65535)
    assert not (tmp_path / "f.png.tmp").exists()
    write_inverse_depth_png(tmp_path / "zero.png", np.zeros((3, 4), np.float32))
    assert (read_inverse_depth_png(tmp_path / "zero.png") == 0).all()


def test_png_without_scale_is_refused_naming_the_file(tmp_path):
    path = tmp_path / "plain.png"
    cv2.imwrite(str(path), np.ones((4, 4), np.uint16))
    with pytest.raises(ValueError, match=rf"plain\.png has no {SCALE_KEY}"):
        read_inverse_depth_png(path)


def test_sidecar_reads_a_dvg_depth_folder_stored_at_half_size(tmp_path):
    video = tmp_path / "clip.mp4"
    folder = tmp_path / "clip.invdepth"
    folder.mkdir()
    full = _ramp()
    for k, depth in enumerate(full):
        write_inverse_depth_png(folder / frame_png_name(k), depth[::2, ::2])
    backend = DEPTH_BACKENDS.create(BackendSpec("sidecar"))
    assert backend.locate(video) == (folder, "invdepth-png")
    pred = backend.predict(_frames(2), _context(video, [1, 3]))
    assert pred.inverse_depth.shape == (2, H, W) and not pred.metric
    # A linear ramp subsampled by 2 and resized back: equal inside, off by one step at edges.
    np.testing.assert_allclose(
        pred.inverse_depth[:, 2:-2, 2:-2], full[[1, 3], 2:-2, 2:-2], atol=0.03
    )


def test_a_map_of_another_aspect_ratio_is_refused(tmp_path):
    folder = tmp_path / "clip.invdepth"
    folder.mkdir()
    write_inverse_depth_png(folder / frame_png_name(0), np.ones((H, H), np.float32))
    backend = DEPTH_BACKENDS.create(BackendSpec("sidecar"))
    with pytest.raises(ValueError, match="another aspect ratio"):
        backend.predict(_frames(1), _context(tmp_path / "clip.mp4", [0]))


def test_inverse_npz_fp16_single_array_and_named_arrays(tmp_path):
    video = tmp_path / "clip.mp4"
    full = _ramp()
    np.savez_compressed(tmp_path / "clip.invdepth.npz", full.astype(np.float16))
    backend = DEPTH_BACKENDS.create(BackendSpec("sidecar"))
    pred = backend.predict(_frames(1), _context(video, [2]))
    np.testing.assert_allclose(pred.inverse_depth[0], full[2], rtol=1e-3)
    # Several arrays: the one named invdepth is taken; none named so -> the file is named.
    np.savez(tmp_path / "two.npz", invdepth=full * 2, other=full)
    pred = DepthFile(tmp_path / "two.npz").predict(_frames(1), _context(video, [0]))
    np.testing.assert_allclose(pred.inverse_depth[0], full[0] * 2, rtol=1e-6)
    np.savez(tmp_path / "bad.disparity.npz", a=full, b=full)
    with pytest.raises(ValueError, match=r"bad\.disparity\.npz holds several arrays"):
        DepthFile(tmp_path / "bad.disparity.npz").predict(_frames(1), _context(video, [0]))


def _iw3_export(folder: Path, fps, mapper: str, skip_mapper: bool, frames: int) -> np.ndarray:
    """An iw3 video export (layout of nagadomi/nunif iw3/export_config.py): per-frame
    normalised 16-bit depth, 0 = far, 65535 = near, named by iw3's 8-digit frame index."""
    (folder / "depth").mkdir(parents=True)
    (folder / "rgb").mkdir()
    (folder / "iw3_export.yml").write_text(
        f"type: video\nbasename: clip\nfps: {fps}\nrgb_dir: rgb\ndepth_dir: depth\n"
        f"audio_file: audio.m4a\nmapper: {mapper}\nskip_mapper: {str(skip_mapper).lower()}\n"
        "skip_edge_dilation: false\nupdated_at: '2025-01-01T00:00:00'\nuser_data: {}\n"
    )
    values = np.linspace(0, 65535, H * W * frames).reshape(frames, H, W)
    values = np.rint(values).astype(np.uint16)
    for k in range(frames):
        cv2.imwrite(str(folder / "depth" / f"{k:08d}.png"), values[k])
    return values.astype(np.float32) / 65535


def test_iw3_export_applies_its_mapper_and_frame_rate(tmp_path):
    render = render_scene("example", seed=0, height=H, width=W, num_frames=4)
    written = write_clip(render, tmp_path, "clip")
    written["depth"].unlink()  # the exact depth would be found first
    video, fps = written["video"], render.fps
    # An export at half the video's rate (iw3 --max-fps): native frame 2 is export frame 1.
    normalised = _iw3_export(tmp_path / "clip", f"{int(fps)}/2", "pow2", False, frames=2)
    backend = DEPTH_BACKENDS.create(BackendSpec("sidecar"))
    path, kind = backend.locate(video)
    assert kind == "iw3" and path == tmp_path / "clip" / "iw3_export.yml"
    pred = backend.predict(_frames(1), _context(video, [2]))
    np.testing.assert_allclose(pred.inverse_depth[0], normalised[1] ** 2, rtol=1e-5, atol=1e-6)
    # "Export disparity" (skip_mapper): values are used as written; explicit folder via --depth.
    other = tmp_path / "other"
    normalised = _iw3_export(other, fps, "pow2", True, frames=1)
    pred = DepthFile(other).predict(_frames(1), _context(video, [0]))
    np.testing.assert_allclose(pred.inverse_depth[0], normalised[0], rtol=1e-5, atol=1e-6)


def test_iw3_export_with_an_unknown_mapper_is_named(tmp_path):
    _iw3_export(tmp_path / "clip", 30, "magic", False, frames=1)
    backend = DEPTH_BACKENDS.create(BackendSpec("sidecar"))
    with pytest.raises(ValueError, match="unknown iw3 mapper 'magic'"):
        backend.predict(_frames(1), _context(tmp_path / "clip.mp4", [0]))
