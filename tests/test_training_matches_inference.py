"""Training must see what inference sees: the stereo handedness of the model's conditions.

One rendered scene goes both ways. Training: `dvg build` shards -> the trainer's data path (the
masked target condition and its mask M). Inference: the converter's warp stage -> the
pipeline's own preprocessing (`SpatialDreamerPipeline.conditioning`, watched while a tiny model
converts the clip). For every run of masked / hole pixels along a row we ask on which side its
occluder lies (the neighbour with the larger disparity). The model fills a hole by continuing
the background on the side away from the occluder, so both must put the occluder on the same
side. With shard format v1 (novel view to the right of x1) training put it on the right of 678
of 681 runs and inference on the left of 768 of 768; the `mirror` ablation reproduces that
geometry and must fail the same check.
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import numpy as np
import pytest
import torch

from dvg.backends import BackendSpec, DepthContext
from dvg.engine import apply_overrides, build, preset_config
from dvg.geometry import zbuffer_disparity
from dvg.shards import decode_sample, iter_tar_samples, read_manifest
from dvg.synthetic import render_scene, write_clip
from pipelines.convert.warp import WarpConfig, WarpStage, identity_transform
from pipelines.model import ModelConfig, SpatialDreamerModel, save_tiny_sd, save_tiny_svd
from pipelines.pipeline import SpatialDreamerPipeline
from trainer.data import DataConfig, make_loader
from trainer.transforms import crop_geometry

HEIGHT, WIDTH, FRAMES = 96, 128, 8


def occluder_sides(mask: np.ndarray, disparity: np.ndarray, min_step: float = 0.5) -> Counter:
    """For each maximal run of True in each row of ``mask`` (H, W), the side ("left" / "right")
    of its larger-disparity neighbour. Runs touching the border, or whose neighbours differ by
    less than ``min_step`` px of disparity, have no clear occluder and are not counted."""
    sides: Counter = Counter()
    height, width = mask.shape
    for row in range(height):
        line = np.concatenate([[False], mask[row], [False]]).astype(np.int8)
        starts = np.flatnonzero(np.diff(line) == 1)
        stops = np.flatnonzero(np.diff(line) == -1)
        for start, stop in zip(starts, stops, strict=True):
            if start == 0 or stop == width:
                continue
            before, after = disparity[row, start - 1], disparity[row, stop]
            if abs(before - after) >= min_step:
                sides["left" if before > after else "right"] += 1
    return sides


@pytest.fixture(scope="module")
def scene(tmp_path_factory):
    root = tmp_path_factory.mktemp("handedness")
    render = render_scene("moving_objects", seed=3, height=HEIGHT, width=WIDTH, num_frames=FRAMES)
    write_clip(render, root / "raw", "clip")
    return root, render


def training_sides(shards: Path, *, mirror: bool) -> Counter:
    """Occluder sides of M in the trainer's batches, against x1's disparity cropped alike."""
    data = DataConfig(
        shards=str(shards), mode="clip", num_frames=4, resolution=HEIGHT, batch_size=1,
        num_workers=0, shuffle_buffer=0, resampled=False, mirror=mirror,
    )  # fmt: skip
    resized_h, resized_w, top, left = crop_geometry(HEIGHT, WIDTH, HEIGHT)
    assert (resized_h, resized_w) == (HEIGHT, WIDTH)  # a pure crop: disparity crops alike
    entries, _ = read_manifest(shards)
    raw = {m["__key__"]: m for e in entries for m in iter_tar_samples(shards / e.url)}
    sides: Counter = Counter()
    for batch in make_loader(data):
        frames = batch["frame_indices"][0].tolist()
        disparity = decode_sample(raw[batch["key"][0]], frames=frames, fields=("disparity",))
        disparity = disparity["disparity"]
        if mirror:
            disparity = disparity[:, :, ::-1]
        for t in range(len(frames)):
            mask = batch["mask"][0, t, 0].numpy() > 0.5
            sides += occluder_sides(mask, disparity[t, top : top + HEIGHT, left : left + HEIGHT])
    return sides


def inference_sides(root: Path, render, monkeypatch) -> Counter:
    """Occluder sides of the holes in the conditions the pipeline gives the model."""
    left = (render.left.clamp(0, 1) * 255).round().byte().permute(0, 2, 3, 1).numpy()
    stage = WarpStage(WarpConfig(depth=BackendSpec("sidecar"), strength=0.05, device="cpu"))
    context = DepthContext(
        video_path=str(root / "raw" / "clip.mp4"),
        source_indices=np.arange(FRAMES),
        transform=identity_transform(WIDTH, HEIGHT),
    )
    warped = stage(left, context)
    right_disparity, _ = zbuffer_disparity(torch.from_numpy(warped.disparity)[:, None])

    config = ModelConfig(
        svd=str(save_tiny_svd(root / "svd")), refiner=str(save_tiny_sd(root / "sd", seed=1))
    )
    SpatialDreamerModel.from_components(config).save_pretrained(root / "model")
    pipe = SpatialDreamerPipeline.from_pretrained(root / "model")
    pipe.set_progress_bar_config(disable=True)
    seen: list[dict[str, torch.Tensor]] = []
    conditioning = pipe.conditioning

    def watch(*args, **kwargs):
        seen.append(conditioning(*args, **kwargs))
        return seen[-1]

    monkeypatch.setattr(pipe, "conditioning", watch)
    pipe.right_views(left, warped.right, warped.holes, steps=1, window=FRAMES, overlap=0)
    assert len(seen) == 1 and seen[0]["mask"].shape == (FRAMES, 1, HEIGHT, WIDTH)
    sides: Counter = Counter()
    for t in range(FRAMES):
        mask = seen[0]["mask"][t, 0].numpy() > 0.5
        sides += occluder_sides(mask, right_disparity[t, 0].numpy())
    return sides


def test_training_and_inference_put_occluders_on_the_same_side(scene, monkeypatch):
    root, render = scene
    config = apply_overrides(
        preset_config("offline"),
        {"video": {"clip_length": 4}, "output": {"keep_disparity": True}},
    )
    summary = build([root / "raw"], root / "shards", config, show_progress=False)
    assert summary.samples == 2

    train = training_sides(root / "shards", mirror=False)
    infer = inference_sides(root, render, monkeypatch)
    print(f"occluder side of mask runs: training {dict(train)}, inference {dict(infer)}")
    assert sum(train.values()) >= 50 and sum(infer.values()) >= 50
    assert train["left"] >= 0.95 * sum(train.values())
    assert infer["left"] >= 0.95 * sum(infer.values())

    # The pre-v2 geometry (the `mirror` ablation): the check sees the mismatch.
    mirrored = training_sides(root / "shards", mirror=True)
    assert mirrored["right"] >= 0.95 * sum(mirrored.values())


def test_occluder_sides_on_a_hand_made_row():
    disparity = np.array([[9.0, 9.0, 0.0, 0.0, 1.0, 1.0, 1.0, 5.0, 5.0]])
    mask = np.array([[False, False, True, True, False, False, True, False, False]])
    assert occluder_sides(mask, disparity) == Counter({"left": 1, "right": 1})
    border = np.array([[True, False, False, False, False, False, False, False, True]])
    assert occluder_sides(border, disparity) == Counter()  # no neighbour on one side
    flat = np.array([[1.0, 0.0, 1.2]])  # neighbours 0.2 px apart: no clear occluder
    assert occluder_sides(np.array([[False, True, False]]), flat) == Counter()
