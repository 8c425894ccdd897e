"""``python -m bench data cochlea-check``: this suite's cochlea against the lauscher package.

Both convert the same short synthetic clips at the same rate. Printed: CPU time per conversion of
each (lauscher's worker processes included) and their ratio, with and without the suite's one-off
start-up (membrane table and kernel compilation); for each clip the correlation of the per-channel
spike-count profiles, lauscher's averaged over its seeds and the suite's over more seeds (it is
cheap), beside the ceiling that lauscher's own seed noise allows (the split-half reliability of its
mean profile, Spearman-Brown corrected; its square root bounds the correlation); and the ratio of
mean spike totals per conversion.
lauscher (1.0.1, the ``test`` extra) is imported only here.
"""

from __future__ import annotations

import argparse
import resource
import time

import numpy as np

from ..types import InputError
from .audio import check_rate


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


def _ceiling(profiles: list[np.ndarray]) -> float:
    """Reliability of the mean of ``profiles``: split-half correlation, Spearman-Brown corrected."""
    if len(profiles) < 2:
        return float("nan")
    half = len(profiles) // 2
    r = float(np.corrcoef(np.mean(profiles[:half], 0), np.mean(profiles[half:], 0))[0, 1])
    return 2 * r / (1 + r)


def compare(n_clips: int, seconds: float, n_seeds: int, our_seeds: int, rate: int) -> dict:
    start = _cpu()
    _ours(clips(1, 0.05, rate)[0][1], rate, 0)  # membrane table + compiled kernels
    startup = _cpu() - start
    rows, cpu_l, cpu_o, total_l, total_o = [], 0.0, 0.0, 0.0, 0.0
    for name, samples in clips(n_clips, seconds, rate):
        prof_l, prof_o = [], []
        for seed in range(n_seeds):
            t0 = _cpu()
            units = _lauscher(samples, rate, seed)
            cpu_l += _cpu() - t0
            prof_l.append(np.bincount(units, minlength=700))
        for seed in range(our_seeds):
            t0 = _cpu()
            units = _ours(samples, rate, seed)
            cpu_o += _cpu() - t0
            prof_o.append(np.bincount(units, minlength=700))
        mean_l, mean_o = np.mean(prof_l, 0), np.mean(prof_o, 0)
        total_l += mean_l.sum()
        total_o += mean_o.sum()
        rows.append({"clip": name, "corr": float(np.corrcoef(mean_l, mean_o)[0, 1]),
                     "reliability": _ceiling(prof_l), "spikes_lauscher": float(mean_l.sum()),
                     "spikes_ours": float(mean_o.sum())})
    runs_l, runs_o = n_clips * n_seeds, n_clips * our_seeds
    return {"rows": rows, "cpu_lauscher": cpu_l / runs_l, "cpu_ours": cpu_o / runs_o,
            "startup": startup, "total_lauscher": total_l, "total_ours": total_o}


def main(args: argparse.Namespace) -> int:
    try:
        import lauscher  # noqa: F401
    except ImportError:
        raise InputError("lauscher is not installed: pip install lauscher==1.0.1 "
                         "(the test extra)") from None
    if not (1 <= args.clips <= 4 and 0.05 <= args.seconds <= 2.0 and args.seeds >= 1
            and args.our_seeds >= 1):
        raise InputError("--clips 1..4, --seconds 0.05..2, --seeds >= 1, --our-seeds >= 1")
    check_rate(args.rate)
    t0 = time.time()
    r = compare(args.clips, args.seconds, args.seeds, args.our_seeds, args.rate)
    print(f"{args.clips} clips x {args.seconds:g} s at {args.rate} Hz; seeds: lauscher "
          f"{args.seeds}, ours {args.our_seeds}")
    for row in r["rows"]:
        print(f"  {row['clip']:12s} profile corr {row['corr']:.4f} (ceiling from lauscher's seed "
              f"noise {np.sqrt(max(row['reliability'], 0)):.4f})  mean spikes lauscher "
              f"{row['spikes_lauscher']:.0f} ours {row['spikes_ours']:.0f}")
    mean_corr = float(np.mean([row["corr"] for row in r["rows"]]))
    print(f"CPU s per conversion: lauscher {r['cpu_lauscher']:.1f}, ours {r['cpu_ours']:.3f} "
          f"(+ {r['startup']:.2f} once per process)")
    print(f"CPU ratio: {r['cpu_lauscher'] / r['cpu_ours']:.0f}x "
          f"({r['cpu_lauscher'] / (r['cpu_ours'] + r['startup']):.0f}x for one conversion in a fresh process); "
          "target >= 50x")
    print(f"profile correlation (mean over clips, seed-averaged profiles): {mean_corr:.4f}; "
          "target >= 0.95")
    print(f"spike totals ours / lauscher: {r['total_ours'] / max(r['total_lauscher'], 1):.4f}; "
          "target within 0.90..1.10")
    print(f"wall {time.time() - t0:.0f} s")
    return 0
