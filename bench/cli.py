"""``python -m bench <command>``. Each command lives in its own module, which provides
``add_arguments(parser)`` and ``main(args) -> exit code`` and imports heavy libraries only inside
``main``. Bad input anywhere surfaces as :class:`datasets.types.InputError`: one line, exit 2.
"""

from __future__ import annotations

import argparse
import ast
import importlib
import sys

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
    """The adapter module's docstring's first line, read without importing it (no torch/jax)."""
    from bench import registry

    try:
        with open(registry.method_module_file(method)) as handle:
            doc = ast.get_docstring(ast.parse(handle.read())) or ""
    except (OSError, SyntaxError, AssertionError):
        return ""
    return doc.strip().splitlines()[0] if doc.strip() else ""


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
    args = parser.parse_args(argv)
    try:
        return int(args.handler(args))
    except InputError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("error: interrupted", file=sys.stderr)
        return 130
