"""Recording conditions of the synthetic speech (synth/recording.py), each checked by an independent
measurement: Schroeder backward integration for the reverberation time, Welch spectra for the channel,
the noise in a silent stretch for the SNR."""

from dataclasses import replace

import numpy as np
import pytest
from scipy.signal import welch

from eapc_lightning.constants import AUDIO_SAMPLE_RATE
from eapc_lightning.synth.generator import SYNTH_PRESETS, ClipSpec, make_clip
from eapc_lightning.synth.recording import (
    RecordingConditions,
    apply_conditions,
    coloured_noise,
    draw_conditions,
    room_response,
    speech_rms,
)

SR = AUDIO_SAMPLE_RATE


def _tone_then_silence(amplitude=0.2, seconds=1.0):
    time = np.arange(int(seconds * SR)) / SR
    signal = amplitude * np.sin(2 * np.pi * 440 * time)
    signal[len(signal) // 2 :] = 0.0
    return signal


def test_speech_rms_leaves_pauses_out():
    # a 0.2 sine over the first half, silence after: RMS of the sine alone is 0.2 / sqrt(2)
    assert speech_rms(_tone_then_silence()) == pytest.approx(0.2 / np.sqrt(2), rel=1e-3)


def test_clean_conditions_leave_the_signal_alone():
    signal = _tone_then_silence()
    out = apply_conditions(signal, RecordingConditions.clean(), np.random.default_rng(0))
    np.testing.assert_allclose(out, signal.astype(np.float32), atol=1e-7)


def test_noise_sits_at_the_requested_snr():
    signal = _tone_then_silence(seconds=2.0)
    conditions = replace(RecordingConditions.clean(), snr_db=20.0)
    out = apply_conditions(signal, conditions, np.random.default_rng(1))
    noise_rms = np.sqrt(np.mean(out[len(out) // 2 :] ** 2))
    assert 20 * np.log10(speech_rms(signal) / noise_rms) == pytest.approx(20.0, abs=0.5)


@pytest.mark.parametrize("slope", [0.0, -3.0, -6.0])
def test_noise_colour_falls_by_the_slope_per_octave(slope):
    noise = coloured_noise(np.random.default_rng(2), 8 * SR, slope, SR)
    freqs, power = welch(noise, fs=SR, nperseg=2048)
    one, two = np.argmin(abs(freqs - 1000)), np.argmin(abs(freqs - 2000))
    measured = 10 * np.log10(power[two - 3 : two + 4].mean() / power[one - 3 : one + 4].mean())
    assert measured == pytest.approx(slope, abs=0.6)


@pytest.mark.parametrize("rt60", [0.2, 0.6])
def test_room_response_decays_by_60_db_over_rt60(rt60):
    response = room_response(np.random.default_rng(3), rt60, 0.5, SR)[1:]  # the tail, direct path left out
    energy = np.cumsum(response[::-1] ** 2)[::-1]  # Schroeder's backward integral
    decay = 10 * np.log10(energy / energy[0])
    time = np.arange(len(decay)) / SR
    fit = (decay > -25) & (decay < -5)  # T20, extrapolated to 60 dB
    slope = np.polyfit(time[fit], decay[fit], 1)[0]
    assert -60.0 / slope == pytest.approx(rt60, rel=0.15)


def test_channel_band_limits_and_gain_scales():
    noise = np.random.default_rng(4).normal(0, 0.05, 4 * SR)
    conditions = replace(RecordingConditions.clean(), highpass_hz=300.0, lowpass_hz=3400.0, gain_db=-6.0)
    out = apply_conditions(noise, conditions, np.random.default_rng(5))
    freqs, before = welch(noise, fs=SR, nperseg=1024)
    _, after = welch(out, fs=SR, nperseg=1024)
    ratio = 10 * np.log10(after / before)
    assert np.all(np.abs(ratio[(freqs > 800) & (freqs < 2500)] + 6.0) < 1.0)  # pass band: the gain only
    assert np.all(ratio[freqs > 6000] < -30.0)
    assert np.all(ratio[(freqs > 0) & (freqs < 80)] < -20.0)


def test_gain_never_clips():
    loud = 0.9 * np.sin(2 * np.pi * 200 * np.arange(SR) / SR)
    out = apply_conditions(loud, replace(RecordingConditions.clean(), gain_db=8.0), np.random.default_rng(6))
    assert np.max(np.abs(out)) == pytest.approx(0.99, abs=1e-4)


def test_drawn_conditions_vary_and_stay_in_range():
    drawn = [draw_conditions(np.random.default_rng(seed)) for seed in range(200)]
    assert all(12 <= c.snr_db <= 45 and c.lowpass_hz <= SR / 2 for c in drawn)
    assert 0.5 < np.mean([c.rt60 > 0 for c in drawn]) < 0.9
    assert len({c.lowpass_hz for c in drawn}) == 4


def test_synthetic_clips_are_recorded_but_keep_their_face():
    settings = SYNTH_PRESETS["tiny"]
    spec = ClipSpec(0, "angry", 3, 1)
    recorded = make_clip(spec, settings, 0, render=False)
    clean = make_clip(spec, replace(settings, recording=False), 0, render=False)
    np.testing.assert_array_equal(recorded.landmarks, clean.landmarks)
    frames = recorded.audio[: len(recorded.audio) // 640 * 640].reshape(-1, 640)
    clean_frames = clean.audio[: len(clean.audio) // 640 * 640].reshape(-1, 640)
    # the clean synthesis has digital silence before the first syllable; a recording never does
    assert np.sqrt(np.mean(clean_frames[0] ** 2)) < 1e-6
    assert np.sqrt(np.mean(frames**2, axis=1)).min() > 1e-5
