"""The Dual-LSTM blocks against hand computations (eqs. 2-9) and chunked == whole-clip inference."""

import math

import numpy as np
import pytest
import torch

from eapc_lightning.constants import EMOTION_TO_INDEX
from eapc_lightning.models import DualLSTM, DualLSTMConfig, LLFEncoder, emotion_condition
from eapc_lightning.models.dual_lstm import LandmarkLSTM, LocalAttention, StreamState, normalise_landmarks

SMALL = dict(
    audio_hidden=16,
    audio_layers=2,
    llf_hidden=8,
    llf_layers=2,
    landmark_hidden=12,
    landmark_layers=2,
    attention_dim=10,
    attention_window=4,
    reference_dim=8,
    head_hidden=(24, 16),
)


@pytest.fixture(autouse=True)
def one_thread():
    """Tiny models run fastest, and disturb neighbours least, on one thread."""
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)


def make_inputs(batch: int = 2, frames: int = 7, seed: int = 0) -> dict[str, torch.Tensor]:
    generator = torch.Generator().manual_seed(seed)
    return {
        "mfcc": torch.randn(batch, frames, 28, 12, generator=generator),
        "llf": torch.randn(batch, frames, 25, generator=generator),
        "reference": 64 + 128 * torch.rand(batch, 68, 2, generator=generator),
    }


def randomise_head(network: DualLSTM) -> None:
    """Give the nearly-zero last layer full-size weights so outputs depend visibly on every input."""
    last = network.head.layers[-1]
    torch.nn.init.normal_(last.weight, std=0.1)
    torch.nn.init.normal_(last.bias, std=0.1)


@pytest.mark.parametrize(
    "overrides",
    [
        {},
        {"prior_skip": False},
        {"attention": False},
        {"attention_window": 1},
        {"emotion_source": "label"},
        {"emotion_source": "none"},
        {"reference_conditioning": "absolute"},
        {"lstm_dropout": 0.2, "head_dropout": 0.1},
    ],
)
def test_output_shapes_for_each_switch(overrides: dict) -> None:
    torch.manual_seed(0)
    network = DualLSTM(DualLSTMConfig(**{**SMALL, **overrides}))
    inputs = make_inputs(batch=3, frames=5)
    emotion = torch.tensor([1, -1, 4])
    output = network(**inputs, emotion=emotion)
    assert output.landmarks.shape == (3, 5, 68, 2)
    assert output.emotion_logits.shape == (3, 5, 8)
    assert torch.isfinite(output.landmarks).all()
    output.landmarks.sum().backward()  # every switch gives a differentiable graph


def test_offset_mode_starts_within_half_a_pixel_of_the_reference_landmarks() -> None:
    torch.manual_seed(0)
    network = DualLSTM(DualLSTMConfig(**SMALL))
    inputs = make_inputs()
    landmarks = network(**inputs).landmarks
    expected = inputs["reference"].unsqueeze(1).expand_as(landmarks)
    assert (landmarks - expected).abs().max() < 0.5  # pixels
    assert (landmarks - expected).abs().max() > 0  # but not exactly: the hidden units are not tied


def test_prior_skip_adds_the_previous_frames_output() -> None:
    """Eq. 4: X_lm^i = LSTM_lm(X_af^i) + X_lm^{i-1}; eq. 5: X_lm^0 = LSTM_lm(X_af^0)."""
    torch.manual_seed(0)
    block = LandmarkLSTM(6, 5, num_layers=2, dropout=0.0, prior_skip=True)
    audio_features = torch.randn(3, 9, 6)
    features, _, prior = block(audio_features)
    raw, _ = block.lstm(audio_features)
    expected = torch.empty_like(raw)
    for frame in range(raw.shape[1]):
        expected[:, frame] = raw[:, frame] + (expected[:, frame - 1] if frame > 0 else 0.0)
    torch.testing.assert_close(features, expected, atol=1e-6, rtol=1e-6)
    torch.testing.assert_close(prior, expected[:, -1])
    # the prior of a previous chunk continues the recursion
    start, _, _ = block(audio_features[:, :4])
    rest, _, _ = block(audio_features[:, 4:], state=block.lstm(audio_features[:, :4])[1], prior=start[:, -1])
    torch.testing.assert_close(rest, expected[:, 4:], atol=1e-6, rtol=1e-6)


def test_without_prior_skip_the_landmark_features_are_the_lstm_outputs() -> None:
    torch.manual_seed(0)
    block = LandmarkLSTM(6, 5, num_layers=1, dropout=0.0, prior_skip=False)
    audio_features = torch.randn(2, 6, 6)
    features, _, prior = block(audio_features)
    raw, _ = block.lstm(audio_features)
    torch.testing.assert_close(features, raw)
    assert prior is None


def test_local_attention_is_a_softmax_over_the_causal_window() -> None:
    torch.manual_seed(0)
    window = 3
    block = LocalAttention(query_size=7, memory_size=5, dim=4, window=window, enabled=True)
    audio = torch.randn(2, 6, 7)
    landmarks = torch.randn(2, 6, 5)
    output, weights, cache = block(audio, landmarks)
    assert weights.shape == (2, 6, 6)
    torch.testing.assert_close(weights.sum(-1), torch.ones(2, 6))
    for query in range(6):
        for key in range(6):
            if not query - window < key <= query:
                assert torch.all(weights[:, query, key] == 0)
    # one output row by hand (eqs. 6-7) in numpy
    with torch.no_grad():
        q = block.query_projection(audio)[1, 4].numpy()
        k = block.key_projection(landmarks)[1].numpy()
        v = block.value_projection(landmarks)[1].numpy()
        skip = block.output_projection(audio)[1, 4].numpy()
    scores = np.array([q @ k[j] / math.sqrt(4) for j in (2, 3, 4)])
    softmax = np.exp(scores - scores.max()) / np.exp(scores - scores.max()).sum()
    expected = skip + softmax @ v[2:5]
    np.testing.assert_allclose(output[1, 4].detach().numpy(), expected, atol=1e-5)
    assert cache.keys.shape == (2, window - 1, 4)


def test_attention_off_adds_the_current_frames_landmark_feature() -> None:
    torch.manual_seed(0)
    block = LocalAttention(query_size=7, memory_size=5, dim=4, window=3, enabled=False)
    audio, landmarks = torch.randn(2, 6, 7), torch.randn(2, 6, 5)
    output, weights, cache = block(audio, landmarks)
    expected = block.output_projection(audio) + block.value_projection(landmarks)
    torch.testing.assert_close(output, expected)
    assert weights is None and cache is None


def test_llf_encoder_gives_per_frame_logits_and_a_carryable_state() -> None:
    torch.manual_seed(0)
    encoder = LLFEncoder(hidden_size=8, num_layers=3)
    llf = torch.randn(2, 10, 25)
    logits, _ = encoder(llf)
    assert logits.shape == (2, 10, 8)
    first, state = encoder(llf[:, :3])
    rest, _ = encoder(llf[:, 3:], state)
    torch.testing.assert_close(torch.cat([first, rest], 1), logits, atol=1e-6, rtol=1e-6)


@pytest.mark.parametrize(
    "overrides", [{}, {"attention": False, "prior_skip": False}, {"attention_window": 1}]
)
def test_chunked_forward_equals_one_pass(overrides: dict) -> None:
    torch.manual_seed(0)
    network = DualLSTM(DualLSTMConfig(**{**SMALL, **overrides})).eval()
    randomise_head(network)
    inputs = make_inputs(batch=1, frames=23)
    with torch.no_grad():
        whole = network(**inputs).landmarks
        for chunk in (5, 7, 1):
            state, pieces = StreamState(), []
            for start in range(0, 23, chunk):
                piece = {
                    key: value[:, start : start + chunk]
                    for key, value in inputs.items()
                    if key != "reference"
                }
                output = network(**piece, reference=inputs["reference"], state=state)
                pieces.append(output.landmarks)
                state = output.state
            # compared in the network's normalised units (pixels / 256): float32 pixels near 128 are only
            # resolved to ~1.5e-5, the chunked and whole passes agree far below that
            chunked = normalise_landmarks(torch.cat(pieces, 1))
            torch.testing.assert_close(chunked, normalise_landmarks(whole), atol=1e-6, rtol=0)


def test_emotion_condition_blends_toward_neutral_by_intensity() -> None:
    happy = EMOTION_TO_INDEX["happy"]
    neutral = EMOTION_TO_INDEX["neutral"]
    level_two = emotion_condition("happy", 2)
    expected = torch.zeros(8)
    expected[happy], expected[neutral] = 2 / 3, 1 / 3
    torch.testing.assert_close(level_two, expected)
    torch.testing.assert_close(
        emotion_condition(happy), torch.nn.functional.one_hot(torch.tensor(happy), 8).float()
    )
    torch.testing.assert_close(
        emotion_condition("neutral", 1), torch.nn.functional.one_hot(torch.tensor(0), 8).float()
    )
    with pytest.raises(ValueError, match="unknown emotion 'joyful'"):
        emotion_condition("joyful")
    with pytest.raises(ValueError, match="intensity must be one of"):
        emotion_condition("sad", 4)


def test_emotion_override_replaces_the_label_distribution() -> None:
    torch.manual_seed(0)
    network = DualLSTM(DualLSTMConfig(**SMALL, emotion_source="label")).eval()
    randomise_head(network)
    inputs = make_inputs(batch=2)
    labels = torch.tensor([5, 2])
    by_label = network(**inputs, emotion=labels).landmarks
    override = torch.stack([emotion_condition(5), emotion_condition(2)])
    by_override = network(**inputs, emotion_override=override).landmarks
    torch.testing.assert_close(by_override, by_label)
    unlabelled = network(**inputs, emotion=torch.tensor([-1, -1])).landmarks
    uniform = network(**inputs, emotion_override=torch.full((2, 8), 1 / 8)).landmarks
    torch.testing.assert_close(unlabelled, uniform)
    assert not torch.allclose(by_label, uniform)
    with pytest.raises(ValueError, match="needs the batch's emotion labels"):
        network(**inputs)


def test_emotion_override_is_refused_without_an_emotion_input() -> None:
    network = DualLSTM(DualLSTMConfig(**SMALL, emotion_source="none"))
    with pytest.raises(ValueError, match="emotion_override needs"):
        network(**make_inputs(), emotion_override=emotion_condition("sad"))


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"emotion_source": "audio"}, "emotion_source must be"),
        ({"reference_conditioning": "concat"}, "reference_conditioning must be"),
        ({"attention_window": 0}, "attention_window must be"),
        ({"head_dropout": 1.0}, "head_dropout must be"),
    ],
)
def test_config_rejects_unknown_choices(overrides: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        DualLSTMConfig(**overrides)
