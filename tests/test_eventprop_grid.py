"""EventProp's grid mode (methods/eventprop/grid.py): the same forward pass as the reference and
bptt-snntorch; the fused kernels equal the torch loops; block size, event order and the sparse
or dense recurrent term change nothing; the weighted row sums equal the dense product; the store
grows with the spikes only. (The gradient itself: tests/test_eventprop_oracle.py.)"""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch

import methods.eventprop as ep
from methods import lif
from methods.api import Batch, Events
from methods.bptt_snntorch import SnntorchNetwork
from methods.readouts import TorchReadout
from test_eventprop import DRIVE, LOSSES, _batch, _method, _set
from tiny import TINY_SPEC


def _spikes_dense(fw, T: int, B: int, N: int) -> torch.Tensor:
    steps = torch.repeat_interleave(torch.arange(T), fw.step_counts)
    out = torch.zeros(T * B * N, dtype=torch.float32)
    out[steps * B * N + fw.flat.long()] = 1.0
    return out.view(T, B, N)


# ---------------------------------------------------------------------------------------------
# Same forward as the BPTT backends


@pytest.mark.parametrize("loss", LOSSES)
def test_grid_forward_identical_to_the_reference_and_bptt_snntorch(loss):
    weights = lif.init_weights(0, TINY_SPEC.n_in, 16, TINY_SPEC.n_classes, True)
    weights["w_in"] = weights["w_in"] * DRIVE
    method = _method(TINY_SPEC, loss=loss, chunk_steps=16)
    _set(method, **weights)
    batch = _batch(1)
    x = np.zeros((batch.size, TINY_SPEC.n_steps, TINY_SPEC.n_in), np.float32)
    ev = batch.events
    x[ev.sample, ev.step, ev.unit] = ev.count
    decays = method.net().decays
    net = SnntorchNetwork(weights, decays, 100.0)
    with torch.no_grad():
        spikes, traces = net(torch.from_numpy(x))
    ref_spikes, ref_traces = lif.reference_forward(
        {k: torch.from_numpy(w) for k, w in weights.items()}, torch.from_numpy(x), decays)
    assert torch.equal(ref_spikes, spikes)
    torch.testing.assert_close(ref_traces, traces, rtol=1e-5, atol=1e-7)
    net = method.net()
    fw = ep.forward(net, net.blocks(batch), store=True, traces=True)
    mine = _spikes_dense(fw, TINY_SPEC.n_steps, batch.size, 16)
    assert spikes.sum() > 50
    assert torch.equal(mine, spikes)
    torch.testing.assert_close(fw.traces, traces, rtol=1e-5, atol=1e-7)
    readout = TorchReadout(loss, TINY_SPEC.n_steps, 0.5, 0.25)
    np.testing.assert_allclose(method.predict(batch), readout.scores(traces).numpy(),
                               rtol=1e-5, atol=1e-7)


@pytest.mark.parametrize("loss", LOSSES)
def test_fused_kernels_equal_the_torch_loops(loss):
    """Grid mode's numba kernels against its torch loops (lif_step and the backward recursion):
    the same spikes, scores and gradients, to float32 rounding."""
    pytest.importorskip("numba")
    for recurrent, dtype in ((True, "float32"), (False, "float32"), (True, "float64")):
        method = _method(TINY_SPEC, loss=loss, recurrent=recurrent, dtype=dtype, chunk_steps=16)
        with torch.no_grad():
            method.params["w_in"] *= DRIVE
            if recurrent:
                method.params["w_rec"] *= 10.0
        net = method.net()
        assert net.fused
        batch = _batch(2)
        fused = ep.loss_and_grads(net, batch)
        loops = ep.loss_and_grads(dataclasses.replace(net, fused=False), batch)
        assert fused[3].counts.sum() > 100
        assert torch.equal(fused[3].flat, loops[3].flat)
        assert torch.equal(fused[3].step_counts, loops[3].step_counts)
        assert fused[0] == pytest.approx(loops[0], rel=1e-6)
        tol = 1e-6 if dtype == "float32" else 1e-12
        for key, grad in loops[1].items():
            scale = float(grad.abs().max())
            assert scale > 0
            err = float((fused[1][key] - grad).abs().max()) / scale
            assert err <= tol, f"{key} recurrent={recurrent} {dtype}: {err:.1e}"


def test_block_size_does_not_change_results():
    batch = _batch(2)
    results = []
    for chunk in (7, 40, 128):
        method = _method(TINY_SPEC, chunk_steps=chunk, dtype="float64")
        with torch.no_grad():
            method.params["w_in"] *= DRIVE
        loss, grads, _, fw = ep.loss_and_grads(method.net(), batch)
        results.append((loss, grads, fw.counts))
    for loss, grads, counts in results[1:]:
        assert loss == pytest.approx(results[0][0], rel=1e-12)
        assert torch.equal(counts, results[0][2])
        for key in grads:
            torch.testing.assert_close(grads[key], results[0][1][key], rtol=1e-9, atol=1e-15)


def test_sparse_and_dense_recurrent_terms_agree():
    batch = _batch(2)
    grads = []
    for fraction in (0.0, 1.0):  # every step by the dense product / by row gathers
        method = _method(TINY_SPEC, dtype="float64")
        with torch.no_grad():
            method.params["w_in"] *= DRIVE
        net = dataclasses.replace(method.net(), gather_below=fraction)
        grads.append(ep.loss_and_grads(net, batch)[1])
    for key in grads[0]:
        torch.testing.assert_close(grads[0][key], grads[1][key], rtol=1e-10, atol=1e-15)
    assert float(grads[0]["w_rec"].abs().max()) > 0


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_weighted_row_sums_equal_the_dense_product(dtype):
    """kernels.add_weighted_rows (the drive X W_in and dL/dW_in's X^T Lambda_I): runs of every
    length from 1 to 9 of one target row (the kernel sums runs four rows at a time), distinct
    weights, against the dense product."""
    pytest.importorskip("numba")
    from methods.eventprop import kernels
    rng = np.random.default_rng(0)
    n_out, n_src, width = 12, 7, 33
    out_idx = np.concatenate([np.full(r, i, np.int64) for i, r in enumerate(range(1, 10))]
                             + [rng.integers(0, n_out, 40)])
    src_idx = rng.integers(0, n_src, out_idx.size)
    weight = rng.uniform(0.5, 3.0, out_idx.size).astype(dtype)
    src = rng.normal(size=(n_src, width)).astype(dtype)
    out = rng.normal(size=(n_out, width)).astype(dtype)
    x = np.zeros((n_out, n_src))
    np.add.at(x, (out_idx, src_idx), weight.astype(np.float64))
    want = out.astype(np.float64) + x @ src.astype(np.float64)
    kernels.add_weighted_rows(out, out_idx, src, src_idx, weight)
    np.testing.assert_allclose(out, want, rtol=0, atol=1e-5 if dtype == np.float32 else 1e-12)


def test_event_order_does_not_matter():
    batch = _batch(3)
    ev = batch.events
    order = np.random.default_rng(0).permutation(len(ev.step))
    shuffled = Batch(y=batch.y, n_steps=batch.n_steps, n_in=batch.n_in,
                     events=Events(sample=ev.sample[order], step=ev.step[order],
                                   unit=ev.unit[order], count=ev.count[order]))
    method = _method(TINY_SPEC, dtype="float64")
    with torch.no_grad():
        method.params["w_in"] *= DRIVE
    np.testing.assert_allclose(method.predict(shuffled), method.predict(batch), rtol=1e-12)


def test_store_is_proportional_to_spikes():
    method = _method(TINY_SPEC)
    with torch.no_grad():
        method.params["w_in"] *= DRIVE
    net = method.net()
    fw = ep.forward(net, net.blocks(_batch(4)), store=True)
    n_spikes = int(fw.counts.sum())
    assert fw.flat.numel() == fw.current.numel() == n_spikes > 0
    assert fw.flat.dtype == torch.int32
    assert fw.step_counts.numel() == TINY_SPEC.n_steps and int(fw.step_counts.sum()) == n_spikes
