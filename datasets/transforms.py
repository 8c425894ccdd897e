"""Input transforms applied to the raw spikes of a batch before binning.

A transform is a callable ``transform(times, units, offsets, labels, rng) -> (times, units,
offsets, labels, n_in)`` acting on one batch in flat CSR form: ``times`` in seconds (float32),
``units`` the input channels, sample ``i`` owning entries ``offsets[i]:offsets[i+1]``, ``labels``
one class per sample and ``rng`` the :class:`numpy.random.Generator` of the batch iterator (so a
run's seed fixes every random draw). The returned ``n_in`` is the width of the input layer after
the transform. Spikes inside a sample need not be in time order: binning does not care.

:func:`build` turns a method's hyperparameters into a training transform and an evaluation
transform:

========================  ===========  =====================================================
hyperparameter (default)  splits       effect
========================  ===========  =====================================================
``input_pool`` (1)        all          channel ``u`` becomes ``u // input_pool``: each
                                       ``input_pool`` neighbouring channels are summed into
                                       one, ``ceil(n_in / input_pool)`` channels in all
``aug_blend`` (0)         train        ``round(aug_blend * B)`` extra samples per batch, each
                                       blended from two different samples of one class
``aug_shift`` (0)         train        every sample's channels shifted by one integer drawn
                                       uniformly from ``[-aug_shift, aug_shift]``; spikes
                                       shifted outside ``0..n_in-1`` are dropped
``aug_dropout`` (0)       train        every spike dropped with probability ``aug_dropout``
``delay_lines`` (1),      all          ``delay_lines`` copies of the input, copy ``c`` on
``delay_ms`` (0)                       units ``u + c * n_in`` at times ``t + c * delay_ms``;
                                       the input layer grows ``delay_lines``-fold
========================  ===========  =====================================================

The training transform applies them in that order (pooling first, so that the augmentations and
the delay lines see pooled channels; blended samples are then shifted and thinned like the
others, and every copy of the delay lines carries the same augmented spikes); the evaluation
transform is the pooling and the delay lines alone and draws nothing at random.

Blend: for each extra sample an anchor is drawn uniformly among the batch's samples whose class
has at least two members in the batch, and a partner uniformly among the other members of that
class. The partner is first aligned on the anchor: its spikes are moved in time by the
difference of the two samples' mean spike times and in channel by the rounded difference of
their mean channels (spikes moved before time 0 or outside the channels are dropped). The blend
then keeps each spike of the anchor and each spike of the aligned partner with probability 1/2,
so it holds on average as many spikes as the two samples' mean. Its label is their class. A
batch with no class represented twice gets no extra sample.

Everything is vectorised over the spikes of a batch; nothing loops over samples or spikes.
"""

from __future__ import annotations

import math

import numpy as np

from .types import InputError

from .binning import gather_positions, sample_index

MAX_BLEND = 1.0  # at most one extra sample per sample of the batch


def validate(hparams) -> None:
    """Range checks of the transform hyperparameters; raise InputError on nonsense."""
    shift = hparams.aug_shift
    if isinstance(shift, bool) or not isinstance(shift, (int, np.integer)) or shift < 0:
        raise InputError(f"aug_shift must be a non-negative integer, got {shift!r}")
    if not (math.isfinite(hparams.aug_blend) and 0.0 <= hparams.aug_blend <= MAX_BLEND):
        raise InputError(f"aug_blend must be in [0, {MAX_BLEND:g}], got {hparams.aug_blend!r}")
    if not (math.isfinite(hparams.aug_dropout) and 0.0 <= hparams.aug_dropout < 1.0):
        raise InputError(f"aug_dropout must be in [0, 1), got {hparams.aug_dropout!r}")
    lines = hparams.delay_lines
    if isinstance(lines, bool) or not isinstance(lines, (int, np.integer)) or lines < 1:
        raise InputError(f"delay_lines must be an integer >= 1, got {lines!r}")
    if not (math.isfinite(hparams.delay_ms) and hparams.delay_ms >= 0.0):
        raise InputError(f"delay_ms must be >= 0, got {hparams.delay_ms!r}")
    pool = getattr(hparams, "input_pool", 1)
    if isinstance(pool, bool) or not isinstance(pool, (int, np.integer)) or pool < 1:
        raise InputError(f"input_pool must be an integer >= 1, got {pool!r}")


def build(hparams, n_in: int):
    """``(train_transform | None, eval_transform | None, n_in_out)`` for these hyperparameters.

    ``n_in`` is the dataset's number of input channels; ``n_in_out`` the input width the method
    must be built for (``ceil(n_in / input_pool) * delay_lines``).
    """
    validate(hparams)
    pool = None
    if getattr(hparams, "input_pool", 1) > 1:
        pool = PoolChannels(int(n_in), int(hparams.input_pool))
        n_in = pool.n_out
    n_in = int(n_in)
    delays = None
    if hparams.delay_lines > 1:
        delays = DelayLines(n_in, int(hparams.delay_lines), float(hparams.delay_ms))
    augment = None
    if hparams.aug_shift or hparams.aug_blend or hparams.aug_dropout:
        augment = Augment(n_in, shift=int(hparams.aug_shift), blend=float(hparams.aug_blend),
                          dropout=float(hparams.aug_dropout))
    n_out = n_in * int(hparams.delay_lines)
    evaluate = _chain(pool, delays)
    return _chain(pool, augment, delays), evaluate, n_out


def _chain(*steps):
    """The transforms that are not None, chained; None when there is none."""
    steps = [s for s in steps if s is not None]
    if not steps:
        return None
    return steps[0] if len(steps) == 1 else Chain(*steps)


# ---------------------------------------------------------------------------------------------
# Helpers on CSR batches.


def _keep(times, units, offsets, keep):
    """Drop the spikes where ``keep`` is False; offsets follow."""
    kept_before = np.zeros(keep.shape[0] + 1, dtype=np.int64)
    np.cumsum(keep, out=kept_before[1:])
    return times[keep], units[keep], kept_before[offsets]


def _unit_dtype(like: np.ndarray, n_in: int):
    """The input's unit dtype when it can hold ``0..n_in-1``, else int32/int64."""
    if like.dtype.kind in "iu" and np.iinfo(like.dtype).max >= n_in - 1:
        return like.dtype
    return np.int32 if n_in - 1 <= np.iinfo(np.int32).max else np.int64


def _per_sample_mean(values: np.ndarray, offsets: np.ndarray) -> np.ndarray:
    """Mean of ``values`` over each sample (0 for an empty one), from running sums."""
    running = np.zeros(values.shape[0] + 1, dtype=np.float64)
    np.cumsum(values, dtype=np.float64, out=running[1:])
    lengths = np.diff(offsets)
    sums = running[offsets[1:]] - running[offsets[:-1]]
    return np.divide(sums, lengths, out=np.zeros(lengths.shape[0]), where=lengths > 0)


# ---------------------------------------------------------------------------------------------
# Transforms.


class Augment:
    """Training-only augmentation: blend, then channel shift, then spike dropout (see the
    module docstring). Draws from the ``rng`` it is given, in a fixed order."""

    def __init__(self, n_in: int, *, shift: int = 0, blend: float = 0.0, dropout: float = 0.0):
        self.n_in, self.shift, self.blend, self.dropout = int(n_in), int(shift), float(blend), float(dropout)

    def __repr__(self) -> str:
        return f"Augment(n_in={self.n_in}, shift={self.shift}, blend={self.blend}, dropout={self.dropout})"

    def __call__(self, times, units, offsets, labels, rng):
        if rng is None:
            raise ValueError("augmentation needs a random generator")
        times = np.asarray(times, dtype=np.float32)
        out_dtype = _unit_dtype(np.asarray(units), self.n_in)
        units = np.asarray(units).astype(np.int32)
        offsets = np.asarray(offsets, dtype=np.int64)
        labels = np.asarray(labels, dtype=np.int64)
        if self.blend > 0:
            times, units, offsets, labels = blend(times, units, offsets, labels, rng,
                                                  self.blend, self.n_in)
        if self.shift > 0:
            times, units, offsets = shift_channels(times, units, offsets, rng, self.shift, self.n_in)
        if self.dropout > 0:
            times, units, offsets = drop_spikes(times, units, offsets, rng, self.dropout)
        return times, units.astype(out_dtype), offsets, labels, self.n_in


def shift_channels(times, units, offsets, rng, k: int, n_in: int):
    """Shift every sample's units by one integer drawn uniformly from ``[-k, k]``; drop the
    spikes that leave ``0..n_in-1``. Returns (times, units as int32, offsets)."""
    n = offsets.shape[0] - 1
    amount = rng.integers(-k, k + 1, size=n).astype(np.int32)
    shifted = units.astype(np.int32) + np.repeat(amount, np.diff(offsets))
    keep = (shifted >= 0) & (shifted < n_in)
    return _keep(times, shifted, offsets, keep)


def drop_spikes(times, units, offsets, rng, p: float):
    """Drop each spike independently with probability ``p``."""
    keep = rng.random(times.shape[0]) >= p
    return _keep(times, units, offsets, keep)


def blend_pairs(labels: np.ndarray, m: int, rng):
    """``m`` (anchor, partner) index pairs of distinct samples of one class, or None when no
    class has two samples. Anchors are uniform over the eligible samples; partners uniform over
    the other samples of the anchor's class."""
    order = np.argsort(labels, kind="stable")
    _, start, count = np.unique(labels[order], return_index=True, return_counts=True)
    group = np.repeat(np.arange(start.shape[0]), count)  # group of each sorted position
    eligible = np.flatnonzero(count[group] >= 2)  # sorted positions in a class of >= 2
    if m <= 0 or eligible.shape[0] == 0:
        return None
    anchor_pos = eligible[rng.integers(0, eligible.shape[0], size=m)]
    g = group[anchor_pos]
    step = rng.integers(1, count[g])  # 1..count-1: never the anchor itself
    partner_pos = start[g] + (anchor_pos - start[g] + step) % count[g]
    return order[anchor_pos], order[partner_pos]


def blend(times, units, offsets, labels, rng, fraction: float, n_in: int):
    """Append ``round(fraction * B)`` blended samples (see the module docstring)."""
    n = labels.shape[0]
    m = int(math.floor(fraction * n + 0.5))
    pairs = blend_pairs(labels, m, rng)
    if pairs is None:
        return times, units, offsets, labels
    anchor, partner = pairs
    lengths = np.diff(offsets)
    mean_t = _per_sample_mean(times, offsets)
    mean_u = _per_sample_mean(units, offsets)
    both = (lengths[anchor] > 0) & (lengths[partner] > 0)
    dt = np.where(both, mean_t[anchor] - mean_t[partner], 0.0).astype(np.float32)
    du = np.where(both, np.rint(mean_u[anchor] - mean_u[partner]), 0).astype(np.int32)

    pos_a, off_a = gather_positions(offsets, anchor)
    pos_b, off_b = gather_positions(offsets, partner)
    new_a = sample_index(off_a)
    new_b = sample_index(off_b)
    t_b = times[pos_b] + dt[new_b]
    u_b = units[pos_b] + du[new_b]
    keep_a = rng.random(pos_a.shape[0]) < 0.5
    keep_b = (rng.random(pos_b.shape[0]) < 0.5) & (t_b >= 0) & (u_b >= 0) & (u_b < n_in)
    new_a, pos_a = new_a[keep_a], pos_a[keep_a]
    new_b, t_b, u_b = new_b[keep_b], t_b[keep_b], u_b[keep_b]

    # Sample j of the blend holds its anchor's kept spikes, then its partner's.
    count_a = np.bincount(new_a, minlength=m)
    count_b = np.bincount(new_b, minlength=m)
    out_off = np.zeros(m + 1, dtype=np.int64)
    np.cumsum(count_a + count_b, out=out_off[1:])
    first_a = np.cumsum(count_a) - count_a  # index of sample j's first entry in new_a
    first_b = np.cumsum(count_b) - count_b
    dest_a = out_off[new_a] + np.arange(new_a.shape[0]) - first_a[new_a]
    dest_b = out_off[new_b] + count_a[new_b] + np.arange(new_b.shape[0]) - first_b[new_b]
    t_new = np.empty(out_off[-1], dtype=np.float32)
    u_new = np.empty(out_off[-1], dtype=units.dtype)
    t_new[dest_a], u_new[dest_a] = times[pos_a], units[pos_a]
    t_new[dest_b], u_new[dest_b] = t_b, u_b

    return (np.concatenate([times, t_new]), np.concatenate([units, u_new]),
            np.concatenate([offsets, offsets[-1] + out_off[1:]]),
            np.concatenate([labels, labels[anchor]]))


class PoolChannels:
    """Sum each ``k`` neighbouring channels into one: unit ``u`` becomes ``u // k`` (the last
    group may be narrower). Deterministic; used on every split. Binning then counts the spikes
    that meet in one pooled channel and bin."""

    def __init__(self, n_in: int, k: int):
        self.n_in, self.k = int(n_in), int(k)
        self.n_out = -(-self.n_in // self.k)

    def __repr__(self) -> str:
        return f"PoolChannels(n_in={self.n_in}, k={self.k})"

    def __call__(self, times, units, offsets, labels, rng=None):
        units = np.asarray(units)
        return (np.asarray(times, dtype=np.float32), units // units.dtype.type(self.k),
                np.asarray(offsets, dtype=np.int64), np.asarray(labels), self.n_out)


class DelayLines:
    """``lines`` copies of the input, ``delay_ms`` apart: copy ``c`` of a spike (t, u) is at
    ``(t + c * delay_ms / 1000, u + c * n_in)``. Deterministic; used on every split. Copies
    delayed past the end of the binning window are dropped by the binning."""

    def __init__(self, n_in: int, lines: int, delay_ms: float):
        self.n_in, self.lines, self.delay_ms = int(n_in), int(lines), float(delay_ms)

    def __repr__(self) -> str:
        return f"DelayLines(n_in={self.n_in}, lines={self.lines}, delay_ms={self.delay_ms})"

    def __call__(self, times, units, offsets, labels, rng=None):
        times = np.asarray(times, dtype=np.float32)
        units = np.asarray(units)
        offsets = np.asarray(offsets, dtype=np.int64)
        n_out = self.n_in * self.lines
        lengths = np.diff(offsets)
        sample = sample_index(offsets)
        copies = np.arange(self.lines, dtype=np.int64)[:, None]
        # Spike p of sample i, copy c -> lines * offsets[i] + c * len_i + (p - offsets[i]).
        base = (self.lines - 1) * offsets[sample] + np.arange(times.shape[0], dtype=np.int64)
        dest = (base[None, :] + copies * lengths[sample][None, :]).ravel()
        delays = (np.arange(self.lines, dtype=np.float64) * self.delay_ms / 1000.0).astype(np.float32)
        out_t = np.empty(times.shape[0] * self.lines, dtype=np.float32)
        out_u = np.empty(times.shape[0] * self.lines, dtype=_unit_dtype(units, n_out))
        out_t[dest] = (times[None, :] + delays[:, None]).ravel()
        out_u[dest] = (units.astype(np.int64)[None, :] + copies * self.n_in).ravel()
        return out_t, out_u, offsets * self.lines, np.asarray(labels), n_out


class Chain:
    """Apply transforms in order; the last one's n_in is the result's."""

    def __init__(self, *steps):
        self.steps = steps

    def __repr__(self) -> str:
        return " -> ".join(map(repr, self.steps))

    def __call__(self, times, units, offsets, labels, rng):
        n_in = None
        for step in self.steps:
            times, units, offsets, labels, n_in = step(times, units, offsets, labels, rng)
        return times, units, offsets, labels, n_in
