"""`spatialdreamer` command line: thin over ``pipelines.convert.convert`` (docs/convert.md)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from pipelines.convert.formats import LAYOUTS
from pipelines.convert.io import X264_PRESETS

app = typer.Typer(
    help=(
        "Turn a mono video into a stereo (spatial) video: "
        "`spatialdreamer convert INPUT --out OUTPUT` writes side-by-side, top-bottom, anaglyph "
        "or right-eye video for headset players, with the audio kept."
    ),
    no_args_is_help=True,
)


@app.callback()
def main() -> None:
    """Convert mono video to stereo video."""


@app.command()
def convert(
    input: Annotated[
        Path,
        typer.Argument(
            help="The mono video to convert, or a folder of videos (recursive; videos whose "
            "output exists are skipped, so a killed run resumes)."
        ),
    ],
    out: Annotated[
        Path,
        typer.Option(help="Output file, or a folder that receives <stem>_LRF_Full_SBS.mp4 (etc.)."),
    ],
    method: Annotated[
        str,
        typer.Option(
            help="warp-inpaint (no trained model), spatialdreamer (needs --model), "
            "warp-telea or warp-sd."
        ),
    ] = "warp-inpaint",
    model: Annotated[
        Path | None, typer.Option(help="Model folder written by `trainer export`.")
    ] = None,
    layout: Annotated[str, typer.Option(help=f"One of: {', '.join(LAYOUTS)}.")] = "full-sbs",
    inpaint: Annotated[
        str, typer.Option(help="Hole filling of warp-inpaint: telea or sd.")
    ] = "telea",
    inpaint_model: Annotated[
        str | None, typer.Option(help="Hub id or folder of the sd inpainting model.")
    ] = None,
    depth_model: Annotated[
        str | None, typer.Option(help="Depth model hub id or folder (default: MiDaS DPT).")
    ] = None,
    depth_backend: Annotated[
        str | None, typer.Option(help="dpt, depth-anything or marigold.")
    ] = None,
    depth: Annotated[
        Path | None,
        typer.Option(
            help="Your own depth instead of a model: a folder of sidecars "
            "(<stem>.depth.npy ...) or one depth file / PNG folder for this video."
        ),
    ] = None,
    strength: Annotated[
        float, typer.Option(help="3D strength: disparity span as a fraction of the width.")
    ] = 0.03,
    convergence: Annotated[
        float, typer.Option(help="Screen plane, 0 (far end) .. 1 (near end).")
    ] = 0.0,
    depth_smoothing: Annotated[
        float, typer.Option(help="EMA of the depth range over frames, 0 .. <1.")
    ] = 0.9,
    deviation: Annotated[
        float | None,
        typer.Option(
            help="spatialdreamer: stereo deviation strength s (paper Eq. 4), the model's "
            "3D-strength control. Default: the median of s over the model's training data; the "
            "5-95% range it was trained on is `deviation_range` in the model's "
            "spatialdreamer.json (printed by `trainer export`); values outside it may distort.",
        ),
    ] = None,
    steps: Annotated[int | None, typer.Option(help="spatialdreamer sampling steps.")] = None,
    guidance: Annotated[
        float | None, typer.Option(help="spatialdreamer classifier-free guidance.")
    ] = None,
    seed: Annotated[int, typer.Option(help="Random seed.")] = 0,
    dtype: Annotated[str, typer.Option(help="auto, float32, float16 or bfloat16.")] = "auto",
    device: Annotated[str, typer.Option(help="auto, cpu, cuda, cuda:1 ...")] = "auto",
    window: Annotated[int | None, typer.Option(help="Frames per window.")] = None,
    overlap: Annotated[
        int | None, typer.Option(help="Frames shared by neighbouring windows.")
    ] = None,
    offload: Annotated[
        bool, typer.Option(help="spatialdreamer: model CPU offload (less GPU memory).")
    ] = False,
    decode_chunk: Annotated[
        int | None, typer.Option(help="spatialdreamer: frames per VAE decode call.")
    ] = None,
    tile_size: Annotated[
        int | None,
        typer.Option(help="spatialdreamer: U-Net latent tiles of this many pixels (x64)."),
    ] = None,
    crf: Annotated[int, typer.Option(help="H.264 quality, 0-51 (lower is better).")] = 18,
    encoder_preset: Annotated[
        str, typer.Option(help=f"x264 speed preset: {', '.join(X264_PRESETS)}.")
    ] = "medium",
    preset: Annotated[str | None, typer.Option(hidden=True)] = None,
    start: Annotated[
        str | None, typer.Option(help="Convert from this time on: seconds or [hh:]mm:ss.")
    ] = None,
    end: Annotated[
        str | None, typer.Option(help="Convert up to this time: seconds or [hh:]mm:ss.")
    ] = None,
    max_fps: Annotated[
        float | None, typer.Option(help="At most this frame rate (frames are dropped).")
    ] = None,
    stereo_signal: Annotated[
        str,
        typer.Option(
            help="Where SBS/TB outputs say they are stereo: container (mp4 st3d, mkv "
            "StereoMode), sei (H.264 frame packing), both (ffmpeg 9's CLI cannot decode "
            "that) or none."
        ),
    ] = "container",
    audio: Annotated[bool, typer.Option(help="Keep the audio tracks.")] = True,
    threads: Annotated[
        int | None, typer.Option(min=1, help="Torch CPU threads; default: half the CPUs.")
    ] = None,
    progress: Annotated[bool, typer.Option(help="Show a progress bar.")] = True,
) -> None:
    """Convert INPUT to a stereo video (streamed: memory does not grow with its length)."""
    from dvg.backends import MissingSidecarError, MissingWeightsError
    from dvg.video import VideoError
    from pipelines.convert import ConvertConfig, EncodeError, MissingModelError, convert_folder
    from pipelines.convert import convert as run_convert

    if preset is not None:
        typer.echo(
            f"spatialdreamer convert: there is no --preset here. The x264 speed preset is "
            f"--encoder-preset ({', '.join(X264_PRESETS)}); converting without any weights "
            "(what `dvg build --preset offline` means) is `--depth PATH` (your depth files, e.g. "
            "from `dvg depth`) with the default `--inpaint telea`.",
            err=True,
        )
        raise typer.Exit(2)
    try:
        config = ConvertConfig(
            method=method,
            layout=layout,
            inpaint=inpaint,
            inpaint_model=inpaint_model,
            depth=None if depth is None else str(depth),
            depth_model=depth_model,
            depth_backend=depth_backend,
            strength=strength,
            convergence=convergence,
            depth_smoothing=depth_smoothing,
            model=None if model is None else str(model),
            steps=steps,
            guidance=guidance,
            seed=seed,
            deviation=deviation,
            dtype=dtype,
            device=device,
            crf=crf,
            encoder_preset=encoder_preset,
            start=parse_time(start, "--start"),
            end=parse_time(end, "--end"),
            max_fps=max_fps,
            stereo_signal=stereo_signal,
            window=window,
            overlap=overlap,
            offload=offload,
            decode_chunk_size=decode_chunk,
            tile_size=tile_size,
            keep_audio=audio,
            threads=threads,
        )
        if input.is_dir():
            folder = convert_folder(input, out, config, show_progress=progress)
        else:
            result = run_convert(input, out, config, show_progress=progress)
    except (
        VideoError,
        MissingModelError,
        MissingWeightsError,
        MissingSidecarError,
        EncodeError,
        FileNotFoundError,
        ValueError,
    ) as error:
        typer.echo(f"spatialdreamer convert: {convert_hint(error, input)}", err=True)
        raise typer.Exit(2) from None
    if not input.is_dir():
        typer.echo(
            f"wrote {result.path} ({result.frames} frames, {result.seconds:.1f} s, "
            f"{result.fps:.2f} frames/s, audio: {result.audio})"
        )
        return
    for done in folder.converted:
        typer.echo(f"wrote {done.path} ({done.frames} frames, {done.seconds:.1f} s)")
    typer.echo(
        f"{len(folder.converted)} converted, {len(folder.skipped)} already there, "
        f"{len(folder.failed)} failed"
    )
    for video, reason in folder.failed.items():
        typer.echo(f"  failed: {video}: {convert_hint_text(reason, Path(video))}", err=True)
    if folder.failed:
        raise typer.Exit(1)


def parse_time(value: str | None, flag: str) -> float | None:
    """Seconds from ``12.5``, ``mm:ss`` or ``hh:mm:ss(.ff)``; BadParameter naming ``flag``."""
    if value is None:
        return None
    try:
        seconds = 0.0
        for part in value.split(":"):
            seconds = seconds * 60 + float(part)
    except ValueError:
        raise typer.BadParameter(
            f"{value!r} is not a time: give seconds or [hh:]mm:ss", param_hint=flag
        ) from None
    return seconds


def convert_hint(error: Exception, input: Path) -> str:
    """The message of ``error`` with what to do, in convert's own flags."""
    from dvg.backends import MissingSidecarError, MissingWeightsError
    from dvg.backends.weights import OFFLINE_PRESET, WEIGHTS_FREE

    if isinstance(error, MissingWeightsError):
        errors = getattr(error, "errors", [error])
        kinds = {e.kind for e in errors}
        # The dvg-build alternatives in the message become convert's own flags.
        text = str(error).replace(f"; or {OFFLINE_PRESET}", "")
        text = text.replace(WEIGHTS_FREE["depth"], DEPTH_FLAG)
        if "depth" in kinds:
            text += f"\nWithout a depth model: {DEPTH_FLAG}."
        if "inpaint" in kinds:
            text += "\nWithout inpainting weights: --inpaint telea (the default)."
        return text
    if isinstance(error, MissingSidecarError):
        return convert_hint_text(str(error), input)
    return str(error)


DEPTH_FLAG = (
    "--depth PATH (your own depth: a folder of sidecars or one file; make them with "
    "`dvg depth --videos VIDEO --out DIR`)"
)


def convert_hint_text(message: str, input: Path) -> str:
    if "no depth sidecar" not in message:
        return message
    return (
        f"{message}. Make them with `dvg depth --videos {input} --out DIR` and pass "
        "`--depth DIR`, give one file with `--depth FILE`, or leave out --depth to run a depth "
        "model (`--depth-model ID|PATH`)"
    )
