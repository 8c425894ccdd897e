"""The embedded default dataset: small, SHD-shaped, generated deterministically from a seed.

Shape: 700 input channels, 20 classes, samples of about 1 s, spike times in seconds, written in
the SHD schema (:func:`datasets.h5.write_h5`) and read back through the same reader as real data.

Classes need time, not only counts. The 20 classes form 10 pairs. A pair owns 2-4 "formant"
bands (a band: a centre channel, a width, a duration, a rate and a slow drift of the centre
during the burst). Both classes of a pair play the same bands, one burst per band, but in
opposite temporal order (class ``2p`` plays bands a, b, c; class ``2p + 1`` plays c, b, a), the
bursts spread over about 0.7 s so that a band comes either early or late. A band's burst has the
same statistics whichever slot it plays in, so per-channel spike counts identify the pair but
carry nothing about the class within it; only the order does.

Per sample ("speaker" variation): the speaker's channel shift (a few channels) and tempo
(+-10 %), plus per-sample tempo (+-4 %), gain (+-20 %), onset (20-80 ms), per-burst duration
(+-8 %), per-spike jitter (2 ms), and background noise spikes on all channels. A sample has
about 8 thousand spikes (4-14 thousand; SHD: 5-15 thousand), all within the first second.

Sizes default to 20 training and 8 test samples per class, small enough that the default run
(surrogate-gradient BPTT, 256 hidden, T = 1000) finishes in about a minute on a laptop CPU.
"""

from __future__ import annotations

import os
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from .types import InputError

from .h5 import N_IN, write_h5

VERSION = 2  # bump whenever the generated data changes: caches are keyed on it
SPAN = 0.72  # seconds from the first burst's onset to the last one's end (before tempo changes)
MIN_GAP = 0.04


@dataclass(frozen=True)
class SyntheticParams:
    seed: int = 0
    n_classes: int = 20
    train_per_class: int = 20
    test_per_class: int = 8
    n_speakers: int = 8
    rate_hz: float = 500.0  # peak per-channel rate inside a band
    band_width: tuple[float, float] = (40.0, 80.0)  # channels (4 sigma of the Gaussian profile)
    noise_hz: float = 1.5  # background rate on every channel
    jitter_s: float = 0.002


@dataclass(frozen=True)
class Band:
    centre: float
    width: float
    duration: float  # seconds
    rate: float  # Hz per channel at the band centre
    drift: float  # channels the centre moves over the burst


def _templates(p: SyntheticParams):
    """Per class: the bands of its pair, the order they play in and the gap between bursts;
    class names."""
    rng = np.random.default_rng([p.seed, 1])
    n_pairs = p.n_classes // 2
    bands_of_pair: list[list[Band]] = []
    gaps_of_pair: list[float] = []
    for pair in range(n_pairs):
        k = 2 + pair % 3
        centres: list[float] = []
        while len(centres) < k:  # bands of a pair well apart, so each is a distinct formant
            c = float(rng.uniform(40, N_IN - 40))
            if all(abs(c - o) > 70 for o in centres):
                centres.append(c)
        durations = rng.uniform(0.12, 0.22, k)
        budget = SPAN - MIN_GAP * (k - 1)
        if durations.sum() > budget:
            durations *= budget / durations.sum()
        # the bursts are spread over the whole span, so that order shows as early vs late
        gaps_of_pair.append(float((SPAN - durations.sum()) / (k - 1)))
        bands_of_pair.append(
            [
                Band(
                    centre=centres[j],
                    width=float(rng.uniform(*p.band_width)),
                    duration=float(durations[j]),
                    rate=float(p.rate_hz * rng.uniform(0.7, 1.0)),
                    drift=float(rng.uniform(-20, 20)),
                )
                for j in range(k)
            ]
        )
    bands: list[list[Band]] = []
    orders: list[tuple[int, ...]] = []
    gaps: list[float] = []
    names: list[str] = []
    letters = "abcd"
    for cls in range(p.n_classes):
        pair, flip = divmod(cls, 2)
        k = len(bands_of_pair[pair])
        order = tuple(range(k))[::-1] if flip else tuple(range(k))
        bands.append(bands_of_pair[pair])
        gaps.append(gaps_of_pair[pair])
        orders.append(order)
        names.append(f"p{pair}-" + "".join(letters[j] for j in order))
    return bands, orders, gaps, names


def _sample(
    rng: np.random.Generator,
    bands: list[Band],
    order: tuple[int, ...],
    gap: float,
    shift: float,
    tempo: float,
    p: SyntheticParams,
) -> tuple[np.ndarray, np.ndarray]:
    """One sample's spikes (times in seconds, sorted; units)."""
    tempo = tempo * rng.uniform(0.96, 1.04)
    gain = rng.uniform(0.8, 1.2)
    t = rng.uniform(0.02, 0.08)
    times, units = [], []
    for slot, j in enumerate(order):
        b = bands[j]
        dur = b.duration * rng.uniform(0.92, 1.08) * tempo
        # spikes ~ Poisson(rate * duration * effective width); position across the band is
        # Gaussian (sigma = width / 4), so the effective width is sqrt(2 pi) * width / 4
        n = rng.poisson(gain * b.rate * dur * np.sqrt(2 * np.pi) * b.width / 4)
        frac = rng.random(n)
        ch = b.centre + shift + b.drift * (frac - 0.5) + rng.normal(0.0, b.width / 4, n)
        times.append(t + frac * dur)
        units.append(ch)
        t += dur + gap * tempo
    n_noise = rng.poisson(p.noise_hz * N_IN * 1.0)
    times.append(rng.uniform(0.0, 1.0, n_noise))
    units.append(rng.uniform(0, N_IN, n_noise))
    tt = np.concatenate(times) + rng.normal(0.0, p.jitter_s, sum(len(a) for a in times))
    uu = np.clip(np.floor(np.concatenate(units)), 0, N_IN - 1).astype(np.uint16)
    keep = (tt >= 0) & (tt < 1.0)
    tt, uu = tt[keep], uu[keep]
    order_t = np.argsort(tt, kind="stable")
    return tt[order_t].astype(np.float32), uu[order_t]


def generate(p: SyntheticParams = SyntheticParams()):
    """Both splits as ``{split: (times_list, units_list, labels, speakers)}`` plus class names."""
    if p.n_classes < 2 or p.n_classes % 2:
        raise InputError(f"synthetic n_classes must be even and >= 2, got {p.n_classes}")
    bands, orders, gaps, names = _templates(p)
    rng = np.random.default_rng([p.seed, 2])
    spk_shift = rng.integers(-3, 4, p.n_speakers)
    spk_tempo = rng.uniform(0.9, 1.1, p.n_speakers)
    out = {}
    for split, per_class, stream in (("train", p.train_per_class, 3), ("test", p.test_per_class, 4)):
        srng = np.random.default_rng([p.seed, stream])
        labels = np.repeat(np.arange(p.n_classes), per_class)
        labels = labels[srng.permutation(labels.shape[0])]
        speakers = srng.integers(0, p.n_speakers, labels.shape[0])
        times_list, units_list = [], []
        for label, spk in zip(labels, speakers):
            t, u = _sample(srng, bands[label], orders[label], gaps[label], spk_shift[spk], spk_tempo[spk], p)
            times_list.append(t)
            units_list.append(u)
        out[split] = (times_list, units_list, labels, speakers)
    return out, names


def directory_name(p: SyntheticParams = SyntheticParams()) -> str:
    """``synthetic-v<VERSION>-seed<seed>``, plus a hash of the other parameters when they differ
    from the defaults."""
    name = f"synthetic-v{VERSION}-seed{p.seed}"
    default = asdict(SyntheticParams(seed=p.seed))
    if asdict(p) != default:
        from .hashing import md5_of_json

        name += "-" + md5_of_json(asdict(p))[:8]
    return name


def ensure_synthetic(data_dir: str | os.PathLike, p: SyntheticParams = SyntheticParams()) -> dict[str, Path]:
    """The synthetic split files under ``data_dir``; generated (atomically) when missing."""
    directory = Path(data_dir) / directory_name(p)
    files = {split: directory / f"synthetic_{split}.h5" for split in ("train", "test")}
    if all(f.is_file() for f in files.values()):
        return files
    try:
        directory.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise InputError(f"cannot create {directory} for the synthetic dataset: {exc.strerror}") from None
    splits, names = generate(p)
    for split, path in files.items():
        times_list, units_list, labels, speakers = splits[split]
        write_h5(path, times_list, units_list, labels, speakers=speakers, keys=names)
    return files
