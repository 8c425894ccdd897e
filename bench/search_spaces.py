"""Search spaces for ``python -m bench tune``: which hyperparameters are tuned, over which range.

A method's space is built from the fields its ``Hparams`` dataclass actually has:

1. a field that declares its own range in its metadata is searched over that range::

       gamma: float = field(default=0.3, metadata={"search": {"low": 0.1, "high": 1.0, "log": True}})

   The entry may give ``low``/``high`` (a float or int range, by the type of the default),
   ``factor`` (from default/factor to default*factor), or ``choices``; ``log`` (log scale),
   ``on`` (False: searched only when named in ``--params``) and ``only_if`` (a dict of values
   that must hold, e.g. ``{"loss": "gauss_window"}``). A method's own declaration wins;
2. otherwise :data:`CATALOG` gives a range to the hyperparameters of the shared contract
   (``lr``, ``tau_mem``, ``tau_syn``, the readout window ``gauss_mu``/``gauss_sigma``, the
   augmentations ``aug_*``, ``surrogate_slope``, ...).

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
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from methods.api import READOUTS, BaseHparams, InputError


@dataclass(frozen=True)
class Param:
    """One searched hyperparameter: a float or int range (optionally log-scaled) or a set of
    choices; ``on``: searched by default; ``only_if``: searched only if these values hold among
    those decided so far (defaults, fixed values and earlier samples, in the space's order)."""

    kind: str  # "float" | "int" | "categorical"
    low: float | None = None
    high: float | None = None
    log: bool = False
    choices: tuple = ()
    on: bool = True
    only_if: tuple[tuple[str, Any], ...] = ()  # (name, value) pairs that must hold

    def applies(self, values: Mapping[str, Any]) -> bool:
        return all(values.get(name) == value for name, value in self.only_if)

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
        if self.only_if:
            text += ", only if " + ", ".join(f"{k}={v}" for k, v in self.only_if)
        return text


_GAUSS = (("loss", "gauss_window"),)

# Name -> range of the shared contract's hyperparameters (methods/api.py), for every method whose
# Hparams has a field of that name and declares no range of its own.
CATALOG: dict[str, Param] = {
    "lr": Param("float", 1e-4, 1e-2, log=True),
    "lr_schedule": Param("categorical", choices=("constant", "cosine"), on=False),
    "tau_mem": Param("float", 10.0, 80.0, log=True),  # ms; kept above tau_syn: no tau_m = tau_s
    "tau_syn": Param("float", 1.0, 8.0, log=True),  # ms
    "tau_out": Param("float", 10.0, 80.0, log=True, on=False),
    "loss": Param("categorical", choices=READOUTS, on=False),
    "gauss_mu": Param("float", 0.2, 0.9, only_if=_GAUSS),
    "gauss_sigma": Param("float", 0.05, 0.5, log=True, only_if=_GAUSS),
    "aug_shift": Param("int", 0, 40),  # channels
    "aug_blend": Param("float", 0.0, 0.5),
    "aug_dropout": Param("float", 0.0, 0.3, on=False),
    "delay_lines": Param("int", 1, 4, on=False),
    "delay_ms": Param("float", 0.0, 50.0, on=False),
    "hidden": Param("int", 64, 1024, log=True, on=False),
    "batch_size": Param("categorical", choices=(16, 32, 64, 128), on=False),
    "surrogate_slope": Param("float", 10.0, 300.0, log=True),
}


def defaults_of(hparams_cls: type[BaseHparams]) -> dict[str, Any]:
    """Field name -> default value of a hyperparameter dataclass."""
    out = {}
    for f in dataclasses.fields(hparams_cls):
        if f.default is not dataclasses.MISSING:
            out[f.name] = f.default
        elif f.default_factory is not dataclasses.MISSING:  # type: ignore[misc]
            out[f.name] = f.default_factory()  # type: ignore[misc]
    return out


def declared_param(f: dataclasses.Field, default: Any) -> Param | None:
    """The range a field declares in ``metadata["search"]``, or None."""
    spec = f.metadata.get("search") if f.metadata else None
    if spec is None:
        return None
    if not isinstance(spec, Mapping):
        raise TypeError(f"field {f.name}: metadata['search'] must be a dict, got {spec!r}")
    common = {"log": bool(spec.get("log", False)), "on": bool(spec.get("on", True)),
              "only_if": tuple(sorted(dict(spec.get("only_if") or {}).items()))}
    if "choices" in spec:
        return Param("categorical", choices=tuple(spec["choices"]), **common)
    kind = "int" if isinstance(default, int) and not isinstance(default, bool) else "float"
    if "factor" in spec:
        factor = float(spec["factor"])
        if not (isinstance(default, (int, float)) and default > 0 and math.isfinite(default)):
            raise TypeError(f"field {f.name}: a 'factor' range needs a positive default")
        return Param(kind, default / factor, default * factor, **common)
    return Param(kind, spec["low"], spec["high"], **common)


def full_space(hparams_cls) -> dict[str, Param]:
    """Every hyperparameter of ``hparams_cls`` that can be searched, on or off, in a stable
    order (the dataclass's field order)."""
    defaults = defaults_of(hparams_cls)
    space: dict[str, Param] = {}
    for f in dataclasses.fields(hparams_cls):
        declared = declared_param(f, defaults.get(f.name))
        if declared is not None:
            space[f.name] = declared
        elif f.name in CATALOG:
            space[f.name] = CATALOG[f.name]
    return space


def space_for(hparams_cls, *, params: str | None = None,
              fixed: Mapping[str, Any] | None = None) -> dict[str, Param]:
    """The space a tuning study searches.

    ``params``: None for the default entries; ``"a,b"`` for exactly those; ``"+a,-b"`` to add
    to or remove from the default entries. ``fixed``: hyperparameters set on the command line,
    left out of the space. Raises InputError for a name the method cannot search.
    """
    available = full_space(hparams_cls)
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

    return space_for(registry.load_method(method).Hparams, **kwargs)


def sample(space: Mapping[str, Param], trial, context: Mapping[str, Any]) -> dict[str, Any]:
    """Draw the space's hyperparameters from an optuna trial. ``context``: every value that is
    not searched (defaults and fixed values), which conditional entries look at."""
    values = dict(context)
    drawn: dict[str, Any] = {}
    for name, param in space.items():
        if not param.applies(values):
            continue
        drawn[name] = values[name] = param.suggest(trial, name)
    return drawn
