"""``python -m bench export RUN --format nir --out FILE.nir``: a trained run's network as a NIR
graph (Pedersen et al. 2024, "Neuromorphic intermediate representation"), for simulators and
neuromorphic hardware that read NIR.

Only methods that train the shared network of :mod:`methods.lif` can be exported (others refuse
with one line). The graph::

    input --w_in--> hidden (CubaLIF) --w_out--> readout (CubaLI) --> output
                      ^        |
                      +-w_rec--+          (w_rec only when the network is recurrent)

with ``nir.Linear`` weights ``W.T`` (NIR stores (post, pre); the suite (pre, post)) and no bias.

Mapping. NIR describes neurons by differential equations; the simulators that read it step them
with forward Euler at a step ``dt`` (norse's and snntorch's importers do), so that a CubaLIF reads

    I[t] = (1 - dt/tau_syn) I[t-1] + (dt/tau_syn) w_in S[t]
    V[t] = (1 - dt/tau_mem) V[t-1] + (dt/tau_mem) r I[t],   spike when V > v_threshold,
                                                             then V = v_reset.

The suite's step (methods/lif.py: decays alpha, beta, alpha_o) is reproduced exactly at
``dt = step_s`` (default: the run's ``dt_ms`` in seconds) with, per hidden neuron,

    tau_syn = dt / (1 - beta)        w_in = tau_syn / dt = 1 / (1 - beta)   (I in suite units)
    tau_mem = dt / (1 - alpha)       r = tau_mem / dt = 1 / (1 - alpha)
    v_threshold = theta / (1 - alpha),  v_reset = 0,  v_leak = 0

so the file's hidden membrane potential is the suite's V divided by (1 - alpha) (snntorch's
importer requires r = tau_mem / dt, which fixes that scale); spikes, resets and currents are the
suite's. The readout CubaLI has tau_syn as above, tau_mem = dt / (1 - alpha_o), r = 1 and
w_in = 1 / (1 - beta), so its V is the suite's output trace itself. These time constants are
Euler time constants: dt / (1 - exp(-dt/tau)) is slightly above the suite's tau (5.52 ms for
tau_syn = 5 ms at dt = 1 ms); a simulator that integrates the equations exactly rather than by
Euler steps sees exp(-dt/tau_nir) and drifts from the suite. snntorch's importer assumes dt = 0.1 ms
whatever the file: export with ``--step-s 1e-4`` for it (the graph's times are then ten times
shorter than the run's, step for step the same network). The graph's metadata names ``dt_s``.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

import numpy as np

from bench import registry
from methods import lif
from methods.api import InputError

FORMATS = ("nir",)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("run", metavar="RUN", help="a run record (.json) or its run id")
    parser.add_argument("--runs", default="reports/runs",
                        help="folder of run records, for a run given by id (default reports/runs)")
    parser.add_argument("--format", choices=FORMATS, default="nir")
    parser.add_argument("--out", required=True, metavar="FILE.nir", help="where the graph goes")
    parser.add_argument("--step-s", type=float, default=None, metavar="SECONDS",
                        help="simulation step the graph's time constants are for (default: the "
                             "run's dt_ms; snntorch's NIR importer assumes 1e-4)")


def main(args: argparse.Namespace) -> int:
    record, record_path = find_record(args.run, Path(args.runs))
    weights = load_run_weights(record, record_path.parent)
    graph = build_graph(weights, record["hparams"], step_s=args.step_s,
                        metadata={"run_id": record.get("run_id"), "method": record.get("method")})
    write(graph, Path(args.out))
    print(f"{record['method']} run {record.get('run_id')}: NIR graph written to {args.out}")
    return 0


# ---------------------------------------------------------------------------------------------
# Finding a run and its weights


def find_record(run: str, runs: Path) -> tuple[dict, Path]:
    path = Path(run)
    if not path.is_file():
        path = runs / f"{run}.json"
    if not path.is_file():
        raise InputError(f"no run record {run!r} (neither a file nor {path})")
    try:
        record = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise InputError(f"{path}: not a run record ({exc})") from None
    if not isinstance(record, dict) or "method" not in record or "hparams" not in record:
        raise InputError(f"{path}: not a run record (no method or hparams)")
    if not registry.uses_shared_network(record["method"]):
        raise InputError(f"method {record['method']!r} does not train the shared LIF network; "
                         f"only {', '.join(sorted(registry.SHARED_NETWORK))} can be exported")
    return record, path


def load_run_weights(record: dict, folder: Path) -> dict[str, np.ndarray]:
    name = record.get("weights_file")
    if not name:
        raise InputError(f"run {record.get('run_id')} has no weights file (status "
                         f"{record.get('status')}; only finished runs save their weights)")
    from bench.checkpoints import load_state

    stem = folder / name
    stem = stem.with_name(stem.name[: -len(".pt")]) if stem.name.endswith(".pt") else stem
    state, _ = load_state(stem)
    return network_weights(state)


# Where a flax (nnx) module tree keeps the weights: its pure-dict paths, (pre, post) kernels.
NNX_PATHS = {"w_in": ("params", "input", "kernel"), "w_rec": ("params", "core", "hidden", "w_rec"),
             "w_out": ("params", "core", "readout", "kernel")}


def network_weights(state: Any) -> dict[str, np.ndarray]:
    """``w_in``, ``w_out`` and (when present) ``w_rec`` as float32 (pre, post) arrays, from a
    method's ``state_dict()``: the first mapping in it (depth first) holding w_in and w_out, else
    the flax module paths of ``NNX_PATHS``."""
    found = _find_weights(state)
    if found is None:
        found = {key: _at(state, path) for key, path in NNX_PATHS.items()}
        found = found if found["w_in"] is not None and found["w_out"] is not None else None
    if found is None:
        raise InputError("the saved state holds no w_in / w_out weights of the shared network")
    out = {}
    for key in ("w_in", "w_rec", "w_out"):
        value = found.get(key)
        if value is None:
            continue
        if hasattr(value, "detach"):
            value = value.detach().cpu().numpy()
        out[key] = np.asarray(value, dtype=np.float32)
    hidden = out["w_in"].shape[1]
    if out["w_out"].shape[0] != hidden or ("w_rec" in out and out["w_rec"].shape != (hidden, hidden)):
        raise InputError("w_in, w_rec and w_out shapes do not form one network")
    return out


def _at(node: Any, path: tuple[str, ...]) -> Any:
    for key in path:
        if not isinstance(node, dict) or key not in node:
            return None
        node = node[key]
    return node


def _find_weights(node: Any) -> dict | None:
    if isinstance(node, dict):
        if "w_in" in node and "w_out" in node:
            return node
        children = node.values()
    elif isinstance(node, (list, tuple)):
        children = node
    else:
        return None
    for child in children:
        found = _find_weights(child)
        if found is not None:
            return found
    return None


# ---------------------------------------------------------------------------------------------
# The graph


def build_graph(weights: dict[str, np.ndarray], hparams: dict, *, step_s: float | None = None,
                metadata: dict | None = None):
    """The NIR graph of the shared network with these weights (see the module docstring)."""
    import nir

    dt = float(hparams["dt_ms"]) / 1000.0 if step_s is None else float(step_s)
    if hparams.get("neuron", "lif") != "lif": raise InputError(f"NIR export describes LIF hidden neurons only, not neuron={hparams['neuron']}")  # noqa: E501,E701
    if not dt > 0:
        raise InputError(f"the simulation step must be positive, got {dt}")
    decays = lif.Decays.from_taus(hparams["tau_mem"], hparams["tau_syn"], hparams["tau_out"],
                                  hparams["dt_ms"])
    w_in, w_out = weights["w_in"], weights["w_out"]
    n_in, hidden = w_in.shape
    n_out = w_out.shape[1]
    ones_h, ones_o = np.ones(hidden), np.ones(n_out)
    tau_syn = dt / (1.0 - decays.beta)
    tau_mem = dt / (1.0 - decays.alpha)
    nodes = {
        "input": nir.Input(input_type={"input": np.array([n_in])}),
        "w_in": nir.Linear(weight=w_in.T.copy()),
        "hidden": nir.CubaLIF(
            tau_syn=tau_syn * ones_h, tau_mem=tau_mem * ones_h, r=tau_mem / dt * ones_h,
            v_leak=0.0 * ones_h, v_threshold=lif.THETA / (1.0 - decays.alpha) * ones_h,
            v_reset=0.0 * ones_h, w_in=tau_syn / dt * ones_h),
        "w_out": nir.Linear(weight=w_out.T.copy()),
        "readout": nir.CubaLI(
            tau_syn=tau_syn * ones_o, tau_mem=dt / (1.0 - decays.alpha_out) * ones_o,
            r=ones_o.copy(), v_leak=0.0 * ones_o, w_in=tau_syn / dt * ones_o),
        "output": nir.Output(output_type={"output": np.array([n_out])}),
    }
    edges = [("input", "w_in"), ("w_in", "hidden"), ("hidden", "w_out"), ("w_out", "readout"),
             ("readout", "output")]
    if weights.get("w_rec") is not None:
        nodes["w_rec"] = nir.Linear(weight=weights["w_rec"].T.copy())
        edges += [("hidden", "w_rec"), ("w_rec", "hidden")]
    meta = {"source": "snn-bench", "dt_s": dt, "integration": "forward Euler at dt_s",
            "hidden_v_scale": 1.0 / (1.0 - decays.alpha), **(metadata or {})}
    return nir.NIRGraph(nodes=nodes, edges=edges,
                        metadata={k: v for k, v in meta.items() if v is not None})


def hidden_subgraph(graph):
    """The graph up to the hidden layer (input, w_in, hidden, w_rec), whose output is the hidden
    spikes: for importers that do not know the readout's CubaLI node."""
    import nir

    keep = {"input", "w_in", "hidden", "w_rec"}
    nodes = {name: node for name, node in graph.nodes.items() if name in keep}
    hidden = graph.nodes["hidden"].v_threshold.shape[0]
    nodes["output"] = nir.Output(output_type={"output": np.array([hidden])})
    edges = [e for e in graph.edges if e[0] in keep and e[1] in keep] + [("hidden", "output")]
    return nir.NIRGraph(nodes=nodes, edges=edges, metadata=dict(graph.metadata))


def write(graph, path: Path) -> None:
    import nir

    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        nir.write(str(path), graph)
    except OSError as exc:
        raise InputError(f"cannot write {path}: {exc}") from None
