"""NIR export of the shared network: the file read back with ``nir.read`` and built with norse's
and snntorch's NIR importers gives the suite's hidden spikes exactly, step for step."""

from __future__ import annotations

import dataclasses
import json

import numpy as np
import pytest
import torch

from bench import cli, export, registry
from methods import lif
from tiny import TINY_SPEC, tiny_batch, tiny_hparams

nir = pytest.importorskip("nir")
nirtorch = pytest.importorskip("nirtorch")

SPEC = dataclasses.replace(TINY_SPEC, n_in=120)  # enough input for the hidden layer to fire


def trained(name: str, recurrent: bool = True):
    """A method trained for a few steps on tiny batches, and a test batch."""
    cls = registry.load_method(name)
    hp = tiny_hparams(cls, hidden=16, recurrent=recurrent)
    method = cls()
    method.setup(SPEC, hp, 0, "cpu")
    for i in range(3):
        method.train_step(tiny_batch(i, SPEC, rate=0.3, fmt=cls.input_format))
    return method, hp, tiny_batch(9, SPEC, rate=0.3, fmt=cls.input_format)


def dense(batch) -> torch.Tensor:
    if batch.x is not None:
        return torch.from_numpy(batch.x).float()
    x = torch.zeros(batch.size, batch.n_steps, batch.n_in)
    e = batch.events
    x[e.sample, e.step, e.unit] = torch.from_numpy(e.count)
    return x


def reference(weights, x, hp):
    return lif.reference_forward({k: torch.from_numpy(v) for k, v in weights.items()}, x,
                                 lif.Decays.from_hparams(hp))


def roundtrip(method, hp, tmp_path, step_s=None):
    weights = export.network_weights(method.state_dict())
    graph = export.build_graph(weights, dataclasses.asdict(hp), step_s=step_s)
    export.write(graph, tmp_path / "net.nir")
    return weights, nir.read(str(tmp_path / "net.nir"))


def run_stepwise(module, x):
    """Feed (B, T, n_in) one step at a time through a nirtorch module with state."""
    state, out = None, []
    with torch.no_grad():
        for t in range(x.shape[1]):
            z, state = module(x[:, t], state)
            out.append(z)
    return torch.stack(out)


def norse_spikes(graph, x, dt):
    import norse.torch

    return run_stepwise(norse.torch.from_nir(export.hidden_subgraph(graph), dt=dt), x)


def snntorch_spikes(graph, x):
    """snntorch's node conversion (its importer's mapping of CubaLIF and Linear) under nirtorch's
    graph executor; see test_snntorch_public_importer for the public entry point."""
    from snntorch import import_nir

    node_map = {kind: (lambda node: import_nir._nir_to_snntorch_module(node, init_hidden=True))
                for kind in (nir.Linear, nir.CubaLIF)}
    return run_stepwise(nirtorch.nir_to_torch(export.hidden_subgraph(graph), node_map), x)


def euler_readout(graph, z, dt):
    """The readout CubaLI of the file, stepped by forward Euler from the hidden spikes (written
    from NIR's equations, independently of the exporter)."""
    w = torch.from_numpy(graph.nodes["w_out"].weight).float()
    node = graph.nodes["readout"]
    p = {k: torch.from_numpy(np.asarray(getattr(node, k))).float()
         for k in ("tau_syn", "tau_mem", "r", "v_leak", "w_in")}
    i = v = torch.zeros(z.shape[1], w.shape[0])
    out = []
    for t in range(z.shape[0]):
        i = i + dt / p["tau_syn"] * (-i + p["w_in"] * (z[t] @ w.T))
        v = v + dt / p["tau_mem"] * (p["v_leak"] - v + p["r"] * i)
        out.append(v)
    return torch.stack(out)


@pytest.mark.parametrize("name", ["eventprop", "bptt-snntorch"])
def test_norse_and_snntorch_reproduce_the_hidden_spikes(name, tmp_path):
    method, hp, batch = trained(name)
    x = dense(batch)
    weights, graph = roundtrip(method, hp, tmp_path)
    ref_z, ref_v = reference(weights, x, hp)
    assert 0 < ref_z.sum() < ref_z.numel() * 0.5  # a network that fires, not saturated
    method.predict(batch)  # the method's own forward agrees with the reference, per sample
    np.testing.assert_array_equal(method.inference_stats().hidden_spikes,
                                  ref_z.sum(dim=(0, 2)).double().numpy())
    dt = hp.dt_ms / 1000
    assert torch.equal(norse_spikes(graph, x, dt), ref_z)
    np.testing.assert_allclose(euler_readout(graph, ref_z, dt), ref_v, rtol=1e-4, atol=1e-5)
    # snntorch's importer assumes a 0.1 ms step: the same network exported for that step
    _, graph_e4 = roundtrip(method, hp, tmp_path, step_s=1e-4)
    assert torch.equal(snntorch_spikes(graph_e4, x), ref_z)
    assert torch.equal(norse_spikes(graph_e4, x, 1e-4), ref_z)


@pytest.mark.parametrize("name", sorted(registry.SHARED_NETWORK - {"eventprop", "bptt-snntorch"}))
def test_every_shared_network_method_exports(name, tmp_path):
    if name == "bptt-spyx":
        pytest.importorskip("spyx")
    method, hp, batch = trained(name)
    x = dense(batch)
    weights, graph = roundtrip(method, hp, tmp_path)
    ref_z, _ = reference(weights, x, hp)
    assert ref_z.sum() > 0
    method.predict(batch)
    np.testing.assert_array_equal(method.inference_stats().hidden_spikes,
                                  ref_z.sum(dim=(0, 2)).double().numpy())
    assert torch.equal(norse_spikes(graph, x, hp.dt_ms / 1000), ref_z)


def test_the_mapping_is_what_the_docstring_says(tmp_path):
    method, hp, _ = trained("eventprop")
    weights, graph = roundtrip(method, hp, tmp_path)
    d = lif.Decays.from_hparams(hp)
    dt = hp.dt_ms / 1000
    hidden, readout = graph.nodes["hidden"], graph.nodes["readout"]
    np.testing.assert_allclose(hidden.tau_syn, dt / (1 - d.beta))
    np.testing.assert_allclose(hidden.tau_mem, dt / (1 - d.alpha))
    np.testing.assert_allclose(hidden.v_threshold, 1 / (1 - d.alpha))
    np.testing.assert_allclose(readout.tau_mem, dt / (1 - d.alpha_out))
    np.testing.assert_array_equal(graph.nodes["w_in"].weight, weights["w_in"].T)
    np.testing.assert_array_equal(graph.nodes["w_rec"].weight, weights["w_rec"].T)
    assert ("w_rec", "hidden") in graph.edges and ("hidden", "w_rec") in graph.edges
    assert graph.metadata["dt_s"] == pytest.approx(dt)


def test_snntorch_public_importer(tmp_path):
    """snntorch.import_nir.import_from_nir itself: exact for a feed-forward hidden layer. For a
    recurrent one, snntorch 1.0.0 rewrites the loop into a subgraph that routes the layer's
    input through W_rec as well (input -> w_rec -> hidden) and nirtorch 2.6 runs that subgraph
    as written: its spikes are not the network's (this test fails once that is fixed)."""
    from snntorch.import_nir import import_from_nir

    for recurrent in (False, True):
        method, hp, batch = trained("bptt-snntorch", recurrent=recurrent)
        x = dense(batch)
        weights, graph = roundtrip(method, hp, tmp_path, step_s=1e-4)
        ref_z, _ = reference(weights, x, hp)
        z = run_stepwise(import_from_nir(export.hidden_subgraph(graph)), x)
        assert torch.equal(z, ref_z) == (not recurrent)


@pytest.fixture
def tiny_run(tmp_path):
    from datasets import write_spike_dataset

    rng = np.random.default_rng(0)
    pairs = lambda n: [((rng.uniform(0, 0.04, 60), rng.integers(0, 40, 60) + 40 * (i % 2)), i % 2)
                       for i in range(n)]
    prefix = write_spike_dataset(tmp_path / "d", {"train": pairs(20), "test": pairs(8)})
    out = tmp_path / "runs"
    code = cli.main(["run", "--method", "eventprop", "--dataset", str(prefix), "--epochs", "1",
                     "--set", "hidden=8", "--set", "steps=40", "--set", "batch_size=8",
                     "--out", str(out), "--no-progress"])
    assert code == 0
    return next(out.glob("*.json"))


def test_cli_exports_a_finished_run(tiny_run, tmp_path, capsys):
    from bench.checkpoints import load_state

    assert cli.main(["export", str(tiny_run), "--format", "nir", "--out", str(tmp_path / "r.nir")]) == 0
    graph = nir.read(str(tmp_path / "r.nir"))
    record = json.loads(tiny_run.read_text())
    state, _ = load_state(tiny_run.parent / record["weights_file"][: -len(".pt")])
    np.testing.assert_array_equal(graph.nodes["w_in"].weight,
                                  export.network_weights(state)["w_in"].T)
    assert graph.nodes["w_in"].weight.shape == (8, 80)
    run_id = record["run_id"]  # by id, from the runs folder
    assert cli.main(["export", run_id, "--runs", str(tiny_run.parent), "--out",
                     str(tmp_path / "s.nir")]) == 0


def test_other_networks_refuse_in_one_line(tiny_run, tmp_path, capsys):
    record = json.loads(tiny_run.read_text())
    record["method"] = "ann-conversion"
    fake = tmp_path / "other.json"
    fake.write_text(json.dumps(record))
    assert cli.main(["export", str(fake), "--out", str(tmp_path / "x.nir")]) == 2
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and "does not train the shared LIF network" in err
    assert not (tmp_path / "x.nir").exists()
