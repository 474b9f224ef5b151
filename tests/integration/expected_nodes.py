"""The pack's nodes as ComfyUI must list them: the one table the tests check against.

``EXPECTED_NODES[node_id] = (display_name, category, required input names in order,
output types in order, output names in order)``. Checked against the live ``/object_info``
by tests/integration/test_object_info.py; docs/nodes.md (the node reference) is checked against
the same table. Add a row here when a node is added. Plain data, no imports.
"""

EXPECTED_NODES: dict[str, tuple[str, str, list[str], list[str], list[str]]] = {
    "FactorPortraitCameraTrajectory": (
        "FactorPortrait Camera Trajectory",
        "FactorPortrait/camera",
        ["mode", "frames", "fov", "distance", "yaw", "pitch", "roll", "yaw_end", "pitch_end",
         "roll_end", "distance_end", "amplitude", "turns", "dolly_zoom", "easing", "keyframes"],
        ["FACTORPORTRAIT_CAMERA", "IMAGE"],
        ["camera", "preview"],
    ),
    "FactorPortraitLoadCameraTrajectory": (
        "FactorPortrait Load Camera Trajectory",
        "FactorPortrait/camera",
        ["file"],
        ["FACTORPORTRAIT_CAMERA", "IMAGE"],
        ["camera", "preview"],
    ),
    "FactorPortraitSaveCameraTrajectory": (
        "FactorPortrait Save Camera Trajectory",
        "FactorPortrait/camera",
        ["camera", "filename_prefix"],
        [],
        [],
    ),
    "FactorPortraitPluckerRayMaps": (
        "FactorPortrait Plücker Ray Maps",
        "FactorPortrait/camera",
        ["camera", "width", "height"],
        ["FACTORPORTRAIT_RAYS", "IMAGE", "WAN_CAMERA_EMBEDDING", "INT", "INT", "INT"],
        ["rays", "preview", "camera_embedding", "width", "height", "length"],
    ),
    "FactorPortraitTrackBodyMesh": (
        "FactorPortrait Track Body Mesh",
        "FactorPortrait/pose",
        ["images", "body_model", "retarget", "video_fov", "reference_fov", "smoothness", "iterations"],
        ["FACTORPORTRAIT_BODY_TRACK", "FACTORPORTRAIT_CAMERA", "IMAGE", "STRING"],
        ["body_track", "camera", "overlay", "info"],
    ),
    "FactorPortraitRenderNormalMaps": (
        "FactorPortrait Render Normal Maps",
        "FactorPortrait/pose",
        ["body_track", "camera", "width", "height", "backend"],
        ["IMAGE", "MASK"],
        ["normal_maps", "mask"],
    ),
    "FactorPortraitBuildAvatar": (
        "FactorPortrait Build Avatar",
        "FactorPortrait/avatar",
        ["image", "fov"],
        ["FACTORPORTRAIT_AVATAR", "FACTORPORTRAIT_CAMERA", "IMAGE", "STRING"],
        ["avatar", "camera", "preview", "info"],
    ),
    "FactorPortraitRenderAvatar": (
        "FactorPortrait Render Avatar",
        "FactorPortrait/avatar",
        ["avatar", "width", "height"],
        ["IMAGE", "MASK", "STRING"],
        ["images", "mask", "info"],
    ),
    "FactorPortraitLoadExpressionEncoder": (
        "FactorPortrait Load Expression Encoder",
        "FactorPortrait/expression",
        ["encoder"],
        ["FACTORPORTRAIT_EXPRESSION_ENCODER", "STRING"],
        ["encoder", "info"],
    ),
    "FactorPortraitExtractExpression": (
        "FactorPortrait Extract Expression",
        "FactorPortrait/expression",
        ["encoder", "images", "fov"],
        ["FACTORPORTRAIT_EXPRESSION", "IMAGE", "STRING"],
        ["expression", "preview", "info"],
    ),
    "FactorPortraitRetargetExpression": (
        "FactorPortrait Retarget Expression",
        "FactorPortrait/expression",
        ["expression", "scale", "neutral", "smoothing", "window", "fps", "clamp", "regions_from_other"],
        ["FACTORPORTRAIT_EXPRESSION", "IMAGE"],
        ["expression", "preview"],
    ),
    "FactorPortraitExpressionKeyframes": (
        "FactorPortrait Expression Keyframes",
        "FactorPortrait/expression",
        ["frames", "keyframes"],
        ["FACTORPORTRAIT_EXPRESSION", "IMAGE"],
        ["expression", "preview"],
    ),
    "FactorPortraitLoadModel": (
        "FactorPortrait Load Model",
        "FactorPortrait/model",
        ["factorportrait_weights", "base_model", "weight_dtype", "compute_dtype",
         "block_streaming", "expression_dim"],
        ["FACTORPORTRAIT_MODEL", "STRING"],
        ["model", "info"],
    ),
    "FactorPortraitLoRA": (
        "FactorPortrait LoRA",
        "FactorPortrait/model",
        ["model", "lora_name", "strength_model"],
        ["FACTORPORTRAIT_MODEL", "STRING"],
        ["model", "info"],
    ),
    "FactorPortraitAttentionCompile": (
        "FactorPortrait Attention & Compile",
        "FactorPortrait/model",
        ["model", "attention", "compile", "compile_mode", "dynamic"],
        ["FACTORPORTRAIT_MODEL"],
        ["model"],
    ),
    "FactorPortraitStepCache": (
        "FactorPortrait Step Cache",
        "FactorPortrait/model",
        ["model", "threshold", "start", "end"],
        ["FACTORPORTRAIT_MODEL"],
        ["model"],
    ),
    "FactorPortraitSampler": (
        "FactorPortrait Sampler",
        "FactorPortrait/sampling",
        ["model", "vae", "reference", "length", "seed", "steps", "cfg", "expression_cfg",
         "shift", "solver", "denoise", "window", "overlap"],
        ["LATENT"],
        ["latent"],
    ),
    "FactorPortraitEvaluateControls": (
        "FactorPortrait Evaluate Controls",
        "FactorPortrait/evaluation",
        ["images"],
        ["STRING", "IMAGE", "STRING"],
        ["table", "plot", "metrics"],
    ),
}
