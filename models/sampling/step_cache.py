"""Step caching: skip the transformer blocks on steps where their input barely changed.

Between neighbouring sampling steps a DiT's blocks often map nearly the same input to nearly
the same output. Like EasyCache (Zhou et al. 2025) this needs no model-specific fit: at each
fully computed step it measures the blocks' *transformation rate*

    k = rel_change(output) / rel_change(input)          rel_change(a) = mean|a - a_prev| / mean|a_prev|

between the last two computed steps, and on the following steps it accumulates the
predicted output change ``k * rel_change(input)``. While that sum stays under
``threshold`` the step reuses the last computed residual ``output - input`` (one addition
instead of every block); once it exceeds it, the blocks run again and the sum restarts.
Steps before ``start`` and after ``end`` (fractions of the run) always compute: the first
steps set the layout, the last ones the detail.

Caches are kept per key (a window of latent frames), so windowed long videos reuse each
window's own residual. ``threshold = 0`` computes every step.
"""
from __future__ import annotations

import contextlib
from dataclasses import dataclass, field

import torch

from ..errors import InputError


@dataclass(frozen=True)
class StepCacheSettings:
    threshold: float  # accumulated predicted relative output change allowed before recomputing
    start: float = 0.2  # fraction of the steps that always compute first
    end: float = 1.0  # fraction of the steps after which every step computes

    def __post_init__(self):
        if not self.threshold >= 0:
            raise InputError("threshold", f"must be >= 0 (0: off), got {self.threshold!r}.")
        if not 0 <= self.start <= self.end <= 1:
            raise InputError("start", f"start and end are fractions of the steps with 0 <= start <= end "
                                      f"<= 1, got start {self.start!r}, end {self.end!r}.")


def _relative_change(new: torch.Tensor, old: torch.Tensor) -> float:
    return float((new - old).abs().mean() / old.abs().mean().clamp_min(1e-12))


@dataclass
class _KeyState:
    previous_input: torch.Tensor | None = None  # the blocks' input at the last call
    computed_input: torch.Tensor | None = None  # ... and in/out at the last computed call
    computed_output: torch.Tensor | None = None
    rate: float | None = None  # transformation rate k
    accumulated: float = 0.0


@dataclass
class StepCache:
    """The cache of one sampling run; :meth:`attached` puts it on a DiT's ``run_blocks``.
    The sampler sets :attr:`key` and :attr:`progress` before each network call."""

    settings: StepCacheSettings
    key: object = None
    progress: float = 0.0  # the current step / number of steps
    computed: int = 0  # calls that ran the blocks
    skipped: int = 0  # calls that reused the residual
    _states: dict = field(default_factory=dict)

    @property
    def speedup(self) -> float:
        """Block evaluations without the cache over those with it."""
        return (self.computed + self.skipped) / max(self.computed, 1)

    def _may_skip(self) -> bool:
        s = self.settings
        return s.threshold > 0 and s.start <= self.progress < s.end

    def run(self, run_blocks, x: torch.Tensor, *args) -> torch.Tensor:
        state = self._states.setdefault(self.key, _KeyState())
        if (self._may_skip() and state.rate is not None and state.previous_input is not None
                and state.previous_input.shape == x.shape):
            state.accumulated += state.rate * _relative_change(x, state.previous_input)
            state.previous_input = x
            if state.accumulated < self.settings.threshold:
                self.skipped += 1
                return x + (state.computed_output - state.computed_input)
        out = run_blocks(x, *args)
        self.computed += 1
        if state.computed_input is not None and state.computed_input.shape == x.shape:
            change_in = _relative_change(x, state.computed_input)
            state.rate = _relative_change(out, state.computed_output) / max(change_in, 1e-12)
        state.previous_input = state.computed_input = x
        state.computed_output, state.accumulated = out, 0.0
        return out

    @contextlib.contextmanager
    def attached(self, model):
        """Route ``model.run_blocks`` (the class's or a block streamer's) through the cache."""
        own = model.__dict__.get("run_blocks")  # a streamer's, if one is attached
        inner = model.run_blocks
        model.run_blocks = lambda x, *args: self.run(inner, x, *args)
        try:
            yield self
        finally:
            if own is not None:
                model.run_blocks = own
            else:
                del model.run_blocks
