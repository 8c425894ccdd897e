"""Micro-benchmarks: one training step of every registered method on tiny shapes (the shapes of
the contract tests: 24 inputs, 16 hidden, 40 steps, batch 8), with pytest-benchmark.

Not part of the default test run (the file name does not start with ``test_``, and the project's
pytest options skip benchmarks). Run, save and compare as docs/reports.md describes::

    .venv/bin/python -m pytest tests/bench_steps.py -o addopts="" --benchmark-only \
        --benchmark-autosave
    .venv/bin/python -m pytest tests/bench_steps.py -o addopts="" --benchmark-only \
        --benchmark-compare --benchmark-compare-fail=median:50%

A method whose framework is not installed is skipped. The step is warmed up (JIT compilation, first
allocations) before timing, and every timed call ends with the method's ``sync``.
"""

from __future__ import annotations

import pytest

from bench import measure, registry
from tiny import TINY_SPEC, tiny_batch, tiny_hparams


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    measure.configure_threads(1)
    measure.apply_torch_threads(1)


def _method(name: str):
    try:
        cls = registry.load_method(name)
    except ImportError as exc:
        pytest.skip(f"{name}: {exc}")
    hparams = tiny_hparams(cls)
    method = cls()
    method.setup(TINY_SPEC, hparams, 0, "cpu")
    return method, hparams


@pytest.mark.parametrize("name", registry.method_names())
def test_train_step(benchmark, name):
    method, hparams = _method(name)
    batch = tiny_batch(1, fmt=type(method).input_format)
    for _ in range(2):  # warm-up outside the timed region
        method.train_step(batch)
    method.sync()

    def step():
        out = method.train_step(batch)
        method.sync()
        return out

    benchmark.group = "train_step"
    benchmark.extra_info.update(framework=type(method).framework, batch=batch.size,
                                steps=batch.n_steps, n_in=batch.n_in,
                                hidden=getattr(hparams, "hidden", None))
    out = benchmark(step)
    assert out["loss"] == out["loss"]  # not NaN
