"""Synthetic emotional talking-face dataset in MEAD's layout (``eapc synth``); see docs/synthetic.md."""

from eapc_lightning.synth.generator import SYNTH_PRESETS, SynthSettings, generate_dataset

__all__ = ["SYNTH_PRESETS", "SynthSettings", "generate_dataset"]
