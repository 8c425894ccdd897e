"""e-prop (Bellec et al. 2020): online eligibility propagation, no backpropagation through time.

The method lives in :mod:`methods.eprop.adapter`; this package re-exports its public names."""

from methods.eprop.adapter import Eprop
from methods.eprop.hparams import EpropHparams
from methods.eprop.inputs import EventInput, input_block
from methods.eprop.learner import Learner, OutputFilter, mix_lower_triangular
from methods.eprop.network import Network, pseudo_derivative

__all__ = ["Eprop", "EpropHparams", "EventInput", "Learner", "Network", "OutputFilter",
           "input_block", "mix_lower_triangular", "pseudo_derivative"]
