"""Run records: one JSON file per run, written atomically and never overwritten.

A record is a plain dict (see :func:`new_record` for its fields). ``schema_version`` grows with
incompatible changes; :func:`migrate` brings older records up to date when loading.
``load(dir)`` gives a pandas DataFrame with one row per run and dotted column names
(``metrics.test_acc``, ``env.commit``, ``hparams.hidden``, ...).
"""

from __future__ import annotations

import datetime as _dt
import hashlib
import importlib.metadata
import json
import os
import platform
import subprocess
import tempfile
import uuid
from pathlib import Path
from typing import Any, Iterator

SCHEMA_VERSION = 1
STATUSES = ("ok", "failed", "diverged", "timeout")
PROJECT_ROOT = Path(__file__).resolve().parent.parent
TRACKED_PACKAGES = (
    "torch", "snntorch", "norse", "jax", "jaxlib", "spyx", "flax", "optax", "numpy", "h5py",
    "pandas", "optuna",
)

# Every metric's direction and the tolerance under which a change is noise. `compare` and
# `report` read this table; a metric missing here is informational only.
METRICS: dict[str, dict[str, Any]] = {
    "test_acc": {"higher_is_better": True, "tolerance": 0.02, "unit": "fraction"},
    "best_valid_acc": {"higher_is_better": True, "tolerance": 0.02, "unit": "fraction"},
    "seconds_per_epoch": {"higher_is_better": False, "tolerance": 0.5, "unit": "s", "relative": True},
    "train_seconds": {"higher_is_better": False, "tolerance": 0.5, "unit": "s", "relative": True},
    "peak_train_bytes": {"higher_is_better": False, "tolerance": 0.25, "unit": "B", "relative": True},
    # Inference activity (NeuroBench-style), read from the record's "inference" section: fewer
    # spikes and synaptic operations per sample mean cheaper inference on neuromorphic hardware.
    "spikes_per_neuron": {"higher_is_better": False, "tolerance": 0.25, "unit": "spikes",
                          "relative": True, "source": "inference"},
    "synops_per_sample": {"higher_is_better": False, "tolerance": 0.25, "unit": "ops",
                          "relative": True, "source": "inference"},
}


def now_iso() -> str:
    return _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")


def file_safe(name: str) -> str:
    """``name`` as part of a file name: other characters than letters, digits, - and _ become _,
    and only the last 40 are kept."""
    return "".join(c if c.isalnum() or c in "-_" else "_" for c in name)[-40:]


def new_run_id(method: str, dataset: str, seed: int) -> str:
    stamp = _dt.datetime.now(_dt.timezone.utc).strftime("%Y%m%dT%H%M%SZ")
    return f"{method}-{file_safe(dataset)}-s{seed}-{stamp}-{uuid.uuid4().hex[:6]}"


def stable_hash(obj: Any) -> str:
    text = json.dumps(obj, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def _file_digest(path: str) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def source_hash(source_file: str) -> str:
    """Hash of the adapter's source file alone (``method_source`` in a record)."""
    return _file_digest(source_file)[:16]


def method_version(source_file: str, hparams: dict[str, Any]) -> str:
    """Hash of the adapter's source and its hyperparameters: equal versions are comparable."""
    return stable_hash({"source": _file_digest(source_file), "hparams": hparams})


def _git(*args: str) -> str | None:
    try:
        out = subprocess.run(["git", *args], cwd=PROJECT_ROOT, capture_output=True, text=True,
                             timeout=10)
    except (OSError, subprocess.TimeoutExpired):
        return None
    return out.stdout.strip() if out.returncode == 0 else None


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def package_versions() -> dict[str, str]:
    versions = {}
    for name in TRACKED_PACKAGES:
        try:
            versions[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            continue
    return versions


def environment(threads: int, device: str, gpu: str | None, thread_settings: dict[str, str]) -> dict:
    status = _git("status", "--porcelain")
    return {
        "commit": _git("rev-parse", "HEAD"),
        "dirty": None if status is None else bool(status),
        "machine": platform.node(),
        "platform": platform.platform(),
        "cpu": _cpu_model(),
        "cpu_count": os.cpu_count(),
        "device": device,
        "gpu": gpu,
        "threads": threads,
        "thread_settings": thread_settings,
        "python": platform.python_version(),
        "packages": package_versions(),
    }


def new_record(*, run_id: str, method: str, method_version: str, dataset: str, dataset_hash: str,
               seed: int, hparams: dict[str, Any], env: dict[str, Any], tags: dict[str, Any],
               method_source: str | None = None) -> dict:
    return {
        "schema_version": SCHEMA_VERSION,
        "run_id": run_id,
        "method": method,
        "method_version": method_version,
        "method_source": method_source,
        "dataset": dataset,
        "dataset_hash": dataset_hash,
        "dataset_info": {},
        "seed": seed,
        "hparams": hparams,
        "tags": tags,
        "status": "failed",
        "error": None,
        "metrics": {
            "test_acc": None,
            "best_valid_acc": None,
            "train_seconds": None,
            "seconds_per_epoch": None,
            "peak_train_bytes": None,
            "epochs": 0,
        },
        "inference": {},
        "extra": {},
        "curve": [],
        "env": env,
        "started_at": now_iso(),
        "finished_at": None,
    }


def write(record: dict, out_dir: str | Path) -> Path:
    """Write ``record`` as ``<out_dir>/<run_id>.json`` atomically; refuse to overwrite."""
    if record.get("status") not in STATUSES:
        raise ValueError(f"record status must be one of {STATUSES}, got {record.get('status')!r}")
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    target = out / f"{record['run_id']}.json"
    fd, tmp = tempfile.mkstemp(prefix=".tmp-", suffix=".json", dir=out)
    try:
        with os.fdopen(fd, "w") as handle:
            json.dump(record, handle, indent=2, sort_keys=False, default=_json_default)
            handle.flush()
            os.fsync(handle.fileno())
        os.link(tmp, target)  # fails if the target exists: never overwrite a record
    finally:
        os.unlink(tmp)
    return target


def _json_default(value: Any) -> Any:
    if hasattr(value, "item"):
        return value.item()
    if hasattr(value, "tolist"):
        return value.tolist()
    return str(value)


def migrate(record: dict) -> dict:
    """Bring a record of an older schema up to the current one (none older exists yet)."""
    version = record.get("schema_version")
    if version != SCHEMA_VERSION:
        raise ValueError(f"unknown record schema_version {version!r}")
    return record


def read(path: str | Path) -> dict:
    with open(path) as handle:
        return migrate(json.load(handle))


def record_paths(run_dir: str | Path) -> list[Path]:
    """The record files in ``run_dir``, sorted, without unfinished writes (none if no such dir)."""
    return [path for path in sorted(Path(run_dir).glob("*.json"))
            if not path.name.startswith(".tmp-")]


def iter_records(run_dir: str | Path) -> Iterator[tuple[Path, dict]]:
    for path in record_paths(run_dir):
        yield path, read(path)


def load(run_dir: str | Path):
    """All records under ``run_dir`` as a DataFrame, one row per run, nested fields dotted."""
    import pandas as pd

    rows = [record for _, record in iter_records(run_dir)]
    if not rows:
        return pd.DataFrame()
    flat = pd.json_normalize([{k: v for k, v in r.items() if k != "curve"} for r in rows])
    flat["curve"] = [r.get("curve", []) for r in rows]
    return flat
