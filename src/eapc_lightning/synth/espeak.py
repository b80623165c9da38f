"""eSpeak NG as the synthetic set's voice: random English sentences spoken with real phonetics, and the
time of every phoneme to drive the synthetic mouth.

The library and its voice data come with the ``espeakng-loader`` wheel (no system package, nothing
downloaded at run time) and are called through ctypes in synchronous mode: ``espeak_Synth`` hands the
22.05 kHz samples and the phoneme events (mnemonic and audio position in ms) to a callback. Each phoneme
becomes a :class:`~eapc_lightning.synth.speech.Segment` (vowels with their openness and lip spread,
consonants with labial closure), so the mouth follows the same articulation model as the formant voice.

An emotion's :class:`~eapc_lightning.synth.emotion.VoiceStyle` sets eSpeak's rate (tempo), base pitch
and pitch range; its energy, spectral tilt and breathiness are applied to the samples afterwards.
"""

import _ctypes
import ctypes
import re
from dataclasses import dataclass

import numpy as np
from scipy.signal import lfilter, resample_poly

from eapc_lightning.constants import AUDIO_SAMPLE_RATE
from eapc_lightning.synth.emotion import VoiceStyle
from eapc_lightning.synth.speech import (
    BREATH_BAND,
    VOWELS,
    Phrase,
    Segment,
    SentencePlan,
    Vowel,
    band_noise,
)

# speak_lib.h: espeak_AUDIO_OUTPUT, espeakINITIALIZE_*, espeak_EVENT_TYPE, espeak_PARAMETER
AUDIO_OUTPUT_SYNCHRONOUS = 2
INITIALIZE_PHONEME_EVENTS = 0x0001
EVENT_LIST_TERMINATED = 0
EVENT_PHONEME = 7
PARAMETER_RATE, PARAMETER_VOLUME, PARAMETER_PITCH, PARAMETER_RANGE = 1, 2, 3, 4
ESPEAK_RATE = 22050  # Hz, the sample rate espeak_Initialize reports for its voices
DEFAULT_WORDS_PER_MINUTE = 175  # eSpeak's default rate, taken as the rate of an average speaker
AVERAGE_SYLLABLE_RATE = 4.1  # syllables/s, the middle of the speakers' neutral rates (generator.py)
OUTPUT_RMS = 0.05  # -26 dBFS, the formant voice's neutral level

# The eSpeak voice variants (espeak-ng-data/voices/!v) the synthetic speakers cycle through.
MALE_VARIANTS = ("m1", "m2", "m3", "m4", "m6", "m7")
FEMALE_VARIANTS = ("f1", "f2", "f3", "f4", "f5")

# Reduced vowels have no entry among the formant voice's vowels.
SCHWA = Vowel(500, 1500, 2500, openness=0.35, spread=0.2)
R_COLOURED = Vowel(490, 1350, 1690, openness=0.4, spread=0.0)
STRUT = Vowel(640, 1190, 2390, openness=0.7, spread=0.2)
# eSpeak NG's English vowel mnemonics (stress marks, length marks and digits removed) -> articulation.
# Diphthongs take their first, more open element.
ESPEAK_VOWELS = {
    "i": VOWELS["i"],
    "I": VOWELS["I"],
    "i@": VOWELS["I"],
    "e": VOWELS["E"],
    "eI": VOWELS["E"],
    "e@": VOWELS["E"],
    "E": VOWELS["E"],
    "a": VOWELS["ae"],
    "aa": VOWELS["ae"],
    "A": VOWELS["a"],
    "A@": VOWELS["a"],
    "aI": VOWELS["a"],
    "aI@": VOWELS["a"],
    "aU": VOWELS["a"],
    "V": STRUT,
    "0": VOWELS["O"],
    "O": VOWELS["O"],
    "O@": VOWELS["O"],
    "o@": VOWELS["O"],
    "oU": VOWELS["O"],
    "OI": VOWELS["O"],
    "U": VOWELS["U"],
    "U@": VOWELS["U"],
    "u": VOWELS["u"],
    "w": VOWELS["u"],  # the lips round and nearly close, as for /u/
    "@": SCHWA,
    "a#": SCHWA,
    "@L": SCHWA,
    "3": R_COLOURED,
}
# eSpeak NG's English consonant mnemonics -> the formant voice's consonant with the same lip action.
ESPEAK_CONSONANTS = {
    "p": "p",
    "b": "p",
    "m": "m",
    "f": "f",
    "v": "f",
    "t": "t",
    "d": "t",
    "t#": "t",
    "T": "t",
    "D": "t",
    "l": "n",
    "r": "n",
    "j": "t",
    "n": "n",
    "N": "n",
    "k": "k",
    "g": "k",
    "s": "s",
    "z": "s",
    "S": "sh",
    "Z": "sh",
    "tS": "sh",
    "dZ": "sh",
    "h": "h",
    "?": "k",
}
_MARKS = re.compile(r"[',:\d]")

# A small vocabulary for random sentences (determiner adjective noun verb ... patterns).
_DETERMINERS = ("the", "a", "my", "your", "this", "that", "our", "every")
_ADJECTIVES = (
    "old", "big", "small", "red", "quiet", "happy", "cold", "bright", "dark", "heavy", "new", "strange",
    "broken", "lovely", "early", "open", "empty", "warm", "tired", "simple",
)  # fmt: skip
_NOUNS = (
    "man", "woman", "child", "dog", "house", "car", "window", "garden", "letter", "river", "doctor",
    "teacher", "morning", "train", "book", "table", "phone", "city", "road", "meeting", "coffee", "music",
    "picture", "story", "office", "friend", "market", "boat", "kitchen", "summer",
)  # fmt: skip
_VERBS = (
    "opened", "found", "watched", "carried", "painted", "moved", "closed", "brought", "saw", "wanted",
    "called", "left", "kept", "sold", "cleaned", "needed", "followed", "remembered", "took", "forgot",
)  # fmt: skip
_PREPOSITIONS = ("in", "on", "near", "behind", "under", "after", "before", "with", "from", "across")
_ADVERBS = ("today", "again", "slowly", "yesterday", "at last", "very quickly", "once more", "last night")
_OPENERS = ("well,", "so,", "look,", "honestly,", "I think", "you know,", "maybe", "of course,")


def random_sentence(rng: np.random.Generator) -> str:
    """One random English sentence of about 6-14 words, ending in '.', '?' or '!'."""

    def pick(words: tuple[str, ...]) -> str:
        return words[int(rng.integers(len(words)))]

    def noun_phrase() -> str:
        adjective = f"{pick(_ADJECTIVES)} " if rng.random() < 0.5 else ""
        return f"{pick(_DETERMINERS)} {adjective}{pick(_NOUNS)}"

    words = []
    if rng.random() < 0.3:
        words.append(pick(_OPENERS))
    words += [noun_phrase(), pick(_VERBS), noun_phrase()]
    if rng.random() < 0.6:
        words += [pick(_PREPOSITIONS), noun_phrase()]
    if rng.random() < 0.4:
        words.append(pick(_ADVERBS))
    text = " ".join(words)
    return text[0].upper() + text[1:] + pick((".", ".", ".", "?", "!"))


class _NumberOrName(ctypes.Union):
    _fields_ = [("number", ctypes.c_int), ("name", ctypes.c_char_p), ("string", ctypes.c_char * 8)]


class _Event(ctypes.Structure):  # espeak_EVENT
    _fields_ = [
        ("type", ctypes.c_int),
        ("unique_identifier", ctypes.c_uint),
        ("text_position", ctypes.c_int),
        ("length", ctypes.c_int),
        ("audio_position", ctypes.c_int),
        ("sample", ctypes.c_int),
        ("user_data", ctypes.c_void_p),
        ("id", _NumberOrName),
    ]


_CALLBACK = ctypes.CFUNCTYPE(
    ctypes.c_int, ctypes.POINTER(ctypes.c_short), ctypes.c_int, ctypes.POINTER(_Event)
)


class _Engine:
    """The eSpeak NG library, loaded by this process."""

    def __init__(self, seed: int) -> None:
        try:
            import espeakng_loader
        except ImportError as error:
            raise RuntimeError(
                "the espeak voice needs the espeakng-loader package (in the pinned environment: make env)"
            ) from error
        self.lib = ctypes.CDLL(espeakng_loader.get_library_path())
        self.lib.espeak_Initialize.restype = ctypes.c_int
        data = espeakng_loader.get_data_path().encode()
        rate = self.lib.espeak_Initialize(AUDIO_OUTPUT_SYNCHRONOUS, 0, data, INITIALIZE_PHONEME_EVENTS)
        if rate != ESPEAK_RATE:
            raise RuntimeError(f"eSpeak NG initialised at {rate} Hz, expected {ESPEAK_RATE}")
        # its random generator (voicing noise, flutter) is otherwise seeded per process: a clip made in
        # another worker would differ for some variants (f2 by up to 0.017 of full scale)
        self.lib.espeak_ng_SetRandSeed.restype = ctypes.c_int
        self.lib.espeak_ng_SetRandSeed.argtypes = [ctypes.c_long]
        self.lib.espeak_ng_SetRandSeed(seed)
        self.samples: list[np.ndarray] = []
        self.phonemes: list[tuple[int, str]] = []
        self.callback = _CALLBACK(self._receive)  # kept referenced: the library calls it later
        self.lib.espeak_SetSynthCallback(self.callback)

    def _receive(self, wav, count, events) -> int:
        if count > 0:
            self.samples.append(np.ctypeslib.as_array(wav, shape=(count,)).copy())
        index = 0
        while events[index].type != EVENT_LIST_TERMINATED:
            event = events[index]
            if event.type == EVENT_PHONEME:
                self.phonemes.append((event.audio_position, event.id.string.decode("ascii", "replace")))
            index += 1
        return 0

    def speak(self, text: str, voice: str, rate: int, pitch: int, pitch_range: int):
        """(float samples at ``ESPEAK_RATE``, [(ms, mnemonic)]) of ``text`` in ``voice``."""
        if self.lib.espeak_SetVoiceByName(voice.encode()) != 0:
            raise RuntimeError(f"eSpeak NG has no voice {voice!r}")
        for parameter, value in (
            (PARAMETER_RATE, rate),
            (PARAMETER_PITCH, pitch),
            (PARAMETER_RANGE, pitch_range),
            (PARAMETER_VOLUME, 100),
        ):
            self.lib.espeak_SetParameter(parameter, value, 0)
        self.samples, self.phonemes = [], []
        encoded = text.encode()
        status = self.lib.espeak_Synth(encoded, len(encoded) + 1, 0, 0, 0, 0, None, None)
        self.lib.espeak_Synchronize()
        if status != 0:
            raise RuntimeError(f"eSpeak NG could not speak {text!r} (status {status})")
        samples = np.concatenate(self.samples) if self.samples else np.zeros(0, np.int16)
        return samples.astype(np.float64) / 32768.0, self.phonemes

    def close(self) -> None:
        self.lib.espeak_Terminate()
        _ctypes.dlclose(self.lib._handle)


_loaded: list[_Engine] = []


def fresh_engine(seed: int) -> _Engine:
    """eSpeak NG loaded anew, its random generator seeded with ``seed``. The library keeps state from one
    utterance to the next (its echo buffer, the phase of its pitch flutter) that even ``espeak_Terminate``
    leaves, so each clip starts from a fresh load and sounds the same whatever this process (or the one it
    was forked from) spoke before, and in whichever process makes it."""
    while _loaded:
        _loaded.pop().close()
    _loaded.append(_Engine(seed))
    return _loaded[0]


@dataclass(frozen=True)
class EspeakVoice:
    """A speaker's eSpeak NG voice: the variant, and the neutral pitch and rate relative to eSpeak's."""

    variant: str
    pitch: float  # eSpeak pitch parameter (0-100, 50 the variant's own)
    syllable_rate: float


def espeak_settings(voice: EspeakVoice, style: VoiceStyle) -> dict[str, int]:
    """eSpeak's rate (words/min), base pitch and pitch range (0-100) for a speaker in an emotion style.
    Pitch: 40 steps per octave of the style's factor; range: 50 at the neutral 2.5 semitones, growing as
    the square root of the style's excursion."""
    rate = DEFAULT_WORDS_PER_MINUTE * voice.syllable_rate / AVERAGE_SYLLABLE_RATE * style.tempo
    pitch = voice.pitch + 40.0 * np.log2(style.pitch)
    pitch_range = 50.0 * np.sqrt(style.pitch_range / 2.5)
    return {
        "rate": int(np.clip(round(rate), 80, 450)),
        "pitch": int(np.clip(round(pitch), 0, 99)),
        "pitch_range": int(np.clip(round(pitch_range), 0, 100)),
    }


def phoneme_segment(mnemonic: str, start: float, end: float, phrase: int) -> Segment | None:
    """The articulation segment of one eSpeak phoneme, or None for a pause."""
    if mnemonic.startswith("_"):
        return None
    stress = 1.0 if mnemonic.startswith("'") else 0.75
    base = _MARKS.sub("", mnemonic)
    if base in ESPEAK_CONSONANTS:
        return Segment(start, end, "consonant", ESPEAK_CONSONANTS[base], 1.0, phrase)
    return Segment(start, end, "vowel", base if base in ESPEAK_VOWELS else "@", stress, phrase)


def _tilt_and_breath(samples: np.ndarray, style: VoiceStyle, rng: np.random.Generator) -> np.ndarray:
    """The style's spectral tilt (one-pole pre-emphasis for a brighter voice, one-pole low-pass for a
    darker one, relative to the neutral tilt 1) and aspiration noise that follows the speech envelope."""
    coefficient = float(np.clip(1.0 - style.tilt, -0.6, 0.6))
    if coefficient > 0:
        shaped = lfilter([1.0, -coefficient], [1.0], samples)
    elif coefficient < 0:
        shaped = lfilter([1.0 + coefficient], [1.0, coefficient], samples)
    else:
        shaped = samples
    width = AUDIO_SAMPLE_RATE // 50
    envelope = np.convolve(np.abs(shaped), np.ones(width) / width, mode="same")
    breath = style.breathiness * 2.0 * envelope * band_noise(rng, len(shaped), BREATH_BAND)
    return shaped + breath  # the caller sets the level


def speak_sentences(
    rng: np.random.Generator, duration: float, voice: EspeakVoice, style: VoiceStyle
) -> tuple[np.ndarray, SentencePlan]:
    """``duration`` seconds of 16 kHz speech: random sentences in ``voice`` and ``style`` after a short
    lead-in, separated by pauses, cut (with a 20 ms fade) at the end; and the plan of their phonemes."""
    settings = espeak_settings(voice, style)
    total = int(round(duration * AUDIO_SAMPLE_RATE))
    pieces: list[np.ndarray] = []
    segments: list[Segment] = []
    phrases: list[Phrase] = []
    speaker = fresh_engine(int(rng.integers(2**31)))
    time = float(rng.uniform(0.1, 0.25))
    pieces.append(np.zeros(int(round(time * AUDIO_SAMPLE_RATE))))
    while time < duration:
        samples, phonemes = speaker.speak(
            random_sentence(rng),
            f"en-us+{voice.variant}",
            settings["rate"],
            settings["pitch"],
            settings["pitch_range"],
        )
        spoken = resample_poly(samples, AUDIO_SAMPLE_RATE // 50, ESPEAK_RATE // 50)
        length = len(spoken) / AUDIO_SAMPLE_RATE
        starts = [time + position / 1000.0 for position, _ in phonemes]
        for (_, mnemonic), start, end in zip(phonemes, starts, [*starts[1:], time + length], strict=True):
            segment = phoneme_segment(mnemonic, start, min(end, duration), len(phrases))
            if segment is not None and start < duration and end > start:
                segments.append(segment)
        phrases.append(Phrase(time, min(time + length, duration)))
        pause = float(rng.uniform(0.15, 0.4)) / style.tempo
        pieces += [spoken, np.zeros(int(round(pause * AUDIO_SAMPLE_RATE)))]
        time += length + pause
    audio = np.concatenate(pieces)[:total]
    audio = np.pad(audio, (0, total - len(audio)))
    fade = min(AUDIO_SAMPLE_RATE // 50, total)
    audio[total - fade :] *= np.linspace(1.0, 0.0, fade)
    audio = _tilt_and_breath(audio, style, rng)
    audio *= OUTPUT_RMS * style.energy / (np.sqrt(np.mean(audio**2)) + 1e-12)
    return np.clip(audio, -1.0, 1.0).astype(np.float32), SentencePlan(segments, phrases, duration)
