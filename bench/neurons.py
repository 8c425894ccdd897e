"""``python -m bench neurons``: the neuron-model gallery of :mod:`methods.neurons` as figures
(PNG and SVG) and a cost table (Markdown), written to ``--out``.

Figures: Hodgkin-Huxley responses to 5, 10 and 15 ms current steps; the LIF membrane with its
threshold and resets; the Izhikevich patterns of the published parameter sets; the f-I curves of
the four models. Cost: wall-clock nanoseconds per neuron-step for 10,000 neurons on one thread,
each model at the time step its dynamics need, the models interleaved in rounds so that machine
load hits them alike; the median over rounds is reported, with ratios to the LIF.
"""

from __future__ import annotations

import argparse
import statistics
import time
from pathlib import Path

from datasets.types import InputError

DEFAULT_OUT = "reports/neurons"
COST_NEURONS = 10_000
IZHIKEVICH_GALLERY_DT = 0.25  # ms; at 1 ms the FS and LTS intervals are off by 20-50 %


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--out", default=DEFAULT_OUT, help=f"output directory (default {DEFAULT_OUT})")
    parser.add_argument("--device", choices=("cpu", "cuda"), default="cpu",
                        help="device of the cost table (figures are computed on the CPU); cuda has "
                             "not been run on a GPU yet")
    parser.add_argument("--cost-steps", type=int, default=200,
                        help="timed steps per model and round (default 200)")
    parser.add_argument("--rounds", type=int, default=5, help="timing rounds (default 5)")


def main(args: argparse.Namespace) -> int:
    import torch

    if args.device == "cuda" and not torch.cuda.is_available():
        raise InputError("--device cuda requested but torch sees no CUDA device")
    if args.cost_steps < 1 or args.rounds < 1:
        raise InputError("--cost-steps and --rounds must be at least 1")
    torch.set_num_threads(1)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    start = time.perf_counter()
    import matplotlib

    matplotlib.use("Agg")
    for figure in (hh_steps_figure, lif_trace_figure, izhikevich_figure, f_i_figure):
        name, fig = figure()
        for suffix in ("png", "svg"):
            fig.savefig(out / f"{name}.{suffix}", dpi=120, bbox_inches="tight")
        matplotlib.pyplot.close(fig)
        print(f"wrote {out / name}.png and .svg")
    rows = cost_rows(args.device, args.cost_steps, args.rounds)
    table = cost_markdown(rows, args.device)
    (out / "cost.md").write_text(table)
    print(table)
    print(f"wrote {out / 'cost.md'} ({time.perf_counter() - start:.1f} s in all)")
    return 0


# --- figures ---------------------------------------------------------------------------------


def _axes(rows: int, cols: int = 1, height: float = 2.0, width: float = 7.0):
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(rows, cols, figsize=(width, height * rows), squeeze=False)
    return fig, axes


def hh_steps_figure():
    import torch

    from methods.neurons import hh
    from methods.neurons.simulate import run

    durations = torch.tensor([5.0, 10.0, 15.0])
    amplitude, onset = 20.0, 5.0
    model = hh.HodgkinHuxley(len(durations))
    stimulus = lambda t: amplitude * ((t >= onset) & (t < onset + durations)).float()  # noqa: E731
    times, v, _ = run(model, stimulus, 45.0, record_every=2)
    fig, axes = _axes(len(durations), height=1.6)
    for j, d in enumerate(durations.tolist()):
        ax = axes[j, 0]
        ax.plot(times, v[:, j], lw=1.0)
        ax.axvspan(onset, onset + d, color="orange", alpha=0.2)
        ax.set(ylabel="V (mV)", ylim=(-85, 50))
        ax.set_title(f"{amplitude:.0f} uA/cm^2 for {d:.0f} ms (shaded)", fontsize=8)
    axes[-1, 0].set_xlabel("t (ms)")
    fig.suptitle(f"Hodgkin-Huxley, exponential Euler, dt {model.dt} ms", fontsize=10)
    fig.tight_layout()
    return "hh_steps", fig


def lif_trace_figure():
    from methods import lif
    from methods.neurons import lif as lif_cell
    from methods.neurons.simulate import run, spike_times

    cell = lif_cell.LIFCell(1)
    level = 1.5  # synaptic current, in units of the threshold current
    x = lif_cell.constant_current_input(level, cell)  # the synaptic current settles at `level`
    stimulus = lambda t: x if 20.0 <= t < 170.0 else 0.0  # noqa: E731
    times, v, fired = run(cell, stimulus, 200.0)
    fig, axes = _axes(1, height=2.6)
    ax = axes[0, 0]
    ax.plot(times, v[:, 0], label="V")
    ax.axhline(lif.THETA, color="k", ls="--", lw=0.8, label="threshold")
    for t in spike_times(fired, 0, cell.dt):
        ax.axvline(t, color="r", lw=0.5, alpha=0.6)
    ax.set(xlabel="t (ms)", ylabel="V (threshold = 1)",
           title=f"LIF (methods/lif.py): input current step to {level} from 20 to 170 ms; "
                 "red: spikes, V reset to 0")
    ax.legend(fontsize=8, loc="lower right")
    return "lif_trace", fig


# (set, stimulus(t) in the model's units, description)
IZHIKEVICH_PANELS = [
    ("RS", lambda t: 10.0 * (t >= 20), "regular spiking, step 10"),
    ("IB", lambda t: 10.0 * (t >= 20), "intrinsically bursting, step 10"),
    ("CH", lambda t: 10.0 * (t >= 20), "chattering, step 10"),
    ("FS", lambda t: 10.0 * (t >= 20), "fast spiking, step 10"),
    ("LTS", lambda t: 10.0 * (t >= 20), "low-threshold spiking, step 10"),
    ("TC", lambda t: -10.0 * (50 <= t < 150), "thalamo-cortical: rebound burst after -10"),
    ("TC", lambda t: 2.0 * (t >= 20), "thalamo-cortical: tonic, step 2"),
    ("RZ", lambda t: 0.5 * (50 <= t < 51) + 4.0 * ((150 <= t < 151) | (180 <= t < 181)),
     "resonator: ringing after a weak pulse, spike on a resonant pair"),
]


def izhikevich_figure():
    import torch

    from methods.neurons import izhikevich
    from methods.neurons.simulate import run, spike_times

    sets = [name for name, _, _ in IZHIKEVICH_PANELS]
    model = izhikevich.Izhikevich(sets, IZHIKEVICH_GALLERY_DT)
    stimulus = lambda t: torch.tensor([float(f(t)) for _, f, _ in IZHIKEVICH_PANELS])  # noqa: E731
    times, v, fired = run(model, stimulus, 250.0)
    fig, axes = _axes(len(sets) // 2, 2, height=1.7, width=11.0)
    for j, (name, _, text) in enumerate(IZHIKEVICH_PANELS):
        ax = axes[j // 2, j % 2]
        trace = v[:, j].clone()
        for t in spike_times(fired, j, model.dt):  # draw each spike up to the peak
            trace[int(round(t / model.dt)) - 1] = izhikevich.V_PEAK
        ax.plot(times, trace, lw=0.8)
        ax.set_title(f"{name}: {text}", fontsize=8)
        ax.set_ylim(-90, 40)
    for ax in axes[-1]:
        ax.set_xlabel("t (ms)")
    fig.suptitle(f"Izhikevich (2003) parameter sets, v (mV), dt {model.dt} ms", fontsize=10)
    fig.tight_layout()
    return "izhikevich_patterns", fig


def f_i_curves() -> dict[str, tuple[list[float], dict[str, list[float]], str]]:
    """model -> (inputs, {label: rates in Hz}, x label)."""
    import torch

    from methods.neurons import adlif, hh, izhikevich, lif as lif_cell
    from methods.neurons.simulate import firing_rates

    curves = {}
    currents = torch.linspace(0.0, 20.0, 41)
    rates = firing_rates(hh.HodgkinHuxley(len(currents)), currents, 300.0, 100.0)
    curves["Hodgkin-Huxley"] = (currents.tolist(), {"HH": rates.tolist()}, "I (uA/cm^2)")
    levels = torch.linspace(0.0, 4.0, 41)
    lif_rates = {}
    for label, cls in (("LIF", lif_cell.LIFCell), ("adaptive LIF", adlif.AdaptiveLIFCell)):
        cell = cls(len(levels))
        cell.reset(levels)
        x = (1.0 - cell.decays.beta) * levels
        lif_rates[label] = firing_rates(cell, x, 1000.0, 500.0).tolist()
    lif_rates["closed form (LIF)"] = [lif_cell.closed_form_rate(float(c)) for c in levels]
    curves["LIF and adaptive LIF"] = (levels.tolist(), lif_rates, "synaptic current (threshold = 1)")
    amplitudes = torch.linspace(0.0, 20.0, 41)
    izh = {}
    for name in ("RS", "FS", "LTS", "CH"):
        model = izhikevich.Izhikevich([name] * len(amplitudes), IZHIKEVICH_GALLERY_DT)
        izh[name] = firing_rates(model, amplitudes, 1000.0, 500.0).tolist()
    curves["Izhikevich"] = (amplitudes.tolist(), izh, "I")
    return curves


def f_i_figure():
    curves = f_i_curves()
    fig, axes = _axes(1, len(curves), height=3.2, width=13.0)
    for ax, (title, (inputs, rates, xlabel)) in zip(axes[0], curves.items()):
        for label, values in rates.items():
            style = dict(ls="--", color="k", lw=0.8) if "closed" in label else dict(marker=".")
            ax.plot(inputs, values, label=label, **style)
        ax.set(title=title, xlabel=xlabel, ylabel="rate (Hz)")
        ax.legend(fontsize=7)
    fig.suptitle("f-I curves (rate after the first 100-500 ms of a constant input)", fontsize=10)
    fig.tight_layout()
    return "f_i_curves", fig


# --- cost ------------------------------------------------------------------------------------


def cost_models(device: str):
    """(label, dt in ms, factory of a model of COST_NEURONS neurons, its input)."""
    from methods.neurons import adlif, hh, izhikevich, lif as lif_cell

    n = COST_NEURONS
    return [
        ("LIF", lif_cell.DEFAULT_DT_MS, lambda: lif_cell.LIFCell(n, device=device), 0.1),
        ("adaptive LIF", adlif.DEFAULT_DT_MS, lambda: adlif.AdaptiveLIFCell(n, device=device), 0.1),
        ("Izhikevich (published 1 ms step)", 1.0,
         lambda: izhikevich.Izhikevich(["RS"] * n, 1.0, device=device), 10.0),
        (f"Izhikevich ({IZHIKEVICH_GALLERY_DT} ms, converged patterns)", IZHIKEVICH_GALLERY_DT,
         lambda: izhikevich.Izhikevich(["RS"] * n, IZHIKEVICH_GALLERY_DT, device=device), 10.0),
        ("Hodgkin-Huxley", hh.DEFAULT_DT_MS, lambda: hh.HodgkinHuxley(n, device=device), 10.0),
    ]


def cost_rows(device: str, steps: int, rounds: int) -> list[dict]:
    """Median ns per neuron-step of each model over interleaved rounds."""
    import torch

    from methods.neurons.simulate import step_cost_ns

    entries = []
    for label, dt, factory, level in cost_models(device):
        model = factory()
        current = torch.full((COST_NEURONS,), level, device=device)
        step_cost_ns(model, current, 20)  # warm-up
        entries.append((label, dt, model, current, []))
    for _ in range(rounds):
        for _, _, model, current, samples in entries:
            samples.append(step_cost_ns(model, current, steps))
    rows = [{"model": label, "dt_ms": dt, "ns_per_step": statistics.median(samples)}
            for label, dt, _, _, samples in entries]
    for row in rows:
        row["ns_per_ms"] = row["ns_per_step"] / row["dt_ms"]
    return rows


def cost_markdown(rows: list[dict], device: str) -> str:
    import torch

    base = rows[0]
    lines = [f"Cost of one neuron-step, {COST_NEURONS} neurons, torch {torch.__version__} on "
             f"{device} ({torch.get_num_threads()} thread), median of interleaved rounds:", "",
             "| model | dt (ms) | ns per neuron-step | x LIF (per step) | ns per neuron per "
             "simulated ms | x LIF (per simulated ms) |", "|---|---|---|---|---|---|"]
    for row in rows:
        lines.append(f"| {row['model']} | {row['dt_ms']:g} | {row['ns_per_step']:.2f} | "
                     f"{row['ns_per_step'] / base['ns_per_step']:.2f} | {row['ns_per_ms']:.2f} | "
                     f"{row['ns_per_ms'] / base['ns_per_ms']:.1f} |")
    return "\n".join(lines) + "\n"
