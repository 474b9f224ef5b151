"""The upper-body template shared by the body models: parameters, landmarks, skinning.

The paper renders normal maps of an upper-body template (bald head, neck, shoulders, upper
torso, expressive face) tracked on the driving video. Every body model here (anny, SMPL-X)
is cut to that template and evaluated the same way:

    rest   = template + shape blendshapes(shape) + face blendshapes(face)     [F, V, 3]
    posed  = linear blend skinning of rest by the per-frame joint rotations    [F, V, 3]
    world  = R_global (posed - head_center) + t_global                         [F, V, 3]

World (DESIGN.md): right-handed, metres, +Y up, the subject faces +Z, so the subject's left
is +X. With zero pose and translation the model stands upright facing +Z and its head
centre (``head_center``: per model, documented there) is at the origin for every shape,
so DESIGN's default camera on +Z looking at the origin frames the face.

Rotations are axis-angle vectors in world axes (radians): a joint's rotation turns
everything it carries about that joint, after its parents' rotations (the SMPL
convention; a yaw of the head is ``head = (0, yaw, 0)``). Neck and torso rotations are
shared equally by the model's neck and spine joints, so a bend is smooth and their
composition is exactly the given rotation.

Landmarks are fixed sparse linear combinations of the output vertices (barycentric points
on the surface, or affine combinations for joint-like points such as shoulders), so they
are differentiable and follow every pose and shape. ``LANDMARKS`` names them and maps each
to MediaPipe's 478-point face mesh, its 33-point pose, the iBUG-68 face points (DWPose,
SMPL-X) and OpenPose COCO-18 body points.

The tracker evaluates only the landmarks, thousands of times: ``posed_landmarks`` folds the
landmark weights into the skinning weights and the blendshapes once (at construction), so a
landmark is a few joint-space offsets moved by the joint rotations, with no vertex in sight
(``LandmarkRig``; derivation in ``UpperBodyModel._fold_landmarks``).
"""
from __future__ import annotations

import math
from dataclasses import dataclass, fields
from typing import Callable, NamedTuple

import torch
from torch import Tensor


class Landmark(NamedTuple):
    """One named landmark and where detectors put it (None / () where they do not)."""

    name: str
    mediapipe_face: int | None  # index into MediaPipe face mesh (478 points)
    mediapipe_pose: int | None  # index into MediaPipe / BlazePose pose (33 points)
    ibug68: tuple[int, ...]  # iBUG-68 points whose mean is this landmark (DWPose face, SMPL-X)
    openpose18: int | None  # OpenPose COCO-18 body index


# "left"/"right" are the subject's (MediaPipe and iBUG use the same convention): the
# subject's left eye is at +X and appears on the right of a frontal image.
LANDMARKS: tuple[Landmark, ...] = (
    Landmark("nose_tip", 1, 0, (30,), 0),
    Landmark("nose_bridge", 168, None, (27,), None),
    Landmark("subnasale", 2, None, (33,), None),
    Landmark("nose_ala_right", 98, None, (31,), None),
    Landmark("nose_ala_left", 327, None, (35,), None),
    Landmark("eye_right_outer", 33, 6, (36,), None),
    Landmark("eye_right_inner", 133, 4, (39,), None),
    Landmark("eye_right_upper", 159, None, (37, 38), None),
    Landmark("eye_right_lower", 145, None, (40, 41), None),
    Landmark("eye_left_inner", 362, 1, (42,), None),
    Landmark("eye_left_outer", 263, 3, (45,), None),
    Landmark("eye_left_upper", 386, None, (43, 44), None),
    Landmark("eye_left_lower", 374, None, (46, 47), None),
    Landmark("eye_right_center", None, 5, (36, 37, 38, 39, 40, 41), 14),
    Landmark("eye_left_center", None, 2, (42, 43, 44, 45, 46, 47), 15),
    Landmark("brow_right_outer", 70, None, (17,), None),
    Landmark("brow_right_mid", 105, None, (19,), None),
    Landmark("brow_right_inner", 107, None, (21,), None),
    Landmark("brow_left_inner", 336, None, (22,), None),
    Landmark("brow_left_mid", 334, None, (24,), None),
    Landmark("brow_left_outer", 300, None, (26,), None),
    Landmark("mouth_right", 61, 10, (48,), None),
    Landmark("mouth_left", 291, 9, (54,), None),
    Landmark("lip_upper_outer", 0, None, (51,), None),
    Landmark("lip_lower_outer", 17, None, (57,), None),
    Landmark("lip_upper_inner", 13, None, (62,), None),
    Landmark("lip_lower_inner", 14, None, (66,), None),
    Landmark("chin", 152, None, (8,), None),
    Landmark("ear_right", None, 8, (), 16),
    Landmark("ear_left", None, 7, (), 17),
    Landmark("shoulder_right", None, 12, (), 2),
    Landmark("shoulder_left", None, 11, (), 5),
)
LANDMARK_INDEX: dict[str, int] = {lm.name: i for i, lm in enumerate(LANDMARKS)}

# Pose groups of the params, and the pivots ``joints()`` reports (one per group).
JOINT_NAMES: tuple[str, ...] = ("torso", "neck", "head", "clavicle_left", "clavicle_right")


@dataclass
class UpperBodyParams:
    """Parameters of ``F`` frames of one subject. Rotations are axis-angle, world axes.

    Attributes:
        shape: identity shared by all frames ``[S]`` (the model's ``shape_labels``).
        face: face actions ``[F, E]`` (the model's ``face_labels``; anny: the 52 ARKit
            weights in [0, 1]; SMPL-X: jaw rotation then expression coefficients).
        head: head rotation relative to the neck ``[F, 3]``.
        neck: neck rotation relative to the torso ``[F, 3]``.
        torso: upper-spine rotation ``[F, 3]`` (moves shoulders, neck and head).
        clavicles: shoulder-girdle rotations ``[F, 2, 3]``, (left, right).
        rotation: global rotation about the head centre ``[F, 3]``.
        translation: global translation ``[F, 3]`` (metres): the head centre's position
            when ``rotation`` and the pose are zero.
    """

    shape: Tensor
    face: Tensor
    head: Tensor
    neck: Tensor
    torso: Tensor
    clavicles: Tensor
    rotation: Tensor
    translation: Tensor

    @property
    def frames(self) -> int:
        return self.face.shape[0]

    def tensors(self) -> dict[str, Tensor]:
        """Name -> tensor, e.g. for an optimiser or ``torch.save``."""
        return {f.name: getattr(self, f.name) for f in fields(self)}

    def map(self, fn: Callable[[Tensor], Tensor]) -> UpperBodyParams:
        """A copy with ``fn`` applied to every tensor (``.detach``, ``.to``, ``.clone``)."""
        return UpperBodyParams(**{k: fn(v) for k, v in self.tensors().items()})

    def select(self, frames: Tensor | slice | list[int]) -> UpperBodyParams:
        """The given frames (the shared shape is kept)."""
        return UpperBodyParams(**{k: v if k == "shape" else v[frames] for k, v in self.tensors().items()})


def axis_angle_to_matrix(axis_angle: Tensor) -> Tensor:
    """Rodrigues' formula ``[..., 3] -> [..., 3, 3]``, with finite gradients at zero.

    ``R = cos(t) I + sinc(t) K + (1 - cos t) / t^2 v v^T`` (``t = |v|``, ``K`` the cross-product
    matrix of ``v``), with both ratios written as ``torch.sinc``, exact and smooth at zero: no
    branches, so it is also one of the cheapest ways to write it (the tracker calls it on
    every step and starts at zero). The angle gets the smallest normal number added under the
    root so its gradient stays finite at zero; that shifts nothing representable.
    """
    v = axis_angle
    theta2 = (v * v).sum(-1, keepdim=True)[..., None]  # [..., 1, 1]
    theta = (theta2 + torch.finfo(v.dtype).tiny).sqrt()
    a = torch.sinc(theta / math.pi)  # sin(t) / t
    b = 0.5 * torch.sinc(theta / (2 * math.pi)).square()  # (1 - cos t) / t^2 = 2 sin(t/2)^2 / t^2
    k = (v @ _CROSS_MATRIX.to(v)).unflatten(-1, (3, 3))  # K v' = v x v'
    eye = torch.eye(3, dtype=v.dtype, device=v.device)
    return torch.cos(theta) * eye + a * k + b * (v[..., :, None] * v[..., None, :])


# v @ _CROSS_MATRIX is the flattened cross-product matrix [[0, -z, y], [z, 0, -x], [-y, x, 0]].
_CROSS_MATRIX = torch.tensor([[0, 0, 0, 0, 0, -1, 0, 1, 0],
                              [0, 0, 1, 0, 0, 0, -1, 0, 0],
                              [0, -1, 0, 1, 0, 0, 0, 0, 0]], dtype=torch.float32)


def forward_kinematics(joints: Tensor, parents: list[int], rotations: Tensor) -> Tensor:
    """Rest-to-posed rigid maps ``[F, J, 3, 4]`` of joints rotated in world axes.

    Joint ``j`` maps rest points by ``A_j = A_parent o (x -> R_j (x - c_j) + c_j)``.

    Args:
        joints: rest joint centres ``c`` ``[F, J, 3]``.
        parents: parent of each joint (-1 for a root), parents before children.
        rotations: ``R`` ``[F, J, 3, 3]``.
    """
    rot_g, trans_g = [], []
    for j, p in enumerate(parents):
        r, c = rotations[:, j], joints[:, j]
        t = c - (r @ c[..., None])[..., 0]
        if p >= 0:
            t = (rot_g[p] @ t[..., None])[..., 0] + trans_g[p]
            r = rot_g[p] @ r
        rot_g.append(r)
        trans_g.append(t)
    return torch.cat([torch.stack(rot_g, 1), torch.stack(trans_g, 1)[..., None]], -1)


def skin(rest: Tensor, transforms: Tensor, weights: Tensor) -> Tensor:
    """Linear blend skinning: rest vertices ``[F, V, 3]`` moved by the weighted joint maps
    ``[F, J, 3, 4]`` (weights ``[V, J]``, rows summing to 1) -> ``[F, V, 3]``.

    The maps are blended per vertex by one matrix product, then applied by broadcasting
    (V batched 3x3 matmuls are several times slower on CPU).
    """
    f, j = transforms.shape[:2]
    blend = torch.einsum("vj,fjk->fvk", weights, transforms.reshape(f, j, 12)).view(f, -1, 3, 4)
    return (blend[..., :3] * rest[..., None, :]).sum(-1) + blend[..., 3]


def fit_point_regressor(vertices: Tensor, candidates: Tensor, point: Tensor) -> tuple[Tensor, Tensor]:
    """Minimum-norm affine weights over ``candidates`` whose combination is ``point``.

    An affine combination (weights summing to 1) commutes with rigid motions, so a joint
    centre written this way follows the rigid part that carries its vertices exactly.

    Args:
        vertices: ``[V, 3]``; candidates: vertex indices ``[N]`` (N >= 4, not coplanar);
        point: ``[3]``.
    Returns:
        ``(candidates, weights [N])``.
    """
    p = vertices[candidates].double()
    a = torch.cat([p.T, torch.ones(1, len(candidates), dtype=p.dtype)])  # [4, N]
    b = torch.cat([point.double(), torch.ones(1, dtype=p.dtype)])
    w = a.T @ torch.linalg.solve(a @ a.T, b)
    return candidates, w.to(vertices.dtype)


def pack_regressors(regressors: dict[str, tuple[Tensor, Tensor]], names: list[str],
                    dtype: torch.dtype) -> tuple[Tensor, Tensor]:
    """Per-landmark ``(vertex indices [N_k], weights [N_k])`` of ``names`` as zero-padded
    ``index [K, N]`` and ``weight [K, N]`` (padding: vertex 0 with weight 0)."""
    width = max(len(regressors[n][0]) for n in names)
    index = torch.zeros(len(names), width, dtype=torch.long)
    weight = torch.zeros(len(names), width, dtype=dtype)
    for k, n in enumerate(names):
        i, w = regressors[n]
        index[k, :len(i)], weight[k, :len(w)] = i, w
    return index, weight


def upper_body_vertices(vertices: Tensor, arm_weight: Tensor, shoulders: Tensor, elbows: Tensor,
                        floor: float, arm_margin: float = 0.03) -> Tensor:
    """Vertices of the upper-body cut ``[V]`` bool: above ``floor``, arms cut off.

    An arm is cut by the plane across it ``arm_margin`` beyond the shoulder joint, so the
    deltoid cap stays and the cut is clean (a skinning-weight threshold alone is jagged).

    Args:
        vertices: rest vertices ``[V, 3]`` (world axes).
        arm_weight: skinning weight of each arm's bones ``[V, 2]``.
        shoulders, elbows: rest joint centres of the two arms ``[2, 3]``.
        floor: height (Y) of the cut across the torso.
    """
    keep = vertices[:, 1] > floor
    for side in range(2):
        axis = elbows[side] - shoulders[side]
        beyond = (vertices - shoulders[side]) @ (axis / axis.norm()) >= arm_margin
        keep &= ~(beyond & (arm_weight[:, side] > 0.2))
    return keep


def cut_mesh(faces: Tensor, keep: Tensor) -> tuple[Tensor, Tensor]:
    """Faces whose three vertices are kept, reindexed; and the kept vertices' old indices."""
    faces = faces[keep[faces].all(1)]
    used = torch.unique(faces)
    new_index = torch.full((len(keep),), -1, dtype=torch.long)
    new_index[used] = torch.arange(len(used))
    return new_index[faces], used


class LandmarkRig(NamedTuple):
    """The shape-dependent part of the landmarks-only evaluation (``UpperBodyModel.landmark_rig``):
    computed once per shape, so a fit that keeps the shape fixed never re-derives it.

    Attributes:
        offsets: ``o_kj`` ``[Q, 3]`` of the landmark-joint pairs: the landmarks' rest points
            relative to each joint's centre, weighted by the landmark and skinning weights
            (neutral face, zero pose; see ``UpperBodyModel._fold_landmarks``).
        bones: ``[J, 3]``: each joint's rest centre relative to its parent's (a root's: to the
            head centre).
    """

    offsets: Tensor
    bones: Tensor


class UpperBodyModel(torch.nn.Module):
    """A blendshape + linear-blend-skinning upper body in the DESIGN world.

    Subclasses fill the buffers and the label lists, and map the shape and face parameters
    to blendshape coefficients (``shape_coefficients``, ``face_coefficients``).

    Buffers (``V`` vertices, ``J`` joints, ``C`` shape and ``E'`` face blendshapes):
        faces ``[M, 3]``, template ``[V, 3]``, shape_dirs ``[C, V, 3]``, face_dirs
        ``[E', V, 3]``, joint_template ``[J, 3]``, joint_shape_dirs ``[C, J, 3]``,
        joint_face_dirs ``[E', J, 3]``, skin_weights ``[V, J]``, landmark_index and
        landmark_weight ``[K, N]``, center_index and center_weight ``[N]``; with pose
        correctives also pose_dirs ``[P, V, 3]`` (see ``pose_features``). The folded
        landmark buffers of ``_fold_landmarks`` are derived from these.

    Created under ``torch.inference_mode()`` (as in a ComfyUI node), the buffers are
    inference tensors that autograd refuses: build and move the model inside
    ``torch.inference_mode(False)`` when it will be optimised.
    """

    name: str
    shape_labels: list[str]
    face_labels: list[str]
    jaw_open_label: str  # the face action that opens the mouth
    landmark_names: list[str]
    joint_parents: list[int]
    joint_groups: list[str | None]  # pose group of each joint (None: static)
    joint_shares: list[float]  # fraction of its group's rotation each joint takes

    def _init_buffers(self, **buffers: Tensor) -> None:
        for k, v in buffers.items():
            self.register_buffer(k, v, persistent=False)
        self._fold_landmarks()

    def _fold_landmarks(self) -> None:
        """Fold the landmark weights into the skinning weights and the blendshapes.

        Skinning moves rest vertex ``x_n`` to ``v_n = sum_j W_nj (G_j (x_n - c_j) + p_j)``
        (``G_j``: world rotation of joint ``j``; ``c_j``, ``p_j``: its rest and posed centre),
        so landmark ``l_k = sum_n L_kn v_n`` is

            l_k = sum_j G_j o_kj + h_kj p_j,    h_kj = sum_n L_kn W_nj,
                                                o_kj = sum_n L_kn W_nj x_n - h_kj c_j.

        ``o`` is linear in the blendshape coefficients (as ``x`` and ``c`` are), so its
        template and blendshapes fold once into small tensors, kept only for the ``Q`` pairs
        ``(k, j)`` where joint ``j`` moves landmark ``k`` at all (anny: 42 of 32 x 9): a step
        of the tracker then costs a few ``[Q, 3]``-sized products instead of gathering, shaping
        and skinning vertices. The posed centres follow the chain,
        ``p_j = p_parent + G_parent (c_j - c_parent)``, i.e. ``p = ancestry @ (G_parent b)``
        with the bones ``b_j = c_j - c_parent``.

        Buffers: pair_joint ``[Q]`` (the joint of each pair); offset_template ``[Q, 3]``,
        offset_shape_dirs ``[C, Q, 3]``, offset_face_dirs ``[E', Q, 3]`` (and
        offset_pose_dirs ``[P, Q, 3]``); landmark_gather ``[K, Q + J]`` (sums the turned
        offsets, then ``h`` weighs the posed centres); bone_template ``[J, 3]``,
        bone_shape_dirs ``[C, J, 3]``, bone_face_dirs ``[E', J, 3]``; joint_ancestry
        ``[J, J]`` (1 where the column is the row's joint or one of its ancestors).
        """
        dtype, f64 = self.template.dtype, torch.float64
        k, n = self.landmark_index.shape
        dense = torch.zeros(k, self.num_vertices, dtype=f64, device=self.template.device)
        rows = torch.arange(k, device=dense.device)[:, None].expand(k, n)
        dense.index_put_((rows, self.landmark_index), self.landmark_weight.to(f64), accumulate=True)  # [K, V]
        support = torch.nonzero((dense != 0).any(0))[:, 0]  # the few vertices the landmarks read
        mixed = dense[:, support, None] * self.skin_weights[support].to(f64)  # L_kn W_nj [K, S, J]
        h = mixed.sum(1)  # [K, J]
        pair_k, pair_j = torch.nonzero((mixed != 0).any(1), as_tuple=True)  # [Q]
        pairs = mixed[pair_k, :, pair_j]  # [Q, S]

        def offsets(vertices: Tensor, joints: Tensor) -> Tensor:  # [..., V, 3], [..., J, 3] -> [..., Q, 3]
            folded = torch.einsum("qs,...sd->...qd", pairs, vertices[..., support, :].to(f64))
            return folded - h[pair_k, pair_j, None] * joints.to(f64)[..., pair_j, :]

        parent = torch.tensor([max(p, 0) for p in self.joint_parents], device=dense.device)
        root = torch.tensor([p < 0 for p in self.joint_parents], device=dense.device)[:, None]

        def bones(joints: Tensor, centre: Tensor) -> Tensor:  # [..., J, 3], [..., 3] -> [..., J, 3]
            joints = joints.to(f64)
            return joints - torch.where(root, centre.to(f64)[..., None, :], joints[..., parent, :])

        centre_w = self.center_weight.to(f64)[:, None]
        centre_template = (self.template[self.center_index].to(f64) * centre_w).sum(-2)  # [3]
        centre_shape_dirs = (self.shape_dirs[:, self.center_index].to(f64) * centre_w).sum(-2)  # [C, 3]
        ancestry = torch.eye(len(self.joint_parents), dtype=f64, device=dense.device)
        for j, p in enumerate(self.joint_parents):  # parents come before their children
            if p >= 0:
                ancestry[j] += ancestry[p]
        gather = torch.cat([torch.zeros(k, len(pair_k), dtype=f64, device=dense.device), h], 1)
        gather[pair_k, torch.arange(len(pair_k), device=dense.device)] = 1
        self.register_buffer("pair_joint", pair_j, persistent=False)
        folded = {
            "landmark_gather": gather,
            "offset_template": offsets(self.template, self.joint_template),
            "offset_shape_dirs": offsets(self.shape_dirs, self.joint_shape_dirs),
            "offset_face_dirs": offsets(self.face_dirs, self.joint_face_dirs),
            "bone_template": bones(self.joint_template, centre_template),
            "bone_shape_dirs": bones(self.joint_shape_dirs, centre_shape_dirs),
            "bone_face_dirs": bones(self.joint_face_dirs, dense.new_zeros(len(self.joint_face_dirs), 3)),
            "joint_ancestry": ancestry,
        }
        pose_dirs = getattr(self, "pose_dirs", None)
        if pose_dirs is not None:  # correctives move vertices, not joint centres
            folded["offset_pose_dirs"] = offsets(pose_dirs, dense.new_zeros(len(pose_dirs), *self.joint_template.shape))
        for name, value in folded.items():
            self.register_buffer(name, value.to(dtype).contiguous(), persistent=False)
        # anny's face actions leave the joints where they are: skip their (zero) product.
        self.bones_follow_face = bool((self.bone_face_dirs != 0).any())

    # -- to override -------------------------------------------------------------------------
    def shape_coefficients(self, shape: Tensor) -> Tensor:
        """Shape parameters ``[..., S]`` -> shape blendshape coefficients ``[..., C]``."""
        return shape

    def face_coefficients(self, face: Tensor) -> Tensor:
        """Face parameters ``[F, E]`` -> face blendshape coefficients ``[F, E']``."""
        return face

    def group_rotations(self, params: UpperBodyParams) -> dict[str, Tensor]:
        """Axis-angle ``[F, 3]`` of each pose group."""
        return {"torso": params.torso, "neck": params.neck, "head": params.head,
                "clavicle_left": params.clavicles[:, 0], "clavicle_right": params.clavicles[:, 1]}

    def pose_features(self, rotations: Tensor) -> Tensor | None:
        """Pose-corrective features ``[F, P]`` of joint rotations ``[F, J, 3, 3]``: the
        coefficients of the ``pose_dirs [P, V, 3]`` buffer; None without pose correctives."""
        return None

    # -- shared ------------------------------------------------------------------------------
    @property
    def num_vertices(self) -> int:
        return self.template.shape[0]

    @property
    def shape_range(self) -> tuple[Tensor, Tensor] | None:
        """Valid ``(low, high)`` of the shape vector, or None when unbounded."""
        return None

    @property
    def face_range(self) -> tuple[float, float] | None:
        """Valid range of the face parameters, or None when unbounded."""
        return None

    def default_shape(self) -> Tensor:
        return torch.zeros(len(self.shape_labels), dtype=self.template.dtype, device=self.template.device)

    def neutral_params(self, frames: int) -> UpperBodyParams:
        """Mean shape, neutral face, zero pose, head centre at the origin."""
        z = self.template.new_zeros
        return UpperBodyParams(shape=self.default_shape(), face=z(frames, len(self.face_labels)),
                               head=z(frames, 3), neck=z(frames, 3), torso=z(frames, 3),
                               clavicles=z(frames, 2, 3), rotation=z(frames, 3), translation=z(frames, 3))

    def check_params(self, params: UpperBodyParams) -> None:
        """Raise ValueError naming the field whose shape does not fit this model."""
        f = params.frames
        expected = {"shape": (len(self.shape_labels),), "face": (f, len(self.face_labels)),
                    "head": (f, 3), "neck": (f, 3), "torso": (f, 3), "clavicles": (f, 2, 3),
                    "rotation": (f, 3), "translation": (f, 3)}
        for k, v in params.tensors().items():
            if tuple(v.shape) != expected[k]:
                raise ValueError(f"{self.name} params.{k} must have shape {expected[k]}, got {tuple(v.shape)}.")

    def rest_vertices(self, shape: Tensor) -> Tensor:
        """Shaped rest vertices ``[V, 3]`` (neutral face, zero pose, before centring)."""
        return self._shaped(self.shape_coefficients(shape), self.template, self.shape_dirs)

    @staticmethod
    def _shaped(coefficients: Tensor, base: Tensor, dirs: Tensor) -> Tensor:
        """``base [..., N, 3] + coefficients [..., C] @ dirs [C, N, 3]`` as one matrix product."""
        offsets = coefficients @ dirs.flatten(1)
        return base + offsets.view(*coefficients.shape[:-1], *dirs.shape[1:])

    def head_center(self, rest: Tensor) -> Tensor:
        """The head centre ``[..., 3]`` of (rest) vertices ``[..., V, 3]``."""
        return (rest[..., self.center_index, :] * self.center_weight[:, None]).sum(-2)

    def joint_axis_angles(self, params: UpperBodyParams) -> Tensor:
        """Axis-angle of each joint ``[F, J, 3]``: its share of its group's (static joints: 0)."""
        groups = self.group_rotations(params)
        names = [g for g in dict.fromkeys(self.joint_groups) if g is not None]
        shares = torch.tensor([[s if g == name else 0.0 for name in names]
                               for g, s in zip(self.joint_groups, self.joint_shares)], dtype=params.head.dtype)
        return shares.to(params.head.device) @ torch.stack([groups[name] for name in names], 1)

    def joint_rotations(self, params: UpperBodyParams) -> Tensor:
        """Rotation of each joint ``[F, J, 3, 3]`` (static joints: identity)."""
        return axis_angle_to_matrix(self.joint_axis_angles(params))

    def rest_state(self, params: UpperBodyParams) -> tuple[Tensor, Tensor, Tensor, Tensor]:
        """Before skinning: rest vertices ``[F, V, 3]`` (with shape, face and pose correctives),
        rest joint centres ``[F, J, 3]``, joint rotations ``[F, J, 3, 3]`` and the head centre
        ``[3]`` (of the shape alone: face actions do not move the body)."""
        self.check_params(params)
        c = self.shape_coefficients(params.shape)
        rest = self._shaped(c, self.template, self.shape_dirs)
        joints = self._shaped(c, self.joint_template, self.joint_shape_dirs)
        center = self.head_center(rest)
        e = self.face_coefficients(params.face)  # [F, E']
        rest = self._shaped(e, rest, self.face_dirs)
        joints = self._shaped(e, joints, self.joint_face_dirs)
        rotations = self.joint_rotations(params)
        features = self.pose_features(rotations)
        if features is not None:
            rest = self._shaped(features, rest, self.pose_dirs)
        return rest, joints, rotations, center

    def posed(self, params: UpperBodyParams) -> tuple[Tensor, Tensor]:
        """World vertices ``[F, V, 3]`` and pivots ``[F, len(JOINT_NAMES), 3]``."""
        rest, joints, rotations, center = self.rest_state(params)
        transforms = self._world_maps(params, joints, rotations, center)
        pivots = transforms[:, self.pivot_joints]
        pivots = (pivots[..., :3] @ joints[:, self.pivot_joints, :, None])[..., 0] + pivots[..., 3]
        return skin(rest, transforms, self.skin_weights), pivots

    def joint_transforms(self, params: UpperBodyParams) -> Tensor:
        """Each joint's rest-to-world rigid map ``[F, J, 3, 4]``, the global rotation and
        translation included: ``forward(params)`` is their blend by ``skin_weights``. Points
        tied to the body (hair, clothing) follow a pose change from ``a`` to ``b`` by the
        blend of ``T_b T_a^-1``."""
        _rest, joints, rotations, center = self.rest_state(params)
        return self._world_maps(params, joints, rotations, center)

    def _world_maps(self, params: UpperBodyParams, joints: Tensor, rotations: Tensor, center: Tensor) -> Tensor:
        transforms = forward_kinematics(joints, self.joint_parents, rotations)
        # The global map x -> G (x - center) + t folded into every joint's map.
        g = axis_angle_to_matrix(params.rotation)[:, None]  # [F, 1, 3, 3]
        shift = ((transforms[..., 3] - center)[..., None, :] @ g.transpose(-1, -2))[..., 0, :]
        return torch.cat([g @ transforms[..., :3], (shift + params.translation[:, None])[..., None]], -1)

    def landmark_rig(self, shape: Tensor) -> LandmarkRig:
        """The shape's part of ``posed_landmarks`` (shape ``[S]``; ``[N, S]`` gives N rigs, their
        tensors with a leading axis); reuse it while the shape is fixed."""
        c = self.shape_coefficients(shape)
        return LandmarkRig(self._shaped(c, self.offset_template, self.offset_shape_dirs),
                           self._shaped(c, self.bone_template, self.bone_shape_dirs))

    def posed_landmarks(self, params: UpperBodyParams, rig: LandmarkRig | None = None) -> Tensor:
        """``landmarks(forward(params))`` ``[F, K, 3]`` without evaluating a single vertex (the
        tracker's inner loop; see ``_fold_landmarks``).

        Args:
            params: parameters of ``F`` frames.
            rig: ``landmark_rig(params.shape)`` when the caller keeps it (None: computed here).
        """
        self.check_params(params)
        if rig is None:
            rig = self.landmark_rig(params.shape)
        e = self.face_coefficients(params.face)  # [F, E']
        offsets = self._shaped(e, rig.offsets, self.offset_face_dirs)  # [F, Q, 3]
        bones = self._shaped(e, rig.bones, self.bone_face_dirs) if self.bones_follow_face else rig.bones
        world, parent_world, rotations = self._world_rotations(params)
        features = self.pose_features(rotations)
        if features is not None:
            offsets = self._shaped(features, offsets, self.offset_pose_dirs)
        # Each pair's offset turned by its joint's rotation [F, Q, 3] (broadcast products:
        # batched 3x3 matmuls of this size are slower on CPU).
        turned = (world.index_select(1, self.pair_joint) * offsets[..., None, :]).sum(-1)
        # Posed joint centres: the translation plus the rotated bones down to each joint.
        moved = (parent_world * bones[..., None, :]).sum(-1)  # [F, J, 3]
        centres = torch.einsum("ij,fjd->fid", self.joint_ancestry, moved) + params.translation[:, None]
        return torch.einsum("kq,fqd->fkd", self.landmark_gather, torch.cat([turned, centres], 1))

    def rig_jacobian(self, params: UpperBodyParams) -> Tensor:
        """Derivatives of ``posed_landmarks(params, rig)`` by the rig ``[F, K, 3, R]`` (``R``: the
        rig's offsets then bones, flattened): exact, the landmarks being linear in the rig for a
        given pose and face. Times the rig's derivatives by the shape, it gives the shape's
        Jacobian without differentiating the whole model along every shape direction."""
        self.check_params(params)
        world, parent_world, _rotations = self._world_rotations(params)
        q = len(self.pair_joint)
        # d l_k / d o_q = G_j(q) where landmark k gathers pair q.
        by_offsets = torch.einsum("kq,fqab->fkaqb", self.landmark_gather[:, :q], world.index_select(1, self.pair_joint))
        # d l_k / d b_j = sum_i h_ki ancestry_ij G_parent(j).
        by_bones = torch.einsum("kj,fjab->fkajb", self.landmark_gather[:, q:] @ self.joint_ancestry, parent_world)
        return torch.cat([by_offsets.flatten(3), by_bones.flatten(3)], -1)

    def _world_rotations(self, params: UpperBodyParams) -> tuple[Tensor, Tensor, Tensor]:
        """World rotations of the joints and of their parents ``[F, J, 3, 3]`` (``_chain``) and
        the joints' own rotations ``[F, J, 3, 3]``."""
        # The global rotation and the joints' in one call: per-op overhead is what costs here.
        rotations = axis_angle_to_matrix(torch.cat([params.rotation[:, None], self.joint_axis_angles(params)], 1))
        world, parent_world = self._chain(rotations[:, 0], rotations[:, 1:])
        return world, parent_world, rotations[:, 1:]

    def _chain(self, global_rotation: Tensor, rotations: Tensor) -> tuple[Tensor, Tensor]:
        """World rotations ``[F, J, 3, 3]`` of the joints (global rotation ``[F, 3, 3]`` o their
        ancestors' o their own ``rotations [F, J, 3, 3]``), and those of their parents (a root's
        parent: the global rotation)."""
        world: list[Tensor] = []
        parent: list[Tensor] = []
        for j, r in enumerate(rotations.unbind(1)):
            up = world[self.joint_parents[j]] if self.joint_parents[j] >= 0 else global_rotation
            parent.append(up)
            world.append(up if self.joint_groups[j] is None else up @ r)  # static joints: identity
        return torch.stack(world, 1), torch.stack(parent, 1)

    def head_rotation(self, params: UpperBodyParams) -> Tensor:
        """World rotation of the head ``[F, 3, 3]``: the global rotation, torso, neck and head
        composed (the last joint of the head group), e.g. to compare head poses."""
        world, _, _ = self._world_rotations(params)
        last = max(j for j, group in enumerate(self.joint_groups) if group == "head")
        return world[:, last]

    @property
    def pivot_joints(self) -> list[int]:
        """The first joint of each pose group in ``JOINT_NAMES``."""
        return [self.joint_groups.index(g) for g in JOINT_NAMES]

    def forward(self, params: UpperBodyParams) -> Tensor:
        """World vertices ``[F, V, 3]`` (metres, +Y up, facing +Z)."""
        return self.posed(params)[0]

    def landmarks(self, vertices: Tensor) -> Tensor:
        """Landmarks ``[F, K, 3]`` (``landmark_names``) of vertices ``[F, V, 3]``."""
        return (vertices[:, self.landmark_index] * self.landmark_weight[..., None]).sum(-2)
