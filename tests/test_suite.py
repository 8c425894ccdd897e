"""``bench suite`` and ``bench scale``: the grid and its cell keys, resuming (done cells skipped,
failed ones retried), failures named in the exit status, with a stand-in for ``bench run``; then
one real end-to-end pass on a tiny dataset: suite -> report -> compare, and a two-point sweep."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from bench import launcher, records, registry, suite
from methods.api import InputError
from bench.cli import main as cli_main

ROOT = Path(__file__).resolve().parent.parent

# A stand-in for `python -m bench run`: writes a record whose status the plan file decides
# ("method:seed" -> ok | failed | diverged | exit2 | crash) and logs each call.
STAND_IN = r'''
import argparse, json, os, sys
from bench import records
p = argparse.ArgumentParser()
for name in ("--method", "--dataset", "--out", "--device", "--threads", "--time-limit", "--epochs"):
    p.add_argument(name)
p.add_argument("--seed", type=int)
p.add_argument("--tag", action="append", default=[])
p.add_argument("--set", action="append", default=[])
p.add_argument("--no-progress", action="store_true")
p.add_argument("--resume", action="store_true")
a = p.parse_args()
here = os.path.dirname(os.path.abspath(__file__))
plan = json.load(open(os.path.join(here, "plan.json")))
with open(os.path.join(here, "calls.txt"), "a") as log:
    log.write(f"{a.method}:{a.seed} {' '.join(sorted(a.set))}\n")
outcome = plan.get(f"{a.method}:{a.seed}", "ok")
if outcome == "slow":  # long enough to be killed mid-run
    with open(os.path.join(here, "pids.txt"), "a") as log:
        log.write(f"{os.getpid()}\n")
    import time
    time.sleep(float(plan.get("sleep", 60)))
    outcome = "ok"
if outcome == "fail_once":  # fails the first time, succeeds when resubmitted
    marker = os.path.join(here, f"failed-{a.method}-{a.seed}")
    outcome = "ok" if os.path.exists(marker) else "failed"
    open(marker, "a").close()
if outcome == "exit2":
    print("error: unknown hyperparameter 'nosuch'", file=sys.stderr)
    sys.exit(2)
if outcome == "crash":
    sys.exit(137)
tags = dict(t.split("=", 1) for t in a.tag)
r = records.new_record(run_id=records.new_run_id(a.method, a.dataset, a.seed), method=a.method,
                       method_version="v1", dataset=a.dataset, dataset_hash="h", seed=a.seed,
                       hparams=dict(s.split("=", 1) for s in a.set), env={"device": a.device},
                       tags=tags)
r["status"] = outcome
r["error"] = None if outcome == "ok" else f"{outcome} on purpose"
if outcome == "ok":
    r["metrics"].update(test_acc=0.5, seconds_per_epoch=0.1, epochs=1)
r["finished_at"] = records.now_iso()
records.write(r, a.out)
sys.exit({"ok": 0, "failed": 1, "diverged": 3}[outcome])
'''


@pytest.fixture
def stand_in(tmp_path, monkeypatch):
    """(set_plan, calls); the stand-in script is ``tmp_path / "stand_in.py"``."""
    script = tmp_path / "stand_in.py"
    script.write_text(STAND_IN)
    monkeypatch.setattr(launcher, "RUN_COMMAND", [sys.executable, str(script)])
    monkeypatch.setenv("PYTHONPATH", str(ROOT))

    def set_plan(mapping: dict[str, str]):
        (tmp_path / "plan.json").write_text(json.dumps(mapping))

    def calls() -> list[str]:
        path = tmp_path / "calls.txt"
        return path.read_text().splitlines() if path.exists() else []

    set_plan({})
    return set_plan, calls


SUITE = ["suite", "--methods", "bptt-snntorch,paralif", "--seeds", "0,1", "--epochs", "1",
         "--set", "hidden=16"]


def test_grid_and_cell_keys():
    cells = suite.build_cells(methods=["bptt-snntorch", "paralif"], datasets=["synthetic"],
                              seeds=[0, 1, 2], epochs=1, overrides=["hidden=16", "steps=50"],
                              grid=["lr=0.001,0.01", "recurrent=true,false"])
    assert len(cells) == 2 * 3 * 2 * 2
    assert len({c.key for c in cells}) == len(cells)
    first = cells[0]
    assert first.label == "bptt-snntorch on synthetic, seed 0 [lr=0.001, recurrent=true]"
    assert dict(first.overrides) == {"hidden": "16", "steps": "50", "lr": "0.001",
                                     "recurrent": "true"}
    # The key does not depend on the order of --set, and changes with what defines the run.
    same = suite.build_cells(methods=["bptt-snntorch"], datasets=["synthetic"], seeds=[0],
                             epochs=1, overrides=["recurrent=true", "steps=50", "lr=0.001",
                                                  "hidden=16"])[0]
    assert same.key == first.key
    for change in ({"epochs": 2}, {"overrides": ["hidden=32", "steps=50", "lr=0.001",
                                                 "recurrent=true"]}, {"seeds": [1]}):
        kwargs = dict(methods=["bptt-snntorch"], datasets=["synthetic"], seeds=[0], epochs=1,
                      overrides=["recurrent=true", "steps=50", "lr=0.001", "hidden=16"])
        kwargs.update(change)
        assert suite.build_cells(**kwargs)[0].key != first.key
    command = first.command(suite.RunOptions(out="runs", threads=2))
    assert command[command.index("--tag") + 1] == f"suite_cell={first.key}"
    assert "suite_grid=lr=0.001,recurrent=true" in command
    assert command[-8:] == ["--set", "hidden=16", "--set", "lr=0.001", "--set", "recurrent=true",
                            "--set", "steps=50"]


@pytest.mark.parametrize("kwargs, message", [
    ({"methods": ["nosuch"]}, "unknown method 'nosuch'"),
    ({"grid": ["lr"]}, "--grid expects key=v1,v2"),
    ({"grid": ["lr=1,2", "lr=3"]}, "--grid lr given twice"),
    ({"overrides": ["hidden"]}, "--set expects key=value"),
    ({"overrides": ["epochs=3"]}, "use --epochs"),
    ({"epochs": 0}, "--epochs must be at least 1"),
])
def test_bad_grids_are_input_errors(kwargs, message):
    args = dict(methods=["bptt-snntorch"], datasets=["synthetic"], seeds=[0])
    args.update(kwargs)
    with pytest.raises(InputError, match=message):
        suite.build_cells(**args)


def test_resumes_and_retries_failed_runs(tmp_path, stand_in, capsys):
    set_plan, calls = stand_in
    out = str(tmp_path / "runs")
    set_plan({"paralif:1": "failed", "bptt-snntorch:1": "diverged"})
    assert cli_main([*SUITE, "--out", out]) == 1
    err = capsys.readouterr().err
    assert "error: 1 run did not succeed: paralif on synthetic, seed 1 (failed)" in err
    assert len(calls()) == 4
    assert calls()[0] == "bptt-snntorch:0 hidden=16"

    # Interrupted or failed: the same command runs only what is not done (diverged is done).
    set_plan({})
    assert cli_main([*SUITE, "--out", out]) == 0
    err = capsys.readouterr().err
    assert calls()[4:] == ["paralif:1 hidden=16"]
    assert "4 runs (1 run now, 3 done before): 1 diverged, 3 ok" in err
    assert cli_main([*SUITE, "--out", out]) == 0
    assert len(calls()) == 5
    records = [json.loads(p.read_text()) for p in Path(out).glob("*.json")]
    assert len(records) == 5 and all("suite_cell" in r["tags"] for r in records)
    assert len(list((Path(out) / "logs").glob("*.log"))) == 4

    # --dry-run prints what would run: nothing now; a new seed's two runs with another one.
    capsys.readouterr()
    assert cli_main([*SUITE[:4], "0,1,2", *SUITE[5:], "--out", out, "--dry-run"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == 2 and all("--seed 2" in line for line in lines)


def test_runs_of_an_edited_adapter_run_again(tmp_path, stand_in, capsys):
    set_plan, calls = stand_in
    out = tmp_path / "runs"
    assert cli_main([*SUITE, "--out", str(out)]) == 0
    assert len(calls()) == 4
    current = records.source_hash(records.method_sources("paralif"))
    for path in out.glob("*.json"):  # paralif's runs: one by today's source, one by another
        record = json.loads(path.read_text())
        if record["method"] == "paralif":
            record["method_source"] = current if record["seed"] == 0 else "0123456789abcdef"
            path.write_text(json.dumps(record))
    capsys.readouterr()
    assert cli_main([*SUITE, "--out", str(out)]) == 0
    assert calls()[4:] == ["paralif:1 hidden=16"]
    assert "4 runs (1 run now, 3 done before): 4 ok" in capsys.readouterr().err


def test_crashes_are_named_and_bad_input_stops_the_suite(tmp_path, stand_in, capsys):
    set_plan, calls = stand_in
    set_plan({"paralif:0": "crash"})
    assert cli_main([*SUITE, "--out", str(tmp_path / "a")]) == 1
    err = capsys.readouterr().err
    assert "paralif on synthetic, seed 0 (crashed)" in err
    assert "exit status 137, no record" in err

    set_plan({"bptt-snntorch:1": "exit2"})
    assert cli_main([*SUITE, "--out", str(tmp_path / "b")]) == 2
    err = capsys.readouterr().err
    assert "error: bptt-snntorch on synthetic, seed 1: unknown hyperparameter 'nosuch'" in err
    assert len(calls()) == 4 + 2  # the suite stopped at the bad cell


# ---------------------------------------------------------------------------------------------
# One controller per output folder; a stopped controller stops its run; a folder that cannot be
# written stops the suite.


def suite_process(tmp_path, out, *extra) -> subprocess.Popen:
    """``bench suite`` in a process of its own, with the stand-in as ``bench run``."""
    code = ("import sys; from bench import launcher; "
            f"launcher.RUN_COMMAND = [sys.executable, {str(tmp_path / 'stand_in.py')!r}]; "
            "from bench.cli import main; sys.exit(main(sys.argv[1:]))")
    return subprocess.Popen([sys.executable, "-c", code, *SUITE, "--out", str(out), *extra],
                            cwd=ROOT, env={**os.environ, "PYTHONPATH": str(ROOT)},
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def wait_for_pids(tmp_path, count: int, timeout: float = 120) -> list[int]:
    path = tmp_path / "pids.txt"
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        pids = [int(x) for x in path.read_text().split()] if path.exists() else []
        if len(pids) >= count:
            return pids
        time.sleep(0.1)
    raise AssertionError(f"fewer than {count} runs started")


def gone(pid: int, timeout: float = 30) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return True
        if Path(f"/proc/{pid}/stat").exists() and Path(f"/proc/{pid}/stat").read_text().split(")")[1].split()[0] == "Z":
            return True  # a zombie: ended, not yet reaped
        time.sleep(0.1)
    return False


def test_two_suites_on_one_folder_run_each_cell_once(tmp_path, stand_in):
    set_plan, calls = stand_in
    set_plan({"bptt-snntorch:0": "slow", "sleep": 20})
    out = tmp_path / "runs"
    first = suite_process(tmp_path, out)
    wait_for_pids(tmp_path, 1)
    second = suite_process(tmp_path, out)
    _, err = second.communicate(timeout=60)
    assert second.returncode == 2, err
    assert err.strip().splitlines()[-1] == (
        f"error: a suite is already running in {out} (pid {first.pid})")
    assert first.wait(timeout=300) == 0
    assert cli_main([*SUITE, "--out", str(out)]) == 0  # all done: nothing runs again
    assert sorted(calls()) == sorted(["bptt-snntorch:0 hidden=16", "bptt-snntorch:1 hidden=16",
                                      "paralif:0 hidden=16", "paralif:1 hidden=16"])
    keys = [json.loads(p.read_text())["tags"]["suite_cell"] for p in out.glob("*.json")]
    assert len(keys) == 4 and len(set(keys)) == 4


@pytest.mark.parametrize("signal_name", ["SIGTERM", "SIGKILL"])
def test_a_killed_suite_leaves_no_run_behind(tmp_path, stand_in, signal_name):
    set_plan, calls = stand_in
    set_plan({"bptt-snntorch:0": "slow", "sleep": 120})
    out = tmp_path / "runs"
    controller = suite_process(tmp_path, out)
    (child,) = wait_for_pids(tmp_path, 1)
    controller.send_signal(getattr(signal, signal_name))
    controller.wait(timeout=60)
    assert gone(child), "the suite's run outlived it"
    set_plan({})
    assert cli_main([*SUITE, "--out", str(out)]) == 0  # the rerun finishes the grid
    assert len(calls()) == 5


def test_a_folder_that_cannot_be_written_stops_the_suite(tmp_path, stand_in, capsys):
    set_plan, calls = stand_in
    out = tmp_path / "runs"
    (out / "logs").mkdir(parents=True)
    (out / "locks").mkdir()
    set_plan({"bptt-snntorch:0": "failed"})
    out.chmod(0o555)  # records cannot be written any more (logs and locks still can)
    try:
        if os.access(out, os.W_OK):
            pytest.skip("running as a user who can write anywhere")
        assert cli_main([*SUITE, "--out", str(out)]) == 1
    finally:
        out.chmod(0o755)
    err = capsys.readouterr().err
    assert len(calls()) == 1  # no cell started after the first failed
    assert f"error: the output folder {out} cannot be written" in err
    assert "no further run started" in err


def test_a_failed_cell_in_a_folder_gone_read_only_stops_the_suite(tmp_path, stand_in, capsys,
                                                                  monkeypatch):
    """The same, where file permissions cannot stop this user (root): the folder's check is
    made to fail as a read-only file system would."""
    from bench.executors import controller

    set_plan, calls = stand_in
    set_plan({"bptt-snntorch:0": "failed"})
    checked = []
    monkeypatch.setattr(controller, "writable",
                        lambda folder: checked.append(folder) or "OSError: Read-only file system")
    out = tmp_path / "runs"
    assert cli_main([*SUITE, "--out", str(out)]) == 1
    err = capsys.readouterr().err
    assert checked == [out] and len(calls()) == 1
    assert (f"error: the output folder {out} cannot be written (OSError: Read-only file "
            "system); no further run started") in err
    assert "4 runs (1 run now, 0 done before): 1 failed, 3 not started" in err


def test_a_cell_that_fails_once_succeeds_on_resubmission(tmp_path, stand_in, capsys):
    set_plan, calls = stand_in
    set_plan({"paralif:0": "fail_once"})
    out = tmp_path / "runs"
    assert cli_main([*SUITE, "--out", str(out), "--retries", "1"]) == 0
    assert len(calls()) == 5
    found = [json.loads(p.read_text()) for p in out.glob("*.json")]
    ok = [r["tags"]["suite_cell"] for r in found if r["status"] == "ok"]
    assert len(ok) == 4 and len(set(ok)) == 4  # every cell's result once
    assert sum(r["status"] == "failed" for r in found) == 1  # the failed attempt is kept


# ---------------------------------------------------------------------------------------------
# --jobs: several cells at once on this machine


def test_jobs_run_cells_side_by_side_and_an_interrupt_stops_them_all(tmp_path, stand_in):
    set_plan, calls = stand_in
    set_plan({"bptt-snntorch:0": "slow", "bptt-snntorch:1": "slow", "sleep": 120})
    out = tmp_path / "runs"
    controller = suite_process(tmp_path, out, "--jobs", "2")
    children = wait_for_pids(tmp_path, 2)  # both slow cells started before either ended
    controller.send_signal(signal.SIGTERM)
    assert controller.wait(timeout=90) == 130
    assert all(gone(pid) for pid in children), "a run outlived the suite"
    set_plan({})
    assert cli_main([*SUITE, "--out", str(out), "--jobs", "2"]) == 0  # the rerun finishes it
    assert len(calls()) == 6
    done = [json.loads(p.read_text()) for p in out.glob("*.json")]
    ok = [r for r in done if r["status"] == "ok"]
    assert len({r["tags"]["suite_cell"] for r in ok}) == 4
    assert all(r["tags"]["suite_jobs"] == "2" for r in done)


def test_jobs_stop_every_run_when_one_rejects_its_input(tmp_path, stand_in, capsys):
    set_plan, calls = stand_in
    set_plan({"bptt-snntorch:0": "exit2", "bptt-snntorch:1": "slow", "sleep": 120})
    started = time.monotonic()
    assert cli_main([*SUITE, "--out", str(tmp_path / "runs"), "--jobs", "2"]) == 2
    assert time.monotonic() - started < 90  # the slow run was stopped, not waited for
    assert "unknown hyperparameter 'nosuch'" in capsys.readouterr().err
    assert len(calls()) == 2  # no cell started after the bad one
    (child,) = [int(x) for x in (tmp_path / "pids.txt").read_text().split()]
    assert gone(child)


def test_jobs_start_no_cell_once_the_folder_cannot_be_written(tmp_path, stand_in, capsys,
                                                               monkeypatch):
    from bench.executors import controller

    set_plan, calls = stand_in
    set_plan({"bptt-snntorch:0": "failed", "bptt-snntorch:1": "slow", "sleep": 3})
    monkeypatch.setattr(controller, "writable", lambda folder: "OSError: Read-only file system")
    assert cli_main([*SUITE, "--out", str(tmp_path / "runs"), "--jobs", "2"]) == 1
    err = capsys.readouterr().err
    assert len(calls()) == 2  # the two started together; no third
    assert "4 runs (2 run now, 0 done before): 1 failed, 2 not started, 1 ok" in err


def test_one_job_at_a_time_leaves_no_jobs_tag(tmp_path, stand_in):
    assert cli_main([*SUITE, "--out", str(tmp_path / "runs")]) == 0
    tags = [json.loads(p.read_text())["tags"] for p in (tmp_path / "runs").glob("*.json")]
    assert len(tags) == 4 and not any("suite_jobs" in t for t in tags)


@pytest.mark.parametrize("extra, message", [
    (["--jobs", "0"], "--jobs must be at least 1"),
    (["--jobs", "2", "--executor", "ray"], "--jobs is for the local executor"),
])
def test_bad_jobs_are_input_errors(tmp_path, stand_in, capsys, extra, message):
    set_plan, calls = stand_in
    assert cli_main([*SUITE, "--out", str(tmp_path / "runs"), *extra]) == 2
    assert message in capsys.readouterr().err
    assert calls() == []


# ---------------------------------------------------------------------------------------------
# The real thing, tiny


def write_tiny_dataset(directory: Path, n_train: int = 32, n_test: int = 16) -> Path:
    """Four classes in the published schema: class c fires channels 10c..10c+9, 0.2c..0.2c+0.2 s."""
    from datasets.h5 import write_h5

    rng = np.random.default_rng(0)
    directory.mkdir(parents=True, exist_ok=True)
    for split, n in (("train", n_train), ("test", n_test)):
        times, units, labels = [], [], []
        for i in range(n):
            label = i % 4
            k = 60
            times.append(np.sort(rng.uniform(0.2 * label, 0.2 * label + 0.2, k)))
            units.append(rng.integers(10 * label, 10 * label + 10, k))
            labels.append(label)
        write_h5(directory / f"tiny_{split}.h5", times, units, labels,
                 keys=["a", "b", "c", "d"])
    return directory / "tiny"


def test_end_to_end_suite_report_compare_and_scale(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("SNN_BENCH_DATA", str(tmp_path / "cache"))
    dataset = str(write_tiny_dataset(tmp_path / "data"))
    runs = str(tmp_path / "runs")
    args = ["suite", "--methods", "bptt-snntorch", "--datasets", dataset, "--seeds", "0",
            "--epochs", "1", "--set", "hidden=16", "--set", "steps=50", "--set", "dt_ms=20",
            "--set", "batch_size=16", "--out", runs]
    assert cli_main(args) == 0
    (record_path,) = Path(runs).glob("*.json")
    record = json.loads(record_path.read_text())
    assert record["status"] == "ok" and record["dataset"] == "tiny"
    assert record["hparams"]["hidden"] == 16 and record["hparams"]["steps"] == 50
    assert record["inference"]["synops_per_sample"] > 0

    assert cli_main(["report", "--runs", runs, "--out", str(tmp_path / "out"), "--no-html"]) == 0
    markdown = (tmp_path / "out" / "report.md").read_text()
    assert "## tiny" in markdown and "| bptt-snntorch |" in markdown and "| 1 ok |" in markdown

    baseline = str(tmp_path / "baseline.json")
    assert cli_main(["compare", "--baseline", baseline, "--runs", runs, "--update-baseline"]) == 0
    capsys.readouterr()
    assert cli_main(["compare", "--baseline", baseline, "--runs", runs]) == 0
    assert capsys.readouterr().out.endswith("no regressions\n")

    scale_out = str(tmp_path / "scale")
    assert cli_main(["scale", "--methods", "bptt-snntorch", "--dataset", dataset, "--steps",
                     "20,40", "--hidden", "16", "--batch-size", "8", "--max-batches", "1",
                     "--epochs", "1", "--out", scale_out]) == 0
    table = capsys.readouterr().out
    assert "Growth from T=20 to T=40:" in table and "bptt-snntorch (hidden 16): time x" in table
    points = [json.loads(p.read_text()) for p in Path(scale_out).glob("*.json")]
    assert sorted((p["hparams"]["steps"], p["hparams"]["dt_ms"]) for p in points) == [
        (20, 50.0), (40, 25.0)]
    assert all(p["tags"]["scale"] == "1" and p["status"] == "ok" for p in points)
    assert all(p["dataset_info"]["sizes"]["train"] == 8 for p in points)
    assert cli_main(["report", "--runs", runs, "--runs", scale_out, "--out",
                     str(tmp_path / "out2"), "--no-html"]) == 0
    assert "## Scaling with sequence length" in (tmp_path / "out2" / "report.md").read_text()


def test_a_cell_stopped_mid_run_continues_from_its_checkpoint(tmp_path, monkeypatch, capsys):
    """A rerun of the suite resumes a cell from the checkpoint an earlier invocation left (here:
    the record of a finished cell removed, its last checkpoint kept), and counts a finished record
    of the same configuration made outside the suite as done instead of training again."""
    monkeypatch.setenv("SNN_BENCH_DATA", str(tmp_path / "cache"))
    dataset = str(write_tiny_dataset(tmp_path / "data"))
    runs = tmp_path / "runs"
    common = ["--datasets", dataset, "--seeds", "0", "--epochs", "1", "--set", "hidden=16",
              "--set", "steps=50", "--set", "dt_ms=20", "--set", "batch_size=16"]
    args = ["suite", "--methods", "bptt-snntorch", *common, "--out", str(runs)]
    assert cli_main(args) == 0
    (first_path,) = runs.glob("*.json")
    first = json.loads(first_path.read_text())
    first_path.unlink()  # as if stopped after its last checkpoint, before its record
    assert cli_main(args) == 0
    (second_path,) = runs.glob("*.json")
    second = json.loads(second_path.read_text())
    assert second["resumed_from"] == first["run_id"]
    assert [row["train_loss"] for row in second["curve"]] == [
        row["train_loss"] for row in first["curve"]]
    assert second["metrics"]["test_acc"] == first["metrics"]["test_acc"]

    other = tmp_path / "other"  # a plain run, then a suite of the same configuration
    assert cli_main(["run", "--method", "bptt-snntorch", "--dataset", dataset, "--seed", "0",
                     "--epochs", "1", "--set", "hidden=16", "--set", "steps=50", "--set",
                     "dt_ms=20", "--set", "batch_size=16", "--no-progress",
                     "--out", str(other)]) == 0
    capsys.readouterr()
    assert cli_main(["suite", "--methods", "bptt-snntorch", *common, "--out", str(other)]) == 0
    assert len(list(other.glob("*.json"))) == 1
    assert "finished before" in capsys.readouterr().err


def test_scale_table_reports_medians_of_repeats():
    from bench.scale import format_table
    from bench.suite import Cell, Outcome

    def outcome(method: str, steps: int, repeat: int, seconds: float, mib: float) -> Outcome:
        cell = Cell(method=method, dataset="d", seed=0,
                    overrides=(("hidden", "8"), ("steps", str(steps))),
                    tags=(("repeat", str(repeat)),))
        record = {"status": "ok", "metrics": {"peak_train_bytes": mib * 2**20},
                  "curve": [{"seconds": seconds}]}
        return Outcome(cell=cell, status="ok", record=record)

    outcomes = [outcome("a", 10, r, s, m) for r, (s, m) in enumerate([(1, 100), (3, 300), (2, 110)])]
    outcomes += [outcome("a", 20, r, s, m) for r, (s, m) in enumerate([(4, 130), (4, 120), (8, 500)])]
    outcomes += [outcome("b", 10, r, 1.0, 50) for r in range(2)]
    outcomes.append(Outcome(cell=outcome("b", 20, 0, 1, 1).cell, status="failed", record=None))
    outcomes.append(outcome("b", 20, 1, 2.0, 60))
    table = format_table(outcomes, "a")
    assert "medians of 3 runs per point" in table
    assert "a (hidden 8): time x2.00, memory x1.18" in table  # medians 2 s, 110 -> 4 s, 130 MiB
    assert "a (hidden 8): T=10 100.0 MiB .. 300.0 MiB, T=20 120.0 MiB .. 500.0 MiB" in table
    assert "b (hidden 8): time x2.00, memory x1.20" in table  # the failed repeat is left out


def test_scale_repeats_are_distinct_runs(tmp_path, capsys):
    args = ["scale", "--methods", "bptt-snntorch", "--steps", "20,40", "--max-batches", "0",
            "--out", str(tmp_path), "--dry-run"]
    assert cli_main([*args, "--repeats", "3"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == 6
    assert [sum("repeat=" in line for line in lines if f"steps={t}" in line) for t in (20, 40)] == [2, 2]
    assert len({line.split("suite_cell=")[1].split()[0] for line in lines}) == 6
    assert cli_main([*args, "--repeats", "0"]) == 2
    assert "--repeats must be at least 1" in capsys.readouterr().err


def test_scale_repeats_visit_every_method_in_turn(tmp_path, capsys):
    args = ["scale", "--methods", "bptt-snntorch,eventprop", "--steps", "20", "--max-batches", "0",
            "--out", str(tmp_path), "--dry-run", "--repeats", "2"]
    assert cli_main(args) == 0
    lines = capsys.readouterr().out.splitlines()
    methods = [line.split("--method ")[1].split()[0] for line in lines]
    assert methods == ["bptt-snntorch", "eventprop", "bptt-snntorch", "eventprop"]
