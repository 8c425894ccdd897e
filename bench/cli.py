"""``python -m bench <command>``. Each command lives in its own module, which provides
``add_arguments(parser)`` and ``main(args) -> exit code`` and imports heavy libraries only inside
``main``. Bad input anywhere surfaces as :class:`datasets.types.InputError`: one line, exit 2.
"""

from __future__ import annotations

import argparse
import ast
import importlib
import re
import sys
import traceback

from datasets.types import InputError

# command -> (module, one-line help)
COMMANDS: dict[str, tuple[str, str]] = {
    "list": ("bench.cli", "list the registered methods and datasets"),
    "run": ("bench.runner", "train and evaluate one method on one dataset with one seed"),
    "data": ("datasets.cli", "download SHD/SSC or describe a dataset"),
    "tune": ("bench.tune", "tune hyperparameters with optuna, one run per trial; resumable, shareable"),
    "suite": ("bench.suite", "run a grid of methods x datasets x seeds, one process per run"),
    "report": ("bench.report", "tables and plots (Markdown, CSV, HTML) from run records"),
    "compare": ("bench.compare", "compare runs with a baseline; exit 1 on a regression"),
    "scale": ("bench.scale", "memory and time against sequence length and network size"),
    "export": ("bench.export", "write a trained run's network as a NIR graph"),
    "neurons": ("bench.neurons", "neuron-model gallery (HH, LIF, adaptive LIF, Izhikevich) and cost"),
}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Arguments of `list` (none)."""


def main_list(args: argparse.Namespace) -> int:
    from bench import registry

    print("methods:")
    for name in registry.method_names():
        print(f"  {name:16s} {_first_docstring_line(name)}")
    print("datasets:")
    for name, text in registry.DATASETS.items():
        print(f"  {name:16s} {text}")
    print("  PATH             a directory or prefix with <name>_train.h5, <name>_test.h5 "
          "[, <name>_valid.h5]")
    return 0


def _first_docstring_line(method: str) -> str:
    """The adapter module's docstring's first paragraph on one line, read without importing it
    (no torch/jax)."""
    from bench import registry

    try:
        with open(registry.method_module_file(method)) as handle:
            doc = ast.get_docstring(ast.parse(handle.read())) or ""
    except (OSError, SyntaxError, AssertionError):
        return ""
    except InputError as exc:  # a plugin whose module cannot be found
        return f"(broken: {exc})"
    return re.sub(r":\w+:`([^`]+)`", r"\1", " ".join(doc.strip().split("\n\n")[0].split()))


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m bench",
        description="Benchmark spiking-neural-network training methods on SHD, SSC and your data.")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for name, (module_name, help_text) in COMMANDS.items():
        sub = commands.add_parser(name, help=help_text, description=help_text)
        module = importlib.import_module(module_name)
        module.add_arguments(sub)
        sub.set_defaults(handler=main_list if name == "list" else module.main)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    parser.add_argument("--debug", action="store_true",
                        help="print the full traceback of an unexpected error")
    argv = list(sys.argv[1:] if argv is None else argv)
    debug = "--debug" in argv
    if debug:
        argv.remove("--debug")
    argv = importlib.import_module("bench.config").expand_argv(argv)  # `run --config FILE.toml`
    args = parser.parse_args(argv)
    try:
        return int(args.handler(args))
    except InputError as exc:
        print(f"error: {_one_line(exc)}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("error: interrupted", file=sys.stderr)
        return 130
    except Exception as exc:  # anything unforeseen: one line, the traceback kept aside
        if debug:
            traceback.print_exc()
            return 1
        log = _save_traceback()
        where = f" (traceback in {log}; --debug prints it)" if log else ""
        print(f"error: {type(exc).__name__}: {_one_line(exc)}{where}", file=sys.stderr)
        return 1


def _one_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def _save_traceback() -> str | None:
    """Write the current exception's traceback to a log file; its path, or None."""
    import datetime
    import os
    import tempfile

    try:
        import platformdirs

        folder = os.path.join(platformdirs.user_cache_dir("snn-bench"), "logs")
        os.makedirs(folder, exist_ok=True)
    except (ImportError, OSError):
        folder = tempfile.gettempdir()
    stamp = datetime.datetime.now().strftime("%Y%m%dT%H%M%S")
    try:
        fd, path = tempfile.mkstemp(prefix=f"error-{stamp}-", suffix=".log", dir=folder)
        with os.fdopen(fd, "w") as handle:
            traceback.print_exc(file=handle)
    except OSError:
        return None
    return path
