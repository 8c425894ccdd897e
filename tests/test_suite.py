"""``bench suite`` and ``bench scale``: the grid and its cell keys, resuming (done cells skipped,
failed ones retried), failures named in the exit status, with a stand-in for ``bench run``; then
one real end-to-end pass on a tiny dataset: suite -> report -> compare, and a two-point sweep."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import pytest

from bench import records, registry, suite
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
a = p.parse_args()
here = os.path.dirname(os.path.abspath(__file__))
plan = json.load(open(os.path.join(here, "plan.json")))
with open(os.path.join(here, "calls.txt"), "a") as log:
    log.write(f"{a.method}:{a.seed} {' '.join(sorted(a.set))}\n")
outcome = plan.get(f"{a.method}:{a.seed}", "ok")
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
    script = tmp_path / "stand_in.py"
    script.write_text(STAND_IN)
    monkeypatch.setattr(suite, "RUN_COMMAND", [sys.executable, str(script)])
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
    current = records.source_hash(registry.method_module_file("paralif"))
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
