"""Where data lives and how a dataset name becomes a set of split files.

A name is ``synthetic``, ``shd``, ``ssc`` (official files in :func:`data_dir`), or a path: a
directory holding exactly one ``<prefix>_train.h5`` and ``<prefix>_test.h5`` (plus an optional
``<prefix>_valid.h5``), or the prefix itself, so that ``<prefix>_train.h5`` exists.
"""

from __future__ import annotations

import os
from pathlib import Path

from .catalog import CATALOG, OFFICIAL
from .types import InputError

ENV_VAR = "SNN_BENCH_DATA"
SPLITS = ("train", "valid", "test")


def data_dir() -> Path:
    """``$SNN_BENCH_DATA`` if set, else ``<user cache dir>/snn-bench/data``."""
    env = os.environ.get(ENV_VAR)
    if env:
        return Path(env).expanduser()
    import platformdirs

    return Path(platformdirs.user_cache_dir("snn-bench")) / "data"


def known_names() -> list[str]:
    return list(CATALOG)


def fetch_hint(name: str) -> str:
    return f"run `python -m bench data fetch {name}` (or set ${ENV_VAR} to where the files are)"


def official_files(name: str, directory: Path) -> dict[str, Path]:
    """Split -> file of an official dataset; InputError naming the first missing file."""
    files = {split: directory / f"{name}_{split}.h5" for split in OFFICIAL[name]}
    for path in files.values():
        if not path.is_file():
            raise InputError(f"missing file {path}; {fetch_hint(name)}")
    return files


def _prefix_files(prefix: Path) -> dict[str, Path]:
    files = {}
    for split in SPLITS:
        path = prefix.parent / f"{prefix.name}_{split}.h5"
        if path.is_file():
            files[split] = path
    for split in ("train", "test"):
        if split not in files:
            raise InputError(f"missing file {prefix.parent / f'{prefix.name}_{split}.h5'}")
    return files


def path_files(name: str) -> tuple[str, dict[str, Path]] | None:
    """(display name, split -> file) for a path-like name, or None when it is no path at all."""
    path = Path(name).expanduser()
    if path.is_dir():
        prefixes = sorted(p.name[: -len("_train.h5")] for p in path.glob("*_train.h5") if p.is_file())
        complete = [p for p in prefixes if (path / f"{p}_test.h5").is_file()]
        if not complete:
            raise InputError(f"{path}: no <prefix>_train.h5 with a matching <prefix>_test.h5 found")
        if len(complete) > 1:
            raise InputError(
                f"{path}: several datasets ({', '.join(complete)}); pass {path / complete[0]} or similar"
            )
        return complete[0], _prefix_files(path / complete[0])
    for split in SPLITS:
        suffix = f"_{split}.h5"
        if path.name.endswith(suffix):
            path = path.with_name(path.name[: -len(suffix)])
            break
    if (path.parent / f"{path.name}_train.h5").is_file() or (
        path.parent / f"{path.name}_test.h5"
    ).is_file():
        return path.name, _prefix_files(path)
    return None


def dataset_files(name: str, directory: Path) -> tuple[str, dict[str, Path]]:
    """(display name, split -> file) of ``synthetic`` (generated under ``directory`` when
    missing), ``shd``/``ssc`` (in ``directory``) or a path; InputError when there is none."""
    if name == "synthetic":
        from .synthetic import ensure_synthetic

        return "synthetic", ensure_synthetic(directory)
    if name in OFFICIAL:
        return name, official_files(name, directory)
    if name == "spoken-digits":  # made on this machine by `bench data make spoken-digits`
        from .speech.digits import digits_files

        return name, digits_files(directory)
    found = path_files(name)
    if found is None:
        raise unknown_name(name)
    return found


def unknown_name(name: str) -> InputError:
    if os.sep in name or name.startswith((".", "~")) or name.endswith(".h5"):
        return InputError(
            f"{name}: no such directory, and no {name}_train.h5 or {name}_test.h5; "
            f"known names: {', '.join(known_names())}"
        )
    return InputError(
        f"unknown dataset {name!r}; known: {', '.join(known_names())}, "
        "or a path to <prefix>_train.h5 and <prefix>_test.h5"
    )
