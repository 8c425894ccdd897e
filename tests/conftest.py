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
