"""Clocks and memory gauges for honest measurements.

Peak training memory is the high-water mark during training minus the level just before it:
- Linux CPU: writing "5" to /proc/self/clear_refs resets the resident-set high-water mark (VmHWM)
  to the current resident size; /proc/self/status then reports VmHWM and VmRSS.
- CUDA (torch): the caching allocator's peak (reset_peak_memory_stats / max_memory_allocated).
- JAX on GPU: the device's ``peak_bytes_in_use`` from memory_stats().
Elsewhere the process's lifetime maximum (ru_maxrss) is the only gauge and is marked as such.

Thread settings are fixed per run and written to the environment before any framework is imported,
because a framework reads them at import time.
"""

from __future__ import annotations

import os
import resource
import sys
import time
from dataclasses import dataclass
from pathlib import Path

_STATUS = Path("/proc/self/status")
_CLEAR_REFS = Path("/proc/self/clear_refs")


def _status_kib(field: str) -> int | None:
    try:
        for line in _STATUS.read_text().splitlines():
            if line.startswith(field + ":"):
                return int(line.split()[1])
    except OSError:
        return None
    return None


def rss_bytes() -> int | None:
    kib = _status_kib("VmRSS")
    return None if kib is None else kib * 1024


def available_bytes() -> int | None:
    """Memory the kernel says new allocations can get without swapping (MemAvailable)."""
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        return None
    return None


def allocator_settings() -> dict[str, str]:
    """glibc malloc settings from the environment (``MALLOC_*``, ``GLIBC_TUNABLES``): they change
    how much freed memory stays resident, hence the CPU peak-memory figure."""
    return {k: v for k, v in sorted(os.environ.items())
            if k.startswith("MALLOC_") or k == "GLIBC_TUNABLES"}


def reset_hwm() -> bool:
    """Reset VmHWM to the current RSS. Returns False where the kernel does not allow it."""
    try:
        _CLEAR_REFS.write_text("5")
    except OSError:
        return False
    return True


def hwm_bytes() -> int | None:
    kib = _status_kib("VmHWM")
    if kib is not None:
        return kib * 1024
    scale = 1 if sys.platform == "darwin" else 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * scale


class Clock:
    """Accumulates seconds of timed regions; the caller syncs the device before ``stop``."""

    def __init__(self) -> None:
        self.total = 0.0
        self._start: float | None = None

    def start(self) -> None:
        self._start = time.perf_counter()

    def stop(self) -> float:
        assert self._start is not None, "Clock.stop without start"
        elapsed = time.perf_counter() - self._start
        self.total += elapsed
        self._start = None
        return elapsed


@dataclass
class PeakMemory:
    """Peak memory of a phase above the level before training (bytes).

    Call :meth:`begin_training` once, :meth:`resume_phase` before each training phase and
    :meth:`end_phase` after it; evaluation between phases is excluded.
    """

    device: str = "cpu"
    framework: str = "torch"
    baseline: int = 0
    peak: int = 0
    method: str = "unavailable"

    def begin_training(self) -> None:
        if self.device == "cuda" and self.framework == "torch":
            import torch

            torch.cuda.synchronize()
            self.baseline = torch.cuda.memory_allocated()
            self.method = "cuda-allocator-peak"
        elif self.device == "cuda" and self.framework == "jax":
            self.baseline = _jax_bytes("bytes_in_use")
            self.method = "jax-device-peak"
        else:
            self.baseline = rss_bytes() or 0
            self.method = "linux-vmhwm" if reset_hwm() else "ru_maxrss-lifetime"

    def resume_phase(self) -> None:
        if self.method == "cuda-allocator-peak":
            import torch

            torch.cuda.reset_peak_memory_stats()
        elif self.method == "linux-vmhwm":
            reset_hwm()

    def end_phase(self) -> None:
        if self.method == "cuda-allocator-peak":
            import torch

            high = torch.cuda.max_memory_allocated()
        elif self.method == "jax-device-peak":
            high = _jax_bytes("peak_bytes_in_use")
        else:
            high = hwm_bytes() or 0
        self.peak = max(self.peak, high - self.baseline)


def _jax_bytes(key: str) -> int:
    import jax

    stats = jax.devices()[0].memory_stats() or {}
    return int(stats.get(key, 0))


def configure_threads(threads: int) -> dict[str, str]:
    """Fix the thread counts of BLAS/OpenMP, torch and XLA for this process; return what was set.

    Must run before torch or jax is imported to take full effect; torch's count is set again
    after import by :func:`apply_torch_threads`.
    """
    settings = {
        "OMP_NUM_THREADS": str(threads),
        "MKL_NUM_THREADS": str(threads),
        "OPENBLAS_NUM_THREADS": str(threads),
        # jaxlib ignores intra-op thread flags: see methods.cpu.limit_cpu_affinity
        "XLA_FLAGS": f"--xla_cpu_multi_thread_eigen={'true' if threads > 1 else 'false'}",
        "XLA_PYTHON_CLIENT_PREALLOCATE": "false",
    }
    for key, value in settings.items():
        os.environ[key] = value
    os.environ["SNN_BENCH_THREADS"] = str(threads)
    return settings


def apply_torch_threads(threads: int) -> None:
    if "torch" in sys.modules:
        import torch

        torch.set_num_threads(threads)
        try:
            torch.set_num_interop_threads(1)
        except RuntimeError:  # already set once in this process
            pass
        torch.set_flush_denormal(True)
