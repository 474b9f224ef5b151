"""The pack's custom ComfyUI socket types (README: "Custom types")."""
from comfy_api.latest import io

# models.camera.CameraTrajectory: per-frame world-to-camera extrinsics and normalised
# intrinsics (DESIGN.md conventions).
Camera = io.Custom("FACTORPORTRAIT_CAMERA")

# torch.Tensor [B, 24, T_lat, H/8, W/8]: Plücker rays on the latent grid in Wan's
# 4-frame packing (models.plucker.latent_plucker_rays).
Rays = io.Custom("FACTORPORTRAIT_RAYS")
