"""Which clips a conversion reads: a folder of class subfolders or a CSV manifest.

A folder ``AUDIO/<class>/<file>`` names each clip's class by its subfolder and its speaker by the
file name up to the first ``_`` (``alice_003.wav`` -> ``alice``; no ``_``: speaker ``unknown``).
A manifest is a CSV file with the header ``path,label,speaker,split``; paths are relative to the
manifest; ``split`` is ``train``, ``valid``, ``test`` or empty. Clips without a split go to test when
their speaker is held out (``test_speakers``), to train otherwise.
"""

from __future__ import annotations

import csv
from dataclasses import dataclass
from pathlib import Path

from ..types import InputError
from .audio import AUDIO_SUFFIXES

SPLIT_NAMES = ("train", "valid", "test")


@dataclass(frozen=True)
class Clip:
    path: Path
    label: str
    speaker: str
    split: str  # "" until assigned
    key: str  # stable name of the clip (relative path), seeds its conversion


def _speaker_of(path: Path) -> str:
    return path.stem.split("_", 1)[0] if "_" in path.stem else "unknown"


def from_folder(root: Path) -> list[Clip]:
    classes = sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith("."))
    if not classes:
        raise InputError(f"{root}: empty folder (expected one subfolder per class with audio files)")
    clips = []
    for folder in classes:
        files = sorted(p for p in folder.iterdir() if p.suffix.lower() in AUDIO_SUFFIXES)
        if not files:
            raise InputError(f"{folder}: empty class folder (no {'/'.join(AUDIO_SUFFIXES)} files)")
        clips += [Clip(f, folder.name, _speaker_of(f), "", f"{folder.name}/{f.name}") for f in files]
    return clips


def from_manifest(path: Path) -> list[Clip]:
    try:
        with open(path, newline="") as handle:
            rows = list(csv.DictReader(handle))
    except (OSError, UnicodeDecodeError, csv.Error) as exc:
        raise InputError(f"{path}: cannot read the manifest ({type(exc).__name__})") from None
    if not rows:
        raise InputError(f"{path}: empty manifest (header path,label,speaker,split and one row a clip)")
    missing = {"path", "label"} - set(rows[0])
    if missing:
        raise InputError(f"{path}: manifest lacks column(s) {', '.join(sorted(missing))}")
    clips = []
    for line, row in enumerate(rows, start=2):
        split = (row.get("split") or "").strip()
        if split not in SPLIT_NAMES + ("",):
            raise InputError(f"{path}:{line}: unknown split {split!r} (train, valid, test or empty)")
        rel = (row["path"] or "").strip()
        label = (row["label"] or "").strip()
        if not rel or not label:
            raise InputError(f"{path}:{line}: empty path or label")
        clips.append(Clip(path.parent / rel, label, (row.get("speaker") or "unknown").strip(),
                          split, rel))
    return clips


def discover(audio: str | Path) -> list[Clip]:
    """The clips of a folder or manifest; InputError when there is nothing to convert."""
    root = Path(audio).expanduser()
    if root.is_dir():
        return from_folder(root)
    if root.is_file() and root.suffix.lower() == ".csv":
        return from_manifest(root)
    raise InputError(f"{root}: no such folder or .csv manifest")


def assign_splits(clips: list[Clip], test_speakers: list[str] | None) -> list[Clip]:
    """Give each clip without a split one: held-out speakers -> test, the rest -> train.

    Without ``test_speakers``, the last fifth of the speakers in sorted order (at least one) is held
    out; a collection with a single speaker and no splits cannot be split and is refused."""
    speakers = sorted({c.speaker for c in clips})
    pending = [c for c in clips if not c.split]
    if pending and test_speakers is None:
        if len(speakers) < 2:
            raise InputError("one speaker only: give splits in a manifest or --test-speakers")
        test_speakers = speakers[len(speakers) - max(1, len(speakers) // 5):]
    held = set(test_speakers or ())
    unknown = held - set(speakers)
    if unknown:
        raise InputError(f"unknown test speaker(s) {', '.join(sorted(unknown))}; "
                         f"speakers: {', '.join(speakers)}")
    out = [c if c.split else Clip(c.path, c.label, c.speaker,
                                  "test" if c.speaker in held else "train", c.key) for c in clips]
    for split in ("train", "test"):
        if not any(c.split == split for c in out):
            raise InputError(f"no {split} clips after splitting by speaker")
    return out
