"""Reader and writer of the SHD/SSC HDF5 schema (Cramer et al. 2020).

One file holds one split::

    /spikes/times     (n,) variable-length float, spike times of each sample in seconds
    /spikes/units     (n,) variable-length uint16, input channel of each spike (0..n_in-1)
    /labels           (n,) integer class of each sample
    attribute n_in    optional (on the file's root), the number of input channels
    /extra/speaker    (n,) optional, speaker of each sample
    /extra/keys       (n_classes,) optional, class names (bytes or str)
    /extra/meta_info  optional group or dataset, kept opaque

:func:`read_split` turns a file into flat CSR arrays (all spikes of all samples concatenated,
``offsets`` marking where each sample starts) after checking the schema; every problem becomes a
one-line :class:`bench.api.InputError`. :func:`write_h5` writes the same schema.

Input width. The number of channels of a dataset comes from the data, in this order: the ``n_in``
attribute of the files (written by :func:`write_h5` and the suite's other writers; the splits must
agree), else ``/extra/n_in``, else the width of a named dataset (:data:`KNOWN_N_IN`: 700 for the
Lauscher cochlea model of SHD and SSC), else the largest unit index + 1 over all splits
(:func:`resolve_n_in`). A unit at or above a declared width is an error.

h5py is imported inside the functions so that importing this package stays light.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from .types import InputError

N_IN = 700  # input channels of the Lauscher cochlea model used by SHD and SSC
#: Widths of the named datasets whose files carry no ``n_in`` attribute.
KNOWN_N_IN = {"shd": N_IN, "ssc": N_IN, "synthetic": N_IN}


@dataclass
class RawSplit:
    """One split as flat arrays. Sample ``i`` owns ``times[offsets[i]:offsets[i+1]]``."""

    times: np.ndarray  # (S,) float32 seconds
    units: np.ndarray  # (S,) uint16 (int32 when a unit does not fit)
    offsets: np.ndarray  # (n + 1,) int64
    labels: np.ndarray  # (n,) int64
    speakers: np.ndarray | None = None
    keys: tuple[str, ...] | None = None
    path: Path | None = None
    extras: dict = field(default_factory=dict)
    n_in: int | None = None  # the width the file declares, if it does

    @property
    def n_samples(self) -> int:
        return int(self.labels.shape[0])

    @property
    def n_spikes(self) -> int:
        return int(self.times.shape[0])


def _decode(values) -> tuple[str, ...]:
    out = []
    for v in np.asarray(values).ravel():
        if isinstance(v, bytes):
            out.append(v.decode("utf-8", errors="replace"))
        else:
            out.append(str(v))
    return tuple(out)


def _one_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return text[0] if text else type(exc).__name__


def _flatten(path: Path, name: str, ds) -> tuple[np.ndarray, np.ndarray]:
    """Read a 1-D variable-length dataset into (flat values, per-sample lengths)."""
    import h5py

    base = h5py.check_vlen_dtype(ds.dtype) if isinstance(ds, h5py.Dataset) else None
    if base is None or ds.ndim != 1:
        raise InputError(f"{path}: wrong schema: /{name} must be a 1-D variable-length dataset")
    rows = ds[()]
    lengths = np.fromiter((len(r) for r in rows), dtype=np.int64, count=len(rows))
    if len(rows) == 0:
        return np.zeros(0, dtype=base), lengths
    flat = np.concatenate(rows) if len(rows) > 1 else np.asarray(rows[0])
    return flat, lengths


def read_split(path: str | os.PathLike, *, n_in: int | None = None) -> RawSplit:
    """Read and check one file of the schema above; raise InputError on any problem.

    ``n_in``: the width to check units against; None: the file's declared width, if any (units
    are then only checked to be >= 0 here, and the width is settled by :func:`resolve_n_in`)."""
    import h5py

    path = Path(path)
    if not path.is_file():
        raise InputError(f"missing file {path}")
    try:
        handle = h5py.File(path, "r")
    except Exception as exc:  # h5py raises OSError for non-HDF5 / truncated files
        raise InputError(f"{path}: not an HDF5 file or cannot be read ({_one_line(exc)})") from None
    try:
        with handle as f:
            return _read_open(f, path, n_in)
    except InputError:
        raise
    except Exception as exc:  # a damaged file can fail anywhere inside h5py
        raise InputError(f"{path}: cannot be read ({_one_line(exc)})") from None


def _declared_n_in(f, path: Path) -> int | None:
    """The ``n_in`` attribute of the root, else ``/extra/n_in``; None when neither exists."""
    value = f.attrs.get("n_in")
    if value is None and "extra/n_in" in f:
        value = f["extra/n_in"][()]
    if value is None:
        return None
    value = np.asarray(value).ravel()
    if value.size != 1 or value.dtype.kind not in "iu" or int(value[0]) < 1:
        raise InputError(f"{path}: n_in must be one positive integer, got {value.tolist()!r}")
    return int(value[0])


def _read_open(f, path: Path, n_in: int | None) -> RawSplit:
    import h5py

    declared = _declared_n_in(f, path)
    if n_in is None:
        n_in = declared

    for key in ("spikes/times", "spikes/units", "labels"):
        try:
            present = key in f
        except Exception:
            present = False
        if not present:
            raise InputError(f"{path}: wrong schema: missing /{key}")
    times, t_len = _flatten(path, "spikes/times", f["spikes/times"])
    units, u_len = _flatten(path, "spikes/units", f["spikes/units"])
    labels_ds = f["labels"]
    if not isinstance(labels_ds, h5py.Dataset) or labels_ds.ndim != 1:
        raise InputError(f"{path}: wrong schema: /labels must be a 1-D dataset")
    labels = labels_ds[()]

    n = len(labels)
    if len(t_len) != n or len(u_len) != n:
        raise InputError(
            f"{path}: wrong schema: /spikes/times has {len(t_len)} samples, /spikes/units "
            f"{len(u_len)}, /labels {n}"
        )
    if n == 0:
        raise InputError(f"{path}: empty dataset (no samples)")
    bad = np.flatnonzero(t_len != u_len)
    if bad.size:
        i = int(bad[0])
        raise InputError(
            f"{path}: wrong schema: sample {i} has {t_len[i]} spike times but {u_len[i]} units"
        )

    whole_floats = (
        labels.dtype.kind == "f" and np.all(np.isfinite(labels)) and np.all(labels == np.round(labels))
    )
    if labels.dtype.kind not in "iub" and not whole_floats:
        raise InputError(f"{path}: wrong schema: /labels must be integers, got {labels.dtype}")
    labels = labels.astype(np.int64)
    if labels.min() < 0:
        raise InputError(f"{path}: label {int(labels.min())} out of range (labels must be >= 0)")

    if times.dtype.kind not in "fiu":
        raise InputError(f"{path}: wrong schema: /spikes/times must be numbers, got {times.dtype}")
    if units.dtype.kind not in "iu":
        raise InputError(f"{path}: wrong schema: /spikes/units must be integers, got {units.dtype}")
    if times.size:
        finite = np.isfinite(times)
        if not finite.all():
            i = int(np.searchsorted(np.cumsum(t_len), int(np.argmin(finite)), side="right"))
            raise InputError(f"{path}: non-finite spike time in sample {i}")
        if times.min() < 0:
            i = int(np.searchsorted(np.cumsum(t_len), int(np.argmin(times)), side="right"))
            raise InputError(f"{path}: negative spike time {float(times.min()):g} s in sample {i}")
        umax, umin = int(units.max()), int(units.min())
        if (n_in is not None and umax >= n_in) or umin < 0:
            bad_unit = umin if umin < 0 else umax
            pos = int(np.argmax(units == bad_unit))
            i = int(np.searchsorted(np.cumsum(t_len), pos, side="right"))
            top = "" if n_in is None else f"{n_in - 1}"
            raise InputError(f"{path}: unit index {bad_unit} in sample {i} out of range (0..{top})")

    offsets = np.zeros(n + 1, dtype=np.int64)
    np.cumsum(t_len, out=offsets[1:])
    width = n_in if n_in is not None else (int(units.max()) + 1 if units.size else 1)
    unit_dtype = np.uint16 if width <= 65536 else np.int32

    speakers = None
    keys = None
    extras: dict = {}
    if "extra" in f and isinstance(f["extra"], h5py.Group):
        extra = f["extra"]
        if "speaker" in extra and isinstance(extra["speaker"], h5py.Dataset):
            speakers = np.asarray(extra["speaker"][()])
            if speakers.shape != (n,):
                speakers = None
        if "keys" in extra and isinstance(extra["keys"], h5py.Dataset):
            keys = _decode(extra["keys"][()])
        extras["has_meta_info"] = "meta_info" in extra

    return RawSplit(
        times=np.ascontiguousarray(times, dtype=np.float32),
        units=np.ascontiguousarray(units, dtype=unit_dtype),
        offsets=offsets,
        labels=labels,
        speakers=speakers,
        keys=keys,
        path=path,
        extras=extras,
        n_in=declared,
    )


def resolve_n_in(splits: dict[str, RawSplit], name: str | None = None) -> int:
    """The dataset's width (see the module docstring); raise InputError when the splits declare
    different widths or a unit does not fit the declared one."""
    declared = {split: r.n_in for split, r in splits.items() if r.n_in is not None}
    if len(set(declared.values())) > 1:
        text = ", ".join(f"{split} {n}" for split, n in declared.items())
        raise InputError(f"{name or 'dataset'}: the splits declare different widths n_in ({text})")
    if declared:
        n_in = next(iter(declared.values()))
    elif name in KNOWN_N_IN:
        n_in = KNOWN_N_IN[name]
    else:
        tops = [int(r.units.max()) + 1 for r in splits.values() if r.units.size]
        if not tops:
            raise InputError(f"{name or 'dataset'}: no spikes and no declared n_in: width unknown")
        return max(tops)
    for split, r in splits.items():
        if r.units.size and int(r.units.max()) >= n_in:
            where = r.path or f"{name}/{split}"
            raise InputError(f"{where}: unit index {int(r.units.max())} out of range (0..{n_in - 1})")
    return n_in


def read_labels(path: str | os.PathLike) -> np.ndarray:
    """Only /labels of a file (cheap), for summaries."""
    import h5py

    with h5py.File(path, "r") as f:
        return np.asarray(f["labels"][()]).astype(np.int64)


def write_h5(
    path: str | os.PathLike,
    times_list,
    units_list,
    labels,
    speakers=None,
    keys=None,
    n_in: int | None = None,
) -> Path:
    """Write samples in the SHD/SSC schema.

    ``times_list[i]`` (seconds) and ``units_list[i]`` are the spikes of sample ``i``; ``n_in``,
    when given, is stored as the file's width. The file is written under a temporary name and
    renamed, so a reader never sees half a file.
    """
    import h5py

    path = Path(path)
    n = len(labels)
    if len(times_list) != n or len(units_list) != n:
        raise ValueError("times_list, units_list and labels must have the same length")
    top = max((int(np.max(u)) for u in units_list if len(u)), default=0)
    if n_in is not None and top >= n_in:
        raise ValueError(f"unit index {top} does not fit n_in={n_in}")
    unit_dtype = np.uint16 if max(top, (n_in or 1) - 1) < 65536 else np.uint32
    times_obj = np.empty(n, dtype=object)
    units_obj = np.empty(n, dtype=object)
    for i in range(n):
        times_obj[i] = np.asarray(times_list[i], dtype=np.float32)
        units_obj[i] = np.asarray(units_list[i], dtype=unit_dtype)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        with h5py.File(tmp, "w") as f:
            if n_in is not None:
                f.attrs["n_in"] = np.int64(n_in)
            spikes = f.create_group("spikes")
            # data= (not slice assignment): h5py would broadcast equal-length rows as 2-D
            if n:
                spikes.create_dataset("times", data=times_obj, dtype=h5py.vlen_dtype(np.float32))
                spikes.create_dataset("units", data=units_obj, dtype=h5py.vlen_dtype(unit_dtype))
            else:
                spikes.create_dataset("times", (0,), dtype=h5py.vlen_dtype(np.float32))
                spikes.create_dataset("units", (0,), dtype=h5py.vlen_dtype(np.uint16))
            f.create_dataset("labels", data=np.asarray(labels, dtype=np.uint16))
            extra = f.create_group("extra")
            if speakers is not None:
                extra.create_dataset("speaker", data=np.asarray(speakers, dtype=np.uint16))
            if keys is not None:
                extra.create_dataset("keys", data=[str(k).encode("utf-8") for k in keys])
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()
    return path
