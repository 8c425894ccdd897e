"""Contract tests every registered method must pass: train a few steps on a tiny set, predict
shapes, determinism on CPU for a fixed seed, and a checkpoint round trip."""

from __future__ import annotations

import pickle

import numpy as np
import pytest

from bench import registry
from bench.api import Batch, Method
from tiny import TINY_SPEC, tiny_batch, tiny_hparams

METHODS = registry.method_names()


def _batch_for(method_cls, seed: int) -> Batch:
    return tiny_batch(seed, fmt=method_cls.input_format)


def _trained(name: str, seed: int, steps: int = 3) -> Method:
    cls = registry.load_method(name)
    method = cls()
    method.setup(TINY_SPEC, tiny_hparams(cls), seed, "cpu")
    for step in range(steps):
        out = method.train_step(_batch_for(cls, 100 + step))
        assert np.isfinite(out["loss"]), f"{name}: non-finite loss {out['loss']}"
    method.end_epoch(0)
    method.finalize()
    return method


@pytest.mark.parametrize("name", METHODS)
def test_declares_the_contract(name):
    cls = registry.load_method(name)
    assert issubclass(cls, Method)
    assert cls.name == name
    assert cls.framework in ("torch", "jax", "numpy")
    assert cls.input_format in ("dense", "events")
    hparams = cls.Hparams()
    assert hparams.batch_size > 0 and hparams.steps > 0


@pytest.mark.parametrize("name", METHODS)
def test_trains_and_predicts_shapes(name):
    method = _trained(name, seed=0)
    batch = _batch_for(type(method), 7)
    scores = np.asarray(method.predict(batch))
    assert scores.shape == (batch.size, TINY_SPEC.n_classes)
    assert np.all(np.isfinite(scores))
    stats = method.inference_stats()
    if stats is not None:
        assert stats.hidden_spikes.shape == (batch.size,)
        assert np.all(stats.synops <= stats.dense_synops + 1e-9)


@pytest.mark.parametrize("name", METHODS)
def test_same_seed_same_result(name):
    batch = _batch_for(registry.load_method(name), 7)
    first = np.asarray(_trained(name, seed=3).predict(batch))
    second = np.asarray(_trained(name, seed=3).predict(batch))
    np.testing.assert_array_equal(first, second)


@pytest.mark.parametrize("name", METHODS)
def test_checkpoint_round_trip(name):
    method = _trained(name, seed=1)
    cls = type(method)
    state = pickle.loads(pickle.dumps(method.state_dict()))
    restored = cls()
    restored.setup(TINY_SPEC, tiny_hparams(cls), 99, "cpu")  # other seed: state must win
    restored.load_state_dict(state)
    batch = _batch_for(cls, 7)
    np.testing.assert_allclose(np.asarray(restored.predict(batch)), np.asarray(method.predict(batch)),
                               rtol=1e-6, atol=1e-7)
    # training continues identically from a restored checkpoint
    next_batch = _batch_for(cls, 11)
    np.testing.assert_allclose(restored.train_step(next_batch)["loss"],
                               method.train_step(next_batch)["loss"], rtol=1e-5)
