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

Peak memory of one forward above what was allocated before it (activations and
temporaries, not the weights): on CUDA ``torch.cuda.max_memory_allocated``; on the CPU the
growth of the peak resident set (VmHWM, reset through /proc/self/clear_refs, after
``malloc_trim`` has handed freed heap pages back so that their reuse counts again).

Timing on a shared machine is noisy: the models run in rounds (one run each, the order
alternating), and beside the ratio of the medians are printed the median of the rounds'
ratios ("paired", robust to load that changes between rounds) and the ratio of minimums;
on the CPU also the process CPU time (with ``--threads 1`` nearly immune to other jobs).

With CUDA it also times the full 1.3B model (30 layers, bf16) at 480x832x81 (latent
16x21x60x104, 32760 tokens), with its analytic FLOPs and model FLOP utilisation, and the
same with block streaming (models/wan/offload.py).

Run: ``.venv/bin/python benchmarks/dit.py [--case-budget S] [--threads N] [--no-memory]``
(a few minutes on a 2-core CPU); the last line printed is a JSON object with all the figures.
"""
from __future__ import annotations

import argparse
import ctypes
import gc
import json
import math
import re
import statistics
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "scripts"))
from devpack import import_comfyui, import_pack  # noqa: E402
from random_weights import randomize  # noqa: E402

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


def time_models(models: dict, inputs, device, repeats: int) -> dict:
    """Forward and per-block times of each model: ``repeats`` rounds (the models' order
    alternating between rounds), after the warm-up the caller has done."""
    timers = {name: BlockTimer(m.blocks, device) for name, m in models.items()}
    runs = {name: [] for name in models}
    cpu = {name: [] for name in models}
    layers = {name: [] for name in models}
    for i in range(repeats):
        for name in (list(models) if i % 2 == 0 else list(models)[::-1]):
            sync(device)
            t0, c0 = time.perf_counter(), time.process_time()
            out = models[name](*inputs)
            sync(device)
            runs[name].append(time.perf_counter() - t0)
            cpu[name].append(time.process_time() - c0)
            layers[name].append(statistics.mean(timers[name].collect()))
            del out
    for t in timers.values():
        t.remove()
    return {name: {"median_s": statistics.median(runs[name]), "min_s": min(runs[name]),
                   "runs_s": [round(r, 5) for r in runs[name]], "cpu_s": statistics.median(cpu[name]),
                   "layer_s": statistics.median(layers[name])} for name in models}


# ---------------------------------------------------------------- peak memory

def read_status(key: str) -> int:
    """A /proc/self/status field in bytes."""
    status = Path("/proc/self/status").read_text()
    return int(re.search(rf"^{key}:\s+(\d+) kB", status, re.M).group(1)) * 1024


def _libc():
    try:
        return ctypes.CDLL("libc.so.6")
    except OSError:
        return None


LIBC = _libc()


def cpu_peak_memory(model, inputs) -> int | None:
    """Growth of the peak resident set during one forward. Freed heap pages are handed back
    first (malloc_trim), so pages an earlier run left behind are counted again when reused;
    the peak is reset through /proc/self/clear_refs. None where that is not available."""
    gc.collect()
    if LIBC is not None:
        LIBC.malloc_trim(0)
    try:
        Path("/proc/self/clear_refs").write_text("5")  # VmHWM := VmRSS
        before = read_status("VmRSS")
    except (OSError, AttributeError):
        return None
    out = model(*inputs)
    del out
    return read_status("VmHWM") - before


def cuda_peak_memory(model, inputs, device) -> tuple[int, int]:
    """(peak allocated above what was allocated before the forward, absolute peak)."""
    sync(device)
    torch.cuda.reset_peak_memory_stats(device)
    before = torch.cuda.memory_allocated(device)
    out = model(*inputs)
    sync(device)
    del out
    peak = torch.cuda.max_memory_allocated(device)
    return peak - before, peak


def peak_memory(model, inputs, device) -> int | None:
    if torch.device(device).type == "cuda":
        return cuda_peak_memory(model, inputs, device)[0]
    return cpu_peak_memory(model, inputs)


# ---------------------------------------------------------------- FLOPs

def forward_flops(config: WanConfig, tokens: int, text_tokens: int = TEXT_LEN) -> float:
    """Multiply-adds x 2 of one forward (matrix products and attention only)."""
    L, Lt, d, f = tokens, text_tokens, config.dim, config.ffn_dim
    block = (4 * 2 * L * d * d  # self-attention q, k, v, o
             + 2 * 2 * L * L * d  # self-attention scores and values
             + 2 * 2 * L * d * d + 2 * 2 * Lt * d * d  # cross-attention q, o and k, v (text)
             + 2 * 2 * L * Lt * d  # cross-attention scores and values
             + 2 * 2 * L * d * f)  # FFN
    patch = 2 * L * math.prod(config.patch_size) * d * (config.in_dim + config.out_dim)  # in and head
    text = 2 * Lt * (config.text_dim * d + d * d)
    return config.num_layers * block + patch + text


def peak_flops(name: str) -> float | None:
    for key, flops in PEAK_BF16:
        if key in name:
            return flops
    return None


# ---------------------------------------------------------------- the runs

def mib(n: int | None) -> str:
    return "n/a" if n is None else f"{n / 2**20:.0f}"


def dtype_name(dtype: torch.dtype) -> str:
    return str(dtype).removeprefix("torch.")


def run_case(case: Case, dtype: torch.dtype, device, args) -> dict:
    theirs, ours = build(case.config, dtype, device)
    inputs = make_inputs(case.config, case.latent, dtype, device)
    models = {"ours": ours, "comfyui": theirs}
    with torch.inference_mode():
        sync(device)
        t0 = time.perf_counter()
        ref, out = theirs(*inputs).float(), ours(*inputs).float()  # also the warm-up
        sync(device)
        pair_s = time.perf_counter() - t0
        diff = (out - ref).abs().max().item()
        rel = diff / ref.abs().max().item()
        del ref, out
        memory = {k: peak_memory(m, inputs, device) for k, m in models.items()} if args.memory else {}
        repeats = max(args.min_repeats, min(args.repeats, int(args.case_budget / pair_s)))
        t = time_models(models, inputs, device, repeats)
    o, c = t["ours"], t["comfyui"]
    paired = statistics.median(a / b for a, b in zip(o["runs_s"], c["runs_s"]))  # same round
    row = {"case": case.label, "config": case.name, "latent": list(case.latent), "tokens": case.tokens,
           "layers": case.config.num_layers, "dtype": dtype_name(dtype), "device": str(device),
           "repeats": repeats, "ours_s": o["median_s"], "comfyui_s": c["median_s"],
           "ratio_ours_over_comfyui": o["median_s"] / c["median_s"],
           "paired_ratio": paired, "ours_min_s": o["min_s"], "comfyui_min_s": c["min_s"],
           "ratio_of_mins": o["min_s"] / c["min_s"],
           "ours_cpu_s": o["cpu_s"], "comfyui_cpu_s": c["cpu_s"], "cpu_time_ratio": o["cpu_s"] / c["cpu_s"],
           "ours_layer_s": o["layer_s"], "comfyui_layer_s": c["layer_s"],
           "layer_ratio": o["layer_s"] / c["layer_s"],
           "ours_runs_s": o["runs_s"], "comfyui_runs_s": c["runs_s"],
           "max_abs_diff": diff, "max_rel_diff": rel,
           "peak_mem_ours_bytes": memory.get("ours"), "peak_mem_comfyui_bytes": memory.get("comfyui")}
    cpu_note = (f"; CPU time {o['cpu_s'] * 1e3:.0f} / {c['cpu_s'] * 1e3:.0f} ms ({row['cpu_time_ratio']:.3f})"
                if torch.device(device).type == "cpu" else "")
    print(f"{case.label} {row['dtype']}, {repeats} rounds: ours {o['median_s'] * 1e3:.1f} ms, ComfyUI "
          f"{c['median_s'] * 1e3:.1f} ms, ratio {row['ratio_ours_over_comfyui']:.3f} (paired {paired:.3f}, "
          f"of minimums {row['ratio_of_mins']:.3f}){cpu_note}")
    line = f"    per layer {o['layer_s'] * 1e3:.1f} / {c['layer_s'] * 1e3:.1f} ms ({row['layer_ratio']:.3f})"
    if case.config.num_layers < FULL_LAYERS:  # rest + 30 layers
        for k, v in (("ours", o), ("comfyui", c)):
            row[f"{k}_30_layers_s"] = v["median_s"] + (FULL_LAYERS - case.config.num_layers) * v["layer_s"]
        line += f", 30 layers ~{row['ours_30_layers_s']:.2f} / {row['comfyui_30_layers_s']:.2f} s"
    line += (f"; peak memory {mib(memory.get('ours'))} / {mib(memory.get('comfyui'))} MiB"
             f"; max |ours - ComfyUI| {diff:.1e} (relative {rel:.1e})")
    print(line, flush=True)
    return row


def gpu_full_model(args) -> dict:
    """The full 1.3B model in bf16 at 480x832x81 on the GPU, plain and block-streamed."""
    device = torch.device("cuda", torch.cuda.current_device())
    name = torch.cuda.get_device_name(device)
    config, dtype = T2V_1_3B, torch.bfloat16
    tokens = GPU_LATENT[0] * (GPU_LATENT[1] // 2) * (GPU_LATENT[2] // 2)
    flops, peak = forward_flops(config, tokens), peak_flops(name)
    theirs, ours = build(config, dtype, device)
    inputs = make_inputs(config, GPU_LATENT, dtype, device)
    weights = model_weight_bytes(ours)
    result = {"device_name": name, "latent": [16, *GPU_LATENT], "tokens": tokens, "layers": config.num_layers,
              "dtype": "bfloat16", "flops_per_forward": flops, "peak_bf16_flops": peak,
              "weight_bytes": weights.total}
    with torch.inference_mode():
        ref = ours(*inputs)  # also the warm-ups
        diff = (ref.float() - theirs(*inputs).float()).abs().max().item()
        t = time_models({"ours": ours, "comfyui": theirs}, inputs, device, args.gpu_repeats)
        mem = {k: cuda_peak_memory(m, inputs, device) for k, m in (("ours", ours), ("comfyui", theirs))}
        o, c = t["ours"]["median_s"], t["comfyui"]["median_s"]
        result.update(
            ours_s=o, comfyui_s=c, ratio_ours_over_comfyui=o / c, ours_runs_s=t["ours"]["runs_s"],
            comfyui_runs_s=t["comfyui"]["runs_s"], ours_tflops=flops / o / 1e12,
            comfyui_tflops=flops / c / 1e12, mfu=flops / o / peak if peak else None,
            comfyui_mfu=flops / c / peak if peak else None, max_abs_diff_vs_comfyui=diff,
            peak_above_start_bytes_ours=mem["ours"][0], peak_above_start_bytes_comfyui=mem["comfyui"][0],
            peak_allocated_bytes_ours=mem["ours"][1])
        latent = "x".join(map(str, GPU_LATENT))
        print(f"\nGPU {name}: 1.3B bf16, {config.num_layers} layers, latent 16x{latent} ({tokens} tokens), "
              f"{flops / 1e12:.1f} TFLOP per forward")
        print(f"  step (one forward): ours {o * 1e3:.1f} ms, ComfyUI {c * 1e3:.1f} ms, ratio {o / c:.3f}; "
              f"max diff {diff:.2e}")
        print(f"  ours {flops / o / 1e12:.0f} TFLOP/s, ComfyUI {flops / c / 1e12:.0f} TFLOP/s"
              + (f"; MFU ours {flops / o / peak:.1%}, ComfyUI {flops / c / peak:.1%} of {peak / 1e12:.0f} "
                 "TFLOP/s dense bf16" if peak else " (no peak figure known for this GPU: no MFU)"))
        print(f"  peak memory of a forward above its start: ours {mem['ours'][0] / 2**30:.2f} GiB, ComfyUI "
              f"{mem['comfyui'][0] / 2**30:.2f} GiB; ours' absolute peak {mem['ours'][1] / 2**30:.2f} GiB "
              f"(weights {weights.total / 2**30:.2f} GiB)")
        del theirs, t  # it shares the block tensors: free them, so that streaming empties the GPU
        for prefetch in (1, 0):
            streamer = stream_blocks(ours, device, prefetch=prefetch)
            gc.collect()
            torch.cuda.empty_cache()
            resident = torch.cuda.memory_allocated(device)  # rest of the weights, inputs, ref
            same = torch.equal(ours(*inputs), ref)  # also the warm-up
            s = time_models({"streamed": ours}, inputs, device, args.gpu_repeats)["streamed"]["median_s"]
            _, peak_bytes = cuda_peak_memory(ours, inputs, device)
            streamer.remove()
            result[f"streamed_prefetch{prefetch}"] = {
                "s": s, "slowdown": s / o, "bit_identical": same, "peak_allocated_bytes": peak_bytes,
                "resident_before_bytes": resident, "weights_bound_bytes": weights.resident(prefetch)}
            gib = {k: v / 2**30 for k, v in (("peak", peak_bytes), ("plain", mem["ours"][1]),
                                              ("resident", resident), ("bound", weights.resident(prefetch)))}
            print(f"  streamed, prefetch {prefetch}: {s * 1e3:.1f} ms ({s / o:.2f}x), peak allocated "
                  f"{gib['peak']:.2f} GiB (vs {gib['plain']:.2f} unstreamed; resident before "
                  f"{gib['resident']:.2f} GiB, weight bound {gib['bound']:.2f} GiB), identical output: {same}",
                  flush=True)
    return result


def cpu_has_bf16() -> bool:
    flags = Path("/proc/cpuinfo").read_text() if Path("/proc/cpuinfo").exists() else ""
    return "avx512_bf16" in flags or "amx_bf16" in flags


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=9, help="most timed rounds per case")
    parser.add_argument("--min-repeats", type=int, default=3, help="fewest timed rounds per case")
    parser.add_argument("--case-budget", type=float, default=20.0,
                        help="seconds of timed rounds per case (between --min-repeats and --repeats)")
    parser.add_argument("--gpu-repeats", type=int, default=5)
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu",
                        help="device of the side-by-side cases")
    parser.add_argument("--no-memory", dest="memory", action="store_false")
    parser.add_argument("--comfy-attention", choices=["pytorch", "default"], default="pytorch")
    parser.add_argument("--threads", type=int, help="CPU threads (default: torch's); 1 is steadier "
                        "on a machine shared with other jobs")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)

    attention = use_comfy_attention(args.comfy_attention)
    device = torch.device(args.device)
    dtypes = [torch.float32] + ([torch.bfloat16] if device.type == "cuda" or cpu_has_bf16() else [])
    print(f"torch {torch.__version__}, device {device}, {torch.get_num_threads()} CPU threads; ComfyUI "
          f"attention {attention}; batch 1, text {TEXT_LEN}x4096; medians of interleaved runs "
          "after a warm-up")
    if len(dtypes) == 1:
        print("bf16 skipped on this CPU (no avx512_bf16/amx: bf16 matrix products would be emulated)")
    print("peak memory of one forward above its start (activations, not weights): "
          + ("torch.cuda.max_memory_allocated" if device.type == "cuda" else "growth of VmHWM (peak RSS)"))
    rows = [run_case(case, dtype, device, args) for dtype in dtypes for case in CASES]
    worst = max(r["ratio_ours_over_comfyui"] for r in rows)
    worst_paired = max(r["paired_ratio"] for r in rows)
    figures = {"torch": torch.__version__, "device": str(device), "threads": torch.get_num_threads(),
               "comfyui_attention": attention, "cases": rows, "worst_ratio_ours_over_comfyui": worst,
               "worst_paired_ratio": worst_paired,
               "worst_ratio_of_mins": max(r["ratio_of_mins"] for r in rows),
               "target_met_ratio_at_most_1": worst <= 1.0,
               "target_met_paired_ratio_at_most_1": worst_paired <= 1.0}
    if device.type == "cpu":
        figures["worst_cpu_time_ratio"] = max(r["cpu_time_ratio"] for r in rows)
    if torch.cuda.is_available():
        figures["gpu_1_3b_480x832x81"] = gpu_full_model(args)
    else:
        print("no CUDA: the 1.3B step time at 480x832x81 and its MFU are measured only on a GPU")
    print(f"worst ours/ComfyUI ratio: {worst:.3f} of medians, {worst_paired:.3f} paired (median of the "
          f"rounds' ratios), {figures['worst_ratio_of_mins']:.3f} of minimums"
          + (f", {figures['worst_cpu_time_ratio']:.3f} of CPU times" if device.type == "cpu" else "")
          + " (target <= 1.0)")
    print(json.dumps(figures))


if __name__ == "__main__":
    main()
