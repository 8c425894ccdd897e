"""``python -m bench data cochlea-check``: this suite's cochlea against the lauscher package.

Both convert the same short synthetic clips at the same rate with the same seeds. Printed:
CPU time of each (lauscher's worker processes included) and their ratio, with and without the
suite's one-off start-up (membrane table and kernel compilation); for each clip the correlation of
the per-channel spike-count profiles, each averaged over the seeds (the fibres are stochastic), with
lauscher's own seed-to-seed correlation beside it; and the ratio of total spike counts.
lauscher (1.0.1, the ``test`` extra) is imported only here.
"""

from __future__ import annotations

import argparse
import resource
import time

import numpy as np

from ..types import InputError


def clips(n: int, seconds: float, rate: int) -> list[tuple[str, np.ndarray]]:
    """Deterministic test clips: a vowel-like harmonic complex, a chirp, tones in noise, ..."""
    t = np.arange(int(round(seconds * rate))) / rate
    rng = np.random.default_rng(1234)
    f0 = 120.0 + 30.0 * np.sin(2 * np.pi * 3 * t)
    phase = 2 * np.pi * np.cumsum(f0) / rate
    formants = (700.0, 1200.0, 2600.0)
    vowel = sum(np.sin(k * phase) * sum(np.exp(-((k * 120.0 - f) / 150.0) ** 2) for f in formants)
                for k in range(1, 30))
    chirp = np.sin(2 * np.pi * (200.0 * t + (4000.0 - 200.0) * t**2 / (2 * seconds)))
    tones = np.sin(2 * np.pi * 500 * t) + 0.7 * np.sin(2 * np.pi * 3100 * t) \
        + 0.3 * rng.standard_normal(t.size)
    noise = rng.standard_normal(t.size) * np.hanning(t.size)
    made = [("vowel", vowel), ("chirp", chirp), ("tones+noise", tones), ("noise burst", noise)]
    return made[:n]


def _cpu() -> float:
    own = resource.getrusage(resource.RUSAGE_SELF)
    kids = resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + kids.ru_utime + kids.ru_stime


def _lauscher(samples: np.ndarray, rate: int, seed: int) -> np.ndarray:
    from lauscher.audiowaves import MonoAudioWave
    from lauscher.helpers import CommandLineArguments
    from lauscher.transformations.wave2spike import Wave2Spike

    CommandLineArguments().num_concurrent_jobs = 1
    np.random.seed(seed)
    spikes = MonoAudioWave(samples.copy(), rate).transform(Wave2Spike(num_channels=700))
    return np.asarray(spikes.spike_labels, dtype=np.int64)


def _ours(samples: np.ndarray, rate: int, seed: int) -> np.ndarray:
    from ..cochlea import convert_wave

    return convert_wave(samples, rate, seed=seed)[1]


def compare(n_clips: int, seconds: float, n_seeds: int, rate: int) -> dict:
    start = _cpu()
    _ours(clips(1, 0.05, rate)[0][1], rate, 0)  # membrane table + compiled kernels
    startup = _cpu() - start
    rows, cpu_l, cpu_o, total_l, total_o = [], 0.0, 0.0, 0, 0
    for name, samples in clips(n_clips, seconds, rate):
        prof_l, prof_o = [], []
        for seed in range(n_seeds):
            t0 = _cpu()
            units = _lauscher(samples, rate, seed)
            cpu_l += _cpu() - t0
            prof_l.append(np.bincount(units, minlength=700))
            t0 = _cpu()
            units = _ours(samples, rate, seed)
            cpu_o += _cpu() - t0
            prof_o.append(np.bincount(units, minlength=700))
        total_l += int(np.sum(prof_l))
        total_o += int(np.sum(prof_o))
        corr = float(np.corrcoef(np.mean(prof_l, 0), np.mean(prof_o, 0))[0, 1])
        self_corr = float(np.corrcoef(prof_l[0], prof_l[1])[0, 1]) if n_seeds > 1 else float("nan")
        rows.append({"clip": name, "corr": corr, "lauscher_seed_to_seed": self_corr,
                     "spikes_lauscher": int(np.sum(prof_l)), "spikes_ours": int(np.sum(prof_o))})
    return {"rows": rows, "cpu_lauscher": cpu_l, "cpu_ours": cpu_o, "startup": startup,
            "total_lauscher": total_l, "total_ours": total_o}


def main(args: argparse.Namespace) -> int:
    try:
        import lauscher  # noqa: F401
    except ImportError:
        raise InputError("lauscher is not installed: pip install lauscher==1.0.1 "
                         "(the test extra)") from None
    if not (1 <= args.clips <= 4 and 0.05 <= args.seconds <= 2.0 and args.seeds >= 1):
        raise InputError("--clips 1..4, --seconds 0.05..2, --seeds >= 1")
    t0 = time.time()
    r = compare(args.clips, args.seconds, args.seeds, args.rate)
    print(f"{args.clips} clips x {args.seconds:g} s x {args.seeds} seeds at {args.rate} Hz")
    for row in r["rows"]:
        print(f"  {row['clip']:12s} profile corr {row['corr']:.4f} (lauscher seed 0 vs 1: "
              f"{row['lauscher_seed_to_seed']:.4f})  spikes lauscher {row['spikes_lauscher']} "
              f"ours {row['spikes_ours']}")
    mean_corr = float(np.mean([row["corr"] for row in r["rows"]]))
    print(f"CPU s: lauscher {r['cpu_lauscher']:.1f}, ours {r['cpu_ours']:.2f} "
          f"(+ {r['startup']:.2f} one-off start-up)")
    print(f"CPU ratio: {r['cpu_lauscher'] / r['cpu_ours']:.0f}x "
          f"({r['cpu_lauscher'] / (r['cpu_ours'] + r['startup']):.0f}x counting the start-up); "
          "target >= 50x")
    print(f"profile correlation (mean over clips, seed-averaged profiles): {mean_corr:.4f}; "
          "target >= 0.95")
    print(f"spike totals ours / lauscher: {r['total_ours'] / max(r['total_lauscher'], 1):.4f}; "
          "target within 0.90..1.10")
    print(f"wall {time.time() - t0:.0f} s")
    return 0
