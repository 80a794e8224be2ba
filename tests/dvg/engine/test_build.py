"""`dvg build` end to end on synthetic videos: offline and paper presets, both executors."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pyarrow.parquet as pq
import pytest
import webdataset as wds
from synthetic_inputs import offline_config, write_scene

from dvg.backends.random_weights import save_random_dpt, save_random_raft, save_random_sd_inpaint
from dvg.engine import apply_overrides, build, preset_config
from dvg.shards import FORMAT_VERSION, iter_clips, read_manifest


def iou(a: np.ndarray, b: np.ndarray) -> float:
    return float((a & b).sum() / (a | b).sum())


@pytest.fixture(scope="module")
def offline_out(raw_videos, tmp_path_factory):
    out = tmp_path_factory.mktemp("offline") / "shards"
    summary = build([raw_videos], out, offline_config(), show_progress=False)
    return out, summary


def test_offline_build_writes_every_clip_and_reads_back(offline_out):
    out, summary = offline_out
    # 8 + 8 + 12 frames in clips of 4.
    assert (summary.samples, summary.videos_ok, summary.videos_failed) == (7, 3, 0)
    assert summary.groups_written == 3
    clips = list(iter_clips(out))
    assert len(clips) == 7
    assert len({c["key"] for c in clips}) == 7
    for clip in clips:
        assert clip["source"].shape == (4, 64, 96, 3) and clip["source"].dtype == np.uint8
        assert clip["novel"].shape == (4, 64, 96, 3) and clip["masked"].shape == (4, 64, 96, 3)
        assert clip["mask"].shape == (4, 64, 96) and clip["mask"].dtype == bool
        assert "disparity" not in clip  # off by default: the trainer never reads it
        meta = clip["meta"]
        assert meta["format_version"] == FORMAT_VERSION == 2
        assert meta["stereo"]["virtual_eye"] == "left"
        assert meta["models"]["depth"]["backend"] == "sidecar"
        assert meta["source"]["sha256"] and meta["config_hash"]
        # The refined mask only ever adds pixels to the rendered one (Eq. 2 is a union).
        assert not (clip["mask_raw"] & ~clip["mask"]).any()
        # x2 differs from x1 (a real stereo shift), and the mask is not empty.
        assert clip["mask"].any()
        assert np.abs(clip["source"].astype(int) - clip["novel"]).mean() > 1
        # x~1 is blanked in M (up to JPEG ringing; the trainer re-applies M after decoding)
        assert clip["masked"][clip["mask"]].mean() < 8


def test_shards_read_with_plain_webdataset(offline_out):
    out, _ = offline_out
    entries, extra = read_manifest(out)
    assert sum(e.nsamples for e in entries) == 7
    assert extra["format_version"] == FORMAT_VERSION
    urls = [str(out / e.url) for e in entries]
    samples = list(wds.WebDataset(urls, shardshuffle=False).decode("rgb8"))
    assert len(samples) == 7
    first = samples[0]
    assert "." not in first["__key__"]
    assert first["source.000.jpg"].shape == (64, 96, 3)
    assert first["json"]["key"] == first["__key__"]  # decoded by webdataset


def test_ledger_has_a_row_per_video_and_clip(offline_out):
    out, _ = offline_out
    table = pq.read_table(out / "000002.parquet").to_pylist()
    videos = [r for r in table if r["row_type"] == "video"]
    clips = [r for r in table if r["row_type"] == "clip"]
    assert len(videos) == 1 and videos[0]["status"] == "ok" and videos[0]["clips"] == 3
    assert len(clips) == 3 and all(r["status"] == "ok" for r in clips)
    assert all(0 < r["mask_coverage"] < 1 for r in clips)
    stats = json.loads((out / "000002_stats.json").read_text())
    assert stats["samples"] == 3 and stats["tar"]["nsamples"] == 3
    assert set(stats["seconds"]) >= {"decode", "write", "depth", "geometry", "inpaint", "flow"}


def test_rerun_skips_committed_groups(offline_out, raw_videos):
    out, _ = offline_out
    before = {p.name: p.stat().st_mtime_ns for p in out.glob("*.tar")}
    summary = build([raw_videos], out, offline_config(), show_progress=False)
    assert (summary.groups_written, summary.groups_skipped, summary.samples) == (0, 3, 7)
    assert {p.name: p.stat().st_mtime_ns for p in out.glob("*.tar")} == before


def test_a_different_configuration_is_refused_before_any_work(offline_out, raw_videos):
    out, _ = offline_out
    with pytest.raises(ValueError, match=r"different configuration.*--overwrite"):
        build([raw_videos], out, offline_config(stereo={"seed": 7}), show_progress=False)


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    error = np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2)
    return float(10 * np.log10(255.0**2 / error))


def test_dvg_output_matches_the_renderers_exact_stereo_pair(tmp_path):
    """The renderer's RIGHT view with its exact depth as the input video: DVG's novel view is
    the eye to its left, i.e. the renderer's exact left view; M is the exact occlusion of the
    right view; x~1 (x2 rendered back) is the input view outside M and 0 inside it."""
    raw = tmp_path / "raw"
    render = write_scene(
        raw, "slanted", "slanted_fractional", height=192, width=256, frames=4, eye="right"
    )
    baseline = float(render.baseline)
    config = offline_config(
        stereo={"mode": "metric", "baseline": (baseline, baseline)},
        video={"crop_letterbox": False},
        output={"image_format": "png", "keep_disparity": True},
    )
    out = tmp_path / "shards"
    build([raw], out, config, show_progress=False)
    (clip,) = list(iter_clips(out))
    exact = render.occlusion_right[:, 0].numpy()
    raw_iou = iou(clip["mask_raw"], exact)
    print(f"exact-mask IoU: rendered {raw_iou:.3f}, refined {iou(clip['mask'], exact):.3f}")
    assert raw_iou >= 0.9
    assert clip["meta"]["stereo"]["baseline"] == pytest.approx(baseline)
    to_u8 = lambda x: (x.clamp(0, 1) * 255).round().byte().permute(0, 2, 3, 1).numpy()  # noqa: E731
    left, right = to_u8(render.left), to_u8(render.right)
    visible = ~render.occlusion_left[:, 0].numpy()  # left pixels the right eye sees: no holes
    assert psnr(clip["novel"][visible], left[visible]) > 30  # x2 is the exact left view
    assert psnr(clip["novel"][visible], right[visible]) < 25  # ... not the input view
    outside = ~clip["mask"]
    assert psnr(clip["masked"][outside], right[outside]) > 30  # x~1 = back-rendered x2
    assert not clip["masked"][clip["mask"]].any()
    np.testing.assert_allclose(
        clip["disparity"], render.right_disparity[:, 0].numpy(), rtol=1e-3, atol=2e-3
    )


@pytest.fixture(scope="module")
def tiny_weights(tmp_path_factory):
    folder = tmp_path_factory.mktemp("weights")
    return {
        "depth": str(save_random_dpt(folder / "dpt")),
        "inpaint": str(save_random_sd_inpaint(folder / "sd-inpaint")),
        "flow": str(save_random_raft(folder / "raft-things.pth", variant="large")),
    }


def paper_config(weights, **executor):
    return apply_overrides(
        preset_config("paper"),
        {
            "depth": {"model": weights["depth"]},
            "inpaint": {"model": weights["inpaint"], "options": {"steps": 2}},
            "flow": {"model": weights["flow"], "options": {"iters": 2}},
            "video": {"clip_length": 4},
            "output": {"videos_per_group": 1},
            "executor": executor,
        },
    )


def test_paper_preset_with_real_loaders_on_both_executors(tmp_path, tiny_weights):
    raw = tmp_path / "raw"
    write_scene(raw, "one", "moving_objects", frames=8)
    local = build([raw], tmp_path / "local", paper_config(tiny_weights), show_progress=False)
    assert local.samples == 2 and local.videos_failed == 0
    on_ray = build(
        [raw],
        tmp_path / "ray",
        paper_config(tiny_weights, kind="ray", decode_workers=1),
        show_progress=False,
    )
    assert on_ray.samples == 2
    a = {c["key"]: c for c in iter_clips(tmp_path / "local")}
    b = {c["key"]: c for c in iter_clips(tmp_path / "ray")}
    assert a.keys() == b.keys()
    for key, clip in a.items():
        assert clip["meta"]["models"]["inpaint"]["backend"] == "sd"
        assert clip["meta"]["models"]["flow"]["model"].endswith("raft-things.pth")
        np.testing.assert_array_equal(clip["mask"], b[key]["mask"])
        np.testing.assert_array_equal(clip["source"], b[key]["source"])


def test_offline_preset_on_ray_matches_local(offline_out, raw_videos, tmp_path):
    out, _ = offline_out
    config = offline_config(executor={"kind": "ray", "decode_workers": 2})
    summary = build([raw_videos], tmp_path / "ray", config, show_progress=False)
    assert (summary.samples, summary.videos_failed) == (7, 0)
    local = {c["key"]: c for c in iter_clips(out)}
    on_ray = {c["key"]: c for c in iter_clips(tmp_path / "ray")}
    assert local.keys() == on_ray.keys()
    for key, clip in local.items():
        np.testing.assert_array_equal(clip["mask"], on_ray[key]["mask"])
        np.testing.assert_array_equal(clip["novel"], on_ray[key]["novel"])
        np.testing.assert_array_equal(clip["masked"], on_ray[key]["masked"])
    # Same inputs, same configuration: the shards are byte-identical whatever the executor.
    assert read_manifest(out)[0] == read_manifest(tmp_path / "ray")[0]


def test_retry_failed_redoes_groups_with_failures_and_overwrite_rebuilds(tmp_path):
    raw = tmp_path / "raw"
    write_scene(raw, "fine", "fronto_integer")
    write_scene(raw, "later", "moving_objects")
    depth = raw / "later.depth.npy"
    kept = depth.read_bytes()
    depth.unlink()  # its sidecar is missing for now
    out = tmp_path / "shards"
    config = offline_config(output={"videos_per_group": 2})
    first = build([raw], out, config, show_progress=False)
    assert (first.samples, first.videos_failed) == (2, 1)
    assert first.failures_by_reason == {"missing_sidecar": 1}

    depth.write_bytes(kept)
    plain = build([raw], out, config, show_progress=False)
    assert plain.groups_written == 0 and plain.samples == 2  # committed groups are not redone
    retried = build([raw], out, config, show_progress=False, retry_failed=True)
    assert (retried.groups_written, retried.samples, retried.videos_failed) == (1, 4, 0)

    other = offline_config(output={"videos_per_group": 2}, stereo={"seed": 3})
    rebuilt = build([raw], out, other, show_progress=False, overwrite=True)
    assert rebuilt.samples == 4
    seeds = {c["meta"]["config_hash"] for c in iter_clips(out)}
    assert seeds == {other.data_hash()}


def test_the_same_videos_under_another_path_resume_the_build(raw_videos, tmp_path):
    """Names (paths relative to the input root), not absolute paths, identify inputs: a copied
    or re-mounted root resumes every committed group instead of being refused."""
    first_root, moved_root, linked_root = tmp_path / "node_a", tmp_path / "moved", tmp_path / "ln"
    shutil.copytree(raw_videos, first_root)
    out = tmp_path / "shards"
    first = build([first_root], out, offline_config(), show_progress=False)
    assert first.groups_written == 3
    keys = sorted(c["key"] for c in iter_clips(out))
    first_root.rename(moved_root)
    linked_root.symlink_to(moved_root)
    for root in (moved_root, linked_root):
        again = build([root], out, offline_config(), show_progress=False)
        assert (again.groups_written, again.groups_skipped, again.samples) == (0, 3, 7)
    assert sorted(c["key"] for c in iter_clips(out)) == keys
    meta = next(iter(iter_clips(out, fields=())))["meta"]
    assert not meta["source"]["path"].startswith("/")  # relative to the input root
    ledger = pq.read_table(out / "000000.parquet").to_pylist()
    assert ledger[0]["video"] == "a_fronto.mp4"
    assert ledger[0]["path"] == (first_root / "a_fronto.mp4").as_posix()
