"""Eq. 11 MSE, the structure-preserving eq. 12 distance loss and the emotion cross-entropy by hand."""

import itertools
import math

import numpy as np
import pytest
import torch

from eapc_lightning.losses import A2LLoss, emotion_cross_entropy, landmark_distance_loss, landmark_mse


def face(seed: int = 0) -> torch.Tensor:
    generator = torch.Generator().manual_seed(seed)
    return 60 + 130 * torch.rand(1, 1, 68, 2, generator=generator, dtype=torch.float64)


def test_mse_is_the_mean_squared_point_distance() -> None:
    target = face()
    prediction = target.clone()
    prediction[0, 0, 10] += torch.tensor([3.0, 4.0], dtype=torch.float64)
    assert landmark_mse(prediction, target).item() == pytest.approx(25 / 68)


def test_distance_loss_ignores_translation_and_sees_scale() -> None:
    target = face()
    shifted = target + torch.tensor([5.0, -3.0], dtype=torch.float64)
    assert landmark_distance_loss(shifted, target).item() == pytest.approx(0.0, abs=1e-9)
    assert landmark_mse(shifted, target).item() == pytest.approx(34.0)
    centre = target.mean(dim=-2, keepdim=True)
    doubled = centre + 2 * (target - centre)  # every pairwise distance doubles: |2d - d| = d
    points = target[0, 0].numpy()
    mean_distance = np.mean(
        [np.hypot(*(points[i] - points[j])) for i, j in itertools.combinations(range(68), 2)]
    )
    assert landmark_distance_loss(doubled, target).item() == pytest.approx(mean_distance, rel=1e-9)


def test_distance_loss_matches_a_loop_over_pairs_and_has_finite_gradients() -> None:
    generator = torch.Generator().manual_seed(1)
    target = 60 + 130 * torch.rand(2, 3, 68, 2, generator=generator)
    prediction = (target + 2 * torch.randn(2, 3, 68, 2, generator=generator)).requires_grad_()
    expected = []
    for p, g in zip(prediction.detach().reshape(-1, 68, 2).numpy(), target.reshape(-1, 68, 2).numpy()):
        for i, j in itertools.combinations(range(68), 2):
            expected.append(abs(np.hypot(*(p[i] - p[j])) - np.hypot(*(g[i] - g[j]))))
    loss = landmark_distance_loss(prediction, target)
    assert loss.item() == pytest.approx(float(np.mean(expected)), rel=1e-5)
    collapsed = torch.zeros(1, 1, 68, 2, requires_grad=True)  # every predicted pair coincides
    landmark_distance_loss(collapsed, target[:1, :1]).backward()
    assert torch.isfinite(collapsed.grad).all()


def test_emotion_cross_entropy_by_hand_ignores_unlabelled_clips() -> None:
    logits = torch.tensor([[[2.0, 0.0, 0.0], [0.0, 1.0, 0.0]], [[5.0, 5.0, 5.0], [1.0, 2.0, 3.0]]])
    labels = torch.tensor([0, -1])

    def negative_log_softmax(row: list[float], label: int) -> float:
        return -(row[label] - math.log(sum(math.exp(value) for value in row)))

    expected = (negative_log_softmax([2, 0, 0], 0) + negative_log_softmax([0, 1, 0], 0)) / 2
    assert emotion_cross_entropy(logits, labels).item() == pytest.approx(expected, rel=1e-6)
    none_labelled = emotion_cross_entropy(logits.requires_grad_(), torch.tensor([-1, -1]))
    assert none_labelled.item() == 0.0
    none_labelled.backward()  # still part of the graph
    assert torch.all(logits.grad == 0)


def test_weighted_total_is_eq_13_plus_the_emotion_term() -> None:
    generator = torch.Generator().manual_seed(2)
    target = 60 + 130 * torch.rand(2, 4, 68, 2, generator=generator)
    prediction = target + torch.randn(2, 4, 68, 2, generator=generator)
    logits, labels = torch.randn(2, 4, 8, generator=generator), torch.tensor([3, 1])
    terms = A2LLoss(mse_weight=2.0, lmd_weight=0.5, emotion_weight=0.1)(prediction, target, logits, labels)
    expected = 2.0 * terms.mse + 0.5 * terms.lmd + 0.1 * terms.emotion_ce
    torch.testing.assert_close(terms.total, expected)
    torch.testing.assert_close(terms.mse, landmark_mse(prediction, target))
    with pytest.raises(ValueError, match="lmd_weight must be non-negative"):
        A2LLoss(lmd_weight=-1.0)
