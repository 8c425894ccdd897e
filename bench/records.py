"""Run records: one JSON file per run, written atomically and never overwritten.

A record is a plain dict (see :func:`new_record` for its fields). ``schema_version`` grows with
incompatible changes; :func:`migrate` brings older records up to date when loading.
Reading them for reports is :mod:`bench.results.loader`'s job (``load(dir)`` here forwards to its
DataFrame view).
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


def source_hash(source_file: str | list[str]) -> str:
    """Hash of the adapter's source (``method_source`` in a record): one file, or every project
    file it imports (see :func:`project_sources`)."""
    files = [source_file] if isinstance(source_file, str) else sorted(source_file)
    if len(files) == 1:
        return _file_digest(files[0])[:16]
    return stable_hash({str(Path(f).resolve().relative_to(PROJECT_ROOT)) if _inside(f) else f:
                        _file_digest(f) for f in files})


def method_version(source_file: str | list[str], hparams: dict[str, Any]) -> str:
    """Hash of the adapter's sources and its hyperparameters: equal versions are comparable."""
    files = [source_file] if isinstance(source_file, str) else sorted(source_file)
    source = _file_digest(files[0]) if len(files) == 1 else source_hash(files)
    return stable_hash({"source": source, "hparams": hparams})


def _inside(path: str) -> bool:
    try:
        Path(path).resolve().relative_to(PROJECT_ROOT)
        return True
    except ValueError:
        return False


PROJECT_PACKAGES = ("methods", "datasets")


def project_sources(module_file: str) -> list[str]:
    """``module_file`` and every file of ``methods`` and ``datasets`` it imports, transitively
    (static walk of its import statements, those inside functions included), so that editing a
    shared module (the network, the readouts, the binning) changes the version of every method
    that uses it."""
    import ast
    import importlib.util

    seen: dict[str, None] = {}
    todo = [str(Path(module_file).resolve())]
    while todo:
        path = todo.pop()
        if path in seen:
            continue
        seen[path] = None
        try:
            tree = ast.parse(Path(path).read_text(), filename=path)
        except (OSError, SyntaxError):
            continue
        package = _package_of(path)
        for node in ast.walk(tree):
            for name in _imported_names(node, package):
                if name.split(".")[0] not in PROJECT_PACKAGES:
                    continue
                try:
                    spec = importlib.util.find_spec(name)
                except (ImportError, ValueError):
                    spec = None
                if spec is not None and spec.origin and spec.origin.endswith(".py"):
                    todo.append(str(Path(spec.origin).resolve()))
    return sorted(seen)


def method_sources(method: str) -> list[str]:
    """Every project file a run of ``method`` depends on: the adapter's transitive imports and
    the data path (reader, binning, transforms)."""
    import datasets.spikes
    import datasets.transforms
    from bench import registry

    files = set(project_sources(registry.method_module_file(method)))
    files.update(project_sources(datasets.spikes.__file__))
    files.update(project_sources(datasets.transforms.__file__))
    return sorted(files)


def _package_of(path: str) -> str | None:
    try:
        rel = Path(path).resolve().relative_to(PROJECT_ROOT).with_suffix("")
    except ValueError:
        return None
    parts = list(rel.parts)
    return ".".join(parts[:-1]) if parts[-1] != "__init__" else ".".join(parts[:-1])


def _imported_names(node: Any, package: str | None) -> list[str]:
    import ast

    if isinstance(node, ast.Import):
        return [alias.name for alias in node.names]
    if isinstance(node, ast.ImportFrom):
        if node.level:
            if not package:
                return []
            base = package.split(".")
            base = base[: len(base) - (node.level - 1)] if node.level > 1 else base
            module = ".".join(base + ([node.module] if node.module else []))
        else:
            module = node.module or ""
        # "from pkg import mod" may name a module: try both
        return [module] + [f"{module}.{alias.name}" for alias in node.names]
    return []


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
    status = _git("status", "--porcelain", "--", ".", ":(exclude)reports")  # runs write there
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
        **instruction_sets(),
    }


def instruction_sets() -> dict[str, Any]:
    """What the numerical libraries run on: torch's CPU capability (the vector instruction set its
    kernels dispatch to), numpy's dispatched CPU features and the BLAS libraries loaded. Results
    can differ in the last bits between instruction-set levels, so accuracy is compared only
    between runs of the same level."""
    found: dict[str, Any] = {"cpu_capability": None, "numpy_cpu_features": [], "blas": []}
    try:
        from numpy._core._multiarray_umath import (__cpu_baseline__, __cpu_dispatch__,
                                                   __cpu_features__)

        found["numpy_cpu_features"] = [f for f in [*__cpu_baseline__, *__cpu_dispatch__]
                                       if __cpu_features__.get(f, f in __cpu_baseline__)]
    except ImportError:
        pass
    try:
        import torch

        found["cpu_capability"] = torch.backends.cpu.get_cpu_capability()
    except ImportError:
        pass
    try:
        import threadpoolctl

        found["blas"] = [{k: info.get(k) for k in ("internal_api", "version", "architecture")}
                         for info in threadpoolctl.threadpool_info()
                         if info.get("user_api") == "blas"]
    except ImportError:
        pass
    return found


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
        os.chmod(tmp, 0o666 & ~_umask())  # readable by others sharing the folder, as umask says
        with os.fdopen(fd, "w") as handle:
            json.dump(record, handle, indent=2, sort_keys=False, default=_json_default)
            handle.flush()
            os.fsync(handle.fileno())
        os.link(tmp, target)  # fails if the target exists: never overwrite a record
    finally:
        os.unlink(tmp)
    return target


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def check_writable(directory: str | Path, what: str = "output folder") -> Path:
    """Create ``directory`` if needed and prove that a file can be created, written and renamed
    in it; InputError (one line) otherwise. Run before training, so that no finished result
    meets an unwritable folder."""
    from datasets.types import InputError

    path = Path(directory)
    if path.exists() and not path.is_dir():
        raise InputError(f"{what} {path} is a file, not a folder")
    try:
        path.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=".tmp-check-", dir=path)
        with os.fdopen(fd, "w") as handle:
            handle.write("ok")
        moved = tmp + ".renamed"
        os.replace(tmp, moved)
        os.unlink(moved)
    except OSError as exc:
        raise InputError(f"{what} {path} is not writable: {exc.strerror or exc}") from None
    return path


def fallback_dir() -> Path:
    """Where a record goes when its output folder refuses it at the end of a run."""
    env = os.environ.get("SNN_BENCH_FALLBACK")
    if env:
        return Path(env)
    import platformdirs

    return Path(platformdirs.user_cache_dir("snn-bench")) / "unsaved-records"


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
    """All records under ``run_dir`` as a DataFrame (:func:`bench.results.loader.load_frame`)."""
    from bench.results.loader import load_frame

    return load_frame(run_dir)
