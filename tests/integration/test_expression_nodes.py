"""Expression nodes in the real host: extraction of the synthetic driving video (known jaw
motion), keyframes -> retarget, and bad input through the server."""
from __future__ import annotations

from pathlib import Path

from factorportrait.models.expression import ExpressionImageEncoder, ImageEncoderConfig, save_image_encoder

from . import driving_video as dv
from .helpers import failure_text, read_png

LOAD, EXTRACT, RETARGET, KEYS = ("FactorPortraitLoadExpressionEncoder", "FactorPortraitExtractExpression",
                                 "FactorPortraitRetargetExpression", "FactorPortraitExpressionKeyframes")
BUILT_IN = "anny ARKit-52 (built in)"


def extract_prompt(tag: str, images: dict | None = None, encoder: str = BUILT_IN) -> dict:
    prompt = {
        "video": {"class_type": "LoadVideo", "inputs": {"file": dv.DRIVING_NAME}},
        "frames": {"class_type": "GetVideoComponents", "inputs": {"video": ["video", 0]}},
        "encoder": {"class_type": LOAD, "inputs": {"encoder": encoder}},
        "extract": {"class_type": EXTRACT, "inputs": {"encoder": ["encoder", 0], "images": ["frames", 0],
                                                      "fov": dv.FOV}},
        "save": {"class_type": "SaveImage", "inputs": {"images": ["extract", 1], "filename_prefix": f"{tag}/codes"}},
        "info": {"class_type": "PreviewAny", "inputs": {"source": ["extract", 2]}},
    }
    if images is not None:
        prompt["frames"] = images
        del prompt["video"]
    return prompt


def test_extracts_arkit_codes_of_the_driving_video(comfy):
    entry = comfy.run(extract_prompt("it-expr"), timeout=300)
    info = entry["outputs"]["info"]["text"][0]
    assert f"{dv.FRAMES} frame(s), encoder 'anny-arkit52', D=52" in info, info
    assert "no face" not in info, info
    (preview,) = comfy.output_files({"outputs": {"save": entry["outputs"]["save"]}})
    image = read_png(preview)
    assert image.shape[-1] == 3 and image.std() > 0.02  # curves drawn


def test_keyframes_then_retarget_in_the_host(comfy):
    prompt = {
        "keys": {"class_type": KEYS, "inputs": {"frames": 21, "keyframes":
                                                '[{"frame": 0}, {"frame": 10, "jawOpen": 0.8}, {"frame": 20}]'}},
        "retarget": {"class_type": RETARGET, "inputs": {
            "expression": ["keys", 0], "scale": 1.5, "neutral": "first frame", "smoothing": "one-euro", "window": 3,
            "fps": 15.0, "clamp": True, "regions_from_other": ""}},
        "save": {"class_type": "SaveImage", "inputs": {"images": ["retarget", 1], "filename_prefix": "it-expr-keys/p"}},
    }
    entry = comfy.run(prompt, timeout=120)
    assert entry["status"]["status_str"] == "success"


def test_bad_expression_inputs_name_the_node_and_the_fix(comfy, object_info):
    # No face in any frame.
    blank = {"class_type": "EmptyImage", "inputs": {"width": 128, "height": 128, "batch_size": 3, "color": 0}}
    text, failed = failure_text(comfy, extract_prompt("it-expr-blank", images=blank), object_info)
    assert failed == EXTRACT and "FactorPortrait Extract Expression" in text and "no face" in text, text

    # A learned-encoder file that is not one (a pickle renamed .safetensors), then a good one.
    folder = Path(comfy.base_dir) / "models" / "factorportrait_expression"
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "broken.safetensors").write_bytes(b"\x80\x04\x95 not a safetensors file")
    text, failed = failure_text(comfy, extract_prompt("it-expr-broken", encoder="broken.safetensors"), object_info)
    assert failed == LOAD and "FactorPortrait Load Expression Encoder" in text and "input 'encoder'" in text, text

    network = ExpressionImageEncoder(ImageEncoderConfig(code_dim=16, width=8, depth=2, crop_size=64), "tiny-16")
    save_image_encoder(network, str(folder / "tiny16.safetensors"), "tiny-16")
    entry = comfy.run(extract_prompt("it-expr-learned", encoder="tiny16.safetensors"), timeout=300)
    info = entry["outputs"]["info"]["text"][0]
    assert "encoder 'tiny-16', D=16" in info, info

    # Region mixing needs named channels.
    prompt = extract_prompt("it-expr-mix", encoder="tiny16.safetensors")
    prompt["retarget"] = {"class_type": RETARGET, "inputs": {
        "expression": ["extract", 0], "scale": 1.0, "neutral": "none", "smoothing": "none", "window": 5,
        "fps": 15.0, "clamp": True, "regions_from_other": "mouth", "other": ["extract", 0]}}
    prompt["save"]["inputs"]["images"] = ["retarget", 1]
    text, failed = failure_text(comfy, prompt, object_info)
    assert failed == RETARGET and "no named channels" in text, text
