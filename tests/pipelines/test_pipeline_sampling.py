"""SpatialDreamerPipeline on a tiny exported model: loading, sampling controls, windows, I/O."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from pipelines.model import ModelConfig, SpatialDreamerModel, save_tiny_sd, save_tiny_svd
from pipelines.pipeline import SpatialDreamerPipeline, hole_alpha


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny model with TIL written exactly as `trainer export` writes one."""
    root = tmp_path_factory.mktemp("pipeline_model")
    config = ModelConfig(
        svd=str(save_tiny_svd(root / "svd")), refiner=str(save_tiny_sd(root / "sd", seed=1))
    )
    model = SpatialDreamerModel.from_components(config)
    model.enable_til()
    model.save_pretrained(root / "model")
    return root / "model"


@pytest.fixture(scope="module")
def pipe(model_dir: Path) -> SpatialDreamerPipeline:
    pipeline = SpatialDreamerPipeline.from_pretrained(model_dir)
    pipeline.set_progress_bar_config(disable=True)
    return pipeline


def make_chunk(frames: int, height: int = 64, width: int = 64, seed: int = 0):
    rng = np.random.default_rng(seed)
    left = rng.integers(0, 256, (frames, height, width, 3), dtype=np.uint8)
    warped = np.roll(left, -3, axis=2)
    holes = np.zeros((frames, height, width), dtype=bool)
    holes[:, 16:40, 20:28] = True
    warped[holes] = 0
    return left, warped, holes


def test_loads_an_exported_directory_with_its_til_and_scheduler(pipe):
    assert pipe.model.til is not None
    assert pipe.scheduler.config.prediction_type == "v_prediction"
    assert pipe.scheduler.config.use_karras_sigmas
    pipe.scheduler.set_timesteps(3)
    assert pipe.scheduler.sigmas[0].item() == pytest.approx(700.0)
    assert pipe.device == torch.device("cpu") and pipe.dtype == torch.float32


def test_missing_model_directory_names_it(tmp_path):
    with pytest.raises(FileNotFoundError, match="nothing-here"):
        SpatialDreamerPipeline.from_pretrained(tmp_path / "nothing-here")


def test_output_shape_dtype_and_seed_determinism(pipe):
    left, warped, holes = make_chunk(4)
    out = pipe(left, warped, holes, steps=2, seed=3)
    assert out.frames.shape == (4, 64, 64, 3) and out.frames.dtype == np.uint8
    again = pipe.right_views(left=left, warped=warped, holes=holes, steps=2, seed=3)
    other = pipe.right_views(left=left, warped=warped, holes=holes, steps=2, seed=4)
    np.testing.assert_array_equal(out.frames, again)
    assert np.any(other[holes] != again[holes])


def test_keep_known_keeps_the_warped_pixels_outside_the_holes(pipe):
    left, warped, holes = make_chunk(3)
    exact = pipe.right_views(left, warped, holes, steps=2, known_margin=0)
    np.testing.assert_array_equal(exact[~holes], warped[~holes])
    feathered = pipe.right_views(left, warped, holes, steps=2)
    alpha = hole_alpha(torch.from_numpy(holes)[:, None], 2)[:, 0].numpy()
    np.testing.assert_array_equal(feathered[alpha == 0], warped[alpha == 0])
    generated = pipe.right_views(left, warped, holes, steps=2, keep_known=False)
    assert np.any(generated[~holes] != warped[~holes])
    np.testing.assert_array_equal(generated[holes], exact[holes])


def test_classifier_free_guidance_runs_and_changes_the_result(pipe):
    left, warped, holes = make_chunk(3)
    plain = pipe.right_views(left, warped, holes, steps=2, keep_known=False)
    guided = pipe.right_views(left, warped, holes, steps=2, guidance=3.0, keep_known=False)
    assert guided.shape == plain.shape
    assert np.any(guided != plain)


def test_deviation_strength_steers_the_output_once_its_mlp_is_trained(model_dir):
    pipe = SpatialDreamerPipeline.from_pretrained(model_dir)
    pipe.set_progress_bar_config(disable=True)
    left, warped, holes = make_chunk(2)
    kwargs = {"steps": 2, "keep_known": False}
    # Zero-initialised last layer (paper 3.4.2): the control has no effect yet.
    np.testing.assert_array_equal(
        pipe.right_views(left, warped, holes, deviation=0.0, **kwargs),
        pipe.right_views(left, warped, holes, deviation=0.5, **kwargs),
    )
    with torch.no_grad():
        last = pipe.model.deviation_embedding.mlp.linear_2
        last.weight.normal_(0.0, 0.5, generator=torch.Generator().manual_seed(0))
    low = pipe.right_views(left, warped, holes, deviation=0.0, **kwargs)
    high = pipe.right_views(left, warped, holes, deviation=0.5, **kwargs)
    default = pipe.right_views(left, warped, holes, **kwargs)
    assert np.any(low != high)
    assert pipe.model.config.default_deviation not in (0.0, 0.5)
    assert np.any(default != low) and np.any(default != high)


def test_twenty_frames_in_windows_match_the_streaming_generator(pipe):
    left, warped, holes = make_chunk(20, seed=1)
    kwargs = {"steps": 2, "window": 8, "overlap": 2, "seed": 5, "decode_chunk_size": 4}
    chunk = pipe.right_views(left, warped, holes, **kwargs)
    assert chunk.shape == (20, 64, 64, 3)
    streamed = pipe.stream_right_views(
        (frame for frame in left), (frame for frame in warped), (frame for frame in holes), **kwargs
    )
    np.testing.assert_array_equal(np.stack(list(streamed)), chunk)


def test_long_streams_run_full_length_windows_with_periodic_noise_and_bounded_lookahead(
    pipe, monkeypatch
):
    """27 frames, window 8, overlap 2: every window has the trained 8 frames (the last one
    moved back), holds 8 distinct noises and the same 8 as every other window; output starts
    before the input ends and never trails it by more than window + decode_context frames."""
    left, warped, holes = make_chunk(27, height=32, width=32, seed=2)
    windows = []
    sample = pipe._sample_window

    def recording(items, anchors, weights, settings):
        windows.append(([f.noise for f in items], len(anchors), weights.tolist()))
        return sample(items, anchors, weights, settings)

    monkeypatch.setattr(pipe, "_sample_window", recording)
    pulled = []

    def source():
        for i, frame in enumerate(left):
            pulled.append(i)
            yield frame

    out = pipe.stream_right_views(
        source(), iter(warped), iter(holes), steps=1, window=8, overlap=2, decode_context=4
    )
    for i, _ in enumerate(out):
        assert len(pulled) <= i + 1 + 8 + 4
    assert i == 26 and len(windows) == 5
    reference = windows[0][0]
    for noises, _, _ in windows:
        assert len(noises) == 8
        assert all(any(torch.equal(n, r) for r in reference) for n in noises)
        assert len({id(n) for n in noises}) == 8
    # Hand-over: the previous window's 2 held-back frames with a 2/3, 1/3 ramp; the moved-back
    # last window [19, 27) also follows its 5 already emitted frames exactly.
    assert [(n, [round(w, 3) for w in ws]) for _, n, ws in windows] == [
        (0, []),
        (2, [0.667, 0.333]),
        (2, [0.667, 0.333]),
        (2, [0.667, 0.333]),
        (7, [1.0] * 5 + [0.667, 0.333]),
    ]
    # Independent noise: every frame draws its own.
    windows.clear()
    list(pipe.stream_right_views(iter(left), iter(warped), iter(holes), steps=1, window=8,
                                 overlap=2, periodic_noise=False))  # fmt: skip
    assert not any(torch.equal(windows[0][0][0], n) for n in windows[1][0][2:])


def test_default_window_is_the_til_clip_length(pipe):
    assert pipe.resolve_window(None, None) == (pipe.model.config.til_frames, 2)
    assert pipe.resolve_window(4, None) == (4, 1)
    with pytest.raises(ValueError, match="overlap"):
        pipe.resolve_window(4, 4)


def test_sizes_that_are_not_multiples_are_padded_and_cropped(pipe):
    left, warped, holes = make_chunk(2, height=40, width=72)
    out = pipe.right_views(left, warped, holes, steps=1)
    assert out.shape == (2, 40, 72, 3)
    alpha = hole_alpha(torch.from_numpy(holes)[:, None], 2)[:, 0].numpy()
    np.testing.assert_array_equal(out[alpha == 0], warped[alpha == 0])


def test_cpu_offload_is_a_no_op_on_cpu_and_to_moves_the_model(pipe):
    left, warped, holes = make_chunk(2)
    before = pipe.right_views(left, warped, holes, steps=1)
    pipe.enable_model_cpu_offload(device="cpu")
    np.testing.assert_array_equal(pipe.right_views(left, warped, holes, steps=1), before)
    assert pipe.to("cpu") is pipe and pipe.device == torch.device("cpu")
    np.testing.assert_array_equal(pipe.right_views(left, warped, holes, steps=1), before)


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"left": "float"}, "uint8"),
        ({"holes": "uint8"}, "bool"),
        ({"warped": "short"}, "same F"),
    ],
)
def test_bad_inputs_raise_clear_errors(pipe, change, message):
    left, warped, holes = make_chunk(2)
    if change.get("left") == "float":
        left = left.astype(np.float32)
    if change.get("holes") == "uint8":
        holes = holes.astype(np.uint8)
    if change.get("warped") == "short":
        warped = warped[:1]
    with pytest.raises(ValueError, match=message):
        pipe.right_views(left, warped, holes, steps=1)


def test_save_pretrained_round_trips(pipe, tmp_path):
    pipe.save_pretrained(tmp_path / "copy")
    loaded = SpatialDreamerPipeline.from_pretrained(tmp_path / "copy")
    loaded.set_progress_bar_config(disable=True)
    left, warped, holes = make_chunk(2)
    np.testing.assert_array_equal(
        loaded.right_views(left, warped, holes, steps=1),
        pipe.right_views(left, warped, holes, steps=1),
    )


def spatially_pointwise(
    noisy, timesteps, masked, mask, reference, embeddings, time_ids, deviation, reference_bank=None
):
    """A U-Net double that mixes its inputs per latent cell only (so tiles cannot change it)."""
    return (0.5 * noisy + 0.3 * masked - 0.2 * reference + mask).float()


def test_tiles_of_a_spatially_pointwise_unet_give_the_whole_frame_result(pipe, monkeypatch):
    monkeypatch.setattr(pipe.model, "forward", spatially_pointwise)
    left, warped, holes = make_chunk(4)
    kwargs = {"steps": 2, "keep_known": False}
    whole = pipe.right_views(left, warped, holes, **kwargs)
    tiles = pipe.right_views(left, warped, holes, tile_size=32, tile_overlap=8, **kwargs)
    assert np.abs(whole.astype(int) - tiles.astype(int)).max() <= 1  # float rounding of uint8


def test_the_unet_sees_only_tiles_and_known_pixels_stay(pipe, monkeypatch):
    left, warped, holes = make_chunk(4)
    whole = pipe.right_views(left, warped, holes, steps=2)
    shapes = []
    forward = pipe.model.forward

    def recording(noisy, *args, **kwargs):
        shapes.append(tuple(noisy.shape[-2:]))
        return forward(noisy, *args, **kwargs)

    monkeypatch.setattr(pipe.model, "forward", recording)
    tiles = pipe.right_views(left, warped, holes, steps=2, tile_size=32)
    # 64x64 frames -> 8x8 latents; 4-cell tiles overlapping by 1 -> starts 0, 3, 4 per axis
    assert shapes == [(4, 4)] * 9 * 2
    assert tiles.shape == whole.shape
    # Known pixels (beyond the feathered hole border) are the warped view either way; the
    # generated ones differ (each tile attends within itself) but are bounded.
    keep = hole_alpha(torch.from_numpy(holes)[:, None], 2)[:, 0].numpy() == 0
    np.testing.assert_array_equal(tiles[keep], whole[keep])
    assert np.any(tiles[~keep] != whole[~keep])


@pytest.mark.parametrize(
    ("tile_size", "tile_overlap", "message"),
    [(24, None, "multiple of 16"), (0, None, "multiple of 16"), (32, 4, "multiple of 8"),
     (32, 32, r"\[0, tile_size")],
)  # fmt: skip
def test_bad_tile_settings_raise(pipe, tile_size, tile_overlap, message):
    left, warped, holes = make_chunk(1)
    with pytest.raises(ValueError, match=message):
        pipe.right_views(left, warped, holes, steps=1, tile_size=tile_size,
                         tile_overlap=tile_overlap)  # fmt: skip


def test_reference_features_are_computed_once_per_window(pipe, monkeypatch):
    """The RefinerNet (+ TIL) bank is computed once per window, not once per step, and the
    result is identical to recomputing it at every step."""
    window, _ = pipe.resolve_window(None, None)
    left, warped, holes = make_chunk(window)
    calls = []
    hook = pipe.model.refiner.register_forward_hook(lambda *_: calls.append(1))
    try:
        reused = pipe.right_views(left, warped, holes, steps=3, keep_known=False)
        assert len(calls) == 1  # one window, three steps
        calls.clear()
        forward = pipe.model.forward

        def recomputing(*args, reference_bank=None, **kwargs):
            return forward(*args, **kwargs)  # drops the bank: the refiner runs every step

        monkeypatch.setattr(pipe.model, "forward", recomputing)
        fresh = pipe.right_views(left, warped, holes, steps=3, keep_known=False)
        assert len(calls) == 1 + 3  # the (now unused) bank, then every step
    finally:
        hook.remove()
    np.testing.assert_array_equal(reused, fresh)


def _decoded(pipe, right: np.ndarray, chunk: int) -> np.ndarray:
    """The right views encoded and decoded in chunks of ``chunk`` frames at the size the
    sampler works at (padded to the U-Net's multiple): (F, H, W, 3) uint8."""
    model = pipe.model
    height, width = right.shape[1:3]
    multiple = pipe._size_multiple()
    pads = (0, -width % multiple, 0, -height % multiple)
    images = torch.from_numpy(right).permute(0, 3, 1, 2).float() / 127.5 - 1.0
    # Contiguous as the sampler's stacked tensors are: strides change the float rounding.
    images = torch.nn.functional.pad(images, pads, mode="replicate").contiguous()
    latents = model.encode_images(images).contiguous()
    decoded = torch.cat([model.decode_latents(latents[i : i + chunk], len(latents[i : i + chunk]))
                         for i in range(0, len(latents), chunk)])  # fmt: skip
    decoded = decoded[..., :height, :width]
    return ((decoded.clamp(-1, 1) + 1) * 127.5).round().byte().permute(0, 2, 3, 1).numpy()


def test_vae_round_trip_decodes_the_target_as_samples_are_decoded_and_composited(pipe):
    """The VAE oracle: the target through the VAE in the sampler's decode chunks, composited on
    the warped view with the same feathered margin."""
    right, warped, holes = make_chunk(5, seed=7)
    whole = _decoded(pipe, right, 8)
    np.testing.assert_array_equal(pipe.vae_round_trip(right, warped, holes, keep_known=False),
                                  whole)  # fmt: skip
    chunked = pipe.vae_round_trip(right, warped, holes, keep_known=False, decode_chunk_size=2,
                                  decode_context=0)  # fmt: skip
    np.testing.assert_array_equal(chunked, _decoded(pipe, right, 2))
    out = pipe.vae_round_trip(right, warped, holes)
    alpha = hole_alpha(torch.from_numpy(holes)[:, None], 2)[:, 0].numpy()
    np.testing.assert_array_equal(out[alpha == 0], warped[alpha == 0])
    np.testing.assert_array_equal(out[holes], whole[holes])
    with pytest.raises(ValueError, match="decode_chunk_size"):
        pipe.vae_round_trip(right, warped, holes, decode_chunk_size=0)
