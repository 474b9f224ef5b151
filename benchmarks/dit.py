"""Benchmark: our Wan 2.1 DiT vs ComfyUI's ``comfy.ldm.wan.model.WanModel``, side by side.

Both models run in this one process on the same weights (ours adopts ComfyUI's tensors with
``load_state_dict(assign=True)``) and the same inputs, under ``torch.inference_mode``, each
timed as the median of several runs after a warm-up, interleaved. Cases: a small config
(dim 512, 4 layers) and the 1.3B width (dim 1536, ffn 8960, 12 heads) with 2 of its 30
layers, at 192 tokens (3x16x16 latent) and 1344 tokens (21x16x16), text 512 x 4096. Per
layer times come from hooks on the blocks; the 30-layer figure is ``rest + 30 * layer``.

ComfyUI runs with its PyTorch-SDPA attention (``attention_pytorch``, its default on NVIDIA
GPUs and with ``--use-pytorch-cross-attention``); ``--comfy-attention default`` keeps
whatever it picked here (on the CPU: sub-quadratic attention).

Peak memory: on CUDA ``torch.cuda.max_memory_allocated`` above what was allocated before
the forward; on the CPU the growth of the peak resident set (VmHWM, reset through
/proc/self/clear_refs) during one forward in a fresh subprocess (so that no heap pages
freed by an earlier run are reused): activations and temporaries, not the weights.

With CUDA it also times the full 1.3B model (30 layers, bf16) at 480x832x81 (latent
16x21x60x104, 32760 tokens), with its analytic FLOPs and model FLOP utilisation, and the
same with block streaming (models/wan/offload.py).

Run: ``.venv/bin/python benchmarks/dit.py [--repeats N] [--no-memory]``; the last line
printed is a JSON object with all the figures.
"""
from __future__ import annotations

import argparse
import gc
import json
import re
import statistics
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "scripts"))
from devpack import import_comfyui, import_pack  # noqa: E402

import_comfyui()
import_pack()

import comfy.ldm.modules.attention as comfy_attention  # noqa: E402
import comfy.ldm.wan.model as comfy_wan  # noqa: E402
import comfy.ops  # noqa: E402

from factorportrait.models.wan import T2V_1_3B, WanConfig, WanDiT  # noqa: E402
from factorportrait.models.wan.config import TEXT_LEN  # noqa: E402
from factorportrait.models.wan.offload import model_weight_bytes, stream_blocks  # noqa: E402

SMALL = WanConfig(dim=512, ffn_dim=2048, num_layers=4, num_heads=4)  # head_dim 128 as released
WIDTH_1_3B = WanConfig(dim=1536, ffn_dim=8960, num_layers=2, num_heads=12)  # 2 of 30 layers
FULL_LAYERS = 30
GPU_LATENT = (21, 60, 104)  # 81 frames at 480x832
PEAK_BF16 = [("H100 PCIe", 756e12), ("H100 NVL", 835e12), ("H100", 989e12), ("H200", 989e12),
             ("GH200", 989e12), ("A100", 312e12)]  # dense bf16 FLOP/s, no sparsity


@dataclass(frozen=True)
class Case:
    name: str
    config: WanConfig
    latent: tuple[int, int, int]  # (T, H, W) of the 16-channel latent

    @property
    def tokens(self) -> int:
        t, h, w = self.latent
        return t * (h // 2) * (w // 2)

    @property
    def label(self) -> str:
        t, h, w = self.latent
        return f"{self.name} {t}x{h}x{w} ({self.tokens} tok)"


CASES = [Case("small", SMALL, (3, 16, 16)), Case("small", SMALL, (21, 16, 16)),
         Case("1.3B-width", WIDTH_1_3B, (3, 16, 16)), Case("1.3B-width", WIDTH_1_3B, (21, 16, 16))]


# ---------------------------------------------------------------- models and inputs

@torch.no_grad()
def randomize(model: torch.nn.Module, seed: int) -> None:
    """Weights ~ N(0, 1/fan_in), norm weights ~ 1 + N(0, 0.1), biases and modulation ~ N(0, 0.1)."""
    gen = torch.Generator(next(model.parameters()).device).manual_seed(seed)
    for name, p in model.named_parameters():
        noise = torch.randn(p.shape, generator=gen, device=p.device, dtype=p.dtype)
        if "norm" in name and name.endswith("weight"):
            p.copy_(1 + 0.1 * noise)
        elif p.ndim >= 2 and "modulation" not in name:
            p.copy_(noise / p[0].numel() ** 0.5)
        else:
            p.copy_(0.1 * noise)


def build(config: WanConfig, dtype: torch.dtype, device, seed: int = 0):
    """ComfyUI's WanModel with random weights, and ours sharing the very same tensors."""
    theirs = comfy_wan.WanModel(
        model_type=config.model_type, patch_size=config.patch_size, in_dim=config.in_dim,
        dim=config.dim, ffn_dim=config.ffn_dim, freq_dim=config.freq_dim, text_dim=config.text_dim,
        out_dim=config.out_dim, num_heads=config.num_heads, num_layers=config.num_layers,
        qk_norm=config.qk_norm, cross_attn_norm=config.cross_attn_norm, eps=config.eps,
        device=device, dtype=dtype, operations=comfy.ops.disable_weight_init).eval()
    randomize(theirs, seed)  # ComfyUI keeps patch_embedding in float32 at any dtype
    ours = WanDiT(config, dtype=dtype, device="meta")
    ours.load_state_dict(theirs.state_dict(), strict=True, assign=True)
    return theirs, ours.eval()


def make_inputs(config: WanConfig, latent, dtype, device, seed: int = 1):
    gen = torch.Generator(device).manual_seed(seed)
    x = torch.randn(1, config.in_dim, *latent, generator=gen, device=device).to(dtype)
    context = torch.randn(1, TEXT_LEN, config.text_dim, generator=gen, device=device).to(dtype)
    return x, torch.tensor([500.0], device=device), context


def use_comfy_attention(which: str) -> str:
    if which == "pytorch":
        comfy_wan.optimized_attention = comfy_attention.attention_pytorch
    return comfy_wan.optimized_attention.__name__


# ---------------------------------------------------------------- timing

def sync(device) -> None:
    if torch.device(device).type == "cuda":
        torch.cuda.synchronize(device)


class BlockTimer:
    """Wall time of each block call, via forward hooks (CUDA events on the GPU)."""

    def __init__(self, blocks, device):
        self.cuda = torch.device(device).type == "cuda"
        self.times: list[float] = []
        self._pending: list = []
        self.hooks = [h for b in blocks for h in (b.register_forward_pre_hook(self._start),
                                                  b.register_forward_hook(self._stop))]

    def _now(self):
        if self.cuda:
            event = torch.cuda.Event(enable_timing=True)
            event.record()
            return event
        return time.perf_counter()

    def _start(self, *_):
        self._pending.append([self._now(), None])

    def _stop(self, *_):
        self._pending[-1][1] = self._now()

    def collect(self) -> list[float]:
        """Seconds per block of the calls since the last collect."""
        if self.cuda:
            torch.cuda.synchronize()
            out = [a.elapsed_time(b) / 1e3 for a, b in self._pending]
        else:
            out = [b - a for a, b in self._pending]
        self._pending = []
        return out

    def remove(self):
        for h in self.hooks:
            h.remove()


def time_pair(models: dict, inputs, device, repeats: int) -> dict:
    """Median forward and per-block times of each model, runs interleaved after a warm-up."""
    timers = {name: BlockTimer(m.blocks, device) for name, m in models.items()}
    runs = {name: [] for name in models}
    layers = {name: [] for name in models}
    for i in range(repeats + 1):
        for name, model in models.items():
            sync(device)
            t0 = time.perf_counter()
            out = model(*inputs)
            sync(device)
            elapsed = time.perf_counter() - t0
            blocks = timers[name].collect()
            del out
            if i:  # the first round is the warm-up
                runs[name].append(elapsed)
                layers[name].append(statistics.mean(blocks))
    for t in timers.values():
        t.remove()
    return {name: {"median_s": statistics.median(runs[name]), "runs_s": runs[name],
                   "layer_s": statistics.median(layers[name])} for name in models}


# ---------------------------------------------------------------- peak memory

def read_status(key: str) -> int:
    """A /proc/self/status field in bytes."""
    status = Path("/proc/self/status").read_text()
    return int(re.search(rf"^{key}:\s+(\d+) kB", status, re.M).group(1)) * 1024


def probe_memory(case_index: int, which: str, dtype_name: str, comfy_attn: str) -> None:
    """Subprocess entry: peak RSS growth during one forward, printed as JSON."""
    case, dtype = CASES[case_index], getattr(torch, dtype_name)
    use_comfy_attention(comfy_attn)
    theirs, ours = build(case.config, dtype, "cpu")
    inputs = make_inputs(case.config, case.latent, dtype, "cpu")
    model = {"ours": ours, "comfyui": theirs}[which]
    gc.collect()
    Path("/proc/self/clear_refs").write_text("5")  # VmHWM := VmRSS
    before = read_status("VmRSS")
    with torch.inference_mode():
        model(*inputs)
    print(json.dumps({"peak_increase_bytes": read_status("VmHWM") - before}))


def cpu_peak_memory(case_index: int, which: str, dtype_name: str, comfy_attn: str) -> int | None:
    cmd = [sys.executable, __file__, "--probe", str(case_index), which, dtype_name,
           "--comfy-attention", comfy_attn]
    done = subprocess.run(cmd, capture_output=True, text=True)
    try:
        return json.loads(done.stdout.strip().splitlines()[-1])["peak_increase_bytes"]
    except (IndexError, ValueError, KeyError):
        print(f"  memory probe failed: {done.stderr.strip()[-500:]}")
        return None


def cuda_peak_memory(model, inputs, device) -> int:
    sync(device)
    torch.cuda.reset_peak_memory_stats(device)
    before = torch.cuda.memory_allocated(device)
    out = model(*inputs)
    sync(device)
    del out
    return torch.cuda.max_memory_allocated(device) - before


# ---------------------------------------------------------------- FLOPs

def forward_flops(config: WanConfig, tokens: int, text_tokens: int = TEXT_LEN) -> float:
    """Multiply-adds x 2 of one forward (matrix products and attention only)."""
    L, Lt, d, f = tokens, text_tokens, config.dim, config.ffn_dim
    block = (4 * 2 * L * d * d  # self-attention q, k, v, o
             + 2 * 2 * L * L * d  # self-attention scores and values
             + 2 * 2 * L * d * d + 2 * 2 * Lt * d * d  # cross-attention q, o and k, v (text)
             + 2 * 2 * L * Lt * d  # cross-attention scores and values
             + 2 * 2 * L * d * f)  # FFN
    patch = 2 * L * config.in_dim * 4 * d + 2 * L * d * 4 * config.out_dim
    text = 2 * Lt * (config.text_dim * d + d * d)
    return config.num_layers * block + patch + text


def peak_flops(name: str) -> float | None:
    for key, flops in PEAK_BF16:
        if key in name:
            return flops
    return None


# ---------------------------------------------------------------- the runs

def mib(n: int | None) -> str:
    return "   n/a" if n is None else f"{n / 2**20:6.0f}"


def run_case(case_index: int, dtype: torch.dtype, device, args) -> dict:
    case = CASES[case_index]
    theirs, ours = build(case.config, dtype, device)
    inputs = make_inputs(case.config, case.latent, dtype, device)
    with torch.inference_mode():
        ref, out = theirs(*inputs).float(), ours(*inputs).float()
        diff = (out - ref).abs().max().item()
        rel = diff / ref.abs().max().item()
        del ref, out
        t = time_pair({"ours": ours, "comfyui": theirs}, inputs, device, args.repeats)
        memory = {}
        if args.memory:
            for name, model in (("ours", ours), ("comfyui", theirs)):
                memory[name] = (cuda_peak_memory(model, inputs, device) if torch.device(device).type == "cuda"
                                else cpu_peak_memory(case_index, name, str(dtype).split(".")[-1], args.comfy_attention))
    ours_s, comfy_s = t["ours"]["median_s"], t["comfyui"]["median_s"]
    rest = {k: t[k]["median_s"] - case.config.num_layers * t[k]["layer_s"] for k in t}
    full = {k: rest[k] + FULL_LAYERS * t[k]["layer_s"] for k in t}
    row = {"case": case.label, "config": case.name, "latent": list(case.latent), "tokens": case.tokens,
           "layers": case.config.num_layers, "dtype": str(dtype).split(".")[-1], "device": str(device),
           "ours_s": ours_s, "comfyui_s": comfy_s, "ratio_ours_over_comfyui": ours_s / comfy_s,
           "ours_layer_s": t["ours"]["layer_s"], "comfyui_layer_s": t["comfyui"]["layer_s"],
           "layer_ratio": t["ours"]["layer_s"] / t["comfyui"]["layer_s"],
           "max_abs_diff": diff, "max_rel_diff": rel,
           "peak_mem_ours_bytes": memory.get("ours"), "peak_mem_comfyui_bytes": memory.get("comfyui")}
    if case.config.num_layers < FULL_LAYERS:
        row.update(ours_30_layers_s=full["ours"], comfyui_30_layers_s=full["comfyui"])
    print(f"{case.label:34s} {row['dtype']:8s} ours {ours_s * 1e3:8.1f} ms  ComfyUI {comfy_s * 1e3:8.1f} ms  "
          f"ratio {ours_s / comfy_s:5.3f}  | per layer {t['ours']['layer_s'] * 1e3:7.1f} / "
          f"{t['comfyui']['layer_s'] * 1e3:7.1f} ms ({row['layer_ratio']:5.3f})"
          + (f"  | 30 layers ~{full['ours']:6.2f} / {full['comfyui']:6.2f} s" if "ours_30_layers_s" in row else "")
          + f"  | peak MiB {mib(memory.get('ours'))} / {mib(memory.get('comfyui'))}  | max diff {diff:.1e} (rel {rel:.1e})")
    return row


def gpu_full_model(args) -> dict:
    """The full 1.3B model in bf16 at 480x832x81 on the GPU, plain and block-streamed."""
    device = torch.device("cuda", torch.cuda.current_device())
    name = torch.cuda.get_device_name(device)
    config, dtype = T2V_1_3B, torch.bfloat16
    tokens = GPU_LATENT[0] * (GPU_LATENT[1] // 2) * (GPU_LATENT[2] // 2)
    flops = forward_flops(config, tokens)
    peak = peak_flops(name)
    theirs, ours = build(config, dtype, device)
    inputs = make_inputs(config, GPU_LATENT, dtype, device)
    weights = model_weight_bytes(ours)
    result = {"device_name": name, "latent": [16, *GPU_LATENT], "tokens": tokens, "layers": config.num_layers,
              "flops_per_forward": flops, "peak_bf16_flops": peak, "weight_bytes": weights.total}
    with torch.inference_mode():
        ref = ours(*inputs)
        diff = (ref.float() - theirs(*inputs).float()).abs().max().item()
        t = time_pair({"ours": ours, "comfyui": theirs}, inputs, device, args.gpu_repeats)
        mem = {k: cuda_peak_memory(m, inputs, device) for k, m in (("ours", ours), ("comfyui", theirs))}
        del theirs  # it shares the block tensors: free them, so streaming really leaves the GPU
        result.update(
            ours_s=t["ours"]["median_s"], comfyui_s=t["comfyui"]["median_s"],
            ratio_ours_over_comfyui=t["ours"]["median_s"] / t["comfyui"]["median_s"],
            ours_tflops=flops / t["ours"]["median_s"] / 1e12,
            mfu=flops / t["ours"]["median_s"] / peak if peak else None,
            comfyui_mfu=flops / t["comfyui"]["median_s"] / peak if peak else None,
            max_abs_diff_vs_comfyui=diff,
            peak_activation_bytes_ours=mem["ours"], peak_activation_bytes_comfyui=mem["comfyui"])
        print(f"\nGPU {name}: 1.3B bf16, 30 layers, latent 16x{'x'.join(map(str, GPU_LATENT))} ({tokens} tokens), "
              f"{flops / 1e12:.1f} TFLOP per forward")
        print(f"  step (one forward): ours {result['ours_s'] * 1e3:.1f} ms, ComfyUI {result['comfyui_s'] * 1e3:.1f} ms, "
              f"ratio {result['ratio_ours_over_comfyui']:.3f}; max diff {diff:.2e}")
        print(f"  ours {result['ours_tflops']:.0f} TFLOP/s" + (f", MFU {result['mfu'] * 100:.1f}% of "
              f"{peak / 1e12:.0f} TFLOP/s (ComfyUI {result['comfyui_mfu'] * 100:.1f}%)" if peak else ""))
        print(f"  peak memory above weights: ours {mem['ours'] / 2**30:.2f} GiB, ComfyUI {mem['comfyui'] / 2**30:.2f} GiB "
              f"(weights {weights.total / 2**30:.2f} GiB)")
        for prefetch in (1, 0):
            streamer = stream_blocks(ours, device, prefetch=prefetch)
            gc.collect()
            torch.cuda.empty_cache()
            resident = torch.cuda.memory_allocated(device)
            out = ours(*inputs)
            same = torch.equal(out, ref)
            del out
            s = time_pair({"streamed": ours}, inputs, device, args.gpu_repeats)["streamed"]["median_s"]
            peak_bytes = cuda_peak_memory(ours, inputs, device) + resident
            streamer.remove()
            result[f"streamed_prefetch{prefetch}"] = {
                "s": s, "slowdown": s / result["ours_s"], "bit_identical": same,
                "peak_allocated_bytes": peak_bytes, "resident_weights_bytes": resident,
                "bound_weights_bytes": weights.resident(prefetch)}
            print(f"  streamed, prefetch {prefetch}: {s * 1e3:.1f} ms ({s / result['ours_s']:.2f}x), "
                  f"peak allocated {peak_bytes / 2**30:.2f} GiB (weights resident {resident / 2**30:.2f} GiB, "
                  f"streamed bound {weights.resident(prefetch) / 2**30:.2f} GiB), identical output: {same}")
    return result


def cpu_has_bf16() -> bool:
    flags = Path("/proc/cpuinfo").read_text() if Path("/proc/cpuinfo").exists() else ""
    return "avx512_bf16" in flags or "amx_bf16" in flags


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--gpu-repeats", type=int, default=5)
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu",
                        help="device of the side-by-side cases")
    parser.add_argument("--no-memory", dest="memory", action="store_false")
    parser.add_argument("--comfy-attention", choices=["pytorch", "default"], default="pytorch")
    parser.add_argument("--probe", nargs=3, metavar=("CASE", "MODEL", "DTYPE"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.probe:
        return probe_memory(int(args.probe[0]), args.probe[1], args.probe[2], args.comfy_attention)

    attention = use_comfy_attention(args.comfy_attention)
    device = torch.device(args.device)
    dtypes = [torch.float32]
    if device.type == "cuda" or cpu_has_bf16():
        dtypes.append(torch.bfloat16)
    print(f"torch {torch.__version__}, device {device}, {torch.get_num_threads()} CPU threads; "
          f"ComfyUI attention: {attention}; text {TEXT_LEN}x4096; batch 1; median of {args.repeats} runs")
    if device.type == "cpu" and not cpu_has_bf16():
        print("bf16 skipped on this CPU (no avx512_bf16/amx: bf16 matmuls would be emulated)")
    print("peak memory: " + ("torch.cuda.max_memory_allocated above the allocation before the forward"
                             if device.type == "cuda" else
                             "growth of peak RSS (VmHWM) during one forward, in a fresh subprocess"))
    rows = [run_case(i, dtype, device, args) for dtype in dtypes for i in range(len(CASES))]
    figures = {"torch": torch.__version__, "device": str(device), "threads": torch.get_num_threads(),
               "comfyui_attention": attention, "cases": rows,
               "worst_ratio_ours_over_comfyui": max(r["ratio_ours_over_comfyui"] for r in rows)}
    figures["target_met_ratio_at_most_1"] = figures["worst_ratio_ours_over_comfyui"] <= 1.0
    if torch.cuda.is_available():
        figures["gpu_1_3b_480x832x81"] = gpu_full_model(args)
    else:
        print("no CUDA: the 1.3B step time at 480x832x81 and its MFU are measured only on a GPU")
    print(f"worst ours/ComfyUI ratio: {figures['worst_ratio_ours_over_comfyui']:.3f} (target <= 1.0)")
    print(json.dumps(figures))


if __name__ == "__main__":
    main()
