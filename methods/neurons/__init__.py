"""Single-neuron models, each vectorised over many neurons in torch, with their equations in the
docstring of the module that implements them:

* :mod:`methods.neurons.hh`: Hodgkin & Huxley (1952), squid-axon parameters, voltage in mV;
* :mod:`methods.neurons.lif`: the suite's leaky integrate-and-fire neuron (equations in
  :mod:`methods.lif`);
* :mod:`methods.neurons.adlif`: LIF with an adaptive threshold (Bellec et al. 2018);
* :mod:`methods.neurons.izhikevich`: Izhikevich (2003) with the published parameter sets.

The adaptive-LIF and Izhikevich modules also hold the hidden-layer step of the shared network for
``--set neuron=adlif|izhikevich``, written with arithmetic operators only so that the torch and the
JAX backends run the same function. This package module imports no framework.
"""

from __future__ import annotations

from datasets.types import InputError

#: hidden-layer neurons of the shared network (``BpttHparams.neuron``)
NETWORK_NEURONS = ("lif", "adlif", "izhikevich")


def check_neuron(name: str, supported: tuple[str, ...], method: str) -> None:
    """Raise InputError unless ``method`` supports the hidden neuron ``name``."""
    if name not in NETWORK_NEURONS:
        raise InputError(f"unknown neuron {name!r}; known: {', '.join(NETWORK_NEURONS)}")
    if name not in supported:
        raise InputError(f"{method} supports neuron={'|'.join(supported)} only, got {name!r}")
