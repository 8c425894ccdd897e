"""Search spaces for ``python -m bench tune``: which hyperparameters are tuned, over which range.

A method's space is built from the fields its ``Hparams`` dataclass actually has:

1. :data:`CATALOG` gives a range to every hyperparameter name shared by several methods
   (``lr``, ``tau_mem``, ``tau_syn``, the readout window ``gauss_mu``/``gauss_sigma``, the
   augmentations ``aug_*``, ...) and to a few method-specific ones (``surrogate_slope``, ...);
2. a float field whose name says it is a regulariser strength (``reg_strength``,
   ``reg_lambda``, ``spike_reg``, ...; see :func:`is_regulariser`) is searched on a log scale
   from a tenth to ten times its default, so EventProp's spike-count regulariser is tuned
   whatever its exact field name;
3. :data:`METHOD_SPACES` adds or replaces entries for one method (by its registered name).

Every entry is either *on* (tuned unless ``--params`` says otherwise) or *off* (tuned only when
named in ``--params``). A hyperparameter fixed on the command line (``--set k=v``) is never
tuned. ``gauss_mu`` and ``gauss_sigma`` are tuned only when the readout is ``gauss_window``
(``--set loss=gauss_window``, or ``loss`` itself in the space).

This module imports no framework: :func:`space_for` takes the Hparams class, and
:func:`space_for_method` imports it through the registry.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from methods.api import READOUTS, BaseHparams, InputError


@dataclass(frozen=True)
class Param:
    """One searched hyperparameter: a float or int range (optionally log-scaled) or a set of
    choices; ``on``: searched by default; ``when``: searched only if it holds for the values
    decided so far (defaults, fixed values and earlier samples, in the space's order)."""

    kind: str  # "float" | "int" | "categorical"
    low: float | None = None
    high: float | None = None
    log: bool = False
    choices: tuple = ()
    on: bool = True
    when: Callable[[Mapping[str, Any]], bool] | None = None
    condition: str = ""  # the ``when`` rule in words, for listings

    def suggest(self, trial, name: str):
        """Draw this hyperparameter from an optuna trial."""
        if self.kind == "float":
            return trial.suggest_float(name, self.low, self.high, log=self.log)
        if self.kind == "int":
            return trial.suggest_int(name, int(self.low), int(self.high), log=self.log)
        if self.kind == "categorical":
            return trial.suggest_categorical(name, list(self.choices))
        raise ValueError(f"unknown parameter kind {self.kind!r}")

    def describe(self) -> str:
        if self.kind == "categorical":
            text = "one of " + ", ".join(map(str, self.choices))
        else:
            text = f"{self.kind} in [{self.low:g}, {self.high:g}]" + (" (log)" if self.log else "")
        if self.condition:
            text += f", only if {self.condition}"
        return text


def _gauss(values: Mapping[str, Any]) -> bool:
    return values.get("loss") == "gauss_window"


# Name -> range, for every method whose Hparams has a field of that name.
CATALOG: dict[str, Param] = {
    "lr": Param("float", 1e-4, 1e-2, log=True),
    "tau_mem": Param("float", 10.0, 80.0, log=True),  # ms; kept above tau_syn: no tau_m = tau_s
    "tau_syn": Param("float", 1.0, 8.0, log=True),  # ms
    "tau_out": Param("float", 10.0, 80.0, log=True, on=False),
    "loss": Param("categorical", choices=READOUTS, on=False),
    "gauss_mu": Param("float", 0.2, 0.9, when=_gauss, condition="loss=gauss_window"),
    "gauss_sigma": Param("float", 0.05, 0.5, log=True, when=_gauss, condition="loss=gauss_window"),
    "aug_shift": Param("int", 0, 40),  # channels
    "aug_blend": Param("float", 0.0, 0.5),
    "aug_dropout": Param("float", 0.0, 0.3, on=False),
    "delay_lines": Param("int", 1, 4, on=False),
    "delay_ms": Param("float", 0.0, 50.0, on=False),
    "hidden": Param("int", 64, 1024, log=True, on=False),
    "batch_size": Param("categorical", choices=(16, 32, 64, 128), on=False),
    "surrogate_slope": Param("float", 10.0, 300.0, log=True),
    # e-prop
    "gamma": Param("float", 0.1, 1.0, log=True),
    "tau_adapt": Param("float", 50.0, 1000.0, log=True, on=False),
    "adapt_strength": Param("float", 0.05, 2.0, log=True, on=False),
}

# Method name -> entries added to, or replacing, the catalog's for that method.
METHOD_SPACES: dict[str, dict[str, Param]] = {
    "eventprop": {
        "lr": Param("float", 1e-4, 5e-3, log=True),
        "reg_nu": Param("float", 5.0, 30.0, on=False),  # target spikes per neuron per second
    },
}

_REGULARISER_WORDS = ("reg_strength", "reg_lambda", "reg_weight", "lambda_reg", "spike_reg",
                      "regulariser", "regularizer", "regularisation", "regularization")


def is_regulariser(name: str) -> bool:
    """A field named as a regulariser *strength* (not its target rate)."""
    lowered = name.lower()
    return any(word in lowered for word in _REGULARISER_WORDS)


def defaults_of(hparams_cls: type[BaseHparams]) -> dict[str, Any]:
    """Field name -> default value of a hyperparameter dataclass."""
    out = {}
    for f in dataclasses.fields(hparams_cls):
        if f.default is not dataclasses.MISSING:
            out[f.name] = f.default
        elif f.default_factory is not dataclasses.MISSING:  # type: ignore[misc]
            out[f.name] = f.default_factory()  # type: ignore[misc]
    return out


def full_space(hparams_cls, method: str | None = None) -> dict[str, Param]:
    """Every hyperparameter of ``hparams_cls`` that can be searched, on or off, in a stable
    order (the dataclass's field order)."""
    defaults = defaults_of(hparams_cls)
    extra = METHOD_SPACES.get(method or "", {})
    space: dict[str, Param] = {}
    for f in dataclasses.fields(hparams_cls):
        name = f.name
        if name in extra:
            space[name] = extra[name]
        elif name in CATALOG:
            space[name] = CATALOG[name]
        elif is_regulariser(name):
            default = defaults.get(name)
            if isinstance(default, float) and default > 0 and math.isfinite(default):
                space[name] = Param("float", default / 10.0, default * 10.0, log=True)
    return space


def space_for(hparams_cls, method: str | None = None, *, params: str | None = None,
              fixed: Mapping[str, Any] | None = None) -> dict[str, Param]:
    """The space a tuning study searches.

    ``params``: None for the default entries; ``"a,b"`` for exactly those; ``"+a,-b"`` to add
    to or remove from the default entries. ``fixed``: hyperparameters set on the command line,
    left out of the space. Raises InputError for a name the method cannot search.
    """
    available = full_space(hparams_cls, method)
    chosen = [name for name, p in available.items() if p.on]
    if params:
        items = [item.strip() for item in params.split(",") if item.strip()]
        relative = all(item[0] in "+-" for item in items)
        if not relative and any(item[0] in "+-" for item in items):
            raise InputError("--params: give either names, or +name/-name changes, not both")
        names = [item.lstrip("+-") for item in items]
        for name in names:
            if name not in available:
                raise InputError(
                    f"--params: {name!r} cannot be tuned for this method; "
                    f"searchable: {', '.join(available) or 'none'}")
        if relative:
            for item in items:
                name = item[1:]
                if item[0] == "+" and name not in chosen:
                    chosen.append(name)
                elif item[0] == "-" and name in chosen:
                    chosen.remove(name)
        else:
            chosen = names
    fixed = fixed or {}
    order = list(available)
    return {name: available[name] for name in sorted(set(chosen), key=order.index)
            if name not in fixed}


def space_for_method(method: str, **kwargs) -> dict[str, Param]:
    """:func:`space_for` of a registered method (imports its adapter)."""
    from bench import registry

    return space_for(registry.load_method(method).Hparams, method, **kwargs)


def sample(space: Mapping[str, Param], trial, context: Mapping[str, Any]) -> dict[str, Any]:
    """Draw the space's hyperparameters from an optuna trial. ``context``: every value that is
    not searched (defaults and fixed values), which conditional entries look at."""
    values = dict(context)
    drawn: dict[str, Any] = {}
    for name, param in space.items():
        if param.when is not None and not param.when(values):
            continue
        drawn[name] = values[name] = param.suggest(trial, name)
    return drawn
