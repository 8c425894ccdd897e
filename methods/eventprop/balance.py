"""How much the spike-count regulariser weighs against the loss at initialisation.

For each readout and hidden weight matrix: |g(reg_strength) - g(0)| / |g(0)|, the norm of the
regulariser's share of the gradient over the norm of the loss-only gradient, averaged over a few
batches of a dataset with a freshly initialised default network. A ratio above 1 means that the
regulariser, not the classification loss, sets the direction Adam follows.

    python -m methods.eventprop.balance            # the embedded set, the default strength
    python -m methods.eventprop.balance --reg-strength 0.01 --batches 3
"""

from __future__ import annotations

import argparse
import dataclasses

import numpy as np

from datasets import open_dataset
from methods.api import make_hparams
from methods.eventprop.adapter import EventProp, loss_and_grads
from methods.eventprop.hparams import EventPropHparams

READOUTS = ("sum", "sum_exp", "gauss_window", "max")
HIDDEN_WEIGHTS = ("w_in", "w_rec")


def reg_ratios(dataset: str = "synthetic", reg_strength: float | None = None, batches: int = 3,
               seed: int = 0, readouts: tuple[str, ...] = READOUTS,
               data_dir: str | None = None, **overrides) -> dict[str, dict[str, float]]:
    """{readout: {weight: mean over batches of |g_reg| / |g_loss|}} at initialisation;
    ``reg_strength`` None = the default."""
    ds = open_dataset(dataset, data_dir=data_dir)
    spec = ds.spec
    strength = EventPropHparams.reg_strength if reg_strength is None else reg_strength
    table: dict[str, dict[str, float]] = {}
    for readout in readouts:
        values = {"steps": spec.n_steps, "dt_ms": spec.dt_ms, "loss": readout,
                  "reg_strength": strength, **overrides}
        method = EventProp()
        method.setup(spec, make_hparams(EventPropHparams, values), seed, "cpu")
        net = method.net()
        plain = dataclasses.replace(net, hp=dataclasses.replace(net.hp, reg_strength=0.0))
        ratios: dict[str, list[float]] = {key: [] for key in HIDDEN_WEIGHTS if key in method.params}
        for i, batch in enumerate(ds.batches("train", method.hp.batch_size, fmt="events",
                                             shuffle=True, seed=seed)):
            if i == batches:
                break
            g_reg = loss_and_grads(net, batch)[1]
            g_loss = loss_and_grads(plain, batch)[1]
            for key in ratios:
                loss_norm = float(g_loss[key].norm())
                ratios[key].append(float((g_reg[key] - g_loss[key]).norm()) / max(loss_norm, 1e-300))
        table[readout] = {key: float(np.mean(r)) for key, r in ratios.items()}
    return table


def format_table(table: dict[str, dict[str, float]], strength: float) -> str:
    keys = sorted({k for row in table.values() for k in row})
    lines = [f"| readout (reg_strength {strength:g}) | " + " | ".join(keys) + " |",
             "|---|" + "---:|" * len(keys)]
    for readout, row in table.items():
        lines.append(f"| {readout} | " + " | ".join(f"{row.get(k, float('nan')):.3f}" for k in keys)
                     + " |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dataset", default="synthetic")
    parser.add_argument("--reg-strength", type=float, default=None)
    parser.add_argument("--batches", type=int, default=3)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    strength = EventPropHparams.reg_strength if args.reg_strength is None else args.reg_strength
    table = reg_ratios(args.dataset, strength, args.batches, args.seed)
    print(format_table(table, strength))


if __name__ == "__main__":
    main()
