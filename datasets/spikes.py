"""SpikeDataset: the splits of one spike dataset, binned into minibatches for the methods.

Binning (see :mod:`datasets.binning`): a spike at ``t`` seconds falls in step
``floor(t * 1000 / dt_ms)``; steps ``>= n_steps`` are outside the window and the spike is dropped
(SHD samples last up to ~1.4 s, so at the reference T = 1000, dt = 1 ms the tail past 1 s is cut;
:attr:`SpikeDataset.provenance` records how many spikes each split loses). Several spikes of one
unit in one bin are counted (dense uint8 counts saturate at 255).

Validation split: a ``<prefix>_valid.h5`` file is used when there is one; otherwise a frozen,
stratified fraction of the training file is held out. Its indices depend only on the training
labels, the fraction and ``split_seed`` (not on the run's seed), so every run, method and seed
validates on the same samples.

Each split is held as flat CSR arrays (times, units, offsets, labels), read once. Batches are cut
from a per-split binned form computed on first use (:func:`datasets.binning.precompute`); with a
``transform`` (data augmentation), the raw spikes of each batch go through it and are binned then.
"""

from __future__ import annotations

import hashlib
import math
from pathlib import Path

import numpy as np

from .batches import BatchMaker, _check_positive_int, subset
from .types import DatasetSpec, InputError

from . import binning
from .h5 import RawSplit, read_split, resolve_n_in
from .hashing import cached_md5, md5_of_json
from .paths import SPLITS

HASH_VERSION = 1


def stratified_split(labels: np.ndarray, fraction: float, seed: int) -> np.ndarray:
    """Sorted indices of a validation subset: ``round(fraction * n)`` samples, shared among the
    classes in proportion to their size (largest remainder), drawn per class with
    ``np.random.default_rng(seed)``. Depends only on ``labels``, ``fraction`` and ``seed``."""
    labels = np.asarray(labels)
    n = labels.shape[0]
    n_valid = min(int(math.floor(fraction * n + 0.5)), max(n - 1, 0))
    if n_valid <= 0:
        return np.zeros(0, dtype=np.int64)
    classes, sizes = np.unique(labels, return_counts=True)
    exact = n_valid * sizes / n
    quota = np.floor(exact).astype(np.int64)
    left = n_valid - int(quota.sum())
    if left > 0:
        order = np.argsort(-(exact - quota), kind="stable")
        quota[order[:left]] += 1
    quota = np.minimum(quota, sizes)
    rng = np.random.default_rng(seed)
    chosen = []
    for c, q in zip(classes, quota):
        members = np.flatnonzero(labels == c)
        chosen.append(rng.permutation(members)[:q])
    return np.sort(np.concatenate(chosen)).astype(np.int64)


def _check_args(steps, dt_ms, valid_fraction, split_seed) -> tuple[int, float, float, int]:
    steps = _check_positive_int("steps", steps)
    try:
        dt_ms = float(dt_ms)
    except (TypeError, ValueError):
        raise InputError(f"dt_ms must be a positive number, got {dt_ms!r}") from None
    if not (math.isfinite(dt_ms) and dt_ms > 0):
        raise InputError(f"dt_ms must be a positive number, got {dt_ms!r}")
    try:
        valid_fraction = float(valid_fraction)
    except (TypeError, ValueError):
        raise InputError(f"valid_fraction must be in [0, 1), got {valid_fraction!r}") from None
    if not 0.0 <= valid_fraction < 1.0:
        raise InputError(f"valid_fraction must be in [0, 1), got {valid_fraction!r}")
    if isinstance(split_seed, bool) or not isinstance(split_seed, (int, np.integer)) or split_seed < 0:
        raise InputError(f"split_seed must be a non-negative integer, got {split_seed!r}")
    return steps, dt_ms, valid_fraction, int(split_seed)


def check_raw(raw: RawSplit, label: str, n_in: int) -> None:
    """The checks the file reader makes, for splits built in memory."""
    n = raw.labels.shape[0]
    off = raw.offsets
    if n == 0:
        raise InputError(f"{label}: empty dataset (no samples)")
    if (
        off.shape != (n + 1,)
        or off[0] != 0
        or np.any(np.diff(off) < 0)
        or off[-1] != raw.times.shape[0]
        or raw.units.shape != raw.times.shape
    ):
        raise InputError(f"{label}: offsets, times, units and labels do not fit together")
    if raw.times.size:
        if not np.all(np.isfinite(raw.times)) or raw.times.min() < 0:
            raise InputError(f"{label}: spike times must be finite and >= 0")
        if int(raw.units.min()) < 0 or int(raw.units.max()) >= n_in:
            raise InputError(f"{label}: unit index out of range (0..{n_in - 1})")
    if raw.labels.min() < 0:
        raise InputError(f"{label}: label {int(raw.labels.min())} out of range (labels must be >= 0)")


def arrays_md5(raw: RawSplit) -> str:
    digest = hashlib.md5()
    for a in (raw.times, raw.units, raw.offsets, raw.labels):
        digest.update(str(a.dtype).encode())
        digest.update(np.ascontiguousarray(a).data)
    return digest.hexdigest()


class SpikeDataset(BatchMaker):
    """Train/valid/test splits of a spike dataset, binned to ``steps`` steps of ``dt_ms``.

    Attributes: ``spec`` (:class:`datasets.types.DatasetSpec`), ``provenance`` (JSON-serialisable),
    ``recommended_epochs`` and ``recommended_lr`` (the budget a run uses unless told otherwise).
    """

    def __init__(
        self,
        name: str,
        files: dict[str, Path],
        *,
        steps: int = 1000,
        dt_ms: float = 1.0,
        valid_fraction: float = 0.0625,
        split_seed: int = 0,
        cache_dir: Path | None = None,
        recommended_epochs: int = 100,
        n_in: int | None = None,
        recommended_lr: float = 1e-3,
    ):
        steps, dt_ms, valid_fraction, split_seed = _check_args(steps, dt_ms, valid_fraction, split_seed)
        for split in ("train", "test"):
            if split not in files:
                raise InputError(f"dataset {name!r} has no {split} file")
        raw = {split: read_split(path, n_in=n_in) for split, path in files.items()}
        n_in = resolve_n_in(raw, name) if n_in is None else int(n_in)  # see datasets/h5.py
        md5s = {split: cached_md5(path, cache_dir) for split, path in files.items()}
        sources = {split: {"path": str(Path(p).resolve()), "md5": md5s[split]} for split, p in files.items()}
        self._setup(name, raw, md5s, sources, steps, dt_ms, valid_fraction, split_seed,
                    recommended_epochs, n_in)
        self.recommended_lr = float(recommended_lr)

    @classmethod
    def from_raw(
        cls,
        name: str,
        splits: dict[str, RawSplit],
        *,
        steps: int = 1000,
        dt_ms: float = 1.0,
        valid_fraction: float = 0.0625,
        split_seed: int = 0,
        recommended_epochs: int = 100,
        n_in: int | None = None,
        recommended_lr: float = 1e-3,
    ) -> "SpikeDataset":
        """A dataset from splits already in memory (benchmarks, tests, converted recordings).

        The md5 of each split's arrays stands in for a file's md5 in the content hash.
        """
        steps, dt_ms, valid_fraction, split_seed = _check_args(steps, dt_ms, valid_fraction, split_seed)
        for split in ("train", "test"):
            if split not in splits:
                raise InputError(f"dataset {name!r} has no {split} split")
        n_in = resolve_n_in(splits, name) if n_in is None else int(n_in)  # see datasets/h5.py
        md5s = {}
        for split, r in splits.items():
            check_raw(r, f"{name}/{split}", int(n_in))
            md5s[split] = arrays_md5(r)
        sources = {split: {"path": None, "md5": md5s[split]} for split in splits}
        self = cls.__new__(cls)
        self._setup(name, dict(splits), md5s, sources, steps, dt_ms, valid_fraction, split_seed,
                    recommended_epochs, n_in)
        self.recommended_lr = float(recommended_lr)
        return self

    def _setup(self, name, raw, md5s, sources, steps, dt_ms, valid_fraction, split_seed,
               recommended_epochs, n_in) -> None:
        self.name = name
        self.n_steps = steps
        self.dt_ms = dt_ms
        self.n_in = int(n_in)
        self.recommended_epochs = int(recommended_epochs)
        self._binned: dict[str, binning.BinnedSplit] = {}
        files = {split: (src["path"] or f"{name}/{split}") for split, src in sources.items()}

        keys = next((r.keys for r in raw.values() if r.keys), None)
        n_classes = len(keys) if keys else int(raw["train"].labels.max()) + 1
        for split, r in raw.items():
            top = int(r.labels.max())
            if top >= n_classes:
                source = "/extra/keys names" if keys else "the training labels give"
                raise InputError(
                    f"{files[split]}: label {top} out of range: {source} {n_classes} classes"
                )

        if "valid" in raw:
            validation = {"source": "file"}
            splits = raw
        else:
            train = raw["train"]
            valid_idx = stratified_split(train.labels, valid_fraction, int(split_seed))
            if valid_fraction > 0 and valid_idx.shape[0] == 0:
                raise InputError(
                    f"{files['train']}: {train.n_samples} training samples are too few to cut a "
                    f"validation split of {valid_fraction:g}; add a valid file or more samples"
                )
            keep = np.ones(train.n_samples, dtype=bool)
            keep[valid_idx] = False
            validation = {
                "source": "cut from train",
                "fraction": valid_fraction,
                "seed": int(split_seed),
                "n_valid": int(valid_idx.shape[0]),
                "indices_md5": md5_of_json(valid_idx.tolist()),
            }
            splits = {
                "train": subset(train, np.flatnonzero(keep)),
                "valid": subset(train, valid_idx),
                "test": raw["test"],
            }
        self._splits: dict[str, RawSplit] = splits
        self.valid_indices = None if "valid" in raw else valid_idx

        content = {
            "version": HASH_VERSION,
            "files": md5s,
            "n_in": self.n_in,
            "n_steps": steps,
            "dt_ms": dt_ms,
            "validation": validation,
        }
        self.spec = DatasetSpec(
            name=name,
            n_in=self.n_in,
            n_classes=int(n_classes),
            n_steps=steps,
            dt_ms=dt_ms,
            content_hash=md5_of_json(content),
            class_names=tuple(keys) if keys else (),
        )

        scale = binning.scale_for(dt_ms)
        dropped = {}
        for split, r in splits.items():
            n_out = int(np.count_nonzero(np.multiply(r.times, scale, dtype=np.float32) >= steps))
            dropped[split] = {
                "count": n_out,
                "fraction": (n_out / r.n_spikes) if r.n_spikes else 0.0,
            }
        self.provenance = {
            "name": name,
            "files": sources,
            "validation": validation,
            "sizes": {split: r.n_samples for split, r in splits.items()},
            "binning": {
                "n_steps": steps,
                "dt_ms": dt_ms,
                "rule": "step = floor(t_s * 1000 / dt_ms); spikes with step >= n_steps are dropped",
            },
            "dropped_spikes": dropped,
            "content_hash": self.spec.content_hash,
        }

    # -- sizes and labels -------------------------------------------------------------------

    def _split(self, split: str) -> RawSplit:
        if split not in self._splits:
            raise InputError(f"unknown split {split!r}; known: {', '.join(SPLITS)}")
        return self._splits[split]

    def split_size(self, split: str) -> int:
        return self._split(split).n_samples

    def labels(self, split: str) -> np.ndarray:
        return self._split(split).labels.astype(np.int64, copy=True)

    def raw(self, split: str) -> RawSplit:
        """The split's flat arrays (read-only use: shared with the dataset)."""
        return self._split(split)

    def binned(self, split: str) -> binning.BinnedSplit:
        """The split binned at this dataset's (dt_ms, n_steps), computed once and kept."""
        if split not in self._binned:
            r = self._split(split)
            self._binned[split] = binning.precompute(
                r.times, r.units, r.offsets, self.dt_ms, self.n_steps, self.n_in
            )
        return self._binned[split]

    def utterance_ms(self) -> float:
        """The training split's typical sample duration in ms: the median over its samples of
        the last spike time inside the window (samples without spikes left out)."""
        window_s = self.n_steps * self.dt_ms / 1000.0
        raw = self._split("train")
        times = np.minimum(raw.times, window_s)
        spiking = np.diff(raw.offsets) > 0
        if not spiking.any():
            return window_s * 1000.0
        last = np.maximum.reduceat(times, raw.offsets[:-1][spiking])
        return float(np.median(last)) * 1000.0

    def __repr__(self) -> str:
        sizes = ", ".join(f"{s}={self.split_size(s)}" for s in SPLITS)
        return f"SpikeDataset({self.name!r}, {sizes}, T={self.n_steps}, dt={self.dt_ms} ms)"

    # -- batches ----------------------------------------------------------------------------
