"""Networks: the LLF emotion encoder and the Dual-LSTM audio-to-landmark model."""

from eapc_lightning.models.dual_lstm import (
    DualLSTM,
    DualLSTMConfig,
    DualLSTMOutput,
    StreamState,
    emotion_condition,
)
from eapc_lightning.models.llf_encoder import LLFEncoder

__all__ = ["DualLSTM", "DualLSTMConfig", "DualLSTMOutput", "LLFEncoder", "StreamState", "emotion_condition"]
