"""Named sampler settings that go with particular weights.

``step_distill_4``: for Wan 2.1 step-distill LoRAs (lightx2v's CFG + step distillation,
e.g. ``lightx2v_T2V_14B_cfg_step_distill_lora``): 4 Euler steps at the fixed timesteps
1000/750/500/250 with shift 5, no guidance (cfg 1: one network pass per step), as
lightx2v's ``wan_t2v_distill_4step_cfg`` config samples them.
"""
from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class SamplerPreset:
    steps: int
    cfg: float
    expression_cfg: float
    shift: float
    solver: str
    timesteps: tuple[int, ...] | None = None  # fixed Wan timesteps instead of the 'simple' schedule


PRESETS = {
    "step_distill_4": SamplerPreset(steps=4, cfg=1.0, expression_cfg=1.0, shift=5.0, solver="euler",
                                    timesteps=(1000, 750, 500, 250)),
}
