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


class EncodeError(RuntimeError):
    """ffmpeg could not write or mux the output; the message names the file and ffmpeg's error."""


def ffmpeg() -> str:
    return imageio_ffmpeg.get_ffmpeg_exe()


def probe(path: str | Path) -> VideoInfo:
    """Metadata of the input video (raises ``VideoError`` naming the file when unusable)."""
    return probe_video(path, PROBE_CONFIG)


def iter_frames(info: VideoInfo) -> Iterator[np.ndarray]:
    """The video's frames at its displayed size, one (H, W, 3) uint8 RGB array at a time."""
    for frame in read_frames(info, [], info.size, None):
        yield frame.image


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
    """

    def __init__(
        self,
        path: str | Path,
        size: tuple[int, int],
        fps: float,
        crf: int = 18,
        preset: str = "medium",
    ) -> None:
        self.path = Path(path)
        self.size = size
        self.frames = 0
        width, height = size
        cmd = [ffmpeg(), "-hide_banner", "-nostdin", "-y", "-loglevel", "error"]
        cmd += ["-f", "rawvideo", "-pix_fmt", "rgb24", "-s", f"{width}x{height}"]
        cmd += ["-r", f"{fps:.6f}", "-i", "pipe:0", "-an"]
        if width % 2 or height % 2:  # yuv420p halves the chroma planes
            cmd += ["-vf", "pad=ceil(iw/2)*2:ceil(ih/2)*2"]
        cmd += ["-c:v", "libx264", "-crf", str(int(crf)), "-preset", preset]
        cmd += ["-pix_fmt", "yuv420p", "-movflags", "+faststart", str(self.path)]
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


def mux_audio(video: Path, source: Path, output: Path) -> str:
    """Write ``output``: the video stream of ``video`` plus the audio streams of ``source``.

    Returns how the audio went in: "copy", or "aac" (re-encoded because the output container
    does not take the source codec, or players would not decode it there). Raises EncodeError
    when neither works.
    """
    base = [ffmpeg(), "-hide_banner", "-nostdin", "-y", "-loglevel", "error"]
    base += ["-i", ffmpeg_input(video), "-i", ffmpeg_input(source)]
    base += ["-map", "0:v:0", "-map", "1:a?", "-c:v", "copy"]
    modes = [("copy", ["-c:a", "copy"]), ("aac", ["-c:a", "aac", "-b:a", "192k"])]
    if output.suffix.lower() in MP4_LIKE and any(
        codec not in MP4_AUDIO for codec in audio_codecs(source)
    ):
        modes = modes[1:]
    errors = []
    for mode, audio in modes:
        cmd = [*base, *audio, "-movflags", "+faststart", str(output)]
        result = subprocess.run(cmd, capture_output=True, check=False)
        if result.returncode == 0:
            return mode
        errors.append(result.stderr.decode("utf-8", "replace").strip().splitlines()[-1:])
        output.unlink(missing_ok=True)
    raise EncodeError(f"could not add the audio of {source} to {output}: {errors}")


def partial_path(output: Path) -> Path:
    """The temporary name written before the final rename (same folder and extension)."""
    return output.with_name(f"{output.stem}.partial{output.suffix}")


def finish_output(video: Path, source: Path, output: Path, keep_audio: bool) -> str:
    """Move the encoded ``video`` to ``output``, muxing the source audio in when there is any.

    Returns "copy", "aac" or "none" (no audio kept).
    """
    mode = "none"
    if keep_audio and has_audio(source):
        muxed = output.with_name(f"{output.stem}.muxing{output.suffix}")
        mode = mux_audio(video, source, muxed)
        os.replace(muxed, output)
        video.unlink(missing_ok=True)
    else:
        os.replace(video, output)
    return mode
