"""`dvg preview`: a contact sheet (and optionally a short mp4) of DVG training samples.

One sheet row per (sample, frame), labelled panels in the paper's notation (section 3.2): x1 (the
real frame), x2 (the inpainted novel view), M overlaid on x1, x~1 (x2 rendered back to x1's
viewpoint and blanked in M: the condition given to the diffusion model; format v1 shards had
none, their panel shows x1 * (1 - M)), and, when the shards store disparity
(``--keep-disparity``), a depth panel coloured from it (larger disparity = nearer; this is inverse
depth up to scale and shift). Only the requested frames of the requested samples are decoded.
"""

from __future__ import annotations

import itertools
import os
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import cv2
import imageio_ffmpeg
import numpy as np

from dvg.shards import decode_sample, iter_tar_samples, read_meta, resolve_shards

PANEL_TITLES = {
    "x1": "x1 real frame",
    "x2": "x2 novel view ({eye} eye)",
    "M": "M occlusion mask on x1",
    "x1~": "x1~ = x2 rendered back, 0 in M",  # Hershey fonts draw "~" as "-"
    "depth": "depth from disparity (near=red)",
}
V1_MASKED_TITLE = "x1 * (1 - M) (v1 shard: no x1~)"
MASK_TINT = np.array([255, 0, 255], dtype=np.float32)  # magenta, RGB
MASK_ALPHA = 0.6
DEFAULT_FPS = 8.0
_BACKGROUND = (32, 32, 32)
_TEXT = (255, 255, 255)
_FONT = cv2.FONT_HERSHEY_SIMPLEX
_FONT_SCALES = (0.4, 0.35, 0.3)  # tried in order until a label fits the panel width
_LINE_HEIGHT = 14
LABEL_HEIGHT = 2 * _LINE_HEIGHT + 4  # two lines: panel name, then sample key and frame
PANEL_GAP = 4  # background columns right of each frame, so neighbouring panels do not run together


@dataclass(frozen=True)
class PreviewResult:
    """Where the preview went and how the sheet is laid out.

    The sheet is ``(len(rows) * panel_height, len(panels) * panel_width, 3)``; each panel is
    a ``label_height`` strip of text above the (scaled) frame, which sits at the panel's top-left
    corner below the strip; ``panel_width`` includes a ``PANEL_GAP`` margin on the right.
    """

    png: Path
    rows: tuple[tuple[str, int], ...]  # (sample key, frame index) of each sheet row
    panels: tuple[str, ...]  # the columns, keys of PANEL_TITLES (depth only with disparity)
    panel_height: int
    panel_width: int
    label_height: int
    video: Path | None = None
    video_frames: int = 0
    video_size: tuple[int, int] | None = None  # (H, W) of the mp4 frames


def mask_overlay(image: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """Tint the masked pixels of x1 magenta. image: (H, W, 3) uint8, mask: (H, W) bool."""
    blended = (1 - MASK_ALPHA) * image.astype(np.float32) + MASK_ALPHA * MASK_TINT
    return np.where(mask[..., None], blended.round().astype(np.uint8), image)


def masked_source(image: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """x1~ = x1 * (1 - M) (paper 3.2). image: (H, W, 3) uint8, mask: (H, W) bool -> (H, W, 3)."""
    return np.where(mask[..., None], np.uint8(0), image)


def colour_disparity(disparity: np.ndarray) -> np.ndarray:
    """(H, W) disparity (px) -> (H, W, 3) uint8 RGB, turbo map of the frame's range (near = red).

    Disparity is proportional to inverse depth, so this is an inverse-depth view up to scale and
    shift; a constant frame maps to the far end of the map.
    """
    values = disparity.astype(np.float32)
    low, high = float(values.min()), float(values.max())
    scaled = (values - low) / (high - low) if high - low > 1e-6 else np.zeros_like(values)
    bgr = cv2.applyColorMap((scaled * 255).round().astype(np.uint8), cv2.COLORMAP_TURBO)
    return cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)


def frame_panels(
    source: np.ndarray,
    novel: np.ndarray,
    mask: np.ndarray,
    masked: np.ndarray | None,
    disparity: np.ndarray | None,
) -> dict[str, np.ndarray]:
    """The panels of one frame, in :data:`PANEL_TITLES` order, each (H, W, 3) uint8 RGB.

    source, novel: (H, W, 3) uint8 x1, x2; mask: (H, W) bool; masked: (H, W, 3) uint8 x~1, or
    None (format v1: x1 * (1 - M) is shown); disparity: (H, W) float or None (no depth panel).
    """
    panels = {
        "x1": source,
        "x2": novel,
        "M": mask_overlay(source, mask),
        "x1~": masked if masked is not None else masked_source(source, mask),
    }
    if disparity is not None:
        panels["depth"] = colour_disparity(disparity)
    return panels


def _titles(meta: dict[str, Any]) -> dict[str, str]:
    eye = (meta.get("stereo") or {}).get("virtual_eye", "?")
    titles = {name: title.format(eye=eye) for name, title in PANEL_TITLES.items()}
    if "masked" not in meta["fields"]:
        titles["x1~"] = V1_MASKED_TITLE
    return titles


def _scaled(image: np.ndarray, max_width: int) -> np.ndarray:
    height, width = image.shape[:2]
    if width <= max_width:
        return image
    size = (max_width, max(1, round(height * max_width / width)))
    return cv2.resize(image, size, interpolation=cv2.INTER_AREA)


def _fit_text(text: str, width: int) -> tuple[str, float]:
    """The largest font scale at which ``text`` fits ``width`` px, middle-truncated if none does."""
    for scale in _FONT_SCALES:
        if cv2.getTextSize(text, _FONT, scale, 1)[0][0] <= width:
            return text, scale
    scale = _FONT_SCALES[-1]
    keep = len(text)
    while keep > 2:
        keep -= 1
        head = (keep + 1) // 2
        short = f"{text[:head]}~{text[len(text) - (keep - head) :]}"
        if cv2.getTextSize(short, _FONT, scale, 1)[0][0] <= width:
            return short, scale
    return text[:1], scale


def _labelled(image: np.ndarray, lines: Sequence[str], height: int, width: int) -> np.ndarray:
    """(LABEL_HEIGHT + height, width + PANEL_GAP, 3) panel: text lines on a strip above image."""
    panel = np.full((LABEL_HEIGHT + height, width + PANEL_GAP, 3), _BACKGROUND, dtype=np.uint8)
    for i, line in enumerate(lines):
        text, scale = _fit_text(line, width - 2)
        baseline_y = (i + 1) * _LINE_HEIGHT
        cv2.putText(panel, text, (2, baseline_y), _FONT, scale, _TEXT, 1, cv2.LINE_AA)
    panel[LABEL_HEIGHT : LABEL_HEIGHT + image.shape[0], : image.shape[1]] = image
    return panel


def _frame_choice(frames_per_sample: int | Sequence[int], num_frames: int) -> list[int]:
    if isinstance(frames_per_sample, bool):
        raise ValueError(f"frames_per_sample must be an int or a list, got {frames_per_sample!r}")
    if isinstance(frames_per_sample, int | np.integer):
        if frames_per_sample < 1:
            raise ValueError(f"frames_per_sample must be >= 1, got {frames_per_sample}")
        count = min(int(frames_per_sample), num_frames)
        return sorted({int(t) for t in np.linspace(0, num_frames - 1, count).round()})
    return [int(t) for t in frames_per_sample]  # decode_sample checks the range, naming the key


def _all_samples(source: Path) -> Iterator[dict[str, Any]]:
    """Raw members of every sample of a shard, or of a folder's shards in manifest order."""
    for path, _ in resolve_shards(source):
        yield from iter_tar_samples(path)


def choose_samples(
    source: Path,
    count: int = 4,
    *,
    keys: Sequence[str] | None = None,
    random: int | None = None,
    seed: int = 0,
) -> list[dict[str, Any]]:
    """Raw members of the samples to preview: the named ``keys`` (in that order), or ``random``
    samples drawn uniformly over all shards (reservoir sampling: one pass, ``random`` samples in
    memory; the same ``seed`` draws the same ones), or else the first ``count``.

    Raises:
        ValueError naming the keys that ``source`` does not hold.
    """
    if keys is not None and random is not None:
        raise ValueError("choose samples by --keys or by --random, not both")
    if keys is not None:
        wanted = list(dict.fromkeys(keys))
        found: dict[str, dict[str, Any]] = {}
        for members in _all_samples(source):
            if members["__key__"] in wanted:
                found[members["__key__"]] = members
                if len(found) == len(wanted):
                    break
        missing = [key for key in wanted if key not in found]
        if missing:
            raise ValueError(
                f"{source}: no sample with key {', '.join(missing)} (`dvg inspect` and the "
                "ledgers list the keys)"
            )
        return [found[key] for key in wanted]
    if random is not None:
        if random < 1:
            raise ValueError(f"--random must be >= 1, got {random}")
        rng = np.random.default_rng(seed)
        reservoir: list[tuple[int, dict[str, Any]]] = []
        for index, members in enumerate(_all_samples(source)):
            if index < random:
                reservoir.append((index, members))
            else:
                slot = int(rng.integers(0, index + 1))
                if slot < random:
                    reservoir[slot] = (index, members)
        return [members for _, members in sorted(reservoir, key=lambda item: item[0])]
    return list(itertools.islice(_all_samples(source), count))


def write_side_by_side(
    clip: dict[str, Any],
    path: Path,
    *,
    fps: float,
    max_panel_width: int,
    mask_row: bool,
    titles: dict[str, str] | None = None,
) -> tuple[int, tuple[int, int]]:
    """Write an H.264 mp4 of x1 | x2 (and M overlay | x1~ below when ``mask_row``), each panel
    under a label strip with its name (``titles``, default :data:`PANEL_TITLES`), the sample key
    and the frame index.

    clip: ``decode_sample`` output with ``key``, ``frame_indices``, ``source``, ``novel``
    (F, H, W, 3) uint8, ``mask`` (F, H, W) bool and, when stored, ``masked`` (F, H, W, 3)
    uint8. Frames are padded with black to even sizes (yuv420p needs them).
    Returns: (frames written, (height, width) of the video).
    """
    titles = titles or {name: title.format(eye="?") for name, title in PANEL_TITLES.items()}
    frames = []
    for t, index in enumerate(clip["frame_indices"].tolist()):
        source, novel, mask = clip["source"][t], clip["novel"][t], clip["mask"][t]
        panels = {"x1": source, "x2": novel}
        if mask_row:
            panels["M"] = mask_overlay(source, mask)
            panels["x1~"] = clip["masked"][t] if "masked" in clip else masked_source(source, mask)
        scaled = {name: _scaled(image, max_panel_width) for name, image in panels.items()}
        box_h, box_w = scaled["x1"].shape[:2]
        labelled = [
            _labelled(image, (titles[name], f"{clip['key']} t={index}"), box_h, box_w)
            for name, image in scaled.items()
        ]
        rows = [np.hstack(labelled[i : i + 2]) for i in range(0, len(labelled), 2)]
        frames.append(np.vstack(rows))
    height, width = frames[0].shape[:2]
    pad = ((0, height % 2), (0, width % 2), (0, 0))
    height, width = height + height % 2, width + width % 2
    path.parent.mkdir(parents=True, exist_ok=True)
    writer = imageio_ffmpeg.write_frames(
        str(path),
        (width, height),
        fps=float(fps),
        codec="libx264",
        pix_fmt_out="yuv420p",
        quality=8,
        macro_block_size=2,  # sizes are already even: no rescale by ffmpeg
        ffmpeg_log_level="error",
    )
    writer.send(None)  # prime the generator
    for frame in frames:
        writer.send(np.ascontiguousarray(np.pad(frame, pad)))
    writer.close()
    return len(frames), (height, width)


def preview(
    source: str | os.PathLike[str],
    out_png: str | os.PathLike[str],
    *,
    samples: int = 4,
    frames_per_sample: int | Sequence[int] = 1,
    video: str | os.PathLike[str] | None = None,
    fps: float | None = None,
    max_panel_width: int = 480,
    video_mask_row: bool = True,
    keys: Sequence[str] | None = None,
    random: int | None = None,
    seed: int = 0,
) -> PreviewResult:
    """Write a contact sheet PNG of samples of a shard or output folder: the first ``samples``,
    the named ``keys`` or ``random`` ones drawn with ``seed`` (see :func:`choose_samples`).

    Args:
        source: a shard ``.tar`` or a ``dvg build`` output folder (shards in manifest order).
        out_png: where the sheet goes: one row per (sample, frame), panels x1, x2, M on x1, x1~
            and, when every sample stores disparity, depth; each labelled with its name, the
            sample key and the frame.
        frames_per_sample: how many frames per sample (evenly spaced, first and last included),
            or an explicit list of frame indices used for every sample.
        video: if set, also write an mp4 of the first chosen sample's frames: x1 | x2, and
            M overlay | x1~ below it when ``video_mask_row``, each panel labelled.
        fps: frame rate of that mp4; default the clip's ``meta["fps"]`` (else 8).
        max_panel_width: frames wider than this are scaled down (aspect kept).

    Raises:
        ValueError naming the path when ``source`` does not exist or holds no sample, or a
        ``ShardFormatError`` (a ValueError) naming the shard and key on a bad shard or frame index.
    """
    source, out_png = Path(source), Path(out_png)
    if not source.exists():
        raise ValueError(f"{source}: no such shard .tar or output folder")
    if samples < 1 or max_panel_width < 8:
        raise ValueError(
            f"need samples >= 1 and max_panel_width >= 8, got {samples} and {max_panel_width}"
        )

    chosen_samples = choose_samples(source, samples, keys=keys, random=random, seed=seed)
    if not chosen_samples:
        raise ValueError(f"{source}: holds no sample to preview")
    first = chosen_samples[0]
    metas = [read_meta(members) for members in chosen_samples]
    with_depth = all("disparity" in meta["fields"] for meta in metas)
    rows: list[tuple[str, int, dict[str, np.ndarray], dict[str, str]]] = []
    for members, meta in zip(chosen_samples, metas, strict=True):
        chosen = _frame_choice(frames_per_sample, meta["frames"])
        fields = [f for f in ("source", "novel", "mask", "masked") if f in meta["fields"]]
        if with_depth:
            fields.append("disparity")
        clip = decode_sample(members, frames=chosen, fields=fields)
        for i, t in enumerate(clip["frame_indices"].tolist()):
            panels = frame_panels(
                clip["source"][i],
                clip["novel"][i],
                clip["mask"][i],
                clip["masked"][i] if "masked" in clip else None,
                clip["disparity"][i] if with_depth else None,
            )
            scaled = {name: _scaled(image, max_panel_width) for name, image in panels.items()}
            rows.append((clip["key"], t, scaled, _titles(meta)))

    box_h = max(p["x1"].shape[0] for _, _, p, _ in rows)
    box_w = max(p["x1"].shape[1] for _, _, p, _ in rows)
    sheet = np.vstack(
        [
            np.hstack(
                [
                    _labelled(image, (titles[name], f"{key} t={t}"), box_h, box_w)
                    for name, image in panels.items()
                ]
            )
            for key, t, panels, titles in rows
        ]
    )
    out_png.parent.mkdir(parents=True, exist_ok=True)
    if not cv2.imwrite(str(out_png), cv2.cvtColor(sheet, cv2.COLOR_RGB2BGR)):
        raise ValueError(f"{out_png}: cv2 could not write the PNG (is the suffix .png?)")

    result = PreviewResult(
        png=out_png,
        rows=tuple((key, t) for key, t, _, _ in rows),
        panels=tuple(rows[0][2]),
        panel_height=LABEL_HEIGHT + box_h,
        panel_width=box_w + PANEL_GAP,
        label_height=LABEL_HEIGHT,
    )
    if video is None:
        return result
    fields = [f for f in ("source", "novel", "mask", "masked") if f in metas[0]["fields"]]
    clip = decode_sample(first, fields=fields)
    rate = fps if fps is not None else (clip["meta"].get("fps") or DEFAULT_FPS)
    count, size = write_side_by_side(
        clip, Path(video), fps=rate, max_panel_width=max_panel_width, mask_row=video_mask_row,
        titles=_titles(metas[0]),
    )  # fmt: skip
    return replace(result, video=Path(video), video_frames=count, video_size=size)
