"""Where a LoRA file's tensors go: the key formats of Wan 2.1 LoRAs in the wild.

A LoRA key is ``<prefix><layer><separator><role>``; this module finds the DiT layer (the
module name in Wan's original layout, which is the pack's and ComfyUI's) of each key stem:

    format        example stem (-> blocks.0.self_attn.q)
    comfyui       diffusion_model.blocks.0.self_attn.q
    kohya         lora_unet_blocks_0_self_attn_q          (also musubi-tuner, Wan Fun's lora_unet__)
    lycoris       lycoris_blocks_0_self_attn_q            (LyCORIS / SimpleTuner)
    diffusers     transformer.blocks.0.attn1.to_q         (diffusers' WanTransformer3DModel names)
    peft          base_model.model.blocks.0.self_attn.q   (PEFT; original or diffusers names)
    original      blocks.0.self_attn.q                    (no prefix, e.g. DiffSynth-Studio)

The roles (``lora_up.weight``, ``hada_w1_a``, ``diff``...) are read by ``adapters``.
"""
from __future__ import annotations

import re

FORMATS = ("comfyui", "kohya", "lycoris", "diffusers", "peft", "original")

# Role suffixes that end a key, longest first so ".lora_A.default.weight" wins over ".weight".
ROLE_SUFFIXES = tuple(sorted((
    "lora_up.weight", "lora_down.weight", "lora_mid.weight", "lora_A.weight", "lora_B.weight",
    "lora_A.default.weight", "lora_B.default.weight", "lora.up.weight", "lora.down.weight",
    "alpha", "dora_scale", "diff", "diff_b", "set_weight",
    "hada_w1_a", "hada_w1_b", "hada_w2_a", "hada_w2_b", "hada_t1", "hada_t2",
    "lokr_w1", "lokr_w1_a", "lokr_w1_b", "lokr_w2", "lokr_w2_a", "lokr_w2_b", "lokr_t2",
), key=len, reverse=True))

# diffusers' WanTransformer3DModel module names -> Wan's original ones (\d: the block index).
DIFFUSERS_TO_ORIGINAL = (
    (r"blocks\.(\d+)\.attn1\.to_q", r"blocks.\1.self_attn.q"),
    (r"blocks\.(\d+)\.attn1\.to_k", r"blocks.\1.self_attn.k"),
    (r"blocks\.(\d+)\.attn1\.to_v", r"blocks.\1.self_attn.v"),
    (r"blocks\.(\d+)\.attn1\.to_out\.0", r"blocks.\1.self_attn.o"),
    (r"blocks\.(\d+)\.attn1\.norm_q", r"blocks.\1.self_attn.norm_q"),
    (r"blocks\.(\d+)\.attn1\.norm_k", r"blocks.\1.self_attn.norm_k"),
    (r"blocks\.(\d+)\.attn2\.to_q", r"blocks.\1.cross_attn.q"),
    (r"blocks\.(\d+)\.attn2\.to_k", r"blocks.\1.cross_attn.k"),
    (r"blocks\.(\d+)\.attn2\.to_v", r"blocks.\1.cross_attn.v"),
    (r"blocks\.(\d+)\.attn2\.to_out\.0", r"blocks.\1.cross_attn.o"),
    (r"blocks\.(\d+)\.attn2\.norm_q", r"blocks.\1.cross_attn.norm_q"),
    (r"blocks\.(\d+)\.attn2\.norm_k", r"blocks.\1.cross_attn.norm_k"),
    (r"blocks\.(\d+)\.attn2\.add_k_proj", r"blocks.\1.cross_attn.k_img"),
    (r"blocks\.(\d+)\.attn2\.add_v_proj", r"blocks.\1.cross_attn.v_img"),
    (r"blocks\.(\d+)\.attn2\.norm_added_k", r"blocks.\1.cross_attn.norm_k_img"),
    (r"blocks\.(\d+)\.norm2", r"blocks.\1.norm3"),  # diffusers' norm2 is the cross-attention norm
    (r"blocks\.(\d+)\.ffn\.net\.0\.proj", r"blocks.\1.ffn.0"),
    (r"blocks\.(\d+)\.ffn\.net\.2", r"blocks.\1.ffn.2"),
    (r"condition_embedder\.text_embedder\.linear_1", "text_embedding.0"),
    (r"condition_embedder\.text_embedder\.linear_2", "text_embedding.2"),
    (r"condition_embedder\.time_embedder\.linear_1", "time_embedding.0"),
    (r"condition_embedder\.time_embedder\.linear_2", "time_embedding.2"),
    (r"condition_embedder\.time_proj", "time_projection.1"),
    (r"condition_embedder\.image_embedder\.norm1", "img_emb.proj.0"),
    (r"condition_embedder\.image_embedder\.ff\.net\.0\.proj", "img_emb.proj.1"),
    (r"condition_embedder\.image_embedder\.ff\.net\.2", "img_emb.proj.3"),
    (r"condition_embedder\.image_embedder\.norm2", "img_emb.proj.4"),
    (r"proj_out", "head.head"),
    (r"patch_embedding", "patch_embedding"),
)
_DIFFUSERS = tuple((re.compile(rf"^{a}$"), b) for a, b in DIFFUSERS_TO_ORIGINAL)

# Layers that only an image-to-video base has (CLIP image tokens).
IMAGE_LAYER = re.compile(r"(^img_emb\.|\.k_img$|\.v_img$|\.norm_k_img$)")


def split_key(key: str) -> tuple[str, str] | None:
    """``"<stem>.<role>"`` -> ``(stem, role)``, or None when the key has no known role."""
    for role in ROLE_SUFFIXES:
        if key.endswith("." + role):
            return key[: -len(role) - 1], role
    return None


def diffusers_to_original(name: str) -> str | None:
    for pattern, replacement in _DIFFUSERS:
        if pattern.match(name):
            return pattern.sub(replacement, name)
    return None


class LayerNames:
    """Finds the DiT layer of a LoRA key stem, in any of ``FORMATS``.

    ``layers``: the module names of the model (original Wan layout), e.g. from
    ``named_modules()``; image-only layers (``IMAGE_LAYER``) are recognised by name even when
    the model lacks them, so they can be reported as such.
    """

    def __init__(self, layers):
        self.layers = set(layers)
        self._underscored = {name.replace(".", "_"): name for name in self.layers}

    def _known(self, name: str | None) -> str | None:
        if name is None:
            return None
        return name if name in self.layers or IMAGE_LAYER.search(name) else None

    def _from_underscored(self, flat: str) -> str | None:
        if flat in self._underscored:
            return self._underscored[flat]
        # a layer the model lacks (an i2v image layer on a t2v base): rebuild its dots
        guess = re.sub(r"^blocks_(\d+)_(self_attn|cross_attn)_", r"blocks.\1.\2.", flat)
        guess = re.sub(r"^img_emb_proj_(\d+)$", r"img_emb.proj.\1", guess)
        return self._known(guess) if guess != flat else None

    def find(self, stem: str) -> tuple[str, str] | None:
        """``stem`` -> ``(layer, format)``, or None when it names no layer of a Wan DiT."""
        for prefix in ("model.diffusion_model.", "diffusion_model."):
            if stem.startswith(prefix):
                name = stem[len(prefix):]
                hit = self._known(name) or self._known(diffusers_to_original(name))
                return (hit, "comfyui") if hit else None
        for prefix, fmt in (("lora_unet__", "kohya"), ("lora_unet_", "kohya"), ("lycoris_", "lycoris")):
            if stem.startswith(prefix):
                hit = self._from_underscored(stem[len(prefix):])
                return (hit, fmt) if hit else None
        for prefix, fmt in (("transformer.", "diffusers"), ("base_model.model.", "peft")):
            if stem.startswith(prefix):
                name = stem[len(prefix):]
                hit = self._known(diffusers_to_original(name)) or self._known(name)
                return (hit, fmt) if hit else None
        hit = self._known(stem)
        return (hit, "original") if hit else None
