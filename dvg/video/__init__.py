"""Video input for the DVG data engine: find source videos and stream them as training clips.

``iter_video_clips(path, VideoConfig())`` probes a video, crops letterbox bars, resizes (short
side 576, long side at most 1024, sides multiples of 8), optionally resamples the frame rate,
splits at hard scene cuts (paper 4.2) and yields ``VideoClip`` objects of ``clip_length`` frames
with bounded memory. Any problem with one video raises ``VideoError`` with a short ``reason``
code for the run's ledger. See docs/video-input.md.
"""

from dvg.video.clips import ClipSampler, VideoClip, iter_video_clips
from dvg.video.decode import (
    REASONS,
    VideoConfig,
    VideoError,
    VideoInfo,
    check_input_file,
    parse_probe_log,
    probe_video,
)
from dvg.video.inputs import (
    VIDEO_EXTENSIONS,
    VideoInput,
    discover_inputs,
    is_video_file,
    utf8_text,
    walk_videos,
)
from dvg.video.scenecut import SceneCutDetector, content_score
from dvg.video.transform import FrameTransform, detect_letterbox, plan_transform

__all__ = [
    "REASONS",
    "VIDEO_EXTENSIONS",
    "ClipSampler",
    "FrameTransform",
    "SceneCutDetector",
    "VideoClip",
    "VideoConfig",
    "VideoError",
    "VideoInfo",
    "VideoInput",
    "check_input_file",
    "content_score",
    "detect_letterbox",
    "discover_inputs",
    "is_video_file",
    "iter_video_clips",
    "parse_probe_log",
    "plan_transform",
    "probe_video",
    "utf8_text",
    "walk_videos",
]
