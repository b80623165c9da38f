"""LLF encoder (paper section 3.3, eq. 1): low-level audio features -> per-frame emotion distribution.

``X_emotion = LLFs_encoder(X_llfs)``: a stack of unidirectional LSTM layers (three in the paper) runs over
the frames' 25-dimensional LLF vectors, and a linear layer maps each frame's hidden state to logits over the
eight emotion classes of ``eapc_lightning.constants.EMOTIONS``. The softmax of those logits is the
distribution the Dual-LSTM consumes. The LSTM is causal, so its state can be carried from one chunk of a
long clip to the next without changing the result.
"""

import torch
from torch import nn

from eapc_lightning.constants import EMOTIONS

LSTMState = tuple[torch.Tensor, torch.Tensor]


def batch_first_lstm(input_size: int, hidden_size: int, num_layers: int, dropout: float) -> nn.LSTM:
    """A unidirectional, batch-first LSTM stack; ``dropout`` between layers (none for a single layer)."""
    return nn.LSTM(
        input_size,
        hidden_size,
        num_layers=num_layers,
        batch_first=True,
        dropout=dropout if num_layers > 1 else 0.0,
    )


class LLFEncoder(nn.Module):
    """Eq. 1: ``(B, T, llf_dim)`` standardised LLFs -> ``(B, T, num_emotions)`` emotion logits."""

    def __init__(
        self,
        llf_dim: int = 25,
        hidden_size: int = 128,
        num_layers: int = 3,
        dropout: float = 0.0,
        num_emotions: int = len(EMOTIONS),
    ) -> None:
        super().__init__()
        self.lstm = batch_first_lstm(llf_dim, hidden_size, num_layers, dropout)
        self.classifier = nn.Linear(hidden_size, num_emotions)

    def forward(self, llf: torch.Tensor, state: LSTMState | None = None) -> tuple[torch.Tensor, LSTMState]:
        """Return the per-frame logits and the LSTM state after the last frame."""
        hidden, state = self.lstm(llf, state)
        return self.classifier(hidden), state
