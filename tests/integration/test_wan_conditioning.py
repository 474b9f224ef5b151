"""Our control renders reach the Wan models: ComfyUI's native conditioning nodes, in process.

For each native node (``WanVaceToVideo``, ``WanAnimateToVideo``, ``WanFunControlToVideo``,
``WanCameraImageToVideo`` of ``comfy_extras/nodes_wan.py``), the tensors it stores in the
positive conditioning (``node_helpers.conditioning_set_values``: ``vace_frames`` and
``vace_mask``, ``pose_video_latent``, ``face_video_pixels``, ``concat_latent_image``,
``camera_conditions``) must

- change by a clear margin when our render changes (another camera, another pose, another
  face box, another orbit): the control is not lost on the way to the model; and
- equal the tensors the node makes from the same frames drawn another way, here, from
  the same known pose and camera, without the code under test.

Ground truth: anny in known poses (a five-frame head nod; a head turn for "another pose")
seen by known orbit cameras (``orbit_extrinsics``), and for each control an independent
computation from those alone:

- depth: the posed mesh through the pack's rasterizer (``camera_space`` + ``rasterize``),
  its camera-space depth turned into inverse depth, stretched over the clip to 0..1 (near
  bright), 0 where nothing was rendered: a few lines here, not ``wan_controls/depth.py``
  or ``scene.py``;
- pose: the body model's landmarks projected with ``CameraTrajectory.project`` into the
  OpenPose COCO-18 slots (neck = the shoulders' 3-D midpoint), the 68 face points likewise
  (DWPose style), every point in the image marked visible, then ``draw_pose``: the skeleton
  code under test (``skeleton.py``: landmark mapping, projection, occlusion) is bypassed.
  The nod is chosen so that nothing is occluded, where both must agree exactly;
- face crops: an integer-aligned square box cut by plain tensor slicing, at scale 1 and
  shrunk by an exact factor 2 (the mean of 2x2 pixels), against ``crop_faces``;
- camera: the trajectory saved to JSON and read back must give the identical embedding.

The node's input is IMAGE floats in 0..1, so frames are compared first (exposing a
mismatch in our render precisely), then the conditioning. The nodes run with ComfyUI's
tiny random Wan 2.1 VAE (``tiny_models``: encoding is deterministic), no diffusion model,
no text encoder (a placeholder conditioning: the nodes only copy it).
"""
from __future__ import annotations

import math
import time

import pytest
import torch
from devpack import comfyui_dir

if not (comfyui_dir() / "main.py").is_file():
    pytest.skip(f"no ComfyUI host at {comfyui_dir()}; run scripts/setup_env.sh", allow_module_level=True)

from devpack import import_comfyui  # noqa: E402

import_comfyui()

import comfy.sd  # noqa: E402
from comfy_extras import nodes_wan  # noqa: E402

from factorportrait.models.camera.files import trajectory_from_json, trajectory_to_json  # noqa: E402
from factorportrait.models.camera.plucker import wan_camera_embedding  # noqa: E402
from factorportrait.models.camera.trajectory import CameraTrajectory, focal_from_fov, orbit_extrinsics  # noqa: E402
from factorportrait.models.render import rasterize as rz  # noqa: E402
from factorportrait.models.wan_controls.controls import render_controls  # noqa: E402
from factorportrait.models.wan_controls.face_crops import crop_faces, face_boxes  # noqa: E402
from factorportrait.models.wan_controls.pose_drawing import draw_pose  # noqa: E402

from .tiny_models import tiny_wan_vae_state_dict  # noqa: E402

W, H = 96, 64  # not square: a transposed axis would show
LENGTH = 5  # 2 latent frames
FACE_W, FACE_H = 192, 128  # the frames the face crops are cut from (face box ~39 x 39 px)
FRAME_TOL = 1e-5  # our render vs the independent frames (0..1)
COND_TOL = 1e-5  # conditioning from the two, after the tiny VAE
CLEAR = 100 * COND_TOL  # "changes by a clear margin": the largest change at least this

# OpenPose COCO-18 index -> the body model's landmark (skeleton.py); 1 (neck) is the
# shoulders' midpoint.
OPENPOSE_LANDMARKS = {0: "nose_tip", 2: "shoulder_right", 5: "shoulder_left", 14: "eye_right_center",
                      15: "eye_left_center", 16: "ear_right", 17: "ear_left"}
NECK = 1

pytestmark = pytest.mark.usefixtures("one_torch_thread")  # small tensors; shares a busy host well


# --- known poses and cameras -----------------------------------------------------------------

def camera(yaw: float = 0.0, pitch: float = 0.0, distance: float = 1.0) -> CameraTrajectory:
    """One orbit camera (angles in degrees) around a point 10 cm below anny's head centre,
    30 deg vertical field of view."""
    one = torch.ones(1, dtype=torch.float64)
    target = torch.tensor([[0.0, -0.1, 0.0]], dtype=torch.float64)
    return CameraTrajectory.create(orbit_extrinsics(yaw * one, pitch * one, 0 * one, distance * one, target),
                                   focal_from_fov(30.0))


def orbit(yaw_end: float, pitch_end: float) -> CameraTrajectory:
    """``LENGTH`` cameras orbiting from the frontal view to ``(yaw_end, pitch_end)`` degrees."""
    t = torch.linspace(0.0, 1.0, LENGTH, dtype=torch.float64)
    target = torch.tensor([0.0, -0.1, 0.0], dtype=torch.float64).expand(LENGTH, 3)
    return CameraTrajectory.create(orbit_extrinsics(yaw_end * t, pitch_end * t, 0 * t, torch.ones_like(t), target),
                                   focal_from_fov(30.0))


def nod(model):
    """``LENGTH`` frames: the head nods down to 10 deg and back (nothing occluded from the front)."""
    p = model.neutral_params(LENGTH)
    with torch.no_grad():
        p.head[:, 0] = math.radians(10) * torch.sin(math.pi * torch.linspace(0, 1, LENGTH))
    return p


def turn(model):
    """``LENGTH`` frames: the head turns 20 deg to one side and back."""
    p = model.neutral_params(LENGTH)
    with torch.no_grad():
        p.head[:, 1] = math.radians(20) * torch.sin(math.pi * torch.linspace(0, 1, LENGTH))
    return p


def posed(model, params) -> torch.Tensor:
    """World vertices ``[F, V, 3]`` (float32), as the renderer poses them."""
    with torch.no_grad():
        return model(params).float()


# --- the same frames, drawn another way --------------------------------------------------------

def depth_frames_by_hand(vertices: torch.Tensor, faces: torch.Tensor, cam: CameraTrajectory,
                         width: int, height: int) -> torch.Tensor:
    """Near-bright inverse depth stretched over the clip ``[F, H, W, 3]`` (0 where nothing)."""
    verts, k = rz.camera_space(vertices, cam, width, height)
    z = rz.rasterize(verts, faces, k, width, height).depth.double()  # [F, H, W] metres, 0 = nothing
    hit = z > 0
    inverse = 1.0 / torch.where(hit, z, 1.0)
    near, far = inverse[hit].max(), inverse[hit].min()
    grey = torch.where(hit, (inverse - far) / (near - far), 0.0).float()
    return grey[..., None].expand(-1, -1, -1, 3).contiguous()


def projected(cam: CameraTrajectory, points: torch.Tensor, width: int, height: int) -> torch.Tensor:
    """Pixels ``[F, N, 2]`` of per-frame world points ``[F, N, 3]`` seen by one camera."""
    return torch.stack([cam.project(p, width, height)[0, :, :2] for p in points])


def in_image(uv: torch.Tensor, width: int, height: int) -> torch.Tensor:
    return (uv[..., 0] >= 0) & (uv[..., 0] < width) & (uv[..., 1] >= 0) & (uv[..., 1] < height)


def pose_frames_by_hand(model, vertices: torch.Tensor, face68, cam: CameraTrajectory, width: int, height: int,
                        style: str) -> torch.Tensor:
    """OpenPose skeletons ``[F, H, W, 3]`` (0..1) of the body model's landmarks projected
    here, every point in the image visible, drawn by ``draw_pose`` in ``style``."""
    landmarks = model.landmarks(vertices)  # [F, K, 3]
    names = model.landmark_names
    points = torch.zeros(len(vertices), 18, 3, dtype=torch.float64)
    for j, name in OPENPOSE_LANDMARKS.items():
        points[:, j] = landmarks[:, names.index(name)].double()
    points[:, NECK] = (points[:, 2] + points[:, 5]) / 2
    present = torch.zeros(18, dtype=torch.bool)
    present[[NECK, *OPENPOSE_LANDMARKS]] = True
    # [F, 18, 2] in float32, as keypoints come: the frontal nose projects to x = 47.99999994
    # in float64, and the precision decides the pixel draw_pose floors it to (48 in float32).
    body = projected(cam, points, width, height).float()
    body_visible = in_image(body, width, height) & present
    assert body_visible[:, present].all(), "the pose leaves the image: choose another camera"
    face = projected(cam, face68(vertices).double(), width, height).float()  # [F, 68, 2]
    assert in_image(face, width, height).all()
    drawn = draw_pose(body, body_visible, face, None, width=width, height=height, style=style)
    return torch.from_numpy(drawn).float() / 255.0


def integer_box(points: torch.Tensor, side: int) -> torch.Tensor:
    """Square boxes ``[F, 4]`` of ``side`` pixels (even corners) around each frame's face box."""
    box = face_boxes(points)
    assert (box[:, 2:] - box[:, :2]).max() <= side
    corner = 2 * torch.floor(((box[:, :2] + box[:, 2:]) / 2 - side / 2) / 2)  # [F, 2] (x0, y0)
    return torch.cat([corner, corner + side], 1)


def crops_by_hand(images: torch.Tensor, boxes: torch.Tensor, factor: int) -> torch.Tensor:
    """Slices of ``images`` ``[F, H, W, C]`` in integer ``boxes``, shrunk ``factor`` times
    by averaging ``factor x factor`` pixels."""
    out = []
    for image, (x0, y0, x1, y1) in zip(images, boxes.long().tolist()):
        crop = image[y0:y1, x0:x1].double()  # [S, S, C]
        s = crop.shape[0] // factor
        out.append(crop.reshape(s, factor, s, factor, -1).mean((1, 3)).float())
    return torch.stack(out)


# --- running the native nodes ------------------------------------------------------------------

def placeholder_conditioning():
    return [[torch.zeros(1, 4, 4096), {}]]


def reference_image() -> torch.Tensor:
    return torch.rand(1, H, W, 3, generator=torch.Generator().manual_seed(7))


def values(conditioning, key: str):
    """What the node stored under ``key`` in the (single) positive conditioning."""
    assert len(conditioning) == 1
    return conditioning[0][1][key]


def vace(vae, control: torch.Tensor) -> dict:
    positive, _, latent, trim = nodes_wan.WanVaceToVideo.execute(
        placeholder_conditioning(), placeholder_conditioning(), vae, W, H, LENGTH, 1, 1.0,
        control_video=control, reference_image=reference_image()).args
    assert trim == 1 and latent["samples"].shape == (1, 16, 3, H // 8, W // 8)
    frames, mask = values(positive, "vace_frames"), values(positive, "vace_mask")
    assert len(frames) == len(mask) == 1
    assert frames[0].shape == (1, 32, 3, H // 8, W // 8)  # reference + inactive/reactive latents
    assert mask[0].shape == (1, 64, 3, H // 8, W // 8)
    return {"vace_frames": frames[0], "vace_mask": mask[0]}


def animate(vae, pose: torch.Tensor | None = None, face: torch.Tensor | None = None) -> dict:
    positive, *_ = nodes_wan.WanAnimateToVideo.execute(
        placeholder_conditioning(), placeholder_conditioning(), vae, W, H, LENGTH, 1, 5, 0,
        reference_image=reference_image(), face_video=face, pose_video=pose).args
    out = {}
    if pose is not None:
        out["pose_video_latent"] = values(positive, "pose_video_latent")
        assert out["pose_video_latent"].shape == (1, 16, 2, H // 8, W // 8)
    if face is not None:
        out["face_video_pixels"] = values(positive, "face_video_pixels")
        assert out["face_video_pixels"].shape == (1, 3, face.shape[0], 512, 512)
    return out


def fun_control(vae, control: torch.Tensor) -> torch.Tensor:
    positive, *_ = nodes_wan.WanFunControlToVideo.execute(
        placeholder_conditioning(), placeholder_conditioning(), vae, W, H, LENGTH, 1,
        start_image=reference_image(), control_video=control).args
    concat = values(positive, "concat_latent_image")
    assert concat.shape == (1, 32, 2, H // 8, W // 8)  # control latent 16 + start image latent 16
    return concat


def camera_node(embedding: torch.Tensor) -> torch.Tensor:
    positive, _, latent = nodes_wan.WanCameraImageToVideo.execute(
        placeholder_conditioning(), placeholder_conditioning(), None, W, H, LENGTH, 1,
        camera_conditions=embedding).args
    assert latent["samples"].shape == (1, 16, 2, H // 8, W // 8)
    return values(positive, "camera_conditions")


# --- comparisons ---------------------------------------------------------------------------------

def mean_change(a: torch.Tensor, b: torch.Tensor) -> float:
    assert a.shape == b.shape
    return (a - b).abs().mean().item()


def max_error(a: torch.Tensor, b: torch.Tensor) -> float:
    assert a.shape == b.shape, (a.shape, b.shape)
    return (a - b).abs().max().item()


def assert_same_frames(ours: torch.Tensor, truth: torch.Tensor, what: str) -> None:
    """Frames ``[F, H, W, C]`` equal within ``FRAME_TOL``, else where the worst pixel is."""
    error = (ours - truth).abs()
    print(f"{what}: frames differ by {error.max():.3g} (max abs)")
    if error.max() > FRAME_TOL:
        f, y, x, c = torch.nonzero(error == error.max())[0].tolist()
        bad = int((error.amax(-1) > FRAME_TOL).sum())
        raise AssertionError(f"{what}: {bad} pixels differ; worst at frame {f} (x={x}, y={y}, c={c}): "
                             f"ours {ours[f, y, x].tolist()} vs {truth[f, y, x].tolist()}")


def assert_changes(a: dict, b: dict, key: str, what: str) -> None:
    """``a[key]`` and ``b[key]`` differ somewhere by more than ``CLEAR``."""
    change = max_error(a[key], b[key])
    print(f"{what}: {key} changes by {change:.3g} (max abs), {mean_change(a[key], b[key]):.3g} (mean abs)")
    assert change > CLEAR, (what, key, change)


def assert_same(a: dict, b: dict, what: str) -> None:
    for key in a:
        error = max_error(a[key], b[key])
        print(f"{what}: {key} differs by {error:.3g} (max abs)")
        assert error <= COND_TOL, (what, key, error)


# --- fixtures --------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def vae():
    return comfy.sd.VAE(sd=tiny_wan_vae_state_dict())


@pytest.fixture(scope="module")
def face68(anny_model, anny_cache_dir):
    from factorportrait.models.expression.face_correspondence import load_face_correspondence
    from factorportrait.models.wan_controls.face68 import face68_on_anny

    return face68_on_anny(anny_model, load_face_correspondence(anny_cache_dir, anny_model))


@pytest.fixture(scope="module")
def render(anny_model, face68):
    """``render(params, camera, style=..., size=(W, H))``: our ``render_controls``, memoised."""
    cache = {}

    def run(params_of, cam_yaw: float = 0.0, style: str = "dwpose", size=(W, H)):
        key = (params_of.__name__, cam_yaw, style, size)
        if key not in cache:
            start = time.perf_counter()
            cache[key] = render_controls(anny_model, params_of(anny_model), camera(cam_yaw), *size,
                                         face68=face68, style=style)
            print(f"render_controls {key}: {time.perf_counter() - start:.2f} s")
        return cache[key]

    return run


# --- WanVaceToVideo ------------------------------------------------------------------------------

def test_vace_depth_changes_with_the_camera(vae, render):
    front, side = render(nod).depth, render(nod, 20.0).depth
    assert front.shape == (LENGTH, H, W, 3)
    a, b = vace(vae, front), vace(vae, side)
    assert_changes(a, b, "vace_frames", "VACE depth, yaw 0 vs 20")
    assert torch.equal(a["vace_mask"], b["vace_mask"])  # no control_masks: all ones, whatever the video


@pytest.mark.parametrize("yaw", [0.0, 20.0])
def test_vace_depth_is_the_depth_computed_by_hand(vae, render, anny_model, yaw):
    ours = render(nod, yaw).depth
    truth = depth_frames_by_hand(posed(anny_model, nod(anny_model)), anny_model.faces.long(), camera(yaw), W, H)
    assert truth.amax() == 1.0 and (truth == 0).any()  # stretched: nearest pixel white, background black
    assert_same_frames(ours, truth, f"depth at yaw {yaw}")
    assert_same(vace(vae, ours), vace(vae, truth), f"VACE depth at yaw {yaw}")


def test_vace_pose_changes_with_the_pose(vae, render):
    a, b = render(nod).pose, render(turn).pose
    assert_changes(vace(vae, a), vace(vae, b), "vace_frames", "VACE pose, nod vs turn")


def test_vace_pose_is_the_skeleton_drawn_by_hand(vae, render, anny_model, face68):
    ours = render(nod)
    assert ours.skeleton.body_visible[:, [NECK, *OPENPOSE_LANDMARKS]].all() and ours.skeleton.face_visible.all()
    truth = pose_frames_by_hand(anny_model, posed(anny_model, nod(anny_model)), face68, camera(), W, H, "dwpose")
    grey = (truth[..., 0] > 0) & (truth[..., 0] == truth[..., 1]) & (truth[..., 1] == truth[..., 2])
    assert grey.sum() > 20  # DWPose's white face dots are there (grey after the resize from 1024 px)
    assert_same_frames(ours.pose, truth, "DWPose skeleton")
    assert_same(vace(vae, ours.pose), vace(vae, truth), "VACE pose")


# --- WanAnimateToVideo ---------------------------------------------------------------------------

def test_animate_pose_changes_with_the_camera(vae, render):
    a, b = render(nod, style="wan_animate").pose, render(nod, 20.0, style="wan_animate").pose
    assert_changes(animate(vae, pose=a), animate(vae, pose=b), "pose_video_latent", "Animate pose, yaw 0 vs 20")


def test_animate_pose_is_the_skeleton_drawn_by_hand(vae, render, anny_model, face68):
    ours = render(nod, style="wan_animate").pose
    truth = pose_frames_by_hand(anny_model, posed(anny_model, nod(anny_model)), face68, camera(), W, H,
                                "wan_animate")
    assert_same_frames(ours, truth, "Wan-Animate skeleton")
    assert_same(animate(vae, pose=ours), animate(vae, pose=truth), "Animate pose")


@pytest.fixture(scope="module")
def face_frames(render, anny_model, face68):
    """Frames to crop faces from ``[F, FACE_H, FACE_W, 3]`` (our depth of the nod) and the
    face points in them ``[F, 68, 2]``, projected here."""
    images = render(nod, size=(FACE_W, FACE_H)).depth
    points = projected(camera(), face68(posed(anny_model, nod(anny_model))).double(), FACE_W, FACE_H).float()
    return images, points


def test_animate_face_changes_with_the_crop_box(vae, face_frames):
    images, points = face_frames
    tight, wide = face_boxes(points), face_boxes(points, scale=2.0)
    a, b = crop_faces(images, tight), crop_faces(images, wide)  # [F, 512, 512, 3]
    assert_changes(animate(vae, face=a), animate(vae, face=b), "face_video_pixels",
                   "Animate face, box scale 1.3 vs 2.0")


@pytest.mark.parametrize("factor", [1, 2])
def test_animate_face_is_the_box_cut_by_hand(vae, face_frames, factor):
    images, points = face_frames
    side = 48  # pixels of the driving frames; the face box is ~39 x 39
    boxes = integer_box(points, side)
    assert (boxes[:, :2] >= 0).all() and (boxes[:, 2] <= FACE_W).all() and (boxes[:, 3] <= FACE_H).all()
    ours = crop_faces(images, boxes, side // factor)  # [F, S, S, 3]
    truth = crops_by_hand(images, boxes, factor)
    assert truth.amax() > 0.5  # the face is in the crop
    assert_same_frames(ours, truth, f"face crops shrunk {factor}x")
    assert_same(animate(vae, face=ours), animate(vae, face=truth), f"Animate face shrunk {factor}x")


# --- WanFunControlToVideo ------------------------------------------------------------------------

def test_fun_control_depth_changes_with_the_camera(vae, render):
    a, b = fun_control(vae, render(nod).depth), fun_control(vae, render(nod, 20.0).depth)
    assert_changes({"concat_latent_image": a}, {"concat_latent_image": b}, "concat_latent_image",
                   "Fun Control depth, yaw 0 vs 20")
    assert torch.equal(a[:, 16:], b[:, 16:])  # the start image's half is untouched


def test_fun_control_depth_is_the_depth_computed_by_hand(vae, render, anny_model):
    ours = render(nod).depth
    truth = depth_frames_by_hand(posed(anny_model, nod(anny_model)), anny_model.faces.long(), camera(), W, H)
    assert_same_frames(ours, truth, "depth")
    assert_same({"concat_latent_image": fun_control(vae, ours)}, {"concat_latent_image": fun_control(vae, truth)},
                "Fun Control depth")


# --- WanCameraImageToVideo -----------------------------------------------------------------------

def test_camera_conditions_change_with_the_orbit():
    a = camera_node(wan_camera_embedding(orbit(20.0, 0.0), W, H))
    b = camera_node(wan_camera_embedding(orbit(-20.0, 10.0), W, H))
    assert a.shape == (1, 24, 2, H, W)
    assert_changes({"camera_conditions": a}, {"camera_conditions": b}, "camera_conditions", "Fun Camera, two orbits")


def test_camera_conditions_survive_a_json_round_trip():
    trajectory = orbit(20.0, 10.0)
    again = trajectory_from_json(trajectory_to_json(trajectory))
    assert torch.equal(again.w2c, trajectory.w2c) and torch.equal(again.focal, trajectory.focal)
    a = camera_node(wan_camera_embedding(trajectory, W, H))
    b = camera_node(wan_camera_embedding(again, W, H))
    assert torch.equal(a, b)
