"""Method states on disk without pickle: tensors in one file, structure in JSON.

A method's ``state_dict()`` is a nested structure of dicts (string keys), lists, tuples, numpy
arrays, torch tensors, numbers, strings, booleans and None. :func:`save_state` writes

- ``<stem>.pt``: a flat ``{"t0": tensor, "t1": tensor, ...}`` dict saved with ``torch.save``;
- ``<stem>.json``: the structure, with every array replaced by ``{"__tensor__": "tN",
  "kind": "numpy"|"torch"}``, plus free-form metadata.

:func:`load_state` reads the tensors with ``torch.load(weights_only=True)``, which refuses any
pickled object other than tensors and plain containers, so a crafted file cannot run code. Both
files are written to temporary names and renamed, JSON last: a reader never sees half a state.
"""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Any

import numpy as np

from datasets.types import InputError

FORMAT_VERSION = 1


def _encode(value: Any, tensors: dict[str, Any]) -> Any:
    import torch

    if isinstance(value, torch.Tensor):
        key = f"t{len(tensors)}"
        tensors[key] = value.detach().cpu().contiguous().clone()
        return {"__tensor__": key, "kind": "torch"}
    if isinstance(value, np.ndarray) or (hasattr(value, "__array__") and hasattr(value, "dtype")
                                        and not isinstance(value, np.generic)):
        # np.array keeps a 0-d array 0-d (np.ascontiguousarray would make it shape (1,))
        array = np.array(value, copy=True, order="C")
        key = f"t{len(tensors)}"
        tensors[key] = torch.from_numpy(array) if array.dtype != object else _refuse(array)
        return {"__tensor__": key, "kind": "numpy"}
    if isinstance(value, dict):
        if not all(isinstance(k, str) for k in value):
            return {"__dict_items__": [[_encode(k, tensors), _encode(v, tensors)]
                                       for k, v in value.items()]}
        return {"__dict__": {k: _encode(v, tensors) for k, v in value.items()}}
    if isinstance(value, (list, tuple)):
        return {"__list__" if isinstance(value, list) else "__tuple__":
                [_encode(v, tensors) for v in value]}
    if isinstance(value, np.generic):
        return value.item()
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    raise TypeError(f"cannot store a {type(value).__name__} in a state file")


def _refuse(array: np.ndarray) -> Any:
    raise TypeError("cannot store an object array in a state file")


def _decode(node: Any, tensors: dict[str, Any]) -> Any:
    if isinstance(node, dict):
        if "__tensor__" in node:
            tensor = tensors[node["__tensor__"]]
            return tensor.numpy() if node.get("kind") == "numpy" else tensor
        if "__dict__" in node:
            return {k: _decode(v, tensors) for k, v in node["__dict__"].items()}
        if "__dict_items__" in node:
            return {_decode(k, tensors): _decode(v, tensors) for k, v in node["__dict_items__"]}
        if "__list__" in node:
            return [_decode(v, tensors) for v in node["__list__"]]
        if "__tuple__" in node:
            return tuple(_decode(v, tensors) for v in node["__tuple__"])
        raise ValueError(f"unknown node in a state file: {sorted(node)}")
    return node


def _atomic_write(path: Path, write) -> None:
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as handle:
            write(handle)
            handle.flush()
            os.fsync(handle.fileno())
        os.chmod(tmp, 0o666 & ~current_umask())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def current_umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def load_backend() -> None:
    """Import what writing a state needs (torch), so that a caller can do it before a memory
    baseline instead of during its first measured phase."""
    import torch  # noqa: F401


def save_state(stem: str | Path, state: Any, meta: dict[str, Any] | None = None) -> tuple[Path, Path]:
    """Write ``state`` as ``<stem>.pt`` + ``<stem>.json``; return both paths."""
    import torch

    stem = Path(stem)
    stem.parent.mkdir(parents=True, exist_ok=True)
    tensors: dict[str, Any] = {}
    skeleton = _encode(state, tensors)
    tensor_path, json_path = stem.with_name(stem.name + ".pt"), stem.with_name(stem.name + ".json")
    _atomic_write(tensor_path, lambda handle: torch.save(tensors, handle))
    document = {"format": "snn-bench-state", "version": FORMAT_VERSION, "meta": meta or {},
                "state": skeleton}
    _atomic_write(json_path, lambda handle: handle.write(json.dumps(document).encode()))
    return tensor_path, json_path


def load_state(stem: str | Path) -> tuple[Any, dict[str, Any]]:
    """(state, meta) written by :func:`save_state`; InputError for a missing, corrupt or unsafe
    file (a pickled object other than tensors is refused, never run)."""
    import pickle

    import torch

    stem = Path(stem)
    tensor_path, json_path = stem.with_name(stem.name + ".pt"), stem.with_name(stem.name + ".json")
    try:
        document = json.loads(json_path.read_text())
        if not isinstance(document, dict) or document.get("format") != "snn-bench-state":
            raise ValueError("not a state file")
        tensors = torch.load(tensor_path, map_location="cpu", weights_only=True)
        if not isinstance(tensors, dict):
            raise ValueError("tensor file holds no dict of tensors")
        state = _decode(document["state"], tensors)
    except (OSError, ValueError, KeyError, TypeError, EOFError, RuntimeError,
            pickle.UnpicklingError) as exc:
        reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise InputError(f"cannot read state {stem}: {reason[:200]}") from None
    return state, document.get("meta", {})
