"""``python -m bench tune``: hyperparameter search with optuna, one ordinary run per trial.

Each trial is a normal ``python -m bench run`` in its own process (one run per process, as for
every measurement of the suite), with its own record tagged ``study=<name>`` and
``trial=<number>``. The objective is the run's best validation accuracy (never the test
accuracy). A run that fails, diverges or times out marks its trial FAIL, never a score of 0.

While a trial runs, the tuner reads the validation accuracy of each finished epoch from the
run's checkpoint and reports it to the pruner; a pruned run is stopped (SIGINT: the run writes
a record with status ``failed``, error "interrupted by the user") and its trial marked PRUNED.

The study lives in a database (default: the SQLite file ``reports/studies/<study>.db``), so an
interrupted study resumes where it stopped and several workers (processes on one machine with
the SQLite file, or machines sharing a database server URL) can work on one study. ``--trials``
is the study's total: a worker stops when the study holds that many trials that finished (or
are in flight with another worker), so a resumed or shared study never runs more.

Files (``--out``, default ``reports/studies``)::

    <study>.db               the study (default storage)
    <study>/runs/*.json      the records of its trials
    <study>/logs/*.log       each trial's console output
    <study>-curve.csv, .png  best-so-far validation accuracy against trials and compute time

:func:`tuning_curve` gives the curve as a DataFrame, for reports.
"""

from __future__ import annotations

import argparse
import os
import pickle
import random
import re
import shlex
import shutil
import signal
import subprocess
import sys
import time
import uuid
import warnings
from pathlib import Path
from typing import Any

from datasets.types import InputError

PROJECT_ROOT = Path(__file__).resolve().parent.parent
DEFAULT_OUT = "reports/studies"
HEARTBEAT_S = 20  # a worker's trial is stale (its worker gone) after GRACE_S without heartbeat
GRACE_S = 120
SQLITE_TIMEOUT_S = 60
POLL_S = 1.0
MAX_CONSECUTIVE_ERRORS = 3  # runs that end without a record (bad input, crash at start)
COUNTED_FAILURES = ("failed", "diverged", "timeout")  # run outcomes that count as a finished trial


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--method", required=True, help="a registered method (see `bench list`)")
    parser.add_argument("--dataset", default="synthetic",
                        help="synthetic (default), shd, ssc, or a path to <name>_{train,test}.h5 files")
    parser.add_argument("--trials", type=int, default=None,
                        help="total number of trials the study should hold (required)")
    parser.add_argument("--budget-epochs", type=int, default=None, metavar="E",
                        help="epochs per trial (default: the method's, else the dataset's budget)")
    parser.add_argument("--storage", default=None,
                        help="optuna database URL or SQLite file (default: <out>/<study>.db)")
    parser.add_argument("--study", default=None, help="study name (default: <method>-<dataset>)")
    parser.add_argument("--sampler", choices=("tpe", "gp"), default="tpe",
                        help="tpe: tree-structured Parzen estimator (default); gp: Gaussian process")
    parser.add_argument("--pruner", choices=("median", "hyperband", "none"), default="median",
                        help="stop unpromising trials early, from their per-epoch validation accuracy")
    parser.add_argument("--seed", type=int, default=0,
                        help="seed of every trial's run and of the sampler")
    parser.add_argument("--threads", type=int, default=1, help="CPU threads of each run (default 1)")
    parser.add_argument("--device", choices=("cpu", "cuda"), default="cpu")
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                        help="fix a hyperparameter for every trial (repeatable); it is not tuned")
    parser.add_argument("--params", default=None, metavar="NAMES",
                        help="what to tune: 'a,b,c' exactly these, or '+a,-b' changes to the "
                             "default set (see --show-space)")
    parser.add_argument("--time-limit", type=float, default=None, metavar="SECONDS",
                        help="wall-clock limit of each trial's training (the run ends as timeout)")
    parser.add_argument("--out", default=DEFAULT_OUT,
                        help=f"directory for the study, its records and curves (default {DEFAULT_OUT})")
    parser.add_argument("--show-space", action="store_true",
                        help="print the search space of the method and exit")


# ---------------------------------------------------------------------------------------------
# Entry point.


def main(args: argparse.Namespace) -> int:
    from bench import registry, search_spaces
    from methods.api import make_hparams, parse_overrides

    method_cls = registry.load_method(args.method)
    fixed = parse_overrides(method_cls.Hparams, args.overrides)
    make_hparams(method_cls.Hparams, dict(fixed))  # the fixed values alone must be valid
    space = search_spaces.space_for(method_cls.Hparams, args.method, params=args.params, fixed=fixed)
    if args.show_space:
        _print_space(args.method, method_cls.Hparams, space, fixed)
        return 0
    if args.trials is None or args.trials < 1:
        raise InputError("--trials must be given, at least 1")
    if args.budget_epochs is not None and args.budget_epochs < 1:
        raise InputError("--budget-epochs must be at least 1")
    if args.threads < 1:
        raise InputError("--threads must be at least 1")
    if not space:
        raise InputError("nothing to tune: the search space is empty (see --show-space)")

    tuner = Tuner(args, space, fixed, search_spaces.defaults_of(method_cls.Hparams))
    previous = signal.getsignal(signal.SIGTERM)
    signal.signal(signal.SIGTERM, _terminate)
    try:
        tuner.run()
    finally:
        signal.signal(signal.SIGTERM, previous)
        tuner.save_curve()
    return tuner.summarise()


def _default_sigint() -> None:
    """In a run's process: SIGINT interrupts it (and it writes its record) even when the tuner
    was started with SIGINT ignored (in the background, under nohup)."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def _terminate(signum, frame):  # SIGTERM (a scheduler's stop) ends the worker like Ctrl-C
    raise KeyboardInterrupt


def _print_space(method: str, hparams_cls, space, fixed) -> None:
    from bench import search_spaces

    available = search_spaces.full_space(hparams_cls, method)
    print(f"search space of {method} (tuned now: *):")
    for name, param in available.items():
        mark = "*" if name in space else " "
        note = " (fixed by --set)" if name in fixed else "" if param.on else " (off by default)"
        print(f"  {mark} {name:16s} {param.describe()}{note}")


# ---------------------------------------------------------------------------------------------
# Storage: SQLite by default, with a lock timeout and retries.


def _safe_name(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "_", text).strip("._") or "study"


def default_study_name(method: str, dataset: str) -> str:
    return _safe_name(f"{method}-{Path(dataset).name if os.sep in dataset else dataset}")


def storage_url(storage: str | os.PathLike | None, out: str | os.PathLike, study: str) -> str:
    """A database URL: ``storage`` as given when it is a URL, a SQLite file path made into a
    URL, or ``<out>/<study>.db``."""
    if storage is not None and "://" in str(storage):
        return str(storage)
    path = Path(storage) if storage is not None else Path(out) / f"{study}.db"
    path.parent.mkdir(parents=True, exist_ok=True)
    return f"sqlite:///{path.resolve()}"


def _is_lock_error(exc: BaseException) -> bool:
    text = f"{type(exc).__name__}: {exc}".lower()
    return "database is locked" in text or "database table is locked" in text or "busy" in text


def retry(fn, *args, attempts: int = 8, **kwargs):
    """Call ``fn``, retrying with a random back-off while the database reports a lock."""
    for attempt in range(attempts):
        try:
            return fn(*args, **kwargs)
        except Exception as exc:
            if attempt == attempts - 1 or not _is_lock_error(exc):
                raise
            time.sleep(random.uniform(0.1, 0.5) * 2 ** attempt)
    raise AssertionError("unreachable")


def open_storage(url: str, heartbeat: bool = True):
    """An optuna RDBStorage; SQLite connections wait up to SQLITE_TIMEOUT_S for a lock."""
    import optuna

    kwargs: dict[str, Any] = {}
    if url.startswith("sqlite"):
        kwargs["engine_kwargs"] = {"connect_args": {"timeout": SQLITE_TIMEOUT_S}}
    if heartbeat:
        kwargs.update(heartbeat_interval=HEARTBEAT_S, grace_period=GRACE_S)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        for attempt in range(6):
            try:
                return retry(optuna.storages.RDBStorage, url, **kwargs)
            except Exception as exc:
                # Two workers creating a new database race to create its tables; the loser
                # finds them made on its next attempt.
                if attempt == 5 or not _is_creation_race(exc):
                    raise
                time.sleep(random.uniform(0.2, 1.0))
    raise AssertionError("unreachable")


def _is_creation_race(exc: BaseException) -> bool:
    text = f"{type(exc).__name__}: {exc}".lower()
    return ("unique constraint" in text or "already exists" in text or "integrityerror" in text
            or "duplicate" in text or _is_lock_error(exc))


def _quiet_optuna() -> None:
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    warnings.filterwarnings("ignore", category=optuna.exceptions.ExperimentalWarning)
    # Heartbeats are recorded by Tuner._watch while a trial runs, not by Study.optimize.
    warnings.filterwarnings("ignore", message="Heartbeat of storage is supposed to be used")


# ---------------------------------------------------------------------------------------------
# Reading a running trial's progress from its checkpoint without importing its framework.


class _Opaque:
    """Stands for any object of a framework (tensors, arrays of jax) inside a checkpoint."""

    def __init__(self, *args, **kwargs):
        pass

    def __call__(self, *args, **kwargs):
        return _Opaque()

    def __setstate__(self, state):
        pass

    def __setitem__(self, key, value):
        pass

    def append(self, value):
        pass

    def extend(self, values):
        pass


class _LightUnpickler(pickle.Unpickler):
    _ALLOWED = ("builtins", "collections", "copyreg", "_codecs", "datetime", "numpy")

    def find_class(self, module, name):
        if module.split(".")[0] in self._ALLOWED:
            return super().find_class(module, name)
        return _Opaque

    def persistent_load(self, pid):
        return _Opaque()


def read_checkpoint_curve(path: Path) -> list[dict] | None:
    """The epoch curve stored in a run checkpoint, or None if it cannot be read (yet)."""
    try:
        with open(path, "rb") as handle:
            state = _LightUnpickler(handle).load()
        curve = state.get("curve") if isinstance(state, dict) else None
        return list(curve) if isinstance(curve, list) else None
    except Exception:
        return None


# ---------------------------------------------------------------------------------------------


def _format_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return repr(value)
    return str(value)


def _sampler(kind: str, seed: int):
    import optuna

    if kind == "gp":
        return optuna.samplers.GPSampler(seed=seed, n_startup_trials=10)
    return optuna.samplers.TPESampler(seed=seed, multivariate=True, group=True, constant_liar=True,
                                      n_startup_trials=10)


def _pruner(kind: str, epochs: int | None):
    import optuna

    if kind == "none":
        return optuna.pruners.NopPruner()
    if kind == "hyperband":
        return optuna.pruners.HyperbandPruner(min_resource=1, max_resource=epochs or "auto")
    warmup = max(1, (epochs or 20) // 4)  # no pruning in the first quarter of the budget
    return optuna.pruners.MedianPruner(n_startup_trials=5, n_warmup_steps=warmup)


def _counted(trial) -> bool:
    """A trial that uses up one of the study's ``--trials``: finished with a result, or in
    flight. Trials failed for reasons that are not the configuration's (an interrupted worker,
    a run that never started) are redone."""
    from optuna.trial import TrialState

    if trial.state in (TrialState.COMPLETE, TrialState.PRUNED, TrialState.RUNNING):
        return True
    return trial.state == TrialState.FAIL and trial.user_attrs.get("outcome") in COUNTED_FAILURES


class Tuner:
    """One worker of a study: asks for trials, runs them, tells the results."""

    def __init__(self, args: argparse.Namespace, space, fixed: dict, defaults: dict):
        import optuna

        _quiet_optuna()
        self.args, self.space, self.fixed = args, space, fixed
        self.context = {**defaults, **fixed}
        self.name = _safe_name(args.study) if args.study else default_study_name(args.method, args.dataset)
        self.out = Path(args.out)
        self.url = storage_url(args.storage, self.out, self.name)
        self.storage = open_storage(self.url)
        self.home = self.out / self.name
        self.runs_dir = self.home / "runs"
        self.fixed_pairs = [f"{k}={_format_value(v)}" for k, v in fixed.items()]
        dataset = args.dataset
        self.dataset_arg = str(Path(dataset).resolve()) if os.sep in dataset or Path(dataset).exists() else dataset
        self.study = retry(optuna.create_study, storage=self.storage, study_name=self.name,
                           direction="maximize", sampler=_sampler(args.sampler, args.seed),
                           pruner=_pruner(args.pruner, args.budget_epochs), load_if_exists=True)
        self._check_study()
        self.ran = 0
        self.errors_in_row = 0
        self.curve_files: tuple[Path, Path] | None = None

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
                print(f"warning: study {self.name!r} was made with {key}={stored.get(key)!r}; "
                      f"this worker uses {settings[key]!r}", file=sys.stderr)

    def _trials(self):
        return retry(self.study.get_trials, deepcopy=False)

    def _fail_stale(self) -> None:
        import optuna

        retry(optuna.storages.fail_stale_trials, self.study)

    # -- the loop -----------------------------------------------------------------------------
    def run(self) -> None:
        from optuna.trial import TrialState

        target = self.args.trials
        while True:
            self._fail_stale()
            trials = self._trials()
            if sum(_counted(t) for t in trials) >= target:
                break
            # A sampler seeded from the study's size: reproducible for one worker, and distinct
            # proposals for workers asking one after another.
            self.study.sampler = _sampler(self.args.sampler, self.args.seed * 100_003 + len(trials))
            started = time.monotonic()
            trial = retry(self.study.ask)
            self._beat(trial)
            earlier = [t for t in self._trials() if t.number < trial.number and _counted(t)]
            if len(earlier) >= target:  # another worker took the last slot meanwhile
                retry(trial.set_user_attr, "outcome", "surplus")
                retry(self.study.tell, trial, state=TrialState.FAIL, skip_if_finished=True)
                break
            self._run_trial(trial, started)

    def _beat(self, trial) -> None:
        try:
            retry(self.storage.record_heartbeat, trial._trial_id)
        except Exception as exc:  # a missed heartbeat only risks the trial being seen as stale
            print(f"warning: heartbeat not recorded: {exc}", file=sys.stderr)

    def _command(self, trial, overrides: list[str], run_out: Path) -> list[str]:
        cmd = [sys.executable, "-m", "bench", "run", "--method", self.args.method,
               "--dataset", self.dataset_arg, "--seed", str(self.args.seed),
               "--device", self.args.device, "--threads", str(self.args.threads),
               "--out", str(run_out), "--no-progress",
               "--tag", f"study={self.name}", "--tag", f"trial={trial.number}"]
        if self.args.budget_epochs is not None:
            cmd += ["--epochs", str(self.args.budget_epochs)]
        if self.args.time_limit is not None:
            cmd += ["--time-limit", str(self.args.time_limit)]
        for pair in overrides:
            cmd += ["--set", pair]
        return cmd

    def _run_trial(self, trial, started: float) -> None:
        from bench import search_spaces

        drawn = search_spaces.sample(self.space, trial, self.context)
        scratch = self.home / "trials" / f"{trial.number:05d}-{uuid.uuid4().hex[:6]}"
        run_out = scratch / "runs"
        logs = self.home / "logs"
        logs.mkdir(parents=True, exist_ok=True)
        log_path = logs / f"trial-{trial.number:05d}.log"
        overrides = self.fixed_pairs + [f"{k}={_format_value(v)}" for k, v in drawn.items()]
        cmd = self._command(trial, overrides, run_out)
        retry(trial.set_user_attr, "overrides", overrides)
        env = dict(os.environ)
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(PROJECT_ROOT), env.get("PYTHONPATH")]))
        env["PYTHONUNBUFFERED"] = "1"
        run_out.mkdir(parents=True, exist_ok=True)
        print(f"trial {trial.number}: " + " ".join(f"{k}={_format_value(v)}" for k, v in drawn.items()),
              file=sys.stderr, flush=True)
        with open(log_path, "w") as log:
            log.write(shlex.join(cmd) + "\n")
            log.flush()
            launched = time.monotonic()
            proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, env=env,
                                    start_new_session=True, preexec_fn=_default_sigint)
            try:
                pruned, reported = self._watch(trial, proc, scratch / "checkpoints")
                run_wall = time.monotonic() - launched
            except KeyboardInterrupt:
                self._stop(proc)
                record, path = self._collect(run_out)  # the run's record says "interrupted"
                self._finish(trial, "interrupted", record, scratch, started, record_path=path,
                             error="interrupted")
                raise
        record, path = self._collect(run_out)
        self._finish(trial, "pruned" if pruned else None, record, scratch, started,
                     returncode=proc.returncode, record_path=path, log_path=log_path,
                     reported=reported, run_wall=run_wall)

    def _watch(self, trial, proc, checkpoints: Path) -> tuple[bool, int]:
        """Wait for the run, reporting each finished epoch's validation accuracy to the pruner;
        stop the run when the pruner says so. Returns (pruned, epochs reported)."""
        reported = 0
        seen_mtime = None
        last_beat = time.monotonic()
        while True:
            try:
                proc.wait(timeout=POLL_S)
                return False, reported
            except subprocess.TimeoutExpired:
                pass
            if time.monotonic() - last_beat >= HEARTBEAT_S / 2:
                self._beat(trial)
                last_beat = time.monotonic()
            found = sorted(checkpoints.glob("*.pkl")) if checkpoints.is_dir() else []
            if not found:
                continue
            mtime = found[0].stat().st_mtime_ns
            if mtime == seen_mtime:
                continue
            seen_mtime = mtime
            curve = read_checkpoint_curve(found[0]) or []
            reported = self._report(trial, curve, reported)
            if reported and self.args.pruner != "none" and retry(trial.should_prune):
                self._stop(proc)
                return True, reported

    def _report(self, trial, curve: list[dict], reported: int) -> int:
        for entry in curve[reported:]:
            value = entry.get("valid_acc")
            if isinstance(value, (int, float)) and value == value:
                retry(trial.report, float(value), int(entry.get("epoch", reported + 1)))
            reported += 1
        return reported

    @staticmethod
    def _stop(proc) -> None:
        """SIGINT the run (it then writes its record), escalating if it does not end."""
        for sig, wait in ((signal.SIGINT, 60), (signal.SIGTERM, 10), (signal.SIGKILL, 10)):
            if proc.poll() is not None:
                return
            try:
                os.killpg(proc.pid, sig)
            except ProcessLookupError:
                return
            try:
                proc.wait(timeout=wait)
                return
            except subprocess.TimeoutExpired:
                continue

    def _collect(self, run_out: Path) -> tuple[dict | None, Path | None]:
        """Move the run's record into the study's runs directory; return it and its path."""
        from bench import records

        found = records.record_paths(run_out)
        if not found:
            return None, None
        source = found[-1]
        self.runs_dir.mkdir(parents=True, exist_ok=True)
        target = self.runs_dir / source.name
        os.link(source, target)  # never overwrites
        source.unlink()
        return records.read(target), target

    def _finish(self, trial, outcome: str | None, record: dict | None, scratch: Path,
                started: float, *, returncode: int | None = None, record_path: Path | None = None,
                log_path: Path | None = None, error: str | None = None,
                reported: int = 0, run_wall: float | None = None) -> None:
        from optuna.trial import TrialState

        wall = time.monotonic() - started
        attrs: dict[str, Any] = {"wall_seconds": round(wall, 3)}
        value = None
        if record is not None:
            if outcome != "interrupted":
                self._report(trial, record.get("curve") or [], reported)  # epochs not yet seen
            metrics = record.get("metrics") or {}
            attrs.update(record=str(record_path), run_id=record.get("run_id"),
                         train_seconds=metrics.get("train_seconds"), status=record.get("status"))
            best = metrics.get("best_valid_acc")
            if outcome is None:
                if record.get("status") == "ok" and isinstance(best, (int, float)) and best == best:
                    outcome, value = "ok", float(best)
                else:
                    outcome = record.get("status") or "failed"
                    error = record.get("error")
        elif outcome is None:
            outcome = "error"
            error = _last_error_line(log_path) or f"run exited with code {returncode} and no record"
        attrs["outcome"] = outcome
        if error:
            attrs["error"] = str(error)[:500]
        if run_wall is not None:  # the run's process, start to exit; the rest is the tuner's
            attrs["run_wall_seconds"] = round(run_wall, 3)
        for key, val in attrs.items():
            retry(trial.set_user_attr, key, val)
        if outcome == "ok":
            state, values = TrialState.COMPLETE, value
        elif outcome == "pruned":
            state, values = TrialState.PRUNED, None
        else:
            state, values = TrialState.FAIL, None
        try:
            retry(self.study.tell, trial, values, state=state, skip_if_finished=True)
        except Exception as exc:
            print(f"warning: trial {trial.number} could not be told: {exc}", file=sys.stderr)
        shutil.rmtree(scratch, ignore_errors=True)
        try:
            scratch.parent.rmdir()  # the trials directory, when no other trial is in flight
        except OSError:
            pass
        wall = time.monotonic() - started
        attrs_overhead = None if run_wall is None else wall - run_wall
        self.ran += 1
        self._progress(trial, outcome, value, wall, error, log_path, attrs_overhead)
        if outcome == "error":
            self.errors_in_row += 1
            if self.errors_in_row >= MAX_CONSECUTIVE_ERRORS:
                raise InputError(f"{self.errors_in_row} trials in a row ended without a record; "
                                 f"last: {error} (log: {log_path})")
        elif outcome != "interrupted":
            self.errors_in_row = 0

    def _progress(self, trial, outcome, value, wall, error, log_path, overhead=None) -> None:
        try:
            best = self.study.best_value
        except ValueError:
            best = None
        text = f"trial {trial.number}: {outcome}"
        if value is not None:
            text += f", best valid acc {value:.4f}"
        if best is not None:
            text += f" (study best {best:.4f})"
        text += f", {wall:.1f} s"
        if overhead is not None:
            text += f" ({overhead:.2f} s outside the run)"
        if error and outcome not in ("ok", "pruned"):
            text += f": {error}"
            if log_path is not None:
                text += f" (log: {log_path})"
        print(text, file=sys.stderr, flush=True)

    # -- results ------------------------------------------------------------------------------
    def save_curve(self) -> None:
        try:
            frame = tuning_curve(self.storage, self.name)
            csv, png = save_curve(frame, self.out / f"{self.name}-curve", title=self.name)
            self.curve_files = (csv, png)
        except Exception as exc:  # the curve is a convenience; never lose the study over it
            print(f"warning: tuning curve not saved: {exc}", file=sys.stderr)
            self.curve_files = None

    def summarise(self) -> int:
        from optuna.trial import TrialState

        trials = self._trials()
        states = {s: sum(t.state == s for t in trials) for s in TrialState}
        done = (f"{states[TrialState.COMPLETE]} complete, {states[TrialState.PRUNED]} pruned, "
                f"{sum(_counted(t) for t in trials if t.state == TrialState.FAIL)} failed runs")
        print(f"study {self.name} ({self.url}): {done}; this worker ran {self.ran}")
        complete = [t for t in trials if t.state == TrialState.COMPLETE]
        if not complete:
            print("no trial completed: no best hyperparameters")
            return 1
        best = max(complete, key=lambda t: (t.value, -t.number))
        print(f"best validation accuracy {best.value:.4f} (trial {best.number})")
        for key, value in best.params.items():
            print(f"  {key} = {_format_value(value)}")
        if self.fixed_pairs:
            print(f"  fixed: {' '.join(self.fixed_pairs)}")
        print(f"record: {best.user_attrs.get('record')}")
        print(f"reproduce: {reproduce_command(self.args, best)}")
        if self.curve_files:
            print(f"tuning curve: {self.curve_files[0]} {self.curve_files[1]}")
        return 0


def _last_error_line(log_path: Path | None) -> str | None:
    if log_path is None or not log_path.exists():
        return None
    lines = [ln.strip() for ln in log_path.read_text(errors="replace").splitlines() if ln.strip()]
    for line in reversed(lines):
        if line.startswith("error:") or "Error" in line:
            return line
    return lines[-1] if len(lines) > 1 else None


def reproduce_command(args: argparse.Namespace, trial) -> str:
    """The `bench run` command line that repeats a trial's run."""
    cmd = ["python", "-m", "bench", "run", "--method", args.method, "--dataset", args.dataset,
           "--seed", str(args.seed)]
    if args.budget_epochs is not None:
        cmd += ["--epochs", str(args.budget_epochs)]
    if args.device != "cpu":
        cmd += ["--device", args.device]
    for pair in trial.user_attrs.get("overrides") or []:
        cmd += ["--set", pair]
    return shlex.join(cmd)


# ---------------------------------------------------------------------------------------------
# Tuning curves.


def tuning_curve(storage, study: str):
    """One row per finished trial of ``study``, in order of completion, with the best validation
    accuracy so far. ``storage``: a database URL, a SQLite file path or an optuna storage.

    Columns: ``n`` (1, 2, ...: finished trials so far), ``number`` (optuna's trial number),
    ``state``, ``outcome``, ``value`` (best validation accuracy of a complete trial),
    ``best_so_far``, ``started``, ``completed``, ``duration_s``, ``elapsed_s`` (wall clock since
    the study's first trial began), ``compute_s`` (summed trial durations: the cost of the
    search on one worker), ``record`` and one ``param.<name>`` column per hyperparameter.
    """
    import optuna
    import pandas as pd
    from optuna.trial import TrialState

    _quiet_optuna()
    if isinstance(storage, (str, os.PathLike)):
        storage = open_storage(storage_url(storage, ".", study), heartbeat=False)
    loaded = retry(optuna.load_study, study_name=study, storage=storage)
    trials = [t for t in retry(loaded.get_trials, deepcopy=False)
              if t.state.is_finished() and t.datetime_complete is not None]
    columns = ["n", "number", "state", "outcome", "value", "best_so_far", "started", "completed",
               "duration_s", "elapsed_s", "compute_s", "record"]
    if not trials:
        return pd.DataFrame(columns=columns)
    trials.sort(key=lambda t: (t.datetime_complete, t.number))
    first = min(t.datetime_start or t.datetime_complete for t in trials)
    rows = []
    for t in trials:
        start = t.datetime_start or t.datetime_complete
        row = {
            "number": t.number, "state": t.state.name, "outcome": t.user_attrs.get("outcome"),
            "value": t.value if t.state == TrialState.COMPLETE else None,
            "started": start, "completed": t.datetime_complete,
            "duration_s": (t.datetime_complete - start).total_seconds(),
            "elapsed_s": (t.datetime_complete - first).total_seconds(),
            "record": t.user_attrs.get("record"),
        }
        row.update({f"param.{k}": v for k, v in t.params.items()})
        rows.append(row)
    frame = pd.DataFrame(rows)
    frame.insert(0, "n", range(1, len(frame) + 1))
    frame["value"] = frame["value"].astype(float)
    frame["best_so_far"] = frame["value"].cummax().ffill()
    frame["compute_s"] = frame["duration_s"].cumsum()
    return frame[columns + [c for c in frame.columns if c.startswith("param.")]]


def save_curve(frame, prefix: Path, title: str = "") -> tuple[Path, Path]:
    """Write ``<prefix>.csv`` and ``<prefix>.png`` (best-so-far against finished trials and
    against compute time), each atomically."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    prefix = Path(prefix)
    prefix.parent.mkdir(parents=True, exist_ok=True)
    csv = prefix.with_name(prefix.name + ".csv")
    png = prefix.with_name(prefix.name + ".png")
    tmp = csv.with_name(f".{csv.name}.{os.getpid()}.tmp")
    frame.to_csv(tmp, index=False)
    os.replace(tmp, csv)

    fig, axes = plt.subplots(1, 2, figsize=(10, 3.6), constrained_layout=True)
    complete = frame[frame["value"].notna()] if len(frame) else frame
    for ax, x, label in ((axes[0], "n", "finished trials"),
                         (axes[1], "compute_s", "compute time (s, summed over trials)")):
        if len(frame):
            ax.step(frame[x], frame["best_so_far"], where="post", label="best so far")
            ax.plot(complete[x], complete["value"], "o", ms=3, alpha=0.5, label="trial")
        ax.set_xlabel(label)
        ax.set_ylabel("validation accuracy")
        ax.grid(alpha=0.3)
    axes[0].legend(loc="lower right")
    fig.suptitle(f"tuning curve {title}".strip())
    tmp = png.with_name(f".{png.name}.{os.getpid()}.tmp.png")
    fig.savefig(tmp, dpi=100)
    plt.close(fig)
    os.replace(tmp, png)
    return csv, png
