"""`spatialdreamer convert` with a tiny exported model: the same path a `trainer export`
directory takes, end to end from a synthetic mp4 with audio to a half-SBS mp4."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import imageio_ffmpeg
import torch

from dvg.synthetic import render_scene, write_clip
from pipelines.convert import ConvertConfig, convert
from pipelines.convert.io import has_audio
from pipelines.model import ModelConfig, SpatialDreamerModel, save_tiny_sd, save_tiny_svd


def test_convert_with_a_tiny_exported_model_through_the_cli(tmp_path):
    torch.manual_seed(0)
    model = SpatialDreamerModel.from_components(
        ModelConfig(svd=str(save_tiny_svd(tmp_path / "svd")),
                    refiner=str(save_tiny_sd(tmp_path / "sd")), til=True, til_frames=4)
    )  # fmt: skip
    model.save_pretrained(tmp_path / "model")

    render = render_scene("moving_objects", seed=0, height=64, width=96, num_frames=10)
    paths = write_clip(render, tmp_path / "raw", "clip")
    with_audio = tmp_path / "raw" / "clip_audio.mp4"
    subprocess.run(
        [imageio_ffmpeg.get_ffmpeg_exe(), "-y", "-loglevel", "error", "-i", str(paths["video"]),
         "-f", "lavfi", "-i", "sine=frequency=440:duration=2", "-c:v", "copy", "-c:a", "aac",
         "-shortest", str(with_audio)],
        check=True,
    )  # fmt: skip
    (tmp_path / "raw" / "clip_audio.depth.npy").write_bytes(paths["depth"].read_bytes())

    out = tmp_path / "out"
    result = subprocess.run(
        [str(Path(sys.executable).parent / "spatialdreamer"), "convert", str(with_audio),
         "--out", str(out), "--method", "spatialdreamer", "--model", str(tmp_path / "model"),
         "--layout", "half-sbs", "--steps", "2", "--window", "4", "--overlap", "1",
         "--tile-size", "32", "--depth", str(tmp_path / "raw")],
        capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    (written,) = list(out.glob("*_LRF_Half_SBS.mp4"))
    frames = list(imageio_ffmpeg.read_frames(str(written)))
    meta, images = frames[0], frames[1:]
    assert meta["size"] == (96, 64) and len(images) == 10
    assert has_audio(written)


def test_library_convert_with_the_model_matches_the_frame_count(tmp_path):
    torch.manual_seed(0)
    model = SpatialDreamerModel.from_components(
        ModelConfig(svd=str(save_tiny_svd(tmp_path / "svd")),
                    refiner=str(save_tiny_sd(tmp_path / "sd")))
    )  # fmt: skip
    model.save_pretrained(tmp_path / "model")
    render = render_scene("fronto_integer", seed=0, height=64, width=64, num_frames=6)
    paths = write_clip(render, tmp_path / "raw", "clip")
    config = ConvertConfig(
        method="spatialdreamer", model=str(tmp_path / "model"), layout="right", steps=1,
        window=4, overlap=1, depth=str(tmp_path / "raw"),
    )  # fmt: skip
    result = convert(paths["video"], tmp_path / "right.mp4", config)
    assert result.frames == 6
