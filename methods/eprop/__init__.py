"""e-prop (Bellec et al. 2020): online eligibility propagation, no backpropagation through time.

The method lives in :mod:`methods.eprop.adapter`; this package re-exports its public names."""

from methods.eprop.adapter import (Eprop, EventInput, Learner, Network, OutputFilter, input_block,
                                   mix_lower_triangular, pseudo_derivative)
from methods.eprop.hparams import EpropHparams

__all__ = ["Eprop", "EpropHparams", "EventInput", "Learner", "Network", "OutputFilter",
           "input_block", "mix_lower_triangular", "pseudo_derivative"]
