"""e-prop's hyperparameters: the shared network's plus its own knobs (their meaning: the
docstrings of :mod:`methods.eprop.network`, :mod:`methods.eprop.learner` and
:mod:`methods.eprop.adapter`)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from methods.api import InputError, NetworkHparams, validate_network


@dataclass
class EpropHparams(NetworkHparams):
    lr: float = 5e-3  # 1e-3 (the BPTT reference) leaves the readout at chance in 2 epochs
    loss: str = "sum"
    feedback: Literal["symmetric", "random"] = "symmetric"
    gamma: float = field(default=0.3,  # pseudo-derivative height
                         metadata={"search": {"low": 0.1, "high": 1.0, "log": True}})
    alif: bool = False
    tau_adapt: float = field(default=200.0,  # ms, ALIF threshold adaptation
                             metadata={"search": {"low": 50.0, "high": 1000.0, "log": True,
                                                  "on": False}})
    # beta_a, threshold increase per spike (units of theta)
    adapt_strength: float = field(default=0.5, metadata={"search": {"low": 0.05, "high": 2.0,
                                                                     "log": True, "on": False}})
    output_synapse: bool = False  # True: the output current synapse of lif.py (2 filter states)
    chunk: int = 100  # steps per block of the exact block form (memory ~ chunk, not T)
    grad_clip: float = 0.0  # max global norm of an update before Adam; 0 = off

    def validate(self) -> None:
        validate_network(self)
        for key in ("gamma", "tau_adapt", "chunk"):
            if not getattr(self, key) > 0:
                raise InputError(f"{key} must be positive, got {getattr(self, key)}")
        if self.feedback not in ("symmetric", "random"):
            raise InputError(f"feedback must be symmetric or random, got {self.feedback!r}")
        if self.adapt_strength < 0 or self.grad_clip < 0:
            raise InputError("adapt_strength and grad_clip must be non-negative")
