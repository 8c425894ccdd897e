"""``python -m bench tune``: hyperparameter search with optuna, one ordinary run per trial.

Each trial is a normal ``python -m bench run`` in its own process (one run per process, as for
every measurement of the suite), with its own record tagged ``study=<name>`` and
``trial=<number>``. The objective is the run's best validation accuracy (never the test
accuracy). A run that fails, diverges or times out marks its trial FAIL, never a score of 0.

While a trial runs, the tuner reads the validation accuracy of each finished epoch from the
run's progress file (plain JSON the runner rewrites after every epoch) and reports it to the
pruner; a pruned run is stopped (SIGTERM: the run writes a record with status ``failed``) and
its trial marked PRUNED (:mod:`bench.tune_trial`).

The study lives in a storage (:mod:`bench.tune_storage`; default: the SQLite file
``reports/studies/<study>.db``), so an interrupted study resumes where it stopped and several
workers (processes on one machine with the SQLite file, machines sharing a journal file or a
database server URL, or workers started by a cluster engine with ``--executor``) can work on one
study. ``--trials`` is the study's total (:mod:`bench.tune_worker`).

Files (``--out``, default ``reports/studies``)::

    <study>.db               the study (default storage)
    <study>/runs/*.json      the records of its trials
    <study>/logs/*.log       each trial's console output
    <study>-curve.csv, .png  best-so-far validation accuracy against trials and compute time

:func:`bench.tune_curve.tuning_curve` gives the curve as a DataFrame, for reports.
"""

from __future__ import annotations

import argparse
import os
import re
import shlex
import signal
import sys
from pathlib import Path

from datasets.catalog import DEFAULT_DATASET
from datasets.types import InputError

DEFAULT_OUT = "reports/studies"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--method", required=True, help="a registered method (see `bench list`)")
    parser.add_argument("--dataset", default=DEFAULT_DATASET,
                        help=f"{DEFAULT_DATASET} (default), a dataset of `bench list`, or a path to "
                             "<name>_{train,test}.h5 files")
    parser.add_argument("--trials", type=int, default=None,
                        help="total number of trials the study should hold (required)")
    parser.add_argument("--budget-epochs", type=int, default=None, metavar="E",
                        help="epochs per trial (default: the method's, else the dataset's budget)")
    parser.add_argument("--storage", default=None,
                        help="SQLite file, journal:///PATH (shared file systems) or database URL "
                             "(default: <out>/<study>.db)")
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
    from bench.suite import add_executor_arguments

    add_executor_arguments(parser)
    parser.add_argument("--workers", type=int, default=1,
                        help="slurm, ray: workers the engine starts on the study (default 1)")


# ---------------------------------------------------------------------------------------------
# Entry point.


def main(args: argparse.Namespace) -> int:
    from bench import registry, search_spaces
    from bench.tune_storage import check_scheme
    from methods.api import make_hparams, parse_overrides

    if args.storage is not None and "://" in str(args.storage):
        check_scheme(str(args.storage))
    method_cls = registry.load_method(args.method)
    fixed = parse_overrides(method_cls.Hparams, args.overrides)
    make_hparams(method_cls.Hparams, dict(fixed))  # the fixed values alone must be valid
    space = search_spaces.space_for(method_cls.Hparams, params=args.params, fixed=fixed)
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
    if args.executor != "local":
        from bench.tune_cluster import run_workers

        args.storage = run_workers(args, study_name(args))
        args.trials = 0  # the workers are done: this process only sums up
    return run_worker(args, space, fixed, search_spaces.defaults_of(method_cls.Hparams))


def run_worker(args: argparse.Namespace, space, fixed: dict, defaults: dict) -> int:
    """Work on the study until it holds ``--trials`` trials; save its curve; print the best."""
    from bench.tune_curve import save_curve, tuning_curve
    from bench.tune_worker import Tuner, summarise

    name = study_name(args)
    tuner = Tuner(args, space, fixed, defaults, name)
    previous = signal.getsignal(signal.SIGTERM)
    signal.signal(signal.SIGTERM, _terminate)
    curve_files = None
    try:
        tuner.run()
    finally:
        signal.signal(signal.SIGTERM, previous)
        try:
            frame = tuning_curve(tuner.storage, name)
            curve_files = save_curve(frame, tuner.out / f"{name}-curve", title=name)
        except Exception as exc:  # the curve is a convenience; never lose the study over it
            print(f"warning: tuning curve not saved: {exc}", file=sys.stderr)
    return summarise(tuner, lambda best: reproduce_command(args, best), curve_files)


def _terminate(signum, frame):  # SIGTERM (a scheduler's stop) ends the worker like Ctrl-C
    raise KeyboardInterrupt


def _print_space(method: str, hparams_cls, space, fixed) -> None:
    from bench import search_spaces

    available = search_spaces.full_space(hparams_cls)
    print(f"search space of {method} (tuned now: *):")
    for name, param in available.items():
        mark = "*" if name in space else " "
        note = " (fixed by --set)" if name in fixed else "" if param.on else " (off by default)"
        print(f"  {mark} {name:16s} {param.describe()}{note}")


def _safe_name(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "_", text).strip("._") or "study"


def default_study_name(method: str, dataset: str) -> str:
    return _safe_name(f"{method}-{Path(dataset).name if os.sep in dataset else dataset}")


def study_name(args: argparse.Namespace) -> str:
    return _safe_name(args.study) if args.study else default_study_name(args.method, args.dataset)


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
