"""Vectorised binning of spike events into time steps.

A batch arrives as flat CSR arrays: ``times`` (seconds), ``units`` and ``offsets`` (sample ``i``
owns entries ``offsets[i]:offsets[i+1]``). Binning rule, for a step of ``dt_ms`` milliseconds:

    step = floor(t_seconds * 1000 / dt_ms)

Spikes with ``step >= n_steps`` (after the window) or ``t < 0`` are dropped. Times are stored in
float32, which cannot represent most bin edges (0.005 s is stored as 0.00499999989 s); so that a
spike recorded exactly on an edge lands in the bin that starts there, the scale factor carries a
relative tolerance of 5e-7 (under 1 microsecond over a 1.4 s sample), below float32's resolution
of the time itself.

Several spikes of one sample and unit in one bin are counted: the dense array holds the count
(saturating at 255 in uint8), the event form holds one entry per distinct (sample, step, unit)
with its count. Nothing here loops over samples or spikes in Python.

Two paths:

* :func:`precompute` bins a whole split once for a given (dt, n_steps): per sample, the distinct
  (step, unit) bins in sorted order with their counts, in CSR form (:class:`BinnedSplit`). It
  works through chunks of samples whose flat keys fit in int32, sorts each chunk once and counts
  duplicates from run lengths. :func:`dense_batch` and :func:`events_batch` then build a batch
  from it with a gather and a scatter (dense; the flat indices are already ascending) or one sort
  of packed integer keys (events).
* :func:`bin_batch` bins raw spikes of one batch directly (used after a data transform, which
  changes the spikes every time): flat keys, one sort, run lengths.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .types import Events

EDGE_TOLERANCE = 5e-7  # relative; see the module docstring
_INT32_MAX = np.iinfo(np.int32).max


def scale_for(dt_ms: float) -> np.float32:
    """Multiplier turning seconds into (fractional) steps, with the edge tolerance applied."""
    return np.float32(1000.0 / float(dt_ms) * (1.0 + EDGE_TOLERANCE))


def steps_of(times: np.ndarray, dt_ms: float, n_steps: int) -> tuple[np.ndarray, np.ndarray | None]:
    """Bin index of every spike and the mask of kept spikes (None: all kept).

    Returns ``(steps, keep)`` where ``steps`` has one int32 entry per kept spike.
    """
    x = np.multiply(times, scale_for(dt_ms), dtype=np.float32)
    keep = x < n_steps
    if times.size and times.min() < 0:
        keep &= x >= 0
    if keep.all():
        return x.astype(np.int32), None
    return x[keep].astype(np.int32), keep


def sample_index(offsets: np.ndarray, dtype: type = np.int32) -> np.ndarray:
    """Batch-local sample index of every spike, from CSR offsets."""
    lengths = np.diff(offsets)
    return np.repeat(np.arange(lengths.shape[0], dtype=dtype), lengths)


def kept_spikes(
    times: np.ndarray, units: np.ndarray, offsets: np.ndarray, dt_ms: float, n_steps: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(sample, step, unit)`` of every spike inside the window, from CSR arrays."""
    sample = sample_index(offsets)
    steps, keep = steps_of(times, dt_ms, n_steps)
    if keep is not None:
        sample, units = sample[keep], units[keep]
    return sample, steps, units


def gather_positions(offsets: np.ndarray, idx: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Positions (int64) of the spikes of samples ``idx``, in that order, in a split's flat
    arrays, and the offsets of the gathered samples."""
    idx = np.asarray(idx, dtype=np.int64)
    starts = offsets[idx]
    lengths = offsets[idx + 1] - starts
    new_offsets = np.zeros(idx.shape[0] + 1, dtype=np.int64)
    np.cumsum(lengths, out=new_offsets[1:])
    positions = np.repeat(starts - new_offsets[:-1], lengths)
    positions += np.arange(int(new_offsets[-1]), dtype=np.int64)
    return positions, new_offsets


def gather(offsets: np.ndarray, idx: np.ndarray) -> tuple[np.ndarray | slice, np.ndarray]:
    """As :func:`gather_positions`, but contiguous ascending ``idx`` gives a slice (no copy
    needed) instead of an index array."""
    idx = np.asarray(idx, dtype=np.int64)
    if idx.shape[0] and idx[-1] - idx[0] == idx.shape[0] - 1 and np.all(np.diff(idx) == 1):
        first, last = int(offsets[idx[0]]), int(offsets[idx[-1] + 1])
        new_offsets = offsets[idx[0] : idx[-1] + 2].astype(np.int64) - first
        return slice(first, last), new_offsets
    return gather_positions(offsets, idx)


def _runs(keys: np.ndarray, presorted: bool = False) -> tuple[np.ndarray, np.ndarray | None]:
    """Sort ``keys`` in place; return distinct keys and their counts (None: all distinct)."""
    if not presorted:
        keys.sort()
    n = keys.shape[0]
    if n < 2:
        return keys, None
    new = np.empty(n, dtype=bool)
    new[0] = True
    np.not_equal(keys[1:], keys[:-1], out=new[1:])
    dup = np.flatnonzero(~new)
    if dup.shape[0] == 0:
        return keys, None
    if dup.shape[0] * 8 < n:
        # few repeats: the k-th repeated entry (at position p) belongs to run p - k - 1
        counts = np.ones(n - dup.shape[0], dtype=np.int64)
        np.add.at(counts, dup - np.arange(1, dup.shape[0] + 1), 1)
        return keys[new], counts
    starts = np.flatnonzero(new)
    counts = np.empty(starts.shape[0], dtype=np.int64)
    np.subtract(starts[1:], starts[:-1], out=counts[:-1])
    counts[-1] = n - starts[-1]
    return keys[starts], counts


def _key_dtype(limit: int) -> type:
    return np.int32 if limit <= _INT32_MAX else np.int64


def _bin_runs(
    major: np.ndarray, minor: np.ndarray, n_minor: int, units: np.ndarray, n_in: int, limit: int
) -> tuple[np.ndarray, np.ndarray | None]:
    """Distinct flat keys ``(major * n_minor + minor) * n_in + units`` (all below ``limit``),
    ascending, with their counts (None: all distinct)."""
    keys = major.astype(_key_dtype(limit), copy=True)
    keys *= n_minor
    keys += minor
    keys *= n_in
    keys += units
    return _runs(keys)


def dense_from_steps(
    sample: np.ndarray, steps: np.ndarray, units: np.ndarray, batch: int, n_steps: int, n_in: int,
    out: np.ndarray | None = None,
) -> np.ndarray:
    """(batch, n_steps, n_in) uint8 counts from per-spike sample, step and unit indices (into the
    reusable buffer ``out`` when given)."""
    uniq, counts = _bin_runs(sample, steps, n_steps, units, n_in, batch * n_steps * n_in)
    x = zeroed_view(out, batch, n_steps, n_in)
    if counts is None:
        x[uniq] = 1
    else:
        x[uniq] = np.minimum(counts, 255)
    return x.reshape(batch, n_steps, n_in)


def events_from_steps(
    sample: np.ndarray, steps: np.ndarray, units: np.ndarray, batch: int, n_steps: int, n_in: int
) -> Events:
    """Distinct (sample, step, unit) bins with counts, sorted by step, then sample, then unit."""
    uniq, counts = _bin_runs(steps, sample, batch, units, n_in, batch * n_steps * n_in)
    uniq = uniq.astype(np.int64, copy=False)
    rest, unit = np.divmod(uniq, n_in)
    step, smp = np.divmod(rest, batch)
    if counts is None:
        count = np.ones(uniq.shape[0], dtype=np.float32)
    else:
        count = counts.astype(np.float32)
    return Events(sample=smp, step=step, unit=unit, count=count)


def bin_batch(
    times: np.ndarray,
    units: np.ndarray,
    offsets: np.ndarray,
    n_steps: int,
    dt_ms: float,
    n_in: int,
    fmt: str = "dense",
    out: np.ndarray | None = None,
) -> np.ndarray | Events:
    """Bin one batch given as CSR arrays; ``fmt`` "dense" -> uint8 array (into ``out`` when
    given), "events" -> Events."""
    batch = int(offsets.shape[0] - 1)
    sample, steps, units = kept_spikes(times, units, offsets, dt_ms, n_steps)
    if fmt == "dense":
        return dense_from_steps(sample, steps, units, batch, n_steps, n_in, out)
    if fmt == "events":
        return events_from_steps(sample, steps, units, batch, n_steps, n_in)
    raise ValueError(f"unknown format {fmt!r}; expected 'dense' or 'events'")


# ---------------------------------------------------------------------------------------------
# Whole-split precomputation and batches built from it.


@dataclass
class BinnedSplit:
    """A split binned once: sample ``i`` owns the distinct bins ``offsets[i]:offsets[i+1]``,
    each coded as ``step * n_in + unit`` and sorted. ``count`` is None when no bin of the split
    holds two spikes."""

    offsets: np.ndarray  # (n + 1,) int64
    code: np.ndarray  # (E,) int32 step * n_in + unit (int64 when that does not fit)
    count: np.ndarray | None  # (E,) uint16 spikes per bin (saturating), or None: all ones
    n_steps: int
    n_in: int
    dt_ms: float
    n_spikes: int  # spikes in the source split
    n_dropped: int  # of those, outside the window [0, n_steps * dt_ms)


def precompute(
    times: np.ndarray,
    units: np.ndarray,
    offsets: np.ndarray,
    dt_ms: float,
    n_steps: int,
    n_in: int,
    *,
    max_chunk: int = 128,
) -> BinnedSplit:
    """Bin a whole split (CSR arrays) once; see :class:`BinnedSplit`.

    Per chunk of samples: flat int keys ``sample * n_steps * n_in + step * n_in + unit``, spikes
    outside the window set to -1 (they sort first and are cut off), one sort, run lengths for the
    counts, per-sample lengths by binary search of the sample boundaries.
    """
    n = int(offsets.shape[0] - 1)
    n_steps, n_in = int(n_steps), int(n_in)
    tk = n_steps * n_in
    chunk = max(1, min(max_chunk, (_INT32_MAX - 2 * n_in) // max(tk, 1) - 1))
    kd = _key_dtype((chunk + 1) * tk + 2 * n_in)
    scale = scale_for(dt_ms)
    code_dtype = _key_dtype(tk)
    total = int(times.shape[0])
    lengths = np.zeros(n, dtype=np.int64)
    # outputs written chunk by chunk into arrays of the upper bound (every spike a distinct bin)
    code_out = np.empty(total, dtype=code_dtype)
    count_out = None
    filled = 0
    kept = 0
    for c0 in range(0, n, chunk):
        c1 = min(n, c0 + chunk)
        s0, s1 = int(offsets[c0]), int(offsets[c1])
        t = times[s0:s1]
        x = np.multiply(t, scale, dtype=np.float32)
        np.minimum(x, np.float32(n_steps), out=x)
        bins = x.astype(kd)
        del x
        outside = bins == n_steps
        if t.size and t.min() < 0:
            outside |= t < 0
        n_out = int(np.count_nonzero(outside))
        kept += t.shape[0] - n_out
        base = np.arange(c1 - c0 + 1, dtype=kd) * kd(tk)
        keys = np.repeat(base[:-1], np.diff(offsets[c0 : c1 + 1]))
        bins *= kd(n_in)
        keys += bins
        del bins
        keys += units[s0:s1]
        if n_out:  # -1 (all bits set) for spikes outside the window: they sort first
            np.bitwise_or(keys, -outside.view(np.int8).astype(kd), out=keys)
        del outside
        keys.sort()
        if n_out:
            keys = keys[n_out:]
        uniq, counts = _runs(keys, presorted=True)
        bounds = np.searchsorted(uniq, base)
        lengths[c0:c1] = np.diff(bounds)
        uniq -= np.repeat(base[:-1], lengths[c0:c1])
        m = uniq.shape[0]
        code_out[filled : filled + m] = uniq
        if counts is not None:
            if count_out is None:
                count_out = np.ones(total, dtype=np.uint16)
            count_out[filled : filled + m] = np.minimum(counts, 65535)
        filled += m
    new_offsets = np.zeros(n + 1, dtype=np.int64)
    np.cumsum(lengths, out=new_offsets[1:])

    def trim(a):
        # a view when little is wasted, else a compact copy
        return a[:filled] if filled >= 0.75 * a.shape[0] else a[:filled].copy()

    return BinnedSplit(
        offsets=new_offsets,
        code=trim(code_out),
        count=None if count_out is None else trim(count_out),
        n_steps=n_steps,
        n_in=n_in,
        dt_ms=float(dt_ms),
        n_spikes=total,
        n_dropped=total - kept,
    )


def zeroed_view(out: np.ndarray | None, batch: int, n_steps: int, n_in: int) -> np.ndarray:
    """A zeroed flat uint8 array of ``batch * n_steps * n_in`` entries: the first entries of
    ``out`` when given (reused, so that no new pages are touched per batch), else a new one."""
    size = batch * n_steps * n_in
    if out is None:
        return np.zeros(size, dtype=np.uint8)
    flat = out.reshape(-1)[:size]
    if flat.shape[0] < size:
        raise ValueError(f"output buffer holds {out.size} entries, the batch needs {size}")
    flat.fill(0)
    return flat


def dense_batch(bs: BinnedSplit, idx: np.ndarray, out: np.ndarray | None = None) -> np.ndarray:
    """(len(idx), n_steps, n_in) uint8 counts of samples ``idx`` of a precomputed split, written
    into ``out`` (a reusable buffer of at least that size) when given."""
    pos, new_offsets = gather(bs.offsets, idx)
    batch = int(new_offsets.shape[0] - 1)
    tk = bs.n_steps * bs.n_in
    # int64 (intp) indices: numpy would convert narrower ones before scattering
    flat = bs.code[pos].astype(np.int64)
    flat += sample_index(new_offsets, np.int64) * tk
    x = zeroed_view(out, batch, bs.n_steps, bs.n_in)
    if bs.count is None:
        x[flat] = 1
    else:
        x[flat] = np.minimum(bs.count[pos], 255).astype(np.uint8)
    return x.reshape(batch, bs.n_steps, bs.n_in)


def _bits(n: int) -> int:
    return max(1, int(n - 1).bit_length())


def events_batch(bs: BinnedSplit, idx: np.ndarray) -> Events:
    """Events of samples ``idx`` of a precomputed split, sorted by step, then sample, then unit.

    Step, sample, unit and count are packed into one integer per bin (int32 when they fit, the
    count in the bits left over; else int64 with 16 count bits), sorted, and unpacked.
    """
    pos, new_offsets = gather(bs.offsets, idx)
    batch = int(new_offsets.shape[0] - 1)
    bu_, bb, bs_ = _bits(bs.n_in), _bits(batch), _bits(bs.n_steps)
    code = bs.code[pos]
    step = code // code.dtype.type(bs.n_in)
    unit = code - step * code.dtype.type(bs.n_in)
    count = None if bs.count is None else bs.count[pos]
    bc = 0
    if count is not None:
        spare = 31 - (bs_ + bb + bu_)
        top = int(count.max()) if count.shape[0] else 0
        bc = spare if spare >= 1 and top < (1 << spare) else 16
    total = bs_ + bb + bu_ + bc
    if total > 62:  # cannot pack: sort by a stable argsort on the step (slower, always right)
        order = np.argsort(step, kind="stable")
        return Events(
            sample=sample_index(new_offsets, np.int64)[order],
            step=step[order].astype(np.int64),
            unit=unit[order].astype(np.int64),
            count=(count[order] if count is not None else np.ones(order.shape[0])).astype(np.float32),
        )
    kd = np.int32 if total <= 31 else np.int64
    keys = step.astype(kd, copy=False)
    keys <<= kd(bb)
    keys |= sample_index(new_offsets, kd)
    keys <<= kd(bu_)
    keys |= unit
    if bc:
        keys <<= kd(bc)
        keys |= count
    keys.sort()
    if bc:
        count = (keys & kd((1 << bc) - 1)).astype(np.float32)
        keys >>= kd(bc)
    else:
        count = np.ones(keys.shape[0], dtype=np.float32)
    unit = (keys & kd((1 << bu_) - 1)).astype(np.int64)
    keys >>= kd(bu_)
    sample = (keys & kd((1 << bb) - 1)).astype(np.int64)
    keys >>= kd(bb)
    return Events(sample=sample, step=keys.astype(np.int64), unit=unit, count=count)
