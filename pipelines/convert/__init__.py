"""Mono video -> stereo video conversion: streaming I/O, stereo methods, output layouts.

``convert(input, output, ConvertConfig(...))`` is what ``spatialdreamer convert`` runs; see
docs/convert.md.
"""

from pipelines.convert.batch import FolderResult, convert_folder
from pipelines.convert.converter import ConvertConfig, ConvertResult, convert, iter_stereo_pairs
from pipelines.convert.formats import (
    DUBOIS_LEFT,
    DUBOIS_RIGHT,
    LAYOUT_SUFFIXES,
    LAYOUTS,
    anaglyph,
    compose,
    frame_size,
    output_name,
    resolve_output,
)
from pipelines.convert.io import EncodeError, VideoWriter, has_audio, stream_summary
from pipelines.convert.methods import (
    STEREO_METHODS,
    MethodConfig,
    MissingModelError,
    SpatialDreamer,
    StereoMethod,
    StreamSource,
    WarpInpaint,
    create_method,
)
from pipelines.convert.warp import DepthFile, WarpConfig, WarpResult, WarpStage

__all__ = [
    "DUBOIS_LEFT",
    "DUBOIS_RIGHT",
    "LAYOUTS",
    "LAYOUT_SUFFIXES",
    "STEREO_METHODS",
    "ConvertConfig",
    "ConvertResult",
    "DepthFile",
    "EncodeError",
    "FolderResult",
    "MethodConfig",
    "MissingModelError",
    "SpatialDreamer",
    "StereoMethod",
    "StreamSource",
    "VideoWriter",
    "WarpConfig",
    "WarpInpaint",
    "WarpResult",
    "WarpStage",
    "anaglyph",
    "compose",
    "convert",
    "convert_folder",
    "create_method",
    "frame_size",
    "has_audio",
    "iter_stereo_pairs",
    "output_name",
    "resolve_output",
    "stream_summary",
]
