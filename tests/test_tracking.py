"""``--track tensorboard|mlflow``: per-epoch figures and final metrics written to local stores
and read back with each tracker's own reader."""

from __future__ import annotations

import json

import numpy as np
import pytest

from bench import cli, registry
from datasets import write_spike_dataset


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    rng = np.random.default_rng(0)
    pairs = lambda n: [((rng.uniform(0, 0.04, 800), rng.integers(0, 30, 800) + 30 * (i % 2)), i % 2)
                       for i in range(n)]
    return write_spike_dataset(tmp_path_factory.mktemp("d") / "d",
                               {"train": pairs(24), "test": pairs(8)})


def run(data, out, track, method="bptt-snntorch"):
    net = ["--set", "hidden=8"] if method == "bptt-snntorch" else []
    code = cli.main(["run", "--method", method, "--dataset", str(data), "--epochs", "2", *net,
                     "--set", "steps=40", "--set", "batch_size=8",
                     "--out", str(out), "--no-progress", "--track", track])
    record = json.loads(next(out.glob("*.json")).read_text())
    return code, record


def test_tensorboard_events_hold_every_epoch(data, tmp_path):
    pytest.importorskip("tensorboard")
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    code, record = run(data, tmp_path, "tensorboard")
    assert code == 0
    events = EventAccumulator(str(tmp_path / "tensorboard" / record["run_id"]))
    events.Reload()
    for key in ("train_loss", "train_acc", "valid_acc", "seconds"):
        scalars = events.Scalars(f"epoch/{key}")
        assert [s.step for s in scalars] == [1, 2]
        np.testing.assert_allclose([s.value for s in scalars],
                                   [row[key] for row in record["curve"]], rtol=1e-6)
    final = events.Scalars("final/test_acc")
    assert len(final) == 1 and final[0].value == pytest.approx(record["metrics"]["test_acc"])
    (text,) = events.Tensors("run/text_summary")
    assert record["run_id"] in text.tensor_proto.string_val[0].decode()


def test_mlflow_file_store_holds_the_run(data, tmp_path, monkeypatch):
    pytest.importorskip("mlflow")
    from mlflow import MlflowClient

    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    code, record = run(data, tmp_path, "mlflow")
    assert code == 0
    client = MlflowClient(tracking_uri=(tmp_path / "mlruns").resolve().as_uri())
    experiment = client.get_experiment_by_name("snn-bench")
    (found,) = client.search_runs([experiment.experiment_id])
    assert found.info.status == "FINISHED"
    assert found.data.tags["snn_bench.run_id"] == record["run_id"]
    assert found.data.params["hidden"] == "8" and found.data.params["steps"] == "40"
    history = client.get_metric_history(found.info.run_id, "valid_acc")
    assert [m.step for m in history] == [1, 2]
    np.testing.assert_allclose([m.value for m in history],
                               [row["valid_acc"] for row in record["curve"]])
    assert found.data.metrics["final_test_acc"] == pytest.approx(record["metrics"]["test_acc"])


def test_a_crashed_run_is_failed_in_the_tracker(data, tmp_path, monkeypatch):
    pytest.importorskip("mlflow")
    from mlflow import MlflowClient

    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    monkeypatch.setitem(registry.METHODS, "fake-crash", "fake_methods:CrashMethod")
    code, record = run(data, tmp_path, "mlflow", method="fake-crash")
    assert code == 1 and record["status"] == "failed"
    client = MlflowClient(tracking_uri=(tmp_path / "mlruns").resolve().as_uri())
    (found,) = client.search_runs([client.get_experiment_by_name("snn-bench").experiment_id])
    assert found.info.status == "FAILED" and found.data.tags["snn_bench.status"] == "failed"
