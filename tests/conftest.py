import os
import sys
from pathlib import Path

# Tests are deterministic and light: one thread everywhere, set before any framework import.
for key in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
    os.environ.setdefault(key, "1")
os.environ.setdefault("XLA_FLAGS", "--xla_cpu_multi_thread_eigen=false")
os.environ.setdefault("XLA_PYTHON_CLIENT_PREALLOCATE", "false")

sys.path.insert(0, str(Path(__file__).resolve().parent))


import numpy as np  # noqa: E402
import pytest  # noqa: E402


@pytest.fixture(scope="module")
def tiny_data(tmp_path_factory):
    """Three classes that fire on different channel bands, 50 ms long, 700 channels: enough input
    for a hidden layer of 8 neurons to fire."""
    from datasets.h5 import write_h5

    root = tmp_path_factory.mktemp("tiny")
    rng = np.random.default_rng(0)
    for split, n in (("train", 48), ("test", 24)):
        labels = np.arange(n) % 3
        times, units = [], []
        for label in labels:
            units.append(rng.integers(label * 200, label * 200 + 100, 600))
            times.append(np.sort(rng.uniform(0, 0.05, 600)))
        write_h5(root / f"tiny_{split}.h5", times, units, labels, n_in=700)
    return root


@pytest.fixture
def mixed(tmp_path):
    """alpha: 3 ok seeds; beta: 2 ok, 1 failed, 1 diverged; gamma: only failures."""
    from test_report import MiB, make_record, write_all

    recs = [make_record("alpha", s, acc=a, seconds=sec, memory=m, curve=c)
            for s, a, sec, m, c in ((0, 0.80, 1.0, 100 * MiB, (0.3, 0.6, 0.8)),
                                    (1, 0.82, 2.0, 110 * MiB, (0.4, 0.7, 0.8)),
                                    (2, 0.84, 3.0, 120 * MiB, (0.5, 0.5, 0.9)))]
    recs += [make_record("beta", s, acc=a, seconds=0.5, curve=(0.2, 0.4), synops=2.5e6,
                         dense=1.2e7, spikes=0.25) for s, a in ((0, 0.5), (1, 0.7))]
    recs += [make_record("beta", 2, status="failed", error="RuntimeError: out of cheese"),
             make_record("beta", 3, status="diverged", curve=(0.1,), error="diverged: loss nan")]
    recs += [make_record("gamma", s, status="failed", error="ValueError: bad shape")
             for s in (0, 1)]
    write_all(tmp_path / "runs", recs)
    return tmp_path
