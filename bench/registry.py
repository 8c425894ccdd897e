"""Method and dataset names -> where they live. Nothing here imports a framework: a method's
module is imported only by :func:`load_method`, so ``python -m bench list`` stays instant.

To add a method to the project: write ``methods/<name>.py`` with one
:class:`methods.api.Method` subclass and add one line to ``METHODS``.

To add a method from another package (a plugin), declare an entry point in that package's
``pyproject.toml``; once the package is installed, every ``python -m bench`` process finds it
(``bench list``, ``bench run`` and the runs that ``suite``, ``tune`` and ``scale`` start)::

    [project.entry-points."snn_bench.methods"]
    my-method = "my_package.my_module:MyMethod"

A built-in name wins over a plugin of the same name (``bench list`` says so).
"""

from __future__ import annotations

import importlib
import importlib.metadata
import importlib.util

from datasets.catalog import CATALOG
from methods.api import InputError, Method

ENTRY_POINT_GROUP = "snn_bench.methods"

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
    "gru": "methods.gru:Gru",
}

# Methods whose trained network is the shared LIF network of methods/lif.py (exportable to NIR).
# A plugin says so with a class attribute ``shared_network = True``.
SHARED_NETWORK = frozenset({"bptt-snntorch", "bptt-norse", "bptt-spyx", "eventprop", "eprop"})

# plugin name -> distribution (package) that declares it; plugins are merged into METHODS below
PLUGINS: dict[str, str] = {}
# plugin names shadowed by a built-in method: name -> distribution
SHADOWED: dict[str, str] = {}

# Datasets come from their own table (datasets/catalog.py).
DATASETS: dict[str, str] = {name: entry.description for name, entry in CATALOG.items()}


def _find_plugins() -> None:
    """Read the installed distributions' ``snn_bench.methods`` entry points (metadata only: no
    plugin module is imported here)."""
    for ep in importlib.metadata.entry_points(group=ENTRY_POINT_GROUP):
        dist = ep.dist.name if ep.dist is not None else "?"
        if ep.name in METHODS:
            if ep.name not in PLUGINS:
                SHADOWED[ep.name] = dist
            continue
        METHODS[ep.name] = ep.value
        PLUGINS[ep.name] = dist


_find_plugins()


def method_names() -> list[str]:
    return sorted(METHODS)


def _split(name: str) -> tuple[str, str]:
    if name not in METHODS:
        raise InputError(f"unknown method {name!r}; known: {', '.join(method_names())}")
    target = METHODS[name]
    module_name, _, class_name = target.partition(":")
    if not module_name or not class_name:
        raise _plugin_error(name, f"entry point {target!r} is not 'module:Class'")
    return module_name, class_name


def _plugin_error(name: str, reason: str) -> InputError:
    where = f" (package {PLUGINS[name]})" if name in PLUGINS else ""
    return InputError(f"method {name!r}{where} cannot be loaded: {reason}")


def _one_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0]}" if text else type(exc).__name__


def load_method(name: str) -> type[Method]:
    """Import and return the adapter class registered as ``name``. A plugin that fails to import
    raises a one-line InputError naming the method, its package and the error."""
    module_name, class_name = _split(name)
    if name not in PLUGINS:
        return getattr(importlib.import_module(module_name), class_name)
    try:
        module = importlib.import_module(module_name)
    except Exception as exc:  # any error inside a third-party module's import
        raise _plugin_error(name, _one_line(exc)) from None
    cls = getattr(module, class_name, None)
    if cls is None:
        raise _plugin_error(name, f"module {module_name} has no attribute {class_name!r}")
    if not (isinstance(cls, type) and issubclass(cls, Method)):
        raise _plugin_error(name, f"{module_name}:{class_name} is not a methods.api.Method subclass")
    return cls


def uses_shared_network(name: str) -> bool:
    """Whether the method trains the shared LIF network (see ``SHARED_NETWORK``)."""
    if name in SHARED_NETWORK:
        return True
    if name not in PLUGINS:
        return False
    return bool(getattr(load_method(name), "shared_network", False))


def method_module_file(name: str) -> str:
    """Path of the adapter's source file, found without importing it."""
    module_name, _ = _split(name)
    try:
        spec = importlib.util.find_spec(module_name)
    except Exception as exc:  # a missing parent package raises instead of returning None
        raise _plugin_error(name, _one_line(exc)) from None
    if spec is None or spec.origin is None:
        raise _plugin_error(name, f"ModuleNotFoundError: No module named {module_name!r}")
    return spec.origin
