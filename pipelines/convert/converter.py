"""``convert``: a mono video in, a stereo video out, streamed frame by frame (docs/convert.md)."""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass, fields
from pathlib import Path

import numpy as np

from dvg.backends import BackendSpec, preflight_weights
from dvg.engine.threads import check_threads, torch_threads
from pipelines.convert.formats import (
    STEREO_PACKING,
    check_layout,
    compose,
    frame_size,
    resolve_output,
)
from pipelines.convert.io import (
    X264_PRESETS,
    VideoWriter,
    finish_output,
    iter_frames,
    partial_path,
    probe,
)
from pipelines.convert.methods import (
    STEREO_METHODS,
    MethodConfig,
    StereoMethod,
    StreamSource,
    check_model_dir,
    create_method,
)
from pipelines.convert.stream import Drain, Prefetch
from pipelines.convert.warp import WarpConfig

DEPTH_MODEL_BACKENDS = ("dpt", "depth-anything", "marigold")
# --stereo-signal -> where the packing of SBS / TB frames is signalled.
STEREO_SIGNAL_CHOICES: dict[str, tuple[str, ...]] = {
    "container": ("container",),
    "sei": ("sei",),
    "both": ("sei", "container"),
    "none": (),
}


@dataclass(frozen=True)
class ConvertConfig:
    """Everything ``spatialdreamer convert`` can be told.

    Attributes:
        method: a ``STEREO_METHODS`` name: ``warp-inpaint`` (no trained model),
            ``warp-telea``, ``warp-sd`` or ``spatialdreamer``.
        layout: ``full-sbs``, ``half-sbs``, ``full-tb``, ``half-tb``, ``anaglyph`` or ``right``.
        inpaint: inpainter of ``warp-inpaint``: ``telea`` or ``sd``.
        inpaint_model: hub id or folder of the ``sd`` inpainting model (None: its default).
        depth: user-supplied depth: a folder of sidecar files (``<stem>.depth.npy`` ...) or one
            depth file / PNG folder for this video; None estimates depth with a model.
        depth_model: hub id or folder of the depth model (None: the backend's default).
        depth_backend: ``dpt``, ``depth-anything`` or ``marigold`` (None: ``dpt``, or
            ``depth-anything`` when ``depth_model`` names one).
        strength: disparity span as a fraction of the width (0.03 = 3%).
        convergence: screen plane in normalised inverse depth (0: everything pops out).
        depth_smoothing: EMA weight of the depth bounds over frames, [0, 1).
        model: exported SpatialDreamer folder (``spatialdreamer`` only).
        steps, guidance, seed, deviation: sampling settings of ``spatialdreamer``.
        dtype, device: precision and device of the models ("auto" picks cuda + float16 when
            a GPU is there).
        crf, encoder_preset: H.264 quality (lower crf = better) and x264 speed preset
            (``ultrafast`` ... ``placebo``; checked before anything is decoded).
        start, end: convert only this part of the input, in seconds (None: from the start /
            to the end); the audio is cut alike.
        max_fps: drop frames so the output has at most this frame rate (None: keep all).
        stereo_signal: where packed layouts (SBS / TB) say so besides the file name:
            ``container`` (the mp4 ``st3d`` box, Matroska StereoMode; the default),
            ``sei`` (H.264 frame-packing SEI), ``both`` or ``none``. ``both`` is what the
            specifications allow, but the ffmpeg 9 command line (the one imageio-ffmpeg
            bundles, so imageio and moviepy too) cannot decode such files (docs/convert.md).
        window, overlap: frames per window and frames shared by neighbours (None: method
            defaults: 4 / 0 for warp-inpaint with Telea, 16 / 0 with SD, the trained clip
            length / a quarter of it for spatialdreamer).
        offload, decode_chunk_size, tile_size: GPU memory controls of ``spatialdreamer``
            (model CPU offload; frames per VAE decode call; U-Net latent tiles of this many
            pixels, a multiple of 64, None = whole frames).
        keep_audio: copy the source's audio tracks into the output.
        threads: torch intra-op threads while converting (None: half the CPUs available, at
            least 1, measured in docs/benchmarks.md; restored afterwards).
    """

    method: str = "warp-inpaint"
    layout: str = "full-sbs"
    inpaint: str = "telea"
    inpaint_model: str | None = None
    depth: str | None = None
    depth_model: str | None = None
    depth_backend: str | None = None
    strength: float = 0.03
    convergence: float = 0.0
    depth_smoothing: float = 0.9
    model: str | None = None
    steps: int | None = None
    guidance: float | None = None
    seed: int = 0
    deviation: float | None = None
    dtype: str = "auto"
    device: str = "auto"
    crf: int = 18
    encoder_preset: str = "medium"
    start: float | None = None
    end: float | None = None
    max_fps: float | None = None
    stereo_signal: str = "container"
    window: int | None = None
    overlap: int | None = None
    offload: bool = False
    decode_chunk_size: int | None = None
    tile_size: int | None = None
    keep_audio: bool = True
    threads: int | None = None

    def __post_init__(self) -> None:
        if self.method not in STEREO_METHODS:
            raise ValueError(
                f"unknown method {self.method!r}; choose one of {', '.join(STEREO_METHODS)}"
            )
        check_layout(self.layout)
        if self.inpaint not in ("telea", "sd"):
            raise ValueError(f"inpaint must be 'telea' or 'sd', got {self.inpaint!r}")
        if self.depth_backend is not None and self.depth_backend not in DEPTH_MODEL_BACKENDS:
            raise ValueError(
                f"depth_backend must be one of {', '.join(DEPTH_MODEL_BACKENDS)}, "
                f"got {self.depth_backend!r}"
            )
        if not 0 <= self.crf <= 51:
            raise ValueError(f"crf must be in [0, 51], got {self.crf}")
        if self.encoder_preset not in X264_PRESETS:
            raise ValueError(
                f"encoder_preset is the x264 speed preset, one of {', '.join(X264_PRESETS)}; "
                f"got {self.encoder_preset!r}"
            )
        if self.start is not None and not self.start >= 0:
            raise ValueError(f"start must be >= 0 seconds, got {self.start}")
        if self.end is not None and not self.end > (self.start or 0):
            raise ValueError(f"end must be after start ({self.start or 0} s), got {self.end}")
        if self.max_fps is not None and not self.max_fps > 0:
            raise ValueError(f"max_fps must be > 0, got {self.max_fps}")
        if self.stereo_signal not in STEREO_SIGNAL_CHOICES:
            raise ValueError(
                f"stereo_signal must be one of {', '.join(STEREO_SIGNAL_CHOICES)}, "
                f"got {self.stereo_signal!r}"
            )
        for name in ("window", "steps", "decode_chunk_size", "tile_size"):
            value = getattr(self, name)
            if value is not None and value < 1:
                raise ValueError(f"{name} must be >= 1, got {value}")
        if self.overlap is not None and self.overlap < 0:
            raise ValueError(f"overlap must be >= 0, got {self.overlap}")
        check_threads(self.threads)

    def to_dict(self) -> dict:
        return {f.name: getattr(self, f.name) for f in fields(self)}

    def depth_spec(self) -> tuple[BackendSpec, str | None]:
        """(depth backend spec, explicit depth file or None) for the warp stage."""
        if self.depth is not None:
            path = Path(self.depth).expanduser()
            if not path.exists():
                raise FileNotFoundError(f"--depth {path} does not exist")
            if path.is_dir() and not _is_png_folder(path):
                return BackendSpec("sidecar", options={"dir": str(path)}), None
            return BackendSpec("sidecar"), str(path)
        backend = self.depth_backend
        if backend is None:
            named = (self.depth_model or "").lower().replace("_", "-")
            backend = "depth-anything" if "depth-anything" in named else "dpt"
        return (
            BackendSpec(backend, model=self.depth_model, device=self.device, dtype=self.dtype),
            None,
        )

    def check_weights(self) -> None:
        """Preflight of the depth and inpainting models this conversion loads: one error
        naming every missing model, without any network retry offline (docs/backends.md)."""
        specs = {}
        depth, depth_file = self.depth_spec()
        if depth_file is None:
            specs["depth"] = depth
        inpaint = {"warp-telea": "telea", "warp-sd": "sd"}.get(self.method, self.inpaint)
        if self.method != "spatialdreamer":
            specs["inpaint"] = BackendSpec(inpaint, model=self.inpaint_model)
        preflight_weights(specs)

    def method_config(self) -> MethodConfig:
        """The :class:`MethodConfig` these settings describe."""
        depth, depth_file = self.depth_spec()
        warp = WarpConfig(
            depth=depth,
            depth_file=depth_file,
            strength=self.strength,
            convergence=self.convergence,
            depth_smoothing=self.depth_smoothing,
            device=self.device,
        )
        inpaint = BackendSpec(
            self.inpaint,
            model=self.inpaint_model,
            device=self.device,
            dtype=self.dtype,
            options={"seed": self.seed} if self.inpaint == "sd" else {},
        )
        return MethodConfig(
            warp=warp,
            inpaint=inpaint,
            window=self.window,
            overlap=self.overlap,
            model=self.model,
            steps=self.steps,
            guidance=self.guidance,
            seed=self.seed,
            deviation=self.deviation,
            dtype=self.dtype,
            device=self.device,
            offload=self.offload,
            decode_chunk_size=self.decode_chunk_size,
            tile_size=self.tile_size,
        )


def _is_png_folder(path: Path) -> bool:
    """A folder holding one video's depth (PNG frames or an iw3 export), not sidecars."""
    return (path / "000000.png").is_file() or (path / "iw3_export.yml").is_file()


@dataclass(frozen=True)
class ConvertResult:
    """What ``convert`` wrote.

    Attributes:
        path: the output file.
        frames: stereo frames written.
        seconds: wall time of the conversion (model loading included).
        fps: conversion speed, frames per second of wall time.
        video_fps: frame rate of the output video (the input's).
        audio: "copy", "aac" (re-encoded) or "none".
    """

    path: Path
    frames: int
    seconds: float
    fps: float
    video_fps: float
    audio: str


def convert(
    input: str | Path,
    output: str | Path,
    config: ConvertConfig | None = None,
    *,
    show_progress: bool = False,
) -> ConvertResult:
    """Convert the mono video ``input`` to a stereo video.

    ``output`` is a file, or a folder (or a name without extension) that receives
    ``<stem><layout suffix>.mp4``. Frames are streamed: memory depends on the frame size and
    the window, not on the video's length. The output appears only when complete (written
    as ``*.partial.*`` first).

    Raises:
        VideoError: the input is missing or unreadable (names the file).
        MissingModelError: ``spatialdreamer`` without a usable model folder.
        MissingWeightsError / MissingSidecarError: no depth or inpainting weights / no depth
            file.
        EncodeError: ffmpeg could not write the output.
    """
    config = config or ConvertConfig()
    with torch_threads(config.threads):
        return _convert(input, output, config, show_progress)


def _convert(
    input: str | Path,
    output: str | Path,
    config: ConvertConfig,
    show_progress: bool,
    method: StereoMethod | None = None,
) -> ConvertResult:
    """One video; ``method`` is a loaded method to reuse (a folder of videos), else built."""
    start = time.perf_counter()
    source_path = Path(input)
    info = probe(source_path)  # fails fast, before any model loads
    if config.method == "spatialdreamer":
        check_model_dir(config.model)
    out = resolve_output(source_path, output, config.layout)
    if out.resolve() == source_path.resolve():
        raise ValueError(f"the output {out} would overwrite the input")
    out.parent.mkdir(parents=True, exist_ok=True)
    if method is None:
        config.check_weights()
        method = create_method(config.method, config.method_config())

    size = frame_size(config.layout, info.width, info.height)
    native_fps = info.fps if info.fps > 0 else 30.0
    fps = min(native_fps, config.max_fps or native_fps)
    stereo = STEREO_PACKING.get(config.layout)
    signals = STEREO_SIGNAL_CHOICES[config.stereo_signal] if stereo else ()
    in_container = stereo if "container" in signals else None
    temporary = partial_path(out, in_container)
    writer = VideoWriter(
        temporary,
        size,
        fps,
        crf=config.crf,
        preset=config.encoder_preset,
        sar=info.sar,
        stereo=stereo,
        signals=signals,
    )
    source = StreamSource(str(source_path), info.width, info.height, native_indices=[])
    expected = _expected_frames(info, config, fps)
    frames = 0
    # Decode, depth (one window ahead, inside process_pairs), warp + inpaint (this thread) and
    # compose + encode overlap; each queue holds at most a window of frames.
    queued = max(method.window, 1)
    encoder = Drain(lambda pair: writer.write(compose(config.layout, *pair)), queued, "encode")
    try:
        selected = iter_frames(
            info, config.start, config.end, config.max_fps, native=source.native_indices
        )
        with (
            Prefetch(selected, queued, "decode") as decoded,
            _progress(show_progress, expected, out.name) as advance,
        ):
            for pair in method.process_pairs(decoded, source):
                encoder.put(pair)
                frames += 1
                advance()
        encoder.finish()
        writer.close()
    except BaseException:
        writer.abort()  # a write blocked on the pipe fails, so the encode thread can stop
        encoder.stop()
        temporary.unlink(missing_ok=True)
        raise
    if frames == 0:
        temporary.unlink(missing_ok=True)
        raise ValueError(
            f"{source_path}: no frame between --start {config.start or 0} s and --end "
            f"{config.end} s (the video lasts {info.duration:.2f} s)"
        )
    trim = (config.start, config.end)
    audio = finish_output(temporary, source_path, out, config.keep_audio, trim, in_container)
    seconds = time.perf_counter() - start
    return ConvertResult(
        path=out,
        frames=frames,
        seconds=seconds,
        fps=frames / seconds if seconds > 0 else 0.0,
        video_fps=fps,
        audio=audio,
    )


def _expected_frames(info, config: ConvertConfig, fps: float) -> int | None:
    """About how many frames the output will have (for the progress bar), None if unknown."""
    if not info.duration:
        return info.num_frames
    end = min(config.end or info.duration, info.duration)
    return max(0, round((end - (config.start or 0)) * fps))


class _progress:
    """A rich progress bar (frames, frames/s, ETA) on stderr, or nothing."""

    def __init__(self, enabled: bool, total: int | None, name: str) -> None:
        self.enabled, self.total, self.name = enabled, total, name
        self._bar = None

    def __enter__(self):
        if not self.enabled:
            return lambda: None
        from rich.console import Console
        from rich.progress import (
            BarColumn,
            MofNCompleteColumn,
            Progress,
            ProgressColumn,
            TextColumn,
            TimeElapsedColumn,
            TimeRemainingColumn,
        )
        from rich.text import Text

        class Speed(ProgressColumn):
            # Frames arrive in bursts of a window, so rich's short-term estimate swings; the
            # average since the start is the number users can plan with.
            def render(self, task) -> Text:
                elapsed = task.elapsed or 0.0
                if not task.completed or elapsed <= 0:
                    return Text("? frames/s")
                return Text(f"{task.completed / elapsed:.2f} frames/s")

        self._bar = Progress(
            TextColumn("{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            Speed(),
            TimeElapsedColumn(),
            TextColumn("ETA"),
            TimeRemainingColumn(),
            console=Console(stderr=True),
        )
        self._bar.__enter__()
        task = self._bar.add_task(self.name, total=self.total)
        return lambda: self._bar.advance(task)

    def __exit__(self, *exc) -> None:
        if self._bar is not None:
            self._bar.__exit__(*exc)


def iter_stereo_pairs(
    input: str | Path, config: ConvertConfig
) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """(left, right) (H, W, 3) uint8 pairs of ``input``, streamed, without writing a file."""
    info = probe(input)
    method = create_method(config.method, config.method_config())
    source = StreamSource(str(input), info.width, info.height, native_indices=[])
    frames = iter_frames(info, config.start, config.end, config.max_fps, source.native_indices)
    yield from method.process_pairs(frames, source)
