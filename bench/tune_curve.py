"""Tuning curves of a study: the best validation accuracy so far against finished trials and
against compute time, as a DataFrame (:func:`tuning_curve`, for reports) and as CSV + PNG files
(:func:`save_curve`)."""

from __future__ import annotations

import os
from pathlib import Path

from bench.tune_storage import open_storage, quiet_optuna, retry, storage_url


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

    quiet_optuna()
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
