"""`convert` end to end on rendered videos: every layout decodes at the right size and frame
count, the audio survives, a tiny random DPT loads through the real loader, errors name the
problem, and frames stream (memory does not grow with the video)."""

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import imageio_ffmpeg
import numpy as np
import pytest
from typer.testing import CliRunner

from dvg.backends import MissingSidecarError
from dvg.synthetic import render_scene, write_clip
from dvg.video import VideoError
from pipelines.cli import app
from pipelines.convert import (
    LAYOUTS,
    ConvertConfig,
    MissingModelError,
    convert,
    frame_size,
    stream_summary,
)
from pipelines.convert.io import iter_frames, probe

H, W, FRAMES = 64, 96, 12


def add_sine(video: Path, codec: str = "aac", out: Path | None = None) -> Path:
    """``video`` with a 440 Hz ``codec`` track added (video stream copied), written to ``out``
    (default: replacing ``video``)."""
    tmp = video.with_name("with_audio" + (out or video).suffix)
    cmd = [imageio_ffmpeg.get_ffmpeg_exe(), "-hide_banner", "-loglevel", "error", "-y"]
    cmd += ["-i", str(video), "-f", "lavfi", "-i", "sine=frequency=440:duration=1"]
    cmd += ["-c:v", "copy", "-c:a", codec, "-shortest", str(tmp)]
    subprocess.run(cmd, check=True)
    os.replace(tmp, out or video)
    return out or video


@pytest.fixture(scope="module")
def videos(tmp_path_factory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("convert_inputs")
    render = render_scene("example", seed=0, height=H, width=W, num_frames=FRAMES)
    write_clip(render, root / "audio", "clip")
    add_sine(root / "audio" / "clip.mp4")
    write_clip(render, root / "silent", "clip")
    (root / "pcm").mkdir()
    pcm = add_sine(root / "silent" / "clip.mp4", "pcm_s16le", root / "pcm" / "clip.mkv")
    os.link(root / "silent" / "clip.depth.npy", root / "pcm" / "clip.depth.npy")
    return {
        "audio": root / "audio" / "clip.mp4",
        "silent": root / "silent" / "clip.mp4",
        "pcm": pcm,
    }


def decoded(path: Path) -> np.ndarray:
    return np.stack(list(iter_frames(probe(path))))


def sidecar(video: Path, **kwargs) -> ConvertConfig:
    return ConvertConfig(depth=str(video.parent), **kwargs)


@pytest.mark.parametrize("layout", LAYOUTS)
def test_every_layout_decodes_at_its_size_and_keeps_the_audio(videos, tmp_path, layout):
    result = convert(videos["audio"], tmp_path, sidecar(videos["audio"], layout=layout))
    assert result.path.parent == tmp_path and result.path.name.startswith("clip_")
    frames = decoded(result.path)
    w, h = frame_size(layout, W, H)
    assert frames.shape == (FRAMES, h, w, 3)
    assert result.frames == FRAMES and result.audio == "copy"
    streams = stream_summary(result.path)
    assert any(s.startswith("Video: h264") and "yuv420p" in s for s in streams)
    assert any(s.startswith("Audio: aac") for s in streams)
    assert not list(tmp_path.glob("*.partial*"))


def test_audio_players_cannot_decode_in_mp4_is_reencoded_to_aac(videos, tmp_path):
    pcm = videos["pcm"]
    as_mp4 = convert(pcm, tmp_path, sidecar(pcm, layout="right"))
    assert as_mp4.path.name == "clip_R.mp4" and as_mp4.audio == "aac"
    assert any(s.startswith("Audio: aac") for s in stream_summary(as_mp4.path))
    as_mkv = convert(pcm, tmp_path / "o.mkv", sidecar(pcm, layout="right"))
    assert as_mkv.audio == "copy"
    assert any(s.startswith("Audio: pcm_s16le") for s in stream_summary(as_mkv.path))


def test_full_sbs_holds_the_source_left_and_a_shifted_right(videos, tmp_path):
    result = convert(videos["silent"], tmp_path / "o.mp4", sidecar(videos["silent"], crf=0))
    assert result.path == tmp_path / "o.mp4" and result.audio == "none"
    assert not any(s.startswith("Audio") for s in stream_summary(result.path))
    out, src = decoded(result.path).astype(int), decoded(videos["silent"]).astype(int)
    left, right = out[:, :, :W], out[:, :, W:]
    assert np.abs(left - src).mean() < 2  # the left eye is the input (lossless-ish re-encode)
    assert np.abs(right - src).mean() > 5  # the right eye is a different view


def test_a_tiny_random_dpt_loads_through_the_real_loader(videos, tmp_path):
    from dvg.backends.random_weights import save_random_dpt

    dpt = save_random_dpt(tmp_path / "dpt")
    config = ConvertConfig(depth_model=str(dpt), layout="half-tb", strength=0.05)
    result = convert(videos["silent"], tmp_path / "out", config)
    assert decoded(result.path).shape == (FRAMES, H, W, 3)


def test_unreadable_and_missing_inputs_name_the_file(tmp_path):
    bad = tmp_path / "notes.mp4"
    bad.write_text("not a video")
    with pytest.raises(VideoError, match=r"notes\.mp4.*ffmpeg cannot use it"):
        convert(bad, tmp_path, ConvertConfig(depth=str(tmp_path)))
    with pytest.raises(VideoError, match=r"gone\.mp4: no such file"):
        convert(tmp_path / "gone.mp4", tmp_path, ConvertConfig())


def test_missing_model_folder_says_how_to_get_one(videos, tmp_path):
    config = ConvertConfig(method="spatialdreamer", model=str(tmp_path / "nomodel"))
    with pytest.raises(MissingModelError) as error:
        convert(videos["silent"], tmp_path, config)
    message = str(error.value)
    assert "nomodel" in message and "trainer export" in message
    assert "--method warp-inpaint" in message and "no trained model" in message
    (tmp_path / "empty").mkdir()
    with pytest.raises(MissingModelError, match="not an exported SpatialDreamer model"):
        convert(
            videos["silent"],
            tmp_path,
            ConvertConfig(method="spatialdreamer", model=str(tmp_path / "empty")),
        )
    with pytest.raises(MissingModelError, match="needs a model folder"):
        convert(videos["silent"], tmp_path, ConvertConfig(method="spatialdreamer"))


def test_missing_depth_sidecar_lists_the_expected_files(videos, tmp_path):
    with pytest.raises(MissingSidecarError, match=r"clip\.depth\.npy"):
        convert(videos["silent"], tmp_path / "o.mp4", ConvertConfig(depth=str(tmp_path)))
    assert not (tmp_path / "o.mp4").exists() and not list(tmp_path.glob("*.partial*"))


def test_convert_pulls_frames_lazily(videos, tmp_path, monkeypatch):
    """The decoder runs a bounded number of windows ahead of the encoder (stages overlap, with a
    window of frames at most in each queue and stage), never the whole video."""
    import pipelines.convert.converter as module

    decoded_count, lead = [0], []
    real_iter, real_compose = module.iter_frames, module.compose

    def counting(info, *args, **kwargs):
        for frame in real_iter(info, *args, **kwargs):
            decoded_count[0] += 1
            yield frame

    written = [0]

    def compose(layout, left, right):
        written[0] += 1
        lead.append(decoded_count[0] - written[0])
        return real_compose(layout, left, right)

    monkeypatch.setattr(module, "iter_frames", counting)
    monkeypatch.setattr(module, "compose", compose)
    convert(videos["silent"], tmp_path, sidecar(videos["silent"], window=1))
    # decode queue, window being cut, depth queue, depth in progress, render, encode queue
    assert written[0] == FRAMES and max(lead) <= 6 < FRAMES


def test_cli_converts_and_reports(videos, tmp_path):
    runner = CliRunner()
    args = ["convert", str(videos["audio"]), "--out", str(tmp_path), "--layout", "anaglyph"]
    args += ["--depth", str(videos["audio"].parent), "--no-progress"]
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    assert "clip_Anaglyph.mp4" in result.output and "audio: copy" in result.output
    bad = runner.invoke(app, ["convert", str(tmp_path / "x.mp4"), "--out", str(tmp_path)])
    assert bad.exit_code == 2 and "x.mp4: no such file" in bad.output
    bad = runner.invoke(
        app, ["convert", str(videos["audio"]), "--out", str(tmp_path), "--layout", "sbs"]
    )
    assert bad.exit_code == 2 and "unknown layout" in bad.output


PEAK_RSS = textwrap.dedent(
    """
    import sys
    from pipelines.convert import ConvertConfig, convert
    video, out = sys.argv[1], sys.argv[2]
    # Small windows: the pipeline holds a few windows of frames, full well within 24 frames.
    convert(video, out, ConvertConfig(depth=sys.argv[3], window=2, encoder_preset="ultrafast"))
    # VmHWM, not ru_maxrss: Linux carries the forking parent's RSS over exec into ru_maxrss.
    print(open("/proc/self/status").read().split("VmHWM:")[1].split()[0])
    """
)


def make_long_video(folder: Path, frames: int, w: int, h: int) -> Path:
    """A test-pattern video with an inverse-depth sidecar (fast to make at any length)."""
    folder.mkdir(parents=True)
    video = folder / "long.mp4"
    cmd = [imageio_ffmpeg.get_ffmpeg_exe(), "-hide_banner", "-loglevel", "error", "-y"]
    cmd += ["-f", "lavfi", "-i", f"testsrc2=size={w}x{h}:rate=25", "-frames:v", str(frames)]
    cmd += ["-c:v", "libx264", "-preset", "ultrafast", "-pix_fmt", "yuv420p", str(video)]
    subprocess.run(cmd, check=True)
    ramp = np.linspace(0.5, 2.0, w, dtype=np.float32)
    depth = np.lib.format.open_memmap(
        folder / "long.invdepth.npy", mode="w+", dtype=np.float32, shape=(frames, h, w)
    )
    depth[:] = ramp
    depth.flush()
    return video


def test_peak_memory_does_not_grow_with_video_length(tmp_path):
    w, h = 320, 240
    # glibc keeps freed heap blocks and its peak RSS drifts by tens of MB with the run length;
    # with large blocks mmapped (returned at free) the peak follows the live memory.
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MALLOC_MMAP_THRESHOLD_": "65536"}
    peaks = {}
    for frames in (24, 120):
        video = make_long_video(tmp_path / str(frames), frames, w, h)
        run = subprocess.run(
            [sys.executable, "-c", PEAK_RSS, str(video), str(tmp_path / "out"), str(video.parent)],
            capture_output=True,
            text=True,
            env=env,
            check=True,
        )
        peaks[frames] = int(run.stdout.split()[-1]) * 1024  # kB
    growth = peaks[120] - peaks[24]
    decoded_growth = (120 - 24) * w * h * 3
    assert growth < 0.25 * decoded_growth, (peaks, decoded_growth)
