"""The epoch loop of one run: clocks, the memory gauge, progress, checkpoints and stopping rules.

Per epoch: the memory gauge is armed; each training step is timed between two ``sync()`` calls;
the gauge is read; untimed validation; a checkpoint and a progress file. A run resumed from a
checkpoint continues its clocks and its peak, so the record covers the whole run.

Learning-rate schedule (``lr_schedule``), one rate per epoch e = 0..E-1 of E, base rate lr:
    constant  lr_e = lr
    cosine    lr_e = lr (1 + cos(pi e / E)) / 2   (Loshchilov & Hutter 2017, without restarts:
              lr in the first epoch, lr (1 + cos(pi (E-1)/E)) / 2 ~ lr pi^2 / (4 E^2) in the last)
The method takes each epoch's rate through ``Method.set_lr`` before the epoch's first step; the
curve records it.
"""

from __future__ import annotations

import json
import math
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

from bench import checkpoints, measure
from methods.api import DivergedError, InputError

FLAT_LOSS_TOLERANCE = 1e-6  # every batch loss this close to ln(C): outputs constant, nothing learned


class TimeLimitReached(Exception):
    pass


def scheduled_lr(lr: float, schedule: str, epoch: int, epochs: int) -> float:
    """The rate of epoch ``epoch`` (0-based) of ``epochs`` under ``schedule`` (module doc)."""
    if schedule == "constant":
        return lr
    if schedule == "cosine":
        return lr * (1.0 + math.cos(math.pi * epoch / epochs)) / 2.0
    raise InputError(f"unknown lr_schedule {schedule!r}; known: constant, cosine")


class Trainer:
    """Trains ``method`` on ``data`` for ``hparams.epochs`` epochs, filling ``record``."""

    def __init__(self, method, data, hparams, config, record: dict, paths: dict[str, Path],
                 transforms: dict[str, Any], tracker=None):
        self.method, self.data, self.hp, self.config = method, data, hparams, config
        self.record, self.paths, self.transforms, self.tracker = record, paths, transforms, tracker
        self.fmt = method.input_format
        self.clock = measure.Clock()
        self.memory = measure.PeakMemory(device=config.device, framework=method.framework)
        self.epoch = 0
        self.best_valid: float | None = None
        self.process_started = time.monotonic()
        self.started = self.process_started  # moved back by the elapsed wall time on resume
        self.n_classes = data.spec.n_classes

    # -- training ----------------------------------------------------------------------------
    def train(self) -> None:
        if self.config.resume:
            self.load_checkpoint()
        self._check_schedule()
        self.data.prepare(self.hp.batch_size, self.fmt, self.transforms["train"])
        checkpoints.load_backend()  # the checkpoint writer's torch, below the baseline (JAX runs too)
        from rich.console import Console
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

        columns = [TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(),
                   TimeElapsedColumn(), TextColumn("{task.fields[status]}")]
        n_batches = -(-self.data.split_size("train") // self.hp.batch_size)
        with Progress(*columns, disable=not self.config.progress, transient=False,
                      console=Console(stderr=True)) as progress:
            self.memory.begin_training()  # last: everything the harness sets up is below the baseline
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

    def _check_schedule(self) -> None:
        """A schedule the method cannot follow is bad input: refused before any training."""
        if self.hp.lr_schedule == "constant":
            return
        try:
            self.method.set_lr(self._epoch_lr())
        except NotImplementedError as exc:
            raise InputError(f"lr_schedule={self.hp.lr_schedule}: {exc}") from None

    def _epoch_lr(self) -> float:
        return scheduled_lr(self.hp.lr, self.hp.lr_schedule, self.epoch, self.hp.epochs)

    def _train_epoch(self, progress, task) -> None:
        epoch_clock = measure.Clock()
        lr = self._epoch_lr()
        if self.hp.lr_schedule != "constant":
            self.method.set_lr(lr)
        loss_sum, correct, seen = 0.0, 0, 0
        watch = _ActivityWatch(self.n_classes)
        self.memory.resume_phase()
        batches = self.data.batches("train", self.hp.batch_size, fmt=self.fmt, shuffle=True,
                                    seed=self.config.seed * 100_003 + self.epoch,
                                    transform=self.transforms["train"], reuse_buffer=True)
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
            watch.add(loss, out)
            loss_sum += loss * batch.size
            seen += batch.size
            correct += int(out.get("correct", 0))
            progress.update(task, advance=1,
                            status=f"loss {loss_sum / seen:.4f}  acc {correct / seen:.3f}")
        self.memory.end_phase()
        watch.check(self.epoch + 1)
        self.method.end_epoch(self.epoch)
        self.clock.total += epoch_clock.total
        valid_acc = self._accuracy("valid")
        self.best_valid = valid_acc if self.best_valid is None else max(self.best_valid, valid_acc)
        self.epoch += 1
        row = {"epoch": self.epoch, "train_loss": loss_sum / max(seen, 1),
               "train_acc": correct / max(seen, 1), "valid_acc": valid_acc, "lr": lr,
               "seconds": epoch_clock.total, "wall_seconds": time.monotonic() - self.started}
        if watch.spikes is not None:
            row["hidden_spikes_per_sample"] = watch.spikes / max(seen, 1)
        self.record["curve"].append(row)
        progress.update(task, status=(f"loss {row['train_loss']:.4f}  acc "
                                      f"{row['train_acc']:.3f}  valid {valid_acc:.3f}"))
        self.save_checkpoint()
        self.write_progress("running")
        if self.tracker is not None:
            self.tracker.log_epoch(row)

    def _check_time(self) -> None:
        limit = self.config.time_limit
        if limit is not None and time.monotonic() - self.process_started > limit:
            raise TimeLimitReached(f"time limit of {limit:g} s reached in epoch {self.epoch + 1}")

    # -- evaluation (untimed) -----------------------------------------------------------------
    def _accuracy(self, split: str, stats: list | None = None) -> float:
        correct = total = 0
        # the reusable buffer here too: evaluation between training phases must not leave
        # freed batch memory resident for the next phase's gauge to count
        for batch in self.data.batches(split, self.hp.batch_size, fmt=self.fmt,
                                       transform=self.transforms["eval"], reuse_buffer=True):
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
        self.record["inference"] = summarise_inference(stats)
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
            metrics["wall_seconds"] = time.monotonic() - self.started
        self.record["env"]["memory_gauge"] = self.memory.method
        self.record["env"]["allocator_settings"] = measure.allocator_settings()

    # -- checkpoints and progress --------------------------------------------------------------
    def save_checkpoint(self) -> None:
        meta = {"epoch": self.epoch, "best_valid": self.best_valid, "curve": self.record["curve"],
                "train_seconds": self.clock.total, "wall_seconds": time.monotonic() - self.started,
                "peak_train_bytes": self.memory.peak, "memory_gauge": self.memory.method,
                "run_id": self.record["run_id"], "run_key": self.record["run_key"]}
        checkpoints.save_state(self.paths["checkpoint"], self.method.state_dict(), meta)

    def load_checkpoint(self) -> None:
        stem = self.paths["checkpoint"]
        if not stem.with_name(stem.name + ".json").exists():
            print("note: no checkpoint of this configuration; starting from scratch",
                  file=sys.stderr)
            return
        state, meta = checkpoints.load_state(stem)
        if meta.get("run_key") != self.record["run_key"]:
            raise InputError(f"checkpoint {stem} belongs to another configuration")
        self.method.load_state_dict(state)
        self.epoch, self.best_valid = int(meta["epoch"]), meta["best_valid"]
        self.record["curve"] = list(meta["curve"])
        self.clock.total = float(meta["train_seconds"])
        self.started = time.monotonic() - float(meta.get("wall_seconds", 0.0))
        self.memory.peak = int(meta.get("peak_train_bytes") or 0)
        self.record["resumed_from"] = meta["run_id"]
        print(f"note: resuming after epoch {self.epoch} from {stem}", file=sys.stderr)

    def write_progress(self, status: str) -> None:
        curve = self.record["curve"]
        document = {
            "run_key": self.record["run_key"], "run_id": self.record["run_id"],
            "method": self.record["method"], "dataset": self.record["dataset"],
            "seed": self.record["seed"], "pid": os.getpid(), "status": status,
            "epoch": self.epoch, "epochs": self.hp.epochs,
            "valid_acc": curve[-1]["valid_acc"] if curve else None,
            "best_valid_acc": self.best_valid, "seconds": self.clock.total,
            "wall_seconds": time.monotonic() - self.started, "curve": curve,
        }
        write_json_atomic(self.paths["progress"], document)


class _ActivityWatch:
    """Stops a run that learns nothing: a whole epoch without a hidden spike (when the method
    reports them), or with every batch's loss at ln(C), the loss of uniform scores. The first
    epoch is exempt: a network may start silent or flat, and a method's remedy (e.g. boosting
    silent neurons after the epoch) gets one epoch to act."""

    def __init__(self, n_classes: int) -> None:
        self.uniform_loss = math.log(n_classes) if n_classes > 1 else None
        self.flat = True
        self.spikes: float | None = None

    def add(self, loss: float, out: dict) -> None:
        if self.uniform_loss is None or abs(loss - self.uniform_loss) > FLAT_LOSS_TOLERANCE:
            self.flat = False
        if "hidden_spikes" in out:
            self.spikes = (self.spikes or 0.0) + float(out["hidden_spikes"])

    def check(self, epoch: int) -> None:
        if epoch < 2:
            return
        if self.spikes == 0:
            raise DivergedError(f"hidden layer silent for the whole of epoch {epoch}")
        if self.flat and self.uniform_loss is not None:
            raise DivergedError(f"training loss flat at ln(C) = {self.uniform_loss:.4f} for the "
                                f"whole of epoch {epoch}: the network no longer learns")


def write_json_atomic(path: Path, document: dict) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "w") as handle:
            json.dump(document, handle, default=str)
        os.chmod(tmp, 0o666 & ~checkpoints.current_umask())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def summarise_inference(stats: list) -> dict[str, float]:
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
