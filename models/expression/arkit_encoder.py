"""The default expression encoder: anny's 52 ARKit face-action weights fitted to MediaPipe's
478 face-mesh points, jointly with the head pose and the identity, so the code holds the
expression only (D = 52, values in [0, 1]).

The model of the observations (all frames batched): MediaPipe point ``k`` lies on anny's
surface where :mod:`.face_correspondence` placed it, so in frame ``f``

    X_k  = M_k + B_k b + E_k e_f                       rest position (metres)
    x_fk = R_f (X_k - X_0) + t_f                       the head in camera space
    u_fk = focal * (x, y) / z + principal              pixels

``M`` and ``B``: the mean and the principal directions of the points over random anny
identities (``_identity_basis``), ``b`` the identity shared by all frames; ``E``: anny's
face blendshapes at the points, ``e_f`` the free ARKit weights in [0, 1]; ``R_f, t_f`` the
rigid head pose (the points are all carried by anny's head joint). The focal length is given
(``fov_degrees``) or fitted, one for all frames.

The fit minimises a robust (pseudo-Huber) reprojection error, in units of the face's size
in the image, plus priors: L1 + L2 pulling the weights toward 0 (scaled by how far each
action moves the points, so small actions such as the brows are not shrunk away first),
a mild quadratic penalty on frame-to-frame changes (weak enough that a two-frame blink
survives; off for unrelated images) and a Gaussian prior on the identity. Solved by Adam
(hand-written schedule, weights projected onto [0, 1] after every step), first the pose alone,
then everything; all frames at once.

Which actions are free (``FREE_ACTIONS``, 29): those that move the detected points in a way
the pose, the identity and the other actions do not, and that MediaPipe follows on renders of
anny (measured by detecting each action alone); the other 23 stay 0. Left out: ``eyeLook*`` (the iris points are the noisiest, and the lids follow the gaze like a blink),
``cheekSquint*`` and ``noseSneer*`` (MediaPipe's points barely move: gain < 0.2),
``mouthDimple*`` and ``mouthPress*`` (the same corner motion as a smile), ``mouthRoll*`` and
``mouthShrug*`` (seen only in depth; in the image they are ``mouthClose``), ``jawForward`` and
``cheekPuff`` (depth only), ``tongueOut`` (anny's tongue is cut away).

With only the 32 named landmarks (``Keypoints2D``, e.g. DWPose), 27 of them are face-mesh
points: jaw, smiles, mouth corners and lip centres, blinks (one point per lid) and brows
(three points per brow) remain identifiable, coarsely.

Frames without a face are fitted out and filled by linear interpolation of the codes of
their nearest frames with one (listed in the report).
"""
from __future__ import annotations

import math
import os
import time
from dataclasses import dataclass, field
from typing import Callable

import torch
from torch import Tensor

from ..body.anny_model import ARKIT_FACE_ACTIONS, AnnyUpperBody, load_anny
from ..body.upper_body import axis_angle_to_matrix
from ..camera.trajectory import FRONTAL_W2C_ROTATION, focal_from_fov, fov_from_focal
from ..errors import InputError
from ..threads import one_torch_thread
from .codes import ExpressionCodes
from ..tracking.keypoints import Keypoints2D, _frame_list
from .arkit_codes import arkit_codes
from .face_correspondence import IRISES, FaceCorrespondence, load_face_correspondence
from .face_mesh import FaceMeshDetections, detect_face_mesh, from_keypoints

Progress = Callable[[int, int], None]

FREE_ACTIONS: tuple[str, ...] = (
    "browDownLeft", "browDownRight", "browInnerUp", "browOuterUpLeft", "browOuterUpRight",
    "eyeBlinkLeft", "eyeBlinkRight", "eyeSquintLeft", "eyeSquintRight", "eyeWideLeft", "eyeWideRight",
    "jawLeft", "jawOpen", "jawRight",
    "mouthClose", "mouthFrownLeft", "mouthFrownRight", "mouthFunnel", "mouthLeft", "mouthRight",
    "mouthLowerDownLeft", "mouthLowerDownRight", "mouthPucker", "mouthSmileLeft", "mouthSmileRight",
    "mouthStretchLeft", "mouthStretchRight", "mouthUpperUpLeft", "mouthUpperUpRight",
)
DEFAULT_FOV = 35.0  # degrees: the starting guess when the field of view is fitted
MIN_POINTS = 8  # observed points a frame needs to be fitted
# MediaPipe's feature contours (lips, eyes, brows) and nose line: points it is trained to put
# on visible edges. The rest of its mesh is interpolated between them and follows the
# contours loosely, so it weighs less (``FitConfig.interior_weight``).
CONTOURS = (
    61, 146, 91, 181, 84, 17, 314, 405, 321, 375, 291, 185, 40, 39, 37, 0, 267, 269, 270, 409,
    78, 95, 88, 178, 87, 14, 317, 402, 318, 324, 308, 191, 80, 81, 82, 13, 312, 311, 310, 415,
    263, 249, 390, 373, 374, 380, 381, 382, 362, 466, 388, 387, 386, 385, 384, 398,
    33, 7, 163, 144, 145, 153, 154, 155, 133, 246, 161, 160, 159, 158, 157, 173,
    276, 283, 282, 295, 285, 300, 293, 334, 296, 336, 46, 53, 52, 65, 55, 70, 63, 105, 66, 107,
    1, 2, 4, 5, 6, 19, 94, 98, 168, 195, 197, 327)
# Random anny identities behind the identity basis.
IDENTITY_SAMPLES = 256
IDENTITY_COMPONENTS = 40
LOCAL_CHANGE_STD = 0.3
# Adam step sizes per parameter (each of order "a visible change in a few dozen steps").
STEP_SIZES = {"rotation": 0.02, "offset": 0.002, "log_depth": 0.01, "weights": 0.05, "identity": 0.05,
              "log_focal": 0.01}


@dataclass(frozen=True)
class FitConfig:
    """Weights and schedule of the fit (tuned on painted anny renders, see the tests).

    Attributes:
        robust_scale: residual (in face sizes: the RMS distance of the points from their
            centroid) where the pseudo-Huber loss turns from quadratic to linear.
        interior_weight: weight of the mesh points off MediaPipe's contours (contours: 1).
        l1, l2: priors on the weights, per frame and action, relative to one point's loss.
        effect_power: the priors scale with (how far an action moves the points, relative to
            the median action) to this power.
        smoothness: penalty on squared frame-to-frame changes of the weights (video only).
        identity: Gaussian prior on the identity coefficients (in standard deviations).
        fov_prior: prior on the log focal length away from ``DEFAULT_FOV``'s, per frame.
        pose_steps, steps: Adam steps of the pose-only and of the joint stage.
        step_scale: multiplies every step size of ``STEP_SIZES``.
    """

    robust_scale: float = 0.01
    interior_weight: float = 0.3
    l1: float = 50.0
    l2: float = 2.0
    effect_power: float = 0.5
    smoothness: float = 2.0
    identity: float = 20.0
    fov_prior: float = 50.0
    pose_steps: int = 30
    steps: int = 150
    step_scale: float = 1.0


@dataclass
class ArkitFitReport:
    """What the fit found besides the codes.

    Attributes:
        filled_frames: frames without a face, whose codes were interpolated.
        residual_px: per-frame RMS reprojection error in pixels ``[F]`` (NaN on filled frames).
        head_rotation: head rotation relative to the camera per frame ``[F, 3, 3]``, in the
            DESIGN world's axes of a frontal camera (x right, y up, z toward the camera; to
            OpenCV camera axes: ``FRONTAL_W2C_ROTATION @ R``); identity = upright, facing the
            camera; filled frames: the nearest fitted frame's.
        fov_degrees: the vertical field of view used (given or fitted).
        identity: the identity coefficients ``[K]`` (standard deviations of the basis).
        seconds: wall time of the fit (without detection).
        notes: for the user (filled frames, detector notes).
    """

    filled_frames: list[int]
    residual_px: Tensor
    head_rotation: Tensor
    fov_degrees: float
    identity: Tensor
    seconds: float
    notes: list[str] = field(default_factory=list)


class ArkitEncoder:
    """Fits anny's ARKit face actions to face-mesh detections (see the module docstring).

    Build with :meth:`from_cache` (loads anny and the face correspondence, building what is
    missing) or from a loaded model and correspondence. The encoder keeps only small tensors
    (the points' blendshapes), not the model.
    """

    def __init__(self, model: AnnyUpperBody, correspondence: FaceCorrespondence,
                 free_actions: tuple[str, ...] = FREE_ACTIONS, config: FitConfig = FitConfig()):
        unknown = [a for a in free_actions if a not in ARKIT_FACE_ACTIONS]
        if unknown or not free_actions:
            raise ValueError(f"free_actions must be ARKit actions, got unknown {unknown}")
        self.free_actions = tuple(free_actions)
        self.config = config
        with torch.inference_mode(False), torch.no_grad():
            self._build(model, correspondence)

    @classmethod
    def from_cache(cls, cache_dir: str | os.PathLike, progress: Progress | None = None, **kwargs) -> ArkitEncoder:
        """anny and the face correspondence from anny's cache folder (built there when missing)."""
        model = load_anny(cache_dir, progress)
        return cls(model, load_face_correspondence(cache_dir, model, progress), **kwargs)

    def _build(self, model: AnnyUpperBody, corr: FaceCorrespondence) -> None:
        """Gather the blendshapes at the points and the identity basis (plain tensors, made
        outside inference mode so the fit can differentiate through them)."""
        keep = ~torch.isin(corr.point_index, torch.tensor(IRISES))  # irises: only the gaze moves them
        self.point_index = corr.point_index[keep].clone()
        feature = torch.isin(self.point_index, torch.tensor(CONTOURS))
        self.point_weight = torch.where(feature, 1.0, self.config.interior_weight)
        gather = lambda values: corr.gather(values.detach())[..., keep, :].clone().float()  # noqa: E731
        free = [ARKIT_FACE_ACTIONS.index(a) for a in self.free_actions]
        self.free_index = torch.tensor(free)
        self.face_dirs = gather(model.face_dirs[free])  # [A, N, 3]
        effect = self.face_dirs.square().sum((1, 2)).sqrt()
        self.prior_scale = (effect / effect.median()).clamp(min=1e-3) ** self.config.effect_power  # [A]
        self.mean_shape, self.identity_basis = _identity_basis(model, gather(model.template), gather(model.shape_dirs))
        self.centre = self.mean_shape.mean(0)  # the rotation pivot: the points' centroid
        self.scale = float((self.mean_shape - self.centre).norm(dim=1).square().mean().sqrt())  # metres

    # -- public --------------------------------------------------------------------------------
    def encode_images(self, images: Tensor, fov_degrees: float | None = None, video: bool = True,
                      progress: Progress | None = None) -> tuple[ExpressionCodes, ArkitFitReport]:
        """Detect the face mesh in ComfyUI IMAGE frames ``[F, H, W, C]`` and fit (see :meth:`fit`).

        Every frame is detected on its own (MediaPipe's tracking mode carries the previous
        frame's landmarks into the next crop and lags the brows: on the test renders the
        browInnerUp correlation drops from 0.97 to 0.86 with it). ``progress(done, total)``
        counts the frames detected, then the fit's steps.
        """
        frames, steps = int(images.shape[0]), self.config.pose_steps + self.config.steps
        report = (lambda offset: lambda done, _total: progress(offset + done, frames + steps)) if progress else None
        detections = detect_face_mesh(images, video=False, progress=report and report(0))
        return self.fit(detections, fov_degrees, video=video, progress=report and report(frames))

    def fit(self, landmarks: FaceMeshDetections | Keypoints2D, fov_degrees: float | None = None,
            video: bool = True, progress: Progress | None = None) -> tuple[ExpressionCodes, ArkitFitReport]:
        """ARKit weights of every frame.

        Args:
            landmarks: MediaPipe face-mesh detections, or the 32 named landmarks (e.g. from
                DWPose; see the module docstring for what they can tell).
            fov_degrees: the camera's vertical field of view; None fits it (one for all frames).
            video: frames are consecutive (a mild temporal smoothness); False: unrelated images.
            progress: ``progress(done, total)`` every 20 steps; may raise to cancel.
        Returns:
            ``ExpressionCodes`` ``[F, 52]`` (encoder ``"anny-arkit52"``) and an ``ArkitFitReport``.
        Raises:
            InputError: ``images`` when no frame has a face, ``fov_degrees`` out of range.
        """
        if isinstance(landmarks, Keypoints2D):
            landmarks = from_keypoints(landmarks)
        if fov_degrees is not None and not 1.0 < float(fov_degrees) < 179.0:
            raise InputError("fov_degrees", f"must be between 1 and 179 degrees, got {fov_degrees!r}.")
        start = time.perf_counter()
        observed = landmarks.confidence[:, self.point_index]  # [F, N]
        present = (observed > 0).sum(1) >= MIN_POINTS
        if not bool(present.any()):
            raise InputError("images", f"no face found in any of the {landmarks.frames} frames: the expression "
                                       "needs a face seen roughly from the front (and filling about a tenth of "
                                       "the frame or more) in at least one frame.")
        frames = torch.nonzero(present)[:, 0]
        with torch.inference_mode(False), torch.enable_grad(), one_torch_thread():
            obs = landmarks.points[frames][:, self.point_index].clone().float()
            conf = (observed[frames] * self.point_weight).clone().float()
            fitted = self._solve(obs, conf, landmarks.width, landmarks.height, fov_degrees, video, progress)
        weights, rotation, residual = _fill_missing(frames, landmarks.frames, fitted.weights, fitted.rotation,
                                                    fitted.residual)
        codes = torch.zeros(landmarks.frames, len(ARKIT_FACE_ACTIONS))
        codes[:, self.free_index] = weights
        filled = torch.nonzero(~present)[:, 0].tolist()
        notes = list(landmarks.notes)
        if filled:
            notes.append(f"no face in {len(filled)} frame(s) ({_frame_list(filled)}): their expression was "
                         "interpolated from the nearest frames with one.")
        report = ArkitFitReport(filled, residual, rotation, fitted.fov, fitted.identity,
                                time.perf_counter() - start, notes)
        return arkit_codes(codes), report

    # -- the fit -------------------------------------------------------------------------------
    def _solve(self, obs: Tensor, conf: Tensor, width: int, height: int, fov_degrees: float | None,
               video: bool, progress: Progress | None) -> _Solution:
        """Fit frames with a face: observed points ``obs [F, N, 2]`` (pixels), weights ``conf [F, N]``."""
        cfg = self.config
        num_frames = obs.shape[0]
        principal = torch.tensor([width / 2, height / 2])
        focal0 = float(focal_from_fov(DEFAULT_FOV if fov_degrees is None else fov_degrees)) * height
        # Per-frame face size in pixels: residuals are measured in it (resolution independent).
        w = conf / conf.sum(1, keepdim=True)
        centroid = (w[..., None] * obs).sum(1)  # [F, 2]
        size = ((obs - centroid[:, None]).square().sum(-1) * w).sum(1).sqrt()  # [F]
        p = {
            "rotation": torch.zeros(num_frames, 3),  # axis-angle after the frontal camera's turn
            "offset": (centroid - principal) / focal0,  # image-plane position of the pivot / depth
            "log_depth": torch.log(focal0 * self.scale / size),  # rough distance from the face's size
            "weights": torch.zeros(num_frames, len(self.free_actions)),
            "identity": torch.zeros(len(self.identity_basis)),
            "log_focal": torch.zeros(()),
        }
        for t in p.values():
            t.requires_grad_(True)
        frontal = FRONTAL_W2C_ROTATION.float()

        def project() -> tuple[Tensor, Tensor, Tensor]:
            rest = self.mean_shape - self.centre + (p["identity"] @ self.identity_basis.flatten(1)).view(-1, 3)
            x = rest + (p["weights"] @ self.face_dirs.flatten(1)).view(num_frames, -1, 3)  # [F, N, 3]
            rot = frontal @ axis_angle_to_matrix(p["rotation"])  # [F, 3, 3]
            depth = p["log_depth"].exp()
            trans = torch.cat([p["offset"] * depth[:, None], depth[:, None]], 1)
            cam = x @ rot.transpose(-1, -2) + trans[:, None]
            focal = focal0 * p["log_focal"].exp()
            return focal * cam[..., :2] / cam[..., 2:] + principal, rot, focal

        # Priors relative to the data: with fewer points observed (named landmarks only), the
        # same evidence for an action is a smaller part of the loss.
        observed = float(conf.sum(1).mean() / self.point_weight.sum())
        l1, l2 = cfg.l1 * observed, cfg.l2 * observed
        smoothness = cfg.smoothness * observed if video else 0.0

        def loss(stage: str) -> Tensor:
            uv = project()[0]
            r = (uv - obs).norm(dim=-1) / size[:, None] / cfg.robust_scale  # [F, N]
            data = (conf * ((1 + r.square()).sqrt() - 1)).sum()
            if stage == "pose":
                return data
            e = p["weights"]
            prior = ((l1 * e + l2 * e.square()) * self.prior_scale).sum()
            smooth = smoothness * (e[1:] - e[:-1]).square().sum()
            ident = cfg.identity * p["identity"].square().sum()
            fov = cfg.fov_prior * num_frames * p["log_focal"].square()
            return data + prior + smooth + ident + fov

        def groups(names: tuple[str, ...]) -> list[dict]:
            return [{"params": [p[k]], "lr": STEP_SIZES[k] * cfg.step_scale} for k in names]

        joint = ("rotation", "offset", "log_depth", "weights", "identity")
        joint += ("log_focal",) if fov_degrees is None else ()
        total = cfg.pose_steps + cfg.steps
        _adam(lambda: loss("pose"), groups(("rotation", "offset", "log_depth")), cfg.pose_steps, p["weights"],
              progress, 0, total)
        _adam(lambda: loss("all"), groups(joint), cfg.steps, p["weights"], progress, cfg.pose_steps, total)

        with torch.no_grad():
            uv, rot, focal = project()
            residual = ((uv - obs).square().sum(-1) * conf).sum(1).div(conf.sum(1)).sqrt()
            return _Solution(p["weights"].detach().clone(), frontal.T @ rot, residual,
                             float(fov_from_focal(float(focal) / height)), p["identity"].detach().clone())


@dataclass
class _Solution:
    """The fitted frames' weights ``[F', A]``, camera-space head rotations ``[F', 3, 3]`` and
    RMS residuals in pixels ``[F']``; the fov in degrees and the identity ``[K]``."""

    weights: Tensor
    rotation: Tensor
    residual: Tensor
    fov: float
    identity: Tensor


def _adam(loss: Callable[[], Tensor], groups: list[dict], steps: int, weights: Tensor,
          progress: Progress | None, done: int, total: int) -> None:
    """Adam over parameter ``groups``; the face-action ``weights`` projected onto [0, 1] after
    each step. A short warm-up (Adam's first steps move every parameter by its full step size,
    which for 30 actions at once throws the pose off), then a cosine decay to settle."""
    if steps <= 0:
        return
    optimiser = torch.optim.Adam(groups)
    warm = max(steps // 10, 1)
    schedule = torch.optim.lr_scheduler.LambdaLR(
        optimiser, lambda t: min(1.0, (t + 1) / warm) * 0.5 * (1 + math.cos(math.pi * t / steps)))
    for step in range(steps):
        optimiser.zero_grad(set_to_none=True)
        loss().backward()
        optimiser.step()
        schedule.step()
        with torch.no_grad():
            weights.clamp_(0, 1)
        if progress is not None and ((step + 1) % 20 == 0 or step + 1 == steps):
            progress(done + step + 1, total)


def _identity_basis(model: AnnyUpperBody, template: Tensor, shape_dirs: Tensor, samples: int = IDENTITY_SAMPLES,
                    components: int = IDENTITY_COMPONENTS) -> tuple[Tensor, Tensor]:
    """The points' mean ``[N, 3]`` and principal identity directions ``[K, N, 3]`` (each scaled
    to one standard deviation) over random anny identities: phenotypes uniform in [0, 1],
    local changes normal with deviation ``LOCAL_CHANGE_STD`` (clipped to [-1, 1]); a fixed
    seed, so every encoder has the same basis.

    Why a basis and not anny's 150 parameters: one matrix product per step instead of anny's
    phenotype interpolation (half the cost of a step), and a prior that knows which
    combinations of the parameters make a plausible face.
    """
    g = torch.Generator().manual_seed(0)
    n_phen = len(model.phenotype_labels)
    phenotypes = torch.rand(samples, n_phen, generator=g)
    local = (torch.randn(samples, len(model.shape_labels) - n_phen, generator=g) * LOCAL_CHANGE_STD).clamp(-1, 1)
    coefficients = torch.stack([model.shape_coefficients(torch.cat([ph, lc]).to(model.template))
                                for ph, lc in zip(phenotypes, local)]).float()  # [samples, C]
    points = template.flatten() + coefficients @ shape_dirs.flatten(1)  # [samples, N * 3]
    mean = points.mean(0)
    _u, sigma, v = torch.linalg.svd(points - mean, full_matrices=False)
    basis = v[:components] * (sigma[:components, None] / math.sqrt(samples - 1))
    return mean.view(-1, 3), basis.view(components, -1, 3)


def _fill_missing(frames: Tensor, num_frames: int, weights: Tensor, rotation: Tensor,
                  residual: Tensor) -> tuple[Tensor, Tensor, Tensor]:
    """Values of the fitted ``frames`` (ascending) spread to all ``num_frames``: weights
    linearly interpolated (held beyond the ends), rotations of the nearest fitted frame,
    residual NaN where not fitted."""
    at = torch.arange(num_frames, dtype=torch.float32)
    known = frames.float()
    right = torch.searchsorted(known, at).clamp(max=len(known) - 1)  # first fitted frame >= at, or the last
    left = torch.where(known[right] <= at, right, (right - 1).clamp(min=0))  # equal, beyond the end, or before
    span = (known[right] - known[left]).clamp(min=1)
    alpha = torch.where(right == left, 0.0, ((at - known[left]) / span).clamp(0, 1))[:, None]
    out = (1 - alpha) * weights[left] + alpha * weights[right]
    nearest = torch.where(alpha[:, 0] < 0.5, left, right)
    res = torch.full((num_frames,), float("nan"))
    res[frames] = residual
    return out, rotation[nearest], res
