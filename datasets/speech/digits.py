"""``python -m bench data make spoken-digits``: English and German digits from synthetic voices.

Twenty classes in SHD's order (English zero..nine, then German null..neun). A *speaker* is an
espeak-ng voice variant with an English accent of its own; every speaker says every digit in both
languages, :data:`REPEATS` times, each with jittered speed, pitch and amplitude. Each utterance is
trimmed of silence, placed after a random lead-in, and mixed with coloured noise at a random
signal-to-noise ratio (uniform in :data:`SNR_DB`). The speakers in :data:`TEST_SPEAKERS` are held
out: they form the test split. The audio is then converted by :mod:`datasets.speech.convert` at
:data:`RATE` Hz and the audio folder removed. Everything is drawn from ``seed``.
"""

from __future__ import annotations

import hashlib
import io
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..types import InputError

NAME = "spoken-digits"
ENGLISH = ("zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine")
GERMAN = ("null", "eins", "zwei", "drei", "vier", "fünf", "sechs", "sieben", "acht", "neun")
CLASS_NAMES = tuple(f"en-{w}" for w in ENGLISH) + tuple(f"de-{w}" for w in GERMAN)
ACCENTS = ("en", "en-us", "en-gb-scotland", "en-gb-x-rp", "en-029", "en-gb-x-gbclan",
           "en-gb-x-gbcwmd", "en-us-nyc")
SPEAKERS = ("m1", "m2", "m3", "m4", "m5", "m6", "m7", "m8", "f1", "f2", "f3", "f4", "f5", "klatt",
            "klatt2", "klatt3", "adam", "Annie", "aunty", "benjamin", "linda", "max", "paul",
            "steph")
TEST_SPEAKERS = ("m7", "f4", "klatt3", "paul")
REPEATS = 4
RATE = 16000
SNR_DB = (0.0, 20.0)
SPEED_WPM = (130, 210)
PITCH = (25, 75)
AMPLITUDE = (60, 160)
LEAD_IN_S = (0.0, 0.15)
TAIL_S = 0.05


@dataclass(frozen=True)
class Utterance:
    speaker: str
    label: int
    repeat: int

    @property
    def words(self) -> str:
        return (ENGLISH + GERMAN)[self.label]

    @property
    def voice(self) -> str:
        lang = "de" if self.label >= 10 else ACCENTS[SPEAKERS.index(self.speaker) % len(ACCENTS)]
        return f"{lang}+{self.speaker}"

    def file_name(self) -> str:
        return f"{self.speaker}_{self.repeat}.wav"


def _rng(seed: int, u: Utterance) -> np.random.Generator:
    digest = hashlib.sha256(f"{seed}:{u.speaker}:{u.label}:{u.repeat}".encode()).digest()
    return np.random.default_rng(int.from_bytes(digest[:8], "little"))


def espeak() -> str:
    path = shutil.which("espeak-ng")
    if path is None:
        raise InputError("espeak-ng is not installed (Debian: apt-get install espeak-ng); "
                         "it speaks the digits of spoken-digits")
    return path


def _speak(u: Utterance, rng: np.random.Generator) -> tuple[np.ndarray, int]:
    import soundfile

    cmd = [espeak(), "-v", u.voice, "-s", str(int(rng.integers(*SPEED_WPM))),
           "-p", str(int(rng.integers(*PITCH))), "-a", str(int(rng.integers(*AMPLITUDE))),
           "--stdout", u.words]
    wav = subprocess.run(cmd, capture_output=True, check=True).stdout
    samples, rate = soundfile.read(io.BytesIO(wav), dtype="float64")
    return samples, rate


def _trim(x: np.ndarray, rate: int) -> np.ndarray:
    frame = max(1, rate // 100)
    energy = np.sqrt(np.convolve(x**2, np.ones(frame) / frame, mode="same"))
    loud = np.flatnonzero(energy > 0.02 * energy.max())
    return x[loud[0]: loud[-1] + 1] if loud.size else x


def _noise(n: int, rng: np.random.Generator) -> np.ndarray:
    """White noise through a random one-pole low-pass (white to brown-ish)."""
    from scipy.signal import lfilter

    pole = rng.uniform(0.0, 0.95)
    noise = lfilter([1.0], [1.0, -pole], rng.standard_normal(n))
    return noise / np.sqrt(np.mean(noise**2))


def render(u: Utterance, seed: int, snr_db: tuple[float, float] = SNR_DB) -> tuple[np.ndarray, int]:
    """One noisy utterance (samples, rate)."""
    rng = _rng(seed, u)
    speech, rate = _speak(u, rng)
    speech = _trim(speech, rate)
    lead = np.zeros(int(rng.uniform(*LEAD_IN_S) * rate))
    clip = np.concatenate([lead, speech, np.zeros(int(TAIL_S * rate))])
    power = np.mean(speech**2)
    snr = rng.uniform(*snr_db)
    clip = clip + _noise(clip.size, rng) * np.sqrt(power / 10 ** (snr / 10))
    return clip / max(1.0, np.abs(clip).max() * 1.01), rate


def _write(u: Utterance, path: Path, seed: int, snr_db: tuple[float, float]) -> None:
    import soundfile

    samples, rate = render(u, seed, snr_db)
    tmp = path.with_name(f".{path.name}.tmp.wav")
    soundfile.write(str(tmp), samples, rate, subtype="PCM_16")
    tmp.replace(path)


def write_audio(root: Path, utterances: list[Utterance], seed: int, jobs: int,
                snr_db: tuple[float, float], test_speakers: tuple[str, ...]) -> Path:
    """Render every utterance (skipping files already there) and write ``manifest.csv``."""
    from concurrent.futures import ThreadPoolExecutor

    espeak()
    rows = ["path,label,speaker,split"]
    todo = []
    for u in utterances:
        rel = f"{CLASS_NAMES[u.label]}/{u.file_name()}"
        (root / CLASS_NAMES[u.label]).mkdir(parents=True, exist_ok=True)
        if not (root / rel).is_file():
            todo.append((u, root / rel))
        rows.append(f"{rel},{CLASS_NAMES[u.label]},{u.speaker},"
                    f"{'test' if u.speaker in test_speakers else 'train'}")
    with ThreadPoolExecutor(max_workers=max(1, jobs)) as pool:
        list(pool.map(lambda item: _write(item[0], item[1], seed, snr_db), todo))
    manifest = root / "manifest.csv"
    manifest.write_text("\n".join(rows) + "\n")
    return manifest


def make_spoken_digits(data_dir: str | Path | None = None, *, jobs: int = 2, seed: int = 0,
                       progress: bool = True, speakers: tuple[str, ...] = SPEAKERS,
                       test_speakers: tuple[str, ...] = TEST_SPEAKERS, repeats: int = REPEATS,
                       rate: int = RATE, snr_db: tuple[float, float] = SNR_DB,
                       keep_audio: bool = False) -> dict[str, Path]:
    """Synthesise, convert and store the set under ``<data dir>/spoken-digits/``."""
    from .. import paths
    from .convert import convert_collection

    directory = Path(data_dir).expanduser() if data_dir is not None else paths.data_dir()
    target = directory / NAME
    utterances = [Utterance(s, label, r) for s in speakers for label in range(20)
                  for r in range(repeats)]
    manifest = write_audio(target / "audio", utterances, seed, jobs, snr_db, test_speakers)
    files = convert_collection(manifest, target / NAME, rate=rate, seed=seed, jobs=jobs,
                               class_names=list(CLASS_NAMES), progress=progress)
    if not keep_audio:
        shutil.rmtree(target / "audio", ignore_errors=True)
    return files


def digits_files(directory: Path) -> dict[str, Path]:
    """split -> file of the made set; InputError saying how to make it when it is missing."""
    files = {split: directory / NAME / f"{NAME}_{split}.h5" for split in ("train", "test")}
    if not all(p.is_file() for p in files.values()):
        raise InputError(f"{NAME} is not made yet in {directory}: run `python -m bench data make "
                         f"{NAME}` (espeak-ng needed; a few minutes on 2 cores)")
    return files
