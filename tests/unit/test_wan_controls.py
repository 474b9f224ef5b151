"""Control renders for the Wan models against ground truth: the background plane's and a
flat quad's depth against ray-plane intersections solved here, the depth images' stretch
by hand, the skeleton against the camera's own projection and occlusion by a turned head,
and the face crops on a synthetic clip with known head motion (tracked from projected
landmarks) against Wan-Animate's box around the true face points.
"""
import math

import pytest
import torch

from factorportrait.models.camera.trajectory import CameraTrajectory, focal_from_fov, orbit_extrinsics
from factorportrait.models.tracking.body_track import track_body
from factorportrait.models.wan_controls.depth import depth_to_image, disparity_range, merge_ranges
from factorportrait.models.wan_controls.face_crops import crop_faces, face_boxes, smooth_boxes
from factorportrait.models.wan_controls.scene import Plane, plane_depth, render_depth
from factorportrait.models.wan_controls.skeleton import NUM_BODY_POINTS, project_skeleton, skeleton_3d
from test_tracking import FRAMES, HEIGHT, WIDTH, _camera, _observe, _truth

pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def face68(anny_model, anny_cache_dir):
    """The 68 iBUG points on anny (the face correspondence of the tests' anny cache)."""
    from factorportrait.models.expression.face_correspondence import load_face_correspondence
    from factorportrait.models.wan_controls.face68 import face68_on_anny

    return face68_on_anny(anny_model, load_face_correspondence(anny_cache_dir, anny_model))


def camera(yaw=0.0, pitch=0.0, distance=1.0, fov=30.0, target=(0.0, 0.0, 0.0)) -> CameraTrajectory:
    one = torch.ones(1, dtype=torch.float64)
    return CameraTrajectory.create(orbit_extrinsics(yaw * one, pitch * one, 0 * one,
                                                    distance * one, torch.tensor([target], dtype=torch.float64)),
                                   focal_from_fov(fov))


def ray_hits(cam: CameraTrajectory, uv: torch.Tensor, width: int, height: int, normal, offset) -> torch.Tensor:
    """World points where pixel positions ``uv [N, 2]`` see the plane ``normal . X = offset``,
    solved by bisection along each ray (independent of the closed form under test)."""
    k = cam.intrinsics(width, height)[0]
    c2w = cam.c2w[0]
    rays = torch.stack([(uv[:, 0] - k[0, 2]) / k[0, 0], (uv[:, 1] - k[1, 2]) / k[1, 1], torch.ones(len(uv))], 1)
    d = rays.double() @ c2w[:3, :3].T
    centre = c2w[:3, 3]
    lo, hi = torch.zeros(len(uv), dtype=torch.float64), torch.full((len(uv),), 100.0, dtype=torch.float64)

    def side(t):
        return (centre + t[:, None] * d) @ normal - offset

    sign_lo = torch.sign(side(lo))
    for _ in range(200):
        mid = (lo + hi) / 2
        same = torch.sign(side(mid)) == sign_lo
        lo, hi = torch.where(same, mid, lo), torch.where(same, hi, mid)
    return centre + lo[:, None] * d, lo


# -- depth ---------------------------------------------------------------------------------------

def test_plane_depth_is_where_each_pixel_ray_meets_the_plane():
    photo = camera(yaw=10.0, pitch=-5.0, distance=1.5)
    plane = Plane.facing_camera(photo, 2.0)
    view = camera(yaw=35.0, pitch=12.0, distance=1.2, target=(0.1, 0.0, 0.0))
    w, h = 40, 30
    depth = plane_depth(plane, view, w, h)[0]
    v, u = torch.meshgrid(torch.arange(h), torch.arange(w), indexing="ij")
    uv = torch.stack([u.flatten() + 0.5, v.flatten() + 0.5], 1).double()
    points, t = ray_hits(view, uv, w, h, plane.normal.double(), plane.offset)
    assert torch.allclose(depth.flatten().double(), t, rtol=1e-5)
    # The plane is z = 2 in the photo camera's space, and each hit projects back to its pixel.
    in_photo = points @ photo.w2c[0, :3, :3].T + photo.w2c[0, :3, 3]
    assert torch.allclose(in_photo[:, 2], torch.full_like(in_photo[:, 2], 2.0), atol=1e-6)
    back = view.project(points, w, h)
    assert torch.allclose(back[0, :, :2], uv, atol=1e-6)


def test_plane_behind_the_camera_has_no_depth():
    view = camera()
    behind = Plane(normal=-view.c2w[0, :3, 2].double(), offset=float(-(view.c2w[0, :3, 2] @ view.c2w[0, :3, 3]) + 0.5))
    # The plane z_cam = -0.5: every ray points away from it.
    assert (plane_depth(behind, view, 8, 6) == 0).all()


def test_quad_depth_and_coverage_match_the_analytic_plane_in_front_of_a_background():
    # A tilted square 0.4 m wide around the origin, its normal (0.3, 0.2, 1) (world), seen
    # from an orbit camera, over a background plane 1 m behind the origin.
    n = torch.nn.functional.normalize(torch.tensor([0.3, 0.2, 1.0], dtype=torch.float64), dim=0)
    a = torch.nn.functional.normalize(torch.linalg.cross(n, torch.tensor([0.0, 1.0, 0.0], dtype=torch.float64)), dim=0)
    b = torch.linalg.cross(n, a)
    corners = torch.stack([s * 0.2 * a + t * 0.2 * b for s, t in ((-1, -1), (1, -1), (1, 1), (-1, 1))])
    faces = torch.tensor([[0, 1, 2], [0, 2, 3]])
    view = camera(yaw=20.0, pitch=10.0, distance=1.0)
    background = Plane.facing_camera(camera(), 2.0)  # z = 2 in the frontal camera: 1 m behind the quad
    w, h = 64, 48
    depth, covered = render_depth(corners[None].float(), faces, view, w, h, background)
    v, u = torch.meshgrid(torch.arange(h), torch.arange(w), indexing="ij")
    uv = torch.stack([u.flatten() + 0.5, v.flatten() + 0.5], 1).double()
    hits, t = ray_hits(view, uv, w, h, n, 0.0)
    inside = ((hits @ a).abs() < 0.2) & ((hits @ b).abs() < 0.2)
    margin = ((hits @ a).abs() - 0.2).abs().minimum(((hits @ b).abs() - 0.2).abs()) > 1e-3  # off the edges
    assert torch.equal(covered.flatten()[margin], inside[margin])
    assert inside.sum() > 300
    assert torch.allclose(depth.flatten()[inside & margin].double(), t[inside & margin], rtol=1e-5)
    _, t_back = ray_hits(view, uv, w, h, background.normal.double(), background.offset)
    outside = ~covered.flatten()
    assert torch.allclose(depth.flatten()[outside].double(), t_back[outside], rtol=1e-5)
    assert (depth.flatten()[outside] > depth.flatten()[covered.flatten()].max()).all()  # the background is behind


def test_depth_images_are_inverse_depth_stretched_over_the_clip():
    depth = torch.zeros(2, 2, 3)
    depth[0, 0, 0], depth[0, 0, 1], depth[1, 1, 2] = 1.0, 2.0, 4.0  # inverse 1, 0.5, 0.25
    near_far = disparity_range(depth)
    assert near_far == pytest.approx((0.25, 1.0))
    images = depth_to_image(depth, near_far)
    assert images.shape == (2, 2, 3, 3)
    assert torch.equal(images[..., 0], images[..., 1]) and torch.equal(images[..., 0], images[..., 2])
    expected = torch.zeros(2, 2, 3)
    expected[0, 0, 0], expected[0, 0, 1], expected[1, 1, 2] = 1.0, (0.5 - 0.25) / 0.75, 0.0
    assert torch.allclose(images[..., 0], expected, atol=1e-6)
    assert disparity_range(torch.zeros(1, 2, 2)) == (0.0, 1.0)  # nothing rendered: no division by zero
    per_frame = merge_ranges(disparity_range(depth[:1]), disparity_range(depth[1:]))  # as chunks merge theirs
    assert per_frame == pytest.approx(near_far)


# -- skeleton ------------------------------------------------------------------------------------

def test_skeleton_projects_the_body_models_landmarks_as_the_camera_does(anny_model):
    params = _truth(anny_model).select([0, 4])
    with torch.no_grad():
        vertices = anny_model(params)
    landmarks = anny_model.landmarks(vertices)
    view = camera(yaw=15.0, pitch=5.0, distance=1.0)
    skeleton = project_skeleton(skeleton_3d(landmarks, vertices), view, WIDTH, HEIGHT)
    names = anny_model.landmark_names
    expected = {0: "nose_tip", 2: "shoulder_right", 5: "shoulder_left", 14: "eye_right_center",
                15: "eye_left_center", 16: "ear_right", 17: "ear_left"}  # OpenPose COCO-18 indices
    for f in range(2):
        truth = view.project(landmarks[f].double(), WIDTH, HEIGHT)[0, :, :2]
        for j, name in expected.items():
            assert torch.allclose(skeleton.body[f, j].double(), truth[names.index(name)], atol=1e-3), name
        neck = view.project(((landmarks[f, names.index("shoulder_right")] + landmarks[f, names.index("shoulder_left")])
                             / 2)[None].double(), WIDTH, HEIGHT)[0, 0, :2]
        assert torch.allclose(skeleton.body[f, 1].double(), neck, atol=1e-3)
    absent = [j for j in range(NUM_BODY_POINTS) if j not in expected and j != 1]  # elbows, wrists, hips, legs
    assert not skeleton.body_visible[:, absent].any()
    assert skeleton.body_visible[:, list(expected) + [1]].all()


def test_a_turned_head_hides_the_far_ear_and_cheek_but_not_the_shoulders(anny_model, face68):
    params = anny_model.neutral_params(1)
    with torch.no_grad():
        params.head[:, 1] = math.radians(80)  # the head turned to its left: its right side faces the camera
        vertices = anny_model(params)
    view = camera(distance=1.2)
    faces = anny_model.faces.long()
    depth, covered = render_depth(vertices, faces, view, WIDTH, HEIGHT)
    skeleton = project_skeleton(skeleton_3d(anny_model.landmarks(vertices), vertices, face68), view, WIDTH, HEIGHT,
                                depth * covered)
    visible = skeleton.body_visible[0]
    assert visible[16] and not visible[17]  # right ear seen, left ear behind the head
    assert visible[[1, 2, 5]].all()  # neck and shoulders drawn as detectors infer them
    face_visible = skeleton.face_visible[0]
    assert face_visible[[0, 1, 2, 36]].all()  # the right jaw and eye corner face the camera
    assert not face_visible[[14, 15, 16, 45]].any()  # the left jaw and eye corner are behind
    # Without the occlusion test everything in the image is visible.
    plain = project_skeleton(skeleton_3d(anny_model.landmarks(vertices), vertices, face68), view, WIDTH, HEIGHT)
    assert plain.body_visible[0, 17] and plain.face_visible[0].all()


def test_points_outside_the_image_or_behind_the_camera_are_not_visible(anny_model):
    params = anny_model.neutral_params(1)
    with torch.no_grad():
        vertices = anny_model(params)
    landmarks = anny_model.landmarks(vertices)
    off = camera(target=(0.6, 0.0, 0.0))  # looks 60 cm to the subject's left: the body is off to one side
    assert not project_skeleton(skeleton_3d(landmarks, vertices), off, WIDTH, HEIGHT).body_visible.any()
    behind = camera(yaw=180.0, distance=-1.0)  # at the same place, looking away from the body
    assert not project_skeleton(skeleton_3d(landmarks, vertices), behind, WIDTH, HEIGHT).body_visible.any()


# -- face crops ----------------------------------------------------------------------------------

def test_face_boxes_grow_as_wan_animate_grows_them():
    points = torch.tensor([[[50.0, 40.0], [150.0, 160.0], [100.0, 100.0]]])  # box 100 x 120
    (x0, y0, x1, y1), = face_boxes(points, scale=1.3).tolist()
    w, h = 100 * math.sqrt(1.3), 120 * math.sqrt(1.3)  # area x 1.3 at the same aspect
    assert x1 - x0 == pytest.approx(w) and y1 - y0 == pytest.approx(h)
    assert (x0 + x1) / 2 == pytest.approx(100.0)  # even left and right
    assert 40 - y0 == pytest.approx(3 * (y1 - 160))  # three parts above for one below


def test_smoothing_keeps_still_boxes_and_steadies_jitter():
    still = torch.tensor([[10.0, 20.0, 110.0, 140.0]]).expand(30, -1)
    assert torch.allclose(smooth_boxes(still, 2.0), still)
    jitter = still + 3.0 * torch.randn(30, 1, generator=torch.Generator().manual_seed(0))
    smooth = smooth_boxes(jitter, 2.0)
    assert smooth.diff(dim=0).std() < 0.25 * jitter.diff(dim=0).std()  # frame-to-frame shake
    assert torch.equal(smooth_boxes(jitter, 0.0), jitter)


def test_crops_place_the_box_exactly_and_pad_outside_the_frame():
    image = torch.zeros(1, 100, 120, 3)
    image[0, 30, 40] = 1.0  # one white pixel, centre (40.5, 30.5)
    box = torch.tensor([[20.0, 10.0, 60.0, 50.0]])  # 40 px -> 80 px: x2
    crop = crop_faces(image, box, size=80)[0, ..., 0]
    ys, xs = torch.nonzero(crop > 0, as_tuple=True)
    weights = crop[ys, xs]
    centre = ((xs + 0.5) * weights).sum() / weights.sum(), ((ys + 0.5) * weights).sum() / weights.sum()
    assert centre[0].item() == pytest.approx((40.5 - 20) * 2, abs=0.05)
    assert centre[1].item() == pytest.approx((30.5 - 10) * 2, abs=0.05)
    image[:] = 0.5
    outside = crop_faces(image, torch.tensor([[-40.0, -40.0, 40.0, 40.0]]), size=64)[0, ..., 0]
    assert (outside[:28, :28] == 0).all() and (outside[36:, 36:] == 0.5).all()  # black beyond the frame edge
    shrunk = crop_faces(image, torch.tensor([[0.0, 0.0, 120.0, 100.0]]), size=16)  # area-averaged shrink
    assert torch.allclose(shrunk, torch.full_like(shrunk, 0.5), atol=1e-5)


def test_face_crops_centre_on_the_tracked_face_of_a_clip_with_known_head_motion(anny_model, face68):
    """Known motion (yaw +-30, pitch +-15, a drift; test_tracking's), landmarks projected
    with 0.5 px noise and two frames without a face, tracked; a white dot drawn at the true
    nose tip of each frame must land in the crop where Wan-Animate's box around the *true*
    face points puts it, within 2 % of the crop size."""
    from factorportrait.models.wan_controls.face_crops import driving_face_points

    truth, cam = _truth(anny_model), _camera(FRAMES)
    track = track_body(anny_model, _observe(anny_model, truth, cam))
    with torch.no_grad():
        true_vertices = anny_model(truth)
    true_points = torch.stack([cam.frames([f]).project(face68(true_vertices)[f].double(), WIDTH, HEIGHT)[0, :, :2]
                               for f in range(FRAMES)]).float()
    nose = true_points[:, 30]
    images = torch.zeros(FRAMES, HEIGHT, WIDTH, 3)
    for f, (x, y) in enumerate(nose.tolist()):
        images[f, int(y), int(x)] = 1.0
    size = 512
    crops = crop_faces(images, face_boxes(driving_face_points(track, face68)), size)
    expected_box = face_boxes(true_points)
    for f in range(FRAMES):
        x0, y0, x1, y1 = expected_box[f].tolist()
        (x, y) = nose[f].floor() + 0.5
        expected = torch.tensor([(x - x0) / (x1 - x0) * size, (y - y0) / (y1 - y0) * size])
        weights = crops[f, ..., 0]
        ys, xs = torch.nonzero(weights > 0.05, as_tuple=True)
        found = torch.stack([((xs + 0.5) * weights[ys, xs]).sum(), ((ys + 0.5) * weights[ys, xs]).sum()]) \
            / weights[ys, xs].sum()
        error = (found - expected).norm().item() / size
        assert error < 0.02, (f, found.tolist(), expected.tolist())


# -- the pose video end to end -------------------------------------------------------------------

OPENPOSE_RGB = {0: (255, 0, 0), 1: (255, 85, 0), 2: (255, 170, 0), 5: (85, 255, 0), 14: (170, 0, 255),
                15: (255, 0, 255), 16: (255, 0, 170), 17: (255, 0, 85)}  # OpenPose's joint colours
LIMB_RGB = {(1, 2): (255, 0, 0), (1, 5): (255, 85, 0), (1, 0): (0, 0, 255), (0, 14): (85, 0, 255),
            (14, 16): (170, 0, 255), (0, 15): (255, 0, 255), (15, 17): (255, 0, 170)}  # limb i: colour i


def test_pose_video_draws_each_joint_where_the_camera_sees_it_in_its_colour(anny_model, face68):
    """A known pose (test_tracking's frame 4: head turned and tilted) seen by a known camera:
    each drawn joint's pixels (Wan-Animate style, 832x480) centre on the camera's projection
    of the body model's landmark within a pixel, in OpenPose's colour, and each limb's
    midpoint has its colour at 0.6."""
    from factorportrait.models.wan_controls.controls import render_controls

    params = _truth(anny_model).select([4, 9])
    view = camera(yaw=-10.0, pitch=5.0, distance=0.9, target=(0.0, -0.1, 0.0))
    w, h = 832, 480
    videos = render_controls(anny_model, params, view, w, h, face68=face68, style="wan_animate")
    with torch.no_grad():
        landmarks = anny_model.landmarks(anny_model(params))
    names = anny_model.landmark_names
    where = {0: ["nose_tip"], 2: ["shoulder_right"], 5: ["shoulder_left"], 14: ["eye_right_center"],
             15: ["eye_left_center"], 16: ["ear_right"], 17: ["ear_left"], 1: ["shoulder_right", "shoulder_left"]}
    pose = (videos.pose * 255).round()
    assert pose.abs().sum() > 0 and videos.pose.shape == (2, h, w, 3)
    for f in range(2):
        truth = {j: view.project(torch.stack([landmarks[f, names.index(n)] for n in ns]).mean(0, keepdim=True).double(),
                                 w, h)[0, 0, :2] for j, ns in where.items()}
        for j, rgb in OPENPOSE_RGB.items():
            if not videos.skeleton.body_visible[f, j]:
                continue
            x, y = truth[j].tolist()
            box = pose[f, int(y) - 6:int(y) + 7, int(x) - 6:int(x) + 7]
            hit = (box == torch.tensor(rgb, dtype=box.dtype)).all(-1)
            assert hit.sum() >= 4, (f, j)
            ys, xs = torch.nonzero(hit, as_tuple=True)
            centre = torch.stack([xs.double().mean() + int(x) - 6 + 0.5, ys.double().mean() + int(y) - 6 + 0.5])
            assert (centre - truth[j]).abs().max() <= 1.0, (f, j, centre.tolist(), truth[j].tolist())
        for (a, b), rgb in LIMB_RGB.items():
            if not (videos.skeleton.body_visible[f, a] and videos.skeleton.body_visible[f, b]):
                continue
            mid = (truth[a] + truth[b]) / 2
            length = (truth[a] - truth[b]).norm()
            if length < 12:
                continue  # a short limb is covered by its joints
            expected = torch.tensor([int(c * 0.6) for c in rgb], dtype=pose.dtype)
            assert torch.equal(pose[f, int(mid[1]), int(mid[0])], expected), (f, a, b)
    # The face points are DWPose's: white dots, drawn in that style only.
    dw = render_controls(anny_model, params.select([0]), view, w, h, face68=face68, style="dwpose")
    white = (dw.pose[0] > 0.9).all(-1)
    visible_face = dw.skeleton.face[0][dw.skeleton.face_visible[0]]
    near = [bool(white[max(0, int(y) - 2):int(y) + 3, max(0, int(x) - 2):int(x) + 3].any())
            for x, y in visible_face.tolist()]
    assert sum(near) >= 0.95 * len(near)
    assert not (videos.pose[0] > 0.9).all(-1).any()  # no white dots in Wan-Animate's style


def test_track_controls_take_the_tracks_frames_codes_and_camera(anny_model):
    """A body track's own frames and camera by default; ARKit codes replace only its face;
    a still camera of many frames counts as one; other codes and lengths are named."""
    from factorportrait.models.errors import InputError
    from factorportrait.models.expression.arkit_codes import ARKIT_ENCODER
    from factorportrait.models.expression.codes import ExpressionCodes
    from factorportrait.models.wan_controls.controls import track_controls

    truth, cam = _truth(anny_model), _camera(FRAMES)
    track = track_body(anny_model, _observe(anny_model, truth, cam))
    params, view = track_controls(track)
    assert params.frames == FRAMES and torch.equal(params.face, track.params.face)
    assert view.num_frames == 1  # the fitted video camera is still: one frame serves all
    assert torch.allclose(view.w2c[0], track.camera.w2c[0])
    codes = torch.rand(1, track.params.face.shape[1], generator=torch.Generator().manual_seed(0))
    params, _ = track_controls(track, ExpressionCodes(codes, ARKIT_ENCODER))
    assert torch.equal(params.face, codes.expand(FRAMES, -1)) and torch.equal(params.head, track.params.head)
    with pytest.raises(InputError, match="input 'expression'.*ARKit-52"):
        track_controls(track, ExpressionCodes(torch.zeros(FRAMES, 16), "tiny-16"))
    three = torch.ones(3, dtype=torch.float64)
    moving = CameraTrajectory.create(orbit_extrinsics(torch.linspace(0, 20, 3).double(), 0 * three, 0 * three, three,
                                                      torch.zeros(3, 3, dtype=torch.float64)), focal_from_fov(30.0))
    with pytest.raises(InputError, match="input 'camera'"):  # 3 moving frames for a 16-frame track
        track_controls(track, None, moving)
