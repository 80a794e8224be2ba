"""Tests of the ray-cast synthetic scenes: every expectation is computed here by hand or by plain
indexing, never with the project's geometry code."""

import json
import math

import imageio_ffmpeg
import numpy as np
import pytest
import torch

from dvg.synthetic import (
    SCENES,
    Box,
    CheckerTexture,
    ImageTexture,
    Motion,
    Plane,
    Scene,
    SinusoidTexture,
    build_scene,
    dolly_path,
    intrinsics,
    look_at,
    orbit_path,
    pan_path,
    render_clip,
    render_scene,
    static_path,
    truck_path,
    write_clip,
)

H, W = 48, 64

IMAGE_FIELDS = {  # name -> (channels, dtype, frames offset: F or F - 1)
    "left": (3, torch.float32, 0),
    "depth": (1, torch.float32, 0),
    "right": (3, torch.float32, 0),
    "right_depth": (1, torch.float32, 0),
    "disparity": (1, torch.float32, 0),
    "right_disparity": (1, torch.float32, 0),
    "occlusion_left": (1, torch.bool, 0),
    "occlusion_right": (1, torch.bool, 0),
    "flow_next": (2, torch.float32, 1),
    "flow_prev": (2, torch.float32, 1),
    "visible_next": (1, torch.bool, 1),
    "visible_prev": (1, torch.bool, 1),
}


def _texture(seed: int = 0) -> SinusoidTexture:
    return SinusoidTexture.random(np.random.default_rng(seed), min_period=1.0)


def _wall(z: float) -> Plane:
    return Plane(origin=(0.0, 0.0, z), texture=_texture())


@pytest.fixture(scope="module")
def fronto():
    return render_scene("fronto_integer", height=H, width=W, num_frames=3)


@pytest.fixture(scope="module", params=sorted(SCENES))
def any_scene(request):
    return request.param, render_scene(request.param, height=H, width=W, num_frames=3)


# --- determinism, shapes, ranges ---------------------------------------------------------------


def test_same_seed_gives_identical_render():
    a = render_scene("moving_objects", seed=3, height=H, width=W, num_frames=2)
    b = render_scene("moving_objects", seed=3, height=H, width=W, num_frames=2)
    for name in IMAGE_FIELDS:
        assert torch.equal(getattr(a, name), getattr(b, name)), name


def test_render_reports_every_step_and_leaves_torch_threads_as_they_were():
    steps = []
    threads = torch.get_num_threads()
    build_scene("fronto_integer", 0, H, W, 3).render(on_step=lambda *step: steps.append(step))
    assert steps == [(done, 5) for done in range(1, 6)]  # 3 frames' views, then 2 flows
    assert torch.get_num_threads() == threads


def test_different_seed_changes_texture_not_geometry():
    a = render_scene("slanted_fractional", seed=0, height=H, width=W)
    b = render_scene("slanted_fractional", seed=1, height=H, width=W)
    assert (a.left - b.left).abs().mean() > 0.02
    assert torch.equal(a.depth, b.depth)


def test_fields_shapes_dtypes_and_ranges(any_scene):
    _, r = any_scene
    num_frames = 3
    for field, (channels, dtype, short) in IMAGE_FIELDS.items():
        value = getattr(r, field)
        assert value.shape == (num_frames - short, channels, H, W), field
        assert value.dtype == dtype, field
    assert r.K.shape == (3, 3) and r.K.dtype == torch.float32
    assert r.world_to_camera.shape == (num_frames, 4, 4)
    assert r.world_to_camera.dtype == torch.float32
    assert isinstance(r.baseline, float) and r.baseline > 0 and r.fps > 0
    assert r.fx == pytest.approx(float(r.K[0, 0]))
    assert (r.depth > 0).all() and (r.right_depth > 0).all()
    for image in (r.left, r.right):
        assert image.min() >= 0 and image.max() <= 1 and image.std() > 0.05
    torch.testing.assert_close(r.disparity, r.fx * r.baseline / r.depth)
    torch.testing.assert_close(r.right_disparity, r.fx * r.baseline / r.right_depth)
    assert torch.isfinite(r.flow_next).all() and torch.isfinite(r.flow_prev).all()


def test_occlusion_masks_are_meaningful(any_scene):
    _, r = any_scene
    for mask in (r.occlusion_left, r.occlusion_right):
        per_frame = mask.float().mean(dim=(1, 2, 3))
        assert (per_frame > 0.01).all() and (per_frame < 0.3).all()
        # Strips several pixels wide: some row holds a run of at least 3 occluded pixels.
        run = mask[:, 0, :, :-2] & mask[:, 0, :, 1:-1] & mask[:, 0, :, 2:]
        assert run.any()


# --- stereo truth on integer disparities -------------------------------------------------------


def test_fronto_disparities_are_the_designed_integers(fronto):
    values = torch.unique(fronto.disparity.round())
    assert values.tolist() == [1.0, 4.0, 7.0, 11.0]
    torch.testing.assert_close(fronto.disparity, fronto.disparity.round(), atol=1e-4, rtol=0)
    assert fronto.K[0, 0] == fronto.K[1, 1] == W


def _shift_check(src_image, src_disp, dst_image, occluded, sign):
    """dst pixel (v, u) shows src pixel (v, u + sign * d) wherever dst is not occluded."""
    d = src_disp[0].round().long()
    u = torch.arange(W).expand(H, W)
    u_src = u + sign * d
    assert ((u_src >= 0) & (u_src < W))[~occluded].all()
    gathered = src_image.gather(2, u_src.clamp(0, W - 1).expand(3, H, W))
    keep = ~occluded
    assert keep.float().mean() > 0.7
    torch.testing.assert_close(dst_image[:, keep], gathered[:, keep], atol=1e-5, rtol=0)


def test_fronto_right_view_is_left_shifted_by_integer_disparity(fronto):
    for f in range(fronto.num_frames):
        # right(u) = left(u + d) with d the right pixel's disparity ...
        _shift_check(
            fronto.left[f],
            fronto.right_disparity[f],
            fronto.right[f],
            fronto.occlusion_right[f, 0],
            +1,
        )
        # ... and left(u) = right(u - d) with d the left pixel's disparity.
        _shift_check(
            fronto.right[f], fronto.disparity[f], fronto.left[f], fronto.occlusion_left[f, 0], -1
        )


def test_fronto_occlusion_masks_match_disparity_consistency(fronto):
    d_left = fronto.disparity[0, 0].round().long()
    d_right = fronto.right_disparity[0, 0].round().long()
    u = torch.arange(W).expand(H, W)
    target = u - d_left  # where each left pixel lands in the right view
    inside = target >= 0
    landed = d_right.gather(1, target.clamp(min=0))
    expected_left = ~inside | (landed != d_left)
    assert torch.equal(fronto.occlusion_left[0, 0], expected_left)
    target = u + d_right
    inside = target < W
    landed = d_left.gather(1, target.clamp(max=W - 1))
    assert torch.equal(fronto.occlusion_right[0, 0], ~inside | (landed != d_right))


def test_fronto_occlusion_strip_width_equals_disparity_step(fronto):
    row = H // 4  # crosses only the 4 px plane, in front of the 1 px back wall
    disp = fronto.disparity[0, 0, row].round().long()
    plane = (disp == 4).nonzero()[:, 0]
    first, last = int(plane.min()), int(plane.max())
    width = int(disp[first] - disp[first - 1])
    assert width == 3
    # Left view: the wall just left of the plane's left edge is hidden from the right eye.
    occ = fronto.occlusion_left[0, 0, row]
    assert occ[first - width : first].all()
    assert not occ[first - width - 1] and not occ[first]
    assert occ[0]  # the wall (1 px) at the left border lands outside the right image
    assert occ[1:].sum() == width
    # Right view: the wall just right of the plane's right edge is hidden from the left eye.
    disp_r = fronto.right_disparity[0, 0, row].round().long()
    last_r = int((disp_r == 4).nonzero()[:, 0].max())
    assert last_r == last - 4
    occ_r = fronto.occlusion_right[0, 0, row]
    assert occ_r[last_r + 1 : last_r + 1 + width].all()
    assert not occ_r[last_r] and not occ_r[last_r + 1 + width]


def test_a_surface_just_in_front_still_occludes():
    # A panel 0.6 % nearer than the wall behind it; a huge disparity makes its occlusion strip
    # visible: wall pixels at u in [edge - (d_panel - d_wall), edge) are hidden from the right eye.
    fx, baseline, width = 100.0, 12.5, 400
    cx = (width - 1) / 2
    edge = 300.5  # the panel's left edge in the left image, extending past the right border
    z_panel = 4.97
    left_x = (edge - cx) * z_panel / fx
    panel = Plane(
        origin=(left_x + 10.0, 0.0, z_panel), half_extent=(10.0, 10.0), texture=_texture()
    )
    K = intrinsics(fx, fx, cx, 1.5)
    r = render_clip(Scene((_wall(5.0), panel)), static_path(1), K, 4, width, baseline)
    d_wall, d_panel = fx * baseline / 5.0, fx * baseline / z_panel  # 250 and 251.51 px
    u = torch.arange(width)
    expected = (u - d_wall < -0.5) | ((u >= edge - (d_panel - d_wall)) & (u < edge))
    assert expected[299] and expected[300] and not expected[298]
    assert torch.equal(r.occlusion_left[0, 0], expected.expand(4, width))


def test_right_view_equals_left_view_of_shifted_camera():
    setup = build_scene("slanted_fractional", height=H, width=W)
    r = setup.render()
    shifted = setup.world_to_camera.clone()
    shifted[:, 0, 3] -= setup.baseline  # X_right = X_left - [baseline, 0, 0]
    moved = render_clip(setup.scene, shifted, setup.K, H, W, setup.baseline)
    torch.testing.assert_close(moved.left, r.right, atol=1e-6, rtol=0)
    torch.testing.assert_close(moved.depth, r.right_depth)


def test_slanted_fractional_is_smooth_enough_for_bilinear_resampling():
    r = render_scene("slanted_fractional", height=H, width=W)
    disp = r.right_disparity[0, 0].double()
    assert ((disp - disp.round()).abs() > 0.05).float().mean() > 0.5  # mostly fractional
    assert 3 < disp.min() and disp.max() < 16
    assert r.K[0, 0] != r.K[1, 1]
    # Backward-warp the left view to the right one with plain row-wise linear interpolation.
    x = torch.arange(W).double() + disp
    x0 = x.floor().long().clamp(0, W - 1)
    x1 = (x0 + 1).clamp(max=W - 1)
    a = x - x.floor()
    left = r.left[0].double()
    warped = left.gather(2, x0.expand(3, H, W)) * (1 - a) + left.gather(2, x1.expand(3, H, W)) * a
    keep = ~r.occlusion_right[0, 0]
    mse = ((warped - r.right[0].double()) ** 2)[:, keep].mean()
    assert 10 * math.log10(1 / mse) > 35


# --- flow --------------------------------------------------------------------------------------


def test_static_scene_has_zero_flow(fronto):
    torch.testing.assert_close(
        fronto.flow_next, torch.zeros_like(fronto.flow_next), atol=1e-5, rtol=0
    )
    torch.testing.assert_close(
        fronto.flow_prev, torch.zeros_like(fronto.flow_prev), atol=1e-5, rtol=0
    )
    assert fronto.visible_next.all() and fronto.visible_prev.all()


def test_truck_flow_on_fronto_plane_is_minus_fx_dx_over_z():
    fx, fy, z, dx = 50.0, 60.0, 4.0, 0.26
    K = intrinsics(fx, fy, 30.3, 20.7)
    r = render_clip(Scene((_wall(z),)), truck_path(3, dx), K, H, W, baseline=0.1)
    expected = -fx * dx / z  # -3.25 px: column 3 lands at -0.25, still inside the image
    torch.testing.assert_close(r.flow_next[:, 0], torch.full((2, H, W), expected))
    torch.testing.assert_close(r.flow_next[:, 1], torch.zeros(2, H, W), atol=1e-5, rtol=0)
    torch.testing.assert_close(r.flow_prev[:, 0], torch.full((2, H, W), -expected))
    # Points leave the image where u + flow < -0.5 (next) or u - flow > W - 0.5 (prev).
    u = torch.arange(W)
    assert torch.equal(r.visible_next[0, 0, 0], u + expected >= -0.5)
    assert torch.equal(r.visible_prev[0, 0, 0], u - expected <= W - 0.5)
    torch.testing.assert_close(r.depth, torch.full_like(r.depth, z))


def test_vertical_camera_motion_flow_and_image_bounds():
    fx, fy, z = 50.0, 60.0, 4.0
    heights = [0.0, 0.15, 0.33]  # the camera centre moves down (+y): flows -2.25 then -2.7 px
    poses = static_path(3).clone()
    poses[:, 1, 3] = -torch.tensor(heights, dtype=poses.dtype)
    r = render_clip(Scene((_wall(z),)), poses, intrinsics(fx, fy, 30.3, 20.7), H, W, 0.1)
    v = torch.arange(H)[:, None].expand(H, W)
    for t in range(2):
        expected = -fy * (heights[t + 1] - heights[t]) / z
        torch.testing.assert_close(r.flow_next[t, 1], torch.full((H, W), expected))
        torch.testing.assert_close(r.flow_next[t, 0], torch.zeros(H, W), atol=1e-5, rtol=0)
        # Inside means within [-0.5, H - 0.5]: rows landing at -0.25 (t = 0) or H - 0.3 (t = 1)
        # are still visible.
        assert torch.equal(r.visible_next[t, 0], v + expected >= -0.5)
        assert torch.equal(r.visible_prev[t, 0], v - expected <= H - 0.5)


def test_moving_object_flow_is_its_own_motion():
    fx, z_box, vx = 40.0, 3.0, 0.05
    box = Box(
        center=(0.0, 0.0, z_box + 0.5),
        half_size=(0.5, 0.5, 0.5),
        texture=_texture(1),
        motion=Motion(velocity=(vx, 0.0, 0.0)),
    )
    K = intrinsics(fx, 44.0, 31.2, 23.9)
    r = render_clip(Scene((_wall(8.0), box)), static_path(2), K, H, W, baseline=0.1)
    on_face = (r.depth[0, 0] - z_box).abs() < 1e-5
    on_wall = (r.depth[0, 0] - 8.0).abs() < 1e-5
    assert on_face.sum() > 50 and on_wall.sum() > 500
    flow = r.flow_next[0]
    torch.testing.assert_close(flow[0][on_face], torch.full_like(flow[0][on_face], fx * vx / z_box))
    assert flow[:, on_wall].abs().max() < 1e-5
    # The wall behind the box's trailing edge is uncovered, the one at its leading edge hidden.
    assert (r.visible_next[0, 0][on_face]).all()
    assert not r.visible_next[0, 0][on_wall].all()


def _reproject(depth, K, pose_from, pose_to):
    """Hand-written pinhole reprojection of every pixel of ``depth`` (H, W) (float64)."""
    v, u = torch.meshgrid(torch.arange(H).double(), torch.arange(W).double(), indexing="ij")
    fx, fy, cx, cy = K[0, 0], K[1, 1], K[0, 2], K[1, 2]
    cam = torch.stack([(u - cx) / fx * depth, (v - cy) / fy * depth, depth], dim=-1)
    world = (cam - pose_from[:3, 3]) @ pose_from[:3, :3]  # R^T (X - t)
    cam_to = world @ pose_to[:3, :3].T + pose_to[:3, 3]
    x = fx * cam_to[..., 0] / cam_to[..., 2] + cx
    y = fy * cam_to[..., 1] / cam_to[..., 2] + cy
    return torch.stack([x - u, y - v])


def test_orbit_flow_matches_hand_reprojection():
    setup = build_scene("boxes_orbit", height=H, width=W, num_frames=3)
    r = setup.render()
    K, poses = setup.K, setup.world_to_camera
    for t in range(2):
        expected = _reproject(r.depth[t, 0].double(), K, poses[t], poses[t + 1])
        torch.testing.assert_close(r.flow_next[t].double(), expected, atol=2e-3, rtol=0)
        expected = _reproject(r.depth[t + 1, 0].double(), K, poses[t + 1], poses[t])
        torch.testing.assert_close(r.flow_prev[t].double(), expected, atol=2e-3, rtol=0)
        assert r.flow_next[t].abs().max() > 1  # the camera does move
        assert 0.8 < r.visible_next[t].float().mean() < 1


# --- errors ------------------------------------------------------------------------------------


def test_rays_missing_everything_raise_naming_the_frame():
    K = intrinsics(50.0, 50.0, W / 2, H / 2)
    small = Scene((Plane(origin=(0.0, 0.0, 5.0), half_extent=(1.0, 1.0), texture=_texture()),))
    with pytest.raises(ValueError, match="frame 0"):
        render_clip(small, static_path(1), K, H, W, baseline=0.1)
    # A back wall seen head-on, then the camera turns fully away from it.
    with pytest.raises(ValueError, match="frame 1"):
        render_clip(Scene((_wall(5.0),)), pan_path(2, math.pi), K, H, W, baseline=0.1)


def test_bad_inputs_raise():
    scene = Scene((_wall(5.0),))
    K = intrinsics(50.0, 50.0, W / 2, H / 2)
    with pytest.raises(ValueError, match="baseline"):
        render_clip(scene, static_path(1), K, H, W, baseline=0.0)
    with pytest.raises(ValueError, match="world_to_camera"):
        render_clip(scene, torch.eye(4), K, H, W, baseline=0.1)
    with pytest.raises(ValueError, match="K"):
        render_clip(scene, static_path(1), torch.eye(4), H, W, baseline=0.1)
    with pytest.raises(ValueError, match="orthogonal"):
        Plane(origin=(0, 0, 1), axis_u=(1, 0, 0), axis_v=(1, 1, 0), texture=_texture())
    with pytest.raises(ValueError, match="unknown scene"):
        render_scene("no_such_scene")


# --- textures and camera paths -----------------------------------------------------------------


def test_textures_respect_band_limit_and_range():
    rng = np.random.default_rng(0)
    waves = SinusoidTexture.random(rng, min_period=2.5)
    assert (waves.frequencies.norm(dim=1) <= 1 / 2.5 + 1e-12).all()
    coords = torch.as_tensor(rng.uniform(-50, 50, size=(4000, 2)))
    for texture in (waves, CheckerTexture.random(rng, cell=0.7)):
        colors = texture(coords)
        assert colors.shape == (4000, 3) and colors.min() >= 0 and colors.max() <= 1


def test_image_texture_hits_texels_and_repeats():
    image = torch.rand(3, 4, 5, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    texture = ImageTexture(image, texel_size=0.5)
    # Texel (row 2, col 3) is centred at (s, t) = (3, 2) * 0.5, and repeats every (5, 4) texels.
    coords = torch.tensor([[1.5, 1.0], [1.5 + 2.5, 1.0 - 2.0]], dtype=torch.float64)
    torch.testing.assert_close(texture(coords), image[:, 2, 3].expand(2, 3))
    midway = texture(torch.tensor([[1.75, 1.0]], dtype=torch.float64))[0]
    torch.testing.assert_close(midway, (image[:, 2, 3] + image[:, 2, 4]) / 2)


def test_light_scales_colours_by_two_sided_lambert():
    K = intrinsics(50.0, 55.0, 30.0, 22.0)

    def render(light):
        return render_clip(
            Scene((_wall(5.0),), light=light, ambient=0.4), static_path(1), K, H, W, 0.1
        )

    unlit = render(None).left
    torch.testing.assert_close(render((0.0, 0.0, -1.0)).left, unlit)  # facing the light
    torch.testing.assert_close(render((1.0, 0.0, 0.0)).left, 0.4 * unlit)  # grazing
    cosine = 1 / math.sqrt(2)
    torch.testing.assert_close(render((0.0, 1.0, 1.0)).left, (0.4 + 0.6 * cosine) * unlit)


def test_camera_paths_are_rigid_and_move_as_named():
    paths = {
        "static": static_path(3),
        "pan": pan_path(3, 0.1),
        "dolly": dolly_path(3, 0.2),
        "truck": truck_path(3, 0.2),
        "orbit": orbit_path(3, (0.0, 0.0, 5.0), radius=5.0, angle_per_frame=0.1, height=1.0),
    }
    for name, path in paths.items():
        R = path[:, :3, :3]
        assert path.shape == (3, 4, 4), name
        torch.testing.assert_close(R @ R.transpose(1, 2), torch.eye(3).expand(3, 3, 3).double())
        assert torch.allclose(torch.linalg.det(R), torch.ones(3, dtype=torch.float64))
    centers = {k: -(p[:, :3, :3].transpose(1, 2) @ p[:, :3, 3:])[..., 0] for k, p in paths.items()}
    torch.testing.assert_close(centers["dolly"][2], torch.tensor([0.0, 0.0, 0.4]).double())
    torch.testing.assert_close(centers["truck"][2], torch.tensor([0.4, 0.0, 0.0]).double())
    # Panning right by 0.1 rad: the forward axis (third row of R) turns towards +x.
    forward = paths["pan"][1, 2, :3]
    torch.testing.assert_close(forward, torch.tensor([math.sin(0.1), 0, math.cos(0.1)]).double())
    # The orbit keeps its target on the optical axis, at a constant distance.
    target = torch.tensor([0.0, 0.0, 5.0, 1.0], dtype=torch.float64)
    in_camera = paths["orbit"] @ target
    torch.testing.assert_close(in_camera[:, :2], torch.zeros(3, 2, dtype=torch.float64))
    torch.testing.assert_close(in_camera[:, 2], torch.full((3,), math.hypot(5.0, 1.0)).double())
    # look_at: image rows point down (world +y), so a point below the target projects lower.
    below = look_at((0, 0, 0), (0, 0, 1)) @ torch.tensor([0.0, 1.0, 5.0, 1.0], dtype=torch.float64)
    assert below[1] > 0


# --- writing to disk ---------------------------------------------------------------------------


def test_write_clip_round_trips(fronto, tmp_path):
    paths = write_clip(fronto, tmp_path / "out", "fronto", fps=10)
    assert set(paths) == {"video", "depth", "camera"}
    reader = imageio_ffmpeg.read_frames(str(paths["video"]))
    meta = next(reader)
    assert tuple(meta["size"]) == (W, H)
    frames = [np.frombuffer(frame, np.uint8).reshape(H, W, 3) for frame in reader]
    assert len(frames) == fronto.num_frames
    # yuv420p keeps luma at full resolution (chroma is subsampled): compare luma.
    luma = np.array([0.299, 0.587, 0.114])
    original = fronto.left[0].permute(1, 2, 0).numpy() * 255
    assert np.abs(frames[0] @ luma - original @ luma).mean() < 3
    depth = np.load(paths["depth"])
    assert depth.dtype == np.float32 and depth.shape == (fronto.num_frames, H, W)
    np.testing.assert_array_equal(depth, fronto.depth[:, 0].numpy())
    camera = json.loads(paths["camera"].read_text())
    assert (camera["width"], camera["height"], camera["fps"]) == (W, H, 10.0)
    assert camera["baseline"] == fronto.baseline
    np.testing.assert_allclose(camera["K"], fronto.K.numpy())
    np.testing.assert_allclose(camera["world_to_camera"], fronto.world_to_camera.numpy())


def test_write_clip_rejects_odd_sizes(tmp_path):
    r = render_scene("fronto_integer", height=H + 1, width=W)
    with pytest.raises(ValueError, match="even"):
        write_clip(r, tmp_path, "odd")
