"""K = 3 references (experiments/vid2vid_k3.yaml): the attention over references trains and behaves.

After a few training steps the generator's attention (GeneratorOutput.attention, (B, P, K * P)) must be
a distribution over the K x P reference positions for every target position, follow a permutation of
the references (and leave the generated frame unchanged), and split evenly over identical references.
"""

import lightning as L
import pytest
import torch

from eapc_lightning.data.vid2vid_datamodule import Vid2VidDataModule
from eapc_lightning.lit.vid2vid import Vid2VidModule
from helpers.vid2vid_cache import TINY_GENERATOR, write_synthetic_cache

SIZE = 32
K = 3
STEPS = 4


pytestmark = pytest.mark.usefixtures("single_thread")


def attention_parameters(module: Vid2VidModule) -> dict[str, torch.Tensor]:
    weights = module.generator.weight_generator
    return {
        name: value.detach().clone()
        for part in ("key_encoder", "query_encoder")
        for name, value in getattr(weights, part).named_parameters(prefix=part)
    }


@pytest.fixture(scope="module")
def trained(tmp_path_factory) -> tuple[Vid2VidModule, Vid2VidDataModule, dict, dict]:
    root = tmp_path_factory.mktemp("vid2vid_k3")
    cache = write_synthetic_cache(root / "cache", num_frames=12, crop_size=SIZE)
    torch.manual_seed(0)
    module = Vid2VidModule(
        image_size=SIZE,
        num_references=K,
        generator=TINY_GENERATOR,
        image_discriminator={"num_scales": 1, "base_channels": 8, "num_layers": 2, "max_channels": 16},
        perceptual_weight=0.0,
        fid_extractor="none",
        single_frame_epochs=1,
        l1_weight=10.0,
    )
    data = Vid2VidDataModule(
        cache_dir=str(cache),
        image_size=SIZE,
        num_references=K,
        sequence_length=2,
        eval_sequence_length=2,
        eval_windows_per_clip=1,
        samples_per_clip=4,
        batch_size=2,
        val_fraction=0.34,
        test_fraction=0.34,
        augment=True,
        max_frame_step=2,
    )
    before = attention_parameters(module)
    L.Trainer(
        accelerator="cpu",
        devices=1,
        max_steps=STEPS,
        limit_val_batches=0,
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        default_root_dir=str(root),
    ).fit(module, data)
    after = attention_parameters(module)
    batch = next(iter(data.val_dataloader()))
    return module, data, batch, {"before": before, "after": after}


def generate(module: Vid2VidModule, batch: dict, order: list[int] | None = None):
    order = list(range(K)) if order is None else order
    generator = module.generator.eval()
    with torch.no_grad():
        return generator(
            batch["labels"][:, 0],
            batch["reference_images"][:, order],
            batch["reference_labels"][:, order],
            None,
            batch["mesh_flows"][:, 0][:, order],
        )


def test_training_with_three_references_updates_the_attention_encoders(trained):
    module, _, _, parameters = trained
    assert module.global_step >= STEPS and module.generator.weight_generator.num_references == K
    moved = [
        name
        for name, value in parameters["before"].items()
        if not torch.equal(value, parameters["after"][name])
    ]
    assert len(moved) > 0.5 * len(parameters["before"]), "the key/query encoders got no gradient"


def test_attention_is_a_distribution_over_all_reference_positions(trained):
    module, _, batch, _ = trained
    output = generate(module, batch)
    grid = module.generator.weight_generator.grid_size
    positions = grid * grid
    assert output.attention.shape == (batch["labels"].shape[0], positions, K * positions)
    assert (output.attention >= 0).all()
    torch.testing.assert_close(output.attention.sum(dim=-1), torch.ones(output.attention.shape[:2]))
    assert torch.isfinite(output.image).all()


@pytest.mark.parametrize("order", [[2, 0, 1], [1, 0, 2], [2, 1, 0]])
def test_permuting_the_references_permutes_the_attention_and_keeps_the_frame(trained, order):
    module, _, batch, _ = trained
    base = generate(module, batch)
    permuted = generate(module, batch, order)
    batch_size, positions = base.attention.shape[:2]
    blocks = base.attention.reshape(batch_size, positions, K, positions)
    torch.testing.assert_close(
        permuted.attention.reshape(batch_size, positions, K, positions),
        blocks[:, :, order],
        atol=1e-6,
        rtol=1e-5,
    )
    # the warped reference is the same frame, now at its new position in the list
    assert [order[i] for i in permuted.reference_index.tolist()] == base.reference_index.tolist()
    torch.testing.assert_close(permuted.image, base.image, atol=1e-5, rtol=1e-4)


def test_identical_references_share_the_attention_evenly(trained):
    module, _, batch, _ = trained
    output = generate(module, batch, [0, 0, 0])
    batch_size, positions = output.attention.shape[:2]
    per_reference = output.attention.reshape(batch_size, positions, K, positions).sum(dim=-1)
    torch.testing.assert_close(per_reference, torch.full_like(per_reference, 1 / K))


def test_validation_keeps_the_first_k_frames_as_references(trained):
    _, data, batch, _ = trained
    assert batch["reference_images"].shape[1] == K
    assert batch["frame_indices"][0].tolist() == [K, K + 1]  # held-out targets follow the K references
    assert data.splits["train"] and data.augmentation is not None
