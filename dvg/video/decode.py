"""Probing and decoding source videos with the bundled ffmpeg, and the errors a bad video raises.

Every problem with one video becomes a ``VideoError`` whose ``reason`` is a short code the
builder writes to its ledger, so one bad file never stops a run over thousands. Problems with
the machine itself (no ffmpeg binary, a full disk) are not VideoErrors and do stop the run.

ffmpeg is run directly (``imageio_ffmpeg.get_ffmpeg_exe()``) rather than through
``imageio_ffmpeg.read_frames``: read_frames returns normally when ffmpeg stops early on a damaged
file, without exposing ffmpeg's exit status or log, and its header parser misses the display
matrix that ffmpeg >= 6 uses for rotation. Here ffmpeg's log goes to a temporary file, which also
gives each frame's presentation timestamp (the ``showinfo`` filter), so clips can carry exact
timestamps and native frame indices even for variable-frame-rate sources.
"""

from __future__ import annotations

import math
import os
import re
import stat
import subprocess
import tempfile
from collections import deque
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, fields
from fractions import Fraction
from pathlib import Path

import imageio_ffmpeg
import numpy as np

# reason code -> what it means; the ledger stores the code, docs/video-input.md the table.
REASONS: dict[str, str] = {
    "not_found": "the path does not exist (or is a link to nothing)",
    "empty_file": "the file has zero bytes",
    "unreadable": "not a regular readable file, or ffmpeg cannot open it, it is not a video, or "
    "it has no video stream",
    "too_small": "the short side (after the letterbox crop, or after the resize policy for "
    "extreme aspect ratios) is below config.min_side",
    "fps_out_of_range": "the native frame rate is outside [config.min_fps, config.max_fps]",
    "too_large": "more pixels per frame than config.max_pixels (beyond 4K by default)",
    "too_short": "no scene has enough decoded frames for one clip (or the video is shorter than "
    "one frame at the output rate)",
    "truncated": "the file ends early (cut off while written or copied)",
    "decode_error": "ffmpeg failed while decoding",
}

PROBE_TIMEOUT_S = 60.0


class VideoError(Exception):
    """A video that cannot be used; ``reason`` is a short code for the ledger (see REASONS)."""

    def __init__(self, path: str, reason: str, message: str):
        if reason not in REASONS:
            raise ValueError(f"unknown VideoError reason {reason!r}; known: {sorted(REASONS)}")
        # args carry all three so the error pickles (it crosses process boundaries on a cluster)
        super().__init__(str(path), reason, message)
        self.path = str(path)
        self.reason = reason
        self.message = message

    def __str__(self) -> str:
        return f"{self.path}: {self.message} [{self.reason}]"


@dataclass(frozen=True)
class VideoConfig:
    """How source videos become clips: size, letterbox crop, frame rate, clip sampling, limits."""

    short_side: int | None = 576
    max_side: int | None = 1024
    multiple: int = 8
    crop_letterbox: bool = True
    fps: float | None = None
    clip_length: int = 16
    clip_stride: int | None = None
    max_clips_per_video: int | None = None
    scene_threshold: float = 27.0
    min_scene_length: int = 8
    min_side: int = 64
    max_pixels: int = 4096 * 2160
    allow_upscale: bool = False
    min_fps: float = 1.0
    max_fps: float = 240.0

    def __post_init__(self) -> None:
        positive_or_none = ("short_side", "max_side", "clip_stride", "max_clips_per_video")
        positive = ("multiple", "clip_length", "min_scene_length", "min_side", "max_pixels")
        for name in positive_or_none + positive:
            value = getattr(self, name)
            if value is None and name in positive_or_none:
                continue
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"VideoConfig.{name} must be a positive int, got {value!r}")
        for name in ("short_side", "max_side"):
            value = getattr(self, name)
            if value is not None and value < self.multiple:
                raise ValueError(
                    f"VideoConfig.{name}={value} is below multiple={self.multiple}: "
                    "the output would be empty"
                )
        if self.fps is not None and not (math.isfinite(self.fps) and self.fps > 0):
            raise ValueError(f"VideoConfig.fps must be a positive number or None, got {self.fps!r}")
        if not (0 <= self.min_fps < self.max_fps):
            raise ValueError(
                f"VideoConfig needs 0 <= min_fps < max_fps, got {self.min_fps!r}, {self.max_fps!r}"
            )
        # inf is allowed: it switches scene-cut detection off
        if not self.scene_threshold > 0:
            raise ValueError(
                f"VideoConfig.scene_threshold must be > 0, got {self.scene_threshold!r}"
            )
        for name in ("crop_letterbox", "allow_upscale"):
            if not isinstance(getattr(self, name), bool):
                raise ValueError(f"VideoConfig.{name} must be a bool, got {getattr(self, name)!r}")

    @property
    def stride(self) -> int:
        """Output frames between clip starts."""
        return self.clip_length if self.clip_stride is None else self.clip_stride

    def to_dict(self) -> dict:
        return {f.name: getattr(self, f.name) for f in fields(self)}


@dataclass(frozen=True)
class VideoInfo:
    """What the container says about a video's first usable video stream.

    ``width``/``height`` are as displayed (rotation metadata applied); ``rotation`` is the
    clockwise rotation applied for display (the phone ``rotate`` tag), one of 0/90/180/270;
    ``num_frames`` is an estimate (duration x fps), None when either is unknown.
    """

    path: str
    width: int
    height: int
    fps: float
    duration: float
    num_frames: int | None
    rotation: int
    codec: str | None
    notes: tuple[str, ...]
    pix_fmt: str | None = None
    stream_index: int = 0  # ffmpeg's index of the stream decoded (``-map 0:<index>``)
    sar: tuple[int, int] = (1, 1)  # sample (pixel) aspect ratio as the stream header states it
    container_stereo: bool = False  # the container signals a stereo packing (st3d, StereoMode)

    @property
    def size(self) -> tuple[int, int]:
        """(width, height) as displayed."""
        return (self.width, self.height)

    def to_dict(self) -> dict:
        return {f.name: getattr(self, f.name) for f in fields(self)}


def ffmpeg_input(path: str | Path) -> str:
    """The ``-i`` argument for a local file; ``file:`` stops ffmpeg reading ``a:b.mp4`` as a
    protocol and a leading ``-`` as an option."""
    return "file:" + os.path.abspath(path)


def check_input_file(path: str | Path) -> int:
    """Check that ``path`` is a regular, readable, non-empty file before anything opens it (a
    FIFO named ``x.mp4`` would block a reader forever); returns its size in bytes.

    Raises VideoError: not_found (no such file, a link to nothing, a link loop), unreadable (a
    folder, FIFO, socket or device; no read permission), empty_file.
    """
    shown = str(path)
    try:
        info = os.stat(path)
    except FileNotFoundError:
        if os.path.islink(path):
            raise VideoError(shown, "not_found", "a symbolic link to a missing file") from None
        raise VideoError(shown, "not_found", "no such file") from None
    except OSError as error:  # ELOOP, ENAMETOOLONG, EACCES on a parent folder, ...
        raise VideoError(shown, "not_found", f"cannot reach the file: {error.strerror}") from None
    if not stat.S_ISREG(info.st_mode):
        raise VideoError(shown, "unreadable", f"not a regular file (a {_file_kind(info.st_mode)})")
    if not os.access(path, os.R_OK):
        raise VideoError(shown, "unreadable", "permission denied (the file is not readable)")
    if info.st_size == 0:
        raise VideoError(shown, "empty_file", "the file is empty (0 bytes)")
    return info.st_size


def _file_kind(mode: int) -> str:
    for test, kind in (
        (stat.S_ISDIR, "folder"),
        (stat.S_ISFIFO, "FIFO"),
        (stat.S_ISSOCK, "socket"),
        (stat.S_ISCHR, "character device"),
        (stat.S_ISBLK, "block device"),
    ):
        if test(mode):
            return kind
    return "special file"


def probe_video(path: str | Path, config: VideoConfig) -> VideoInfo:
    """Read a video's metadata with ``ffmpeg -i`` and check it against the config's limits.

    Raises VideoError: not_found, empty_file, unreadable, truncated (an mp4 whose index is
    missing), too_small (also when the resize policy would bring the short side of an extreme
    aspect ratio below ``min_side``), too_large, fps_out_of_range.
    """
    shown = str(path)
    p = Path(path)
    check_input_file(p)
    cmd = [imageio_ffmpeg.get_ffmpeg_exe(), "-hide_banner", "-nostdin", "-i", ffmpeg_input(p)]
    try:
        # ffmpeg exits non-zero here (no output named); the header on stderr is all we want
        log = subprocess.run(
            cmd, capture_output=True, timeout=PROBE_TIMEOUT_S, check=False
        ).stderr.decode("utf-8", "replace")
    except subprocess.TimeoutExpired:
        raise VideoError(
            shown, "unreadable", f"ffmpeg did not read the header within {PROBE_TIMEOUT_S:.0f} s"
        ) from None
    info = parse_probe_log(shown, log, _starts_like_mp4(p))
    short, pixels = min(info.width, info.height), info.width * info.height
    if short < config.min_side:
        raise VideoError(
            shown,
            "too_small",
            f"{info.width}x{info.height} has a short side below min_side={config.min_side}",
        )
    if pixels > config.max_pixels:
        raise VideoError(
            shown,
            "too_large",
            f"{info.width}x{info.height} = {pixels} pixels exceeds max_pixels={config.max_pixels}",
        )
    if info.fps > 0 and not config.min_fps <= info.fps <= config.max_fps:
        raise VideoError(
            shown,
            "fps_out_of_range",
            f"the native frame rate {info.fps:g} fps is outside [{config.min_fps:g}, "
            f"{config.max_fps:g}] (VideoConfig.min_fps / max_fps)",
        )
    check_output_size(info, (0, 0, info.width, info.height), config)
    return info


def check_output_size(info: VideoInfo, crop: tuple[int, int, int, int], config: VideoConfig):
    """The output geometry of ``crop`` under the resize policy; raises VideoError too_small when
    its short side falls below ``min_side`` (an extreme aspect ratio squeezed under
    ``max_side``) or the policy leaves nothing."""
    from dvg.video.transform import plan_transform  # transform imports this module

    try:
        transform = plan_transform(info.size, crop, config)
    except ValueError as err:
        raise VideoError(info.path, "too_small", str(err)) from None
    out_w, out_h = transform.output_size
    # A short_side target below min_side asks for small outputs: only squeezing below it fails.
    floor = config.min_side
    if config.short_side is not None:
        floor = min(floor, config.short_side // config.multiple * config.multiple)
    if min(out_w, out_h) < floor:
        raise VideoError(
            info.path,
            "too_small",
            f"the {crop[2]}x{crop[3]} picture (aspect ratio {max(crop[2:]) / min(crop[2:]):.1f}:1) "
            f"becomes {out_w}x{out_h} under the resize policy (long side <= max_side="
            f"{config.max_side}), a short side below {floor} (min_side={config.min_side})",
        )
    return transform


def _starts_like_mp4(path: Path) -> bool:
    with open(path, "rb") as f:
        return f.read(12)[4:8] == b"ftyp"


_STREAM = re.compile(r"^\s*Stream #\d+:(\d+)\S*: (\w+): (.*)$")
_SIZE = re.compile(r" (\d+)x(\d+)(?=[, \[]|$)")
_RATE = re.compile(r"([\d.]+)(k?) (fps|tbr)\b")
_DURATION = re.compile(r"Duration: (\d+):(\d+):(\d+(?:\.\d+)?)")
_DISPLAY_MATRIX = re.compile(r"rotation of (-?[\d.]+) degrees", re.IGNORECASE)
_ROTATE_TAG = re.compile(r"^\s*rotate\s*:\s*(-?\d+)")
_SAR = re.compile(r"SAR (\d+):(\d+)")


def parse_probe_log(path: str, log: str, looks_like_mp4: bool = False) -> VideoInfo:
    """VideoInfo from the stderr of ``ffmpeg -i <file>`` (raises VideoError when unusable)."""
    lines = log.splitlines()
    streams: list[tuple[int, str, list[str]]] = []  # (index, description, lines below it)
    for line in lines:
        match = _STREAM.match(line)
        if match:
            if match.group(2) == "Video" and "(attached pic)" not in match.group(3):
                streams.append((int(match.group(1)), match.group(3), []))
            else:
                streams.append((-1, "", []))
        elif streams and line.startswith("    "):
            streams[-1][2].append(line)
    streams = [s for s in streams if s[0] >= 0]
    if not streams:
        if "moov atom not found" in log and looks_like_mp4:
            raise VideoError(
                path, "truncated", "the mp4 index (moov atom) is missing: the file was cut off"
            )
        problem = _last_error(lines) or "no video stream"
        raise VideoError(path, "unreadable", f"ffmpeg cannot use it as a video: {problem}")

    index, description, below = streams[0]
    parts = _split_top_level(description)
    codec = parts[0].split(" ", 1)[0] if parts and parts[0] else None
    pix_fmt = parts[1].split("(", 1)[0].strip() if len(parts) > 1 else None
    size = _SIZE.search(description)
    if size is None:
        raise VideoError(path, "unreadable", f"no frame size in the stream header: {description}")
    coded_w, coded_h = int(size.group(1)), int(size.group(2))
    if coded_w == 0 or coded_h == 0:
        raise VideoError(path, "unreadable", f"the video stream has no picture size: {description}")
    rates = {kind: float(v) * (1000 if k else 1) for v, k, kind in _RATE.findall(description)}
    # "1k tbr" and the like are time-base guesses, not frame rates
    fps = rates.get("fps") or (rates["tbr"] if rates.get("tbr", 1000) < 1000 else 0.0)
    duration_match = _DURATION.search(log)
    duration = 0.0
    if duration_match:
        h, m, s = duration_match.groups()
        duration = 3600 * int(h) + 60 * int(m) + float(s)

    notes: list[str] = []
    rotation = 0
    for line in below:
        matrix, tag = _DISPLAY_MATRIX.search(line), _ROTATE_TAG.match(line)
        if matrix:  # ffmpeg prints the counter-clockwise angle of the display matrix
            rotation = -float(matrix.group(1))
        elif tag:  # ffmpeg < 5 prints the clockwise ``rotate`` tag
            rotation = float(tag.group(1))
    rotation_cw = round(rotation) % 360
    if rotation_cw % 90:
        notes.append(f"rotation {rotation_cw} ignored (ffmpeg only applies multiples of 90)")
        rotation_cw = 0
    width, height = (coded_h, coded_w) if rotation_cw in (90, 270) else (coded_w, coded_h)
    if rotation_cw:
        notes.append(f"rotated {rotation_cw}")
    if "fps" in rates and "tbr" in rates and abs(rates["fps"] - rates["tbr"]) > 0.01 * rates["tbr"]:
        notes.append("variable frame rate?")
    if fps <= 0:
        notes.append("no frame rate in metadata")
    if duration <= 0:
        notes.append("no duration in metadata")
    if pix_fmt and pix_fmt.startswith(("gray", "ya8", "ya16", "y400")):
        notes.append(f"grayscale pix_fmt {pix_fmt}")
    sar = _SAR.search(description)
    pixel_aspect = (1, 1)
    if sar and sar.group(1) != sar.group(2) and sar.group(1) != "0" and sar.group(2) != "0":
        notes.append(f"non-square pixels (SAR {sar.group(1)}:{sar.group(2)}), not corrected")
        pixel_aspect = (int(sar.group(1)), int(sar.group(2)))
        if rotation_cw in (90, 270):  # displayed rotated: the pixel's width is its height
            pixel_aspect = pixel_aspect[::-1]
    if len(streams) > 1:
        notes.append(f"{len(streams)} video streams, using stream {index}")
    num_frames = round(duration * fps) if duration > 0 and fps > 0 else None
    return VideoInfo(
        path=path,
        width=width,
        height=height,
        fps=fps,
        duration=duration,
        num_frames=num_frames,
        rotation=rotation_cw,
        codec=codec,
        notes=tuple(notes),
        pix_fmt=pix_fmt,
        stream_index=index,
        sar=pixel_aspect,
        container_stereo=any("Stereo 3D:" in line for line in below),
    )


def _split_top_level(text: str) -> list[str]:
    """Split at commas outside parentheses: ``yuv420p(tv, bt709)`` stays one field."""
    return [part.strip() for part in re.split(r",\s*(?![^()]*\))", text)]


_ERROR_WORDS = ("error", "invalid", "corrupt", "damaged", "partial file", "prematurely", "missing")
_TRUNCATION_WORDS = ("partial file", "ended prematurely", "moov atom not found", "end of file")


def _is_error_line(line: str) -> bool:
    # indented lines are header and metadata (a title may say "error"); messages are not
    low = line.lower()
    return not line.startswith(" ") and any(w in low for w in _ERROR_WORDS + _TRUNCATION_WORDS)


def _last_error(lines: Sequence[str]) -> str:
    errors = [line.strip() for line in lines if _is_error_line(line)]
    return errors[-1] if errors else ""


@dataclass(frozen=True)
class DecodedFrame:
    """One output frame: ``image`` (H, W, C) uint8 (a read-only view of the pipe buffer)."""

    image: np.ndarray
    index: int  # in the output (resampled) stream
    source_index: int  # nearest native decoded frame
    timestamp: float  # seconds after the first decoded frame


class FfmpegPipe:
    """One ffmpeg process writing raw frames to a pipe and its log to a temporary file.

    The log file is opened for appending by ffmpeg and read through a second handle, so every
    line ffmpeg wrote before a frame reached the pipe is readable once that frame is.
    """

    def __init__(
        self,
        info: VideoInfo,
        filters: Sequence[str],
        size: tuple[int, int],
        pix_fmt: str = "rgb24",
        output_args: Sequence[str] = (),
    ):
        self.path = info.path
        self.duration = info.duration
        self.output_fps: float | None = None  # set by read_frames when resampling
        self.width, self.height = size
        self.channels = {"rgb24": 3, "gray": 1}[pix_fmt]
        self.frame_bytes = self.width * self.height * self.channels
        self.frames_read = 0
        self.errors: deque[str] = deque(maxlen=8)
        self.truncation_seen = False
        fd, self._log_path = tempfile.mkstemp(prefix="dvg-ffmpeg-", suffix=".log")
        os.close(fd)
        self._unread: list[str] = []  # scanned log lines not yet handed out by poll_log
        self._in_output_header = False
        self.output_size: tuple[int, int] | None = None  # as ffmpeg announced it
        self._log_rest = b""
        cmd = [imageio_ffmpeg.get_ffmpeg_exe(), "-hide_banner", "-nostdin", "-nostats"]
        if info.container_stereo and info.codec == "h264":
            # ffmpeg 9's CLI cannot decode H.264 whose stereo packing is signalled twice (an
            # st3d / StereoMode in the container and frame-packing SEI in the stream: it stops
            # with EEXIST); the SEI units only repeat what the container says, so drop them.
            cmd += ["-bsf:v", "filter_units=remove_types=6"]
        cmd += ["-i", ffmpeg_input(info.path), "-map", f"0:{info.stream_index}"]
        if filters:
            cmd += ["-vf", ",".join(filters)]
        # passthrough: one output frame per filtered frame; the fps filter (if any) resamples
        cmd += ["-fps_mode", "passthrough", *output_args]
        cmd += ["-pix_fmt", pix_fmt, "-f", "rawvideo", "pipe:1"]
        try:
            with open(self._log_path, "ab") as log_writer:
                self.process = subprocess.Popen(
                    cmd, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=log_writer
                )
        except BaseException:
            os.unlink(self._log_path)
            raise
        self._log_reader = open(self._log_path, "rb")  # closed in close()

    def read(self) -> np.ndarray | None:
        """The next frame (H, W, C) uint8, or None at the end of the stream."""
        data = self.process.stdout.read(self.frame_bytes)
        if not data:
            return None
        if len(data) < self.frame_bytes:
            self.poll_log()
            raise VideoError(
                self.path,
                "decode_error",
                f"ffmpeg stopped in the middle of frame {self.frames_read}" + self._error_context(),
            )
        if self.frames_read == 0:
            self._scan_log()  # the output header is written before the first frame
            if self.output_size is not None and self.output_size != (self.width, self.height):
                # reading on would slice the byte stream into garbage frames
                raise VideoError(
                    self.path,
                    "decode_error",
                    f"ffmpeg produced {self.output_size[0]}x{self.output_size[1]} frames, "
                    f"expected {self.width}x{self.height}",
                )
        self.frames_read += 1
        return np.frombuffer(data, np.uint8).reshape(self.height, self.width, self.channels)

    def poll_log(self) -> list[str]:
        """Log lines written since the last call (also scanned for errors)."""
        self._scan_log()
        lines, self._unread = self._unread, []
        return lines

    def _scan_log(self) -> None:
        data = self._log_rest + self._log_reader.read()
        parts = data.replace(b"\r", b"\n").split(b"\n")
        self._log_rest = parts.pop()
        lines = [part.decode("utf-8", "replace") for part in parts if part.strip()]
        for line in lines:
            if line.startswith("Output #"):
                self._in_output_header = True
            elif self._in_output_header and " Video: " in line and self.output_size is None:
                size = _SIZE.search(line)
                if size:
                    self.output_size = (int(size.group(1)), int(size.group(2)))
            if "Parsed_showinfo_" in line or not _is_error_line(line):
                continue
            self.errors.append(line.strip())
            if any(word in line.lower() for word in _TRUNCATION_WORDS):
                self.truncation_seen = True
        self._unread.extend(lines)

    def finish(self, expected_frames: float | None = None) -> None:
        """After the last frame: wait for ffmpeg and raise VideoError if it failed part-way.

        Errors ffmpeg concealed are accepted unless the output also fell short of
        ``expected_frames`` (some containers, e.g. AVI, end early without saying so).
        """
        try:
            returncode = self.process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.process.kill()
            returncode = self.process.wait()
        self.poll_log()
        if self.truncation_seen:
            raise VideoError(
                self.path,
                "truncated",
                f"the file ends early (after {self.frames_read} output frames)"
                + self._error_context(),
            )
        if returncode != 0:
            raise VideoError(
                self.path,
                "decode_error",
                f"ffmpeg exited with status {returncode} after {self.frames_read} frames"
                + self._error_context(),
            )
        if self.frames_read == 0 and self.errors:
            raise VideoError(
                self.path, "decode_error", "ffmpeg decoded no frames" + self._error_context()
            )
        if self.frames_read == 0:  # a clean run with no output: too short for the output rate
            raise VideoError(
                self.path,
                "too_short",
                "ffmpeg produced no frame"
                + (f" at {self.output_fps:g} fps" if self.output_fps else "")
                + f": the video lasts {self.duration:g} s",
            )
        if expected_frames and self.errors and self.frames_read < 0.8 * expected_frames - 2:
            raise VideoError(
                self.path,
                "truncated",
                f"decoding stopped after {self.frames_read} of about {expected_frames:.0f} "
                "frames" + self._error_context(),
            )

    def _error_context(self) -> str:
        return f" (ffmpeg: {self.errors[-1]})" if self.errors else ""

    def close(self) -> None:
        """Stop ffmpeg (if still running) and remove the log file."""
        if self.process.poll() is None:
            self.process.kill()
        self.process.wait()
        self.process.stdout.close()
        self._log_reader.close()
        try:
            os.unlink(self._log_path)
        except FileNotFoundError:
            pass


_SHOWINFO_FRAME = re.compile(r"\] n:\s*(\d+) pts:\s*(-?\d+|NOPTS)")
_SHOWINFO_TIMEBASE = re.compile(r"\] config in time_base: (\d+)/(\d+)")


class _NativeClock:
    """Presentation timestamps of native frames, read from the showinfo lines in the log."""

    def __init__(self) -> None:
        self.time_base: Fraction | None = None
        self.frames: deque[tuple[int, int]] = deque()  # (native index, pts), in order

    def feed(self, lines: Sequence[str]) -> None:
        for line in lines:
            frame = _SHOWINFO_FRAME.search(line)
            if frame:
                if frame.group(2) != "NOPTS":
                    self.frames.append((int(frame.group(1)), int(frame.group(2))))
            elif self.time_base is None:
                tb = _SHOWINFO_TIMEBASE.search(line)
                if tb and int(tb.group(2)):
                    self.time_base = Fraction(int(tb.group(1)), int(tb.group(2)))


def _round_near(x: Fraction) -> int:
    """Round half away from zero, as ffmpeg's AV_ROUND_NEAR_INF."""
    return math.floor(x + Fraction(1, 2)) if x >= 0 else -math.floor(-x + Fraction(1, 2))


def output_rate(fps: float) -> Fraction:
    """The rational frame rate handed to ffmpeg's fps filter (e.g. 29.97 -> 2997/100)."""
    return Fraction(fps).limit_denominator(100_000)


def read_frames(
    info: VideoInfo, filters: Sequence[str], size: tuple[int, int], fps: float | None
) -> Iterator[DecodedFrame]:
    """Decode ``info.path`` through ffmpeg ``filters`` (which must produce ``size`` = (W, H)),
    optionally resampled to ``fps``, yielding RGB frames one at a time.

    Source indices follow ffmpeg's fps filter: output slot k (of 1/fps seconds) holds the last
    native frame whose timestamp, rounded to the nearest slot, is <= k. Raises VideoError
    (truncated / decode_error) after the last good frame if ffmpeg failed part-way; closing the
    generator early stops ffmpeg without any check.
    """
    rate = None if fps is None else output_rate(fps)
    chain = [*filters, "showinfo=checksum=0"]
    if rate is not None:
        chain.append(f"fps=fps={rate.numerator}/{rate.denominator}")
    expected = info.duration * float(rate if rate is not None else info.fps) or None
    pipe = FfmpegPipe(info, chain, size)
    pipe.output_fps = None if rate is None else float(rate)
    clock = _NativeClock()
    first_pts: int | None = None
    first_slot = 0
    try:
        index = 0
        while (image := pipe.read()) is not None:
            clock.feed(pipe.poll_log())
            frames, tb = clock.frames, clock.time_base
            if rate is None:  # native stream: output frame k is native frame k
                while frames and frames[0][0] < index:
                    frames.popleft()
                if frames and frames[0][0] == index and tb is not None:
                    first_pts = frames[0][1] if first_pts is None else first_pts
                    timestamp = float((frames[0][1] - first_pts) * tb)
                else:  # no timestamp in the log (should not happen): assume constant rate
                    timestamp = index / info.fps if info.fps > 0 else 0.0
                source = index
            else:
                if frames and tb is not None:
                    if first_pts is None:
                        first_pts = frames[0][1]
                        first_slot = _round_near(first_pts * tb * rate)
                    target = first_slot + index
                    while len(frames) > 1 and _round_near(frames[1][1] * tb * rate) <= target:
                        frames.popleft()
                    source = frames[0][0]
                else:
                    source = round(index * info.fps / float(rate)) if info.fps > 0 else index
                timestamp = float(index / rate)
            yield DecodedFrame(image, index, source, timestamp)
            index += 1
        pipe.finish(expected)
    finally:
        pipe.close()


def read_max_image(
    info: VideoInfo, max_frames: int = 20, seconds: float = 5.0, sample_fps: float = 4.0
) -> np.ndarray:
    """Per-pixel maximum luma over frames sampled from the start of the video (letterbox scan).

    Returns (H, W) uint8 at the displayed source size. Holds one frame at a time. A video too
    short for one frame at ``sample_fps`` (under 1 / (2 sample_fps) s, e.g. 8 frames at
    100 fps) is scanned over its first ``max_frames`` frames instead. Raises VideoError only
    when no frame at all can be decoded.
    """
    rate = output_rate(sample_fps)
    sampled = _max_luma(
        info,
        [f"fps=fps={rate.numerator}/{rate.denominator}"],
        ["-t", f"{seconds:g}", "-frames:v", str(max_frames)],
    )
    if sampled is not None:
        return sampled
    peak = _max_luma(info, [], ["-frames:v", str(max_frames)], check=True)
    assert peak is not None  # _max_luma raised otherwise
    return peak


def _max_luma(
    info: VideoInfo, filters: list[str], output_args: list[str], check: bool = False
) -> np.ndarray | None:
    """Per-pixel maximum of the grey frames ffmpeg outputs; None when there are none (unless
    ``check``: then ffmpeg's failure, or "no frames", is raised as a VideoError)."""
    pipe = FfmpegPipe(info, filters, info.size, pix_fmt="gray", output_args=output_args)
    try:
        peak: np.ndarray | None = None
        while (image := pipe.read()) is not None:
            peak = image[:, :, 0].copy() if peak is None else np.maximum(peak, image[:, :, 0])
        if peak is None and check:
            pipe.finish()  # raises: no frame decoded
            raise VideoError(info.path, "decode_error", "ffmpeg decoded no frames")
        return peak
    finally:
        pipe.close()
