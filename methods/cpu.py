"""CPU placement for frameworks that ignore thread-count settings."""

from __future__ import annotations

import os


def limit_cpu_affinity() -> list[int] | None:
    """Restrict this process to as many cores as the run's thread count (``SNN_BENCH_THREADS``).

    For frameworks that ignore thread-count settings: jaxlib's CPU client starts threads of its
    own whatever XLA_FLAGS says, and only the affinity mask bounds them. Call before importing
    such a framework. Returns the cores kept, or None when nothing was changed.
    """
    wanted = os.environ.get("SNN_BENCH_THREADS")
    if not wanted or not hasattr(os, "sched_setaffinity"):
        return None
    allowed = sorted(os.sched_getaffinity(0))
    if int(wanted) >= len(allowed):
        return None
    kept = allowed[: int(wanted)]
    os.sched_setaffinity(0, kept)
    return kept
