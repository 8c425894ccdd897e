"""Reading audio clips with soundfile and bringing them to the conversion rate."""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path

import numpy as np

from ..types import InputError

#: Conversion rates accepted by ``data convert --rate`` (Hz). The spikes depend on the rate.
RATES = (8000, 11025, 16000, 22050, 24000, 32000, 44100, 48000)
DEFAULT_RATE = 16000
#: Clips longer than this (seconds) are refused unless ``--max-seconds`` says otherwise.
DEFAULT_MAX_SECONDS = 2.0
AUDIO_SUFFIXES = (".wav", ".flac", ".ogg", ".aiff", ".aif", ".mp3")


def check_rate(rate: int) -> int:
    if int(rate) not in RATES:
        raise InputError(f"unknown rate {rate} Hz; use one of {', '.join(map(str, RATES))}")
    return int(rate)


def clip_info(path: Path) -> tuple[int, float]:
    """(sample rate, duration in s) of an audio file, read from its header."""
    import soundfile

    try:
        info = soundfile.info(str(path))
    except Exception as exc:  # soundfile raises LibsndfileError / RuntimeError / TypeError
        reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise InputError(f"{path}: unreadable audio ({reason})") from None
    if info.samplerate <= 0 or info.frames <= 0:
        raise InputError(f"{path}: unreadable audio (rate {info.samplerate} Hz, "
                         f"{info.frames} samples)")
    return int(info.samplerate), info.frames / info.samplerate


def load_clip(path: Path, rate: int) -> np.ndarray:
    """Mono float64 samples of ``path`` at ``rate`` Hz (channels averaged, polyphase resampling)."""
    import soundfile
    from scipy.signal import resample_poly

    try:
        data, source_rate = soundfile.read(str(path), dtype="float64", always_2d=True)
    except Exception as exc:
        raise InputError(f"{path}: unreadable audio ({type(exc).__name__})") from None
    samples = data.mean(axis=1)
    if source_rate != rate:
        ratio = Fraction(int(rate), int(source_rate))
        samples = resample_poly(samples, ratio.numerator, ratio.denominator)
    if not np.all(np.isfinite(samples)) or not np.any(samples):
        raise InputError(f"{path}: silent or non-finite audio")
    return samples
