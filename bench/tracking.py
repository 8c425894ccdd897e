"""``bench run --track tensorboard|mlflow``: every epoch's figures and the final record's metrics
sent to an experiment tracker, in a local store beside the records by default.

The runner calls :func:`make_tracker` once, ``log_epoch(row)`` after every epoch (row: epoch,
train_loss, train_acc, valid_acc, lr, seconds, wall_seconds and, where the method reports it,
hidden_spikes_per_sample) and ``log_final(record)`` once at the end, whatever the run's status.

* tensorboard: event files in ``OUT/tensorboard/<run_id>/`` (``tensorboard --logdir
  OUT/tensorboard``); scalars ``epoch/<key>`` at step = epoch, ``final/<metric>`` at the last
  epoch, and the run's configuration as text.
* mlflow: a run in the experiment ``snn-bench`` of the file store ``OUT/mlruns`` (``mlflow ui
  --backend-store-uri OUT/mlruns``), or of ``$MLFLOW_TRACKING_URI`` when set; hyperparameters as
  params, the record's identity as tags, ``<key>`` metrics per epoch, ``final_<metric>`` at the end,
  and the run ended FINISHED (status ok) or FAILED. MLflow 3 keeps its file store only on request;
  this module makes that request (``MLFLOW_ALLOW_FILE_STORE=true``) for file stores.
"""

from __future__ import annotations

import json
import math
import os
from pathlib import Path
from typing import Any, Protocol

from methods.api import InputError

TRACKERS = ("tensorboard", "mlflow")
EXPERIMENT = "snn-bench"


class Tracker(Protocol):
    def log_epoch(self, row: dict[str, Any]) -> None: ...

    def log_final(self, record: dict[str, Any]) -> None: ...


def make_tracker(name: str, out: str | os.PathLike, record: dict[str, Any]) -> Tracker:
    """A tracker writing under ``out`` (the runs folder) for the run ``record`` describes."""
    if name == "tensorboard":
        return TensorBoardTracker(Path(out) / "tensorboard" / record["run_id"], record)
    if name == "mlflow":
        uri = os.environ.get("MLFLOW_TRACKING_URI") or (Path(out) / "mlruns").resolve().as_uri()
        return MlflowTracker(uri, record)
    raise InputError(f"unknown tracker {name!r}; known: {', '.join(TRACKERS)}")


def _numbers(values: dict[str, Any]) -> dict[str, float]:
    """The finite numbers of a dict (booleans and None left out)."""
    out = {}
    for key, value in values.items():
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            continue
        if math.isfinite(value):
            out[key] = float(value)
    return out


def _identity(record: dict[str, Any]) -> dict[str, str]:
    keys = ("run_id", "run_key", "method", "method_version", "dataset", "dataset_hash", "seed")
    return {key: str(record[key]) for key in keys if record.get(key) is not None}


class TensorBoardTracker:
    def __init__(self, logdir: Path, record: dict[str, Any]):
        try:
            from torch.utils.tensorboard import SummaryWriter
        except ImportError as exc:
            raise InputError(f"--track tensorboard needs the tensorboard package "
                             f"(pip install 'snn-bench[tensorboard]'): {exc}") from None
        self.logdir = logdir
        self.writer = SummaryWriter(log_dir=str(logdir))
        self.epoch = 0
        config = {**_identity(record), "hparams": record.get("hparams", {})}
        self.writer.add_text("run", "```\n" + json.dumps(config, indent=2) + "\n```", 0)

    def log_epoch(self, row: dict[str, Any]) -> None:
        self.epoch = int(row.get("epoch", self.epoch + 1))
        for key, value in _numbers(row).items():
            if key != "epoch":
                self.writer.add_scalar(f"epoch/{key}", value, self.epoch)
        self.writer.flush()

    def log_final(self, record: dict[str, Any]) -> None:
        for key, value in _numbers(record.get("metrics", {})).items():
            self.writer.add_scalar(f"final/{key}", value, self.epoch)
        self.writer.add_text("status", f"{record.get('status')}: {record.get('error') or ''}",
                             self.epoch)
        self.writer.close()


class MlflowTracker:
    def __init__(self, uri: str, record: dict[str, Any]):
        try:
            from mlflow import MlflowClient
        except ImportError as exc:
            raise InputError(f"--track mlflow needs the mlflow-skinny package "
                             f"(pip install 'snn-bench[mlflow]'): {exc}") from None
        if uri.startswith("file:"):
            os.environ.setdefault("MLFLOW_ALLOW_FILE_STORE", "true")
        self.client = MlflowClient(tracking_uri=uri)
        experiment = self.client.get_experiment_by_name(EXPERIMENT)
        experiment_id = (experiment.experiment_id if experiment is not None
                         else self.client.create_experiment(EXPERIMENT))
        tags = {f"snn_bench.{k}": v for k, v in _identity(record).items()}
        tags["mlflow.runName"] = record.get("run_id", "run")
        self.run_id = self.client.create_run(experiment_id, tags=tags).info.run_id
        for key, value in sorted(record.get("hparams", {}).items()):
            self.client.log_param(self.run_id, key, str(value)[:6000])
        self.epoch = 0

    def log_epoch(self, row: dict[str, Any]) -> None:
        self.epoch = int(row.get("epoch", self.epoch + 1))
        for key, value in _numbers(row).items():
            if key != "epoch":
                self.client.log_metric(self.run_id, key, value, step=self.epoch)

    def log_final(self, record: dict[str, Any]) -> None:
        for key, value in _numbers(record.get("metrics", {})).items():
            self.client.log_metric(self.run_id, f"final_{key}", value, step=self.epoch)
        self.client.set_tag(self.run_id, "snn_bench.status", str(record.get("status")))
        status = "FINISHED" if record.get("status") == "ok" else "FAILED"
        self.client.set_terminated(self.run_id, status=status)
