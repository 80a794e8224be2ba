"""Stereo methods: a registry of ways to turn a stream of left views into right views.

- ``warp-inpaint``: forward splat (:class:`~pipelines.convert.warp.WarpStage`) + a
  ``dvg.backends`` inpainter (``telea``, weights-free, or ``sd``); no trained model.
  ``warp-telea`` and ``warp-sd`` are the same method with the inpainter fixed (the baselines
  the evaluation compares).
- ``spatialdreamer``: the trained model (``pipelines.pipeline.SpatialDreamerPipeline``, loaded
  from a ``trainer export`` folder) repaints the forward-rendered right view; the pipeline's
  ``stream_right_views`` runs windows of the model's clip length blended in latent space.

Every method streams: ``process_pairs`` pulls frames through
:func:`~pipelines.windows.iter_windows` and yields (left, right) pairs in order, so at
most a window (plus the overlap outputs awaiting blending) is in memory. Windows that overlap
(``overlap > 0``) are cross-faded linearly in pixel space over the shared frames by the base
class; ``spatialdreamer`` blends in latent space inside the pipeline instead.
"""

from __future__ import annotations

import warnings
from abc import ABC, abstractmethod
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import torch

from dvg.backends import INPAINT_BACKENDS, BackendSpec, DepthContext, InpaintBackend
from dvg.engine.threads import available_cpus
from pipelines.convert.stream import Prefetch
from pipelines.convert.warp import WarpConfig, WarpResult, WarpStage, identity_transform
from pipelines.windows import WindowSpan, check_window, crossfade_weights, iter_windows

INPAINT_MULTIPLE = 8  # dvg inpainters take sides that are multiples of 8
SHORT_WINDOW = 4  # warp-inpaint's window with a per-frame inpainter (Telea)


def render_workers() -> int:
    """Threads that render and fill frames at once: torch's threads times workers is about the
    CPUs available (2 workers of 1 thread on 2 cores), at most 4 (docs/benchmarks.md,
    "spatialdreamer convert, warp-inpaint")."""
    return max(1, min(4, available_cpus() // torch.get_num_threads()))


@dataclass(frozen=True)
class MethodConfig:
    """What a stereo method needs; built by ``ConvertConfig.method_config()``.

    Attributes:
        warp: depth and forward-render settings (shared by every method).
        inpaint: inpainting backend of ``warp-inpaint``.
        window: frames per window (None: the method's default, 16 for ``warp-inpaint``; for
            ``spatialdreamer`` the pipeline's window, None = the trained clip length).
        overlap: frames shared by neighbouring windows (None: the method's default, 0 for
            ``warp-inpaint``; a quarter of the window in the pipeline).
        model: folder written by ``trainer export`` (``spatialdreamer`` only).
        steps, guidance, seed, deviation: sampling settings passed to the pipeline (None:
            the pipeline's defaults); ``deviation`` is the paper's deviation strength, the
            3D-strength control of the trained model.
        dtype: "auto", "float32", "float16" or "bfloat16" for the model.
        device: torch device of the model ("auto": cuda when available).
        offload: keep the model's parts on the CPU and move each to the GPU only while it runs.
        decode_chunk_size: frames per VAE decode call (lower: less GPU memory).
        tile_size: U-Net latent tiles of this many pixels (None: whole frames; less GPU memory
            for large frames).
    """

    warp: WarpConfig = field(default_factory=WarpConfig)
    inpaint: BackendSpec = field(default_factory=lambda: BackendSpec("telea"))
    window: int | None = None
    overlap: int | None = None
    model: str | None = None
    steps: int | None = None
    guidance: float | None = None
    seed: int = 0
    deviation: float | None = None
    dtype: str = "auto"
    device: str = "auto"
    offload: bool = False
    decode_chunk_size: int | None = None
    tile_size: int | None = None


@dataclass(frozen=True)
class StreamSource:
    """The video a stream of frames comes from (depth sidecars are found next to ``path``).

    ``native_indices``, when given, is filled by the decoder with the native frame index of
    each frame of the stream (they differ when frames are trimmed or dropped): depth files are
    indexed by native frame.
    """

    path: str
    width: int
    height: int
    native_indices: list[int] | None = None


class StereoMethod(ABC):
    """Loads its models once in ``__init__``; ``process`` maps one video's frames to right views."""

    name: ClassVar[str]
    default_window: ClassVar[int] = 16
    default_overlap: ClassVar[int] = 0
    fixed_length: ClassVar[bool] = False

    def __init__(self, config: MethodConfig) -> None:
        self.config = config

    @property
    def window(self) -> int:
        return self.config.window or self.default_window

    @property
    def overlap(self) -> int:
        return self.default_overlap if self.config.overlap is None else self.config.overlap

    def process(
        self, frames: Iterable[np.ndarray], source: StreamSource | None = None
    ) -> Iterator[np.ndarray]:
        """frames: (H, W, 3) uint8 left views in order -> (H, W, 3) uint8 right views in order."""
        for _, right in self.process_pairs(frames, source):
            yield right

    def process_pairs(
        self, frames: Iterable[np.ndarray], source: StreamSource | None = None
    ) -> Iterator[tuple[np.ndarray, np.ndarray]]:
        """frames: (H, W, 3) uint8 left views -> (left, right) pairs, in order, streaming.

        ``source`` names the video (for depth sidecars); None for frames from memory.
        """
        check_window(self.window, self.overlap)
        self.start_video()

        def prepared_windows() -> Iterator[tuple[WindowSpan, np.ndarray, DepthContext, Any]]:
            nonlocal source
            for window in iter_windows(frames, self.window, self.overlap, self.fixed_length):
                stacked = np.stack(window.items)
                source, context = _depth_context(stacked, window.span, source)
                yield window.span, stacked, context, self.prepare(stacked, context)

        # The next window is stacked and prepared (depth) while this one is rendered.
        with Prefetch(prepared_windows(), size=1, name="depth") as windows:
            yield from self._blend(windows)

    def _blend(
        self, windows: Iterable[tuple[WindowSpan, np.ndarray, DepthContext, Any]]
    ) -> Iterator[tuple[np.ndarray, np.ndarray]]:
        """Right views of each prepared window, cross-faded over overlapping frames, in order."""
        held: list[tuple[np.ndarray, np.ndarray]] = []  # outputs of overlap frames, not yet out
        held_start = 0  # stream index of held[0]
        for span, frames, context, prepared in windows:
            # Filled as the method yields them, so the first frames of a window go out (to be
            # encoded) while the rest are still being made.
            right = _Pulled(self.iter_right_views(frames, context, prepared))
            # Frames of this window that an earlier window already produced: blend the ones
            # still held, skip the ones already emitted (a moved-back last window).
            first_held = max(span.start, held_start)
            previous = crossfade_weights(span.new_start - first_held).tolist()
            for k, weight in zip(range(first_held, span.new_start), previous, strict=True):
                old_left, old_right = held[k - held_start]
                mixed = weight * old_right.astype(np.float32) + (1 - weight) * right[
                    k - span.start
                ].astype(np.float32)
                yield old_left, np.rint(mixed).astype(np.uint8)
            # Keep the tail that the next window will overlap; emit the rest.
            keep_from = span.keep_from(self.overlap)
            for k in range(span.new_start, keep_from):
                yield frames[k - span.start], right[k - span.start]
            # Copies, so the window's arrays are freed before the next window is made.
            held = [
                (frames[k - span.start].copy(), right[k - span.start].copy())
                for k in range(keep_from, span.stop)
            ]
            held_start = keep_from
            right.close()
        yield from held

    def start_video(self) -> None:  # noqa: B027 (an optional hook, not abstract)
        """Reset per-video state (called at the start of ``process_pairs``)."""

    def prepare(self, frames: np.ndarray, context: DepthContext) -> Any:
        """Work on a window that needs no state of earlier windows (e.g. its depth); runs one
        window ahead, in another thread. Its result, unless None, is passed to
        ``right_views`` as a third argument."""
        del frames, context
        return None

    @abstractmethod
    def right_views(self, frames: np.ndarray, context: DepthContext) -> np.ndarray:
        """One window's left frames (F, H, W, 3) uint8 -> right views (F, H, W, 3) uint8."""

    def iter_right_views(
        self, frames: np.ndarray, context: DepthContext, prepared: Any = None
    ) -> Iterator[np.ndarray]:
        """:meth:`right_views` as consecutive (f, H, W, 3) pieces in order; methods that make
        frames one batch at a time yield each as soon as it is done."""
        if prepared is None:
            yield self.right_views(frames, context)
        else:
            yield self.right_views(frames, context, prepared)


class _Pulled:
    """Frames of a window indexed as they arrive from ``iter_right_views`` pieces."""

    def __init__(self, pieces: Iterator[np.ndarray]) -> None:
        self._pieces, self._frames = pieces, []

    def __getitem__(self, k: int) -> np.ndarray:
        while k >= len(self._frames):
            self._frames.extend(next(self._pieces))
        return self._frames[k]

    def close(self) -> None:
        """Let the method finish the window (its worker threads stop)."""
        for piece in self._pieces:
            self._frames.extend(piece)


STEREO_METHODS: dict[str, type[StereoMethod]] = {}


def register(name: str):
    """Class decorator adding a method to ``STEREO_METHODS``."""

    def add(cls: type[StereoMethod]) -> type[StereoMethod]:
        if name in STEREO_METHODS:
            raise ValueError(f"stereo method {name!r} is already registered")
        cls.name = name
        STEREO_METHODS[name] = cls
        return cls

    return add


def create_method(name: str, config: MethodConfig) -> StereoMethod:
    """Build (and load) the method registered as ``name``."""
    if name not in STEREO_METHODS:
        raise ValueError(f"unknown stereo method {name!r}; known: {', '.join(STEREO_METHODS)}")
    return STEREO_METHODS[name](config)


def pad_to_multiple(images: np.ndarray, holes: np.ndarray, multiple: int) -> tuple:
    """Edge-pad (F, H, W, 3) images and (F, H, W) holes (with False) so H and W are multiples
    of ``multiple``; returns (images, holes, (H, W))."""
    h, w = images.shape[1:3]
    ph, pw = -h % multiple, -w % multiple
    if not (ph or pw):
        return images, holes, (h, w)
    images = np.pad(images, ((0, 0), (0, ph), (0, pw), (0, 0)), mode="edge")
    holes = np.pad(holes, ((0, 0), (0, ph), (0, pw)), constant_values=False)
    return images, holes, (h, w)


@register("warp-inpaint")
class WarpInpaint(StereoMethod):
    """Forward splat + hole inpainting (``telea`` or ``sd``), no trained model."""

    fixed_inpaint: ClassVar[str | None] = None

    def __init__(self, config: MethodConfig, inpainter: InpaintBackend | None = None) -> None:
        super().__init__(config)
        spec = config.inpaint
        if self.fixed_inpaint is not None and spec.name != self.fixed_inpaint:
            spec = BackendSpec(self.fixed_inpaint, device=spec.device, dtype=spec.dtype)
        self.warp = WarpStage(config.warp)
        self.inpainter = inpainter or INPAINT_BACKENDS.create(spec)

    @property
    def window(self) -> int:
        """A per-frame inpainter needs no long window: frames go out one render batch at a
        time anyway, and a short one gets the first frame to the encoder sooner (a 16-frame
        window cost a second of start-up at 1080p) and holds fewer frames in the queues."""
        if self.config.window:
            return self.config.window
        return SHORT_WINDOW if self.inpainter.frame_independent else self.default_window

    def start_video(self) -> None:
        self.warp.reset()

    def prepare(self, frames: np.ndarray, context: DepthContext) -> np.ndarray:
        return self.warp.depth_of(frames, context)

    def right_views(
        self, frames: np.ndarray, context: DepthContext, depth: np.ndarray | None = None
    ) -> np.ndarray:
        return np.concatenate(list(self.iter_right_views(frames, context, depth)))

    def iter_right_views(
        self, frames: np.ndarray, context: DepthContext, prepared: Any = None
    ) -> Iterator[np.ndarray]:
        """Render batches in order. With a per-frame inpainter (Telea) each batch is rendered
        and filled by a worker thread, :func:`render_workers` at once (torch and OpenCV release
        the GIL, so they use separate cores; whole frames in parallel scale better than torch's
        intra-op threads on the serial scatters); others fill the whole window at once (e.g.
        SD draws one noise for it)."""
        if not self.inpainter.frame_independent:
            warped = self.warp(frames, context, prepared)
            yield self._fill(warped.right, warped.holes)
            return
        jobs = deque(self.warp.batches(frames, context, prepared))
        workers = render_workers()
        with ThreadPoolExecutor(workers, thread_name_prefix="render") as pool:
            pending: deque[Future] = deque()
            try:
                while jobs or pending:
                    while jobs and len(pending) < workers + 1:
                        pending.append(pool.submit(self._render_and_fill, jobs.popleft()))
                    yield pending.popleft().result()
            finally:
                for future in pending:
                    future.cancel()

    def _render_and_fill(self, job: Callable[[], WarpResult]) -> np.ndarray:
        part = job()
        return self._fill(part.right, part.holes)

    def _fill(self, right: np.ndarray, holes: np.ndarray) -> np.ndarray:
        images, holes, (h, w) = pad_to_multiple(right, holes, INPAINT_MULTIPLE)
        return np.ascontiguousarray(self.inpainter.inpaint(images, holes)[:, :h, :w])


@register("warp-telea")
class WarpTelea(WarpInpaint):
    """``warp-inpaint`` with OpenCV Telea inpainting (baseline name in the evaluation)."""

    fixed_inpaint = "telea"


@register("warp-sd")
class WarpSD(WarpInpaint):
    """``warp-inpaint`` with Stable Diffusion inpainting (baseline name in the evaluation)."""

    fixed_inpaint = "sd"


class MissingModelError(FileNotFoundError):
    """The ``spatialdreamer`` method has no usable model folder."""


def check_model_dir(model: str | None) -> Path:
    """The exported model folder, or MissingModelError saying how to get one."""
    how = (
        "export a trained run with `trainer export RUN_DIR --out MODEL_DIR` and pass "
        "`--model MODEL_DIR`; `--method warp-inpaint` needs no trained model"
    )
    if model is None:
        raise MissingModelError(f"--method spatialdreamer needs a model folder: {how}")
    path = Path(model).expanduser()
    if not path.is_dir():
        raise MissingModelError(f"model folder {path} does not exist: {how}")
    if not any((path / name).is_file() for name in ("spatialdreamer.json", "model_index.json")):
        raise MissingModelError(
            f"{path} is not an exported SpatialDreamer model (no spatialdreamer.json or "
            f"model_index.json in it): {how}"
        )
    return path


_DTYPES = {"float32", "float16", "bfloat16"}


@register("spatialdreamer")
class SpatialDreamer(StereoMethod):
    """The trained SpatialDreamer model repaints the forward-rendered right view (paper 3.3).

    The warp stage runs in windows of ``warp_window`` frames; its per-frame outputs feed the
    pipeline's ``stream_right_views``, which runs its own windows (``window`` / ``overlap``;
    None: the trained clip length and a quarter of it) blended in latent space, holding at
    most a window of frames.
    """

    warp_window = 16
    fixed_length = True  # the pipeline's windows keep the trained clip length

    def __init__(self, config: MethodConfig) -> None:
        super().__init__(config)
        path = check_model_dir(config.model)
        import torch

        from pipelines.pipeline import SpatialDreamerPipeline

        device = config.device
        if device == "auto":
            device = "cuda" if torch.cuda.is_available() else "cpu"
        dtype = config.dtype
        if dtype == "auto":
            dtype = "float16" if device.startswith("cuda") else "float32"
        if dtype not in _DTYPES:
            raise ValueError(f"dtype must be 'auto' or one of {sorted(_DTYPES)}, got {dtype!r}")
        self.pipe = SpatialDreamerPipeline.from_pretrained(
            str(path), torch_dtype=getattr(torch, dtype)
        )
        # The converter draws its own progress bar; per-window sampling bars would interleave.
        self.pipe.set_progress_bar_config(disable=True)
        trained = self.pipe.model.config.deviation_range
        if config.deviation is not None and trained is not None:
            low, high = trained
            if not low <= config.deviation <= high:
                warnings.warn(
                    f"deviation strength {config.deviation} lies outside the 5-95% range the "
                    f"model was trained on ({low:.4g} to {high:.4g}); expect distortions "
                    "(paper Fig. 4)",
                    stacklevel=2,
                )
        if config.offload:
            self.pipe.enable_model_cpu_offload(device=device)
        else:
            self.pipe.to(device)
        self.warp = WarpStage(config.warp)

    @property
    def window(self) -> int:
        return self.pipe.resolve_window(self.config.window, self.config.overlap)[0]

    @property
    def overlap(self) -> int:
        return self.pipe.resolve_window(self.config.window, self.config.overlap)[1]

    def start_video(self) -> None:
        self.warp.reset()

    def _options(self) -> dict[str, Any]:
        options = {
            "deviation": self.config.deviation,
            "steps": self.config.steps,
            "guidance": self.config.guidance,
            "seed": self.config.seed,
            "decode_chunk_size": self.config.decode_chunk_size,
            "tile_size": self.config.tile_size,
        }
        return {key: value for key, value in options.items() if value is not None}

    def right_views(self, frames: np.ndarray, context: DepthContext) -> np.ndarray:
        """One window on its own (no blending with neighbours): (F, H, W, 3) uint8."""
        warped: WarpResult = self.warp(frames, context)
        return np.asarray(
            self.pipe.right_views(
                left=frames, warped=warped.right, holes=warped.holes, **self._options()
            )
        )

    def process_pairs(
        self, frames: Iterable[np.ndarray], source: StreamSource | None = None
    ) -> Iterator[tuple[np.ndarray, np.ndarray]]:
        self.start_video()
        lefts: deque[np.ndarray] = deque()  # pulled by the pipeline, right view not out yet

        def warped_frames() -> Iterator[tuple[np.ndarray, np.ndarray, np.ndarray]]:
            nonlocal source
            for window in iter_windows(frames, self.warp_window):
                chunk = np.stack(window.items)
                source, context = _depth_context(chunk, window.span, source)
                warped = self.warp(chunk, context)
                for i in range(window.span.length):
                    lefts.append(chunk[i])
                    yield chunk[i], warped.right[i], warped.holes[i]

        left_it, warped_it, holes_it = _unzip3(warped_frames())
        rights = self.pipe.stream_right_views(
            left_it,
            warped_it,
            holes_it,
            window=self.config.window,
            overlap=self.config.overlap,
            **self._options(),
        )
        for right in rights:
            yield lefts.popleft(), np.asarray(right)


def _depth_context(
    frames: np.ndarray, span: WindowSpan, source: StreamSource | None
) -> tuple[StreamSource, DepthContext]:
    """The depth stage's context for one window's frames (F, H, W, 3) at ``span`` of the stream
    ``source`` (None: frames from memory, named after their size)."""
    if source is None:
        h, w = frames.shape[1:3]
        source = StreamSource("<memory>", w, h)
    indices = np.arange(span.start, span.stop)
    if source.native_indices:
        indices = np.asarray(source.native_indices[span.start : span.stop], dtype=np.int64)
    context = DepthContext(
        video_path=source.path,
        source_indices=indices,
        transform=identity_transform(source.width, source.height),
    )
    return source, context


def _unzip3(triples: Iterator[tuple]) -> tuple[Iterator, Iterator, Iterator]:
    """Three iterators over the fields of ``triples``; each pull of a triple buffers the
    other two fields until their iterators catch up (bounded when consumed in lockstep)."""
    buffers: tuple[deque, deque, deque] = (deque(), deque(), deque())

    def field_iter(k: int) -> Iterator:
        while True:
            if not buffers[k]:
                try:
                    triple = next(triples)
                except StopIteration:
                    return
                for buffer, value in zip(buffers, triple, strict=True):
                    buffer.append(value)
            yield buffers[k].popleft()

    return field_iter(0), field_iter(1), field_iter(2)
