"""Speech-like audio and the mouth movement that goes with it, both from one random sentence plan.

A sentence is phrases of words of syllables (optional onset consonant, a vowel, optional coda),
separated by pauses. From the plan, control tracks at 1 kHz are built: voicing amplitude (syllable
envelopes), F0 (phrase declination, pitch accents on stressed syllables, terminal rise, jitter),
formants F1-F3 (vowel targets with coarticulation smoothing), noise amplitudes of the consonant
classes, and the articulation (jaw opening = vowel openness x stress, partly open through other consonants,
smoothed over 80 ms; lip spread = vowel spread; labial consonants and pauses close the lips).

Audio is additive harmonic synthesis: harmonic ``k`` of the glottal source has amplitude
``(k F0)^-tilt`` times the vocal-tract response of three formant resonators at ``k F0``, normalised
to constant power and then shaped by the voicing envelope, so the loudness follows the syllables
(and a vowel's intrinsic intensity, larger for open vowels); band-limited noise adds fricatives,
plosive bursts and breathiness. Harmonics above 7.6 kHz are dropped (no aliasing at 16 kHz).
"""

from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np

from eapc_lightning.constants import AUDIO_SAMPLE_RATE, VIDEO_FPS
from eapc_lightning.synth.emotion import VoiceStyle

CONTROL_RATE = 1000  # Hz
MAX_HARMONIC_HZ = 7600.0
FORMANT_BANDWIDTHS = (80.0, 110.0, 160.0)  # Hz
OUTPUT_GAIN = 0.07  # neutral speech lands near -26 dBFS RMS; the loudest style stays below full scale


@dataclass(frozen=True)
class Vowel:
    f1: float
    f2: float
    f3: float
    openness: float  # jaw opening, 0 closed .. 1 widest
    spread: float  # lip width, -1 rounded .. 1 spread


# Formants: Peterson & Barney (1952) averages for adult male speakers (Hz).
VOWELS = {
    "i": Vowel(270, 2290, 3010, openness=0.18, spread=1.0),
    "I": Vowel(390, 1990, 2550, openness=0.3, spread=0.7),
    "E": Vowel(530, 1840, 2480, openness=0.55, spread=0.5),
    "ae": Vowel(660, 1720, 2410, openness=0.8, spread=0.6),
    "a": Vowel(730, 1090, 2440, openness=1.0, spread=0.1),
    "O": Vowel(570, 840, 2410, openness=0.7, spread=-0.6),
    "U": Vowel(440, 1020, 2240, openness=0.35, spread=-0.7),
    "u": Vowel(300, 870, 2240, openness=0.2, spread=-1.0),
}
NASAL_FORMANTS = (260.0, 1100.0, 2300.0)
# The jaw during a non-labial consonant (fraction of the widest vowel's opening) and the time over which
# the jaw's movement is smoothed. Real speakers keep the jaw partly open through t, s, k, n and move it
# at the syllable rate at most (lip-aperture tracking studies put the jaw's main energy below 5 Hz).
CONSONANT_JAW = 0.3
JAW_SMOOTHING = 0.08  # s


@dataclass(frozen=True)
class Consonant:
    kind: str  # "fricative", "plosive" or "nasal"
    band: tuple[float, float]  # noise band (Hz); unused for nasals
    duration: float  # seconds at tempo 1
    level: float  # noise (or nasal murmur) amplitude relative to a vowel
    labial: bool  # closes the lips
    spread: float


CONSONANTS = {
    "s": Consonant("fricative", (4000, 7500), 0.09, 0.22, False, 0.5),
    "sh": Consonant("fricative", (2000, 5200), 0.09, 0.28, False, -0.5),
    "f": Consonant("fricative", (1200, 7200), 0.08, 0.10, True, 0.0),
    "h": Consonant("fricative", (400, 3500), 0.06, 0.10, False, 0.0),
    "p": Consonant("plosive", (500, 6000), 0.07, 0.45, True, 0.0),
    "t": Consonant("plosive", (2500, 7200), 0.06, 0.40, False, 0.2),
    "k": Consonant("plosive", (1200, 4200), 0.07, 0.40, False, 0.0),
    "m": Consonant("nasal", (0, 0), 0.07, 0.30, True, 0.0),
    "n": Consonant("nasal", (0, 0), 0.06, 0.30, False, 0.1),
}
ONSET_WEIGHTS = {"s": 3, "sh": 1, "f": 1, "h": 1, "p": 2, "t": 3, "k": 2, "m": 2, "n": 3}
CODA_WEIGHTS = {"s": 2, "t": 2, "k": 1, "m": 1, "n": 3}
NOISE_BANDS = sorted({c.band for c in CONSONANTS.values() if c.kind != "nasal"} | {(300.0, 6000.0)})
BREATH_BAND = (300.0, 6000.0)


@dataclass(frozen=True)
class Voice:
    """A speaker's neutral voice: mean F0 (Hz), formant scale (vocal-tract length), syllables/s."""

    pitch: float
    formant_scale: float
    syllable_rate: float


@dataclass(frozen=True)
class Segment:
    start: float
    end: float
    kind: str  # "vowel", "consonant"
    symbol: str
    stress: float  # 1 for the stressed syllable of a word, 0.75 otherwise
    phrase: int


@dataclass(frozen=True)
class Phrase:
    start: float
    end: float


@dataclass
class SentencePlan:
    segments: list[Segment]
    phrases: list[Phrase]
    duration: float


def _pick(rng: np.random.Generator, weights: dict[str, float]) -> str:
    names = list(weights)
    p = np.array([weights[n] for n in names], dtype=np.float64)
    return names[int(rng.choice(len(names), p=p / p.sum()))]


def plan_sentence(rng: np.random.Generator, duration: float, syllable_rate: float) -> SentencePlan:
    """Random phrases/words/syllables filling ``duration`` seconds at ``syllable_rate`` per second."""
    segments: list[Segment] = []
    phrases: list[Phrase] = []
    time = float(rng.uniform(0.1, 0.25))
    speech_end = duration - float(rng.uniform(0.12, 0.25))
    syllable = 1.0 / syllable_rate
    consonant_scale = syllable_rate**-0.5 * 4.0**0.5  # consonants shrink less than vowels when faster
    while time < speech_end - 0.3 * syllable:
        phrase_start = time
        for _ in range(int(rng.integers(2, 6))):
            syllables = int(rng.integers(1, 4))
            stressed = int(rng.integers(0, syllables))
            for index in range(syllables):
                stress = 1.0 if index == stressed else 0.75
                parts = []
                if rng.random() < 0.75:
                    parts.append(("consonant", _pick(rng, ONSET_WEIGHTS)))
                parts.append(("vowel", list(VOWELS)[int(rng.integers(len(VOWELS)))]))
                if rng.random() < 0.25:
                    parts.append(("consonant", _pick(rng, CODA_WEIGHTS)))
                for kind, symbol in parts:
                    if kind == "vowel":
                        length = syllable * float(rng.uniform(0.5, 0.75)) * (1.25 if stress == 1.0 else 1.0)
                    else:
                        length = CONSONANTS[symbol].duration * consonant_scale * float(rng.uniform(0.8, 1.2))
                    segments.append(Segment(time, time + length, kind, symbol, stress, len(phrases)))
                    time += length
            if rng.random() < 0.3:
                time += float(rng.uniform(0.02, 0.08))
            if time >= speech_end:
                break
        phrases.append(Phrase(phrase_start, min(time, speech_end)))
        time += float(rng.uniform(0.15, 0.35)) / (syllable_rate / 4.0)
    segments = [s for s in segments if s.start < speech_end]
    if segments and segments[-1].end > speech_end:
        last = segments[-1]
        segments[-1] = Segment(last.start, speech_end, last.kind, last.symbol, last.stress, last.phrase)
    return SentencePlan(segments, phrases, duration)


def _smooth(track: np.ndarray, seconds: float) -> np.ndarray:
    """Hann-window moving average (edges padded by repetition)."""
    width = max(int(round(seconds * CONTROL_RATE)) | 1, 3)
    window = np.hanning(width + 2)[1:-1]
    window /= window.sum()
    padded = np.pad(track, (width // 2, width // 2), mode="edge")
    return np.convolve(padded, window, mode="valid")


def _envelope(n: int, attack: int, release: int) -> np.ndarray:
    """Raised-cosine attack and release over ``n`` control samples."""
    env = np.ones(n)
    attack, release = min(attack, n // 2), min(release, n - n // 2)
    if attack > 0:
        env[:attack] = 0.5 - 0.5 * np.cos(np.pi * (np.arange(attack) + 0.5) / attack)
    if release > 0:
        env[n - release :] = 0.5 + 0.5 * np.cos(np.pi * (np.arange(release) + 0.5) / release)
    return env


@dataclass
class Tracks:
    """Control tracks at ``CONTROL_RATE``."""

    voicing: np.ndarray  # voiced amplitude (syllable envelopes x intrinsic vowel intensity)
    f0: np.ndarray  # Hz
    formants: np.ndarray  # (3, N) Hz, before the speaker's formant scale
    noise: dict[tuple[float, float], np.ndarray]  # amplitude per noise band
    opening: np.ndarray  # jaw opening (units of face.JAW_OPEN)
    spread: np.ndarray  # lip spread (units of face.LIP_SPREAD)


def articulation(
    plan: SentencePlan, style: VoiceStyle, vowels: Mapping[str, Vowel] = VOWELS
) -> tuple[np.ndarray, np.ndarray]:
    """Jaw opening and lip spread at ``CONTROL_RATE`` for the plan's segments: a vowel opens the jaw by
    its openness x stress and sets its spread (``vowels`` maps the plan's vowel symbols to their
    articulation); a labial consonant closes the lips, any other keeps the jaw at ``CONSONANT_JAW``;
    pauses close the mouth. The jaw moves slower than the sound: smoothing over ``JAW_SMOOTHING`` spreads
    each vowel's opening into its neighbours (coarticulation), so only labials and pauses close the mouth."""
    n = int(round(plan.duration * CONTROL_RATE))
    opening_target = np.zeros(n)
    spread_target = np.zeros(n)
    for segment in plan.segments:
        a, b = int(round(segment.start * CONTROL_RATE)), int(round(segment.end * CONTROL_RATE))
        if a >= n:
            break
        b = min(max(b, a + 1), n)
        if segment.kind == "vowel":
            vowel = vowels[segment.symbol]
            opening_target[a:b] = vowel.openness * segment.stress
            spread_target[a:b] = vowel.spread
        else:
            consonant = CONSONANTS[segment.symbol]
            opening_target[a:b] = 0.0 if consonant.labial else CONSONANT_JAW
            spread_target[a:b] = consonant.spread
    opening = _smooth(opening_target, JAW_SMOOTHING) * style.articulation
    return opening, _smooth(spread_target, 0.06)


def build_tracks(plan: SentencePlan, voice: Voice, style: VoiceStyle, rng: np.random.Generator) -> Tracks:
    n = int(round(plan.duration * CONTROL_RATE))
    voicing = np.zeros(n)
    formants = np.full((3, n), np.nan)
    noise = {band: np.zeros(n) for band in NOISE_BANDS}
    accents = np.zeros(n)
    for segment in plan.segments:
        a, b = int(round(segment.start * CONTROL_RATE)), int(round(segment.end * CONTROL_RATE))
        b = min(max(b, a + 1), n)
        if a >= n:
            break
        length = b - a
        if segment.kind == "vowel":
            vowel = VOWELS[segment.symbol]
            env = _envelope(length, 25, 45) * segment.stress * float(rng.uniform(0.85, 1.1))
            voicing[a:b] += env * (0.6 + 0.4 * vowel.openness)
            formants[:, a:b] = np.array([[vowel.f1], [vowel.f2], [vowel.f3]])
            centre = (a + b) // 2
            accents += (segment.stress == 1.0) * np.exp(
                -0.5 * ((np.arange(n) - centre) / (0.4 * length + 1)) ** 2
            )
            continue
        consonant = CONSONANTS[segment.symbol]
        if consonant.kind == "nasal":
            voicing[a:b] += _envelope(length, 10, 10) * consonant.level
            formants[:, a:b] = np.array(NASAL_FORMANTS)[:, None]
        elif consonant.kind == "fricative":
            noise[consonant.band][a:b] += _envelope(length, 15, 15) * consonant.level
        else:  # plosive: closure (silence), then a short burst
            burst = max(length // 4, 8)
            noise[consonant.band][b - burst : b] += _envelope(burst, 1, burst - 2) * consonant.level
    # formants carry over through consonants and pauses (coarticulation), then smooth
    frame_index = np.arange(n)
    for row in formants:
        known = ~np.isnan(row)
        row[:] = np.interp(frame_index, frame_index[known], row[known]) if known.any() else VOWELS["E"].f1
    formants = np.stack([_smooth(row, 0.04) for row in formants])

    semitones = np.zeros(n)
    for phrase in plan.phrases:
        a, b = int(phrase.start * CONTROL_RATE), min(int(phrase.end * CONTROL_RATE), n)
        if b <= a:
            continue
        progress = np.linspace(0.0, 1.0, b - a)
        semitones[a:b] = style.pitch_range * (0.5 - progress) * 0.6
        semitones[a:b] += style.rise * np.clip((progress - 0.7) / 0.3, 0.0, 1.0) ** 2
    semitones += style.pitch_range * 0.7 * accents
    semitones += _smooth(rng.normal(0.0, 1.0, n), 0.25) * 4.0 * 0.25 * style.pitch_range
    jitter = 1.0 + style.jitter * _smooth(rng.normal(0.0, 1.0, n), 0.004) * 3.0
    f0 = voice.pitch * style.pitch * 2.0 ** (_smooth(semitones, 0.05) / 12.0) * jitter

    opening, spread = articulation(plan, style)
    return Tracks(
        voicing=_smooth(voicing, 0.01),
        f0=f0,
        formants=formants,
        noise={band: _smooth(track, 0.005) for band, track in noise.items()},
        opening=opening,
        spread=spread,
    )


def _resonance(frequency: np.ndarray, centre: np.ndarray, bandwidth: float) -> np.ndarray:
    """Magnitude of a second-order resonator (unit gain at 0 Hz) at ``frequency``."""
    return centre**2 / np.sqrt((centre**2 - frequency**2) ** 2 + (bandwidth * frequency) ** 2)


def band_noise(rng: np.random.Generator, n: int, band: tuple[float, float]) -> np.ndarray:
    """White noise band-limited to ``band`` (Hz) by FFT masking, unit RMS."""
    spectrum = np.fft.rfft(rng.normal(0.0, 1.0, n))
    freqs = np.fft.rfftfreq(n, 1.0 / AUDIO_SAMPLE_RATE)
    spectrum[(freqs < band[0]) | (freqs > band[1])] = 0.0
    out = np.fft.irfft(spectrum, n)
    return out / (np.sqrt(np.mean(out**2)) + 1e-12)


def render_audio(
    tracks: Tracks, voice: Voice, style: VoiceStyle, rng: np.random.Generator, num_samples: int
) -> np.ndarray:
    """16 kHz float32 samples for the control tracks."""
    n_control = len(tracks.f0)
    sample_time = np.arange(num_samples) * (CONTROL_RATE / AUDIO_SAMPLE_RATE)
    base = np.minimum(sample_time.astype(np.int64), n_control - 2)
    frac = sample_time - base

    def upsample(track: np.ndarray) -> np.ndarray:
        return track[base] * (1.0 - frac) + track[base + 1] * frac

    f0_samples = upsample(tracks.f0)
    phase = 2.0 * np.pi * np.cumsum(f0_samples) / AUDIO_SAMPLE_RATE
    formants = tracks.formants * voice.formant_scale
    harmonics = int(MAX_HARMONIC_HZ // max(float(tracks.f0.min()), 40.0))
    amplitudes = []
    for k in range(1, harmonics + 1):
        frequency = k * tracks.f0
        gain = (frequency / 100.0) ** (-style.tilt)
        for formant, bandwidth in zip(formants, FORMANT_BANDWIDTHS):
            gain = gain * _resonance(frequency, formant, bandwidth * voice.formant_scale)
        gain = gain * _resonance(frequency, np.full_like(frequency, 3500.0 * voice.formant_scale), 250.0)
        amplitudes.append(np.where(frequency < MAX_HARMONIC_HZ, gain, 0.0))
    amplitudes = np.stack(amplitudes)
    power = 0.5 * np.sum(amplitudes**2, axis=0)
    amplitudes *= (tracks.voicing / np.sqrt(power + 1e-12))[None, :]
    voiced = np.zeros(num_samples)
    for k, amplitude in enumerate(amplitudes, start=1):
        voiced += upsample(amplitude) * np.sin(k * phase)

    unvoiced = np.zeros(num_samples)
    for band, track in tracks.noise.items():
        if track.any():
            unvoiced += upsample(track) * band_noise(rng, num_samples, band)
    breath = style.breathiness * upsample(tracks.voicing) * band_noise(rng, num_samples, BREATH_BAND)
    signal = OUTPUT_GAIN * style.energy * (voiced + unvoiced + breath)
    return np.clip(signal, -1.0, 1.0).astype(np.float32)


def per_video_frame(track: np.ndarray, num_frames: int) -> np.ndarray:
    """Mean of a control track over each video frame's span ([i, i+1) / fps)."""
    span = CONTROL_RATE // VIDEO_FPS
    usable = track[: num_frames * span]
    if len(usable) < num_frames * span:
        usable = np.pad(usable, (0, num_frames * span - len(usable)), mode="edge")
    return usable.reshape(num_frames, span).mean(axis=1)
