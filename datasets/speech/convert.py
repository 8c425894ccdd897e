"""``python -m bench data convert``: a folder or manifest of audio clips -> SHD-schema files.

Every clip is read with soundfile, resampled to one rate and converted by :mod:`datasets.cochlea`
with its own seed (drawn from the run's seed and the clip's name, so the output does not depend on
the order or the number of worker processes). Each converted clip is saved at once as
``<PREFIX>.parts/<digest>.npz`` (the digest covers the clip's name, size and mtime and the
converter's settings), so an interrupted conversion picks up where it stopped; when every clip is
done, ``<PREFIX>_{train,[valid,]test}.h5`` are written and the parts removed. Each file holds the
SHD schema plus ``/extra/meta_info`` (the converter's settings as JSON, speaker names, the held-out
speakers, the clips' names).
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np

from ..types import InputError
from .audio import DEFAULT_MAX_SECONDS, DEFAULT_RATE, check_rate, clip_info, load_clip
from .manifest import SPLIT_NAMES, Clip, assign_splits, discover


def clip_seed(seed: int, key: str) -> int:
    return int.from_bytes(hashlib.sha256(f"{seed}:{key}".encode()).digest()[:4], "little")


def _part_name(clip: Clip, settings: dict, seed: int) -> str:
    stat = clip.path.stat()
    text = json.dumps([clip.key, stat.st_size, stat.st_mtime_ns, settings, seed], sort_keys=True)
    return hashlib.sha256(text.encode()).hexdigest()[:20] + ".npz"


def convert_clip(path: Path, out: Path, rate: int, channels: int, seed: int) -> int:
    """Convert one file and save its spikes atomically as ``out``; returns the spike count."""
    from ..cochlea import convert_wave

    samples = load_clip(path, rate)
    try:
        times, units = convert_wave(samples, rate, channels=channels, seed=seed)
    except ValueError as exc:
        raise InputError(f"{path}: {exc}") from None
    tmp = out.with_name(f".{out.name}.{os.getpid()}.tmp.npz")
    np.savez(tmp, times=times.astype(np.float32), units=units.astype(np.uint16))
    os.replace(tmp, out)
    return int(times.size)


def _check_clips(clips: Sequence[Clip], max_seconds: float) -> None:
    for clip in clips:
        if not clip.path.is_file():
            raise InputError(f"{clip.path}: no such audio file")
        _, seconds = clip_info(clip.path)
        if seconds > max_seconds:
            raise InputError(f"{clip.path}: clip too long ({seconds:.2f} s > {max_seconds:g} s; "
                             "raise --max-seconds or cut it)")


def _warm_up(rate: int, channels: int) -> None:
    """Build the membrane table and compile the kernels once, before workers fork."""
    from ..cochlea import convert_wave

    t = np.arange(rate // 20) / rate
    convert_wave(np.sin(2 * np.pi * 440 * t), rate, channels=channels, seed=0)


def _run(todo: list[tuple[Clip, Path, int]], rate: int, channels: int, jobs: int,
         progress: bool, convert: Callable[..., int]) -> None:
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TimeRemainingColumn

    columns = ("[progress.description]{task.description}", BarColumn(), MofNCompleteColumn(),
               TimeRemainingColumn())
    with Progress(*columns, console=Console(stderr=True), disable=not progress) as bar:
        task = bar.add_task("converting", total=len(todo))
        if jobs <= 1:
            for clip, out, seed in todo:
                convert(clip.path, out, rate, channels, seed)
                bar.advance(task)
            return
        import multiprocessing
        from concurrent.futures import ProcessPoolExecutor, as_completed

        context = multiprocessing.get_context("fork")
        with ProcessPoolExecutor(max_workers=jobs, mp_context=context) as pool:
            futures = [pool.submit(convert, c.path, out, rate, channels, s) for c, out, s in todo]
            try:
                for future in as_completed(futures):
                    future.result()
                    bar.advance(task)
            except BaseException:
                for future in futures:
                    future.cancel()
                raise


def _write_split(path: Path, clips: list[Clip], parts: list[Path], class_names: list[str],
                 speakers: list[str], meta: dict, channels: int) -> Path:
    import h5py

    from ..h5 import write_h5

    times, units = [], []
    for part in parts:
        with np.load(part) as data:
            times.append(data["times"])
            units.append(data["units"])
    labels = [class_names.index(c.label) for c in clips]
    speaker_ids = [speakers.index(c.speaker) for c in clips]
    tmp = path.with_name(f".{path.name}.{os.getpid()}.h5")
    write_h5(tmp, times, units, labels, speakers=speaker_ids, keys=class_names, n_in=channels)
    with h5py.File(tmp, "a") as f:
        group = f["extra"].create_group("meta_info")
        for name, value in meta.items():
            group.attrs[name] = json.dumps(value)
        group.create_dataset("clips", data=[c.key.encode("utf-8") for c in clips])
    os.replace(tmp, path)
    return path


def convert_collection(audio: str | Path, prefix: str | Path, *, rate: int = DEFAULT_RATE,
                       channels: int = 700, seed: int = 0, jobs: int = 1,
                       max_seconds: float = DEFAULT_MAX_SECONDS,
                       test_speakers: list[str] | None = None,
                       class_names: list[str] | None = None, progress: bool = True,
                       convert: Callable[..., int] = convert_clip) -> dict[str, Path]:
    """Convert every clip of ``audio``; returns split -> written file."""
    from .. import cochlea

    rate = check_rate(rate)
    if not 1 <= channels <= 65535:
        raise InputError(f"--channels must be within 1..65535, got {channels}")
    clips = assign_splits(discover(audio), test_speakers)
    names = list(class_names) if class_names else sorted({c.label for c in clips})
    unknown = sorted({c.label for c in clips} - set(names))
    if unknown:
        raise InputError(f"label(s) {', '.join(unknown)} not among the class names")
    _check_clips(clips, max_seconds)
    prefix = Path(prefix).expanduser()
    parts_dir = prefix.parent / f"{prefix.name}.parts"
    parts_dir.mkdir(parents=True, exist_ok=True)
    settings = cochlea.settings(rate, channels)
    seeds = [clip_seed(seed, c.key) for c in clips]
    parts = [parts_dir / _part_name(c, settings, seed) for c in clips]
    todo = [(c, p, s) for c, p, s in zip(clips, parts, seeds) if not p.is_file()]
    if todo:
        if jobs > 1:
            _warm_up(rate, channels)
        _run(todo, rate, channels, jobs, progress, convert)
    speakers = sorted({c.speaker for c in clips})
    held = sorted({c.speaker for c in clips if c.split == "test"}
                  - {c.speaker for c in clips if c.split != "test"})
    meta = {"converter": {**settings, "seed": int(seed)}, "speaker_names": speakers,
            "test_speakers": held}
    written = {}
    for split in SPLIT_NAMES:
        index = [i for i, c in enumerate(clips) if c.split == split]
        if index:
            written[split] = _write_split(prefix.parent / f"{prefix.name}_{split}.h5",
                                          [clips[i] for i in index], [parts[i] for i in index],
                                          names, speakers, meta, channels)
    shutil.rmtree(parts_dir, ignore_errors=True)
    return written
