"""``bench compare``: golden outputs and exit codes for fixed records against a baseline made from
fixed records (improvement, regression beyond tolerance, change within seed noise, not
comparable, newly failing, baseline round trip)."""

from __future__ import annotations

import json
import os
import textwrap
from pathlib import Path

import pytest

from bench.cli import main as cli_main
from test_report import make_record, write_all

MiB = 2**20


def alpha_runs(acc: float = 0.80, seconds: float = 1.0, memory: int = 100 * MiB) -> list[dict]:
    """Three seeds of alpha with the same figures."""
    return [make_record("alpha", s, acc=acc, seconds=seconds, memory=memory) for s in range(3)]


def beta_runs(accs: tuple[float, ...] = (0.70, 0.75, 0.80), seconds: float = 2.0) -> list[dict]:
    """One seed of beta per accuracy in ``accs``, 50 MiB each."""
    return [make_record("beta", s, acc=a, seconds=seconds, memory=50 * MiB)
            for s, a in enumerate(accs)]


def baseline_runs() -> list[dict]:
    """alpha: three seeds of 0.80 (no seed spread); beta: 0.70/0.75/0.80 (seed std 0.05)."""
    return alpha_runs() + beta_runs()


@pytest.fixture
def workdir(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    write_all(tmp_path / "base", baseline_runs())
    assert cli_main(["compare", "--baseline", "baseline.json", "--runs", "base",
                     "--update-baseline"]) == 0
    return tmp_path


def compare(workdir: Path, runs: list[dict], capsys) -> tuple[int, str]:
    write_all(workdir / "runs", runs)
    capsys.readouterr()
    code = cli_main(["compare", "--baseline", "baseline.json", "--runs", "runs"])
    return code, capsys.readouterr().out


def golden(text: str) -> str:
    return textwrap.dedent(text).lstrip("\n")


def test_improvement(workdir, capsys):
    runs = alpha_runs(acc=0.9, seconds=0.4) + beta_runs()
    code, out = compare(workdir, runs, capsys)
    assert code == 0
    assert out == golden("""
        baseline baseline.json: 2 entries; current: 6 runs in 2 groups
        alpha on synthetic: improved
          test_acc               0.8000 -> 0.9000      +0.1000  beyond 0.0200  improvement
          best_valid_acc         0.8000 -> 0.8000      +0.0000  within 0.0200  ok
          seconds_per_epoch      1.00 s -> 0.400 s      -60.0%  beyond 50.0%  improvement
          train_seconds          3.00 s -> 1.20 s       -60.0%  beyond 50.0%  improvement
          peak_train_bytes    100.0 MiB -> 100.0 MiB     +0.0%  within 25.0%  ok
          spikes_per_neuron           2 -> 2             +0.0%  within 25.0%  ok
          synops_per_sample         1 k -> 1 k           +0.0%  within 25.0%  ok
        beta on synthetic: ok
          test_acc               0.7500 -> 0.7500      +0.0000  within 0.1000 (2 x seed std)  ok
          best_valid_acc         0.8000 -> 0.8000      +0.0000  within 0.0200  ok
          seconds_per_epoch      2.00 s -> 2.00 s        +0.0%  within 50.0%  ok
          train_seconds          6.00 s -> 6.00 s        +0.0%  within 50.0%  ok
          peak_train_bytes     50.0 MiB -> 50.0 MiB      +0.0%  within 25.0%  ok
          spikes_per_neuron           2 -> 2             +0.0%  within 25.0%  ok
          synops_per_sample         1 k -> 1 k           +0.0%  within 25.0%  ok
        no regressions
        """)


def test_regression_beyond_tolerance(workdir, capsys):
    runs = alpha_runs(acc=0.75) + beta_runs(seconds=3.5)
    code, out = compare(workdir, runs, capsys)
    assert code == 1
    assert out == golden("""
        baseline baseline.json: 2 entries; current: 6 runs in 2 groups
        alpha on synthetic: regression
          test_acc               0.8000 -> 0.7500      -0.0500  beyond 0.0200  REGRESSION
          best_valid_acc         0.8000 -> 0.8000      +0.0000  within 0.0200  ok
          seconds_per_epoch      1.00 s -> 1.00 s        +0.0%  within 50.0%  ok
          train_seconds          3.00 s -> 3.00 s        +0.0%  within 50.0%  ok
          peak_train_bytes    100.0 MiB -> 100.0 MiB     +0.0%  within 25.0%  ok
          spikes_per_neuron           2 -> 2             +0.0%  within 25.0%  ok
          synops_per_sample         1 k -> 1 k           +0.0%  within 25.0%  ok
        beta on synthetic: regression
          test_acc               0.7500 -> 0.7500      +0.0000  within 0.1000 (2 x seed std)  ok
          best_valid_acc         0.8000 -> 0.8000      +0.0000  within 0.0200  ok
          seconds_per_epoch      2.00 s -> 3.50 s       +75.0%  beyond 50.0%  REGRESSION
          train_seconds          6.00 s -> 10.5 s       +75.0%  beyond 50.0%  REGRESSION
          peak_train_bytes     50.0 MiB -> 50.0 MiB      +0.0%  within 25.0%  ok
          spikes_per_neuron           2 -> 2             +0.0%  within 25.0%  ok
          synops_per_sample         1 k -> 1 k           +0.0%  within 25.0%  ok
        2 regressions: alpha on synthetic: test_acc; beta on synthetic: seconds_per_epoch, train_seconds
        """)


def test_changes_within_tolerance_or_seed_noise(workdir, capsys):
    # alpha: -0.01 accuracy (tolerance 0.02), +20% time, +10% memory: all within tolerance.
    # beta: -0.07 accuracy is beyond the 0.02 tolerance but within 2 x seed std (0.10).
    runs = alpha_runs(acc=0.79, seconds=1.2, memory=110 * MiB) + beta_runs((0.66, 0.68, 0.70))
    code, out = compare(workdir, runs, capsys)
    assert code == 0
    assert out == golden("""
        baseline baseline.json: 2 entries; current: 6 runs in 2 groups
        alpha on synthetic: ok
          test_acc               0.8000 -> 0.7900      -0.0100  within 0.0200  ok
          best_valid_acc         0.8000 -> 0.8000      +0.0000  within 0.0200  ok
          seconds_per_epoch      1.00 s -> 1.20 s       +20.0%  within 50.0%  ok
          train_seconds          3.00 s -> 3.60 s       +20.0%  within 50.0%  ok
          peak_train_bytes    100.0 MiB -> 110.0 MiB    +10.0%  within 25.0%  ok
          spikes_per_neuron           2 -> 2             +0.0%  within 25.0%  ok
          synops_per_sample         1 k -> 1 k           +0.0%  within 25.0%  ok
        beta on synthetic: ok
          test_acc               0.7500 -> 0.6800      -0.0700  within 0.1000 (2 x seed std)  ok
          best_valid_acc         0.8000 -> 0.8000      +0.0000  within 0.0200  ok
          seconds_per_epoch      2.00 s -> 2.00 s        +0.0%  within 50.0%  ok
          train_seconds          6.00 s -> 6.00 s        +0.0%  within 50.0%  ok
          peak_train_bytes     50.0 MiB -> 50.0 MiB      +0.0%  within 25.0%  ok
          spikes_per_neuron           2 -> 2             +0.0%  within 25.0%  ok
          synops_per_sample         1 k -> 1 k           +0.0%  within 25.0%  ok
        no regressions
        """)


def test_other_version_or_data_is_not_comparable(workdir, capsys):
    runs = ([make_record("alpha", s, acc=0.5, version="v2") for s in range(3)]
            + [make_record("beta", s, acc=0.75, dataset_hash="h2") for s in range(3)])
    code, out = compare(workdir, runs, capsys)
    assert code == 0  # a worse accuracy of another version is listed, not a regression
    assert out == golden("""
        baseline baseline.json: 2 entries; current: 6 runs in 2 groups
        alpha on synthetic: not comparable
          not comparable: method_version v1 -> v2
        beta on synthetic: not comparable
          not comparable: dataset_hash h1 -> h2
        no regressions
        """)


def test_newly_failing_is_a_regression_and_new_rows_are_listed(workdir, capsys):
    runs = [make_record("alpha", 0), make_record("alpha", 1),
            make_record("alpha", 2, status="failed", error="RuntimeError: out of memory"),
            make_record("beta", 0, acc=0.70, seconds=2.0, memory=50 * MiB),
            make_record("beta", 1, acc=0.75, seconds=2.0, memory=50 * MiB),
            make_record("beta", 2, status="diverged", error="diverged: loss became nan"),
            make_record("delta", 0, acc=0.3)]
    code, out = compare(workdir, runs, capsys)
    assert code == 1
    assert out == golden("""
        baseline baseline.json: 2 entries; current: 7 runs in 3 groups
        alpha on synthetic: regression
          newly failing: 1 failed, 2 ok (baseline 3 ok)
          seed 2 failed: RuntimeError: out of memory
          test_acc               0.8000 -> 0.8000      +0.0000  within 0.0200  ok
          best_valid_acc         0.8000 -> 0.8000      +0.0000  within 0.0200  ok
          seconds_per_epoch      1.00 s -> 1.00 s        +0.0%  within 50.0%  ok
          train_seconds          3.00 s -> 3.00 s        +0.0%  within 50.0%  ok
          peak_train_bytes    100.0 MiB -> 100.0 MiB     +0.0%  within 25.0%  ok
          spikes_per_neuron           2 -> 2             +0.0%  within 25.0%  ok
          synops_per_sample         1 k -> 1 k           +0.0%  within 25.0%  ok
        beta on synthetic: regression
          newly failing: 1 diverged, 2 ok (baseline 3 ok)
          seed 2 diverged: diverged: loss became nan
          test_acc               0.7500 -> 0.7250      -0.0250  within 0.1000 (2 x seed std)  ok
          best_valid_acc         0.8000 -> 0.8000      +0.0000  within 0.0200  ok
          seconds_per_epoch      2.00 s -> 2.00 s        +0.0%  within 50.0%  ok
          train_seconds          6.00 s -> 6.00 s        +0.0%  within 50.0%  ok
          peak_train_bytes     50.0 MiB -> 50.0 MiB      +0.0%  within 25.0%  ok
          spikes_per_neuron           2 -> 2             +0.0%  within 25.0%  ok
          synops_per_sample         1 k -> 1 k           +0.0%  within 25.0%  ok
        delta on synthetic: new
          not in the baseline
        2 regressions: alpha on synthetic: newly failing; beta on synthetic: newly failing
        """)


def test_missing_rows_are_listed_not_regressions(workdir, capsys):
    code, out = compare(workdir, alpha_runs(), capsys)
    assert code == 0
    assert out.splitlines()[-3:] == ["beta on synthetic: missing",
                                     "  in the baseline, not among the current runs",
                                     "no regressions"]


def test_update_baseline_round_trip(workdir, capsys):
    data = json.loads((workdir / "baseline.json").read_text())
    assert data["schema_version"] == 1 and data["tolerances"] == {}
    assert sorted(data["entries"]) == ["alpha|synthetic", "beta|synthetic"]
    beta = data["entries"]["beta|synthetic"]
    assert (beta["method"], beta["dataset"], beta["variant"]) == ("beta", "synthetic", "")
    assert (beta["method_version"], beta["dataset_hash"], beta["n"]) == ("v1", "h1", 3)
    assert beta["statuses"] == {"ok": 3} and beta["seeds"] == [0, 1, 2]
    assert beta["metrics"]["test_acc"] == pytest.approx({"median": 0.75, "std": 0.05, "n": 3})
    assert beta["metrics"]["seconds_per_epoch"] == {"median": 2.0, "std": 0.0, "n": 3}
    assert beta["metrics"]["synops_per_sample"]["median"] == 1000.0

    # The same runs compare clean against their own baseline.
    code, out = compare(workdir, baseline_runs(), capsys)
    assert code == 0 and out.endswith("no regressions\n") and "REGRESSION" not in out

    # Tolerances written into the file override METRICS and survive an update.
    data["tolerances"] = {"seconds_per_epoch": {"tolerance": 1.0}}
    (workdir / "baseline.json").write_text(json.dumps(data))
    write_all(workdir / "slower", alpha_runs(seconds=1.8))
    capsys.readouterr()
    assert cli_main(["compare", "--baseline", "baseline.json", "--runs", "slower"]) == 1
    out = capsys.readouterr().out
    assert "seconds_per_epoch      1.00 s -> 1.80 s       +80.0%  within 100.0%  ok" in out
    assert "1 regression: alpha on synthetic: train_seconds" in out
    assert cli_main(["compare", "--baseline", "baseline.json", "--runs", "slower",
                     "--update-baseline"]) == 0
    updated = json.loads((workdir / "baseline.json").read_text())
    assert updated["tolerances"] == {"seconds_per_epoch": {"tolerance": 1.0}}
    assert sorted(updated["entries"]) == ["alpha|synthetic"]
    assert updated["entries"]["alpha|synthetic"]["metrics"]["seconds_per_epoch"]["median"] == 1.8


def test_bad_input_exits_2(workdir, capsys):
    write_all(workdir / "runs", baseline_runs())
    assert cli_main(["compare", "--baseline", "nothing.json", "--runs", "runs"]) == 2
    assert "error: no baseline file nothing.json" in capsys.readouterr().err
    (workdir / "broken.json").write_text("{")
    assert cli_main(["compare", "--baseline", "broken.json", "--runs", "runs"]) == 2
    assert "error: cannot read baseline broken.json" in capsys.readouterr().err
    (workdir / "empty").mkdir()
    assert cli_main(["compare", "--baseline", "baseline.json", "--runs", "empty"]) == 2
    assert "error: no run records in empty" in capsys.readouterr().err


# ---------------------------------------------------------------------------------------------
# Wrong shapes, unwritable targets, instruction sets, --strict


def _one_line_exit_2(capsys, argv: list[str], message: str) -> None:
    assert cli_main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and message in err, err


@pytest.mark.parametrize("content, message", [
    ("[]", "not a baseline file of schema 1"),
    ('{"schema_version": 1, "entries": {"a|b": "x"}}', "entry 'a|b' is not a baseline entry"),
    ('{"schema_version": 1, "entries": {"a|b": {"method": "a", "dataset": "b", "statuses": {},'
     ' "metrics": "fast"}}}', "'metrics' is not an object"),
    ('{"schema_version": 1, "entries": {"a|b": {"method": "a", "dataset": "b", "statuses": {},'
     ' "metrics": {"test_acc": {"median": "high"}}}}}', "metric 'test_acc' has no numeric median"),
    ('{"schema_version": 1, "entries": {}, "tolerances": []}', "'tolerances' is not an object"),
    ('{"schema_version": 1, "entries": {}, "tolerances": {"test_acc": 3}}', "must be an object"),
])
def test_baseline_of_the_wrong_shape_is_exit_2(workdir, capsys, content, message):
    write_all(workdir / "runs", baseline_runs())
    (workdir / "odd.json").write_text(content)
    _one_line_exit_2(capsys, ["compare", "--baseline", "odd.json", "--runs", "runs"], message)
    _one_line_exit_2(capsys, ["compare", "--baseline", "odd.json", "--runs", "runs",
                              "--update-baseline"], message)
    assert (workdir / "odd.json").read_text() == content  # never overwritten


def test_update_baseline_at_a_folder_or_unwritable_place_is_exit_2(workdir, capsys):
    write_all(workdir / "runs", baseline_runs())
    (workdir / "folder").mkdir()
    _one_line_exit_2(capsys, ["compare", "--baseline", "folder", "--runs", "runs",
                              "--update-baseline"], "folder is a folder, not a file")
    (workdir / "a-file").write_text("x")
    _one_line_exit_2(capsys, ["compare", "--baseline", "a-file/b.json", "--runs", "runs",
                              "--update-baseline"], "is a file, not a folder")
    target = "/proc/snn-bench-baseline.json" if os.geteuid() == 0 else "/baseline.json"
    _one_line_exit_2(capsys, ["compare", "--baseline", target, "--runs", "runs",
                              "--update-baseline"], "cannot write to the baseline's folder")


def test_baseline_is_written_with_the_umask(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    write_all(tmp_path / "base", baseline_runs())
    old = os.umask(0o022)
    try:
        assert cli_main(["compare", "--baseline", "b.json", "--runs", "base",
                         "--update-baseline"]) == 0
    finally:
        os.umask(old)
    assert (tmp_path / "b.json").stat().st_mode & 0o777 == 0o644


def with_cpu(runs: list[dict], capability: str) -> list[dict]:
    for record in runs:
        record["env"]["cpu_capability"] = capability
    return runs


def test_other_instruction_set_is_not_comparable_for_accuracy(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    write_all(tmp_path / "base", with_cpu(alpha_runs(), "AVX512"))
    assert cli_main(["compare", "--baseline", "b.json", "--runs", "base", "--update-baseline"]) == 0
    assert json.loads((tmp_path / "b.json").read_text())["entries"]["alpha|synthetic"][
        "cpu_capability"] == "AVX512"
    write_all(tmp_path / "runs", with_cpu(alpha_runs(acc=0.5), "AVX2"))
    capsys.readouterr()
    assert cli_main(["compare", "--baseline", "b.json", "--runs", "runs"]) == 0
    out = capsys.readouterr().out
    assert "accuracy not comparable: cpu_capability AVX512 -> AVX2" in out
    assert "test_acc" not in out and "seconds_per_epoch" in out  # costs are still compared
    assert cli_main(["compare", "--baseline", "b.json", "--runs", "runs", "--strict"]) == 1
    assert "strict: 1 baseline entry without a comparable run: alpha on synthetic" in \
        capsys.readouterr().out
    assert cli_main(["compare", "--baseline", "b.json", "--runs", "runs", "--any-cpu"]) == 1
    assert "1 regression: alpha on synthetic: test_acc" in capsys.readouterr().out


def test_strict_fails_on_a_baseline_entry_without_a_comparable_run(workdir, capsys):
    write_all(workdir / "runs", alpha_runs() + [make_record("beta", s, acc=0.75, version="v2")
                                                for s in range(3)])
    assert cli_main(["compare", "--baseline", "baseline.json", "--runs", "runs"]) == 0
    capsys.readouterr()
    assert cli_main(["compare", "--baseline", "baseline.json", "--runs", "runs", "--strict"]) == 1
    assert capsys.readouterr().out.endswith(
        "no regressions\nstrict: 1 baseline entry without a comparable run: beta on synthetic\n")
    write_all(workdir / "only-alpha", alpha_runs())  # beta missing altogether
    assert cli_main(["compare", "--baseline", "baseline.json", "--runs", "only-alpha",
                     "--strict"]) == 1
    write_all(workdir / "all", baseline_runs())
    assert cli_main(["compare", "--baseline", "baseline.json", "--runs", "all", "--strict"]) == 0


def test_a_later_failed_rerun_does_not_hide_the_ok_run(workdir, capsys):
    rerun = make_record("alpha", 2, status="failed", finished="2025-02-01T00:00:00+00:00",
                        error="KeyboardInterrupt: interrupted")
    code, out = compare(workdir, baseline_runs() + [rerun], capsys)
    assert code == 0 and "no regressions" in out
    assert ("seed 2: a rerun failed (KeyboardInterrupt: interrupted); its ok record is compared"
            in out)


# ---------------------------------------------------------------------------------------------
# The CI smoke baseline: a rerun on the same machine passes, a 10-point drop fails

CI_BASELINE = Path(__file__).resolve().parents[1] / ".ci" / "baseline.json"


def _rerun_of_baseline(drop: float) -> list[dict]:
    """Records with the committed smoke baseline's per-seed test accuracies (what a rerun on the
    baseline's machine gives: CPU runs are deterministic), minus ``drop``, and its other
    medians."""
    baseline = json.loads(CI_BASELINE.read_text())
    recs = []
    for entry in baseline["entries"].values():
        metrics = {name: figures["median"] for name, figures in entry["metrics"].items()}
        for seed, acc in entry["test_acc_by_seed"].items():
            record = make_record(entry["method"], int(seed), acc=acc - drop,
                                 version=entry["method_version"],
                                 dataset_hash=entry["dataset_hash"], seconds=1.0)
            record["metrics"].update({k: v for k, v in metrics.items()
                                      if k in record["metrics"] and k != "test_acc"})
            record["inference"].update({k: v for k, v in metrics.items()
                                        if k in ("spikes_per_neuron", "synops_per_sample")})
            record["env"]["cpu_capability"] = entry.get("cpu_capability")
            recs.append(record)
    return recs


@pytest.mark.parametrize("drop, code", [(0.0, 0), (0.10, 1)])
def test_ci_baseline_passes_a_rerun_and_fails_a_ten_point_drop(tmp_path, capsys, drop, code):
    write_all(tmp_path / "runs", _rerun_of_baseline(drop))
    assert cli_main(["compare", "--baseline", str(CI_BASELINE), "--runs", str(tmp_path / "runs"),
                     "--strict", "--any-cpu"]) == code
    out = capsys.readouterr().out
    if code:
        entries = json.loads(CI_BASELINE.read_text())["entries"].values()
        for entry in entries:
            assert f"{entry['method']} on {entry['dataset']}: regression" in out
        assert "test_acc" in out.splitlines()[-1]
