"""``eapc fit|validate|test|predict``: LightningCLI over any LightningModule / LightningDataModule.

Experiments choose their classes by ``class_path`` in YAML (``experiments/*.yaml`` for the model and
trainer, ``data_modules/*.yaml`` for the data), so one entry point serves both stages.
"""

from lightning.pytorch import LightningDataModule, LightningModule
from lightning.pytorch.cli import LightningCLI


class EAPCLightningCLI(LightningCLI):
    """LightningCLI with the project's defaults (config saved beside every run, overwriting on resume)."""


def run_lightning_cli(argv: list[str]) -> int:
    EAPCLightningCLI(
        LightningModule,
        LightningDataModule,
        subclass_mode_model=True,
        subclass_mode_data=True,
        save_config_kwargs={"overwrite": True},
        args=argv,
    )
    return 0
