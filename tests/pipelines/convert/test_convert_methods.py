"""The method registry and the spatialdreamer method's plumbing around a stand-in pipeline
(the real pipeline's own tests live with pipelines/pipeline.py)."""

import sys
import types
from typing import ClassVar

import numpy as np
import pytest

from dvg.backends import BackendSpec
from pipelines.convert import STEREO_METHODS, MethodConfig, WarpConfig, create_method
from pipelines.convert.methods import WarpInpaint, WarpSD, WarpTelea


def test_registry_names_and_aliases():
    assert {"warp-inpaint", "warp-telea", "warp-sd", "spatialdreamer"} <= set(STEREO_METHODS)
    assert issubclass(WarpTelea, WarpInpaint) and WarpTelea.fixed_inpaint == "telea"
    assert issubclass(WarpSD, WarpInpaint) and WarpSD.fixed_inpaint == "sd"
    with pytest.raises(ValueError, match="unknown stereo method 'nope'"):
        create_method("nope", MethodConfig())


class FakePipeline:
    """Records what it is given; right view = warped view with holes painted 255."""

    loaded: ClassVar[dict] = {}
    pulled = 0
    # What the converter reads from the model: the deviation range it was trained on.
    model = types.SimpleNamespace(config=types.SimpleNamespace(deviation_range=(0.2, 0.8)))

    @classmethod
    def from_pretrained(cls, model_dir, *, torch_dtype=None):
        cls.loaded = {"dir": model_dir, "dtype": torch_dtype}
        return cls()

    def set_progress_bar_config(self, **kwargs):
        self.progress = kwargs

    def to(self, device):
        self.device = device
        return self

    def stream_right_views(self, lefts, warpeds, holes, **options):
        FakePipeline.options = options
        for left, warped, hole in zip(lefts, warpeds, holes, strict=True):
            FakePipeline.pulled += 1
            assert left.shape == warped.shape and hole.shape == left.shape[:2]
            out = warped.copy()
            out[hole] = 255
            yield out


def test_spatialdreamer_streams_the_warp_into_the_pipeline(tmp_path, monkeypatch):
    import torch

    module = types.ModuleType("pipelines.pipeline")
    module.SpatialDreamerPipeline = FakePipeline
    monkeypatch.setitem(sys.modules, "pipelines.pipeline", module)
    (tmp_path / "spatialdreamer.json").write_text("{}")

    class Ramp:  # inverse depth rising left to right: a real disparity field and holes
        name = "ramp"

        def predict(self, frames, context):
            from dvg.backends import DepthPrediction

            n, h, w = frames.shape[:3]
            q = np.broadcast_to(np.linspace(1, 2, w, dtype=np.float32), (n, h, w)).copy()
            q[:, :, w // 2 :] += 1  # a depth step -> a disocclusion
            return DepthPrediction(q, False, None)

    config = MethodConfig(
        warp=WarpConfig(depth=BackendSpec("sidecar"), strength=0.1, device="cpu"),
        model=str(tmp_path),
        steps=3,
        deviation=0.5,
        window=8,
        overlap=2,
        dtype="float32",
        device="cpu",
    )
    method = create_method("spatialdreamer", config)
    method.warp.depth = Ramp()
    assert FakePipeline.loaded == {"dir": str(tmp_path), "dtype": torch.float32}

    rng = np.random.default_rng(0)
    frames = [rng.integers(0, 200, (16, 32, 3), dtype=np.uint8) for _ in range(40)]
    pairs = list(method.process_pairs(iter(frames)))
    assert len(pairs) == 40
    assert all(np.array_equal(left, f) for (left, _), f in zip(pairs, frames, strict=True))
    rights = np.stack([right for _, right in pairs])
    assert (rights == 255).any()  # holes reached the pipeline
    assert FakePipeline.options == {
        "deviation": 0.5,
        "steps": 3,
        "seed": 0,
        "window": 8,
        "overlap": 2,
    }


@pytest.mark.parametrize(("deviation", "warns"), [(0.5, False), (0.9, True), (None, False)])
def test_a_deviation_outside_the_trained_range_warns(tmp_path, monkeypatch, deviation, warns):
    import warnings

    module = types.ModuleType("pipelines.pipeline")
    module.SpatialDreamerPipeline = FakePipeline
    monkeypatch.setitem(sys.modules, "pipelines.pipeline", module)
    (tmp_path / "spatialdreamer.json").write_text("{}")
    config = MethodConfig(
        warp=WarpConfig(depth=BackendSpec("sidecar"), device="cpu"),
        model=str(tmp_path),
        deviation=deviation,
        dtype="float32",
        device="cpu",
    )
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        create_method("spatialdreamer", config)
    messages = [str(w.message) for w in caught if "5-95% range" in str(w.message)]
    assert bool(messages) == warns
    if warns:
        assert "0.2 to 0.8" in messages[0]


def test_spatialdreamer_needs_an_exported_model(tmp_path):
    from pipelines.convert import MissingModelError

    with pytest.raises(MissingModelError, match="trainer export"):
        create_method("spatialdreamer", MethodConfig(model=str(tmp_path / "none")))


def _sidecar_clip(tmp_path, frames=10, height=24, width=40):
    """Random frames with a sidecar z-depth (two depth layers, so the warp leaves holes)."""
    rng = np.random.default_rng(0)
    video = rng.integers(0, 256, (frames, height, width, 3), dtype=np.uint8)
    depth = np.full((frames, height, width), 4.0, np.float32)
    depth[:, 6:18, 10:24] = 1.5
    np.save(tmp_path / "clip.depth.npy", depth)
    return video


@pytest.mark.parametrize("window", [None, 3, 8])
def test_warp_inpaint_streams_pieces_with_the_same_frames(tmp_path, window):
    """Telea fills each render batch on a worker thread while the next is rendered: the
    streamed right views equal those of one whole-window call, in order, for any window."""
    from pipelines.convert.methods import StreamSource

    video = _sidecar_clip(tmp_path)
    warp = WarpConfig(
        depth=BackendSpec("sidecar", options={"dir": str(tmp_path)}), device="cpu",
        render_batch=2,
    )  # fmt: skip

    def method():
        return create_method("warp-inpaint", MethodConfig(warp=warp, window=window))

    source = StreamSource(str(tmp_path / "clip.mp4"), 40, 24, native_indices=[])
    streamed = [r for _, r in method().process_pairs(iter(video), source)]
    whole = method()
    from pipelines.convert.methods import _depth_context
    from pipelines.windows import WindowSpan

    _, context = _depth_context(video, WindowSpan(0, len(video), 0), source)
    warped = whole.warp(video, context)  # the whole window at once, then Telea on it
    expected = whole.inpainter.inpaint(warped.right, warped.holes)
    assert warped.holes.any()
    assert len(streamed) == len(video)
    np.testing.assert_array_equal(np.stack(streamed), expected)
    assert whole.window == (window or 4)  # a per-frame inpainter takes the short window
    pieces = list(method().iter_right_views(video[:5], _depth_context(
        video[:5], WindowSpan(0, 5, 0), source)[1]))  # fmt: skip
    assert [len(p) for p in pieces] == [2, 2, 1]  # one piece per render batch


def test_a_whole_window_inpainter_keeps_the_long_window():
    """SD draws one noise per window, so its window is not shortened and it gets one piece."""
    from dvg.backends.inpaint import INPAINT_BACKENDS

    assert INPAINT_BACKENDS.get("telea").frame_independent
    assert not INPAINT_BACKENDS.get("sd").frame_independent
