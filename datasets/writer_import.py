"""``python -m bench data import SOURCE --out PREFIX``: spike data from a ``.npz`` file or a tonic
cache folder into the benchmark's files (:func:`datasets.writer.write_spike_dataset`).

Sources:

* ``FILE.npz`` holding, for each split (``train``, ``test``, optional ``valid``), flat arrays
  ``<split>_offsets`` (n + 1, sample i owns entries ``offsets[i]:offsets[i+1]``) and
  ``<split>_labels`` (n), with either ``<split>_times`` (seconds) and ``<split>_units``, or tonic's
  fields ``<split>_t`` (microseconds), ``<split>_x`` and optionally ``<split>_y``, ``<split>_p``;
  optionally ``sensor_size`` (W, H, P) and ``class_names``. No object arrays (nothing pickled).
* a folder with ``train/``, ``test/`` and optionally ``valid/`` sub-folders, each written by
  ``tonic.DiskCachedDataset`` (files ``<index>_<copy>.hdf5`` holding ``data/0``, a structured
  event array, and ``target/0``); copy 0 of every index is read, in index order.

``--sensor-size W,H,P`` gives (or overrides) the sensor size.
"""

from __future__ import annotations

import argparse
import re
from pathlib import Path

import numpy as np

from .paths import SPLITS
from .types import InputError


def add_import_parser(sub) -> None:
    parser = sub.add_parser("import", help="write a .npz file or tonic cache folder as a dataset",
                            description="Convert spike data (.npz or a folder of tonic "
                            "DiskCachedDataset caches) into <out>_{train,test}.h5.")
    parser.add_argument("source", help="a .npz file or a folder with train/ and test/")
    parser.add_argument("--out", required=True, metavar="PREFIX",
                        help="files go to PREFIX_train.h5 etc.; `bench run --dataset PREFIX`")
    parser.add_argument("--sensor-size", default=None, metavar="W,H,P",
                        help="sensor size for event arrays with x, y, p (flattened to channels)")


def main_import(args: argparse.Namespace) -> int:
    from .writer import write_spike_dataset

    source = Path(args.source)
    sensor = _parse_sensor(args.sensor_size)
    if source.is_dir():
        splits, meta = read_tonic_folder(source), {}
    elif source.suffix == ".npz" and source.is_file():
        splits, meta = read_npz(source)
    else:
        raise InputError(f"{source}: expected a .npz file or a folder with train/ and test/")
    sensor = sensor or meta.get("sensor_size")
    prefix = write_spike_dataset(args.out, splits, sensor_size=sensor,
                                 class_names=meta.get("class_names"))
    for split in splits:
        print(f"{split}: {prefix}_{split}.h5")
    return 0


def _parse_sensor(text: str | None):
    if text is None:
        return None
    try:
        return tuple(int(v) for v in text.split(","))
    except ValueError:
        raise InputError(f"--sensor-size expects W,H,P integers, got {text!r}") from None


def read_npz(path: Path) -> tuple[dict[str, list], dict]:
    try:
        archive = np.load(path, allow_pickle=False)
    except Exception as exc:
        raise InputError(f"{path}: cannot be read as .npz ({exc})") from None
    with archive:
        arrays = {key: archive[key] for key in archive.files}
    splits = {}
    for split in SPLITS:
        if f"{split}_offsets" not in arrays:
            continue
        offsets = arrays[f"{split}_offsets"].astype(np.int64)
        labels = arrays.get(f"{split}_labels")
        if labels is None or offsets.shape != (labels.shape[0] + 1,):
            raise InputError(f"{path}: {split}_labels must have one entry per sample "
                             f"(len({split}_offsets) - 1)")
        if f"{split}_times" in arrays:
            columns = (arrays[f"{split}_times"], arrays[f"{split}_units"])
            cut = lambda i: (columns[0][offsets[i]:offsets[i + 1]], columns[1][offsets[i]:offsets[i + 1]])
        else:
            events = _structured(arrays, split, path)
            cut = lambda i, e=events: e[offsets[i]:offsets[i + 1]]
        splits[split] = [(cut(i), labels[i]) for i in range(labels.shape[0])]
    meta = {}
    if "sensor_size" in arrays:
        meta["sensor_size"] = tuple(int(v) for v in arrays["sensor_size"])
    if "class_names" in arrays:
        meta["class_names"] = [str(v) for v in arrays["class_names"]]
    return splits, meta


def _structured(arrays: dict, split: str, path: Path) -> np.ndarray:
    fields = [f for f in ("t", "x", "y", "p") if f"{split}_{f}" in arrays]
    if "t" not in fields or "x" not in fields:
        raise InputError(f"{path}: {split} needs {split}_times and {split}_units, or {split}_t "
                         f"and {split}_x")
    columns = [arrays[f"{split}_{f}"] for f in fields]
    events = np.empty(columns[0].shape[0], dtype=[(f, np.int64) for f in fields])
    for name, column in zip(fields, columns):
        events[name] = column
    return events


_CACHE_FILE = re.compile(r"^(\d+)_0\.hdf5$")


def read_tonic_folder(folder: Path) -> dict[str, list]:
    import h5py

    splits = {}
    for split in SPLITS:
        directory = folder / split
        if not directory.is_dir():
            continue
        files = sorted((int(m.group(1)), p) for p in directory.iterdir()
                       if (m := _CACHE_FILE.match(p.name)))
        samples = []
        for _, path in files:
            with h5py.File(path, "r") as f:
                if "data/0" not in f or "target/0" not in f:
                    raise InputError(f"{path}: not a tonic cache file (needs data/0 and target/0)")
                samples.append((f["data/0"][()], f["target/0"][()]))
        splits[split] = samples
    if not splits:
        raise InputError(f"{folder}: no train/ or test/ folder of tonic cache files")
    return splits
