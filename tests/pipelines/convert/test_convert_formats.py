"""Output layouts, the Dubois anaglyph and player-friendly file names."""

from pathlib import Path

import numpy as np
import pytest

from pipelines.convert import (
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


def constant(h: int, w: int, rgb: tuple[int, int, int]) -> np.ndarray:
    return np.broadcast_to(np.array(rgb, np.uint8), (h, w, 3)).copy()


def test_anaglyph_applies_the_dubois_matrices_to_constant_views():
    left, right = (200, 100, 50), (30, 160, 220)
    out = anaglyph(constant(4, 6, left), constant(4, 6, right))
    # Hand computation with the published Dubois red-cyan least-squares matrices.
    red = 0.456 * 200 + 0.500 * 100 + 0.176 * 50 - 0.043 * 30 - 0.088 * 160 - 0.002 * 220
    green = -0.040 * 200 - 0.038 * 100 - 0.016 * 50 + 0.378 * 30 + 0.734 * 160 - 0.018 * 220
    blue = -0.015 * 200 - 0.021 * 100 - 0.005 * 50 - 0.072 * 30 - 0.113 * 160 + 1.226 * 220
    expected = np.clip(np.rint([red, green, blue]), 0, 255)
    assert (out == expected.astype(np.uint8)).all()
    # The left eye feeds mostly red, the right eye green and blue.
    assert DUBOIS_LEFT[0].sum() > 1 and DUBOIS_RIGHT[0].sum() < 0
    assert DUBOIS_RIGHT[1:].sum() > 1


def test_anaglyph_clips_to_the_uint8_range():
    out = anaglyph(constant(2, 2, (0, 0, 0)), constant(2, 2, (0, 0, 255)))
    assert out[0, 0, 0] == 0  # -0.002 * 255 would be negative
    assert out[0, 0, 2] == 255  # 1.226 * 255 would overflow


@pytest.mark.parametrize("layout", LAYOUTS)
def test_compose_gives_the_layouts_frame_size(layout):
    h, w = 6, 10
    frame = compose(layout, constant(h, w, (255, 0, 0)), constant(h, w, (0, 0, 255)))
    assert (frame.shape[1], frame.shape[0]) == frame_size(layout, w, h)
    assert frame.dtype == np.uint8


def test_full_and_half_side_by_side_put_the_left_eye_left():
    h, w = 6, 10
    left, right = constant(h, w, (255, 0, 0)), constant(h, w, (0, 0, 255))
    full = compose("full-sbs", left, right)
    assert full.shape == (h, 2 * w, 3)
    assert (full[:, :w] == left).all() and (full[:, w:] == right).all()
    half = compose("half-sbs", left, right)
    assert half.shape == (h, w, 3)
    assert (half[:, : w // 2] == (255, 0, 0)).all() and (half[:, w // 2 :] == (0, 0, 255)).all()
    tb = compose("half-tb", left, right)
    assert tb.shape == (h, w, 3)
    assert (tb[: h // 2] == (255, 0, 0)).all() and (tb[h // 2 :] == (0, 0, 255)).all()


def test_half_sbs_squeezes_each_view_by_area_averaging():
    # A 1-px column pattern 0, 255, 0, 255 ... averages to 127/128 when halved.
    h, w = 4, 8
    left = np.zeros((h, w, 3), np.uint8)
    left[:, 1::2] = 255
    frame = compose("half-sbs", left, left)
    assert frame.shape == (h, w, 3)
    assert np.abs(frame.astype(int) - 127.5).max() <= 1


def test_right_layout_is_the_right_view_alone():
    left, right = constant(4, 4, (1, 2, 3)), constant(4, 4, (9, 8, 7))
    assert (compose("right", left, right) == right).all()


def test_odd_half_layouts_keep_whole_views():
    assert frame_size("half-sbs", 11, 7) == (10, 7)
    assert frame_size("half-tb", 11, 7) == (11, 6)
    assert frame_size("full-tb", 11, 7) == (11, 14)


def test_output_names_carry_the_player_suffixes(tmp_path):
    assert output_name("/videos/trip.mov", "full-sbs") == "trip_LRF_Full_SBS.mp4"
    assert output_name("trip.mp4", "half-sbs") == "trip_LRF_Half_SBS.mp4"
    assert output_name("trip.mp4", "full-tb") == "trip_LRF_Full_TB.mp4"
    assert output_name("trip.mp4", "half-tb") == "trip_LRF_Half_TB.mp4"
    assert output_name("trip.mp4", "anaglyph") == "trip_Anaglyph.mp4"
    assert output_name("trip.mp4", "right") == "trip_R.mp4"
    assert set(LAYOUT_SUFFIXES) == set(LAYOUTS)
    # A folder (existing, or a name without extension) gets the generated name ...
    assert resolve_output("a/trip.mp4", tmp_path, "full-sbs") == tmp_path / "trip_LRF_Full_SBS.mp4"
    assert resolve_output("trip.mp4", tmp_path / "new", "right") == tmp_path / "new" / "trip_R.mp4"
    # ... a file name is used as given.
    assert resolve_output("trip.mp4", "x/out.mkv", "full-sbs") == Path("x/out.mkv")


def test_unknown_layout_is_refused_with_the_choices():
    with pytest.raises(ValueError, match=r"unknown layout 'sbs'.*full-sbs"):
        compose("sbs", constant(2, 2, (0, 0, 0)), constant(2, 2, (0, 0, 0)))
    with pytest.raises(ValueError, match="one size"):
        compose("full-sbs", constant(2, 2, (0, 0, 0)), constant(2, 4, (0, 0, 0)))
