"""Window blending (issue 5, acceptance 4): no seam at window boundaries of a long video.

E_warp (Lai et al.) between consecutive output frames, on a synthetic static-camera video: the
true flow is zero, so the warp is the identity and every pixel is valid. Pairs are split into
seam pairs (the last frame emitted by one window and the first emitted by the next: different
windows, different VAE decode calls) and within-window pairs.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from dvg.geometry.rendering import forward_render
from dvg.synthetic.scenes import render_scene
from pipelines.model import ModelConfig, SpatialDreamerModel, save_tiny_sd, save_tiny_svd
from pipelines.pipeline import SpatialDreamerPipeline

FRAMES, WINDOW, OVERLAP = 24, 8, 2


@pytest.fixture(scope="module")
def pipe(tmp_path_factory: pytest.TempPathFactory) -> SpatialDreamerPipeline:
    root = tmp_path_factory.mktemp("blending_model")
    config = ModelConfig(
        svd=str(save_tiny_svd(root / "svd")),
        refiner=str(save_tiny_sd(root / "sd", seed=1)),
        til=True,
    )
    SpatialDreamerModel.from_components(config).save_pretrained(root / "model")
    pipeline = SpatialDreamerPipeline.from_pretrained(Path(root / "model"))
    pipeline.set_progress_bar_config(disable=True)
    return pipeline


@pytest.fixture(scope="module")
def video() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    render = render_scene("fronto_integer", height=64, width=64, num_frames=FRAMES)
    # Static camera: the ground-truth flow is zero, so E_warp needs no warping.
    assert float(np.nanmax(np.abs(render.flow_next.numpy()))) < 1e-4
    right = forward_render(render.left, render.disparity)

    def to_uint8(x: torch.Tensor) -> np.ndarray:
        return (x.clamp(0, 1) * 255).round().to(torch.uint8).permute(0, 2, 3, 1).numpy()

    return to_uint8(render.left), to_uint8(right.image), right.holes[:, 0].numpy()


def warp_errors(frames: np.ndarray) -> np.ndarray:
    """(F, H, W, 3) uint8 -> (F-1,) E_warp of each consecutive pair (zero flow, all valid)."""
    y = frames.astype(np.float64) / 255.0
    return ((y[1:] - y[:-1]) ** 2).sum(axis=-1).mean(axis=(1, 2))


def seam_pairs(window: int, overlap: int) -> list[int]:
    """Index t of the pairs (t, t+1) whose frames were emitted by different windows."""
    step = window - overlap
    return [start - 1 for start in range(step, FRAMES, step)]


def split(errors: np.ndarray, window: int, overlap: int) -> tuple[float, float]:
    seams = seam_pairs(window, overlap)
    within = [t for t in range(len(errors)) if t not in seams]
    return float(errors[seams].mean()), float(errors[within].mean())


def test_seam_error_of_a_random_model_is_within_noise_of_its_within_window_error(pipe, video):
    """The real pipeline and model on a long synthetic video: seams are not outliers.

    With random weights each frame's output is dominated by its own noise, so seam and
    within-window E_warp are equal in expectation (ratio 0.97-1.07 over seeds 0-4 with this
    setup): the strict inequality of a trained model is asserted up to that noise (25 %), and
    the blending itself is checked against an ablation in the next test.
    """
    left, warped, holes = video
    out = pipe.right_views(
        left, warped, holes, steps=3, window=WINDOW, overlap=OVERLAP, keep_known=False
    )
    assert out.shape == (FRAMES, 64, 64, 3)
    seam, within = split(warp_errors(out), WINDOW, OVERLAP)
    print(f"E_warp x1e-3: seam {seam * 1e3:.3f}, within windows {within * 1e3:.3f}")
    assert seam <= 1.25 * within


def coherent_denoiser(noisy, timesteps, masked, mask, reference, embeddings, time_ids, deviation):
    """Test double of the U-Net: the exact v-prediction for clips whose frames are one N(0, I)
    latent. It is perfectly coherent within a window, so with independent noise each window
    lands on a different latent: the seam jump a trained video model shows, without a model."""
    sigma = (4.0 * timesteps.float()).exp().view(-1, 1, 1, 1, 1)
    c_in, c_skip = 1.0 / (sigma**2 + 1.0).sqrt(), 1.0 / (sigma**2 + 1.0)
    c_out = -sigma * c_in
    z = noisy.float() / c_in
    denoised = z.mean(dim=1, keepdim=True) / (1.0 + sigma**2 / z.shape[1])
    return (denoised - c_skip * z) / c_out


def test_blending_removes_most_of_the_seam_jump_of_independent_windows(pipe, video, monkeypatch):
    monkeypatch.setattr(pipe.model, "forward", coherent_denoiser)
    left, warped, holes = video
    kwargs = {"steps": 3, "window": WINDOW, "keep_known": False}
    naive = warp_errors(
        pipe.right_views(left, warped, holes, overlap=0, decode_context=0, **kwargs)
    )
    blended = warp_errors(pipe.right_views(left, warped, holes, overlap=OVERLAP, **kwargs))
    naive_seam, naive_within = split(naive, WINDOW, 0)
    blended_seam, blended_within = split(blended, WINDOW, OVERLAP)
    print(
        f"E_warp x1e-3: no blending seam {naive_seam * 1e3:.3f} within {naive_within * 1e3:.3f}; "
        f"blending seam {blended_seam * 1e3:.3f} within {blended_within * 1e3:.3f}; "
        f"largest jump {naive.max() * 1e3:.3f} -> {blended.max() * 1e3:.3f}"
    )
    # Independent windows jump at every seam (far above their within-window error) ...
    assert naive_seam > 2.0 * naive_within
    # ... and the latent cross-fade plus decode context spreads and shrinks that jump.
    assert blended_seam < 0.75 * naive_seam
    assert blended.max() < 0.75 * naive.max()
