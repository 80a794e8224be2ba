import math

import pytest
import torch
from torch.autograd import gradcheck

from dvg.geometry import (
    depth_to_disparity,
    pixel_grid,
    project,
    reprojection_flow,
    stereo_flow,
    stereo_pose,
    transform_points,
    unproject,
)

# Asymmetric intrinsics (fx != fy, cx != cy, off-centre) so a transposition cannot pass.
K_ASYM = torch.tensor([[120.0, 0.0, 30.5], [0.0, 90.0, 17.25], [0.0, 0.0, 1.0]])


def yaw_pose(angle: float, t: tuple[float, float, float]) -> torch.Tensor:
    c, s = math.cos(angle), math.sin(angle)
    T = torch.eye(4)
    T[:3, :3] = torch.tensor([[c, 0.0, s], [0.0, 1.0, 0.0], [-s, 0.0, c]])
    T[:3, 3] = torch.tensor(t)
    return T


def test_pixel_grid_is_pixel_centres():
    g = pixel_grid(2, 3)
    assert g.shape == (1, 2, 2, 3)
    assert g[0, 0].tolist() == [[0, 1, 2], [0, 1, 2]]
    assert g[0, 1].tolist() == [[0, 0, 0], [1, 1, 1]]


def test_unproject_hand_computed(dtype):
    depth = torch.full((1, 1, 4, 6), 2.0, dtype=dtype)
    points = unproject(depth, K_ASYM[None].to(dtype))
    # Pixel (row 1, column 3): X = (3 - cx) Z / fx, Y = (1 - cy) Z / fy, Z.
    expected = torch.tensor([(3 - 30.5) * 2 / 120.0, (1 - 17.25) * 2 / 90.0, 2.0], dtype=dtype)
    torch.testing.assert_close(points[0, :, 1, 3], expected)
    assert points.dtype == dtype


def test_project_unproject_round_trip_batch_non_square(device):
    K = torch.stack([K_ASYM, K_ASYM * torch.tensor([[2.0], [1.0], [1.0]])]).to(device)
    depth = torch.rand(2, 1, 5, 8, device=device) * 5 + 0.5
    pixels, in_front = project(unproject(depth, K), K)
    torch.testing.assert_close(pixels, pixel_grid(5, 8, device=device).expand(2, -1, -1, -1))
    assert in_front.all()


def test_project_flags_points_behind_camera():
    points = torch.tensor([[1.0, 1.0], [0.0, 0.0], [2.0, -1.0]]).view(1, 3, 1, 2)
    pixels, in_front = project(points, K_ASYM[None])
    assert in_front.view(-1).tolist() == [True, False]
    assert torch.isfinite(pixels).all()


def test_identity_pose_gives_zero_flow():
    depth = torch.rand(1, 1, 6, 7) + 1
    r = reprojection_flow(depth, K_ASYM[None], torch.eye(4)[None])
    torch.testing.assert_close(r.flow, torch.zeros(1, 2, 6, 7), atol=1e-5, rtol=0)
    torch.testing.assert_close(r.depth, depth)


def test_stereo_pose_flow_equals_disparity_flow():
    depth = torch.rand(2, 1, 6, 9, dtype=torch.float64) * 4 + 1
    K = K_ASYM[None].expand(2, 3, 3).double()
    r = reprojection_flow(depth, K, stereo_pose(0.1, batch=2, dtype=torch.float64))
    expected = stereo_flow(depth_to_disparity(depth, 120.0, 0.1))
    torch.testing.assert_close(r.flow, expected)


def test_translation_flow_hand_computed():
    # Camera moves +0.2 along x (scene moves -0.2 in camera frame) and +0.1 along z.
    depth = torch.full((1, 1, 3, 4), 2.0, dtype=torch.float64)
    T = torch.eye(4, dtype=torch.float64)
    T[:3, 3] = torch.tensor([-0.2, 0.0, -0.1], dtype=torch.float64)
    r = reprojection_flow(depth, K_ASYM[None].double(), T[None])
    u, v = 2.0, 1.0
    X, Y = (u - 30.5) * 2 / 120.0, (v - 17.25) * 2 / 90.0
    Xn, Zn = X - 0.2, 1.9
    expected = torch.tensor(
        [120.0 * Xn / Zn + 30.5 - u, 90.0 * Y / Zn + 17.25 - v], dtype=torch.float64
    )
    torch.testing.assert_close(r.flow[0, :, 1, 2], expected)
    torch.testing.assert_close(r.depth, torch.full_like(depth, 1.9))


def test_rotation_with_different_target_intrinsics():
    depth = torch.rand(1, 1, 5, 6, dtype=torch.float64) + 2
    T = yaw_pose(0.05, (0.01, -0.02, 0.03)).double()[None]
    K_tgt = (K_ASYM * 1.5).double()
    K_tgt[2, 2] = 1.0
    r = reprojection_flow(depth, K_ASYM[None].double(), T, K_tgt[None])
    points = transform_points(unproject(depth, K_ASYM[None].double()), T)
    pixels, _ = project(points, K_tgt[None])
    torch.testing.assert_close(r.flow + pixel_grid(5, 6, dtype=torch.float64), pixels)


@pytest.mark.parametrize(
    ("K", "T", "match"),
    [
        (torch.eye(3)[None, :2], torch.eye(4)[None], "K"),
        (torch.eye(3)[None], torch.eye(4)[None].expand(2, 4, 4), "T"),
        (torch.eye(3).expand(2, 3, 3), torch.eye(4)[None], "K"),
        (torch.full((1, 3, 3), float("nan")), torch.eye(4)[None], "K"),
    ],
)
def test_reprojection_rejects_bad_matrices(K, T, match):
    with pytest.raises(ValueError, match=match):
        reprojection_flow(torch.ones(1, 1, 3, 3), K, T)


def test_reprojection_rejects_bad_depth():
    with pytest.raises(ValueError, match="depth"):
        reprojection_flow(torch.zeros(1, 1, 3, 3), torch.eye(3)[None], torch.eye(4)[None])


def test_gradcheck_reprojection_flow():
    depth = (torch.rand(1, 1, 3, 4, dtype=torch.float64) + 1).requires_grad_()
    T = yaw_pose(0.1, (0.1, 0.0, 0.05)).double()[None]
    assert gradcheck(lambda z: reprojection_flow(z, K_ASYM[None].double(), T).flow, (depth,))
