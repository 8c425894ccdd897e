"""Tiny inputs shared by the tests: class-dependent random spike batches in both input formats."""

from __future__ import annotations

import numpy as np

from methods.api import Batch, DatasetSpec, Events, hparam_fields, make_hparams

TINY_SPEC = DatasetSpec(name="tiny", n_in=24, n_classes=3, n_steps=40, dt_ms=1.0,
                        content_hash="tiny", class_names=("a", "b", "c"))
TINY_HPARAMS = {"hidden": 16, "steps": 40, "batch_size": 8, "epochs": 1}


def tiny_hparams(method_cls, **extra):
    fields = hparam_fields(method_cls.Hparams)
    values = {k: v for k, v in {**TINY_HPARAMS, **extra}.items() if k in fields}
    return make_hparams(method_cls.Hparams, values)


def dense_to_events(x: np.ndarray) -> Events:
    sample, step, unit = np.nonzero(x)
    order = np.lexsort((sample, step))
    return Events(sample=sample[order].astype(np.int64), step=step[order].astype(np.int64),
                  unit=unit[order].astype(np.int64),
                  count=x[sample, step, unit][order].astype(np.float32))


def tiny_batch(seed: int, spec: DatasetSpec = TINY_SPEC, batch_size: int = 8, rate: float = 0.08,
               fmt: str = "dense") -> Batch:
    """Each class fires a different third of the channels more, in a class-specific time window."""
    rng = np.random.default_rng(seed)
    y = rng.integers(0, spec.n_classes, batch_size).astype(np.int64)
    prob = np.full((batch_size, spec.n_steps, spec.n_in), rate / 4)
    band = spec.n_in // spec.n_classes
    window = spec.n_steps // spec.n_classes
    for b, label in enumerate(y):
        prob[b, label * window:(label + 1) * window, label * band:(label + 1) * band] = rate * 4
    x = (rng.random(prob.shape) < prob).astype(np.uint8)
    batch = Batch(y=y, n_steps=spec.n_steps, n_in=spec.n_in)
    if fmt == "dense":
        batch.x = x
    else:
        batch.events = dense_to_events(x)
    return batch
