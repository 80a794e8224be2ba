"""`preview`: contact sheet layout and panel contents, the side-by-side mp4, errors."""

from __future__ import annotations

import re

import cv2
import imageio_ffmpeg
import numpy as np
import pytest

from dvg.report import PANEL_TITLES, preview
from dvg.report.preview import LABEL_HEIGHT, MASK_ALPHA, MASK_TINT, PANEL_GAP
from dvg.shards import decode_sample, iter_tar_samples

H, W = 64, 96


def read_rgb(path) -> np.ndarray:
    bgr = cv2.imread(str(path), cv2.IMREAD_COLOR)
    assert bgr is not None, f"{path} is not a readable image"
    return cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)


def panel(sheet, result, row: int, name: str) -> np.ndarray:
    """The image part (H, W, 3) of panel ``name`` in sheet row ``row``."""
    col = list(PANEL_TITLES).index(name)
    top = row * result.panel_height + result.label_height
    return sheet[top : top + H, col * result.panel_width : col * result.panel_width + W]


def decoded(tiny_output):
    """What the shard holds after JPEG: {key: decode_sample(...)} over all frames."""
    return {m["__key__"]: decode_sample(m) for m in iter_tar_samples(tiny_output.tar)}


def video_frames(path) -> tuple[tuple[int, int], int]:
    reader = imageio_ffmpeg.read_frames(str(path))
    meta = next(reader)
    return meta["size"], sum(1 for _ in reader)


def test_sheet_shape_and_rows(tiny_output, tmp_path):
    result = preview(
        tiny_output.out_dir, tmp_path / "sheet.png", samples=2, frames_per_sample=[0, 3]
    )
    keys = [s.key for s in tiny_output.samples]
    assert result.rows == ((keys[0], 0), (keys[0], 3), (keys[1], 0), (keys[1], 3))
    assert (result.panel_width, result.panel_height) == (W + PANEL_GAP, result.label_height + H)
    sheet = read_rgb(result.png)
    assert sheet.shape == (4 * (result.label_height + H), 5 * (W + PANEL_GAP), 3)
    assert result.panels == tuple(PANEL_TITLES)


def test_panels_show_x1_x2_mask_and_back_rendered_x1(tiny_output, tmp_path):
    result = preview(tiny_output.tar, tmp_path / "sheet.png", samples=2, frames_per_sample=[1])
    sheet = read_rgb(result.png)
    clips = decoded(tiny_output)
    for row, (key, t) in enumerate(result.rows):
        clip = clips[key]
        x1, x2, mask = clip["source"][t], clip["novel"][t], clip["mask"][t]
        assert mask.any() and not mask.all()
        assert np.array_equal(panel(sheet, result, row, "x1"), x1)
        assert np.array_equal(panel(sheet, result, row, "x2"), x2)

        overlay = panel(sheet, result, row, "M")
        changed = (overlay != x1).any(axis=-1)
        assert np.array_equal(changed, mask)  # tinted exactly where M is set
        y, x = np.argwhere(mask)[0]
        expected = np.round((1 - MASK_ALPHA) * x1[y, x].astype(np.float32) + MASK_ALPHA * MASK_TINT)
        assert np.array_equal(overlay[y, x], expected.astype(np.uint8))
        assert overlay[y, x, 1] < x1[y, x, 1] and overlay[y, x, 0] > x1[y, x, 0]  # magenta

        hidden = panel(sheet, result, row, "x1~")
        assert np.array_equal(hidden, clip["masked"][t])  # the stored x~1, not x1 * (1 - M)
        assert not np.array_equal(hidden[~mask], x1[~mask])


def test_shards_without_disparity_get_no_depth_panel(no_disparity_tar, tmp_path):
    result = preview(no_disparity_tar, tmp_path / "sheet.png")
    assert result.panels == ("x1", "x2", "M", "x1~")
    assert read_rgb(result.png).shape[1] == 4 * (W + PANEL_GAP)


def test_depth_panel_is_red_where_disparity_is_large(tiny_output, tmp_path):
    result = preview(tiny_output.tar, tmp_path / "sheet.png", samples=1)
    depth = panel(read_rgb(result.png), result, 0, "depth").astype(int)
    # The fixture's disparity ramps from 0 (left edge, far) to 8 px (right edge, near).
    assert depth[:, -1, 0].min() > depth[:, -1, 2].max()  # near: red
    assert depth[:, 0, 2].min() > depth[:, 0, 0].max()  # far: blue


def test_frames_per_sample_int_spreads_over_the_clip(tiny_output, tmp_path):
    result = preview(tiny_output.tar, tmp_path / "sheet.png", samples=1, frames_per_sample=3)
    assert [t for _, t in result.rows] == [0, 2, 3]  # linspace(0, 3, 3) rounded
    result = preview(tiny_output.tar, tmp_path / "sheet.png", samples=9, frames_per_sample=9)
    assert len(result.rows) == 2 * 4  # capped at the clip length and the samples present


def test_wide_frames_are_scaled_down(tiny_output, tmp_path):
    result = preview(tiny_output.tar, tmp_path / "s.png", samples=2, max_panel_width=48)
    assert (result.panel_width, result.panel_height) == (48 + PANEL_GAP, result.label_height + 32)
    assert read_rgb(result.png).shape == (2 * result.panel_height, 5 * (48 + PANEL_GAP), 3)


def test_side_by_side_video_has_labelled_panels(tiny_output, tmp_path):
    key = tiny_output.samples[1].key
    result = preview(tiny_output.out_dir, tmp_path / "s.png", keys=[key], video=tmp_path / "v.mp4")
    assert result.video == tmp_path / "v.mp4"
    height, width = 2 * (LABEL_HEIGHT + H), 2 * (W + PANEL_GAP)  # 2 x 2 labelled panels
    assert (result.video_frames, result.video_size) == (4, (height, width))
    assert video_frames(result.video) == ((width, height), 4)
    reader = imageio_ffmpeg.read_frames(str(result.video))
    next(reader)
    first = np.frombuffer(next(reader), np.uint8).reshape(height, width, 3)
    strip, image = first[:LABEL_HEIGHT, :W], first[LABEL_HEIGHT : LABEL_HEIGHT + H, :W]
    assert strip.max() > 200 and np.median(strip) < 64  # white text on the dark strip
    source = decoded(tiny_output)[key]["source"][0]  # the chosen sample, not the first one
    assert np.abs(image.astype(int) - source).mean() < 8


def test_video_of_odd_sized_frames_is_padded_to_even(odd_tar, tmp_path):
    result = preview(odd_tar, tmp_path / "s.png", video=tmp_path / "v.mp4", video_mask_row=False)
    height, width = LABEL_HEIGHT + 33, 2 * (47 + PANEL_GAP)
    assert result.video_size == (height + height % 2, width + width % 2)
    assert video_frames(result.video) == ((width + width % 2, height + height % 2), 3)


def test_samples_chosen_by_key_in_the_given_order(tiny_output, tmp_path):
    keys = [s.key for s in tiny_output.samples]
    result = preview(tiny_output.out_dir, tmp_path / "s.png", keys=[keys[1], keys[0]])
    assert result.rows == ((keys[1], 0), (keys[0], 0))
    with pytest.raises(ValueError, match="no sample with key nope"):
        preview(tiny_output.out_dir, tmp_path / "s.png", keys=[keys[0], "nope"])


def test_random_samples_depend_on_the_seed_only(tiny_output, tmp_path):
    keys = [s.key for s in tiny_output.samples]

    def drawn(seed: int) -> list[str]:
        result = preview(tiny_output.out_dir, tmp_path / "s.png", random=1, seed=seed)
        return [key for key, _ in result.rows]

    draws = [drawn(seed) for seed in range(8)]
    assert drawn(0) == draws[0]
    assert all(len(d) == 1 and d[0] in keys for d in draws)
    assert {d[0] for d in draws} == set(keys)  # not always the first sample
    with pytest.raises(ValueError, match="--keys or by --random"):
        preview(tiny_output.out_dir, tmp_path / "s.png", keys=keys[:1], random=1)


def test_missing_tar_is_a_clear_error(tmp_path):
    with pytest.raises(
        ValueError, match=re.escape("missing.tar: no such shard .tar or output folder")
    ):
        preview(tmp_path / "missing.tar", tmp_path / "s.png")


def test_folder_without_manifest_is_a_clear_error(tmp_path):
    with pytest.raises(ValueError, match=re.escape("manifest.json: no shard manifest")):
        preview(tmp_path, tmp_path / "s.png")


def test_out_of_range_frame_names_the_sample(tiny_output, tmp_path):
    with pytest.raises(ValueError, match=f"{tiny_output.samples[0].key}.*frame index 7"):
        preview(tiny_output.tar, tmp_path / "s.png", frames_per_sample=[7])
