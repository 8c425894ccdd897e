"""The runner end to end on a tiny dataset written in the published schema: records, exit codes,
checkpoints and resume, and every failure path (bad input, divergence, crash, time-out)."""

from __future__ import annotations

import json

import pytest

from bench import checkpoints, cli, records, registry

TINY = ["--set", "hidden=8", "--set", "steps=50", "--set", "batch_size=16", "--no-progress"]


@pytest.fixture
def fakes(monkeypatch):
    for name, cls in (("fake-nan", "NanMethod"), ("fake-crash", "CrashMethod"),
                      ("fake-oom", "OomMethod"), ("fake-silent", "SilentMethod"),
                      ("fake-flat", "FlatMethod")):
        monkeypatch.setitem(registry.METHODS, name, f"fake_methods:{cls}")


def run_cli(*args) -> int:
    return cli.main(["run", *args])


def only_record(out):
    files = sorted(out.glob("*.json"))
    assert len(files) == 1, files
    return records.read(files[0])


def test_ok_run_writes_a_complete_record(tiny_data, tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("MALLOC_ARENA_MAX", "2")
    out = tmp_path / "runs"
    code = run_cli("--method", "bptt-snntorch", "--dataset", str(tiny_data), "--epochs", "2",
                   "--out", str(out), *TINY)
    assert code == 0
    record = only_record(out)
    assert record["status"] == "ok" and record["error"] is None
    metrics = record["metrics"]
    assert 0.0 <= metrics["test_acc"] <= 1.0 and metrics["epochs"] == 2
    assert metrics["train_seconds"] > 0 and metrics["peak_train_bytes"] >= 0
    assert len(record["curve"]) == 2 and record["curve"][1]["epoch"] == 2
    assert record["hparams"]["hidden"] == 8 and record["hparams"]["epochs"] == 2
    assert record["dataset_info"]["validation"]["source"] == "cut from train"
    assert record["env"]["threads"] == 1 and record["env"]["memory_gauge"] == "linux-vmhwm"
    assert record["env"]["allocator_settings"]["MALLOC_ARENA_MAX"] == "2"
    assert record["method_source"] == records.source_hash(records.method_sources("bptt-snntorch"))
    assert record["inference"]["spikes_per_neuron"] >= 0
    assert "record:" in capsys.readouterr().err
    assert (out / "checkpoints" / record["run_key"] / "state.pt").is_file()
    weights, _ = checkpoints.load_state(out / record["weights_file"].removesuffix(".pt"))
    assert weights["net"]["w_in"].shape == (700, 8) and weights["net"]["w_out"].shape == (8, 3)


def test_same_seed_same_result(tiny_data, tmp_path):
    out = tmp_path / "runs"
    args = ["--method", "bptt-snntorch", "--dataset", str(tiny_data), "--out", str(out), *TINY]
    assert run_cli(*args, "--epochs", "2") == 0
    (first,) = [records.read(p) for p in out.glob("*.json")]
    out2 = tmp_path / "runs2"
    args2 = ["--method", "bptt-snntorch", "--dataset", str(tiny_data), "--out", str(out2), *TINY]
    assert run_cli(*args2, "--epochs", "2") == 0
    (second,) = [records.read(p) for p in out2.glob("*.json")]
    assert first["metrics"]["test_acc"] == second["metrics"]["test_acc"]
    assert [c["train_loss"] for c in first["curve"]] == [c["train_loss"] for c in second["curve"]]


def test_resume_continues_from_the_checkpoint(tiny_data, tmp_path, capsys):
    out = tmp_path / "runs"
    base = ["--method", "bptt-snntorch", "--dataset", str(tiny_data), "--out", str(out), *TINY,
            "--set", "epochs=2"]
    assert run_cli(*base) == 0
    assert run_cli(*base, "--resume") == 0
    assert "already finished" in capsys.readouterr().err
    assert len(list(records.iter_records(out))) == 1  # a finished run writes no second record


@pytest.mark.parametrize("method, status, code, message", [
    ("fake-nan", "diverged", 3, "diverged"),
    ("fake-crash", "failed", 1, "RuntimeError: boom in train_step"),
    ("fake-oom", "failed", 1, "out of memory"),
])
def test_failures_are_recorded_never_zero(tiny_data, tmp_path, fakes, capsys, method, status,
                                          code, message):
    out = tmp_path / "runs"
    out.mkdir()
    earlier = out / "earlier.json"
    earlier.write_text(json.dumps({"schema_version": 1, "run_id": "earlier", "status": "ok"}))
    assert run_cli("--method", method, "--dataset", str(tiny_data), "--out", str(out),
                   "--epochs", "1", "--no-progress") == code
    record = [r for p, r in records.iter_records(out) if p != earlier][0]
    assert record["status"] == status and message in record["error"]
    assert record["metrics"]["test_acc"] is None
    assert earlier.exists()
    err = capsys.readouterr().err
    assert f"error: run {status}" in err and "Traceback" not in err


def test_time_limit_gives_a_timeout_record(tiny_data, tmp_path):
    out = tmp_path / "runs"
    assert run_cli("--method", "bptt-snntorch", "--dataset", str(tiny_data), "--out", str(out),
                   "--time-limit", "1e-9", "--epochs", "1", *TINY) == 4
    assert only_record(out)["status"] == "timeout"


@pytest.mark.parametrize("args, message", [
    (["--method", "nosuch"], "unknown method 'nosuch'; known: "),
    (["--method", "bptt-snntorch", "--set", "hidden=lots"], "bad value for hidden"),
    (["--method", "bptt-snntorch", "--set", "colour=red"], "unknown hyperparameter 'colour'"),
    (["--method", "bptt-snntorch", "--set", "loss=softmax"], "unknown loss"),
    (["--method", "bptt-snntorch", "--epochs", "0"], "--epochs must be at least 1"),
    (["--method", "bptt-snntorch", "--dataset", "/nonexistent/thing"], "/nonexistent/thing"),
])
def test_bad_input_is_one_line_exit_2_and_no_record(tmp_path, capsys, args, message):
    out = tmp_path / "runs"
    assert run_cli(*args, "--out", str(out), "--no-progress") == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: ") and message in err and len(err.splitlines()) == 1
    assert not out.exists() or not list(out.glob("*.json"))


def test_corrupt_file_is_bad_input(tmp_path, capsys):
    (tmp_path / "bad_train.h5").write_bytes(b"not an hdf5 file at all")
    (tmp_path / "bad_test.h5").write_bytes(b"\x89HDF\r\n\x1a\n truncated")
    assert run_cli("--method", "bptt-snntorch", "--dataset", str(tmp_path / "bad"),
                   "--out", str(tmp_path / "runs"), "--no-progress") == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: ") and "bad_t" in err and len(err.splitlines()) == 1


def test_list_needs_no_framework():
    import subprocess
    import sys

    code = ("import sys, bench.cli; bench.cli.main(['list']); "
            "assert 'torch' not in sys.modules and 'jax' not in sys.modules, 'framework imported'")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert "bptt-snntorch" in result.stdout and "synthetic" in result.stdout


def test_learning_rate_comes_from_the_dataset_budget_unless_set(tiny_data, tmp_path):
    from methods.api import NetworkHparams, lr_from_dataset_budget

    out = tmp_path / "runs"
    base = ["--method", "bptt-snntorch", "--dataset", str(tiny_data), "--epochs", "1", *TINY]
    assert run_cli(*base, "--out", str(out / "a")) == 0
    assert run_cli(*base, "--out", str(out / "b"), "--set", "lr=0.003") == 0
    (a,) = [r for _, r in records.iter_records(out / "a")]
    (b,) = [r for _, r in records.iter_records(out / "b")]
    assert a["hparams"]["lr"] == 1e-3 and a["budget"]["dataset_lr"] == 1e-3  # own files: reference
    assert b["hparams"]["lr"] == 0.003
    from datasets.catalog import recommended_lr

    assert recommended_lr("synthetic") == 1e-2 and recommended_lr("shd") == 1e-3
    assert lr_from_dataset_budget(NetworkHparams)
    assert lr_from_dataset_budget(registry.load_method("eventprop").Hparams)
    assert not lr_from_dataset_budget(registry.load_method("rstdp").Hparams)


def test_cosine_schedule_sets_and_records_each_epochs_rate(tiny_data, tmp_path):
    import math

    from bench.trainer import scheduled_lr

    out = tmp_path / "runs"
    assert run_cli("--method", "bptt-snntorch", "--dataset", str(tiny_data), "--out", str(out),
                   "--epochs", "3", *TINY, "--set", "lr=0.004", "--set",
                   "lr_schedule=cosine") == 0
    record = only_record(out)
    assert record["budget"]["lr_schedule"] == "cosine"
    rates = [row["lr"] for row in record["curve"]]
    assert rates == pytest.approx([0.004, 0.003, 0.001])
    assert [scheduled_lr(0.1, "cosine", e, 4) for e in range(4)] == pytest.approx(
        [0.1 * (1 + math.cos(math.pi * e / 4)) / 2 for e in range(4)])
    assert scheduled_lr(0.1, "constant", 3, 4) == 0.1


def test_a_schedule_the_method_cannot_follow_is_bad_input(tiny_data, tmp_path, fakes, capsys,
                                                          monkeypatch):
    monkeypatch.setitem(registry.METHODS, "fake-constant", "fake_methods:NothingDense")
    out = tmp_path / "runs"
    assert run_cli("--method", "fake-constant", "--dataset", str(tiny_data), "--out", str(out),
                   "--epochs", "2", "--no-progress", "--set", "lr_schedule=cosine") == 2
    err = capsys.readouterr().err
    assert "lr_schedule=cosine" in err and "cannot change its learning rate" in err
    assert "Traceback" not in err and not list(out.glob("*.json"))
    assert run_cli("--method", "bptt-snntorch", "--dataset", str(tiny_data), "--out", str(out),
                   "--epochs", "1", *TINY, "--set", "lr_schedule=linear") == 2
    assert "bad value for lr_schedule" in capsys.readouterr().err


def test_gaussian_window_is_placed_on_the_data_unless_set(tiny_data, tmp_path):
    """tiny_data's samples last ~50 ms (uniform spikes over the first 50 ms); a 50-step, 1 ms
    window they fill gets the defaults (0.5, 0.25); a 100 ms window they fill half of gets a
    centre at 25 ms (0.25 of the window) and a sigma of 12.5 ms."""
    out = tmp_path / "runs"
    base = ["--method", "bptt-snntorch", "--dataset", str(tiny_data), "--epochs", "1", *TINY,
            "--set", "loss=gauss_window"]
    assert run_cli(*base, "--out", str(out / "a")) == 0
    assert run_cli(*base, "--out", str(out / "b"), "--set", "gauss_mu=0.8") == 0
    assert run_cli("--method", "bptt-snntorch", "--dataset", str(tiny_data), "--epochs", "1",
                   *TINY, "--out", str(out / "c")) == 0
    (a,) = [r for _, r in records.iter_records(out / "a")]
    (b,) = [r for _, r in records.iter_records(out / "b")]
    (c,) = [r for _, r in records.iter_records(out / "c")]
    window = a["readout_window"]
    assert window["from_data"] == ["gauss_mu", "gauss_sigma"]
    assert window["utterance_ms"] == pytest.approx(50.0, abs=0.5)  # the window is 50 ms: full
    assert a["hparams"]["gauss_mu"] == pytest.approx(0.5, abs=0.002)
    assert a["hparams"]["gauss_sigma"] == pytest.approx(0.25, abs=0.001)
    long = tmp_path / "long"
    assert run_cli(*base, "--out", str(long), "--set", "dt_ms=2") == 0  # a 100 ms window
    (d,) = [r for _, r in records.iter_records(long)]
    assert d["readout_window"]["centre_ms"] == pytest.approx(25.0, abs=0.5)
    assert d["readout_window"]["sigma_ms"] == pytest.approx(12.5, abs=0.3)
    assert d["hparams"]["gauss_mu"] == pytest.approx(0.25, abs=0.005)
    assert b["hparams"]["gauss_mu"] == 0.8 and b["readout_window"]["from_data"] == ["gauss_sigma"]
    assert b["hparams"]["gauss_sigma"] == a["hparams"]["gauss_sigma"]
    assert "readout_window" not in c and c["hparams"]["gauss_mu"] == 0.5  # other readouts: as set


@pytest.mark.parametrize("method, message", [
    ("fake-silent", "hidden layer silent for the whole of epoch 2"),
    ("fake-flat", "training loss flat at ln(C)"),
])
def test_a_network_that_stopped_learning_is_stopped_as_diverged(tiny_data, tmp_path, fakes,
                                                                 method, message):
    """The first epoch is a grace period (a remedy may revive a layer that starts silent); a
    second silent or flat epoch ends the run as diverged instead of training on to the end."""
    out = tmp_path / "runs"
    assert run_cli("--method", method, "--dataset", str(tiny_data), "--out", str(out),
                   "--epochs", "10", "--no-progress") == 3
    record = only_record(out)
    assert record["status"] == "diverged" and message in record["error"]
    assert record["metrics"]["epochs"] == 1 and record["metrics"]["test_acc"] is None
