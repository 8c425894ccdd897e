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
import os
import pickle
import signal
import sys
import threading
import time
import traceback
from pathlib import Path
from typing import Any

import numpy as np

from bench import measure, records, registry
from methods.api import DivergedError, InputError, make_hparams, parse_overrides

EXIT_CODES = {"ok": 0, "failed": 1, "diverged": 3, "timeout": 4}
DEFAULT_OUT = "reports/runs"


class TimeLimitReached(Exception):
    pass


class Terminated(Exception):
    """SIGTERM arrived (a scheduler, a tuner's pruner): the run ends with a failed record."""


def _raise_terminated(signum, frame):
    raise Terminated(f"terminated by signal {signum}")


@dataclasses.dataclass
class RunConfig:
    method: str
    dataset: str = registry.DEFAULT_DATASET
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


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--method", required=True, help="a registered method (see `bench list`)")
    parser.add_argument("--dataset", default=registry.DEFAULT_DATASET,
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


def main(args: argparse.Namespace) -> int:
    tags = {}
    for item in args.tag:
        if "=" not in item:
            raise InputError(f"--tag expects key=value, got {item!r}")
        key, value = item.split("=", 1)
        tags[key] = value
    if args.threads < 1:
        raise InputError("--threads must be at least 1")
    config = RunConfig(method=args.method, dataset=args.dataset, seed=args.seed, device=args.device,
                       epochs=args.epochs, out=args.out, resume=args.resume,
                       overrides=args.overrides, threads=args.threads, time_limit=args.time_limit,
                       progress=not args.no_progress, tags=tags)
    record, _ = run(config)
    return EXIT_CODES[record["status"]]


# ---------------------------------------------------------------------------------------------


def prepare(config: RunConfig):
    """Everything that can fail on bad input, before any record exists. Raises InputError."""
    thread_settings = measure.configure_threads(config.threads)
    if config.epochs is not None and config.epochs < 1:
        raise InputError(f"--epochs must be at least 1, got {config.epochs}")
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
    return method_cls, hparams, data, thread_settings


def build_transforms(hparams, spec):
    """(training transform, evaluation transform, spec the method sees). Augmentations act on
    training batches only; delay lines change the input of every split (and n_in)."""
    if not hparams.uses_transforms():
        return None, None, spec
    from datasets import transforms

    train, evaluate, n_in = transforms.build(hparams, spec.n_in)
    return train, evaluate, dataclasses.replace(spec, n_in=n_in)


def run(config: RunConfig) -> tuple[dict, Path]:
    """Run one configuration and write its record. Bad input raises InputError (no record)."""
    method_cls, hparams, data, thread_settings = prepare(config)
    hp_dict = dataclasses.asdict(hparams)
    source_file = registry.method_module_file(config.method)
    record = records.new_record(
        run_id=records.new_run_id(config.method, data.spec.name, config.seed),
        method=config.method, method_version=records.method_version(source_file, hp_dict),
        method_source=records.source_hash(source_file), dataset=data.spec.name,
        dataset_hash=data.spec.content_hash, seed=config.seed, hparams=hp_dict,
        env=records.environment(config.threads, config.device, _gpu_name(config.device),
                                thread_settings),
        tags=config.tags,
    )
    record["dataset_info"] = data.provenance
    train_transform, eval_transform, spec = build_transforms(hparams, data.spec)
    method = method_cls()
    method.setup(spec, hparams, config.seed, config.device)  # InputError: bad device etc.

    checkpoint = _checkpoint_path(config, record["method_version"], data.spec.content_hash)
    trainer = _Trainer(method, data, hparams, config, record, checkpoint,
                       transforms={"train": train_transform, "eval": eval_transform})
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
    except Exception as exc:  # a crash is a failed record, never a silent 0.0
        record["status"], record["error"] = "failed", _describe(exc)
        record["traceback"] = traceback.format_exc(limit=20)
    trainer.fill_metrics()
    record["finished_at"] = records.now_iso()
    path = records.write(record, config.out)
    _print_summary(record, path)
    return record, path


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


def _checkpoint_path(config: RunConfig, version: str, data_hash: str) -> Path:
    key = records.stable_hash({"method": config.method, "version": version, "data": data_hash,
                               "seed": config.seed, "device": config.device})
    return Path(config.out).parent / "checkpoints" / f"{config.method}-s{config.seed}-{key}.pkl"


def _print_summary(record: dict, path: Path) -> None:
    metrics = record["metrics"]
    if record["status"] == "ok":
        line = (f"{record['method']} on {record['dataset']} (seed {record['seed']}): "
                f"test acc {metrics['test_acc']:.3f}, best valid {metrics['best_valid_acc']:.3f}, "
                f"{metrics['seconds_per_epoch']:.2f} s/epoch, "
                f"peak train memory {metrics['peak_train_bytes'] / 2**20:.1f} MiB")
        print(line, file=sys.stderr)
    else:
        print(f"error: run {record['status']}: {record['error']}", file=sys.stderr)
    print(f"record: {path}", file=sys.stderr)


class _Trainer:
    """The epoch loop of one run, with its clocks, memory gauge, progress and checkpoints."""

    def __init__(self, method, data, hparams, config: RunConfig, record: dict, checkpoint: Path,
                 transforms: dict[str, Any]):
        self.method, self.data, self.hp, self.config = method, data, hparams, config
        self.record, self.checkpoint, self.transforms = record, checkpoint, transforms
        self.fmt = method.input_format
        self.clock = measure.Clock()
        self.memory = measure.PeakMemory(device=config.device, framework=method.framework)
        self.epoch = 0
        self.best_valid: float | None = None
        self.started = time.monotonic()

    # -- training ----------------------------------------------------------------------------
    def train(self) -> None:
        if self.config.resume:
            self._load_checkpoint()
        self.memory.begin_training()
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

        columns = [TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(),
                   TimeElapsedColumn(), TextColumn("{task.fields[status]}")]
        n_batches = -(-self.data.split_size("train") // self.hp.batch_size)
        with Progress(*columns, disable=not self.config.progress, transient=False) as progress:
            while self.epoch < self.hp.epochs:
                task = progress.add_task(f"epoch {self.epoch + 1}/{self.hp.epochs}",
                                         total=n_batches, status="")
                self._train_epoch(progress, task)
        self.method.sync()
        self.clock.start()
        self.method.finalize()
        self.method.sync()
        self.clock.stop()
        self._evaluate_test()

    def _train_epoch(self, progress, task) -> None:
        epoch_clock = measure.Clock()
        loss_sum, correct, seen = 0.0, 0, 0
        self.memory.resume_phase()
        batches = self.data.batches("train", self.hp.batch_size, fmt=self.fmt, shuffle=True,
                                    seed=self.config.seed * 100_003 + self.epoch,
                                    transform=self.transforms["train"])
        for batch in batches:
            self._check_time()
            self.method.sync()
            epoch_clock.start()
            out = self.method.train_step(batch)
            self.method.sync()
            epoch_clock.stop()
            loss = float(out["loss"])
            if not np.isfinite(loss):
                raise DivergedError(f"loss became {loss} in epoch {self.epoch + 1}")
            loss_sum += loss * batch.size
            seen += batch.size
            correct += int(out.get("correct", 0))
            progress.update(task, advance=1,
                            status=f"loss {loss_sum / seen:.4f}  acc {correct / seen:.3f}")
        self.memory.end_phase()
        self.method.end_epoch(self.epoch)
        self.clock.total += epoch_clock.total
        valid_acc = self._accuracy("valid")
        self.best_valid = valid_acc if self.best_valid is None else max(self.best_valid, valid_acc)
        self.epoch += 1
        self.record["curve"].append({
            "epoch": self.epoch, "train_loss": loss_sum / max(seen, 1),
            "train_acc": correct / max(seen, 1), "valid_acc": valid_acc,
            "seconds": epoch_clock.total, "wall_seconds": time.monotonic() - self.started,
        })
        progress.update(task, status=(f"loss {loss_sum / max(seen, 1):.4f}  acc "
                                      f"{correct / max(seen, 1):.3f}  valid {valid_acc:.3f}"))
        self._save_checkpoint()

    def _check_time(self) -> None:
        limit = self.config.time_limit
        if limit is not None and time.monotonic() - self.started > limit:
            raise TimeLimitReached(f"time limit of {limit:g} s reached in epoch {self.epoch + 1}")

    # -- evaluation (untimed) -----------------------------------------------------------------
    def _accuracy(self, split: str, stats: list | None = None) -> float:
        correct = total = 0
        for batch in self.data.batches(split, self.hp.batch_size, fmt=self.fmt,
                                       transform=self.transforms["eval"]):
            scores = np.asarray(self.method.predict(batch))
            if not np.all(np.isfinite(scores)):
                raise DivergedError(f"non-finite scores on the {split} split")
            correct += int((scores.argmax(axis=1) == batch.y).sum())
            total += batch.size
            if stats is not None:
                stats.append(self.method.inference_stats())
        if total == 0:
            raise InputError(f"the {split} split is empty")
        return correct / total

    def _evaluate_test(self) -> None:
        stats: list = []
        self.record["metrics"]["test_acc"] = self._accuracy("test", stats)
        self.record["inference"] = _summarise_inference(stats, self.data.spec.n_steps)
        self.record["extra"] = self.method.extra_metrics()

    # -- record -------------------------------------------------------------------------------
    def fill_metrics(self) -> None:
        metrics = self.record["metrics"]
        metrics["epochs"] = self.epoch
        metrics["best_valid_acc"] = self.best_valid
        if self.epoch:
            metrics["train_seconds"] = self.clock.total
            metrics["seconds_per_epoch"] = sum(c["seconds"] for c in self.record["curve"]) / self.epoch
            metrics["peak_train_bytes"] = self.memory.peak
        self.record["env"]["memory_gauge"] = self.memory.method
        self.record["env"]["allocator_settings"] = measure.allocator_settings()

    # -- checkpoints --------------------------------------------------------------------------
    def _save_checkpoint(self) -> None:
        state = {"epoch": self.epoch, "best_valid": self.best_valid, "curve": self.record["curve"],
                 "train_seconds": self.clock.total, "method": self.method.state_dict(),
                 "run_id": self.record["run_id"]}
        self.checkpoint.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.checkpoint.with_suffix(".tmp")
        with open(tmp, "wb") as handle:
            pickle.dump(state, handle, protocol=pickle.HIGHEST_PROTOCOL)
        os.replace(tmp, self.checkpoint)

    def _load_checkpoint(self) -> None:
        if not self.checkpoint.exists():
            print("note: no checkpoint of this configuration; starting from scratch", file=sys.stderr)
            return
        try:
            with open(self.checkpoint, "rb") as handle:
                state = pickle.load(handle)
        except (OSError, pickle.UnpicklingError, EOFError) as exc:
            raise InputError(f"cannot read checkpoint {self.checkpoint}: {exc}") from None
        self.method.load_state_dict(state["method"])
        self.epoch, self.best_valid = state["epoch"], state["best_valid"]
        self.record["curve"] = list(state["curve"])
        self.clock.total = state["train_seconds"]
        self.record["resumed_from"] = state["run_id"]
        print(f"note: resuming after epoch {self.epoch} from {self.checkpoint}", file=sys.stderr)


def _summarise_inference(stats: list, n_steps: int) -> dict[str, float]:
    """Mean per-sample inference metrics over the test split (empty if the method gives none)."""
    stats = [s for s in stats if s is not None]
    if not stats:
        return {}
    spikes = np.concatenate([s.hidden_spikes for s in stats])
    synops = np.concatenate([s.synops for s in stats])
    dense = np.concatenate([s.dense_synops for s in stats])
    n_neurons = stats[0].n_neurons
    summary = {
        "spikes_per_neuron": float(spikes.mean() / max(n_neurons, 1)),
        "spikes_per_sample": float(spikes.mean()),
        "synops_per_sample": float(synops.mean()),
        "dense_synops_per_sample": float(dense.mean()),
    }
    active = [s.active_fraction for s in stats if s.active_fraction.size]
    if active:
        summary["activation_sparsity"] = float(1.0 - np.concatenate(active).mean())
    return summary
