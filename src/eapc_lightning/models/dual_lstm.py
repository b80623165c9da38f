"""The Dual-LSTM audio-to-landmark network (paper section 3.4, eqs. 2-9), built from small named blocks.

Per frame ``i`` of a window (shapes for a batch of ``B`` windows of ``T`` frames):

* :class:`AudioLSTM`, eq. 2: ``X_af^i = LSTM_audio(X_MFCC^i)``, a unidirectional LSTM over the 28 MFCC rows
  of the frame's own 280 ms window; the last row's top-layer hidden state is ``X_af^i``.
* eq. 3: ``X_afnew^i = concat(X_af^i, X_emotion^i)``, where ``X_emotion`` comes from ``emotion_source``:
  ``"predicted"`` (softmax of the :class:`~eapc_lightning.models.llf_encoder.LLFEncoder` logits, eq. 1),
  ``"label"`` (one-hot of the clip's label; unlabelled clips get the uniform distribution) or ``"none"``
  (nothing concatenated). An ``emotion_override`` (see :func:`emotion_condition`) replaces it at inference.
* :class:`LandmarkLSTM`, eqs. 4-5: ``X_lm^i = LSTM_lm(X_af^i) + X_lm^{i-1}`` for ``i > 0`` and
  ``X_lm^0 = LSTM_lm(X_af^0)``, implemented as printed (``prior_skip``; off gives ``X_lm^i = LSTM_lm(X_af^i)``,
  the "w/o Audio i-1" row of Table 2). Read literally, the recursion makes ``X_lm^i`` the running sum of
  the LSTM outputs, so the LSTM learns per-frame increments of the landmark feature.
* :class:`LocalAttention`, eqs. 6-7: ``att^i = softmax(q(X_afnew^i) . k(X_lm^j)^T / sqrt(d)) v(X_lm^j)`` over
  the frames ``j`` of a causal window ``i - w < j <= i`` (``attention_window = w``), and
  ``output^i = o(X_afnew^i) + att^i``. ``q, k, v, o`` are linear projections so the widths match; the
  ``1/sqrt(d)`` scale is the usual dot-product attention scale (not printed in the paper). With
  ``attention=False`` (Table 3, "w/o attention") the attention collapses onto the current frame:
  ``output^i = o(X_afnew^i) + v(X_lm^i)``, so the landmark branch (and with it the eq. 4 prior) still reaches
  the output and Table 2's comparison stays meaningful.
* :class:`ReferenceEncoder` + :class:`LandmarkHead`, eqs. 8-9: the reference frame's 68 landmarks (the
  identity) are encoded by a small MLP and concatenated to ``output^i``; fully connected layers
  ``512 -> 256 -> 136`` map that to 68 (x, y) points, with LeakyReLU(0.2) between them (the paper names
  no activation; leaky units cannot all die together under a large learning rate, which plain ReLUs did
  in our runs). ``reference_conditioning="offset"`` (default) reads
  the 136 numbers as displacements added to the reference landmarks (the last layer starts a thousand times
  smaller than PyTorch's default, so an untrained network predicts the held-still reference to within a
  fraction of a pixel); ``"absolute"`` reads them as coordinates.

Coordinates are normalised inside the network as ``(pixels - 128) / 256`` (the canonical 256-pixel face
frame) and returned in pixels.

Everything runs forward in time (causal LSTMs, a causal attention window; the audio LSTM sees only its
frame's own MFCC window), so a long clip can be processed in chunks with :class:`StreamState` carried
between them and gives the same landmarks as one pass over the whole clip.
"""

import dataclasses
import math
from typing import Literal, NamedTuple

import torch
import torch.nn.functional as F
from torch import nn

from eapc_lightning.constants import CANONICAL_FACE_SIZE, EMOTION_TO_INDEX, EMOTIONS, NUM_LANDMARKS
from eapc_lightning.models.llf_encoder import LLFEncoder, LSTMState, batch_first_lstm

EmotionSource = Literal["predicted", "label", "none"]
ReferenceConditioning = Literal["offset", "absolute"]
NUM_EMOTIONS = len(EMOTIONS)
INTENSITY_LEVELS = (1, 2, 3)


@dataclasses.dataclass(frozen=True)
class DualLSTMConfig:
    """Every architectural choice of the audio-to-landmark network (see the module docstring)."""

    audio_hidden: int = 256  # eq. 2 LSTM width
    audio_layers: int = 3  # the paper's 3-layer audio LSTM
    llf_hidden: int = 128  # eq. 1 LSTM width
    llf_layers: int = 3  # the paper's 3-layer LLF encoder
    landmark_hidden: int = 256  # eq. 4 LSTM width
    landmark_layers: int = 2
    prior_skip: bool = True  # eq. 4 (True) or eq. 5 at every frame (False)
    attention: bool = True  # eqs. 6-7 (True) or attention collapsed to the current frame (False)
    attention_dim: int = 256
    attention_window: int = 25  # frames each frame attends to (itself and the previous w - 1)
    emotion_source: EmotionSource = "predicted"
    reference_conditioning: ReferenceConditioning = "offset"
    reference_dim: int = 128
    head_hidden: tuple[int, ...] = (512, 256)  # eq. 8: 512 -> 256 -> 136
    lstm_dropout: float = 0.0
    head_dropout: float = 0.0
    mfcc_coefficients: int = 12
    llf_dim: int = 25

    def __post_init__(self) -> None:
        if self.emotion_source not in ("predicted", "label", "none"):
            raise ValueError(
                f"emotion_source must be 'predicted', 'label' or 'none', got {self.emotion_source!r}"
            )
        if self.reference_conditioning not in ("offset", "absolute"):
            raise ValueError(
                f"reference_conditioning must be 'offset' or 'absolute', got {self.reference_conditioning!r}"
            )
        if self.attention_window < 1:
            raise ValueError(f"attention_window must be at least 1 frame, got {self.attention_window}")
        for name in ("lstm_dropout", "head_dropout"):
            if not 0.0 <= getattr(self, name) < 1.0:
                raise ValueError(f"{name} must be in [0, 1), got {getattr(self, name)}")
        object.__setattr__(self, "head_hidden", tuple(self.head_hidden))


# checkpoints keep the config in their hyper-parameters; a dataclass of plain values is safe to unpickle,
# so allow it under torch.load(weights_only=True), which Lightning uses to load and resume and
# eapc_lightning.inference.checkpoints to read a checkpoint's kind (the one registration; keep it here)
torch.serialization.add_safe_globals([DualLSTMConfig])


class AttentionCache(NamedTuple):
    """Keys and values of the last ``attention_window - 1`` frames, ``(B, P, attention_dim)`` each."""

    keys: torch.Tensor
    values: torch.Tensor


class StreamState(NamedTuple):
    """Everything one chunk hands to the next so chunked inference equals one whole pass."""

    llf: LSTMState | None = None
    landmark: LSTMState | None = None
    prior: torch.Tensor | None = None  # X_lm of the last frame, (B, landmark_hidden)
    attention: AttentionCache | None = None


class DualLSTMOutput(NamedTuple):
    landmarks: torch.Tensor  # (B, T, 68, 2) pixels in the canonical face frame
    emotion_logits: torch.Tensor  # (B, T, 8) LLF encoder logits (eq. 1)
    state: StreamState


def normalise_landmarks(points: torch.Tensor) -> torch.Tensor:
    """Canonical-frame pixels -> roughly [-0.5, 0.5] around the frame centre."""
    half = CANONICAL_FACE_SIZE / 2
    return (points - half) / CANONICAL_FACE_SIZE


def denormalise_landmarks(points: torch.Tensor) -> torch.Tensor:
    """Inverse of :func:`normalise_landmarks`."""
    half = CANONICAL_FACE_SIZE / 2
    return points * CANONICAL_FACE_SIZE + half


def emotion_condition(emotion: int | str, intensity: int | None = None) -> torch.Tensor:
    """The ``(8,)`` distribution that stands for a chosen emotion at inference (``emotion_override``).

    ``intensity`` 1-3 (MEAD's levels) blends the one-hot toward neutral: level ``L`` puts ``L / 3`` of the
    mass on the emotion and the rest on neutral; ``None`` means level 3 (the plain one-hot). Neutral is
    its own one-hot at every level.
    """
    if isinstance(emotion, str):
        if emotion not in EMOTION_TO_INDEX:
            raise ValueError(f"unknown emotion {emotion!r}; expected one of {', '.join(EMOTIONS)}")
        index = EMOTION_TO_INDEX[emotion]
    else:
        index = int(emotion)
        if not 0 <= index < NUM_EMOTIONS:
            raise ValueError(f"emotion index must be in 0..{NUM_EMOTIONS - 1}, got {index}")
    level = INTENSITY_LEVELS[-1] if intensity is None else int(intensity)
    if level not in INTENSITY_LEVELS:
        raise ValueError(f"intensity must be one of {INTENSITY_LEVELS}, got {intensity}")
    strength = level / INTENSITY_LEVELS[-1]
    vector = torch.zeros(NUM_EMOTIONS)
    vector[EMOTION_TO_INDEX["neutral"]] += 1.0 - strength
    vector[index] += strength
    return vector


class AudioLSTM(nn.Module):
    """Eq. 2: each frame's ``(28, 12)`` MFCC window -> ``X_af`` of width ``hidden_size``."""

    def __init__(self, coefficients: int, hidden_size: int, num_layers: int, dropout: float) -> None:
        super().__init__()
        self.lstm = batch_first_lstm(coefficients, hidden_size, num_layers, dropout)

    def forward(self, mfcc: torch.Tensor) -> torch.Tensor:
        batch, frames, rows, coefficients = mfcc.shape
        hidden, _ = self.lstm(mfcc.reshape(batch * frames, rows, coefficients))
        return hidden[:, -1].reshape(batch, frames, -1)


class LandmarkLSTM(nn.Module):
    """Eqs. 4-5: ``X_lm^i = LSTM_lm(X_af^i) + X_lm^{i-1}`` (prior skip) over the frames of a window."""

    def __init__(
        self, input_size: int, hidden_size: int, num_layers: int, dropout: float, prior_skip: bool
    ) -> None:
        super().__init__()
        self.prior_skip = prior_skip
        self.lstm = batch_first_lstm(input_size, hidden_size, num_layers, dropout)

    def forward(
        self, audio_features: torch.Tensor, state: LSTMState | None = None, prior: torch.Tensor | None = None
    ) -> tuple[torch.Tensor, LSTMState, torch.Tensor | None]:
        """Return ``X_lm`` (B, T, H), the LSTM state, and ``X_lm`` of the last frame (the next prior)."""
        outputs, state = self.lstm(audio_features, state)
        if not self.prior_skip:
            return outputs, state, None
        if prior is None:  # eq. 5 at the first frame of the clip
            landmark_features = outputs.cumsum(dim=1)
        else:  # eq. 4 continues from the previous chunk's last frame: same summation order as one pass
            landmark_features = torch.cat([prior.unsqueeze(1), outputs], dim=1).cumsum(dim=1)[:, 1:]
        return landmark_features, state, landmark_features[:, -1]


class LocalAttention(nn.Module):
    """Eqs. 6-7 over a causal window of ``window`` frames; ``enabled=False`` attends to the current frame only."""

    def __init__(self, query_size: int, memory_size: int, dim: int, window: int, enabled: bool) -> None:
        super().__init__()
        self.enabled = enabled
        self.window = window
        self.dim = dim
        self.output_projection = nn.Linear(query_size, dim)  # o(X_afnew): the eq. 7 skip
        self.value_projection = nn.Linear(memory_size, dim)
        if enabled:
            self.query_projection = nn.Linear(query_size, dim)
            self.key_projection = nn.Linear(memory_size, dim)

    def forward(
        self,
        audio_features: torch.Tensor,
        landmark_features: torch.Tensor,
        cache: AttentionCache | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor | None, AttentionCache | None]:
        """Return ``output_lm`` (B, T, dim), the attention weights (B, T, P + T) and the cache for the next chunk.

        ``P`` is the number of cached frames from the previous chunk; weight ``[b, t, j]`` is how much
        frame ``t`` of this chunk draws from memory position ``j`` (cached frames first).
        """
        skip = self.output_projection(audio_features)
        values = self.value_projection(landmark_features)
        if not self.enabled:
            return skip + values, None, None
        queries = self.query_projection(audio_features)
        keys = self.key_projection(landmark_features)
        if cache is not None:
            keys = torch.cat([cache.keys, keys], dim=1)
            values = torch.cat([cache.values, values], dim=1)
        frames = audio_features.shape[1]
        cached = keys.shape[1] - frames
        query_position = torch.arange(frames, device=keys.device).unsqueeze(1) + cached
        key_position = torch.arange(keys.shape[1], device=keys.device).unsqueeze(0)
        visible = (key_position <= query_position) & (key_position > query_position - self.window)
        scores = queries @ keys.transpose(1, 2) / math.sqrt(self.dim)
        weights = torch.softmax(scores.masked_fill(~visible, float("-inf")), dim=-1)
        first_kept = max(keys.shape[1] - (self.window - 1), 0)
        next_cache = AttentionCache(keys[:, first_kept:], values[:, first_kept:])
        return skip + weights @ values, weights, next_cache


class ReferenceEncoder(nn.Module):
    """The reference frame's 68 normalised landmarks (identity) -> a vector of width ``dim``."""

    def __init__(self, dim: int) -> None:
        super().__init__()
        self.layers = nn.Sequential(
            nn.Linear(NUM_LANDMARKS * 2, dim), nn.ReLU(), nn.Linear(dim, dim), nn.ReLU()
        )

    def forward(self, reference: torch.Tensor) -> torch.Tensor:
        return self.layers(reference.flatten(1))


class LandmarkHead(nn.Module):
    """Eqs. 8-9: fully connected ``in -> 512 -> 256 -> 136``, reshaped to (68, 2) per frame."""

    def __init__(self, input_size: int, hidden: tuple[int, ...], dropout: float, small_last: bool) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        width = input_size
        for size in hidden:
            layers += [nn.Linear(width, size), nn.LeakyReLU(0.2), nn.Dropout(dropout)]
            width = size
        last = nn.Linear(width, NUM_LANDMARKS * 2)
        if small_last:
            # near zero but not zero: exactly zero weights give every hidden unit the same first Adam
            # update, and the head's ReLUs then tend to die together
            with torch.no_grad():
                last.weight.mul_(1e-3)
                last.bias.mul_(1e-3)
        self.layers = nn.Sequential(*layers, last)

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        return self.layers(features).unflatten(-1, (NUM_LANDMARKS, 2))


class DualLSTM(nn.Module):
    """MFCC windows + LLFs + reference landmarks -> landmark sequence (paper Fig. 2, eqs. 1-9)."""

    def __init__(self, config: DualLSTMConfig | None = None) -> None:
        super().__init__()
        self.config = config = config or DualLSTMConfig()
        self.llf_encoder = LLFEncoder(
            config.llf_dim, config.llf_hidden, config.llf_layers, config.lstm_dropout
        )
        self.audio_lstm = AudioLSTM(
            config.mfcc_coefficients, config.audio_hidden, config.audio_layers, config.lstm_dropout
        )
        self.landmark_lstm = LandmarkLSTM(
            config.audio_hidden,
            config.landmark_hidden,
            config.landmark_layers,
            config.lstm_dropout,
            config.prior_skip,
        )
        emotion_width = 0 if config.emotion_source == "none" else NUM_EMOTIONS
        self.attention = LocalAttention(
            config.audio_hidden + emotion_width,
            config.landmark_hidden,
            config.attention_dim,
            config.attention_window,
            config.attention,
        )
        self.reference_encoder = ReferenceEncoder(config.reference_dim)
        self.head = LandmarkHead(
            config.attention_dim + config.reference_dim,
            config.head_hidden,
            config.head_dropout,
            small_last=config.reference_conditioning == "offset",
        )

    def _emotion_features(
        self,
        logits: torch.Tensor,
        emotion: torch.Tensor | None,
        emotion_override: torch.Tensor | None,
    ) -> torch.Tensor | None:
        """``X_emotion`` of eq. 3, (B, T, 8), or None when ``emotion_source="none"``."""
        source = self.config.emotion_source
        if source == "none":
            if emotion_override is not None:
                raise ValueError(
                    "emotion_override needs a network with emotion_source 'predicted' or 'label'"
                )
            return None
        batch, frames, _ = logits.shape
        if emotion_override is not None:
            override = emotion_override.to(logits)
            if override.dim() == 2:
                override = override.unsqueeze(1)
            return override.expand(batch, frames, NUM_EMOTIONS)
        if source == "predicted":
            return torch.softmax(logits, dim=-1)
        if emotion is None:
            raise ValueError(
                "emotion_source='label' needs the batch's emotion labels (or an emotion_override)"
            )
        labelled = (emotion >= 0).unsqueeze(-1)
        one_hot = F.one_hot(emotion.clamp(min=0), NUM_EMOTIONS).to(logits)
        uniform = torch.full_like(one_hot, 1.0 / NUM_EMOTIONS)
        return torch.where(labelled, one_hot, uniform).unsqueeze(1).expand(batch, frames, NUM_EMOTIONS)

    def forward(
        self,
        mfcc: torch.Tensor,
        llf: torch.Tensor,
        reference: torch.Tensor,
        emotion: torch.Tensor | None = None,
        emotion_override: torch.Tensor | None = None,
        state: StreamState | None = None,
    ) -> DualLSTMOutput:
        """Predict landmarks for ``(B, T)`` frames.

        Args:
            mfcc: ``(B, T, 28, 12)`` standardised MFCC windows.
            llf: ``(B, T, 25)`` standardised low-level features.
            reference: ``(B, 68, 2)`` reference landmarks in canonical-frame pixels.
            emotion: ``(B,)`` class labels (-1 = unlabelled), used when ``emotion_source="label"``.
            emotion_override: ``(B, 8)`` or ``(B, T, 8)`` distribution replacing ``X_emotion``.
            state: the previous chunk's :class:`StreamState` (None at the start of a clip).
        """
        state = state or StreamState()
        logits, llf_state = self.llf_encoder(llf, state.llf)
        emotion_features = self._emotion_features(logits, emotion, emotion_override)
        audio_features = self.audio_lstm(mfcc)  # eq. 2
        controllable = (
            audio_features if emotion_features is None else torch.cat([audio_features, emotion_features], -1)
        )  # eq. 3
        landmark_features, landmark_state, prior = self.landmark_lstm(
            audio_features, state.landmark, state.prior
        )
        output, _, attention_cache = self.attention(
            controllable, landmark_features, state.attention
        )  # eqs. 6-7
        reference_norm = normalise_landmarks(reference)
        identity = self.reference_encoder(reference_norm)
        identity = identity.unsqueeze(1).expand(-1, output.shape[1], -1)
        points = self.head(torch.cat([output, identity], dim=-1))  # eqs. 8-9
        if self.config.reference_conditioning == "offset":
            points = points + reference_norm.unsqueeze(1)
        return DualLSTMOutput(
            denormalise_landmarks(points),
            logits,
            StreamState(llf_state, landmark_state, prior, attention_cache),
        )
