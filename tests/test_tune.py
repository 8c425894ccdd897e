"""`bench tune`: search spaces, a tiny study that resumes, two workers on one SQLite study,
failed trials, pruning from the runs' progress files, storages, tuning curves."""

from __future__ import annotations

import argparse
import dataclasses
import importlib.util
import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

optuna = pytest.importorskip("optuna")

from bench import launcher, search_spaces, tune, tune_curve, tune_storage, tune_trial, tune_worker  # noqa: E402,E501
from methods.api import InputError, NetworkHparams  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
TINY = ["--method", "bptt-snntorch", "--budget-epochs", "1",
        "--set", "hidden=8", "--set", "steps=30", "--set", "batch_size=16"]


@pytest.fixture(scope="module")
def tiny_data(tmp_path_factory):
    """Three classes of a few spikes in 30 channels, 30 ms: a run takes a fraction of a second."""
    from datasets.h5 import write_h5

    root = tmp_path_factory.mktemp("data")
    rng = np.random.default_rng(0)
    for split, n in (("train", 48), ("test", 12)):
        labels = np.arange(n) % 3
        lengths = rng.integers(20, 40, n)
        times = [np.sort(rng.uniform(0.01 * y, 0.01 * y + 0.01, k)) for y, k in zip(labels, lengths)]
        units = [rng.integers(10 * y, 10 * y + 10, k) for y, k in zip(labels, lengths)]
        write_h5(root / f"tiny_{split}.h5", times, units, labels)
    return str(root / "tiny")


def study_of(out: Path, name: str):
    return optuna.load_study(study_name=name, storage=f"sqlite:///{out / (name + '.db')}")


def tune_args(tiny_data, out, *extra):
    return ["tune", *TINY, "--dataset", tiny_data, "--out", str(out), "--study", "s", *extra]


# ---------------------------------------------------------------------------------------------
# Search spaces (no runs).


@dataclasses.dataclass
class EventPropLike(NetworkHparams):
    """Declares its own ranges, as a method's Hparams does."""

    lr: float = dataclasses.field(
        default=1e-3, metadata={"search": {"low": 1e-4, "high": 5e-3, "log": True}})
    reg_strength: float = dataclasses.field(
        default=5e-10, metadata={"search": {"factor": 10.0, "log": True}})
    reg_nu: float = dataclasses.field(
        default=14.0, metadata={"search": {"low": 5.0, "high": 30.0, "on": False}})


def test_space_is_built_from_the_fields_the_method_has():
    space = search_spaces.space_for(EventPropLike)
    for name in ("lr", "tau_mem", "tau_syn", "gauss_mu", "gauss_sigma", "aug_shift", "aug_blend",
                 "reg_strength"):
        assert name in space
    assert "surrogate_slope" not in space and "reg_nu" not in space
    reg = space["reg_strength"]
    assert reg.log and reg.low == pytest.approx(5e-11) and reg.high == pytest.approx(5e-9)
    assert space["tau_mem"].low > space["tau_syn"].high  # never tau_m == tau_s
    with_fixed = search_spaces.space_for(EventPropLike, fixed={"lr": 1e-3})
    assert "lr" not in with_fixed
    assert list(search_spaces.space_for(EventPropLike, params="lr,tau_mem")) == ["lr", "tau_mem"]
    changed = search_spaces.space_for(EventPropLike, params="+aug_dropout,-aug_blend")
    assert "aug_dropout" in changed and "aug_blend" not in changed
    assert "lr_schedule" not in space  # off unless asked for
    scheduled = search_spaces.space_for(EventPropLike, params="+lr_schedule")["lr_schedule"]
    assert scheduled.kind == "categorical" and set(scheduled.choices) == {"constant", "cosine"}
    with pytest.raises(InputError):
        search_spaces.space_for(EventPropLike, params="surrogate_slope")


def test_window_parameters_are_drawn_only_for_the_gauss_window_readout():
    space = search_spaces.space_for(EventPropLike, params="lr,gauss_mu,gauss_sigma")
    study = optuna.create_study()
    defaults = search_spaces.defaults_of(EventPropLike)
    drawn = search_spaces.sample(space, study.ask(), defaults)
    assert set(drawn) == {"lr"}
    drawn = search_spaces.sample(space, study.ask(), {**defaults, "loss": "gauss_window"})
    assert set(drawn) == {"lr", "gauss_mu", "gauss_sigma"}
    assert 0.2 <= drawn["gauss_mu"] <= 0.9


# ---------------------------------------------------------------------------------------------
# Studies that run (a few seconds per trial, most of it the run's process starting).


def test_tiny_tune_runs_then_resumes_without_repeating_trials(tiny_data, tmp_path, capsys):
    from bench.cli import main

    out = tmp_path / "studies"
    assert main(tune_args(tiny_data, out, "--trials", "2")) == 0
    printed = capsys.readouterr().out
    assert "reproduce: python -m bench run --method bptt-snntorch" in printed
    assert "--set hidden=8" in printed and "--set lr=" in printed
    study = study_of(out, "s")
    assert [t.state.name for t in study.trials] == ["COMPLETE", "COMPLETE"]
    first = {t.number: t.params for t in study.trials}
    for trial in study.trials:
        record = json.loads(Path(trial.user_attrs["record"]).read_text())
        assert record["tags"] == {"study": "s", "trial": str(trial.number)}
        assert trial.value == record["metrics"]["best_valid_acc"]  # validation, never test
        assert trial.intermediate_values == {1: record["curve"][0]["valid_acc"]}
        assert {f"{k}={tune_trial.format_value(v)}" for k, v in trial.params.items()} <= set(
            trial.user_attrs["overrides"])

    assert main(tune_args(tiny_data, out, "--trials", "3")) == 0
    assert "this worker ran 1" in capsys.readouterr().out
    study = study_of(out, "s")
    assert len(study.trials) == 3
    assert {t.number: t.params for t in study.trials[:2]} == first
    assert len(list((out / "s" / "runs").glob("*.json"))) == 3
    curve = tune_curve.tuning_curve(str(out / "s.db"), "s")
    assert list(curve["n"]) == [1, 2, 3]
    assert curve["best_so_far"].is_monotonic_increasing
    assert (out / "s-curve.csv").exists() and (out / "s-curve.png").exists()
    assert not (out / "s" / "trials").exists()  # scratch directories are cleaned up


def test_two_workers_share_one_sqlite_study(tiny_data, tmp_path):
    out = tmp_path / "studies"
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    cmd = [sys.executable, "-m", "bench", *tune_args(tiny_data, out, "--trials", "3")]
    workers = [subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=subprocess.PIPE,
                                stderr=subprocess.STDOUT, text=True) for _ in range(2)]
    outputs = [w.communicate(timeout=600)[0] for w in workers]
    assert [w.returncode for w in workers] == [0, 0], outputs
    study = study_of(out, "s")
    counted = [t for t in study.trials if tune_worker.counted(t)]
    assert len(counted) == 3 and all(t.state.name == "COMPLETE" for t in counted)
    assert len(list((out / "s" / "runs").glob("*.json"))) == 3
    ran = sorted(int(o.split("this worker ran ")[1].split()[0]) for o in outputs)
    assert sum(ran) == 3


def test_a_failed_run_is_a_failed_trial_not_a_zero(tiny_data, tmp_path, capsys):
    from bench.cli import main

    out = tmp_path / "studies"
    code = main(tune_args(tiny_data, out, "--trials", "1", "--time-limit", "0.000001"))
    assert code == 1  # no trial completed
    (trial,) = study_of(out, "s").trials
    assert trial.state.name == "FAIL" and trial.value is None
    assert trial.user_attrs["outcome"] == "timeout" and trial.user_attrs["record"]
    assert tune_worker.counted(trial)  # it used up its slot: a resumed study does not redo it


def test_bad_input_is_refused_before_any_trial(tiny_data, tmp_path):
    from bench.cli import main

    out = tmp_path / "studies"
    assert main(tune_args(tiny_data, out, "--trials", "1", "--set", "nonsense=1")) == 2
    assert main(tune_args(tiny_data, out, "--trials", "1", "--params", "warp")) == 2
    assert main(tune_args(tiny_data, out)) == 2  # --trials missing
    assert not (out / "s.db").exists()


def test_a_study_refuses_another_method(tiny_data, tmp_path):
    from bench.cli import main

    out = tmp_path / "studies"
    storage = tune_storage.open_storage(tune_storage.storage_url(None, out, "s"))
    study = optuna.create_study(storage=storage, study_name="s", direction="maximize")
    study.set_user_attr("method", "eventprop")
    assert main(tune_args(tiny_data, out, "--trials", "1")) == 2


# ---------------------------------------------------------------------------------------------
# Pruning from the progress file of a running trial (a fake run: no framework, no training).

FAKE_RUN = textwrap.dedent("""
    import json, os, sys, time
    folder = os.path.join(sys.argv[1], "progress")
    os.makedirs(folder, exist_ok=True)
    path = os.path.join(folder, "k.json")
    curve = []
    for epoch in range(1, 100):
        curve.append({"epoch": epoch, "valid_acc": 0.1})
        with open(path + ".tmp", "w") as f:
            json.dump({"run_key": "k", "status": "running", "epoch": epoch, "epochs": 99,
                       "valid_acc": 0.1, "curve": curve}, f)
        os.replace(path + ".tmp", path)
        time.sleep(0.3)
""")


def test_a_running_trial_is_pruned_from_its_progress_file(tmp_path):
    tune_storage.quiet_optuna()
    storage = tune_storage.open_storage(tune_storage.storage_url(None, tmp_path, "p"))
    study = optuna.create_study(storage=storage, study_name="p", direction="maximize",
                                pruner=optuna.pruners.ThresholdPruner(lower=0.5))
    trial = study.ask()
    run_out = tmp_path / "runs"
    proc = subprocess.Popen([sys.executable, "-c", FAKE_RUN, str(run_out)],
                            start_new_session=True)
    pruned, reported = tune_trial.watch(trial, proc, run_out, prune=True, poll_s=0.2)
    assert pruned and reported >= 1
    assert proc.poll() is not None  # the run was stopped
    frozen = study.trials[0]
    assert frozen.intermediate_values[1] == pytest.approx(0.1)


def test_progress_reader_reads_plain_json_only(tmp_path):
    out = tmp_path / "runs"
    assert launcher.progress_curve(out) == []  # nothing written yet
    (out / "progress").mkdir(parents=True)
    path = out / "progress" / "abc.json"
    path.write_text(json.dumps({"run_key": "abc", "status": "running", "epoch": 1,
                                "curve": [{"epoch": 1, "valid_acc": 0.3}]}))
    assert launcher.progress_curve(out) == [{"epoch": 1, "valid_acc": 0.3}]
    assert launcher.read_progress(path)["status"] == "running"
    path.write_text('{"run_key": "abc", "curve": [{"epo')  # half-written: not read, no error
    assert launcher.read_progress(path) is None and launcher.progress_curve(out) == []
    path.write_text('["not", "a", "progress", "file"]')
    assert launcher.read_progress(path) is None
    path.write_bytes(b"\x80\x04\x95cos\nsystem\n")  # a pickle is never unpickled
    assert launcher.read_progress(path) is None
    assert launcher.read_progress(tmp_path / "missing.json") is None


def test_tuning_curve_best_so_far(tmp_path):
    url = tune_storage.storage_url(None, tmp_path, "c")
    study = optuna.create_study(storage=url, study_name="c", direction="maximize")
    for value in (0.2, 0.5, 0.4, None, 0.7):
        trial = study.ask()
        trial.suggest_float("lr", 1e-4, 1e-2, log=True)
        if value is None:
            study.tell(trial, state=optuna.trial.TrialState.FAIL)
        else:
            study.tell(trial, value)
    curve = tune_curve.tuning_curve(str(tmp_path / "c.db"), "c")
    assert list(curve["state"]) == ["COMPLETE"] * 3 + ["FAIL", "COMPLETE"]
    np.testing.assert_allclose(curve["best_so_far"], [0.2, 0.5, 0.5, 0.5, 0.7])
    assert curve["compute_s"].is_monotonic_increasing and "param.lr" in curve
    csv, png = tune_curve.save_curve(curve, tmp_path / "c-curve", title="c")
    assert csv.read_text().startswith("n,number,state")
    assert png.stat().st_size > 0


@pytest.mark.parametrize("kind", ["tpe", "gp"])
def test_samplers_draw_the_method_space(kind):
    """Both samplers past their random start-up trials, on the shared network's space."""
    tune_storage.quiet_optuna()
    space = search_spaces.space_for(EventPropLike, params="+loss")
    defaults = search_spaces.defaults_of(EventPropLike)
    study = optuna.create_study(direction="maximize")
    for number in range(11):
        study.sampler = tune_worker.make_sampler(kind, number)
        trial = study.ask()
        drawn = search_spaces.sample(space, trial, defaults)
        assert 1e-4 <= drawn["lr"] <= 5e-3 and drawn["tau_syn"] < drawn["tau_mem"]
        assert ("gauss_mu" in drawn) == (drawn["loss"] == "gauss_window")
        study.tell(trial, -abs(np.log10(drawn["lr"]) + 3))
    assert len(study.trials) == 11


def test_unknown_storage_scheme_is_refused_before_anything(tiny_data, tmp_path, capsys):
    from bench.cli import main

    out = tmp_path / "studies"
    assert main(tune_args(tiny_data, out, "--trials", "1", "--storage", "banana://x")) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "unknown URL scheme 'banana'" in err[0]
    assert not out.exists()


def test_journal_storage_holds_a_study(tmp_path):
    """The storage for shared file systems: one journal file and a lock file beside it."""
    url = tune_storage.storage_url(tmp_path / "j" / "study.log", tmp_path, "j")
    assert url.startswith("journal:///")
    assert tune_storage.storage_url(url, tmp_path, "j") == url
    storage = tune_storage.open_storage(url)
    assert not tune_storage.supports_heartbeat(storage)
    study = optuna.create_study(storage=storage, study_name="j", direction="maximize")
    for value in (0.3, 0.6):
        trial = study.ask()
        trial.suggest_float("lr", 1e-4, 1e-2, log=True)
        study.tell(trial, value)
    again = optuna.load_study(study_name="j", storage=tune_storage.open_storage(url))
    assert [t.value for t in again.trials] == [0.3, 0.6]
    curve = tune_curve.tuning_curve(url, "j")
    np.testing.assert_allclose(curve["best_so_far"], [0.3, 0.6])


def test_two_workers_through_submitit_share_one_journal_study(tiny_data, tmp_path, capsys):
    if importlib.util.find_spec("submitit") is None:  # imported by the engine, not here
        pytest.skip("submitit is not installed")
    from bench.cli import main

    out = tmp_path / "studies"
    assert main(tune_args(tiny_data, out, "--trials", "2", "--executor", "slurm",
                          "--slurm-cluster", "local", "--workers", "2")) == 0
    printed = capsys.readouterr()
    assert "this worker ran 0" in printed.out and "best validation accuracy" in printed.out
    assert printed.err.count("exit status 0") == 2
    study = optuna.load_study(study_name="s",
                              storage=tune_storage.open_storage(f"journal:///{out.resolve()}/s.log"))
    counted = [t for t in study.trials if tune_worker.counted(t)]
    assert len(counted) == 2 and all(t.state.name == "COMPLETE" for t in counted)
    assert len(list((out / "s" / "runs").glob("*.json"))) == 2
    assert not (out / "s.db").exists()
