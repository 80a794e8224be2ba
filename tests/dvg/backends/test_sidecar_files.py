"""Sidecar lookup and validation: per-container names, long names, malformed camera JSON and
arrays (pickled objects are never loaded), each error naming the file."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest

from dvg.backends import (
    DEPTH_BACKENDS,
    BackendSpec,
    DepthContext,
    MissingSidecarError,
    SidecarError,
    sidecar_name,
)
from dvg.video.transform import FrameTransform

H, W, N = 16, 24, 4
TRANSFORM = FrameTransform((W, H), (0, 0, W, H), (W, H), (W, H))


@pytest.fixture
def sidecar():
    return DEPTH_BACKENDS.create(BackendSpec("sidecar"))


def _depth(value: float = 2.0) -> np.ndarray:
    return np.full((N, H, W), value, np.float32)


def _predict(backend, video: Path):
    context = DepthContext(str(video), np.arange(2), TRANSFORM)
    return backend.predict(np.zeros((2, H, W, 3), np.uint8), context)


def test_same_stem_containers_get_their_own_sidecars(sidecar, tmp_path):
    mp4, mkv = tmp_path / "clip.mp4", tmp_path / "clip.mkv"
    mp4.write_bytes(b"x")
    mkv.write_bytes(b"x")
    np.save(tmp_path / "clip.depth.npy", _depth(2.0))
    # a stem sidecar shared by two videos is given to neither, and the message says what to do
    for video in (mp4, mkv):
        with pytest.raises(SidecarError, match=r"clip\.depth\.npy: shared by clip\.m.. and clip"):
            sidecar.check(video)
    with pytest.raises(SidecarError, match=r"name it clip\.mkv\.depth\.npy"):
        sidecar.locate(mkv)
    # per-container names come first
    np.save(tmp_path / "clip.mkv.depth.npy", _depth(4.0))
    np.save(tmp_path / "clip.mp4.invdepth.npy", _depth(8.0))
    assert sidecar.check(mkv) == (tmp_path / "clip.mkv.depth.npy", "z")
    assert sidecar.check(mp4) == (tmp_path / "clip.mp4.invdepth.npy", "inverse")
    assert _predict(sidecar, mkv).inverse_depth == pytest.approx(0.25)
    assert _predict(sidecar, mp4).inverse_depth == pytest.approx(8.0)
    # alone in its folder, a video uses the stem sidecar as before
    mp4.unlink()
    (tmp_path / "clip.mp4.invdepth.npy").unlink()
    (tmp_path / "other.webm").write_bytes(b"x")
    np.save(tmp_path / "other.depth.npy", _depth(2.0))
    assert sidecar.check(tmp_path / "other.webm") == (tmp_path / "other.depth.npy", "z")


def test_long_video_name_has_a_hashed_sidecar_name(sidecar, tmp_path):
    stem = "é" * 100 + "x" * 51  # 251 bytes: the 255-byte file-name limit with ".mp4"
    video = tmp_path / f"{stem}.mp4"
    video.write_bytes(b"x")
    assert len(os.fsencode(video.name)) == 255
    with pytest.raises(MissingSidecarError) as missing:  # no OSError "File name too long"
        sidecar.check(video)
    name = sidecar_name(stem, ".depth.npy")
    assert name in str(missing.value) and len(os.fsencode(name)) <= 255
    assert name.endswith(".depth.npy") and "~" in name
    assert sidecar_name("short", ".depth.npy") == "short.depth.npy"
    np.save(tmp_path / name, _depth(2.0))
    assert sidecar.check(video) == (tmp_path / name, "z")
    assert _predict(sidecar, video).inverse_depth == pytest.approx(0.5)


@pytest.mark.parametrize(
    ("content", "words"),
    [
        (b'{"width": 24, "height": 16, "K": [[1, 0', "not a readable JSON camera file"),
        (b"\xff\xfe not text", "not a readable JSON camera file"),
        (b"[1, 2, 3]", "must be a JSON object"),
        (json.dumps({"width": 24, "K": np.eye(3).tolist()}).encode(), "lacks the key 'height'"),
        (json.dumps({"width": 24, "height": 16, "K": [[1, 2], [3, 4]]}).encode(), "3 x 3"),
        (json.dumps({"width": "a", "height": 16, "K": np.eye(3).tolist()}).encode(), "numbers"),
    ],
)
def test_malformed_camera_json_names_the_file(sidecar, tmp_path, content, words):
    video = tmp_path / "clip.mp4"
    video.write_bytes(b"x")
    np.save(tmp_path / "clip.depth.npy", _depth())
    (tmp_path / "clip.camera.json").write_bytes(content)
    for call in (sidecar.check, lambda v: _predict(sidecar, v)):
        with pytest.raises(SidecarError) as caught:
            call(video)
        assert caught.value.reason == "bad_sidecar"
        assert str(caught.value).startswith(str(tmp_path / "clip.camera.json"))
        assert words in str(caught.value)


def test_pickled_sidecar_arrays_are_refused_without_running_them(sidecar, tmp_path, pickle_payload):
    payload, marker = pickle_payload
    video = tmp_path / "clip.mp4"
    video.write_bytes(b"x")
    planted = np.empty((N, H, W), dtype=object)
    planted[0, 0, 0] = payload
    np.save(tmp_path / "clip.depth.npy", planted, allow_pickle=True)
    with pytest.raises(SidecarError, match=r"clip\.depth\.npy.*pickled Python objects"):
        sidecar.check(video)
    with pytest.raises(SidecarError, match=r"clip\.depth\.npy: cannot be read"):
        _predict(sidecar, video)
    (tmp_path / "clip.depth.npy").unlink()
    np.savez(tmp_path / "clip.depth.npz", depth=planted)
    with pytest.raises(SidecarError, match=r"clip\.depth\.npz.*pickled Python objects"):
        sidecar.check(video)
    with pytest.raises(SidecarError, match=r"clip\.depth\.npz: cannot be read"):
        _predict(sidecar, video)
    (tmp_path / "clip.depth.npz").unlink()
    (tmp_path / "clip.depth.npy").write_bytes(b"not an npy file at all")
    with pytest.raises(SidecarError, match=r"clip\.depth\.npy: cannot be read"):
        sidecar.check(video)
    np.save(tmp_path / "clip.depth.npy", np.zeros((N, H), np.float32))
    with pytest.raises(SidecarError, match=r"\(N, H, W\) array of numbers"):
        sidecar.check(video)
    assert not marker.exists()
