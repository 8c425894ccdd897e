"""EventProp's hyperparameters: the shared network's plus its own knobs (their meaning: the
docstrings of :mod:`methods.eventprop.grid`, :mod:`methods.eventprop.exact` and
:mod:`methods.eventprop.common`)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import ClassVar, Literal

from methods.api import FIRST_SPIKE, READOUTS, InputError, NetworkHparams, validate_network


@dataclass
class EventPropHparams(NetworkHparams):
    """Defaults: the shared network's (mlGeNN's SHD values) plus EventProp's own knobs."""

    losses: ClassVar[tuple[str, ...]] = READOUTS + (FIRST_SPIKE,)

    lr: float = field(default=1e-3, metadata={"search": {"low": 1e-4, "high": 2e-2, "log": True},
                                              "from_dataset_budget": True})
    timing: Literal["grid", "exact"] = "grid"
    # target spikes per hidden neuron per 1000 ms of input
    reg_nu: float = field(default=14.0, metadata={"search": {"low": 5.0, "high": 30.0, "on": False}})
    # spike-count pseudo-loss, in units of the loss signal (methods.eventprop.common)
    reg_strength: float = field(default=0.001, metadata={"search": {"factor": 10.0, "log": True}})
    silent_boost: float = 0.002  # least rise of the input weights of a neuron silent for an epoch
    # the rise brings a silent neuron's mean synaptic current during input activity to this many
    # thresholds (methods.eventprop.adapter); 0 = the fixed silent_boost only
    revive_drive: float = 1.5
    min_slope: float = 0.02  # lower bound on (I - theta), the jump's denominator
    lambda_clip: float = 100.0  # |lambda_u| bound after a jump, in units of the drive scale; 0 = off
    chunk_steps: int = 128  # steps per block of input drive / buffers (memory ~ chunk, not T)
    dtype: Literal["float32", "float64"] = "float32"

    def validate(self) -> None:
        validate_network(self)
        if self.timing not in ("grid", "exact"):
            raise InputError(f"timing must be grid or exact, got {self.timing!r}")
        if self.dtype not in ("float32", "float64"):
            raise InputError(f"dtype must be float32 or float64, got {self.dtype!r}")
        # The exact propagators divide by tau_mem - tau_syn and tau_out - tau_syn.
        for name in ("tau_mem", "tau_out"):
            tau = getattr(self, name)
            if abs(tau - self.tau_syn) <= 1e-6 * max(tau, self.tau_syn):
                raise InputError(f"{name} must differ from tau_syn (both {tau}): the exact "
                                 "propagator and the spike jump divide by their difference")
        if not self.min_slope > 0:
            raise InputError(f"min_slope must be positive, got {self.min_slope}")
        for key in ("reg_nu", "reg_strength", "silent_boost", "revive_drive", "lambda_clip"):
            if getattr(self, key) < 0:
                raise InputError(f"{key} must be non-negative, got {getattr(self, key)}")
        if self.chunk_steps < 1:
            raise InputError(f"chunk_steps must be at least 1, got {self.chunk_steps}")
