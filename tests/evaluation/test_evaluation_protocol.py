"""The evaluation protocol: pose conventions (RealEstate10K round trip), warping, alignment."""

from __future__ import annotations

from collections import Counter

import numpy as np
import pytest

from dvg.synthetic import render_scene
from evaluation.benchmarks import CameraTrack, parse_camera_file, write_camera_file
from evaluation.benchmarks.synthetic import SyntheticConfig, synthetic_pairs
from evaluation.protocol import align_to_ground_truth, align_to_target, warp_view


def image(frame) -> np.ndarray:
    return np.ascontiguousarray((frame.clamp(0, 1) * 255).round().byte().permute(1, 2, 0).numpy())


def covered_psnr(a: np.ndarray, b: np.ndarray, covered: np.ndarray) -> float:
    mse = ((a.astype(np.float64) - b) ** 2)[covered].mean() / 255**2
    return float(10 * np.log10(1 / mse))


@pytest.fixture(scope="module")
def orbit():
    return render_scene("boxes_orbit", seed=0, height=96, width=128, num_frames=8)


def test_realestate10k_camera_file_round_trip_gives_the_renderers_poses(orbit, tmp_path):
    """Write the renderer's cameras in RealEstate10K format (intrinsics normalised by size),
    parse them back and warp frame 0 to frame 5 with exact depth: the warp must match the
    rendered frame 5 where it is covered, which only holds if the axis conventions agree."""
    height, width = 96, 128
    K = orbit.K.numpy().astype(np.float64)
    normalised = np.array([K[0, 0] / width, K[1, 1] / height, K[0, 2] / width, K[1, 2] / height])
    track = CameraTrack(
        "https://www.youtube.com/watch?v=synthetic",
        np.arange(8, dtype=np.int64) * 33_366,
        np.tile(normalised, (8, 1)),
        orbit.world_to_camera.numpy().astype(np.float64),
    )
    write_camera_file(tmp_path / "clip.txt", track)
    parsed = parse_camera_file(tmp_path / "clip.txt")
    assert parsed.url == track.url
    np.testing.assert_array_equal(parsed.timestamps, track.timestamps)
    np.testing.assert_allclose(parsed.K(0, width, height), K, rtol=1e-8)

    T = parsed.world_to_camera[5] @ np.linalg.inv(parsed.world_to_camera[0])
    source, target = image(orbit.left[0]), image(orbit.left[5])
    depth = orbit.depth[0, 0].numpy()
    warped = warp_view(source, depth, parsed.K(0, width, height), T)
    good = covered_psnr(warped.image, target, ~warped.holes)
    wrong = warp_view(source, depth, parsed.K(0, width, height), np.linalg.inv(T))
    bad = covered_psnr(wrong.image, target, ~wrong.holes)
    print(f"round trip: covered PSNR {good:.1f} dB (inverse pose: {bad:.1f} dB)")
    assert good > 24 and good > bad + 6


def test_camera_file_errors_name_the_line(tmp_path):
    path = tmp_path / "bad.txt"
    path.write_text("https://example.com\n1 0.5 0.5 0.5 0.5 0 0 1 0 0\n")
    with pytest.raises(ValueError, match=r"bad\.txt:2: expected 19 numbers"):
        parse_camera_file(path)


def test_ground_truth_alignment_recovers_depth_from_an_affine_inverse_depth(orbit):
    depth = orbit.depth[0, 0].numpy()
    relative = 3.0 / depth + 0.7  # unknown scale and shift
    np.testing.assert_allclose(align_to_ground_truth(relative, depth), depth, rtol=1e-4)


def test_photometric_scale_fit_finds_the_true_scale(orbit):
    depth = orbit.depth[0, 0].numpy()
    K = orbit.K.numpy().astype(np.float64)
    w2c = orbit.world_to_camera.numpy().astype(np.float64)
    T = w2c[5] @ np.linalg.inv(w2c[0])
    inverse = 1.0 / depth
    _, scale = align_to_target(inverse, image(orbit.left[0]), image(orbit.left[5]), K, T)
    true_scale = float(np.median(inverse))  # 1/z = s * q / median(q)  =>  s = median(1/z)
    assert scale == pytest.approx(true_scale, rel=0.2)


def test_synthetic_pairs_cover_stereo_and_temporal_offsets():
    pairs = list(synthetic_pairs(SyntheticConfig(height=48, width=64, frames=12, seeds=(0,))))
    counts = Counter(p.offset for p in pairs)
    # every 2nd frame of 4 scenes; every start frame of the one scene whose camera moves
    assert counts == {"stereo": 24, "t=5": 12 - 5, "t=10": 12 - 10}
    assert len({p.id for p in pairs}) == len(pairs)
    assert all(p.depth is not None and p.source.shape == (48, 64, 3) for p in pairs)
