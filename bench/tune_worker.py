"""One worker of a tuning study: asks the study for trials, runs each (:mod:`bench.tune_trial`)
and tells the results, until the study holds ``--trials`` counted trials.

``--trials`` is the study's total: a worker stops when the study holds that many trials that
finished (or are in flight with another worker), so a resumed or shared study never runs more.
Trials failed for reasons that are not the configuration's (an interrupted worker, a run that
never started) are redone.
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import time
from pathlib import Path

from bench import launcher
from bench.tune_storage import (HEARTBEAT_S, open_storage, quiet_optuna, retry, storage_url,
                                supports_heartbeat)
from bench.tune_trial import (TrialResult, collect, format_value, judge, progress_line,
                              run_trial, say, scratch_folder)
from datasets.types import InputError

MAX_CONSECUTIVE_ERRORS = 3  # runs that end without a record (bad input, crash at start)
COUNTED_FAILURES = ("failed", "diverged", "timeout")  # run outcomes that count as a finished trial


def make_sampler(kind: str, seed: int):
    import optuna

    if kind == "gp":
        return optuna.samplers.GPSampler(seed=seed, n_startup_trials=10)
    return optuna.samplers.TPESampler(seed=seed, multivariate=True, group=True, constant_liar=True,
                                      n_startup_trials=10)


def make_pruner(kind: str, epochs: int | None):
    import optuna

    if kind == "none":
        return optuna.pruners.NopPruner()
    if kind == "hyperband":
        return optuna.pruners.HyperbandPruner(min_resource=1, max_resource=epochs or "auto")
    warmup = max(1, (epochs or 20) // 4)  # no pruning in the first quarter of the budget
    return optuna.pruners.MedianPruner(n_startup_trials=5, n_warmup_steps=warmup)


def counted(trial) -> bool:
    """A trial that uses up one of the study's ``--trials``: finished with a result, or in
    flight."""
    from optuna.trial import TrialState

    if trial.state in (TrialState.COMPLETE, TrialState.PRUNED, TrialState.RUNNING):
        return True
    return trial.state == TrialState.FAIL and trial.user_attrs.get("outcome") in COUNTED_FAILURES


def dataset_argument(dataset: str) -> str:
    """A dataset path made absolute (trials run from their own folders); a name as given."""
    return str(Path(dataset).resolve()) if os.sep in dataset or Path(dataset).exists() else dataset


class Tuner:
    """One worker of a study."""

    def __init__(self, args: argparse.Namespace, space, fixed: dict, defaults: dict, name: str):
        import optuna

        quiet_optuna()
        self.args, self.space, self.fixed, self.name = args, space, fixed, name
        self.context = {**defaults, **fixed}
        self.out = Path(args.out)
        self.url = storage_url(args.storage, self.out, self.name)
        self.storage = open_storage(self.url)
        self.heartbeat = supports_heartbeat(self.storage)
        self.home = self.out / self.name
        self.runs_dir = self.home / "runs"
        self.fixed_pairs = [f"{k}={format_value(v)}" for k, v in fixed.items()]
        self.dataset_arg = dataset_argument(args.dataset)
        self.study = retry(optuna.create_study, storage=self.storage, study_name=self.name,
                           direction="maximize", sampler=make_sampler(args.sampler, args.seed),
                           pruner=make_pruner(args.pruner, args.budget_epochs), load_if_exists=True)
        self._check_study()
        self.ran = 0
        self.errors_in_row = 0

    # -- study bookkeeping --------------------------------------------------------------------
    def _check_study(self) -> None:
        settings = {"method": self.args.method, "dataset": self.dataset_arg,
                    "budget_epochs": self.args.budget_epochs, "seed": self.args.seed,
                    "fixed": sorted(self.fixed_pairs)}
        stored = retry(lambda: dict(self.study.user_attrs))
        if not stored.get("method"):
            for key, value in settings.items():
                retry(self.study.set_user_attr, key, value)
            return
        for key in ("method", "dataset", "budget_epochs"):
            if stored.get(key) != settings[key]:
                raise InputError(
                    f"study {self.name!r} in {self.url} was made with {key}={stored.get(key)!r}, "
                    f"not {settings[key]!r}; choose another --study")
        for key in ("seed", "fixed"):
            if stored.get(key) != settings[key]:
                say(f"warning: study {self.name!r} was made with {key}={stored.get(key)!r}; "
                    f"this worker uses {settings[key]!r}")

    def trials(self):
        return retry(self.study.get_trials, deepcopy=False)

    def _beat(self, trial) -> None:
        if not self.heartbeat:
            return
        try:
            retry(self.storage.record_heartbeat, trial._trial_id)
        except Exception as exc:  # a missed heartbeat only risks the trial being seen as stale
            say(f"warning: heartbeat not recorded: {exc}")

    # -- the loop -----------------------------------------------------------------------------
    def run(self) -> None:
        import optuna
        from optuna.trial import TrialState

        target = self.args.trials
        while True:
            if self.heartbeat:
                retry(optuna.storages.fail_stale_trials, self.study)
            trials = self.trials()
            if sum(counted(t) for t in trials) >= target:
                break
            # A sampler seeded from the study's size: reproducible for one worker, and distinct
            # proposals for workers asking one after another.
            self.study.sampler = make_sampler(self.args.sampler, self.args.seed * 100_003 + len(trials))
            started = time.monotonic()
            trial = retry(self.study.ask)
            self._beat(trial)
            earlier = [t for t in self.trials() if t.number < trial.number and counted(t)]
            if len(earlier) >= target:  # another worker took the last slot meanwhile
                retry(trial.set_user_attr, "outcome", "surplus")
                retry(self.study.tell, trial, state=TrialState.FAIL, skip_if_finished=True)
                break
            self._run_trial(trial, started)

    def command(self, trial, overrides: list[str], run_out: Path) -> list[str]:
        a = self.args
        return launcher.run_command(
            method=a.method, dataset=self.dataset_arg, seed=a.seed, out=run_out, threads=a.threads,
            device=a.device, epochs=a.budget_epochs, time_limit=a.time_limit,
            tags=[("study", self.name), ("trial", str(trial.number))], overrides=overrides)

    def _run_trial(self, trial, started: float) -> None:
        from bench import search_spaces

        drawn = search_spaces.sample(self.space, trial, self.context)
        scratch = scratch_folder(self.home, trial.number)
        run_out = scratch / "runs"
        log_path = self.home / "logs" / f"trial-{trial.number:05d}.log"
        overrides = self.fixed_pairs + [f"{k}={format_value(v)}" for k, v in drawn.items()]
        retry(trial.set_user_attr, "overrides", overrides)
        say(f"trial {trial.number}: " + " ".join(f"{k}={format_value(v)}" for k, v in drawn.items()))
        try:
            result = run_trial(trial, self.command(trial, overrides, run_out), run_out, log_path,
                               prune=self.args.pruner != "none", beat=lambda: self._beat(trial),
                               beat_every=HEARTBEAT_S / 2)
        except KeyboardInterrupt:
            result = TrialResult(outcome="interrupted", error="interrupted", log_path=log_path)
            result.record, result.record_path = collect(run_out, self.runs_dir)
            self._finish(trial, result, scratch, started)
            raise
        result.record, result.record_path = collect(run_out, self.runs_dir)
        self._finish(trial, result, scratch, started)

    def _finish(self, trial, result: TrialResult, scratch: Path, started: float) -> None:
        from optuna.trial import TrialState

        judge(trial, result, started)
        for key, val in result.attrs.items():
            retry(trial.set_user_attr, key, val)
        states = {"ok": TrialState.COMPLETE, "pruned": TrialState.PRUNED}
        state = states.get(result.outcome or "", TrialState.FAIL)
        try:
            retry(self.study.tell, trial, result.value if state == TrialState.COMPLETE else None,
                  state=state, skip_if_finished=True)
        except Exception as exc:
            say(f"warning: trial {trial.number} could not be told: {exc}")
        shutil.rmtree(scratch, ignore_errors=True)
        try:
            scratch.parent.rmdir()  # the trials directory, when no other trial is in flight
        except OSError:
            pass
        wall = time.monotonic() - started
        overhead = None if result.run_wall is None else wall - result.run_wall
        self.ran += 1
        say(progress_line(trial, result, self.best_value(), wall, overhead))
        if result.outcome == "error":
            self.errors_in_row += 1
            if self.errors_in_row >= MAX_CONSECUTIVE_ERRORS:
                raise InputError(f"{self.errors_in_row} trials in a row ended without a record; "
                                 f"last: {result.error} (log: {result.log_path})")
        elif result.outcome != "interrupted":
            self.errors_in_row = 0

    def best_value(self) -> float | None:
        try:
            return self.study.best_value
        except ValueError:
            return None


def summarise(tuner: Tuner, reproduce, curve_files) -> int:
    """Print the study's state and best trial; 1 when no trial completed."""
    from optuna.trial import TrialState

    trials = tuner.trials()
    states = {s: sum(t.state == s for t in trials) for s in TrialState}
    done = (f"{states[TrialState.COMPLETE]} complete, {states[TrialState.PRUNED]} pruned, "
            f"{sum(counted(t) for t in trials if t.state == TrialState.FAIL)} failed runs")
    print(f"study {tuner.name} ({tuner.url}): {done}; this worker ran {tuner.ran}")
    complete = [t for t in trials if t.state == TrialState.COMPLETE]
    if not complete:
        print("no trial completed: no best hyperparameters")
        return 1
    best = max(complete, key=lambda t: (t.value, -t.number))
    print(f"best validation accuracy {best.value:.4f} (trial {best.number})")
    for key, value in best.params.items():
        print(f"  {key} = {format_value(value)}")
    if tuner.fixed_pairs:
        print(f"  fixed: {' '.join(tuner.fixed_pairs)}")
    print(f"record: {best.user_attrs.get('record')}")
    print(f"reproduce: {reproduce(best)}")
    if curve_files:
        print(f"tuning curve: {curve_files[0]} {curve_files[1]}")
    sys.stdout.flush()
    return 0
