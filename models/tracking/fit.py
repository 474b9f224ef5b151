"""Fit an upper-body model to the 2-D landmarks of a whole video at once.

Unknowns (``F`` frames): one shared shape; per frame the global rotation and translation of
the subject, torso, clavicle, neck and head rotations, and face actions. The camera is
static and frontal (DESIGN.md: on +Z looking toward -Z, OpenCV axes), at a distance chosen
from the first estimate so the subject's translation stays near zero; its focal length is
``camera_fov_deg`` or fitted once for the whole video.

Objective (all frames together):

    sum_f,k  c_fk * GM(|proj(X_fk) - x_fk| / s)        robust reprojection error
  + smoothness * sum_f |second difference of per-frame parameters|^2
  + priors (small pose, face actions toward neutral, shape toward the mean)

with ``GM`` the Geman-McClure function (quadratic near zero, flat for outliers) and ``s``
the face's size in pixels, so the weights do not depend on the resolution. Frames without
observations are carried by the smoothness term alone (a smooth interpolation).

Schedule (coarse to fine, Adam with a cosine-decaying step): head rotation and translation
from the face points; then the whole pose with the shoulders; then face actions; then the
shape. Robustness tightens stage by stage, so early large residuals still pull.

Face actions: anny's ARKit weights stay in [0, 1] (projected after each step) and only
``FITTED_ARKIT`` (mouth, jaw, eyes, brows) are free: the 52 are not identifiable from sparse
landmarks, so the rest stay 0 and the free ones are pulled toward 0 (L1). SMPL-X: jaw
rotation and expression coefficients with L2 priors.
"""
from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from typing import Callable

import numpy as np
import torch
from torch import Tensor

from ..body.upper_body import LANDMARK_INDEX, UpperBodyModel, UpperBodyParams
from ..camera import FRONTAL_W2C_ROTATION, CameraTrajectory, check_fov, focal_from_fov, fov_from_focal
from ..errors import InputError
from .keypoints import Keypoints2D

# anny's face actions that sparse face landmarks can tell apart; the others stay 0.
FITTED_ARKIT: tuple[str, ...] = (
    "jawOpen", "mouthClose", "mouthFunnel", "mouthPucker", "mouthSmileLeft", "mouthSmileRight",
    "mouthStretchLeft", "mouthStretchRight", "mouthLowerDownLeft", "mouthLowerDownRight",
    "mouthUpperUpLeft", "mouthUpperUpRight", "eyeBlinkLeft", "eyeBlinkRight", "eyeWideLeft",
    "eyeWideRight", "browDownLeft", "browDownRight", "browInnerUp", "browOuterUpLeft", "browOuterUpRight",
)
DEFAULT_FOV_DEG = 40.0  # start of the focal-length search when no field of view is given
MIN_FACE_POINTS = 3  # fewer confident face landmarks than this: the frame is filled in

# Prior weights (per frame; residuals are in face sizes, so one face-size error ~ 1).
PRIOR_HEAD, PRIOR_NECK, PRIOR_TORSO, PRIOR_CLAVICLES = 1e-3, 1e-3, 1e-2, 1e-2
PRIOR_FACE_L1, PRIOR_JAW_SIDEWAYS, PRIOR_EXPRESSION, PRIOR_SHAPE = 1e-2, 1e-1, 1e-2, 1e-2
PRIOR_FOCAL = 1e-3  # on log(focal / start)


@dataclass
class FitReport:
    """How the fit went.

    Attributes:
        error_px: median reprojection error over the observed landmarks, pixels.
        mean_error_px: their confidence-weighted mean.
        frame_error_px: mean error of each frame ``[F]`` (NaN for filled frames).
        filled_frames: frames without enough observations, filled by the smoothness term.
        fov_deg: vertical field of view of the camera (given or fitted).
        camera_distance: distance of the camera from the world origin (metres).
        seconds: wall time of the fit.
        notes: remarks for the user (from the keypoints and the fit).
    """

    error_px: float
    mean_error_px: float
    frame_error_px: list[float]
    filled_frames: list[int]
    fov_deg: float
    camera_distance: float
    seconds: float
    notes: list[str] = field(default_factory=list)

    def summary(self) -> str:
        lines = [f"reprojection error: median {self.error_px:.2f} px, mean {self.mean_error_px:.2f} px; "
                 f"fov {self.fov_deg:.1f}°, camera at {self.camera_distance:.2f} m; {self.seconds:.1f} s."]
        if self.filled_frames:
            lines.append(f"filled in {len(self.filled_frames)} frame(s) without a detection: "
                         + ", ".join(map(str, self.filled_frames)))
        return "\n".join(lines + self.notes)


def _geman_mcclure(x2: Tensor, sigma: float) -> Tensor:
    """Geman-McClure of squared residuals: ``x2 / (1 + x2 / sigma^2)``, ~x2 near zero."""
    return x2 / (1 + x2 / (sigma * sigma))


def _second_differences(x: Tensor) -> Tensor:
    """Sum of squared second differences along frames of ``[F, ...]``."""
    if x.shape[0] < 3:
        return x.new_zeros(())
    return (x[2:] - 2 * x[1:-1] + x[:-2]).pow(2).sum()


class _Problem:
    """The unknowns, the objective and the projection of one fit (build it where autograd is on)."""

    def __init__(self, model: UpperBodyModel, obs: Keypoints2D, fov_deg: float | None):
        self.model = model
        ref = model.template
        self.dtype, self.device = ref.dtype, ref.device
        f = obs.frames
        self.width, self.height = obs.width, obs.height
        # Observations of the landmarks this model has, in the model's order.
        sel = [LANDMARK_INDEX[n] for n in model.landmark_names]
        self.points = obs.points[:, sel].to(self.device, self.dtype).clone()  # [F, K, 2]
        self.conf = obs.confidence[:, sel].to(self.device, self.dtype).clone()  # [F, K]
        face = torch.tensor([not n.startswith("shoulder") for n in model.landmark_names], device=self.device)
        self.face_mask = face
        observed_face = ((self.conf > 0) & face).sum(1)
        self.valid = observed_face >= MIN_FACE_POINTS  # [F]
        # A frame with too few face points is filled in: its stray points would only mislead.
        self.conf = self.conf * self.valid[:, None]
        if not bool(self.valid.any()):
            raise InputError("keypoints", f"no frame has {MIN_FACE_POINTS} or more face landmarks: "
                                          "is there a face in the video?")
        self.filled = torch.nonzero(~self.valid)[:, 0].tolist()

        self.focal_start = float(focal_from_fov(fov_deg if fov_deg is not None else DEFAULT_FOV_DEG))
        self.fit_focal = fov_deg is None
        self._init_unknowns(f)

    # -- initialisation ------------------------------------------------------------------------
    def _init_unknowns(self, f: int) -> None:
        m, z = self.model, lambda *s: torch.zeros(*s, dtype=self.dtype, device=self.device)
        with torch.no_grad():
            rest = m.posed_landmarks(m.neutral_params(1))[0]  # [K, 3], head centre at origin
        fpx = self.focal_start * self.height
        depth, centre, c3, scale = np.full(f, np.nan), np.zeros((f, 2)), np.zeros((f, 3)), np.full(f, np.nan)
        for i in range(f):
            w = (self.conf[i] * self.face_mask).double()
            if not bool(self.valid[i]):
                continue
            wn = w / w.sum()
            p2, p3 = self.points[i].double(), rest.double()
            mu2, mu3 = (wn[:, None] * p2).sum(0), (wn[:, None] * p3).sum(0)
            s2 = ((wn * (p2 - mu2).pow(2).sum(1)).sum()).sqrt()
            s3 = ((wn * (p3[:, :2] - mu3[:2]).pow(2).sum(1)).sum()).sqrt()  # frontal extent
            depth[i], centre[i], c3[i], scale[i] = float(fpx * s3 / s2), mu2.cpu().numpy(), mu3.cpu().numpy(), float(s2)
        ok = ~np.isnan(depth)
        frames = np.arange(f)
        for arr in (depth, scale):  # missing frames: linear interpolation of their neighbours
            arr[~ok] = np.interp(frames[~ok], frames[ok], arr[ok])
        for arr in (centre, c3):
            for d in range(arr.shape[1]):
                arr[~ok, d] = np.interp(frames[~ok], frames[ok], arr[ok, d])
        # The camera sits where the subject's median depth puts the head centre at the origin.
        self.distance = float(np.median(depth + c3[:, 2]))
        cx, cy = self.width / 2, self.height / 2
        p = np.stack([(centre[:, 0] - cx) * depth / fpx, -(centre[:, 1] - cy) * depth / fpx,
                      self.distance - depth], 1)
        self.face_scale = float(np.median(scale))  # pixels: the unit of the residuals

        labels = m.face_labels
        if m.face_range is not None:  # anny: ARKit weights in [0, 1]
            self.face_free_index = [labels.index(a) for a in FITTED_ARKIT if a in labels]
        else:
            self.face_free_index = list(range(len(labels)))
        self.u = {
            "rotation": z(f, 3), "translation": torch.as_tensor(p - c3, dtype=self.dtype, device=self.device),
            "head": z(f, 3), "neck": z(f, 3), "torso": z(f, 3), "clavicles": z(f, 2, 3),
            "face": z(f, len(self.face_free_index)),
            "shape": m.default_shape().detach().clone(),
            "log_focal": z(()),
        }

    # -- evaluation ----------------------------------------------------------------------------
    def params(self) -> UpperBodyParams:
        u, f = self.u, self.points.shape[0]
        idx = torch.tensor(self.face_free_index, device=self.device)
        face = u["face"].new_zeros(f, len(self.model.face_labels)).index_copy(1, idx, u["face"])
        return UpperBodyParams(shape=u["shape"], face=face, head=u["head"], neck=u["neck"], torso=u["torso"],
                               clavicles=u["clavicles"], rotation=u["rotation"], translation=u["translation"])

    @property
    def focal(self) -> Tensor:
        """Focal length over image height (scalar tensor)."""
        return self.focal_start * torch.exp(self.u["log_focal"])

    def project(self, world: Tensor) -> Tensor:
        """World points ``[F, K, 3]`` -> pixels ``[F, K, 2]`` through the frontal camera."""
        fpx = self.focal * self.height
        # Frontal camera at (0, 0, distance): x_cam = X, y_cam = -Y, z_cam = distance - Z.
        zc = (self.distance - world[..., 2]).clamp_min(1e-3)
        u = fpx * world[..., 0] / zc + self.width / 2
        v = -fpx * world[..., 1] / zc + self.height / 2
        return torch.stack([u, v], -1)

    def residuals(self) -> Tensor:
        """Pixel residuals ``[F, K, 2]`` of the current unknowns."""
        return self.project(self.model.posed_landmarks(self.params())) - self.points

    def loss(self, sigma: float, smoothness: float, face_only: bool) -> Tensor:
        u, m = self.u, self.model
        r2 = self.residuals().pow(2).sum(-1) / self.face_scale ** 2
        w = self.conf * self.face_mask if face_only else self.conf
        data = (w * _geman_mcclure(r2, sigma)).sum()
        # Translation in units of the camera distance so all terms are ~radians.
        smooth = sum(_second_differences(u[k]) for k in ("rotation", "head", "neck", "torso", "clavicles", "face"))
        smooth = smooth + _second_differences(u["translation"] / self.distance)
        prior = (PRIOR_HEAD * u["head"].pow(2).sum() + PRIOR_NECK * u["neck"].pow(2).sum()
                 + PRIOR_TORSO * u["torso"].pow(2).sum() + PRIOR_CLAVICLES * u["clavicles"].pow(2).sum())
        if m.face_range is not None:
            prior = prior + PRIOR_FACE_L1 * u["face"].abs().sum()
        else:  # SMPL-X: jaw pitch free-ish, sideways jaw and expressions near zero
            labels = [m.face_labels[i] for i in self.face_free_index]
            weight = torch.tensor([0.0 if lab == m.jaw_open_label else PRIOR_JAW_SIDEWAYS if lab.startswith("jaw")
                                   else PRIOR_EXPRESSION for lab in labels], dtype=self.dtype, device=self.device)
            prior = prior + (weight * u["face"].pow(2)).sum()
        frames = self.points.shape[0]
        shape_dev = u["shape"] - m.default_shape()
        prior = prior + frames * PRIOR_SHAPE * shape_dev.pow(2).sum() + frames * PRIOR_FOCAL * u["log_focal"] ** 2
        return (data + smoothness * smooth + prior) / frames

    def project_constraints(self) -> None:
        """Keep bounded parameters in range (projected gradient descent)."""
        m = self.model
        with torch.no_grad():
            if m.face_range is not None:
                self.u["face"].clamp_(*m.face_range)
            if m.shape_range is not None:
                low, high = m.shape_range
                self.u["shape"].copy_(torch.maximum(torch.minimum(self.u["shape"], high), low))


# (name, unknowns, fraction of the iterations, learning-rate scale, GM sigma in face sizes,
#  face points only)
_STAGES: tuple[tuple[str, tuple[str, ...], float, float, float | None, bool], ...] = (
    ("head", ("head", "translation"), 0.25, 3.0, 1.0, True),  # large steps: the head may be far from frontal
    ("pose", ("rotation", "translation", "head", "neck", "torso", "clavicles"), 0.3, 0.5, 0.5, False),
    ("face", ("rotation", "translation", "head", "neck", "torso", "clavicles", "face"), 0.3, 0.5, None, False),
    ("shape", ("rotation", "translation", "head", "neck", "torso", "clavicles", "face", "shape"), 0.15, 0.25,
     None, False),
)
_LEARNING_RATES = {"rotation": 0.02, "head": 0.02, "neck": 0.02, "torso": 0.01, "clavicles": 0.01,
                   "translation": 0.005, "face": 0.03, "shape": 0.01, "log_focal": 0.01}


def fit_sequence(model: UpperBodyModel, observations: Keypoints2D, camera_fov_deg: float | None = None,
                 iterations: int = 400, smoothness: float = 1.0, robust_sigma: float = 0.1,
                 fit_shape: bool = True, progress: Callable[[int, int], None] | None = None,
                 ) -> tuple[UpperBodyParams, CameraTrajectory, FitReport]:
    """Fit ``model`` to the landmarks of all frames at once.

    Args:
        model: the body model (buffers created outside inference mode, as the loaders do).
        observations: landmarks of ``F`` frames.
        camera_fov_deg: vertical field of view of the video's camera; None fits it (from a
            start of 40°; weakly determined, so give it when known).
        iterations: Adam steps over all stages.
        smoothness: weight of the second differences of the per-frame parameters.
        robust_sigma: residual (in face sizes) beyond which a landmark counts as an outlier.
        fit_shape: also fit the shared shape (the slowest stage).
        progress: called ``(done, total)`` after each step (e.g. a ComfyUI progress bar,
            which can also raise to cancel).

    Returns:
        ``(params, camera, report)``: parameters of ``F`` frames (detached), the static
        frontal camera repeated over the ``F`` frames, and a ``FitReport``.
    """
    if camera_fov_deg is not None:
        check_fov(camera_fov_deg, "camera_fov_deg")
    if iterations < 4:
        raise InputError("iterations", f"need at least 4 iterations, got {iterations}.")
    start = time.perf_counter()
    # ComfyUI runs nodes under inference_mode: the optimisation needs autograd and tensors
    # created here.
    with torch.inference_mode(False), torch.enable_grad():
        problem = _Problem(model, observations, camera_fov_deg)
        stages = [s for s in _STAGES if fit_shape or s[0] != "shape"]
        total = sum(s[2] for s in stages)
        counts = [max(1, round(iterations * s[2] / total)) for s in stages]
        done, n_total = 0, sum(counts)
        for (name, names, _frac, lr_scale, sigma, face_only), n in zip(stages, counts):
            names = names + (("log_focal",) if problem.fit_focal and name != "head" else ())
            # Only this stage's unknowns take part in autograd: the shape's gradient alone
            # costs several times the rest of a step.
            for k, v in problem.u.items():
                v.requires_grad_(k in names)
            groups = [{"params": [problem.u[k]], "lr": _LEARNING_RATES[k] * lr_scale} for k in names]
            opt = torch.optim.Adam(groups)
            base = [g["lr"] for g in groups]
            for step in range(n):
                # Cosine decay to 5 %: big steps to get there, small ones to settle.
                scale = 0.05 + 0.95 * 0.5 * (1 + math.cos(math.pi * step / max(n - 1, 1)))
                for g, b in zip(groups, base):
                    g["lr"] = b * scale
                opt.zero_grad(set_to_none=True)
                problem.loss(sigma if sigma is not None else robust_sigma, smoothness, face_only).backward()
                opt.step()
                problem.project_constraints()
                done += 1
                if progress is not None:
                    progress(done, n_total)

        with torch.no_grad():
            params = problem.params().map(lambda t: t.detach().clone())
            err = problem.residuals().norm(dim=-1)  # [F, K]
            focal = float(problem.focal)
    return params, _camera(problem, focal), _report(problem, err, focal, observations, time.perf_counter() - start)


def _camera(problem: _Problem, focal: float) -> CameraTrajectory:
    f = problem.points.shape[0]
    w2c = torch.eye(4, dtype=torch.float64).repeat(f, 1, 1)
    w2c[:, :3, :3] = FRONTAL_W2C_ROTATION.double()
    w2c[:, 2, 3] = problem.distance  # camera centre (0, 0, d): t = -R c = (0, 0, d)
    return CameraTrajectory.create(w2c, focal)


def _report(problem: _Problem, err: Tensor, focal: float, obs: Keypoints2D, seconds: float) -> FitReport:
    c = problem.conf
    seen = c > 0
    per_frame = ((err * c).sum(1) / c.sum(1).clamp_min(1e-12)).tolist()
    per_frame = [float("nan") if i in problem.filled else e for i, e in enumerate(per_frame)]
    notes = []
    if problem.fit_focal:
        notes.append(f"field of view not given: fitted {float(fov_from_focal(focal)):.1f}° from a start of "
                     f"{DEFAULT_FOV_DEG:g}°; landmarks determine it weakly, so give it when known.")
    return FitReport(
        error_px=float(err[seen].median()), mean_error_px=float((err * c).sum() / c.sum()),
        frame_error_px=per_frame, filled_frames=problem.filled, fov_deg=float(fov_from_focal(focal)),
        camera_distance=problem.distance, seconds=seconds, notes=list(obs.notes) + notes)
