"""Seed-by-seed comparison of test accuracy against one reference method:
``python -m bench report --versus METHOD [--margin POINTS]``.

Runs with the same seed see the same batch order, and the methods of the shared network
(:func:`methods.lif.init_weights`) also start from the same weights, so the difference between two
methods *per seed* carries much less of the seed-to-seed spread than the difference of their
means. For every report row (method, variant) of another method, this pairs its successful runs
with the reference's successful runs of the same dataset, variant and seed (of the same dataset
and seed when the reference ran a single configuration there), and gives:

* the seeds paired (n) and, over them, each method's mean test accuracy;
* the mean per-seed difference (row minus reference) in percentage points, with its standard
  error (sample std of the differences / sqrt(n); none with one seed) and the 95 % Student t
  interval of the mean difference (n - 1 degrees of freedom);
* with ``--margin M``: whether the row is "within M points of the reference or better": "yes"
  only when the interval's lower end is above -M, "no" otherwise, and "n/a" with fewer than
  :data:`MIN_SEEDS` paired seeds (too few for an interval to mean much).

Seeds that only one side ran (or that failed on either side) are counted, never imputed.
"""

from __future__ import annotations

import math
import statistics
from collections import Counter
from dataclasses import dataclass

from bench.results.stats import t_interval
from datasets.types import InputError

MIN_SEEDS = 3  # fewer paired seeds: no verdict
CONFIDENCE = 0.95


@dataclass
class Pairing:
    """One row's comparison with the reference row of the same dataset and variant."""

    dataset: str
    method: str
    variant: str
    reference: str
    seeds: list[int]
    acc: float | None  # mean test accuracy of the row over the paired seeds
    reference_acc: float | None
    diff_points: float | None  # mean of (row - reference) per seed, in points
    stderr_points: float | None
    interval: tuple[float, float] | None  # 95 % t interval of the mean difference, points
    unpaired: int  # successful runs of either side without a partner
    margin: float | None

    @property
    def within_margin(self) -> bool | None:
        """True when the interval's lower end is above -margin; None without a margin or with
        fewer than MIN_SEEDS paired seeds."""
        if self.margin is None or len(self.seeds) < MIN_SEEDS or self.interval is None:
            return None
        return self.interval[0] > -self.margin


def accuracy_by_seed(group) -> dict[int, float]:
    """Test accuracy of each successful run of a report group, by seed."""
    out: dict[int, float] = {}
    for record in group.ok:
        value = (record.get("metrics") or {}).get("test_acc")
        if isinstance(value, (int, float)) and math.isfinite(value):
            out[int(record.get("seed", 0))] = float(value)
    return out


def pair(row_group, reference_group, margin: float | None) -> Pairing:
    mine, theirs = accuracy_by_seed(row_group), accuracy_by_seed(reference_group)
    seeds = sorted(set(mine) & set(theirs))
    diffs = [100.0 * (mine[s] - theirs[s]) for s in seeds]
    stderr = statistics.stdev(diffs) / math.sqrt(len(diffs)) if len(diffs) > 1 else None
    return Pairing(
        dataset=row_group.dataset, method=row_group.method, variant=row_group.label,
        reference=reference_group.method, seeds=seeds,
        acc=statistics.fmean(mine[s] for s in seeds) if seeds else None,
        reference_acc=statistics.fmean(theirs[s] for s in seeds) if seeds else None,
        diff_points=statistics.fmean(diffs) if diffs else None, stderr_points=stderr,
        interval=t_interval(diffs, CONFIDENCE), unpaired=len(set(mine) ^ set(theirs)), margin=margin)


def pairings(groups: list, reference: str, margin: float | None) -> list[Pairing]:
    """A Pairing for every group of another method in a dataset where the reference ran: against
    the reference group of the same variant label, or the dataset's single reference group (the
    reference ran one configuration: every variant is compared with it). A group with no such
    partner still gets a Pairing, with no seeds paired, so that the table shows it unpaired
    instead of leaving it out. InputError when the reference method has no runs at all."""
    if margin is not None and not (margin >= 0 and math.isfinite(margin)):
        raise InputError(f"--margin must be a non-negative number of points, got {margin}")
    references = {(g.dataset, g.label): g for g in groups if g.method == reference}
    if not references:
        known = ", ".join(sorted({g.method for g in groups})) or "none"
        raise InputError(f"--versus {reference}: no runs of that method (methods: {known})")
    per_dataset = Counter(dataset for dataset, _ in references)
    single = {dataset: ref for (dataset, _), ref in references.items() if per_dataset[dataset] == 1}
    out = []
    for group in groups:
        if group.method == reference or group.dataset not in per_dataset:
            continue
        partner = references.get((group.dataset, group.label)) or single.get(group.dataset)
        out.append(pair(group, partner, margin) if partner is not None
                   else unpaired(group, reference, margin))
    return out


def unpaired(group, reference: str, margin: float | None) -> Pairing:
    """A row whose variant the reference did not run (and the reference ran several)."""
    return Pairing(dataset=group.dataset, method=group.method, variant=group.label,
                   reference=reference, seeds=[], acc=None, reference_acc=None,
                   diff_points=None, stderr_points=None, interval=None,
                   unpaired=len(accuracy_by_seed(group)), margin=margin)


def fmt_diff(pairing: Pairing) -> str:
    if pairing.diff_points is None:
        return "—"
    text = f"{pairing.diff_points:+.1f}"
    if pairing.stderr_points is not None:
        text += f" ± {pairing.stderr_points:.1f}"
    return text


def fmt_seeds(pairing: Pairing) -> str:
    if not pairing.seeds:
        return f"none ({pairing.unpaired} unpaired)" if pairing.unpaired else "none"
    seeds = pairing.seeds
    consecutive = seeds == list(range(seeds[0], seeds[-1] + 1))
    text = f"{seeds[0]}-{seeds[-1]}" if consecutive and len(seeds) > 2 else ",".join(map(str, seeds))
    text += f" (n={len(seeds)})"
    if pairing.unpaired:
        text += f", {pairing.unpaired} unpaired"
    return text


def fmt_interval(pairing: Pairing) -> str:
    if pairing.interval is None:
        return "—"
    low, high = pairing.interval
    return f"{low:+.1f} to {high:+.1f}"


def fmt_verdict(pairing: Pairing) -> str:
    if pairing.margin is None:
        return "—"
    verdict = pairing.within_margin
    if verdict is None:
        return "n/a"
    return "yes" if verdict else "no"


def _acc(value: float | None) -> str:
    return "—" if value is None else f"{value:.3f}"


def columns(margin: float | None):
    cols = [
        ("Method", lambda p: p.method),
        ("Variant", lambda p: p.variant or "—"),
        ("Seeds paired", fmt_seeds),
        ("Test acc", lambda p: _acc(p.acc)),
        ("Reference test acc", lambda p: _acc(p.reference_acc)),
        ("Difference, points (± s.e.)", fmt_diff),
        (f"{CONFIDENCE:.0%} interval, points", fmt_interval),
    ]
    if margin is not None:
        unit = "point" if margin == 1 else "points"
        cols.append((f"Within {margin:g} {unit} or better", fmt_verdict))
    return cols


def heading(reference: str) -> str:
    return f"Paired by seed against {reference}"


NOTE = ("Per seed, the row's test accuracy minus the reference's (same dataset, variant and seed, "
        "or every variant against the reference's only configuration; successful runs only), "
        "averaged over the paired seeds; ± is the standard error of that mean, and the interval "
        f"is its {CONFIDENCE:.0%} Student t interval. The verdict is yes only when the interval's "
        f"lower end is above -margin, n/a below {MIN_SEEDS} paired seeds. Test acc columns are "
        "means over the same paired seeds.")
