"""Spike datasets for the benchmark: the SHD/SSC reader, the embedded synthetic default, download.

    >>> from datasets import open_dataset
    >>> ds = open_dataset("synthetic", steps=1000, dt_ms=1.0)
    >>> ds.spec.n_in, ds.spec.n_classes
    (700, 20)
    >>> batch = next(ds.batches("train", 32, shuffle=True, seed=0))
    >>> batch.x.shape
    (32, 1000, 700)

Nothing here imports a deep-learning framework; h5py is imported when a file is read.
"""

from __future__ import annotations

from pathlib import Path

from .types import InputError

from .catalog import recommended_epochs, recommended_lr
from .paths import data_dir, dataset_files, unknown_name
from .spikes import SpikeDataset
from .writer import write_spike_dataset

__all__ = ["open_dataset", "data_dir", "SpikeDataset", "InputError", "write_spike_dataset"]



def open_dataset(
    name: str,
    *,
    steps: int = 1000,
    dt_ms: float = 1.0,
    data_dir: str | Path | None = None,
    valid_fraction: float = 0.0625,
    split_seed: int = 0,
) -> SpikeDataset:
    """Open ``synthetic``, ``shd``, ``ssc`` or a path to ``<prefix>_{train,test}[,valid].h5``.

    ``data_dir`` defaults to :func:`data_dir` (``$SNN_BENCH_DATA`` or the user cache). The
    synthetic set is generated there on first use. Every problem raises a one-line InputError.
    """
    from . import paths as _paths

    directory = Path(data_dir).expanduser() if data_dir is not None else _paths.data_dir()
    if not isinstance(name, str) or not name:
        raise unknown_name(str(name))
    display, files = dataset_files(name, directory)
    epochs = recommended_epochs(name)
    return SpikeDataset(
        display,
        files,
        steps=steps,
        dt_ms=dt_ms,
        valid_fraction=valid_fraction,
        split_seed=split_seed,
        cache_dir=directory,
        recommended_epochs=epochs,
        recommended_lr=recommended_lr(name),
    )
