"""The SHD cochlea: audio samples -> bushy-cell spike trains in 700 channels (Cramer et al. 2020).

    >>> from datasets.cochlea import convert_wave
    >>> times, units = convert_wave(samples, rate=16000, seed=0)   # seconds, channel indices

The chain, one module per stage:

1. level: the clip is scaled to an RMS of :data:`RMS_LEVEL` (0.3) and faded in and out with the
   rising and falling halves of a Hanning window as long as the clip (:func:`prepare`);
2. :mod:`.membrane`: a hydrodynamic basilar membrane, output at half the audio rate;
3. :mod:`.haircell`: the Meddis inner hair cell, giving a release probability per step;
4. :mod:`.bushy`: 40 refractory auditory-nerve fibres per channel pooled by a bushy cell.

Channel 0 is the membrane's base (highest frequencies). Spike times are the bushy cell's step
divided by the membrane's rate. The result depends on the audio rate: convert every clip of a
dataset at one rate (:func:`datasets.speech.audio.load_clip` resamples).
"""

from __future__ import annotations

import numpy as np

from .bushy import bushy_spikes
from .haircell import release_probability
from .membrane import fast_length, membrane_velocity

#: Bumped whenever the chain's output for the same input and seed changes.
VERSION = "2"
RMS_LEVEL = 0.3
CHANNELS = 700


def prepare(samples: np.ndarray) -> np.ndarray:
    """RMS-normalised, faded copy of a mono clip; ValueError for a silent one."""
    x = np.asarray(samples, dtype=np.float64).copy()
    rms = float(np.sqrt(np.mean(x**2))) if x.size else 0.0
    if not np.isfinite(rms) or rms == 0.0:
        raise ValueError("silent or non-finite audio")
    x *= RMS_LEVEL / rms
    half = x.size // 2
    ramp = np.hanning(2 * half)
    x[:half] *= ramp[:half]
    x[x.size - half:] *= ramp[half:]
    return x


def release(samples: np.ndarray, rate: int, channels: int = CHANNELS) -> tuple[np.ndarray, int]:
    """Hair-cell release probabilities (channels, n) and their rate, before the stochastic stage.

    The clip is first cut to :func:`~.membrane.fast_length` samples (at most 0.5 % shorter)."""
    samples = np.asarray(samples)[: fast_length(len(samples))]
    velocity, fs = membrane_velocity(prepare(samples), int(rate), channels)
    return release_probability(velocity, fs), fs


def convert_wave(samples: np.ndarray, rate: int, *, channels: int = CHANNELS,
                 seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Spike times (float64 seconds) and channels (int64) of one mono clip, sorted by time."""
    prob, fs = release(samples, rate, channels)
    steps, units = bushy_spikes(prob, fs, seed)
    return steps / float(fs), units


def settings(rate: int, channels: int = CHANNELS) -> dict:
    """The converter's settings, stored beside the spikes."""
    from . import bushy, haircell, membrane

    return {
        "converter": "snn-bench cochlea", "version": VERSION, "rate_hz": int(rate),
        "channels": int(channels), "rms_level": RMS_LEVEL, "membrane_rate_hz": int(rate) // 2,
        "transfer_table_points": membrane.TABLE_POINTS, "hair_cell": dict(haircell.PARAMS),
        "fibres": bushy.N_FIBRES, "tau_mem_s": bushy.TAU_MEM, "tau_syn_s": bushy.TAU_SYN,
        "t_ref_s": bushy.T_REF, "weight": bushy.WEIGHT,
    }
