"""``bench run --config FILE.toml``: a run's command-line options as one TOML file (read with the
standard library's tomllib), so that a published configuration is one file.

Keys are the long options of ``bench run`` without the dashes (``time-limit`` or ``time_limit``);
``set`` and ``tag`` are tables (or lists of ``"key=value"`` strings); flags are booleans::

    method = "NAME"          # a registered method (bench list)
    dataset = "shd"
    epochs = 100
    seed = 3
    threads = 2
    track = "mlflow"

    [set]
    hidden = 256
    input_pool = 4

The file's options are put before the rest of the command line, so an option given on the command
line wins over the file, and ``--set`` / ``--tag`` from the command line come after the file's (a
repeated key takes the command line's value). The record keeps
the resolved hyperparameters, as for any run. Unknown keys and badly typed values are one-line
errors (exit 2).
"""

from __future__ import annotations

import argparse
import sys
import tomllib
from pathlib import Path
from typing import Any

from methods.api import InputError

LISTS = {"set": "overrides", "tag": "tag"}  # repeatable options -> argparse dest


class _Parser(argparse.ArgumentParser):
    """bench run's parser, whose errors name the config file instead of exiting."""

    def __init__(self, source: Path):
        super().__init__(prog="bench run", add_help=False)
        self.source = source

    def error(self, message: str):  # type: ignore[override]
        raise InputError(f"{self.source}: {message}")


def load(path: str | Path) -> dict[str, Any]:
    path = Path(path)
    try:
        with open(path, "rb") as handle:
            return tomllib.load(handle)
    except FileNotFoundError:
        raise InputError(f"no config file {path}") from None
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise InputError(f"{path}: not a readable TOML file ({exc})") from None


def _pairs(key: str, value: Any, source: Path) -> list[str]:
    if isinstance(value, dict):
        return [f"{k}={_text(v)}" for k, v in value.items()]
    if isinstance(value, list) and all(isinstance(v, str) for v in value):
        return list(value)
    raise InputError(f"{source}: {key} must be a table or a list of \"key=value\" strings")


def _text(value: Any) -> str:
    """A TOML value as ``--set`` reads it (booleans as true/false)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def to_argv(document: dict[str, Any], source: Path) -> list[str]:
    """The command-line arguments the file stands for."""
    argv: list[str] = []
    for key, value in document.items():
        option = "--" + key.replace("_", "-")
        if key in LISTS:
            for pair in _pairs(key, value, source):
                argv += [option, pair]
        elif isinstance(value, bool):
            argv += [option] if value else []
        elif isinstance(value, (dict, list)):
            raise InputError(f"{source}: {key} must be a single value")
        else:
            argv += [option, _text(value)]
    return argv


def expand_argv(argv: list[str]) -> list[str]:
    """``bench run ... --config FILE ...`` -> ``bench run <the file's options> ...`` with the
    rest of the command line after them, so that argparse lets the command line win. A bad file
    prints one line and exits 2, as argparse does for bad options."""
    if not argv or argv[0] != "run" or not any(a == "--config" or a.startswith("--config=")
                                               for a in argv):
        return argv
    rest, files = [], []
    items = iter(argv[1:])
    for item in items:
        if item == "--config":
            files.append(next(items, None))
        elif item.startswith("--config="):
            files.append(item.split("=", 1)[1])
        else:
            rest.append(item)
    try:
        if len(files) != 1 or not files[0]:
            raise InputError("--config takes one file, once")
        return ["run", *file_argv(Path(files[0])), *rest]
    except InputError as exc:
        print(f"error: {exc}", file=sys.stderr)
        raise SystemExit(2) from None


def file_argv(source: Path) -> list[str]:
    """The file's options as arguments, checked by bench run's own parser (InputError naming
    the file otherwise)."""
    from bench.runner import add_arguments

    argv = to_argv(load(source), source)
    if "--config" in argv:
        raise InputError(f"{source}: a config file cannot name another config file")
    parser = _Parser(source)
    add_arguments(parser)
    for action in parser._actions:
        action.required = False  # the method may come from the command line
    parser.parse_args(argv)
    return argv
