"""eapc-lightning: the EAPC talking-face framework (audio -> 68 landmarks -> video) on PyTorch Lightning."""

__version__ = "0.1.0"
