"""CPU placement for frameworks that ignore thread-count settings.

A run that must be held to fewer cores than the machine has claims the cores it takes: one lock
file per core (``fcntl.flock``, released by the kernel when the process ends, however it ends), in
``SNN_BENCH_CORE_LOCKS`` (default: a per-user folder in the temporary directory). Two runs side by
side on one machine (``bench suite --jobs 2``, or two suites) therefore get different cores; runs
placed by a cluster scheduler get the cores of their allocation, which bounds ``allowed``.
"""

from __future__ import annotations

import fcntl
import os
import tempfile
from pathlib import Path

# Open lock files of the cores this process claimed: kept open for the life of the process.
_CLAIMS: list = []


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
    kept = claim_cores(allowed, int(wanted))
    os.sched_setaffinity(0, kept)
    return kept


def claim_cores(allowed: list[int], wanted: int) -> list[int]:
    """``wanted`` cores of ``allowed``: those no other process on this machine has claimed first
    (in order), then, when too few are free, the first of the claimed ones (shared, as without
    claims). Where no lock folder can be written, simply the first ``wanted`` cores."""
    folder = Path(os.environ.get("SNN_BENCH_CORE_LOCKS")
                  or Path(tempfile.gettempdir()) / f"snn-bench-cores-{os.getuid()}")
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError:
        return allowed[:wanted]
    free = []
    for core in allowed:
        if len(free) == wanted:
            break
        if _claim(folder / f"core-{core}.lock"):
            free.append(core)
    shared = [core for core in allowed if core not in free][: wanted - len(free)]
    return sorted(free + shared)


def _claim(path: Path) -> bool:
    try:
        handle = open(path, "a")
    except OSError:
        return False
    try:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        handle.close()
        return False
    _CLAIMS.append(handle)
    return True
