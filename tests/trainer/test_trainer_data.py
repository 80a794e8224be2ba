"""trainer.data / trainer.transforms on real `dvg build` shards (see conftest.dvg_shards)."""

from __future__ import annotations

import dataclasses
import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from dvg.shards import (
    ShardFormatError,
    decode_sample,
    iter_tar_samples,
    read_manifest,
    shard_entry,
    write_manifest,
    write_samples,
)
from dvg.shards.tario import iter_tar_members
from trainer.data import (
    DataConfig,
    DataCounters,
    ShardVersionError,
    make_dataset,
    make_loader,
    resolve_rank,
    split_for_rank,
)
from trainer.transforms import crop_geometry, resize_center_crop

REPO = Path(__file__).resolve().parents[2]


# ---------------------------------------------------------------- helpers


def _config(shards: Path, **overrides) -> DataConfig:
    """One deterministic pass in the training process unless overridden."""
    base = dict(
        resolution=48, batch_size=2, num_workers=0, shuffle_buffer=0, seed=0, resampled=False
    )
    return DataConfig(shards=str(shards), **{**base, **overrides})


def _batches(config: DataConfig, **kwargs) -> list[dict]:
    return list(make_loader(config, **kwargs))


def _per_sample(batches: list[dict]) -> list[dict]:
    """Unbatch: one dict per sample, in stream order."""
    out = []
    for batch in batches:
        for i, key in enumerate(batch["key"]):
            out.append({k: key if k == "key" else v[i] for k, v in batch.items()})
    return out


def _keys(batches: list[dict]) -> list[str]:
    return [key for batch in batches for key in batch["key"]]


def _raw_samples(shards: Path) -> list[dict]:
    """Undecoded samples of every shard of the manifest, in manifest order."""
    entries, _ = read_manifest(shards)
    return [s for e in entries for s in iter_tar_samples(shards / e.url)]


def _shard_keys(shards: Path) -> dict[str, list[str]]:
    entries, _ = read_manifest(shards)
    return {e.url: [s["__key__"] for s in iter_tar_samples(shards / e.url)] for e in entries}


def _write_shards(out: Path, groups: list[list[dict]]) -> Path:
    """Write each group of raw samples as one shard ``{i:06d}.tar`` plus a manifest."""
    out.mkdir(parents=True)
    entries = []
    for i, group in enumerate(groups):
        path = out / f"{i:06d}.tar"
        with path.open("wb") as f:
            write_samples(f, [{k: v for k, v in s.items() if k != "__url__"} for s in group])
        entries.append(shard_entry(path, len(group), base=out))
    write_manifest(out, entries)
    return out


@pytest.fixture
def four_shards(dvg_shards: Path, tmp_path: Path) -> Path:
    """The four built clips repacked one per shard (enough shards for 2 ranks x 2 workers)."""
    return _write_shards(tmp_path / "four", [[s] for s in _raw_samples(dvg_shards)])


# ---------------------------------------------------------------- imports


def test_import_pulls_only_dvg_shards_from_the_engine():
    code = (
        "import sys, trainer.data, trainer.transforms\n"
        "heavy = ('dvg.engine', 'dvg.backends', 'dvg.models', 'dvg.video', 'torchvision', 'timm')\n"
        "print(sorted(m for m in sys.modules if m.startswith(heavy)))\n"
        "print('dvg.shards' in sys.modules)\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, check=True
    )
    assert result.stdout.split("\n")[:2] == ["[]", "True"], result.stdout + result.stderr


# ---------------------------------------------------------------- transforms


def test_crop_geometry_hand_computed():
    # 64 x 96 -> short side 48: 48 x 72, crop columns 12..60.
    assert crop_geometry(64, 96, 48) == (48, 72, 0, 12)
    assert crop_geometry(96, 64, 48) == (72, 48, 12, 0)
    # 1080p to the paper's 1024: 1024 x 1820, crop columns 398..1422.
    assert crop_geometry(1080, 1920, 1024) == (1024, 1820, 0, 398)
    assert crop_geometry(64, 96, 64) == (64, 96, 0, 16)  # no resize, crop only
    with pytest.raises(ValueError, match="positive"):
        crop_geometry(0, 96, 48)


def test_resize_center_crop_dtypes_and_shape_guard():
    rng = np.random.default_rng(0)
    views = rng.integers(0, 256, (2, 64, 96, 3), dtype=np.uint8)
    masks = rng.random((2, 64, 96)) < 0.3
    assert resize_center_crop(views, 48).shape == (2, 48, 48, 3)
    out = resize_center_crop(masks, 48)
    assert out.shape == (2, 48, 48) and out.dtype == np.bool_
    # Upscaling also works (bilinear for views, nearest for masks).
    assert resize_center_crop(views, 80).shape == (2, 80, 80, 3)
    with pytest.raises(ValueError, match="bool masks"):
        resize_center_crop(masks.astype(np.uint8), 48)
    with pytest.raises(ValueError, match="frames must be"):
        resize_center_crop(views[..., :2], 48)


# ---------------------------------------------------------------- config


def test_data_config_rejects_bad_values():
    with pytest.raises(ValueError, match="mode"):
        DataConfig(shards="x", mode="video")
    with pytest.raises(ValueError, match="resolution"):
        DataConfig(shards="x", resolution=0)
    with pytest.raises(ValueError, match="shuffle_buffer"):
        DataConfig(shards="x", shuffle_buffer=-1)
    assert DataConfig(shards="x", mode="clip", num_frames=8).frames_per_sample == 8
    assert DataConfig(shards="x", mode="frame", num_frames=8).frames_per_sample == 1


def test_resolve_rank_and_split_for_rank():
    assert resolve_rank(1, 4) == (1, 4)
    with pytest.raises(ValueError, match="both"):
        resolve_rank(1, None)
    with pytest.raises(ValueError, match="rank < world_size"):
        resolve_rank(2, 2)
    items = list(range(10))
    parts = [split_for_rank(items, r, 3, seed=7) for r in range(3)]
    assert sorted(k for part in parts for k in part) == items
    assert parts[0] != items[0::3]  # the seed permutes before splitting


# ---------------------------------------------------------------- batches


def test_frame_mode_batches_shapes_ranges_and_masking(dvg_shards: Path):
    batches = _batches(_config(dvg_shards, mode="frame", resolution=48))
    assert len(batches) == 2
    batch = batches[0]
    for name in ("target", "reference", "masked_target"):
        assert batch[name].shape == (2, 1, 3, 48, 48) and batch[name].dtype == torch.float32
        assert batch[name].min() >= -1.0 and batch[name].max() <= 1.0
    assert batch["mask"].shape == (2, 1, 1, 48, 48) and batch["mask"].dtype == torch.float32
    assert batch["fps"].shape == (2,) and batch["fps"].dtype == torch.float32
    assert batch["frame_indices"].shape == (2, 1)
    assert batch["skipped"].tolist() == [0, 0] and batch["skipped_shards"].tolist() == [0, 0]
    meta = json.loads(_raw_samples(dvg_shards)[0]["json"])
    assert batch["fps"][0].item() == pytest.approx(meta["fps"])
    # The views span a real range (not a constant) and differ from each other.
    assert batch["target"].std() > 0.1
    assert not torch.equal(batch["target"], batch["reference"])

    samples = _per_sample(batches)
    assert sorted(s["key"] for s in samples) == sorted(
        s["__key__"] for s in _raw_samples(dvg_shards)
    )
    mask = torch.cat([s["mask"] for s in samples])
    assert set(mask.unique().tolist()) == {0.0, 1.0}  # binary, and both values occur
    target = torch.cat([s["target"] for s in samples])
    masked = torch.cat([s["masked_target"] for s in samples])
    keep = mask.expand_as(target) == 0
    assert torch.all(masked[~keep] == 0.0)  # masked pixels are mid-grey in [-1, 1]
    # The condition is the back-rendered x~1 (paper 3.2), close to x1 outside M but not x1.
    assert not torch.equal(masked[keep], target[keep])
    assert (masked[keep] - target[keep]).abs().mean() < 0.1


def test_condition_is_the_back_rendered_member_and_the_ablations_change_it(dvg_shards: Path):
    config = _config(dvg_shards, mode="clip", num_frames=3, resolution=64)
    for s in _per_sample(_batches(config)):
        raw = _decoded(dvg_shards, s["key"], s["frame_indices"].tolist())
        stored = _unit(raw["masked"][:, :, 16:80])
        keep = s["mask"].expand_as(stored) == 0
        assert torch.equal(s["masked_target"][keep], stored[keep])
    # Ablation "clean": x1 * (1 - M), pixel-exact outside M.
    for s in _per_sample(_batches(dataclasses.replace(config, condition="clean"))):
        assert torch.equal(s["masked_target"], s["target"] * (1 - s["mask"]))
    # Ablation "mirror": every view and mask flipped left-right (the pre-v2 handedness).
    plain = {s["key"]: s for s in _per_sample(_batches(config))}
    for s in _per_sample(_batches(dataclasses.replace(config, mirror=True))):
        raw = _decoded(dvg_shards, s["key"], s["frame_indices"].tolist())
        flipped = _unit(np.ascontiguousarray(raw["source"][:, :, ::-1][:, :, 16:80]))
        torch.testing.assert_close(s["target"], flipped, rtol=0, atol=1e-6)
        if torch.equal(s["frame_indices"], plain[s["key"]]["frame_indices"]):
            assert torch.equal(s["mask"], plain[s["key"]]["mask"].flip(-1))


def _unit(views: np.ndarray) -> torch.Tensor:
    """(n, H, W, 3) uint8 -> (n, 3, H, W) float in [-1, 1]."""
    return torch.from_numpy(views).permute(0, 3, 1, 2).float() / 127.5 - 1


def _decoded(dvg_shards: Path, key: str, frames: list[int]) -> dict:
    sample = next(s for s in _raw_samples(dvg_shards) if s["__key__"] == key)
    return decode_sample(sample, frames=frames, fields=("source", "novel", "mask", "masked"))


def test_clip_mode_contiguous_window_crop_is_pixel_aligned(dvg_shards: Path):
    # resolution 64 on 64 x 96 frames: no resize, a crop of columns 16..80, so the batch must
    # equal the source pixels exactly, views and mask alike.
    samples = _per_sample(_batches(_config(dvg_shards, mode="clip", num_frames=3, resolution=64)))
    assert len(samples) == 4
    for s in samples:
        indices = s["frame_indices"].tolist()
        assert s["target"].shape == (3, 3, 64, 64) and s["mask"].shape == (3, 1, 64, 64)
        assert indices[0] in (0, 1) and indices == list(range(indices[0], indices[0] + 3))
        raw = _decoded(dvg_shards, s["key"], indices)
        mask = torch.from_numpy(raw["mask"][:, None, :, 16:80]).float()
        torch.testing.assert_close(
            s["target"], _unit(raw["source"][:, :, 16:80]), rtol=0, atol=1e-6
        )
        torch.testing.assert_close(
            s["reference"], _unit(raw["novel"][:, :, 16:80]), rtol=0, atol=1e-6
        )
        assert torch.equal(s["mask"], mask)


def test_resize_and_crop_match_independent_references(dvg_shards: Path):
    # 64 x 96 -> 48: resize to 48 x 72, keep columns 12..60. References: PIL's nearest neighbour
    # for the mask, an exact area average for the view (3/4 shrink: repeat each pixel 3x, average
    # 4 x 4 blocks). Both use the same crop, so a mask shifted against its view fails here.
    samples = _per_sample(_batches(_config(dvg_shards, mode="clip", num_frames=4, resolution=48)))
    checked_mask_pixels = 0
    for s in samples:
        raw = _decoded(dvg_shards, s["key"], s["frame_indices"].tolist())
        for t in range(4):
            mask = Image.fromarray(raw["mask"][t].astype(np.uint8) * 255)
            resized = np.asarray(mask.resize((72, 48), Image.Resampling.NEAREST)) > 127
            expected_mask = resized[:, 12:60]
            assert np.array_equal(s["mask"][t, 0].numpy() == 1.0, expected_mask)
            checked_mask_pixels += int(expected_mask.sum())
            left3 = raw["source"][t].astype(np.float64).repeat(3, 0).repeat(3, 1)
            expected = left3.reshape(48, 4, 72, 4, 3).mean(axis=(1, 3))[:, 12:60]
            got = (s["target"][t].permute(1, 2, 0).numpy().astype(np.float64) + 1) * 127.5
            assert np.abs(got - expected).max() <= 1.0  # uint8 rounding
    assert checked_mask_pixels > 0


def test_stray_tar_outside_the_manifest_is_ignored(dvg_shards: Path, tmp_path: Path):
    shards = tmp_path / "shards"
    shutil.copytree(dvg_shards, shards)
    # A leftover of a killed run: same clips again under a name a glob would pick up.
    stray = [
        {**{k: v for k, v in s.items() if k != "__url__"}, "__key__": s["__key__"] + "x"}
        for s in _raw_samples(dvg_shards)[:2]
    ]
    with (shards / "000002.tar").open("wb") as f:
        write_samples(f, stray)
    keys = _keys(_batches(_config(shards)))
    assert sorted(keys) == sorted(k for ks in _shard_keys(dvg_shards).values() for k in ks)
    assert not any(k.endswith("x") for k in keys)
    with pytest.raises(ValueError, match="manifest"):
        make_dataset(_config(shards / "000000.tar"))


def test_missing_manifest_refuses(tmp_path: Path):
    with pytest.raises(ShardFormatError, match="no shard manifest"):
        make_dataset(_config(tmp_path))
    with pytest.raises(ShardFormatError, match="no shard manifest"):
        make_dataset(_config(tmp_path / "not_built_yet"))
    with pytest.raises(ValueError, match="never from a tar path or a glob"):
        make_dataset(_config(tmp_path / "*.tar"))


# ---------------------------------------------------------------- splitting


@pytest.mark.parametrize("shuffle_buffer", [0, 4])
def test_ranks_read_disjoint_samples_that_cover_the_set(four_shards: Path, shuffle_buffer: int):
    config = _config(four_shards, shuffle_buffer=shuffle_buffer)
    per_rank = [_keys(_batches(config, rank=r, world_size=2)) for r in range(2)]
    assert all(len(keys) == 2 for keys in per_rank)
    assert not set(per_rank[0]) & set(per_rank[1])
    everything = sorted(k for ks in _shard_keys(four_shards).values() for k in ks)
    assert sorted(per_rank[0] + per_rank[1]) == everything


def test_rank_without_shard_refuses(dvg_shards: Path):
    with pytest.raises(ValueError, match="rank 2 of 3 gets no shard"):
        make_dataset(_config(dvg_shards), rank=2, world_size=3)


def test_workers_cover_each_sample_once_with_the_same_draws(four_shards: Path):
    in_process = {s["key"]: s for s in _per_sample(_batches(_config(four_shards)))}
    batches = _batches(_config(four_shards, num_workers=2))
    samples = _per_sample(batches)
    assert sorted(s["key"] for s in samples) == sorted(in_process)  # each exactly once
    # Worker w reads shards w and w + 2; a batch never mixes workers.
    keys = _shard_keys(four_shards)
    per_worker = [
        {*keys["000000.tar"], *keys["000002.tar"]},
        {*keys["000001.tar"], *keys["000003.tar"]},
    ]
    assert {frozenset(b["key"]) for b in batches} == {frozenset(w) for w in per_worker}
    for s in samples:  # one-pass draws are seeded by (seed, key), not by the worker split
        assert torch.equal(s["frame_indices"], in_process[s["key"]]["frame_indices"])
        assert torch.equal(s["target"], in_process[s["key"]]["target"])


def test_resampled_stream_is_endless_deterministic_and_split_by_rank(dvg_shards: Path):
    def draws(seed: int, rank: int) -> list[tuple[str, int]]:
        config = _config(dvg_shards, resampled=True, shuffle_buffer=2, batch_size=1, seed=seed)
        it = iter(make_loader(config, rank=rank, world_size=2))
        return [(b["key"][0], int(b["frame_indices"][0, 0])) for b in (next(it) for _ in range(8))]

    first = draws(0, rank=0)
    assert len(first) == 8  # more than the 2 clips of this rank's shard: resampled
    assert draws(0, rank=0) == first
    assert draws(1, rank=0) != first
    shard_keys = _shard_keys(dvg_shards)
    keys = set(shard_keys["000000.tar"])
    assert {k for k, _ in first} <= keys or {k for k, _ in first} <= set(shard_keys["000001.tar"])
    assert {k for k, _ in draws(0, rank=1)}.isdisjoint({k for k, _ in first})


def test_one_pass_without_shuffle_is_repeatable(dvg_shards: Path):
    loader = make_loader(_config(dvg_shards, mode="clip", num_frames=2))
    first, second = list(loader), list(loader)
    assert [b["key"] for b in first] == [b["key"] for b in second]
    for a, b in zip(first, second, strict=True):
        for name in ("target", "reference", "mask", "masked_target", "frame_indices"):
            assert torch.equal(a[name], b[name])


# ---------------------------------------------------------------- damage


@pytest.mark.parametrize("num_workers", [0, 2])
def test_truncated_shard_is_skipped_warned_and_counted(four_shards: Path, num_workers: int):
    # Shard 2 is the last shard of worker 0 (shards 0 and 2): its skip is reported on the sample
    # of shard 0, so nothing is lost even though no later sample follows it.
    keys = _shard_keys(four_shards)
    damaged = four_shards / "000002.tar"
    damaged.write_bytes(damaged.read_bytes()[: damaged.stat().st_size // 2])
    config = _config(four_shards, num_workers=num_workers, batch_size=1)
    if num_workers == 0:
        with pytest.warns(UserWarning, match=r"000002\.tar.*truncated"):
            batches = _batches(config)
    else:  # warnings are printed by the worker processes; the counts come back in the batches
        batches = _batches(config)
    counters = DataCounters()
    for batch in batches:
        counters.update(batch)
    assert counters == DataCounters(samples_seen=3, skipped_samples=0, skipped_shards=1)
    expected = {k for url, ks in keys.items() if url != "000002.tar" for k in ks}
    assert set(_keys(batches)) == expected


def test_corrupt_tar_header_skips_the_rest_of_the_shard(dvg_shards: Path, tmp_path: Path):
    shards = tmp_path / "shards"
    shutil.copytree(dvg_shards, shards)
    path = shards / "000000.tar"
    keys = _shard_keys(dvg_shards)["000000.tar"]
    with path.open("rb") as f:  # header offsets of the second sample's members
        offsets = [o for name, o, _ in iter_tar_members(f, str(path)) if name.startswith(keys[1])]
    # Damage its second member header (the first sample is complete once the second sample's
    # first member is read); the file size is unchanged, so only the strict tar reader sees it.
    data = bytearray(path.read_bytes())
    data[offsets[1] + 100 : offsets[1] + 108] = b"\xff" * 8
    path.write_bytes(bytes(data))
    with pytest.warns(UserWarning, match=r"000000\.tar.*checksum.*skipping the rest"):
        batches = _batches(_config(shards))
    counters = DataCounters()
    for batch in batches:
        counters.update(batch)
    assert counters == DataCounters(samples_seen=3, skipped_samples=0, skipped_shards=1)
    assert set(_keys(batches)) == {keys[0], *_shard_keys(dvg_shards)["000001.tar"]}


def test_undecodable_sample_is_skipped_and_counted(dvg_shards: Path, tmp_path: Path):
    samples = _raw_samples(dvg_shards)
    bad = samples[1]["__key__"]
    for name in [n for n in samples[1] if n.startswith("source.")]:
        samples[1][name] = b"not a jpeg"
    shards = _write_shards(tmp_path / "bad", [samples[:2], samples[2:]])
    with pytest.warns(UserWarning, match=rf"{bad}.*could not decode.*skipping this sample"):
        batches = _batches(_config(shards))
    assert bad not in _keys(batches) and len(_keys(batches)) == 3
    assert sum(int(b["skipped"].sum()) for b in batches) == 1


def test_unknown_sample_format_version_raises_naming_shard_and_key(
    dvg_shards: Path, tmp_path: Path
):
    samples = _raw_samples(dvg_shards)
    meta = json.loads(samples[1]["json"])
    samples[1]["json"] = json.dumps({**meta, "format_version": 999}).encode()
    shards = _write_shards(tmp_path / "v999", [samples[:2], samples[2:]])
    key = samples[1]["__key__"]
    # Not swallowed by the skip policy, whatever the buffer or worker count.
    with pytest.raises(ShardVersionError, match=rf"000000\.tar: sample {key}.*format_version.*999"):
        _batches(_config(shards, shuffle_buffer=4))
    with pytest.raises(ShardFormatError, match=rf"{key}.*format_version.*999"):
        _batches(_config(shards, num_workers=1))


def test_unknown_manifest_format_version_refuses(dvg_shards: Path, tmp_path: Path):
    shards = tmp_path / "shards"
    shutil.copytree(dvg_shards, shards)
    manifest = json.loads((shards / "manifest.json").read_text())
    manifest["dvg"]["format_version"] = 999
    (shards / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(ShardFormatError, match="format_version 999"):
        make_dataset(_config(shards))


def test_format_v1_shards_are_refused_with_the_reason_and_the_fix(dvg_shards, tmp_path):
    shards = tmp_path / "shards"
    shutil.copytree(dvg_shards, shards)
    manifest = json.loads((shards / "manifest.json").read_text())
    manifest["dvg"]["format_version"] = 1
    (shards / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(ShardVersionError, match=r"format_version' is 1.*mirrored.*Rebuild"):
        make_dataset(_config(shards))
