"""e-prop (Bellec et al. 2020): online eligibility propagation, no backpropagation through time.

The shared LIF network of :mod:`methods.lif` is stepped forward once per batch with no autograd
graph; per-synapse eligibility traces, multiplied by a learning signal broadcast from the output
error, accumulate the updates that Adam applies once per batch. Summary and settings:
docs/nonbptt.md.

Modules, each holding the equations it implements: :mod:`~methods.eprop.network` (the forward step,
the output filter F, the pseudo-derivative psi), :mod:`~methods.eprop.learner` (eligibility traces
and the updates, in the exact block form), :mod:`~methods.eprop.inputs` (the input events, densified
a block at a time), :mod:`~methods.eprop.hparams` (the settings) and :mod:`~methods.eprop.adapter`
(the Method: the learning signal, Adam, prediction).
"""

from methods.eprop.adapter import Eprop, clip_global_norm, learning_signal
from methods.eprop.hparams import EpropHparams
from methods.eprop.inputs import EventInput, input_block
from methods.eprop.learner import Learner, OutputFilter, mix_lower_triangular
from methods.eprop.network import Network, pseudo_derivative

__all__ = ["Eprop", "EpropHparams", "EventInput", "Learner", "Network", "OutputFilter",
           "clip_global_norm", "input_block", "learning_signal", "mix_lower_triangular",
           "pseudo_derivative"]
