"""SMPL-X, for users with the licensed model files, as the upper-body template.

Files: ``SMPLX_NEUTRAL.npz``, ``SMPLX_MALE.npz`` or ``SMPLX_FEMALE.npz`` from
https://smpl-x.is.tue.mpg.de (registration and licence required; never bundled) in the
pack's ``smplx`` model folder. They are read with numpy without pickle: only the arrays
used are read (the official files also hold pickled dicts, ``joint2num`` and ``part2num``,
which are skipped), and ``.pkl`` files are refused.

SMPL-X is already in the DESIGN world (+Y up, metres, facing +Z, subject's left at +X);
only its head centre moves to the origin. The evaluation is smplx's (shape and expression
blendshapes, joints regressed from the shaped mesh, pose correctives, linear blend skinning)
restricted to the upper-body cut and the posable joints; all other joints stay at zero
(flat hands, eyes forward), which is exact for the cut.

- cut: above the spine2 joint, arms cut 3 cm past the shoulder joints (eyeballs kept);
- shape: ``num_betas`` betas (unbounded, ~N(0, 1));
- face: jaw rotation (axis-angle, radians: ``jaw_pitch`` > 0 opens the mouth) then
  ``num_expressions`` expression coefficients;
- pose: head, neck, torso (spine2 and spine3), clavicles (collars);
- landmarks: SMPL-X's own 51 iBUG face landmarks, the chin from its frontal contour, the
  ears (official 10475-vertex topology only) and the shoulder joints;
- head centre: the midpoint of the ears, or the head joint where there are no ears.
"""
from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import torch
from torch import Tensor

from ..errors import InputError
from .upper_body import (LANDMARKS, UpperBodyModel, UpperBodyParams, cut_mesh, fit_point_regressor,
                         pack_regressors, upper_body_vertices)

GENDERS = ("neutral", "male", "female")
JOINT_NAMES = (
    "pelvis", "left_hip", "right_hip", "spine1", "left_knee", "right_knee", "spine2", "left_ankle",
    "right_ankle", "spine3", "left_foot", "right_foot", "neck", "left_collar", "right_collar", "head",
    "left_shoulder", "right_shoulder", "left_elbow", "right_elbow", "left_wrist", "right_wrist", "jaw",
    "left_eye", "right_eye",
)  # then 15 joints per hand
# Posable joints: (SMPL-X joint, parent among these, pose group, share of its rotation).
SMPLX_JOINTS: tuple[tuple[str, int, str | None, float], ...] = (
    ("base", -1, None, 0.0),
    ("spine2", 0, "torso", 0.5),
    ("spine3", 1, "torso", 0.5),
    ("left_collar", 2, "clavicle_left", 1.0),
    ("right_collar", 2, "clavicle_right", 1.0),
    ("neck", 2, "neck", 1.0),
    ("head", 5, "head", 1.0),
    ("jaw", 6, "jaw", 1.0),
)
REQUIRED_ARRAYS = ("v_template", "f", "shapedirs", "posedirs", "J_regressor", "weights", "kintree_table",
                   "lmk_faces_idx", "lmk_bary_coords")
OFFICIAL_VERTICES = 10475
EAR_VERTICES = {"ear_left": 6, "ear_right": 616}  # smplx's vertex_ids["smplx"] lear / rear
FIRST_STATIC_IBUG = 17  # SMPL-X's static landmarks are iBUG-68 points 17..67
SHAPE_SPACE, EXPRESSION_SPACE = 300, 100


def smplx_file_name(gender: str) -> str:
    return f"SMPLX_{gender.upper()}.npz"


def load_smplx(folder: str | os.PathLike, gender: str = "neutral", num_betas: int = 10,
               num_expressions: int = 10, input_name: str = "body_model",
               dtype: torch.dtype = torch.float32) -> SmplxUpperBody:
    """The SMPL-X upper body from ``folder/SMPLX_<GENDER>.npz``.

    Raises InputError (for ``input_name``) naming the folder and the expected file when it
    is missing, and the array when the file is not a usable SMPL-X npz.
    """
    if gender not in GENDERS:
        raise InputError("gender", f"'{gender}' is not one of {', '.join(GENDERS)}.")
    folder = Path(folder)
    name = smplx_file_name(gender)
    path = folder / name
    hint = (f"Download SMPL-X (npz) from https://smpl-x.is.tue.mpg.de (free registration, "
            f"non-commercial licence) and put {name} in the folder '{folder}'.")
    if not path.is_file():
        pkl = path.with_suffix(".pkl")
        if pkl.is_file():
            raise InputError(input_name, f"found {pkl.name} in '{folder}' but pickled .pkl files are not "
                                         f"loaded (they can run code); use the .npz release: {name}. {hint}")
        raise InputError(input_name, f"SMPL-X file '{name}' not found in the folder '{folder}'. {hint}")
    arrays = read_smplx_npz(path, input_name)
    with torch.inference_mode(False):
        return SmplxUpperBody(arrays, num_betas=num_betas, num_expressions=num_expressions, dtype=dtype)


def read_smplx_npz(path: str | os.PathLike, input_name: str = "body_model") -> dict[str, np.ndarray]:
    """The arrays SMPL-X needs, read without pickle."""
    optional = ("dynamic_lmk_faces_idx", "dynamic_lmk_bary_coords")
    try:
        with np.load(path, allow_pickle=False) as npz:
            missing = [k for k in REQUIRED_ARRAYS if k not in npz.files]
            if missing:
                raise InputError(input_name, f"'{path}' is not an SMPL-X model file: no array "
                                             f"{', '.join(repr(k) for k in missing)}.")
            return {k: np.asarray(npz[k]) for k in REQUIRED_ARRAYS + optional if k in npz.files}
    except InputError:
        raise
    except (ValueError, OSError, EOFError) as e:  # object arrays need pickle; not a zip
        raise InputError(input_name, f"cannot read '{path}' as an SMPL-X npz without pickle: {e}") from e


class SmplxUpperBody(UpperBodyModel):
    """SMPL-X cut to the upper-body template (see the module docstring).

    ``source_index [V]``: the SMPL-X vertex of each template vertex.
    """

    name = "smplx"
    jaw_open_label = "jaw_pitch"

    def __init__(self, arrays: dict[str, np.ndarray], num_betas: int = 10, num_expressions: int = 10,
                 dtype: torch.dtype = torch.float32):
        super().__init__()
        a = {k: torch.from_numpy(np.asarray(v)) for k, v in arrays.items()}
        v_template = a["v_template"].double()
        n_vertices = len(v_template)
        shapedirs = a["shapedirs"].double().reshape(n_vertices, 3, -1)
        # smplx's layout rule: 300 shape + 100 expression dirs, or the old 10 + 10.
        shape_space, expr_space = ((SHAPE_SPACE, EXPRESSION_SPACE) if shapedirs.shape[-1] >= 400 else (10, 10))
        num_betas, num_expressions = min(num_betas, shape_space), min(num_expressions, expr_space)
        betas_dirs = shapedirs[..., :num_betas].permute(2, 0, 1)  # [B, V, 3]
        expr_dirs = shapedirs[..., shape_space:shape_space + num_expressions].permute(2, 0, 1)
        j_reg = a["J_regressor"].double()
        joints = j_reg @ v_template
        parents = a["kintree_table"][0].long().tolist()
        parents[0] = -1
        weights = a["weights"].double()
        self.shape_labels = [f"beta_{i:03d}" for i in range(num_betas)]
        self.face_labels = ["jaw_pitch", "jaw_yaw", "jaw_roll"] + [f"expression_{i:03d}" for i in range(num_expressions)]
        self.joint_parents = [p for _n, p, _g, _s in SMPLX_JOINTS]
        self.joint_groups = [g for _n, _p, g, _s in SMPLX_JOINTS]
        self.joint_shares = [s for _n, _p, _g, s in SMPLX_JOINTS]

        def descendants(root: int) -> list[int]:
            out = [root]
            for j, p in enumerate(parents):  # SMPL-X lists parents before children
                if p in out and j not in out:
                    out.append(j)
            return out

        index = {n: i for i, n in enumerate(JOINT_NAMES)}
        shoulders, elbows = ([joints[index[f"{s}_{part}"]] for s in ("left", "right")] for part in ("shoulder", "elbow"))
        arm = torch.stack([weights[:, descendants(index[f"{s}_shoulder"])].sum(1) for s in ("left", "right")], 1)
        keep = upper_body_vertices(v_template, arm, torch.stack(shoulders), torch.stack(elbows),
                                   floor=float(joints[index["spine2"], 1]))
        faces, used = cut_mesh(a["f"].long(), keep)

        # Each joint's weight goes to its nearest posable ancestor (exact at zero pose).
        posable = {n: k for k, (n, *_rest) in enumerate(SMPLX_JOINTS)}
        target = []
        for j in range(len(parents)):
            while j >= 0 and (j >= len(JOINT_NAMES) or JOINT_NAMES[j] not in posable):
                j = parents[j]
            target.append(posable[JOINT_NAMES[j]] if j >= 0 else 0)
        merged = torch.zeros(n_vertices, len(SMPLX_JOINTS), dtype=torch.float64)
        merged.index_add_(1, torch.tensor(target), weights)
        kept = [index[n] if n != "base" else 0 for n, *_rest in SMPLX_JOINTS]

        # Pose correctives of the posable joints (smplx: feature (R_j - I) of joints 1.., 9 each).
        posedirs = a["posedirs"].double().reshape(n_vertices * 3, -1).T  # [9 (J - 1), V * 3]
        pose_rows = torch.cat([torch.arange(9) + 9 * (j - 1) for j in kept[1:]])
        pose_dirs = posedirs[pose_rows].view(-1, n_vertices, 3)[:, used]

        template = v_template[used]
        landmark_index, landmark_weight, center_index, center_weight = self._landmark_regressors(
            a, faces, used, template, merged[used], joints, index, n_vertices)
        cast = {k: v.to(dtype) for k, v in dict(
            template=template, shape_dirs=betas_dirs[:, used], face_dirs=expr_dirs[:, used],
            joint_template=joints[kept], joint_shape_dirs=torch.einsum("jv,bvd->bjd", j_reg, betas_dirs)[:, kept],
            joint_face_dirs=torch.einsum("jv,bvd->bjd", j_reg, expr_dirs)[:, kept], skin_weights=merged[used],
            pose_dirs=pose_dirs, landmark_weight=landmark_weight, center_weight=center_weight).items()}
        self._init_buffers(faces=faces, landmark_index=landmark_index, center_index=center_index,
                           source_index=used, **cast)

    def _landmark_regressors(self, a: dict[str, Tensor], faces_cut: Tensor, used: Tensor, template: Tensor,
                             weights: Tensor, joints: Tensor, index: dict[str, int],
                             n_vertices: int) -> tuple[Tensor, Tensor, Tensor, Tensor]:
        new_index = torch.full((n_vertices,), -1, dtype=torch.long)
        new_index[used] = torch.arange(len(used))
        f = a["f"].long()

        def on_faces(face_ids: Tensor, bary: Tensor) -> tuple[Tensor, Tensor]:
            return new_index[f[face_ids.long()]].flatten(), bary.double().flatten()

        points: dict[int, tuple[Tensor, Tensor]] = {}  # iBUG-68 index -> (vertices, weights)
        for i, (face_id, bary) in enumerate(zip(a["lmk_faces_idx"].reshape(-1), a["lmk_bary_coords"].reshape(-1, 3))):
            points[FIRST_STATIC_IBUG + i] = on_faces(face_id[None], bary)
        if "dynamic_lmk_faces_idx" in a and "dynamic_lmk_bary_coords" in a:  # frontal contour's chin
            points[8] = on_faces(a["dynamic_lmk_faces_idx"][0, 8][None], a["dynamic_lmk_bary_coords"][0, 8])

        regressors: dict[str, tuple[Tensor, Tensor]] = {}
        for lm in LANDMARKS:
            if lm.ibug68 and all(p in points for p in lm.ibug68):
                idx = torch.cat([points[p][0] for p in lm.ibug68])
                w = torch.cat([points[p][1] for p in lm.ibug68]) / len(lm.ibug68)
                if (idx >= 0).all():
                    regressors[lm.name] = idx, w
        if n_vertices == OFFICIAL_VERTICES:
            for name, v in EAR_VERTICES.items():
                if new_index[v] >= 0:
                    regressors[name] = new_index[v][None], torch.ones(1, dtype=torch.float64)
        posable = [n for n, *_rest in SMPLX_JOINTS]
        for side in ("left", "right"):
            carried = torch.nonzero(weights[:, posable.index(f"{side}_collar")] > 0.5)[:, 0]
            regressors[f"shoulder_{side}"] = self._fit(template, carried, joints[index[f"{side}_shoulder"]])

        self.landmark_names = [lm.name for lm in LANDMARKS if lm.name in regressors]
        idx, w = pack_regressors(regressors, self.landmark_names, torch.float64)
        if "ear_left" in regressors and "ear_right" in regressors:
            (li, lw), (ri, rw) = regressors["ear_left"], regressors["ear_right"]
            center = torch.cat([li, ri]), torch.cat([lw, rw]) / 2
        else:
            carried = torch.nonzero(weights[:, posable.index("head")] > 0.5)[:, 0]
            center = self._fit(template, carried, joints[index["head"]])
        return idx, w, center[0], center[1]

    @staticmethod
    def _fit(template: Tensor, carried: Tensor, point: Tensor) -> tuple[Tensor, Tensor]:
        """Affine weights of the 48 vertices nearest ``point`` among ``carried``."""
        nearest = carried[(template[carried] - point).norm(dim=1).argsort()[:48]]
        return fit_point_regressor(template, nearest, point)

    def face_coefficients(self, face: Tensor) -> Tensor:
        return face[:, 3:]

    def group_rotations(self, params: UpperBodyParams) -> dict[str, Tensor]:
        return {**super().group_rotations(params), "jaw": params.face[:, :3]}

    def pose_features(self, rotations: Tensor) -> Tensor:
        """smplx's corrective features: ``R_j - I`` of every joint but the root ``[F, 9 (J - 1)]``."""
        eye = torch.eye(3, dtype=rotations.dtype, device=rotations.device)
        return (rotations[:, 1:] - eye).flatten(1)
