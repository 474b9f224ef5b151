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

Schedule (coarse to fine; robustness tightens stage by stage, so early large residuals still
pull): head rotation and translation from the face points; then the whole pose with the
shoulders (and the focal length when it is fitted); then face actions; then the shape.

Solver: Levenberg-Marquardt over all frames together (``_levenberg_marquardt``), converging
in a handful of iterations where first-order steps need hundreds: Gauss-Newton with the
robust term reweighted; the per-frame Jacobians by forward differences through the
frame-batched model, which evaluates only its landmarks (``UpperBodyModel.posed_landmarks``);
the smoothness's block-banded normal equations solved exactly in ``O(F)``, bordered by the
unknowns all frames share (shape, focal length). The whole body's rotation has a small prior:
it turns about the head centre, so its pitch barely moves the shoulders in the image and
would otherwise trade freely against the neck's.

Face actions: anny's ARKit weights stay in [0, 1] (projected after each step) and only
``FITTED_ARKIT`` (mouth, jaw, eyes, brows) are free: the 52 are not identifiable from sparse
landmarks, so the rest stay 0 and the free ones are pulled toward 0 (L1). SMPL-X: jaw
rotation and expression coefficients with L2 priors.
"""
from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from typing import Callable, NamedTuple

import numpy as np
import torch
from torch import Tensor

from ..body.upper_body import LANDMARK_INDEX, LandmarkRig, UpperBodyModel, UpperBodyParams
from ..camera.trajectory import FRONTAL_W2C_ROTATION, CameraTrajectory, check_fov, focal_from_fov, fov_from_focal
from ..errors import InputError
from ..threads import one_torch_thread
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
PRIOR_ROTATION, PRIOR_HEAD, PRIOR_NECK, PRIOR_TORSO, PRIOR_CLAVICLES = 1e-2, 1e-3, 1e-3, 1e-2, 1e-2
PRIOR_FACE_L1, PRIOR_JAW_SIDEWAYS, PRIOR_EXPRESSION, PRIOR_SHAPE = 1e-2, 1e-1, 1e-2, 1e-2
PRIOR_FOCAL = 1e-3  # on log(focal / start)
FD_STEP = 1e-3  # forward-difference step of the Jacobian (radians, metres, face-action units)
LM_CONVERGED = 1e-3  # relative decrease of the objective below which a Levenberg-Marquardt stage stops
LM_DAMPING = 1e-6  # initial Levenberg-Marquardt damping, relative to the diagonal


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


class _Unknowns(NamedTuple):
    """One value of all the unknowns."""

    frame: Tensor  # [F, P]: the per-frame unknowns, a column block per name (``_FRAME_UNKNOWNS``)
    shape: Tensor  # [S]
    log_focal: Tensor  # []: log of focal length over its start


class _Problem:
    """The observations, the objective and its derivatives of one fit."""

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
        self.start = self._initial_unknowns(f)
        self._init_constants(f)

    # -- initialisation ------------------------------------------------------------------------
    def _initial_unknowns(self, f: int) -> _Unknowns:
        """Zero pose, neutral face, mean shape; translation and camera distance from the face's
        position and size in each frame."""
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
        widths = {name: width if width is not None else len(self.face_free_index) for name, width in _FRAME_UNKNOWNS}
        ends = np.cumsum(list(widths.values())).tolist()
        self.columns = {name: slice(end - w, end) for (name, w), end in zip(widths.items(), ends)}
        frame = z(f, ends[-1])
        frame[:, self.columns["translation"]] = torch.as_tensor(p - c3, dtype=self.dtype)
        return _Unknowns(frame, m.default_shape().detach().clone(), z(()))

    def _init_constants(self, f: int) -> None:
        """Everything of the objective that does not change during the fit."""
        m, p = self.model, self.start.frame.shape[1]
        opts = dict(dtype=self.dtype, device=self.device)
        # The free face actions placed into the model's face vector ([E_free, E], 0/1).
        self.face_scatter = torch.zeros(len(self.face_free_index), len(m.face_labels), **opts)
        self.face_scatter[range(len(self.face_free_index)), self.face_free_index] = 1
        # Second differences along frames as one product: row i is x_i - 2 x_{i+1} + x_{i+2}.
        rows = torch.arange(max(f - 2, 0))
        self.second_difference = torch.zeros(len(rows), f, **opts)
        for shift, value in enumerate((1.0, -2.0, 1.0)):
            self.second_difference[rows, rows + shift] = value
        # Translation in units of the camera distance so all smoothness terms are ~radians.
        self.smooth_scale = torch.ones(p, **opts)
        self.smooth_scale[self.columns["translation"]] = 1 / self.distance
        # Per-column prior weights: L2 on the pose; on the face L1 (anny's weights in [0, 1])
        # or L2 (SMPL-X: jaw pitch free-ish, sideways jaw and expressions near zero).
        self.prior_l2, self.prior_l1 = torch.zeros(p, **opts), torch.zeros(p, **opts)
        for name, weight in (("rotation", PRIOR_ROTATION), ("head", PRIOR_HEAD), ("neck", PRIOR_NECK),
                             ("torso", PRIOR_TORSO), ("clavicles", PRIOR_CLAVICLES)):
            self.prior_l2[self.columns[name]] = weight
        if m.face_range is not None:
            self.prior_l1[self.columns["face"]] = PRIOR_FACE_L1
        else:
            labels = [m.face_labels[i] for i in self.face_free_index]
            self.prior_l2[self.columns["face"]] = torch.tensor(
                [0.0 if lab == m.jaw_open_label else PRIOR_JAW_SIDEWAYS if lab.startswith("jaw") else PRIOR_EXPRESSION
                 for lab in labels], **opts)
        inf = torch.full((p,), math.inf, **opts)  # bounds of the per-frame unknowns
        self.frame_low, self.frame_high = -inf, inf.clone()
        if m.face_range is not None:
            self.frame_low[self.columns["face"]], self.frame_high[self.columns["face"]] = m.face_range
        self.face_weight = self.conf * self.face_mask  # [F, K]: the face points alone
        self.pixel_sign = torch.tensor([1.0, -1.0], **opts)  # OpenCV y down, world Y up
        self.image_centre = torch.tensor([self.width / 2, self.height / 2], **opts)

    # -- evaluation ----------------------------------------------------------------------------
    def params(self, u: _Unknowns, frame: Tensor | None = None) -> UpperBodyParams:
        """The model's parameters of ``u`` (with per-frame unknowns ``frame [F', P]`` if given)."""
        x = u.frame if frame is None else frame
        c, f = self.columns, x.shape[0]
        return UpperBodyParams(shape=u.shape, face=x[:, c["face"]] @ self.face_scatter, head=x[:, c["head"]],
                               neck=x[:, c["neck"]], torso=x[:, c["torso"]],
                               clavicles=x[:, c["clavicles"]].view(f, 2, 3), rotation=x[:, c["rotation"]],
                               translation=x[:, c["translation"]])

    def focal(self, u: _Unknowns) -> Tensor:
        """Focal length over image height (scalar tensor)."""
        return self.focal_start * torch.exp(u.log_focal)

    def project(self, world: Tensor, u: _Unknowns) -> Tensor:
        """World points ``[F, K, 3]`` -> pixels ``[F, K, 2]`` through the frontal camera."""
        # Frontal camera at (0, 0, distance): x_cam = X, y_cam = -Y, z_cam = distance - Z.
        zc = (self.distance - world[..., 2:]).clamp_min(1e-3)
        return world[..., :2] / zc * (self.pixel_sign * self.focal(u) * self.height) + self.image_centre

    def residuals(self, u: _Unknowns, rig: LandmarkRig | None = None, frame: Tensor | None = None) -> Tensor:
        """Pixel residuals ``[F, K, 2]`` of ``u`` (``rig``: of ``u.shape``, None to compute it).
        Per-frame unknowns ``frame [n F, P]`` give ``[n F, K, 2]``: n copies of the frames."""
        world = self.model.posed_landmarks(self.params(u, frame), rig)
        pixels = self.project(world, u)
        return (pixels.unflatten(0, (-1, self.points.shape[0])) - self.points).flatten(0, 1)

    def loss(self, u: _Unknowns, sigma: float, smoothness: float, face_only: bool,
             rig: LandmarkRig | None = None) -> Tensor:
        """The objective (module docstring), per frame."""
        x, m, frames = u.frame, self.model, u.frame.shape[0]
        r2 = self.residuals(u, rig).pow(2).sum(-1) / self.face_scale ** 2
        w = self.face_weight if face_only else self.conf
        data = (w * _geman_mcclure(r2, sigma)).sum()
        smooth = (self.second_difference @ x * self.smooth_scale).pow(2).sum()
        prior = (x.pow(2) * self.prior_l2).sum() + (x.abs() * self.prior_l1).sum()
        prior = prior + frames * (PRIOR_SHAPE * (u.shape - m.default_shape()).pow(2).sum()
                                  + PRIOR_FOCAL * u.log_focal ** 2)
        return (data + smoothness * smooth + prior) / frames

    # -- derivatives (of the residuals in face sizes) --------------------------------------------
    def frame_jacobian(self, u: _Unknowns, cols: Tensor, rig: LandmarkRig) -> tuple[Tensor, Tensor]:
        """Residuals ``[F, 2K]`` and their derivatives by the per-frame unknowns ``cols [n]`` of
        their own frame ``[F, 2K, n]``.

        Forward differences, with the ``n`` perturbed copies of all frames stacked along the
        frame axis: one call of the (frame-batched) model.
        """
        x, frames, n = u.frame, u.frame.shape[0], len(cols)
        perturb = FD_STEP * torch.eye(x.shape[1], dtype=x.dtype, device=x.device)[cols]  # [n, P]
        stacked = torch.cat([x, (x + perturb[:, None]).flatten(0, 1)])  # [(n + 1) F, P]
        r = (self.residuals(u, rig, stacked) / self.face_scale).unflatten(0, (n + 1, frames)).flatten(2)
        return r[0], ((r[1:] - r[0]) / FD_STEP).permute(1, 2, 0)

    def shared_jacobian(self, u: _Unknowns, names: tuple[str, ...], rig: LandmarkRig) -> Tensor:
        """Derivatives of the residuals ``[F, 2K, U]`` by the unknowns all frames share:
        ``names`` among "shape" (``[S]`` columns) and "log_focal" (one), in that order.

        The landmarks are linear in the model's rig (``UpperBodyModel.rig_jacobian``), so the
        shape's derivatives are the projection's times that times the rig's own by the shape
        (forward differences of the small shape-to-rig map, all shapes in one call; not
        ``torch.func``, whose first use imports ``torch._dynamo``, seconds); the focal length
        scales the pixels' offsets from the image centre.
        """
        m, params = self.model, self.params(u)
        world = m.posed_landmarks(params, rig)  # [F, K, 3]
        columns = []
        if "shape" in names:
            shapes = torch.cat([u.shape[None], u.shape + FD_STEP * torch.eye(len(u.shape), dtype=self.dtype,
                                                                            device=self.device)])
            rigs = torch.cat([t.flatten(1) for t in m.landmark_rig(shapes)], 1)  # [1 + S, R]
            rig_by_shape = ((rigs[1:] - rigs[0]) / FD_STEP).T  # [R, S]
            zc = (self.distance - world[..., 2]).clamp_min(1e-3)  # [F, K]
            fpx = float(self.focal(u)) * self.height / zc
            # d pixels / d world [F, K, 2, 3]: u = fpx X / zc + cx, v = -fpx Y / zc + cy, zc = d - Z.
            zero = torch.zeros_like(zc)
            projection = torch.stack([torch.stack([fpx, zero, fpx * world[..., 0] / zc], -1),
                                      torch.stack([zero, -fpx, -fpx * world[..., 1] / zc], -1)], -2)
            by_rig = projection @ m.rig_jacobian(params)  # [F, K, 2, R]
            columns.append((by_rig.flatten(1, 2) @ rig_by_shape) / self.face_scale)
        if "log_focal" in names:
            pixels = self.project(world, u)
            columns.append(((pixels - self.image_centre) / self.face_scale).flatten(1)[..., None])
        return torch.cat(columns, -1)


def _geman_mcclure(x2: Tensor, sigma: float) -> Tensor:
    """Geman-McClure of squared residuals: ``x2 / (1 + x2 / sigma^2)``, ~x2 near zero."""
    return x2 / (1 + x2 / (sigma * sigma))


class _Selection:
    """The unknowns a stage moves, with their priors and bounds as vectors: per-frame columns
    ``cols [n]`` and the shared unknowns (``shared``: "shape", "log_focal") as one vector."""

    def __init__(self, problem: _Problem, names: tuple[str, ...], smoothness: float):
        every = torch.arange(problem.start.frame.shape[1], device=problem.device)
        self.cols = torch.cat([every[problem.columns[k]] for k in names if k in problem.columns])  # [n]
        self.prior_l2, self.prior_l1 = problem.prior_l2[self.cols], problem.prior_l1[self.cols]
        self.low, self.high = problem.frame_low[self.cols], problem.frame_high[self.cols]
        self.smooth = smoothness * problem.smooth_scale[self.cols] ** 2  # [n]
        self.shared = tuple(k for k in ("shape", "log_focal") if k in names)
        # Shared priors are per frame in the objective: times F here, as the data's sums are.
        frames, m = problem.start.frame.shape[0], problem.model
        prior, mean, low, high = [], [], [], []
        if "shape" in self.shared:
            mean.append(m.default_shape())
            prior.append(torch.full_like(mean[-1], frames * PRIOR_SHAPE))
            bounds = m.shape_range or (torch.full_like(mean[-1], -math.inf), torch.full_like(mean[-1], math.inf))
            low.append(bounds[0]), high.append(bounds[1])
        if "log_focal" in self.shared:
            one = problem.start.shape.new_ones(1)
            prior.append(frames * PRIOR_FOCAL * one), mean.append(0 * one)
            low.append(-math.inf * one), high.append(math.inf * one)
        if self.shared:
            self.shared_prior, self.shared_mean = torch.cat(prior), torch.cat(mean)
            self.shared_low, self.shared_high = torch.cat(low), torch.cat(high)

    def shared_vector(self, u: _Unknowns) -> Tensor:
        """The shared unknowns of ``u`` ``[U]``."""
        return torch.cat([u.shape] * ("shape" in self.shared) + [u.log_focal[None]] * ("log_focal" in self.shared))

    def moved(self, u: _Unknowns, dx: Tensor, ds: Tensor | None) -> _Unknowns:
        """``u`` plus steps ``dx [F, n]`` and ``ds [U]``, projected onto the bounds."""
        frame = u.frame.clone()
        frame[:, self.cols] = torch.maximum(torch.minimum(frame[:, self.cols] + dx, self.high), self.low)
        u = u._replace(frame=frame)
        if not self.shared:
            return u
        vector = torch.maximum(torch.minimum(self.shared_vector(u) + ds, self.shared_high), self.shared_low)
        if "shape" in self.shared:
            u, vector = u._replace(shape=vector[:len(u.shape)]), vector[len(u.shape):]
        return u._replace(log_focal=vector[0]) if "log_focal" in self.shared else u


class _NormalEquations(NamedTuple):
    """Gauss-Newton's linearisation at one point (halved: ``H step = -grad``). Per frame:
    ``hessian [F, n, n]`` (data and priors; the smoothness's part is added by the solver),
    ``grad [F, n]``, ``free [F, n]`` (False: held at a bound). Shared unknowns (None
    without): ``cross [F, n, U]``, ``hessian_s [U, U]``, ``grad_s [U]``, ``free_s [U]``."""

    hessian: Tensor
    grad: Tensor
    free: Tensor
    cross: Tensor | None = None
    hessian_s: Tensor | None = None
    grad_s: Tensor | None = None
    free_s: Tensor | None = None


def _normal_equations(problem: _Problem, sel: _Selection, u: _Unknowns, rig: LandmarkRig, sigma: float,
                      face_only: bool) -> _NormalEquations:
    """The linearised objective at ``u``, the robust term as weighted least squares (IRLS)."""
    weight = problem.face_weight if face_only else problem.conf  # [F, K]
    r, jac = problem.frame_jacobian(u, sel.cols, rig)  # [F, 2K], [F, 2K, n], in face sizes
    r2 = r.unflatten(1, (-1, 2)).pow(2).sum(-1)  # [F, K]
    omega = (weight / (1 + r2 / sigma ** 2) ** 2).repeat_interleave(2, 1)  # Geman-McClure weights [F, 2K]
    jw = jac * omega[..., None]
    x = u.frame[:, sel.cols]
    smooth_grad = (problem.second_difference.T @ (problem.second_difference @ u.frame))[:, sel.cols] * sel.smooth
    # The L1 prior is on anny's face actions, which are >= 0: a linear term.
    grad = (jw * r[..., None]).sum(1) + sel.prior_l2 * x + 0.5 * sel.prior_l1 + smooth_grad
    eq = _NormalEquations(jw.transpose(1, 2) @ jac + torch.diag(sel.prior_l2), grad, _free(x, grad, sel.low, sel.high))
    if not sel.shared:
        return eq
    js = problem.shared_jacobian(u, sel.shared, rig)  # [F, 2K, U]
    s = sel.shared_vector(u)
    hessian_s = torch.einsum("fru,fr,frv->uv", js, omega, js) + torch.diag(sel.shared_prior)
    grad_s = torch.einsum("fru,fr,fr->u", js, omega, r) + sel.shared_prior * (s - sel.shared_mean)
    return eq._replace(cross=jw.transpose(1, 2) @ js, hessian_s=hessian_s, grad_s=grad_s,
                       free_s=_free(s, grad_s, sel.shared_low, sel.shared_high))


def _free(x: Tensor, grad: Tensor, low: Tensor, high: Tensor) -> Tensor:
    """False where an unknown sits on a bound that the (descent) step would cross."""
    return ~(((x <= low) & (grad > 0)) | ((x >= high) & (grad < 0)))


def _levenberg_marquardt(problem: _Problem, u: _Unknowns, names: tuple[str, ...], sigma: float,
                         smoothness: float, face_only: bool, iterations: int, step: Callable[[int], None]
                         ) -> _Unknowns:
    """Levenberg-Marquardt on the unknowns ``names`` (per-frame ones, and "shape" and
    "log_focal", shared by all frames), on the whole objective of ``_Problem.loss``.

    Gauss-Newton with the Geman-McClure term as iteratively reweighted least squares
    (``_normal_equations``). The smoothness couples each frame to its two neighbours on either
    side, so the per-frame normal equations are block-pentadiagonal and solved exactly in
    ``O(F)`` (``_solve_banded``), frames without observations filled in by the same solve;
    the shared unknowns border that band and are eliminated by their Schur complement
    (``_solve_bordered``). Bounded unknowns (anny's face actions and shape) are projected, and
    held for a step where they sit on a bound it would cross. A step is kept only if it lowers
    the objective, otherwise the damping grows and it is tried again; the stage stops early
    once a step gains almost nothing.
    """
    sel = _Selection(problem, names, smoothness)
    gram = problem.second_difference.T @ problem.second_difference  # [F, F], pentadiagonal
    rig = problem.model.landmark_rig(u.shape)
    cost = problem.loss(u, sigma, smoothness, face_only, rig)
    damping = LM_DAMPING
    for done in range(1, iterations + 1):
        eq = _normal_equations(problem, sel, u, rig, sigma, face_only)
        gain = 0.0
        for _attempt in range(4):
            if sel.shared:
                dx, ds = _solve_bordered(eq.hessian, gram, sel.smooth, eq.free, eq.cross, eq.hessian_s, eq.free_s,
                                         damping, -eq.grad, -eq.grad_s)
            else:
                dx = _solve_banded(eq.hessian, gram, sel.smooth, eq.free, damping, -eq.grad[..., None])[..., 0]
                ds = None
            candidate = sel.moved(u, dx, ds)
            candidate_rig = problem.model.landmark_rig(candidate.shape) if "shape" in sel.shared else rig
            new_cost = problem.loss(candidate, sigma, smoothness, face_only, candidate_rig)
            if new_cost < cost:
                gain = float((cost - new_cost) / cost.clamp_min(1e-30))
                u, rig, cost, damping = candidate, candidate_rig, new_cost, max(damping / 10, 1e-9)
                break
            damping *= 10
        if gain < LM_CONVERGED:  # no step lowers the objective any more: the remaining steps are free
            step(iterations - done + 1)
            break
        step(1)
    return u


def _solve_banded(hessian: Tensor, gram: Tensor, s2: Tensor, free: Tensor, damping: float, rhs: Tensor) -> Tensor:
    """Solve ``(H + damping diag(H)) delta = rhs`` for ``H = blockdiag(hessian) + gram (x) diag(s2)``.

    Args:
        hessian: per-frame blocks ``[F, n, n]`` (data and priors).
        gram: second-difference Gram matrix ``[F, F]`` (pentadiagonal): the smoothness
            couples frame ``f`` with ``f +- 1`` and ``f +- 2``, unknown by unknown (``s2 [n]``).
        free: ``[F, n]`` bool; the others are held (their step is 0).
        rhs: ``[F, n, k]``: k right-hand sides.
    Returns:
        ``delta [F, n, k]``.

    Frames grouped in pairs make the matrix block-tridiagonal (blocks ``[2n, 2n]``), solved
    by block Cholesky: ``F / 2`` sequential steps of small dense products.
    """
    f, n, k = rhs.shape
    m = free.to(rhs.dtype)
    diag = hessian * m[:, :, None] * m[:, None, :] + torch.diag_embed(gram.diagonal()[:, None] * s2 * m)
    scale = diag.diagonal(dim1=1, dim2=2)
    diag = diag + torch.diag_embed(damping * scale + 1e-6 + (1 - m))  # held unknowns: identity rows
    near = gram.diagonal(1)[:, None] * s2 * m[1:] * m[:-1]  # coupling of frame f and f + 1 [F - 1, n]
    far = gram.diagonal(2)[:, None] * s2 * m[2:] * m[:-2]  # of f and f + 2 [F - 2, n]
    rhs = rhs * m[..., None]
    if f % 2:  # pad to whole pairs with a decoupled dummy frame (and its zero couplings)
        eye = torch.eye(n, dtype=rhs.dtype, device=rhs.device)
        diag, rhs = torch.cat([diag, eye[None]]), torch.cat([rhs, rhs.new_zeros(1, n, k)])
        near = torch.cat([near, rhs.new_zeros(1, n)])
        far = torch.cat([far, rhs.new_zeros(f - 1 - len(far), n)])  # f + 1 frames have f - 1 such pairs
    b = len(rhs) // 2
    blocks = rhs.new_zeros(b, 2, n, 2, n)
    blocks[:, 0, :, 0], blocks[:, 1, :, 1] = diag[0::2], diag[1::2]
    blocks[:, 0, :, 1] = blocks[:, 1, :, 0] = torch.diag_embed(near[0::2])
    lower = rhs.new_zeros(b - 1, 2, n, 2, n)  # block (i + 1, i): frames 2i + 2, 2i + 3 against 2i, 2i + 1
    lower[:, 0, :, 0] = torch.diag_embed(far[0::2])
    lower[:, 0, :, 1] = torch.diag_embed(near[1::2])
    lower[:, 1, :, 1] = torch.diag_embed(far[1::2])
    x = _block_tridiagonal_solve(blocks.view(b, 2 * n, 2 * n), lower.view(b - 1, 2 * n, 2 * n),
                                 rhs.view(b, 2 * n, k))
    return x.reshape(-1, n, k)[:f]


def _solve_bordered(hessian: Tensor, gram: Tensor, s2: Tensor, free: Tensor, cross: Tensor, hessian_s: Tensor,
                    free_s: Tensor, damping: float, rhs: Tensor, rhs_s: Tensor) -> tuple[Tensor, Tensor]:
    """``_solve_banded``'s system bordered by ``U`` unknowns all frames share: ``[[A, B],
    [B^T, C]] [dx; ds] = [rhs; rhs_s]`` with ``A`` banded (as there), ``B = cross [F, n, U]``,
    ``C = hessian_s [U, U]`` (damped alike; ``free_s [U]``). ``ds`` from the Schur complement
    ``(C - B^T A^-1 B) ds = rhs_s - B^T A^-1 rhs``, then ``dx = A^-1 (rhs - B ds)``: one banded
    solve with ``1 + U`` right-hand sides. Returns ``(dx [F, n], ds [U])``."""
    ms = free_s.to(cross.dtype)
    cross = cross * ms
    solved = _solve_banded(hessian, gram, s2, free, damping, torch.cat([rhs[..., None], cross], -1))
    z, zc = solved[..., 0], solved[..., 1:]  # A^-1 rhs [F, n], A^-1 B [F, n, U]
    schur = (hessian_s - torch.einsum("fnu,fnv->uv", cross, zc)) * ms[:, None] * ms
    schur = schur + torch.diag(damping * hessian_s.diagonal() * ms + 1e-6 + (1 - ms))
    ds = torch.linalg.solve(schur, (rhs_s - torch.einsum("fnu,fn->u", cross, z)) * ms)
    return z - zc @ ds, ds


def _block_tridiagonal_solve(diag: Tensor, lower: Tensor, rhs: Tensor) -> Tensor:
    """Solve a symmetric positive-definite block-tridiagonal system by block Cholesky.

    Args: diag ``[B, m, m]`` diagonal blocks; lower ``[B - 1, m, m]`` the blocks below them
    (block ``(i + 1, i)``); rhs ``[B, m, k]``. Returns ``[B, m, k]``.
    """
    solve = torch.linalg.solve_triangular
    factors, links, y = [], [], []  # L_ii, L_(i+1)i, forward-substituted rhs
    for i in range(len(diag)):
        block, r = diag[i], rhs[i]
        if i:
            link = solve(factors[-1].T, lower[i - 1], upper=True, left=False)  # lower L_(i-1)(i-1)^-T
            links.append(link)
            block = block - link @ link.T
            r = r - link @ y[-1]
        factors.append(torch.linalg.cholesky_ex(block)[0])  # positive definite: damped, held rows 1
        y.append(solve(factors[-1], r, upper=False))
    x = [solve(factors[-1].T, y[-1], upper=True)]
    for i in range(len(diag) - 2, -1, -1):
        x.append(solve(factors[i].T, y[i] - links[i].T @ x[-1], upper=True))
    return torch.stack(x[::-1])


# Per-frame unknowns packed into the columns of one [F, P] tensor, in this order (width None:
# the fitted face actions), so one Jacobian and one linear system cover them all.
_FRAME_UNKNOWNS: tuple[tuple[str, int | None], ...] = (
    ("rotation", 3), ("translation", 3), ("head", 3), ("neck", 3), ("torso", 3), ("clavicles", 6), ("face", None))

_POSE = ("rotation", "translation", "head", "neck", "torso", "clavicles")
# (name, unknowns, fraction of the iterations, GM sigma in face sizes (None: robust_sigma),
#  face points only), coarse to fine; "shape" and "log_focal" only where fitted.
_STAGES: tuple[tuple[str, tuple[str, ...], float, float | None, bool], ...] = (
    ("head", ("head", "translation"), 0.15, 1.0, True),  # the head may be far from frontal: it leads
    ("pose", _POSE + ("log_focal",), 0.2, 0.5, False),
    ("face", _POSE + ("face", "log_focal"), 0.3, None, False),
    ("shape", _POSE + ("face", "log_focal", "shape"), 0.35, None, False),
)


def fit_sequence(model: UpperBodyModel, observations: Keypoints2D, camera_fov_deg: float | None = None,
                 iterations: int = 30, smoothness: float = 1.0, robust_sigma: float = 0.1,
                 fit_shape: bool = True, progress: Callable[[int, int], None] | None = None,
                 ) -> tuple[UpperBodyParams, CameraTrajectory, FitReport]:
    """Fit ``model`` to the landmarks of all frames at once.

    Args:
        model: the body model (buffers created outside inference mode, as the loaders do).
        observations: landmarks of ``F`` frames.
        camera_fov_deg: vertical field of view of the video's camera; None fits it (from a
            start of 40°; weakly determined, so give it when known).
        iterations: Levenberg-Marquardt iterations over all stages (at most: a stage stops
            early once converged).
        smoothness: weight of the second differences of the per-frame parameters.
        robust_sigma: residual (in face sizes) beyond which a landmark counts as an outlier.
        fit_shape: also fit the shared shape.
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
    # ComfyUI runs nodes under inference_mode: the fit updates its own tensors in place, so
    # they are created here, outside it (no autograd: the solver forms its own derivatives).
    with torch.inference_mode(False), torch.no_grad(), one_torch_thread():
        problem = _Problem(model, observations, camera_fov_deg)
        unfitted = {"shape"} if not fit_shape else set()
        unfitted |= {"log_focal"} if not problem.fit_focal else set()
        total = sum(s[2] for s in _STAGES)
        counts = [max(1, round(iterations * s[2] / total)) for s in _STAGES]
        done, n_total = 0, sum(counts)

        def step(count: int = 1) -> None:
            nonlocal done
            for _ in range(count):  # one call per step, also for the steps a converged stage skips
                done += 1
                if progress is not None:
                    progress(done, n_total)

        u = problem.start
        for (_name, names, _frac, sigma, face_only), n in zip(_STAGES, counts):
            names = tuple(k for k in names if k not in unfitted)
            sigma = sigma if sigma is not None else robust_sigma
            u = _levenberg_marquardt(problem, u, names, sigma, smoothness, face_only, n, step)

        params = problem.params(u).map(lambda t: t.detach().clone())
        err = problem.residuals(u).norm(dim=-1)  # [F, K]
        focal = float(problem.focal(u))
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
