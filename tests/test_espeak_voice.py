"""The synthetic set's eSpeak NG voice: phoneme times that match the sound, the mouth that follows them,
speakers and emotions that change the voice as intended."""

from concurrent.futures import ProcessPoolExecutor
from multiprocessing import get_context

import librosa
import numpy as np
import pytest

from eapc_lightning.constants import AUDIO_SAMPLE_RATE, VIDEO_FPS
from eapc_lightning.synth.emotion import VoiceStyle, voice_style
from eapc_lightning.synth.espeak import (
    ESPEAK_RATE,
    ESPEAK_VOWELS,
    EspeakVoice,
    espeak_settings,
    fresh_engine,
    phoneme_segment,
    random_sentence,
    speak_sentences,
)
from eapc_lightning.synth.generator import ClipSpec, generate_dataset, make_clip, resolve_settings
from eapc_lightning.synth.speech import articulation

NEUTRAL = VoiceStyle()
MALE = EspeakVoice(variant="m1", pitch=50.0, syllable_rate=4.1)
FEMALE = EspeakVoice(variant="f2", pitch=50.0, syllable_rate=4.1)


def test_mnemonics_map_to_the_articulation_of_their_sound():
    diphthong = phoneme_segment("'aI", 0.0, 0.1, 0)
    assert (diphthong.kind, diphthong.symbol, diphthong.stress) == ("vowel", "aI", 1.0)
    assert ESPEAK_VOWELS["aI"].openness == 1.0  # starts at the open /a/
    reduced = phoneme_segment("@2", 0.0, 0.1, 0)
    assert (reduced.kind, reduced.stress) == ("vowel", 0.75)
    assert ESPEAK_VOWELS[reduced.symbol].openness < ESPEAK_VOWELS["A"].openness
    assert phoneme_segment("b", 0.0, 0.1, 0).symbol == "p"  # closes the lips as /p/ does
    assert phoneme_segment("v", 0.0, 0.1, 0).symbol == "f"
    assert phoneme_segment("tS", 0.0, 0.1, 0).symbol == "sh"
    assert phoneme_segment("_:", 0.0, 0.1, 0) is None


def test_phoneme_times_match_the_sound():
    """Vowels are loud, pauses nearly silent: the event times line up with eSpeak's samples."""
    samples, phonemes = fresh_engine(0).speak(
        "Would you like some coffee, or a cup of tea?", "en-us+m1", 175, 50, 50
    )
    assert len(samples) > 0.02 * ESPEAK_RATE and len(phonemes) > 15
    ends = [position for position, _ in phonemes[1:]] + [len(samples) * 1000 / ESPEAK_RATE]
    vowel_power, pause_power = [], []
    for (start, mnemonic), end in zip(phonemes, ends, strict=True):
        piece = samples[int(start * ESPEAK_RATE / 1000) : int(end * ESPEAK_RATE / 1000)]
        if len(piece) == 0:
            continue
        segment = phoneme_segment(mnemonic, 0.0, 1.0, 0)
        if segment is None:
            pause_power.append(np.mean(piece**2))
        elif segment.kind == "vowel":
            vowel_power.append(np.mean(piece**2))
    assert pause_power, "the comma gives a pause"
    assert 10 * np.log10(np.median(vowel_power) / (np.median(pause_power) + 1e-12)) > 20


def test_rate_follows_tempo_and_pitch_follows_the_variant():
    text = "The old teacher carried a heavy book across the empty road."
    normal, _ = fresh_engine(0).speak(text, "en-us+m1", 175, 50, 50)
    fast, _ = fresh_engine(0).speak(text, "en-us+m1", 262, 50, 50)
    assert 1.3 < len(normal) / len(fast) < 1.7  # 1.5x the words per minute

    def median_f0(voice: EspeakVoice) -> float:
        samples, _ = fresh_engine(0).speak(text, f"en-us+{voice.variant}", 175, 50, 50)
        f0 = librosa.yin(samples.astype(np.float32), fmin=60, fmax=500, sr=ESPEAK_RATE)
        return float(np.median(f0))

    assert median_f0(FEMALE) > 1.4 * median_f0(MALE)


def test_emotion_styles_set_rate_pitch_and_range():
    sad, angry = espeak_settings(MALE, voice_style("sad", 3)), espeak_settings(MALE, voice_style("angry", 3))
    neutral = espeak_settings(MALE, NEUTRAL)
    assert neutral == {"rate": 175, "pitch": 50, "pitch_range": 50}
    # sad: tempo 0.72, pitch x0.84 (log2 -> -0.25 octave -> -10 steps), range 1.2 semitones -> 50 * sqrt(0.48)
    assert sad == {"rate": 126, "pitch": 40, "pitch_range": 35}
    assert angry["rate"] > neutral["rate"] and angry["pitch"] > neutral["pitch"]


def test_sentences_fill_the_clip_and_the_mouth_opens_on_the_vowels():
    rng = np.random.default_rng(3)
    audio, plan = speak_sentences(rng, 4.0, MALE, NEUTRAL)
    assert audio.shape == (4 * AUDIO_SAMPLE_RATE,) and audio.dtype == np.float32
    assert np.sqrt(np.mean(audio**2)) == pytest.approx(0.05, rel=0.05)
    assert plan.segments and all(0.0 <= s.start < s.end <= 4.0 for s in plan.segments)
    opening, _ = articulation(plan, NEUTRAL, ESPEAK_VOWELS)
    frames = 4 * VIDEO_FPS
    per_frame = opening[: frames * 40].reshape(frames, 40).mean(axis=1)
    loudness = np.sqrt(np.mean(audio.reshape(frames, -1) ** 2, axis=1))
    # the jaw is open while there is sound and shut in the lead-in silence
    assert np.corrcoef(per_frame, loudness)[0, 1] > 0.5
    assert per_frame[0] < 0.05


def test_random_sentences_are_english_words_and_repeat_with_the_seed():
    first = [random_sentence(np.random.default_rng(7)) for _ in range(2)]
    assert first[0] == first[1]
    assert first[0][0].isupper() and first[0][-1] in ".?!"
    assert len(first[0].split()) >= 5


def test_espeak_clips_are_reproducible_and_generated_by_workers(tmp_path):
    settings = resolve_settings("tiny", {"voice": "espeak"})
    one = make_clip(ClipSpec(0, "sad", 3, 1), settings, seed=0, render=False)
    two = make_clip(ClipSpec(0, "sad", 3, 1), settings, seed=0, render=False)
    np.testing.assert_array_equal(one.audio, two.audio)
    np.testing.assert_array_equal(one.landmarks, two.landmarks)
    records = generate_dataset(tmp_path, preset="tiny", workers=2, voice="espeak", seconds=1.0)
    assert [r["status"] for r in records] == ["generated"] * 4


def test_a_clip_sounds_the_same_in_a_fresh_process():
    """The library seeds its own random generator per process unless told; f2 is a variant it audibly uses."""
    here = speak_sentences(np.random.default_rng(5), 1.5, FEMALE, NEUTRAL)[0]
    with ProcessPoolExecutor(1, mp_context=get_context("spawn")) as pool:
        there = pool.submit(speak_sentences, np.random.default_rng(5), 1.5, FEMALE, NEUTRAL).result()[0]
    np.testing.assert_array_equal(here, there)


def test_unknown_voice_is_refused_with_the_choices():
    with pytest.raises(ValueError, match="unknown voice 'klatt'; choose from formant, espeak"):
        resolve_settings("tiny", {"voice": "klatt"})
