"""The embedded synthetic set needs time, not only counts: a 20-class logistic regression on
per-channel spike counts scores clearly below a spiking network trained on it (EventProp, the
suite's fastest gradient method, eight epochs through the normal runner)."""

from __future__ import annotations

import numpy as np
import pytest

from bench import cli, records
from datasets import open_dataset
from datasets.features import count_features

SNN_EPOCHS = 8


def count_logistic_regression_accuracy(ds) -> float:
    from sklearn.linear_model import LogisticRegression

    train_x = np.log1p(np.concatenate([count_features(ds, "train"), count_features(ds, "valid")]))
    train_y = np.concatenate([ds.labels("train"), ds.labels("valid")])
    mean, std = train_x.mean(0), train_x.std(0) + 1e-3
    best = 0.0
    for c in (0.01, 0.1, 1.0):  # the regression gets its best regularisation, measured on test
        clf = LogisticRegression(C=c, max_iter=2000).fit((train_x - mean) / std, train_y)
        best = max(best, clf.score((np.log1p(count_features(ds, "test")) - mean) / std,
                                   ds.labels("test")))
    return best


@pytest.mark.slow
def test_counts_score_clearly_below_the_trained_snn(tmp_path, capsys):
    counts_acc = count_logistic_regression_accuracy(open_dataset("synthetic"))
    out = tmp_path / "runs"
    assert cli.main(["run", "--method", "eventprop", "--epochs", str(SNN_EPOCHS),
                     "--out", str(out), "--no-progress"]) == 0
    (record,) = [r for _, r in records.iter_records(out)]
    snn_acc = record["metrics"]["test_acc"]
    with capsys.disabled():
        print(f"\ncount logistic regression {counts_acc:.3f}, EventProp SNN {snn_acc:.3f}")
    assert counts_acc < 0.6
    assert snn_acc > counts_acc + 0.1
