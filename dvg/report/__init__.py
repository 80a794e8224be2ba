"""Viewing tools for the DVG data engine's output: `dvg inspect` and `dvg preview`.

``inspect_output`` summarises an output folder from its ledgers, done markers and manifest
(no image is decoded); ``preview`` draws a contact sheet (and optionally an mp4) of samples.
"""

from dvg.report.inspect import (
    Distribution,
    FailureReason,
    InspectReport,
    inspect_output,
    render_inspect,
)
from dvg.report.preview import PANEL_TITLES, PreviewResult, preview

__all__ = [
    "PANEL_TITLES",
    "Distribution",
    "FailureReason",
    "InspectReport",
    "PreviewResult",
    "inspect_output",
    "preview",
    "render_inspect",
]
