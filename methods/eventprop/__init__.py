"""EventProp (Wunderlich & Pehle 2021): exact event-based gradients for the shared network, with
the discretisation choices of mlGeNN (Nowotny et al. 2025). Full derivation: docs/eventprop.md.

The network is the one of :mod:`methods.lif` (LIF hidden layer with exponential current synapses,
optionally recurrent, reset to zero; leaky-integrator outputs; theta = 1), read out by the shared
readouts of :mod:`methods.readouts`. No autograd: a forward pass under ``torch.no_grad`` stores the
hidden spikes and, per spike, the synaptic current I at it; a backward pass in reverse time runs
the adjoint variables and fills the weights' ``.grad`` for Adam. The input arrives as events
(``Batch.events``) and is never densified: the input drive of ``chunk_steps`` steps at a time is
one sparse-matrix product, so memory does not grow with T through the input.

Notation: alpha = exp(-dt/tau_mem), beta = exp(-dt/tau_syn), alpha_o = exp(-dt/tau_out). Adjoint
variables are sensitivities, lambda_X = dL/dX, L the batch-mean cross-entropy of the readout.

Two timing modes (``timing``): ``grid`` (default), the forward pass of every BPTT backend with
EventProp's adjoint discretised on its grid, and ``exact``, the same network in continuous time.

Modules: :mod:`~methods.eventprop.grid` (the default timing: lif.py's forward pass and its
discretised adjoint), :mod:`~methods.eventprop.exact` (continuous time, exact spike times),
:mod:`~methods.eventprop.common` (what both share: readout tables, output layer, regulariser,
guards), :mod:`~methods.eventprop.events` (input events as sparse blocks) and
:mod:`~methods.eventprop.adapter` (the Method). Derivation: docs/eventprop.md.
"""

from methods.eventprop.adapter import EventProp, forward, loss_and_grads
from methods.eventprop.common import THETA, Forward, Net, reg_coefficient
from methods.eventprop.events import EventBlocks
from methods.eventprop.exact import exact_backward, exact_forward
from methods.eventprop.grid import grid_backward, grid_forward
from methods.eventprop.hparams import EventPropHparams

__all__ = ["THETA", "EventBlocks", "EventProp", "EventPropHparams", "Forward", "Net",
           "exact_backward", "exact_forward", "forward", "grid_backward", "grid_forward",
           "loss_and_grads", "reg_coefficient"]
