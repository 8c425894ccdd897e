"""One run: (method, dataset, seed) -> a record on disk.

Order of a run (see docs/ARCHITECTURE.md):
1. fix thread counts, parse and check hyperparameters, open the data, build the method;
2. per epoch: timed training steps (each followed by the method's sync before the clock is read),
   the peak-memory gauge armed only around them; untimed validation; a checkpoint;
3. timed ``finalize``; untimed test accuracy, once, and inference metrics on the test split;
4. one record, written atomically. A crash, a divergence or a time-out is recorded as such.

Exit codes: 0 ok, 1 failed, 2 bad input (nothing run, no record), 3 diverged, 4 timeout.
"""

from __future__ import annotations

import argparse
import dataclasses
import math
import os
import signal
import sys
import threading
import traceback
from pathlib import Path
from typing import Any

from bench import checkpoints, launcher, measure, records, registry
from bench.locks import Lock
from bench.trainer import TimeLimitReached, Trainer
from datasets.catalog import DEFAULT_DATASET
from methods import readouts
from methods.api import (DivergedError, InputError, lr_from_dataset_budget, make_hparams,
                         parse_overrides, window_from_dataset_activity)

EXIT_CODES = {"ok": 0, "failed": 1, "diverged": 3, "timeout": 4}
DEFAULT_OUT = "reports/runs"


class Terminated(Exception):
    """SIGTERM arrived (a scheduler, a tuner's pruner): the run ends with a failed record."""


def _raise_terminated(signum, frame):
    raise Terminated(f"terminated by signal {signum}")


@dataclasses.dataclass
class RunConfig:
    method: str
    dataset: str = DEFAULT_DATASET
    seed: int = 0
    device: str = "cpu"
    epochs: int | None = None
    out: str = DEFAULT_OUT
    resume: bool = False
    overrides: list[str] = dataclasses.field(default_factory=list)
    threads: int = 1
    time_limit: float | None = None
    progress: bool = True
    tags: dict[str, Any] = dataclasses.field(default_factory=dict)
    track: str | None = None


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--config", default=None, metavar="FILE.toml",
                        help="options from a TOML file (see bench/config.py); the command line wins")
    parser.add_argument("--method", required=True, help="a registered method (see `bench list`)")
    parser.add_argument("--dataset", default=DEFAULT_DATASET,
                        help="synthetic (default), shd, ssc, or a path to <name>_{train,test}.h5 files")
    parser.add_argument("--epochs", type=int, default=None,
                        help="training epochs (default: the method's, else the dataset's budget)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--device", choices=("cpu", "cuda"), default="cpu")
    parser.add_argument("--out", default=DEFAULT_OUT, help="directory for run records")
    parser.add_argument("--resume", action="store_true",
                        help="continue from the last checkpoint of the same configuration")
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                        help="override a hyperparameter (repeatable), type-checked")
    parser.add_argument("--threads", type=int, default=1,
                        help="CPU threads for torch/BLAS/XLA (fixed per run, recorded; default 1)")
    parser.add_argument("--time-limit", type=float, default=None, metavar="SECONDS",
                        help="stop training after this many wall-clock seconds (status timeout)")
    parser.add_argument("--tag", action="append", default=[], metavar="KEY=VALUE",
                        help="free-form label stored in the record (repeatable)")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    parser.add_argument("--track", choices=("tensorboard", "mlflow"), default=None,
                        help="also log every epoch to an experiment tracker (local store)")


def main(args: argparse.Namespace) -> int:
    tags = {}
    for item in args.tag:
        if "=" not in item:
            raise InputError(f"--tag expects key=value, got {item!r}")
        key, value = item.split("=", 1)
        tags[key] = value
    config = RunConfig(method=args.method, dataset=args.dataset, seed=args.seed, device=args.device,
                       epochs=args.epochs, out=args.out, resume=args.resume,
                       overrides=args.overrides, threads=args.threads, time_limit=args.time_limit,
                       progress=not args.no_progress, tags=tags, track=args.track)
    try:
        record, path = run(config)
    except RecordNotWritten as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    return EXIT_CODES[record["status"]] if path is not None else 0


# ---------------------------------------------------------------------------------------------


def prepare(config: RunConfig):
    """Everything that can fail on bad input, before any record exists. Raises InputError."""
    thread_settings = measure.configure_threads(config.threads)
    method_cls = registry.load_method(config.method)
    measure.apply_torch_threads(config.threads)
    if hasattr(os, "sched_getaffinity"):
        thread_settings["cpu_affinity"] = ",".join(map(str, sorted(os.sched_getaffinity(0))))
    overrides = parse_overrides(method_cls.Hparams, config.overrides)
    if config.epochs is not None:
        overrides["epochs"] = config.epochs
    hparams = make_hparams(method_cls.Hparams, overrides)

    import datasets
    from datasets import transforms

    transforms.validate(hparams)

    data = datasets.open_dataset(config.dataset, steps=hparams.steps, dt_ms=hparams.dt_ms)
    if hparams.epochs is None:
        hparams = dataclasses.replace(hparams, epochs=data.recommended_epochs)
    if "lr" not in overrides and lr_from_dataset_budget(method_cls.Hparams):
        hparams = dataclasses.replace(hparams, lr=data.recommended_lr)
    hparams, window = place_readout_window(hparams, overrides, data)
    return method_cls, hparams, data, thread_settings, window


def place_readout_window(hparams, overrides: dict, data) -> tuple[Any, dict | None]:
    """A Gaussian readout window not set by the user is scaled to the training data's utterances
    (methods/readouts.py). Returns the hyperparameters and, for ``loss=gauss_window``, the
    window for the record: centre and sigma in ms, which of the two came from the data, and the
    utterance duration they came from."""
    if getattr(hparams, "loss", None) != "gauss_window":
        return hparams, None
    window: dict[str, Any] = {"from_data": []}
    if window_from_dataset_activity(type(hparams)):
        utterance = data.utterance_ms()
        mu, sigma = readouts.window_for_utterance(utterance, hparams.steps * hparams.dt_ms,
                                                  hparams.steps)
        placed = {k: v for k, v in {"gauss_mu": mu, "gauss_sigma": sigma}.items()
                  if k not in overrides}
        hparams = dataclasses.replace(hparams, **placed)
        window = {"utterance_ms": utterance, "from_data": sorted(placed)}
    window_ms = hparams.steps * hparams.dt_ms
    window.update(centre_ms=hparams.gauss_mu * window_ms, sigma_ms=hparams.gauss_sigma * window_ms)
    return hparams, window


def build_transforms(hparams, spec):
    """(training transform, evaluation transform, spec the method sees). Augmentations act on
    training batches only; delay lines change the input of every split (and n_in)."""
    if not hparams.uses_transforms():
        return None, None, spec
    from datasets import transforms

    train, evaluate, n_in = transforms.build(hparams, spec.n_in)
    return train, evaluate, dataclasses.replace(spec, n_in=n_in)


SEED_MAX = 2**32 - 1


def check_config(config: RunConfig) -> None:
    """Input checks that need no data and no framework; InputError names the bad value."""
    if not 0 <= config.seed <= SEED_MAX:
        raise InputError(f"--seed must be in 0..{SEED_MAX}, got {config.seed}")
    if config.threads < 1:
        raise InputError("--threads must be at least 1")
    if config.time_limit is not None and not (config.time_limit > 0 and math.isfinite(config.time_limit)):
        raise InputError(f"--time-limit must be a positive number of seconds, got {config.time_limit:g}")
    if config.epochs is not None and config.epochs < 1:
        raise InputError(f"--epochs must be at least 1, got {config.epochs}")


def check_memory(hparams, spec) -> None:
    """Refuse sizes whose weights (with gradients and Adam's two moments) cannot fit in the
    memory this machine has available, before anything is allocated."""
    hidden = int(getattr(hparams, "hidden", 0) or 0)
    n_in = spec.n_in * max(1, int(getattr(hparams, "delay_lines", 1) or 1))
    weights = n_in * hidden + hidden * hidden + hidden * spec.n_classes + n_in * spec.n_classes
    needed = 4 * 4 * weights
    available = measure.available_bytes()
    if available is not None and needed > available:
        raise InputError(
            f"the network needs about {needed / 2**30:.1f} GiB for its weights, gradients and "
            f"optimiser state (hidden={hidden}, {n_in} inputs, {spec.n_classes} classes); "
            f"{available / 2**30:.1f} GiB are available"
        )


def run_paths(out: Path, run_key: str) -> dict[str, Path]:
    return {"checkpoint": out / "checkpoints" / run_key / "state",
            "progress": out / "progress" / f"{run_key}.json",
            "lock": out / "locks" / f"{run_key}.lock"}


def finished_record(out: Path, run_key: str) -> Path | None:
    """An ok record of this configuration in ``out``, if one exists."""
    for path in records.record_paths(out):
        try:
            record = records.read(path)
        except (OSError, ValueError):
            continue
        if isinstance(record, dict) and record.get("run_key") == run_key and record.get("status") == "ok":
            return path
    return None


def run(config: RunConfig) -> tuple[dict, Path | None]:
    """Run one configuration and write its record. Bad input raises InputError (no record).

    Returns the record and where it was written (None when resuming a finished run, which
    writes nothing)."""
    check_config(config)
    method_cls, hparams, data, thread_settings, window = prepare(config)
    check_memory(hparams, data.spec)
    hp_dict = dataclasses.asdict(hparams)
    sources = records.method_sources(config.method)
    version = records.method_version(sources, hp_dict)
    run_key = records.stable_hash({"method": config.method, "version": version,
                                   "data": data.spec.content_hash, "seed": config.seed,
                                   "device": config.device})
    out = records.check_writable(config.out)
    paths = run_paths(out, run_key)
    records.check_writable(paths["checkpoint"].parent, "checkpoint folder")
    lock = Lock(paths["lock"], f"this configuration ({config.method}, seed {config.seed}) into {out}")
    with lock:
        if config.resume:
            done = finished_record(out, run_key)
            if done is not None:
                print(f"{launcher.ALREADY_FINISHED}{done}. "
                      "Nothing to do.", file=sys.stderr)
                return records.read(done), None
        record = records.new_record(
            run_id=records.new_run_id(config.method, data.spec.name, config.seed),
            method=config.method, method_version=version,
            method_source=records.source_hash(sources), dataset=data.spec.name,
            dataset_hash=data.spec.content_hash, seed=config.seed, hparams=hp_dict,
            env=records.environment(config.threads, config.device, _gpu_name(config.device),
                                    thread_settings),
            tags=config.tags,
        )
        record["run_key"] = run_key
        record["budget"] = {"epochs": hparams.epochs, "lr": getattr(hparams, "lr", None),
                            "lr_schedule": getattr(hparams, "lr_schedule", "constant"),
                            "dataset_epochs": data.recommended_epochs,
                            "dataset_lr": data.recommended_lr}
        record["dataset_info"] = data.provenance
        if window is not None:
            record["readout_window"] = window
        return _train_and_record(config, method_cls, hparams, data, record, out, paths)


def _train_and_record(config, method_cls, hparams, data, record, out, paths):
    train_transform, eval_transform, spec = build_transforms(hparams, data.spec)
    method = method_cls()
    method.setup(spec, hparams, config.seed, config.device)  # InputError: bad device etc.
    tracker = _make_tracker(config, out, record)
    trainer = Trainer(method, data, hparams, config, record, paths,
                      transforms={"train": train_transform, "eval": eval_transform},
                      tracker=tracker)
    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGTERM, _raise_terminated)
    try:
        trainer.train()
        record["status"] = "ok"
    except DivergedError as exc:
        record["status"], record["error"] = "diverged", f"diverged: {exc}"
    except TimeLimitReached as exc:
        record["status"], record["error"] = "timeout", str(exc)
    except KeyboardInterrupt:
        record["status"], record["error"] = "failed", "interrupted by the user"
    except Terminated as exc:
        record["status"], record["error"] = "failed", str(exc)
    except MemoryError:
        record["status"], record["error"] = "failed", "out of memory"
    except InputError:
        raise
    except Exception as exc:  # a crash is a failed record, never a silent 0.0
        record["status"], record["error"] = "failed", _describe(exc)
        record["traceback"] = traceback.format_exc(limit=20)
    trainer.fill_metrics()
    record["finished_at"] = records.now_iso()
    if record["status"] == "ok":
        record["weights_file"] = _save_weights(method, record, out)
    path = _write_record(record, out)
    _finish(trainer, record, tracker, path)
    return record, path


def _finish(trainer, record, tracker, path) -> None:
    try:
        trainer.write_progress(record["status"])
    except OSError:
        pass
    if tracker is not None:
        tracker.log_final(record)
    _print_summary(record, path)


def _save_weights(method, record: dict, out: Path) -> str | None:
    """The final weights beside the record (tensors + JSON, no pickle); the record names them."""
    stem = out / "weights" / record["run_id"]
    try:
        checkpoints.save_state(stem, method.state_dict(),
                               {"run_id": record["run_id"], "method": record["method"],
                                "hparams": record["hparams"], "dataset": record["dataset"]})
    except (OSError, TypeError) as exc:
        record["weights_error"] = _describe(exc)
        return None
    return f"weights/{stem.name}.pt"


def _write_record(record: dict, out: Path) -> Path:
    """Write the record; if its folder refuses it now, write it to the fallback folder, say
    where, and mark the run as failed to the caller (exit 1): a finished result is never lost."""
    try:
        return records.write(record, out)
    except OSError as exc:
        fallback = records.fallback_dir()
        try:
            saved = records.write(record, fallback)
        except OSError:
            import json

            print(json.dumps(record, default=str), file=sys.stderr)
            raise RecordNotWritten(f"cannot write the record to {out} ({exc.strerror or exc}) "
                                   f"nor to {fallback}; the record is printed above") from None
        raise RecordNotWritten(f"cannot write the record to {out} ({exc.strerror or exc}); "
                               f"saved it to {saved}") from None


class RecordNotWritten(Exception):
    """The run finished but its output folder refused the record (saved elsewhere: exit 1)."""


def _make_tracker(config, out: Path, record: dict):
    if not config.track:
        return None
    try:
        from bench.tracking import make_tracker
    except ImportError as exc:
        raise InputError(f"--track {config.track}: tracking is unavailable ({exc})") from None
    return make_tracker(config.track, out, record)


def _describe(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
    if "out of memory" in text.lower():
        return f"out of memory: {text}"
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


def _gpu_name(device: str) -> str | None:
    if device != "cuda":
        return None
    try:
        import torch

        return torch.cuda.get_device_name(0) if torch.cuda.is_available() else None
    except ImportError:
        return None


def _print_summary(record: dict, path: Path | None) -> None:
    metrics = record["metrics"]
    if record["status"] == "ok":
        line = (f"{record['method']} on {record['dataset']} (seed {record['seed']}): "
                f"test acc {metrics['test_acc']:.3f}, best valid {metrics['best_valid_acc']:.3f}, "
                f"{metrics['seconds_per_epoch']:.2f} s/epoch, "
                f"peak train memory {metrics['peak_train_bytes'] / 2**20:.1f} MiB")
        print(line, file=sys.stderr)
    else:
        print(f"error: run {record['status']}: {record['error']}", file=sys.stderr)
    if path is not None:
        print(f"record: {path}", file=sys.stderr)
