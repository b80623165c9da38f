"""LightningModules of the two stages."""

from eapc_lightning.lit.a2l import A2LModule

__all__ = ["A2LModule"]
