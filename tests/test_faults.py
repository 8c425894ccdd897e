"""Bad input and faults: each is one clear line and exit 2 before any training (or a recorded
failure when the fault comes later), and no record already written ever changes.

Also: concurrent runs of one configuration, a run killed mid-epoch and resumed, a planted pickle
payload in a checkpoint, records written with the user's umask, and the harness's own share of
the peak-memory figure.
"""

from __future__ import annotations

import json
import os
import signal
import stat
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from bench import checkpoints, cli, records
from datasets.h5 import write_h5

ROOT = Path(__file__).resolve().parents[1]
TINY = ["--set", "hidden=8", "--set", "steps=50", "--set", "batch_size=16", "--no-progress"]
FAKES = {"fake-nothing-dense": "fake_methods:NothingDense",
         "fake-nothing-events": "fake_methods:NothingEvents"}


def write_tiny(root: Path, name: str = "tiny", n_train: int = 48, n_test: int = 24,
               labels_fn=None, n_classes: int = 3, keys=None) -> Path:
    rng = np.random.default_rng(0)
    for split, n in (("train", n_train), ("test", n_test)):
        labels = labels_fn(split, n) if labels_fn else np.arange(n) % n_classes
        times = [np.sort(rng.uniform(0, 0.05, 600)) for _ in labels]
        units = [rng.integers((int(lab) % 3) * 200, (int(lab) % 3) * 200 + 100, 600) for lab in labels]
        write_h5(root / f"{name}_{split}.h5", times, units, labels, keys=keys)
    return root / name


@pytest.fixture(scope="module")
def tiny(tmp_path_factory) -> Path:
    return write_tiny(tmp_path_factory.mktemp("tiny"))


@pytest.fixture
def earlier(tmp_path) -> tuple[Path, bytes]:
    """An output folder holding one finished record whose bytes must never change."""
    out = tmp_path / "runs"
    out.mkdir()
    path = out / "earlier.json"
    path.write_text(json.dumps({"schema_version": 1, "run_id": "earlier", "status": "ok"}))
    return out, path.read_bytes()


def run_cli(*args: str) -> int:
    return cli.main(["run", *args])


def assert_one_line_exit(capsys, code: int, expected: int, message: str) -> None:
    err = capsys.readouterr().err.strip()
    assert code == expected, err
    assert err.startswith("error: ") and message in err, err
    assert len(err.splitlines()) == 1 and "Traceback" not in err, err


def assert_untouched(out: Path, before: bytes) -> None:
    assert (out / "earlier.json").read_bytes() == before
    assert [p.name for p in records.record_paths(out)] == ["earlier.json"]


# ---------------------------------------------------------------------------------------------
# Bad input: exit 2, one line, no record, the earlier record untouched.

BAD_RUNS = [
    (["--method", "nosuch"], "unknown method 'nosuch'"),
    (["--method", "bptt-snntorch", "--seed", "-1"], "--seed must be in 0..4294967295"),
    (["--method", "bptt-snntorch", "--seed", str(2**63)], "--seed must be in 0..4294967295"),
    (["--method", "bptt-snntorch", "--seed", str(2**32)], "--seed must be in 0..4294967295"),
    (["--method", "bptt-snntorch", "--time-limit", "0"], "--time-limit must be a positive"),
    (["--method", "bptt-snntorch", "--time-limit", "-5"], "--time-limit must be a positive"),
    (["--method", "bptt-snntorch", "--time-limit", "nan"], "--time-limit must be a positive"),
    (["--method", "bptt-snntorch", "--threads", "0"], "--threads must be at least 1"),
    (["--method", "bptt-snntorch", "--epochs", "0"], "--epochs must be at least 1"),
    (["--method", "bptt-snntorch", "--set", "hidden=lots"], "bad value for hidden"),
    (["--method", "bptt-snntorch", "--set", "hidden"], "--set expects key=value"),
    (["--method", "bptt-snntorch", "--set", "colour=red"], "unknown hyperparameter 'colour'"),
    (["--method", "bptt-snntorch", "--set", "lr=inf"], "expected a finite number"),
    (["--method", "bptt-snntorch", "--set", "lr=-1"], "lr must be positive"),
    (["--method", "bptt-snntorch", "--set", "gauss_mu=-5"], "gauss_mu is a fraction"),
    (["--method", "bptt-snntorch", "--set", "gauss_mu=1.5"], "gauss_mu is a fraction"),
    (["--method", "bptt-snntorch", "--set", "gauss_sigma=3"], "gauss_sigma is a fraction"),
    (["--method", "bptt-snntorch", "--set", "loss=softmax"], "unknown loss"),
    (["--method", "bptt-snntorch", "--set", "hidden=100000000"], "GiB are available"),
    (["--method", "bptt-snntorch", "--tag", "novalue"], "--tag expects key=value"),
    (["--method", "bptt-snntorch", "--dataset", "/nonexistent/thing"], "/nonexistent/thing"),
    (["--method", "bptt-snntorch", "--dataset", "nosuchset"], "unknown dataset 'nosuchset'"),
]


@pytest.mark.parametrize("args, message", BAD_RUNS, ids=[" ".join(a[2:]) or a[1] for a, _ in BAD_RUNS])
def test_bad_run_input_is_exit_2_before_training(tiny, earlier, capsys, args, message):
    out, before = earlier
    dataset = [] if "--dataset" in args else ["--dataset", str(tiny)]
    code = run_cli(*args, *dataset, "--out", str(out), "--no-progress")
    assert_one_line_exit(capsys, code, 2, message)
    assert_untouched(out, before)


def bad_dataset(root: Path, kind: str) -> Path:
    """Small files in the published schema, each wrong in one way."""
    if kind == "huge label":
        import h5py

        prefix = write_tiny(root)
        with h5py.File(root / "tiny_train.h5", "r+") as handle:
            labels = handle["labels"][()].astype(np.int64)
            labels[0] = 10**9
            del handle["labels"]
            handle["labels"] = labels
        return prefix
    if kind == "test label beyond training classes":
        return write_tiny(root, labels_fn=lambda split, n: np.arange(n) % (3 if split == "train" else 5))
    if kind == "too small for a validation split":
        return write_tiny(root, n_train=4, n_test=4)
    if kind == "label beyond keys":
        return write_tiny(root, keys=["a", "b"])
    if kind == "corrupt file":
        (root / "bad_train.h5").write_bytes(b"not an hdf5 file at all")
        (root / "bad_test.h5").write_bytes(b"\x89HDF\r\n\x1a\n truncated")
        return root / "bad"
    if kind == "wrong schema":
        import h5py

        for split in ("train", "test"):
            with h5py.File(root / f"schema_{split}.h5", "w") as handle:
                handle["labels"] = np.arange(4)
        return root / "schema"
    raise ValueError(kind)


@pytest.mark.parametrize("kind, message", [
    ("huge label", "GiB are available"),
    ("test label beyond training classes", "out of range: the training labels give 3 classes"),
    ("too small for a validation split", "too few to cut a validation split"),
    ("label beyond keys", "out of range: /extra/keys names 2 classes"),
    ("corrupt file", "not an HDF5 file"),
    ("wrong schema", "wrong schema: missing /spikes/times"),
])
def test_bad_data_is_exit_2_before_training(tmp_path, earlier, capsys, kind, message):
    out, before = earlier
    dataset = bad_dataset(tmp_path, kind)
    code = run_cli("--method", "bptt-snntorch", "--dataset", str(dataset), "--out", str(out), *TINY)
    assert_one_line_exit(capsys, code, 2, message)
    assert_untouched(out, before)


def test_output_that_is_a_file_is_exit_2(tiny, tmp_path, capsys):
    target = tmp_path / "taken"
    target.write_text("a file")
    code = run_cli("--method", "bptt-snntorch", "--dataset", str(tiny), "--out", str(target), *TINY)
    assert_one_line_exit(capsys, code, 2, "is a file, not a folder")
    assert target.read_text() == "a file"


@pytest.mark.skipif(os.geteuid() == 0 and not os.environ.get("SNN_BENCH_TEST_AS_ROOT_READONLY"),
                    reason="root writes into read-only folders; the chattr-free check below runs")
def test_read_only_output_is_exit_2(tiny, earlier, capsys):
    out, before = earlier
    out.chmod(0o555)
    try:
        code = run_cli("--method", "bptt-snntorch", "--dataset", str(tiny), "--out", str(out), *TINY)
    finally:
        out.chmod(0o755)
    assert_one_line_exit(capsys, code, 2, "is not writable")
    assert_untouched(out, before)


def test_unwritable_output_is_exit_2_even_for_root(tiny, tmp_path, capsys, monkeypatch):
    """A folder that refuses new files (here: the writability probe fails as it would on a
    read-only mount) stops the run before training."""
    real = records.tempfile.mkstemp

    def refuse(*args, **kwargs):
        if kwargs.get("prefix") == ".tmp-check-":
            raise PermissionError(13, "Permission denied")
        return real(*args, **kwargs)

    monkeypatch.setattr(records.tempfile, "mkstemp", refuse)
    code = run_cli("--method", "bptt-snntorch", "--dataset", str(tiny), "--out",
                   str(tmp_path / "runs"), *TINY)
    assert_one_line_exit(capsys, code, 2, "is not writable: Permission denied")


def test_record_refused_at_the_end_goes_to_the_fallback(tiny, tmp_path, capsys, monkeypatch):
    """The output folder accepts the checks but refuses the record itself after training: the
    finished result is saved elsewhere, the path printed, exit 1."""
    fallback = tmp_path / "fallback"
    monkeypatch.setenv("SNN_BENCH_FALLBACK", str(fallback))
    out = tmp_path / "runs"
    real_write = records.write

    def refuse_out(record, out_dir):
        if Path(out_dir) == out:
            raise OSError(30, "Read-only file system")
        return real_write(record, out_dir)

    monkeypatch.setattr(records, "write", refuse_out)
    code = run_cli("--method", "bptt-snntorch", "--dataset", str(tiny), "--out", str(out),
                   "--epochs", "1", *TINY)
    err = capsys.readouterr().err
    assert code == 1 and "saved it to" in err and str(fallback) in err
    (saved,) = records.record_paths(fallback)
    assert records.read(saved)["status"] == "ok"


@pytest.mark.parametrize("argv, message", [
    (["report", "--runs", "RUNS", "--out", "FILE"], "FILE"),
    (["compare", "--baseline", "BASELINE_LIST", "--runs", "RUNS"], "baseline"),
    (["compare", "--baseline", "BASELINE_STRING_METRICS", "--runs", "RUNS"], "baseline"),
    (["compare", "--baseline", "/nonexistent/baseline.json", "--runs", "RUNS"], "baseline"),
    (["tune", "--method", "bptt-snntorch", "--storage", "banana://x", "--trials", "1"], "banana"),
    (["suite", "--methods", "nosuch", "--out", "RUNS"], "unknown method"),
    (["suite", "--methods", "bptt-snntorch", "--seeds", "-3", "--out", "RUNS"], "seed"),
    (["data", "info", "/nonexistent/data"], "/nonexistent/data"),
])
def test_bad_input_to_other_commands_is_exit_2(tmp_path, earlier, capsys, argv, message):
    out, before = earlier
    (tmp_path / "FILE").write_text("a file")
    (tmp_path / "BASELINE_LIST").write_text("[]")
    (tmp_path / "BASELINE_STRING_METRICS").write_text(json.dumps({"entries": "metrics"}))
    names = {"RUNS": str(out), "FILE": str(tmp_path / "FILE"),
             "BASELINE_LIST": str(tmp_path / "BASELINE_LIST"),
             "BASELINE_STRING_METRICS": str(tmp_path / "BASELINE_STRING_METRICS")}
    code = cli.main([names.get(a, a) for a in argv])
    err = capsys.readouterr().err.strip()
    assert code == 2, err
    last = err.splitlines()[-1]
    assert last.startswith("error: ") and "Traceback" not in err
    assert message.replace("FILE", str(tmp_path / "FILE")) in err or message in err
    assert (out / "earlier.json").read_bytes() == before


def test_unexpected_error_is_one_line_exit_1(monkeypatch, capsys, tmp_path):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    from bench import runner

    def explode(args):
        raise ZeroDivisionError("division by zero somewhere deep")

    monkeypatch.setattr(runner, "main", explode)
    code = cli.main(["run", "--method", "bptt-snntorch"])
    err = capsys.readouterr().err.strip()
    assert code == 1 and len(err.splitlines()) == 1 and "Traceback" not in err
    assert err.startswith("error: ZeroDivisionError: division by zero somewhere deep")
    log = Path(err.split("traceback in ")[1].split(";")[0])
    assert "Traceback" in log.read_text()


# ---------------------------------------------------------------------------------------------
# Records: the user's umask, never overwritten.

def test_records_follow_the_umask(tiny, tmp_path):
    old = os.umask(0o022)
    try:
        assert run_cli("--method", "bptt-snntorch", "--dataset", str(tiny), "--out",
                       str(tmp_path / "runs"), "--epochs", "1", *TINY) == 0
    finally:
        os.umask(old)
    (path,) = records.record_paths(tmp_path / "runs")
    assert stat.S_IMODE(path.stat().st_mode) == 0o644


# ---------------------------------------------------------------------------------------------
# Checkpoints: never unpickled.

class _Payload:
    def __reduce__(self):
        return (os.system, (f"touch {os.environ['PAYLOAD_MARK']}",))


def test_planted_pickle_in_a_checkpoint_is_refused_and_never_runs(tiny, tmp_path, capsys, monkeypatch):
    import pickle

    out = tmp_path / "runs"
    base = ["--method", "bptt-snntorch", "--dataset", str(tiny), "--out", str(out), *TINY,
            "--epochs", "1"]
    assert run_cli(*base) == 0
    (record,) = [r for _, r in records.iter_records(out)]
    state = out / "checkpoints" / record["run_key"] / "state.pt"
    mark = tmp_path / "payload-ran"
    monkeypatch.setenv("PAYLOAD_MARK", str(mark))
    state.write_bytes(pickle.dumps({"t0": _Payload()}))
    # the record is gone (as after an interrupted run), so --resume reads the checkpoint
    for path in records.record_paths(out):
        path.unlink()
    capsys.readouterr()
    code = run_cli(*base, "--resume")
    assert_one_line_exit(capsys, code, 2, "cannot read state")
    assert not mark.exists()


def test_state_files_round_trip_nested_structures(tmp_path):
    import torch

    state = {"net": {"w": torch.arange(6.0).reshape(2, 3)}, "np": np.ones((2, 2), np.float32),
             "list": [1, 2.5, "x", None, True], "tuple": (np.int64(3), np.zeros(0)),
             "int_keys": {0: {"step": 3}}}
    checkpoints.save_state(tmp_path / "s", state, {"epoch": 2})
    loaded, meta = checkpoints.load_state(tmp_path / "s")
    assert meta == {"epoch": 2}
    assert torch.equal(loaded["net"]["w"], state["net"]["w"])
    assert np.array_equal(loaded["np"], state["np"]) and loaded["np"].dtype == np.float32
    assert loaded["list"] == [1, 2.5, "x", None, True]
    assert loaded["tuple"][0] == 3 and loaded["tuple"][1].shape == (0,)
    assert loaded["int_keys"] == {0: {"step": 3}}


# ---------------------------------------------------------------------------------------------
# Concurrency and kills (in subprocesses: real processes, real signals).

def bench_process(*args: str, env_extra: dict | None = None) -> subprocess.Popen:
    code = ("import sys; sys.path.insert(0, 'tests'); from bench import registry; "
            f"registry.METHODS.update({FAKES!r}); from bench.cli import main; "
            "sys.exit(main(sys.argv[1:]))")
    env = {**os.environ, **(env_extra or {})}
    return subprocess.Popen([sys.executable, "-c", code, *args], cwd=ROOT, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def wait_for(predicate, timeout: float = 120.0) -> None:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if predicate():
            return
        time.sleep(0.05)
    raise AssertionError("timed out waiting")


def test_second_run_of_one_configuration_exits_2_at_once(tiny, tmp_path):
    out = tmp_path / "runs"
    args = ["run", "--method", "bptt-snntorch", "--dataset", str(tiny), "--out", str(out),
            *TINY, "--epochs", "40"]
    first = bench_process(*args)
    try:
        wait_for(lambda: list((out / "progress").glob("*.json")))
        started = time.monotonic()
        second = subprocess.run(first.args[:3] + args, cwd=ROOT, capture_output=True, text=True,
                                timeout=120)
        assert second.returncode == 2, second.stderr
        assert f"already running (pid {first.pid})" in second.stderr
        assert len(second.stderr.strip().splitlines()) == 1
        assert time.monotonic() - started < 60  # it did not train
    finally:
        first.terminate()
        first.wait(60)


def test_killed_run_resumes_to_the_same_result(tiny, tmp_path):
    """SIGKILL mid-run, then --resume: one record, covering the whole run, equal to an
    uninterrupted run's accuracy."""
    common = ["run", "--method", "bptt-snntorch", "--dataset", str(tiny), *TINY, "--epochs", "6"]
    whole = bench_process(*common, "--out", str(tmp_path / "whole"))
    assert whole.wait(300) == 0, whole.stderr.read()
    (reference,) = [r for _, r in records.iter_records(tmp_path / "whole")]

    out = tmp_path / "killed"
    victim = bench_process(*common, "--out", str(out))

    def epochs_done() -> int:
        found = list((out / "progress").glob("*.json"))
        try:
            return json.loads(found[0].read_text())["epoch"] if found else 0
        except (OSError, ValueError):
            return 0

    wait_for(lambda: epochs_done() >= 2)
    first_wall = json.loads(next((out / "progress").glob("*.json")).read_text())["wall_seconds"]
    victim.send_signal(signal.SIGKILL)
    victim.wait(60)
    assert records.record_paths(out) == []

    resumed = bench_process(*common, "--out", str(out), "--resume")
    assert resumed.wait(300) == 0, resumed.stderr.read()
    (record,) = [r for _, r in records.iter_records(out)]
    assert record["status"] == "ok" and record["resumed_from"]
    assert record["metrics"]["test_acc"] == reference["metrics"]["test_acc"]
    assert [c["train_loss"] for c in record["curve"]] == [c["train_loss"] for c in reference["curve"]]
    metrics = record["metrics"]
    assert metrics["epochs"] == 6 and len(record["curve"]) == 6
    # timed seconds: every epoch of both processes (plus the timed finalize step)
    epoch_seconds = sum(c["seconds"] for c in record["curve"])
    assert epoch_seconds <= metrics["train_seconds"] <= epoch_seconds + 0.5
    assert metrics["wall_seconds"] >= first_wall + metrics["train_seconds"] * 0.5
    assert metrics["wall_seconds"] >= record["curve"][-1]["wall_seconds"] >= first_wall
    walls = [c["wall_seconds"] for c in record["curve"]]
    assert walls == sorted(walls), walls  # the resumed process's clock continues the first one's
    assert metrics["peak_train_bytes"] > 0


# ---------------------------------------------------------------------------------------------
# The memory gauge measures the method, not the harness.

@pytest.mark.parametrize("fmt", ["dense", "events"])
def test_do_nothing_method_has_no_training_memory(tmp_path, fmt):
    """Binning, batch buffers and the validation split are prepared before the baseline: a
    method that allocates nothing shows (almost) nothing, at T = 2000 where a dense batch of 32
    samples is 45 MB."""
    out = tmp_path / "runs"
    proc = bench_process("run", "--method", f"fake-nothing-{fmt}", "--set", "steps=2000",
                         "--set", "dt_ms=0.5", "--epochs", "2", "--out", str(out), "--no-progress",
                         env_extra={"SNN_BENCH_DATA": str(tmp_path / "data")})
    assert proc.wait(300) == 0, proc.stderr.read()
    (record,) = [r for _, r in records.iter_records(out)]
    assert record["env"]["memory_gauge"] == "linux-vmhwm"
    assert record["metrics"]["peak_train_bytes"] < 2 * 2**20
