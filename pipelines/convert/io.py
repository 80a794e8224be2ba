"""Streaming video in and out with the bundled ffmpeg, and keeping the source's audio.

Frames are decoded one at a time by ``dvg.video.decode.read_frames`` (rotation applied, errors
as ``VideoError`` naming the file) and encoded one at a time by an ffmpeg process reading raw
RGB from a pipe (H.264, yuv420p, odd sizes padded by one black row / column), so neither end
holds more than a frame. The encoder writes a video-only temporary file next to the output; the
audio of the source is then muxed in without re-encoding the video (``-c:v copy``): the audio
is copied when players decode its codec in the output container (AAC, MP3, AC-3, E-AC-3, ALAC
in MP4 / MOV; anything ffmpeg stores in MKV), else re-encoded to AAC. Sources without audio give
a silent output.
"""

from __future__ import annotations

import os
import re
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

import imageio_ffmpeg
import numpy as np

from dvg.video import VideoConfig, VideoInfo, probe_video
from dvg.video.decode import ffmpeg_input, read_frames

# The converter takes any size ffmpeg decodes (up to 8K); it does not resize.
PROBE_CONFIG = VideoConfig(short_side=None, max_side=None, min_side=8, max_pixels=7680 * 4320)
_AUDIO_STREAM = re.compile(r"^\s*Stream #\d+:\d+\S*: Audio: ", re.MULTILINE)


X264_PRESETS = (
    "ultrafast",
    "superfast",
    "veryfast",
    "faster",
    "fast",
    "medium",
    "slow",
    "slower",
    "veryslow",
    "placebo",
)
# How each packing is signalled: x264's H.264 frame-packing SEI type (3 = side by side,
# 4 = top-bottom) and the Matroska StereoMode name, which ffmpeg turns into stereo3d side data
# and its mp4 muxer into the spatial-media ``st3d`` box.
STEREO_SIGNALS = {"sbs": (3, "left_right"), "tb": (4, "top_bottom")}


class EncodeError(RuntimeError):
    """ffmpeg could not write or mux the output; the message names the file and ffmpeg's error."""


def ffmpeg() -> str:
    return imageio_ffmpeg.get_ffmpeg_exe()


def probe(path: str | Path) -> VideoInfo:
    """Metadata of the input video (raises ``VideoError`` naming the file when unusable)."""
    return probe_video(path, PROBE_CONFIG)


def iter_frames(
    info: VideoInfo,
    start: float | None = None,
    end: float | None = None,
    max_fps: float | None = None,
    native: list[int] | None = None,
) -> Iterator[np.ndarray]:
    """The video's frames at its displayed size, one (H, W, 3) uint8 RGB array at a time.

    Only frames with timestamps in [start, end) seconds are kept, and at most one per
    1 / ``max_fps`` seconds (the first of each slot). Frames are selected on their decoded
    timestamps, so the native index of each kept frame is exact (it is appended to ``native``,
    for depth files indexed by native frame); frames before ``start`` are decoded and dropped.
    """
    eps = 1e-6
    last_slot = -1
    frames = read_frames(info, [], info.size, None)
    try:
        for frame in frames:
            t = frame.timestamp
            if start is not None and t < start - eps:
                continue
            if end is not None and t >= end - eps:
                break
            if max_fps is not None:
                slot = int(np.floor((t - (start or 0.0)) * max_fps + eps))
                if slot <= last_slot:
                    continue
                last_slot = slot
            if native is not None:
                native.append(frame.index)
            yield frame.image
    finally:
        frames.close()  # stops ffmpeg when the end comes before the file's end


def has_audio(path: str | Path) -> bool:
    """True when ffmpeg lists an audio stream in ``path``."""
    cmd = [ffmpeg(), "-hide_banner", "-nostdin", "-i", ffmpeg_input(path)]
    log = subprocess.run(cmd, capture_output=True, timeout=60, check=False).stderr
    return bool(_AUDIO_STREAM.search(log.decode("utf-8", "replace")))


def stream_summary(path: str | Path) -> list[str]:
    """ffmpeg's one-line description of each stream of ``path`` (``Video: h264 ...``)."""
    cmd = [ffmpeg(), "-hide_banner", "-nostdin", "-i", ffmpeg_input(path)]
    log = subprocess.run(cmd, capture_output=True, timeout=60, check=False).stderr
    lines = log.decode("utf-8", "replace").splitlines()
    return [line.split(": ", 1)[1] for line in lines if re.match(r"^\s*Stream #\d+:\d+", line)]


class VideoWriter:
    """H.264 encoder fed one RGB frame at a time through a pipe.

    Args:
        path: output file (its extension picks the container).
        size: (width, height) of every frame written.
        fps: frame rate.
        crf: x264 constant rate factor (0 lossless, 18 visually lossless, 23 x264's default).
        preset: x264 speed preset (ultrafast ... veryslow).
        sar: the sample (pixel) aspect ratio to record, (num, den); the source's, so players
            show the frame as wide as the source was.
        stereo: ``"sbs"`` or ``"tb"``: the frames' packing, signalled as ``signals`` say;
            None for mono-compatible frames.
        signals: where to signal the packing: ``"sei"`` (H.264 frame-packing SEI in the
            stream), ``"container"`` (the Matroska StereoMode of this file, which
            :func:`finish_output` turns into the mp4 ``st3d`` box), both, or neither.
    """

    def __init__(
        self,
        path: str | Path,
        size: tuple[int, int],
        fps: float,
        crf: int = 18,
        preset: str = "medium",
        sar: tuple[int, int] = (1, 1),
        stereo: str | None = None,
        signals: tuple[str, ...] = ("sei", "container"),
    ) -> None:
        if preset not in X264_PRESETS:
            raise ValueError(
                f"x264 preset must be one of {', '.join(X264_PRESETS)}, got {preset!r}"
            )
        if stereo is not None and stereo not in STEREO_SIGNALS:
            raise ValueError(
                f"stereo must be one of {sorted(STEREO_SIGNALS)} or None, got {stereo!r}"
            )
        self.path = Path(path)
        self.size = size
        self.frames = 0
        width, height = size
        cmd = [ffmpeg(), "-hide_banner", "-nostdin", "-y", "-loglevel", "error"]
        cmd += ["-f", "rawvideo", "-pix_fmt", "rgb24", "-s", f"{width}x{height}"]
        cmd += ["-r", f"{fps:.6f}", "-i", "pipe:0", "-an"]
        filters = []
        if width % 2 or height % 2:  # yuv420p halves the chroma planes
            filters.append("pad=ceil(iw/2)*2:ceil(ih/2)*2")
        filters.append(f"setsar={int(sar[0])}/{int(sar[1])}")
        cmd += ["-vf", ",".join(filters)]
        cmd += ["-c:v", "libx264", "-crf", str(int(crf)), "-preset", preset]
        if stereo is not None:
            packing, mode = STEREO_SIGNALS[stereo]
            if "sei" in signals:
                cmd += ["-x264-params", f"frame-packing={packing}"]
            if "container" in signals:
                cmd += ["-metadata:s:v:0", f"stereo_mode={mode}"]
        cmd += ["-pix_fmt", "yuv420p"]
        if self.path.suffix.lower() in MP4_LIKE:
            cmd += ["-movflags", "+faststart"]
        cmd.append(str(self.path))
        self._log = tempfile.TemporaryFile()
        self.process = subprocess.Popen(
            cmd, stdin=subprocess.PIPE, stdout=subprocess.DEVNULL, stderr=self._log
        )

    def write(self, frame: np.ndarray) -> None:
        """frame: (H, W, 3) uint8 RGB at ``size``."""
        width, height = self.size
        if frame.shape != (height, width, 3) or frame.dtype != np.uint8:
            raise ValueError(
                f"frames written to {self.path} must be ({height}, {width}, 3) uint8, "
                f"got {frame.shape} {frame.dtype}"
            )
        try:
            self.process.stdin.write(np.ascontiguousarray(frame).data)
        except BrokenPipeError:
            self.process.wait()
            raise EncodeError(
                f"ffmpeg stopped while writing {self.path}: {self._error()}"
            ) from None
        self.frames += 1

    def close(self) -> None:
        """Finish the file; raises EncodeError when ffmpeg failed."""
        try:
            self.process.stdin.close()
        except BrokenPipeError:
            pass
        code = self.process.wait()
        error = self._error()
        self._log.close()
        if code != 0:
            raise EncodeError(f"ffmpeg could not write {self.path} (status {code}): {error}")

    def abort(self) -> None:
        """Stop ffmpeg without finishing the file."""
        if self.process.poll() is None:
            self.process.kill()
        self.process.wait()
        self._log.close()

    def _error(self) -> str:
        self._log.seek(0)
        text = self._log.read().decode("utf-8", "replace").strip()
        return text.splitlines()[-1] if text else "no message"


# Audio codecs headset and phone players decode inside MP4 / MOV; others (PCM, Vorbis, Opus,
# FLAC, ...) are re-encoded to AAC there even when ffmpeg could store them.
MP4_AUDIO = ("aac", "mp3", "ac3", "eac3", "alac")
MP4_LIKE = (".mp4", ".m4v", ".mov")


def audio_codecs(path: str | Path) -> list[str]:
    """Codec names of the audio streams of ``path`` (``aac``, ``pcm_s16le`` ...)."""
    return [
        s.split(": ", 1)[1].split()[0].rstrip(",")
        for s in stream_summary(path)
        if s.startswith("Audio: ")
    ]


def mux_audio(
    video: Path,
    source: Path | None,
    output: Path,
    trim: tuple[float | None, float | None] = (None, None),
    stereo: str | None = None,
) -> str:
    """Write ``output``: the video stream of ``video`` plus the audio streams of ``source``
    (None: no audio), cut to ``trim`` = (start, end) seconds of the source.

    The video is copied; with ``stereo`` the container records the packing (mp4: the
    spatial-media ``st3d`` box, written by ffmpeg from the stream's stereo3d side data, which
    needs ``-strict unofficial``; Matroska: StereoMode). Returns how the audio went in: "copy",
    "aac" (re-encoded because the output container does not take the source codec, or players
    would not decode it there) or "none". Raises EncodeError when nothing works.
    """
    base = [ffmpeg(), "-hide_banner", "-nostdin", "-y", "-loglevel", "error"]
    base += ["-i", ffmpeg_input(video)]
    if source is not None:
        start, end = trim
        base += [] if start is None else ["-ss", f"{start:.6f}"]
        base += [] if end is None else ["-to", f"{end:.6f}"]
        base += ["-i", ffmpeg_input(source), "-map", "0:v:0", "-map", "1:a?"]
    base += ["-c:v", "copy"]
    if stereo is not None:
        base += ["-metadata:s:v:0", f"stereo_mode={STEREO_SIGNALS[stereo][1]}"]
        base += ["-strict", "unofficial"]
    modes = [("copy", ["-c:a", "copy"]), ("aac", ["-c:a", "aac", "-b:a", "192k"])]
    if source is None:
        modes = [("none", [])]
    elif output.suffix.lower() in MP4_LIKE and any(
        codec not in MP4_AUDIO for codec in audio_codecs(source)
    ):
        modes = modes[1:]
    errors = []
    for mode, audio in modes:
        flags = ["-movflags", "+faststart"] if output.suffix.lower() in MP4_LIKE else []
        cmd = [*base, *audio, *flags, str(output)]
        result = subprocess.run(cmd, capture_output=True, check=False)
        if result.returncode == 0:
            return mode
        errors.append(result.stderr.decode("utf-8", "replace").strip().splitlines()[-1:])
        output.unlink(missing_ok=True)
    raise EncodeError(f"could not add the audio of {source} to {output}: {errors}")


PARTIAL = ".partial"


def partial_path(output: Path, stereo: str | None = None) -> Path:
    """The temporary name written before the final rename (same folder; Matroska when the
    stereo packing is to be signalled, since that container carries it from the encoder)."""
    suffix = ".mkv" if stereo is not None else output.suffix
    return output.with_name(f"{output.stem}{PARTIAL}{suffix}")


def finish_output(
    video: Path,
    source: Path,
    output: Path,
    keep_audio: bool,
    trim: tuple[float | None, float | None] = (None, None),
    stereo: str | None = None,
) -> str:
    """Move the encoded ``video`` to ``output``, muxing the source audio in when there is any
    (cut to ``trim``) and recording the ``stereo`` packing in the container.

    The output appears by one rename of a complete file. Returns "copy", "aac" or "none".
    """
    audio = source if keep_audio and has_audio(source) else None
    if audio is None and stereo is None and video.suffix == output.suffix:
        os.replace(video, output)
        return "none"
    muxed = output.with_name(f"{output.stem}.muxing{output.suffix}")
    mode = mux_audio(video, audio, muxed, trim=trim, stereo=stereo)
    os.replace(muxed, output)
    video.unlink(missing_ok=True)
    return mode
