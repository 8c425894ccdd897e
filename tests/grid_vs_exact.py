"""How close EventProp's grid-mode gradient is to the exact-mode gradient on real data, as the
step dt shrinks: one batch of a dataset's training split, the same initial weights, float64, no
regulariser; for each dt the cosine similarity of the two modes' gradients per matrix, and the
hidden spikes per neuron of each mode's forward pass. Not a test (exact mode takes minutes on a
speech batch); run it as a script::

    .venv/bin/python tests/grid_vs_exact.py --dataset spoken-digits --samples 8

The grid adjoint is a first-order discretisation of the exact one (docs/eventprop.md, section 3):
where the cosine of the hidden matrices is far below 1, grid-mode EventProp follows a different
direction from the spike-time gradient it stands for.
"""

from __future__ import annotations

import argparse
import sys
import warnings
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench import measure, registry  # noqa: E402
from methods.api import make_hparams  # noqa: E402


def gradients(data, batch, timing: str, steps: int, dt_ms: float, seed: int):
    """(gradients, hidden spikes per neuron and sample) of one batch in one timing mode."""
    from methods.eventprop.adapter import loss_and_grads

    cls = registry.load_method("eventprop")
    hparams = make_hparams(cls.Hparams, {"steps": steps, "dt_ms": dt_ms, "timing": timing,
                                         "dtype": "float64", "reg_strength": 0.0})
    method = cls()
    method.setup(data.spec, hparams, seed, "cpu")
    _, grads, _, fw = loss_and_grads(method.net(), batch)
    return grads, float(fw.counts.sum()) / fw.counts.numel()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--dataset", default="spoken-digits")
    parser.add_argument("--samples", type=int, default=8)
    parser.add_argument("--dts", default="10,5,2,1,0.5", help="steps dt in ms, comma-separated")
    parser.add_argument("--window-ms", type=float, default=1000.0)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    measure.configure_threads(1)
    measure.apply_torch_threads(1)
    warnings.filterwarnings("ignore", message="eventprop: dt_ms")  # the coarse steps are the point
    import datasets

    print(f"{args.dataset}, {args.samples} training samples, seed {args.seed}: cosine of grid- "
          "and exact-mode gradients")
    print("dt (ms) | W_in | W_rec | W_out | spikes/neuron grid | exact")
    for dt_ms in (float(x) for x in args.dts.split(",")):
        steps = int(round(args.window_ms / dt_ms))
        data = datasets.open_dataset(args.dataset, steps=steps, dt_ms=dt_ms)
        batch = next(iter(data.batches("train", args.samples, fmt="events")))
        grid, grid_rate = gradients(data, batch, "grid", steps, dt_ms, args.seed)
        exact, exact_rate = gradients(data, batch, "exact", steps, dt_ms, args.seed)
        cos = {key: float(torch.nn.functional.cosine_similarity(
            grid[key].flatten(), exact[key].flatten(), dim=0)) for key in grid}
        print(f"{dt_ms:g} | {cos['w_in']:.3f} | {cos.get('w_rec', float('nan')):.3f} | "
              f"{cos['w_out']:.3f} | {grid_rate:.1f} | {exact_rate:.1f}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
