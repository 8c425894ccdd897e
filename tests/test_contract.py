"""Contract tests every registered method must pass: train a few steps on a tiny set, predict
shapes, determinism on CPU for a fixed seed, and a checkpoint round trip."""

from __future__ import annotations

import pickle

import numpy as np
import pytest

from bench import registry
from methods.api import Batch, InputError, Method, hparam_fields
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


@pytest.mark.parametrize("via", ["pickle", "files"])
@pytest.mark.parametrize("name", METHODS)
def test_checkpoint_round_trip(name, via, tmp_path):
    """A restored state predicts and trains on as the original, through pickle and through the
    files a resumed run reads (bench/checkpoints.py: every array keeps its shape and dtype,
    scalars included, e.g. an optimiser's step count)."""
    from bench import checkpoints

    method = _trained(name, seed=1)
    cls = type(method)
    if via == "pickle":
        state = pickle.loads(pickle.dumps(method.state_dict()))
    else:
        checkpoints.save_state(tmp_path / "state", method.state_dict(), {})
        state, _ = checkpoints.load_state(tmp_path / "state")
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


def _weights(state: dict, prefix: str = "") -> dict[str, np.ndarray]:
    """Every array under the state's weight containers ("net", "weights", "params"), by path."""
    out: dict[str, np.ndarray] = {}
    for key, value in state.items():
        path = f"{prefix}{key}"
        if isinstance(value, dict) and (prefix or key in ("net", "weights", "params")):
            out.update(_weights(value, path + "."))
        elif prefix and hasattr(value, "shape"):
            array = value.detach().cpu().numpy() if hasattr(value, "detach") else np.asarray(value)
            out[path] = array.copy()  # the state may share memory with the live weights
    return out


def _readout(path: str) -> bool:
    return "w_out" in path or "readout" in path


FROZEN_HIDDEN = [n for n in METHODS
                 if "train_hidden" in hparam_fields(registry.load_method(n).Hparams)]


def test_every_method_of_the_shared_network_has_the_readout_only_control():
    assert {"bptt-snntorch", "bptt-norse", "bptt-spyx", "paralif", "eprop", "eventprop",
            "rstdp"} <= set(FROZEN_HIDDEN)


@pytest.mark.parametrize("name", [n for n in FROZEN_HIDDEN if n != "rstdp"])
def test_train_hidden_false_changes_only_the_readout(name):
    cls = registry.load_method(name)
    method = cls()
    method.setup(TINY_SPEC, tiny_hparams(cls, train_hidden=False), 0, "cpu")
    before = _weights(method.state_dict())
    assert any(_readout(p) for p in before) and any(not _readout(p) for p in before)
    for step in range(3):  # input dense enough that the tiny hidden layer spikes from the start
        method.train_step(tiny_batch(100 + step, fmt=cls.input_format, rate=1.0))
    method.end_epoch(0)  # epoch-end changes (eventprop's silent-neuron boost) count too
    after = _weights(method.state_dict())
    for path, value in before.items():
        if _readout(path):
            assert not np.array_equal(after[path], value), f"{name}: {path} did not learn"
        else:
            np.testing.assert_array_equal(after[path], value, err_msg=f"{name}: {path} changed")


def test_rstdp_refuses_train_hidden_false():
    cls = registry.load_method("rstdp")
    with pytest.raises(InputError, match="train_hidden=false does not apply"):
        tiny_hparams(cls, train_hidden=False)


def _learned(state: dict) -> dict[str, np.ndarray]:
    """The weights a method learns: those of :func:`_weights`, an ANN's (ann-conversion) and
    top-level ``w_out`` (r-stdp)."""
    out = _weights(state)
    out.update(_weights(state.get("ann", {}), "ann."))
    if "w_out" in state:
        out["w_out"] = state["w_out"].detach().cpu().numpy().copy()
    return out


@pytest.mark.parametrize("name", METHODS)
def test_set_lr_sets_the_rate_of_the_next_steps(name):
    """The harness's schedule (bench/trainer.py) reaches every method: at rate 0 a training
    step leaves the weights as they are, at the base rate it moves them."""
    method = _trained(name, seed=0, steps=1)
    cls = type(method)
    before = _learned(method.state_dict())
    assert before, f"{name}: no weights found in its state"
    method.set_lr(0.0)
    method.train_step(tiny_batch(200, fmt=cls.input_format, rate=1.0))
    frozen = _learned(method.state_dict())
    for path, value in before.items():
        np.testing.assert_allclose(frozen[path], value, rtol=1e-6, atol=1e-7,
                                   err_msg=f"{name}: {path} moved at rate 0")
    method.set_lr(tiny_hparams(cls).lr)
    method.train_step(tiny_batch(201, fmt=cls.input_format, rate=1.0))
    moved = _learned(method.state_dict())
    assert any(not np.allclose(moved[p], v) for p, v in before.items()), \
        f"{name}: no weight moved at the base rate"
