"""The pack's custom ComfyUI socket types (docs/nodes.md, "Custom types")."""
from comfy_api.latest import io

# models.camera.trajectory.CameraTrajectory: per-frame world-to-camera extrinsics and normalised
# intrinsics (DESIGN.md conventions).
Camera = io.Custom("FACTORPORTRAIT_CAMERA")

# torch.Tensor [B, 24, T_lat, H/8, W/8]: Plücker rays on the latent grid in Wan's
# 4-frame packing (models.camera.plucker.latent_plucker_rays).
Rays = io.Custom("FACTORPORTRAIT_RAYS")

# nodes.model_loader.FactorPortraitModel: the loaded DiT and how to run it (devices,
# block streaming).
Model = io.Custom("FACTORPORTRAIT_MODEL")

# models.expression.codes.ExpressionCodes: per-frame codes [F, D] and the encoder's name.
Expression = io.Custom("FACTORPORTRAIT_EXPRESSION")

# models.tracking.body_track.BodyTrack: a fitted (or retargeted) upper-body sequence, its
# body model and the camera it is seen from.
BodyTrack = io.Custom("FACTORPORTRAIT_BODY_TRACK")

# comfyui_controlnet_aux's OpenPose/DWPose keypoints: a list of per-frame dicts with
# "people" (pose_keypoints_2d, face_keypoints_2d, ...), "canvas_width", "canvas_height".
PoseKeypoint = io.Custom("POSE_KEYPOINT")

# models.expression.encoders: an expression encoder (the built-in ARKit-52 fit, or a learned
# image encoder from models/factorportrait_expression) with its name and code size.
ExpressionEncoder = io.Custom("FACTORPORTRAIT_EXPRESSION_ENCODER")

# models.avatar.avatar.Avatar: a portrait lifted onto the fitted anny upper body (its texture
# lookups, hair/clothing layer, filled background plane), the photo's pose and camera.
Avatar = io.Custom("FACTORPORTRAIT_AVATAR")
