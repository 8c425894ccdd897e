"""`bench tune`: search spaces, a tiny study that resumes, two workers on one SQLite study,
failed trials, pruning from checkpoints, tuning curves."""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import pickle
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

optuna = pytest.importorskip("optuna")

from bench import search_spaces, tune  # noqa: E402
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
    reg_strength: float = 5e-10
    reg_nu: float = 14.0


def test_space_is_built_from_the_fields_the_method_has():
    space = search_spaces.space_for(EventPropLike, "eventprop")
    for name in ("lr", "tau_mem", "tau_syn", "gauss_mu", "gauss_sigma", "aug_shift", "aug_blend",
                 "reg_strength"):
        assert name in space
    assert "surrogate_slope" not in space and "reg_nu" not in space
    reg = space["reg_strength"]
    assert reg.log and reg.low == pytest.approx(5e-11) and reg.high == pytest.approx(5e-9)
    assert space["tau_mem"].low > space["tau_syn"].high  # never tau_m == tau_s
    with_fixed = search_spaces.space_for(EventPropLike, "eventprop", fixed={"lr": 1e-3})
    assert "lr" not in with_fixed
    assert list(search_spaces.space_for(EventPropLike, params="lr,tau_mem")) == ["lr", "tau_mem"]
    changed = search_spaces.space_for(EventPropLike, params="+aug_dropout,-aug_blend")
    assert "aug_dropout" in changed and "aug_blend" not in changed
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
        assert {f"{k}={tune._format_value(v)}" for k, v in trial.params.items()} <= set(
            trial.user_attrs["overrides"])

    assert main(tune_args(tiny_data, out, "--trials", "3")) == 0
    assert "this worker ran 1" in capsys.readouterr().out
    study = study_of(out, "s")
    assert len(study.trials) == 3
    assert {t.number: t.params for t in study.trials[:2]} == first
    assert len(list((out / "s" / "runs").glob("*.json"))) == 3
    curve = tune.tuning_curve(str(out / "s.db"), "s")
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
    counted = [t for t in study.trials if tune._counted(t)]
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
    assert tune._counted(trial)  # it used up its slot: a resumed study does not redo it


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
    storage = tune.open_storage(tune.storage_url(None, out, "s"))
    study = optuna.create_study(storage=storage, study_name="s", direction="maximize")
    study.set_user_attr("method", "eventprop")
    assert main(tune_args(tiny_data, out, "--trials", "1")) == 2


# ---------------------------------------------------------------------------------------------
# Pruning from the checkpoints of a running trial (a fake run: no framework, no training).

FAKE_RUN = textwrap.dedent("""
    import os, pickle, sys, time
    ck = sys.argv[1]
    os.makedirs(os.path.dirname(ck), exist_ok=True)
    curve = []
    for epoch in range(1, 100):
        curve.append({"epoch": epoch, "valid_acc": 0.1})
        with open(ck + ".tmp", "wb") as f:
            pickle.dump({"epoch": epoch, "curve": curve, "method": {"w": Exception("w")}}, f)
        os.replace(ck + ".tmp", ck)
        time.sleep(0.3)
""")


def test_a_running_trial_is_pruned_from_its_checkpoint(tmp_path):
    tune._quiet_optuna()
    storage = tune.open_storage(tune.storage_url(None, tmp_path, "p"))
    study = optuna.create_study(storage=storage, study_name="p", direction="maximize",
                                pruner=optuna.pruners.ThresholdPruner(lower=0.5))
    trial = study.ask()
    tuner = tune.Tuner.__new__(tune.Tuner)
    tuner.args = argparse.Namespace(pruner="threshold")
    tuner.storage = storage
    checkpoints = tmp_path / "checkpoints"
    proc = subprocess.Popen([sys.executable, "-c", FAKE_RUN, str(checkpoints / "run.pkl")],
                            start_new_session=True)
    pruned, reported = tuner._watch(trial, proc, checkpoints)
    assert pruned and reported >= 1
    assert proc.poll() is not None  # the run was stopped
    frozen = study.trials[0]
    assert frozen.intermediate_values[1] == pytest.approx(0.1)


def test_checkpoint_reader_needs_no_framework(tmp_path):
    class Tensorish:  # an object of a module the reader refuses to import
        def __reduce__(self):
            return (os.path.join, ("a", "b"))

    path = tmp_path / "c.pkl"
    with open(path, "wb") as handle:
        pickle.dump({"curve": [{"epoch": 1, "valid_acc": 0.3}], "method": {"w": Tensorish()}}, handle)
    assert tune.read_checkpoint_curve(path) == [{"epoch": 1, "valid_acc": 0.3}]
    assert tune.read_checkpoint_curve(tmp_path / "missing.pkl") is None


def test_tuning_curve_best_so_far(tmp_path):
    url = tune.storage_url(None, tmp_path, "c")
    study = optuna.create_study(storage=url, study_name="c", direction="maximize")
    for value in (0.2, 0.5, 0.4, None, 0.7):
        trial = study.ask()
        trial.suggest_float("lr", 1e-4, 1e-2, log=True)
        if value is None:
            study.tell(trial, state=optuna.trial.TrialState.FAIL)
        else:
            study.tell(trial, value)
    curve = tune.tuning_curve(str(tmp_path / "c.db"), "c")
    assert list(curve["state"]) == ["COMPLETE"] * 3 + ["FAIL", "COMPLETE"]
    np.testing.assert_allclose(curve["best_so_far"], [0.2, 0.5, 0.5, 0.5, 0.7])
    assert curve["compute_s"].is_monotonic_increasing and "param.lr" in curve
    csv, png = tune.save_curve(curve, tmp_path / "c-curve", title="c")
    assert csv.read_text().startswith("n,number,state")
    assert png.stat().st_size > 0


@pytest.mark.parametrize("kind", ["tpe", "gp"])
def test_samplers_draw_the_method_space(kind):
    """Both samplers past their random start-up trials, on the shared network's space."""
    tune._quiet_optuna()
    space = search_spaces.space_for(EventPropLike, "eventprop", params="+loss")
    defaults = search_spaces.defaults_of(EventPropLike)
    study = optuna.create_study(direction="maximize")
    for number in range(11):
        study.sampler = tune._sampler(kind, number)
        trial = study.ask()
        drawn = search_spaces.sample(space, trial, defaults)
        assert 1e-4 <= drawn["lr"] <= 5e-3 and drawn["tau_syn"] < drawn["tau_mem"]
        assert ("gauss_mu" in drawn) == (drawn["loss"] == "gauss_window")
        study.tell(trial, -abs(np.log10(drawn["lr"]) + 3))
    assert len(study.trials) == 11
