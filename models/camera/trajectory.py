"""The camera trajectory type and the world/camera conventions of the pack.

World: right-handed, metres, +Y up, the subject faces +Z. Camera axes are OpenCV's
(x right, y down, z forward). Extrinsics are world-to-camera ``[R|t]``.

Intrinsics are stored independently of the output resolution:

- ``focal``: focal length in pixels divided by the image height (``fy / H``);
  a vertical field of view ``fov`` gives ``focal = 0.5 / tan(fov / 2)``;
- ``pixel_aspect``: ``fx / fy`` in pixels (1 for square pixels);
- ``principal``: principal point divided by the image size (``cx / W, cy / H``).

So a trajectory renders at any width and height with square pixels and the same vertical
field of view (DESIGN.md: intrinsics normalised by image size).
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
from kornia.geometry.conversions import axis_angle_to_rotation_matrix

from ..errors import InputError

# World-to-camera rotation of the frontal camera: on +Z looking toward -Z, image right
# along world +X, image down along world -Y.
FRONTAL_W2C_ROTATION = torch.tensor([[1.0, 0.0, 0.0], [0.0, -1.0, 0.0], [0.0, 0.0, -1.0]])

FOV_RANGE_DEGREES = (1.0, 179.0)


def focal_from_fov(fov_degrees: torch.Tensor | float) -> torch.Tensor:
    """Vertical field of view in degrees -> focal length normalised by image height."""
    fov = torch.as_tensor(fov_degrees, dtype=torch.float64)
    return 0.5 / torch.tan(torch.deg2rad(fov) / 2)


def fov_from_focal(focal: torch.Tensor | float) -> torch.Tensor:
    """Focal length normalised by image height -> vertical field of view in degrees."""
    return torch.rad2deg(2 * torch.atan(0.5 / torch.as_tensor(focal, dtype=torch.float64)))


def check_fov(fov_degrees: torch.Tensor | float, input_name: str) -> None:
    """Raise unless every field of view is finite and strictly inside (1°, 179°)."""
    fov = torch.as_tensor(fov_degrees, dtype=torch.float64)
    lo, hi = FOV_RANGE_DEGREES
    if not torch.isfinite(fov).all():
        raise InputError(input_name, "field of view must be a finite number of degrees.")
    if not ((fov > lo) & (fov < hi)).all():
        bad = fov[(fov <= lo) | (fov >= hi)][0].item()
        raise InputError(
            input_name,
            f"field of view {bad:g}° is outside ({lo:g}°, {hi:g}°); "
            f"portrait cameras are typically 20° to 60°.",
        )


@dataclass(frozen=True)
class CameraTrajectory:
    """Per-frame pinhole cameras (``F`` frames). All tensors are float64 on the CPU.

    Attributes:
        w2c: world-to-camera extrinsics ``[F, 4, 4]``.
        focal: focal length over image height ``[F]``.
        pixel_aspect: ``fx / fy`` in pixels ``[F]``.
        principal: principal point over image size ``[F, 2]`` as ``(cx/W, cy/H)``.
    """

    w2c: torch.Tensor
    focal: torch.Tensor
    pixel_aspect: torch.Tensor
    principal: torch.Tensor

    def __post_init__(self) -> None:
        for name in ("w2c", "focal", "pixel_aspect", "principal"):  # always float64, CPU
            object.__setattr__(self, name, torch.as_tensor(getattr(self, name)).detach().to("cpu", torch.float64))
        f = self.w2c.shape[0] if self.w2c.ndim == 3 else -1
        if self.w2c.shape[-2:] != (4, 4) or f < 1:
            raise InputError("camera", f"w2c must be [F, 4, 4], got {tuple(self.w2c.shape)}.")
        for name, t, shape in (
            ("focal", self.focal, (f,)),
            ("pixel_aspect", self.pixel_aspect, (f,)),
            ("principal", self.principal, (f, 2)),
        ):
            if tuple(t.shape) != shape:
                raise InputError("camera", f"{name} must have shape {shape}, got {tuple(t.shape)}.")
        for name in ("w2c", "focal", "pixel_aspect", "principal"):
            if not torch.isfinite(getattr(self, name)).all():
                raise InputError("camera", f"{name} contains NaN or infinite values.")
        if (self.focal <= 0).any() or (self.pixel_aspect <= 0).any():
            raise InputError("camera", "focal lengths and pixel aspect ratios must be positive.")
        bottom = torch.tensor([0.0, 0.0, 0.0, 1.0], dtype=torch.float64)
        if not (self.w2c[:, 3] == bottom).all():
            raise InputError("camera", "the last row of every w2c matrix must be [0, 0, 0, 1].")
        rot = self.w2c[:, :3, :3]
        eye = torch.eye(3, dtype=rot.dtype).expand_as(rot)
        if (rot @ rot.transpose(-1, -2) - eye).abs().max() > 1e-4 or (torch.det(rot) < 0).any():
            raise InputError("camera", "extrinsic rotations must be proper rotation matrices.")

    @staticmethod
    def create(
        w2c: torch.Tensor,
        focal: torch.Tensor | float,
        pixel_aspect: torch.Tensor | float = 1.0,
        principal: torch.Tensor | tuple[float, float] = (0.5, 0.5),
    ) -> CameraTrajectory:
        """Build a trajectory, broadcasting per-trajectory intrinsics over the frames."""
        w2c = torch.as_tensor(w2c, dtype=torch.float64)
        n = w2c.shape[0]
        as64 = lambda x: torch.as_tensor(x, dtype=torch.float64)  # noqa: E731
        return CameraTrajectory(
            w2c=w2c,
            focal=as64(focal).expand(n).clone(),
            pixel_aspect=as64(pixel_aspect).expand(n).clone(),
            principal=as64(principal).expand(n, 2).clone(),
        )

    @property
    def num_frames(self) -> int:
        return self.w2c.shape[0]

    @property
    def c2w(self) -> torch.Tensor:
        """Camera-to-world ``[F, 4, 4]``: rotation ``R^T``, translation the camera centre."""
        bottom = torch.tensor([0.0, 0.0, 0.0, 1.0], dtype=torch.float64)
        if not (self.w2c[:, 3] == bottom).all():
            raise InputError("camera", "the last row of every w2c matrix must be [0, 0, 0, 1].")
        rot = self.w2c[:, :3, :3].transpose(-1, -2)
        out = torch.zeros_like(self.w2c)
        out[:, :3, :3] = rot
        out[:, :3, 3] = -(rot @ self.w2c[:, :3, 3:4])[..., 0]
        out[:, 3, 3] = 1
        return out

    @property
    def centers(self) -> torch.Tensor:
        """Camera centres in world coordinates ``[F, 3]``."""
        return self.c2w[:, :3, 3]

    @property
    def fov(self) -> torch.Tensor:
        """Vertical field of view in degrees ``[F]``."""
        return fov_from_focal(self.focal)

    def intrinsics(self, width: int, height: int) -> torch.Tensor:
        """Pixel intrinsics ``[F, 3, 3]`` for an image of ``width`` x ``height``."""
        k = torch.zeros(self.num_frames, 3, 3, dtype=torch.float64)
        k[:, 1, 1] = self.focal * height
        k[:, 0, 0] = self.focal * self.pixel_aspect * height
        k[:, 0, 2] = self.principal[:, 0] * width
        k[:, 1, 2] = self.principal[:, 1] * height
        k[:, 2, 2] = 1
        return k

    def has_constant_intrinsics(self) -> bool:
        """True when every frame has the same intrinsics (enables the shared-basis fast path)."""
        stacked = torch.cat([self.focal[:, None], self.pixel_aspect[:, None], self.principal], 1)
        return bool((stacked == stacked[:1]).all())

    def relative_to_first(self) -> CameraTrajectory:
        """The same trajectory in the first camera's frame (frame 0 becomes the identity).

        This is the pose convention of CameraCtrl-style models and ComfyUI's
        ``WanCameraEmbedding``: ``c2w_rel[i] = w2c[0] @ c2w[i]``.
        """
        w2c_rel = self.w2c @ self.c2w[:1]
        return CameraTrajectory(w2c_rel, self.focal, self.pixel_aspect, self.principal)

    def frames(self, indices: torch.Tensor | list[int]) -> CameraTrajectory:
        """A sub-trajectory of the given frame indices."""
        idx = torch.as_tensor(indices, dtype=torch.long)
        return CameraTrajectory(
            self.w2c[idx], self.focal[idx], self.pixel_aspect[idx], self.principal[idx]
        )

    def project(self, points: torch.Tensor, width: int, height: int) -> torch.Tensor:
        """Pixel coordinates ``[F, N, 2]`` of world points ``[N, 3]`` (continuous, pixel
        centres at +0.5) and their depths along the optical axis, as ``[F, N, 3]``."""
        pts = torch.as_tensor(points, dtype=torch.float64)
        cam = pts @ self.w2c[:, :3, :3].transpose(-1, -2) + self.w2c[:, None, :3, 3]
        uvw = cam @ self.intrinsics(width, height).transpose(-1, -2)
        return torch.cat([uvw[..., :2] / uvw[..., 2:3], cam[..., 2:3]], dim=-1)


def rotation_about_axis(axis: str, radians: torch.Tensor) -> torch.Tensor:
    """Right-handed rotation matrices ``[N, 3, 3]`` about a world axis ``"x"|"y"|"z"``."""
    angle = torch.as_tensor(radians, dtype=torch.float64).reshape(-1)
    axis_angle = torch.zeros(angle.shape[0], 3, dtype=torch.float64)
    axis_angle[:, "xyz".index(axis)] = angle
    return axis_angle_to_rotation_matrix(axis_angle)


def orbit_extrinsics(
    yaw: torch.Tensor,
    pitch: torch.Tensor,
    roll: torch.Tensor,
    distance: torch.Tensor,
    target: torch.Tensor,
) -> torch.Tensor:
    """World-to-camera ``[N, 4, 4]`` of cameras orbiting ``target`` and looking at it.

    Angles in degrees relative to the frontal view (camera on +Z of the target):
    ``yaw > 0`` moves the camera toward +X (the subject's left), ``pitch > 0`` moves it
    up (looking down), ``roll > 0`` turns the camera clockwise about its viewing axis
    (the image content turns counter-clockwise). ``distance`` in metres ``[N]``,
    ``target`` ``[N, 3]``. No look-at "up" vector is used, so any pitch is allowed.
    """
    orbit = rotation_about_axis("y", torch.deg2rad(yaw)) @ rotation_about_axis(
        "x", -torch.deg2rad(pitch)
    )
    c2w_rot = orbit @ FRONTAL_W2C_ROTATION.double().T @ rotation_about_axis(
        "z", torch.deg2rad(roll)
    )
    offset = torch.zeros(orbit.shape[0], 3, dtype=torch.float64)
    offset[:, 2] = torch.as_tensor(distance, dtype=torch.float64)
    center = torch.as_tensor(target, dtype=torch.float64) + (orbit @ offset[..., None])[..., 0]
    w2c = torch.zeros(orbit.shape[0], 4, 4, dtype=torch.float64)
    w2c[:, :3, :3] = c2w_rot.transpose(-1, -2)
    w2c[:, :3, 3] = -(c2w_rot.transpose(-1, -2) @ center[..., None])[..., 0]
    w2c[:, 3, 3] = 1
    return w2c
