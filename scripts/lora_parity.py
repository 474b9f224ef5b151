"""Parity of the pack's LoRA loader with ComfyUI's own LoraLoaderModelOnly, for the tests
(tests/integration/test_lora_parity.py) and the benchmark (benchmarks/sampling.py).

One tiny random Wan 2.1 t2v DiT (ComfyUI detects it from its keys: width 128, one head,
two blocks) and one set of random LoRA tensors, written in each format users have. ComfyUI
loads the same change from a file in a format it reads for Wan (its generic
``diffusion_model.`` keys, or kohya's ``lora_unet_``); this module's table of diffusers
names is the ground truth for the ``transformer.`` format. Both models then run the same
inputs in float32; the pack's model runs with the LoRA merged and hooked beside the layers.

Needs the host importable (``devpack.import_comfyui()``) before import.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import comfy.sd
import folder_paths
import nodes as comfy_nodes
import torch
from safetensors.torch import save_file

from factorportrait.models.lora import merged, read_lora, unmerged
from factorportrait.models.wan import WanConfig, WanDiT

TOL = 1e-4  # max |pack - ComfyUI| over outputs of about unit size, both float32
RANK, ALPHA, STRENGTH = 4, 2.0, 0.8
TINY = dict(dim=128, ffn_dim=64, num_layers=2, num_heads=1)  # text_dim 4096, as ComfyUI expects
BLOCK_LAYERS = ("self_attn.q", "self_attn.k", "self_attn.v", "self_attn.o", "cross_attn.q",
                "cross_attn.k", "cross_attn.v", "cross_attn.o", "ffn.0", "ffn.2")
OTHER_LAYERS = ("text_embedding.0", "time_projection.1", "head.head", "patch_embedding")
# Ground truth for the diffusers format: WanTransformer3DModel's names of these layers.
DIFFUSERS_NAME = {
    "self_attn.q": "attn1.to_q", "self_attn.k": "attn1.to_k", "self_attn.v": "attn1.to_v",
    "self_attn.o": "attn1.to_out.0", "cross_attn.q": "attn2.to_q", "cross_attn.k": "attn2.to_k",
    "cross_attn.v": "attn2.to_v", "cross_attn.o": "attn2.to_out.0", "ffn.0": "ffn.net.0.proj",
    "ffn.2": "ffn.net.2", "text_embedding.0": "condition_embedder.text_embedder.linear_1",
    "time_projection.1": "condition_embedder.time_proj", "head.head": "proj_out",
    "patch_embedding": "patch_embedding",
}
FORMATS = ("comfyui", "kohya", "diffusers", "peft", "lycoris", "diff", "original")


def layers() -> list[str]:
    return [f"blocks.{i}.{n}" for i in range(TINY["num_layers"]) for n in BLOCK_LAYERS] + list(OTHER_LAYERS)


def diffusers_name(layer: str) -> str:
    if layer.startswith("blocks."):
        _, i, rest = layer.split(".", 2)
        return f"blocks.{i}.{DIFFUSERS_NAME[rest]}"
    return DIFFUSERS_NAME[layer]


def flat(layer: str) -> str:
    return layer.replace(".", "_")


def random_wan_state() -> dict[str, torch.Tensor]:
    """A random Wan 2.1 t2v state dict (original keys), weights ~ N(0, 1/fan_in)."""
    shapes = WanDiT(WanConfig(**TINY), device="meta").state_dict()
    gen = torch.Generator().manual_seed(0)
    state = {}
    for k, v in shapes.items():
        noise = torch.randn(v.shape, generator=gen)
        if "norm" in k and k.endswith("weight"):
            state[k] = 1 + 0.1 * noise
        elif v.ndim >= 2 and "modulation" not in k:
            state[k] = noise / v[0].numel() ** 0.5
        else:
            state[k] = 0.1 * noise
    return state


def random_factors(base_state) -> dict[str, tuple[torch.Tensor, torch.Tensor]]:
    """``layer -> (down [r, in], up [out, r])`` big enough to change the output clearly."""
    gen = torch.Generator().manual_seed(1)
    out = {}
    for layer in layers():
        w = base_state[f"{layer}.weight"].flatten(1)
        out[layer] = (torch.randn(RANK, w.shape[1], generator=gen) / w.shape[1] ** 0.5,
                      torch.randn(w.shape[0], RANK, generator=gen) * 0.3 / RANK ** 0.5)
    return out


def lora_keys(factors, stem, down_role="lora_down.weight", up_role="lora_up.weight", alpha=True):
    t = {}
    for layer, (down, up) in factors.items():
        s = stem(layer)
        t[f"{s}.{down_role}"], t[f"{s}.{up_role}"] = down, up
        if alpha:
            t[f"{s}.alpha"] = torch.tensor(ALPHA)
    return t


def lycoris_tensors(base_state, prefix: str) -> dict[str, torch.Tensor]:
    """LoHa on the self-attention, LoKr on the MLP (factored w2), under ``prefix``."""
    gen = torch.Generator().manual_seed(2)
    t = {}
    for i in range(TINY["num_layers"]):
        for name in ("self_attn.q", "self_attn.o"):
            out_f, in_f = base_state[f"blocks.{i}.{name}.weight"].shape
            s = f"{prefix}{flat(f'blocks.{i}.{name}')}"
            t[f"{s}.hada_w1_a"] = torch.randn(out_f, 2, generator=gen) * 0.4
            t[f"{s}.hada_w1_b"] = torch.randn(2, in_f, generator=gen) * 0.4
            t[f"{s}.hada_w2_a"] = torch.randn(out_f, 2, generator=gen) * 0.4
            t[f"{s}.hada_w2_b"] = torch.randn(2, in_f, generator=gen) * 0.4
            t[f"{s}.alpha"] = torch.tensor(1.0)
        for name in ("ffn.0", "ffn.2"):
            out_f, in_f = base_state[f"blocks.{i}.{name}.weight"].shape
            s = f"{prefix}{flat(f'blocks.{i}.{name}')}"
            t[f"{s}.lokr_w1"] = torch.randn(4, 4, generator=gen) * 0.6
            t[f"{s}.lokr_w2_a"] = torch.randn(out_f // 4, 2, generator=gen) * 0.1
            t[f"{s}.lokr_w2_b"] = torch.randn(2, in_f // 4, generator=gen) * 0.1
            t[f"{s}.alpha"] = torch.tensor(2.0)
    return t


def diff_tensors(base_state) -> dict[str, torch.Tensor]:
    """Full differences as in lightx2v's files: weights, biases, a norm. (Not a block's
    modulation: ComfyUI 0.3.75 patches only parameters of leaf modules, so it leaves a
    ``blocks.N.modulation.diff`` unapplied; the pack applies it, tested in
    tests/unit/test_lora.py.)"""
    gen = torch.Generator().manual_seed(3)
    t = {}
    for key in ("blocks.0.cross_attn.v.weight", "blocks.1.ffn.2.weight", "blocks.0.norm3.weight",
                "head.head.weight"):
        t[f"diffusion_model.{key.removesuffix('.weight')}.diff"] = 0.05 * torch.randn(
            base_state[key].shape, generator=gen)
    for key in ("blocks.0.cross_attn.v.bias", "blocks.1.ffn.0.bias", "blocks.0.norm3.bias"):
        t[f"diffusion_model.{key.removesuffix('.bias')}.diff_b"] = 0.05 * torch.randn(
            base_state[key].shape, generator=gen)
    return t


def format_files(base_state, factors) -> dict[str, tuple[dict, dict]]:
    """format -> (the file in that format, the same change in a format ComfyUI reads for Wan)."""
    comfy = lora_keys(factors, lambda n: f"diffusion_model.{n}")
    comfy_no_alpha = lora_keys(factors, lambda n: f"diffusion_model.{n}", alpha=False)
    return {
        "comfyui": (comfy, comfy),
        "kohya": (lora_keys(factors, lambda n: f"lora_unet_{flat(n)}"), comfy),
        "diffusers": (lora_keys(factors, lambda n: f"transformer.{diffusers_name(n)}", "lora_A.weight",
                                "lora_B.weight", alpha=False), comfy_no_alpha),
        "peft": (lora_keys(factors, lambda n: f"base_model.model.{n}", "lora_A.weight", "lora_B.weight",
                           alpha=False), comfy_no_alpha),
        "lycoris": (lycoris_tensors(base_state, "lycoris_"), lycoris_tensors(base_state, "lora_unet_")),
        "diff": (diff_tensors(base_state), diff_tensors(base_state)),
        "original": (lora_keys(factors, lambda n: n, "lora_A.default.weight", "lora_B.default.weight"), comfy),
    }


def use_lora_folder(folder: Path) -> None:
    folder_paths.add_model_folder_path("loras", str(folder))


def write(folder: Path, name: str, tensors: dict) -> str:
    save_file({k: v.contiguous() for k, v in tensors.items()}, str(folder / name))
    return name


def comfy_output(base_state, files: list[tuple[str, float]], inputs) -> torch.Tensor:
    """ComfyUI's Wan model with LoraLoaderModelOnly applied for each (file, strength)."""
    patcher = comfy.sd.load_diffusion_model_state_dict({k: v.clone() for k, v in base_state.items()})
    for name, strength in files:
        patcher = comfy_nodes.LoraLoaderModelOnly().load_lora_model_only(patcher, name, strength)[0]
    patcher.patch_model(device_to=torch.device("cpu"))
    try:
        with torch.no_grad():
            return patcher.model.diffusion_model(*inputs).float()
    finally:
        patcher.unpatch_model()


def ours(base_state) -> WanDiT:
    model = WanDiT(WanConfig.from_state_dict(base_state))
    model.load_state_dict(base_state, strict=True)
    return model.eval()


def model_inputs():
    gen = torch.Generator().manual_seed(4)
    return (torch.randn(1, 16, 2, 8, 8, generator=gen), torch.tensor([700.0]),
            torch.randn(1, 6, 4096, generator=gen))


@dataclass
class FormatParity:
    fmt: str
    change: float  # max |output with the LoRA - without| (ComfyUI's)
    merged_diff: float  # max |pack merged - ComfyUI|
    hooked_diff: float  # max |pack hooked - ComfyUI|
    not_applied: list[str]  # keys the pack did not apply (should be none)
    restored: bool  # the pack's model equals its base again afterwards

    @property
    def matches(self) -> bool:
        return (self.change > 0.05 and self.merged_diff <= TOL and self.hooked_diff <= TOL
                and not self.not_applied and self.restored)


def check_format(fmt: str, folder: Path, base_state=None, factors=None, inputs=None) -> FormatParity:
    """Write ``fmt``'s file and its ComfyUI twin into ``folder`` (a registered loras
    folder, :func:`use_lora_folder`) and compare the outputs."""
    base_state = base_state if base_state is not None else random_wan_state()
    factors = factors if factors is not None else random_factors(base_state)
    inputs = inputs if inputs is not None else model_inputs()
    file, reference = format_files(base_state, factors)[fmt]
    mine = write(folder, f"{fmt}.safetensors", file)
    ref = write(folder, f"{fmt}_as_comfyui.safetensors", reference)
    expected = comfy_output(base_state, [(ref, STRENGTH)], inputs)
    model = ours(base_state)
    with torch.no_grad():
        plain = model(*inputs)
        lora = read_lora(str(folder / mine), model)
        with merged(model, [(lora, STRENGTH)]):
            out_merged = model(*inputs)
        with unmerged(model, [(lora, STRENGTH)]):
            out_hooked = model(*inputs)
        restored = torch.equal(model(*inputs), plain)
    return FormatParity(fmt, (expected - plain).abs().max().item(), (out_merged - expected).abs().max().item(),
                        (out_hooked - expected).abs().max().item(),
                        lora.unmatched + lora.unsupported + lora.errors + lora.image_skipped, restored)
