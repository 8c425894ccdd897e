"""Method and dataset names -> where they live. Nothing here imports a framework: a method's
module is imported only by :func:`load_method`, so ``python -m bench list`` stays instant.

To add a method: write ``methods/<name>.py`` with one :class:`methods.api.Method` subclass and add
one line to ``METHODS``.
"""

from __future__ import annotations

import importlib

from datasets.catalog import CATALOG, DEFAULT_DATASET  # noqa: F401 (re-exported)
from methods.api import InputError, Method

# name -> "module:Class"
METHODS: dict[str, str] = {
    "bptt-snntorch": "methods.bptt_snntorch:BpttSnntorch",
    "bptt-norse": "methods.bptt_norse:BpttNorse",
    "bptt-spyx": "methods.bptt_spyx:BpttSpyx",
    "paralif": "methods.paralif:ParaLIF",
    "eventprop": "methods.eventprop:EventProp",
    "eprop": "methods.eprop:Eprop",
    "rstdp": "methods.rstdp:RStdp",
    "ann-conversion": "methods.ann_conversion:AnnConversion",
}

# Datasets come from their own table (datasets/catalog.py).
DATASETS: dict[str, str] = {name: entry.description for name, entry in CATALOG.items()}


def method_names() -> list[str]:
    return sorted(METHODS)


def load_method(name: str) -> type[Method]:
    """Import and return the adapter class registered as ``name``."""
    if name not in METHODS:
        raise InputError(f"unknown method {name!r}; known: {', '.join(method_names())}")
    module_name, class_name = METHODS[name].split(":")
    module = importlib.import_module(module_name)
    return getattr(module, class_name)


def method_module_file(name: str) -> str:
    """Path of the adapter's source file, found without importing it."""
    spec = importlib.util.find_spec(METHODS[name].split(":")[0])
    assert spec is not None and spec.origin is not None
    return spec.origin
