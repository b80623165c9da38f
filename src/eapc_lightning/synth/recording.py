"""Recording conditions for the synthetic speech: a room, a microphone channel and background noise.

The synthesiser's output is studio-clean: digital silence between phrases, the same level in every clip
and the full 0-8 kHz band. Real recordings never look like that: pauses hold a noise floor, rooms add
reverberation, microphones and codecs band-limit, and levels differ by tens of decibels. Since the
audio features see the silence between syllables as much as the syllables, a model trained only on
clean synthesis meets real speech out of distribution. Each synthetic clip therefore passes through its
own randomly drawn :class:`RecordingConditions` (drawn from the clip's random stream, so the dataset is
still a function of its seed):

1. reverberation: the dry signal plus an exponentially decaying noise tail (Polack's statistical
   model of a room's late reverberation) with reverberation time ``rt60``;
2. the channel: a 4th-order Butterworth band-pass between ``highpass_hz`` and ``lowpass_hz``
   (telephone 300-3400 Hz up to full band);
3. background noise with a power spectrum falling by ``noise_slope_db`` per octave (0 white,
   -3 pink, -6 brown), at ``snr_db`` below the speech;
4. the level: a gain of ``gain_db`` on the whole recording (microphone distance and preamp), so an
   emotion's loudness still shows relative to the others on average, as it does across real recordings.
"""

from dataclasses import dataclass

import numpy as np
from scipy.signal import butter, fftconvolve, sosfiltfilt

from eapc_lightning.constants import AUDIO_SAMPLE_RATE

ACTIVE_THRESHOLD_DB = -30.0  # 20 ms blocks within 30 dB of the loudest count as speech for level and SNR


@dataclass(frozen=True)
class RecordingConditions:
    rt60: float  # seconds; 0 = dry
    wet: float  # reverberant tail's level relative to the direct sound
    highpass_hz: float
    lowpass_hz: float
    snr_db: float
    noise_slope_db: float  # dB per octave
    gain_db: float

    @classmethod
    def clean(cls) -> "RecordingConditions":
        """No room, full band, no added noise, the synthesiser's level (for tests and comparisons)."""
        return cls(0.0, 0.0, 0.0, AUDIO_SAMPLE_RATE / 2, np.inf, 0.0, 0.0)


def draw_conditions(rng: np.random.Generator) -> RecordingConditions:
    """A random room, channel, noise and level within the range of everyday speech recordings."""
    reverberant = rng.random() < 0.7
    return RecordingConditions(
        rt60=float(rng.uniform(0.15, 0.8)) if reverberant else 0.0,
        wet=float(rng.uniform(0.1, 0.5)) if reverberant else 0.0,
        highpass_hz=float(rng.uniform(40.0, 300.0)),
        lowpass_hz=float(rng.choice([3400.0, 5000.0, 7000.0, 7800.0], p=[0.15, 0.2, 0.3, 0.35])),
        snr_db=float(rng.uniform(12.0, 45.0)),
        noise_slope_db=float(rng.uniform(-6.0, 0.0)),
        gain_db=float(rng.uniform(-12.0, 8.0)),
    )


def speech_rms(signal: np.ndarray, sample_rate: int = AUDIO_SAMPLE_RATE) -> float:
    """RMS over the 20 ms blocks within ``ACTIVE_THRESHOLD_DB`` of the loudest (pauses left out)."""
    block = sample_rate // 50
    usable = len(signal) // block * block
    if usable == 0:
        return float(np.sqrt(np.mean(signal**2))) if len(signal) else 0.0
    power = np.mean(signal[:usable].reshape(-1, block) ** 2, axis=1)
    if power.max() <= 0:
        return 0.0
    active = power >= power.max() * 10 ** (ACTIVE_THRESHOLD_DB / 10)
    return float(np.sqrt(power[active].mean()))


def coloured_noise(rng: np.random.Generator, n: int, slope_db: float, sample_rate: int) -> np.ndarray:
    """Unit-RMS Gaussian noise whose power spectrum falls by ``slope_db`` per octave above 50 Hz."""
    spectrum = np.fft.rfft(rng.normal(0.0, 1.0, n))
    freqs = np.maximum(np.fft.rfftfreq(n, 1.0 / sample_rate), 50.0)
    spectrum *= (freqs / 50.0) ** (slope_db / (20.0 * np.log10(2.0)))
    out = np.fft.irfft(spectrum, n)
    return out / (np.sqrt(np.mean(out**2)) + 1e-12)


def room_response(rng: np.random.Generator, rt60: float, wet: float, sample_rate: int) -> np.ndarray:
    """Impulse response: a unit direct path, then a decaying noise tail (-60 dB after ``rt60``)."""
    length = max(int(rt60 * sample_rate), 1)
    time = np.arange(length) / sample_rate
    tail = rng.normal(0.0, 1.0, length) * np.exp(-3.0 * np.log(10.0) * time / rt60)
    tail[: sample_rate // 400] = 0.0  # the first reflections arrive after about 2.5 ms
    tail *= wet / (np.sqrt(np.sum(tail**2)) + 1e-12)
    response = tail
    response[0] = 1.0
    return response


def apply_conditions(
    signal: np.ndarray,
    conditions: RecordingConditions,
    rng: np.random.Generator,
    sample_rate: int = AUDIO_SAMPLE_RATE,
) -> np.ndarray:
    """``signal`` (float, mono) as recorded under ``conditions``; same length, float32, peaks below 0.99
    (the gain is lowered where it would clip)."""
    out = np.asarray(signal, dtype=np.float64)
    n = len(out)
    if n == 0:
        return out.astype(np.float32)
    if conditions.rt60 > 0 and conditions.wet > 0:
        out = fftconvolve(out, room_response(rng, conditions.rt60, conditions.wet, sample_rate))[:n]
    nyquist = sample_rate / 2
    low = conditions.highpass_hz if conditions.highpass_hz > 0 else None
    high = conditions.lowpass_hz if conditions.lowpass_hz < nyquist * 0.99 else None
    if (low or high) and n > 64:
        band = [low, high] if low and high else (low or high)
        btype = "bandpass" if low and high else ("highpass" if low else "lowpass")
        out = sosfiltfilt(butter(4, band, btype=btype, fs=sample_rate, output="sos"), out)
    speech = speech_rms(out, sample_rate)
    if np.isfinite(conditions.snr_db) and speech > 0:
        noise = coloured_noise(rng, n, conditions.noise_slope_db, sample_rate)
        out = out + noise * speech * 10 ** (-conditions.snr_db / 20)
    peak = float(np.max(np.abs(out)))
    gain = 10 ** (conditions.gain_db / 20)
    out = out * (min(gain, 0.99 / peak) if peak > 0 else gain)  # a recordist keeps the peaks unclipped
    return out.astype(np.float32)
