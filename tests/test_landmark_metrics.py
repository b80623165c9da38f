"""M-LD, M-LVD, F-LD, F-LVD against hand-computed values and a plain numpy reference; exact merging."""

import numpy as np
import pytest
import torch

from eapc_lightning.metrics import LandmarkDistance, LandmarkVelocityDistance

MOUTH = list(range(48, 68))


def face(seed: int = 0, frames: int = 2) -> torch.Tensor:
    generator = torch.Generator().manual_seed(seed)
    return 60 + 130 * torch.rand(frames, 68, 2, generator=generator, dtype=torch.float64)


def reference_ld(prediction: np.ndarray, target: np.ndarray, points: list[int]) -> float:
    """LD by loops: centre every frame with its 68-point mean, average the point distances over the region."""
    distances = []
    for predicted_frame, true_frame in zip(prediction, target):
        predicted_frame = predicted_frame - predicted_frame.mean(axis=0)
        true_frame = true_frame - true_frame.mean(axis=0)
        for point in points:
            distances.append(np.hypot(*(predicted_frame[point] - true_frame[point])))
    return float(np.mean(distances))


def reference_lvd(prediction: np.ndarray, target: np.ndarray, points: list[int]) -> float:
    centred_prediction = [frame - frame.mean(axis=0) for frame in prediction]
    centred_target = [frame - frame.mean(axis=0) for frame in target]
    distances = []
    for t in range(len(prediction) - 1):
        for point in points:
            predicted_velocity = centred_prediction[t + 1][point] - centred_prediction[t][point]
            true_velocity = centred_target[t + 1][point] - centred_target[t][point]
            distances.append(np.hypot(*(predicted_velocity - true_velocity)))
    return float(np.mean(distances))


def test_ld_by_hand_one_displaced_mouth_point_and_a_rigid_shift() -> None:
    target = face()
    prediction = target.clone()
    prediction[1] += torch.tensor([7.0, -2.0], dtype=torch.float64)  # a whole-frame shift costs nothing
    prediction[0, 50] += torch.tensor([3.0, 4.0], dtype=torch.float64)  # |(3, 4)| = 5
    # centring with 68 points moves every point of frame 0 by -(3, 4) / 68: point 50 ends 5 * 67/68 away,
    # the 67 others 5/68 away; frame 1 is exact
    mouth, face_metric = LandmarkDistance("mouth"), LandmarkDistance("face")
    mouth.update(prediction, target)
    face_metric.update(prediction, target)
    assert mouth.compute().item() == pytest.approx((5 * 67 / 68 + 19 * 5 / 68) / (2 * 20), rel=1e-6)
    assert face_metric.compute().item() == pytest.approx((5 * 67 / 68 + 67 * 5 / 68) / (2 * 68), rel=1e-6)


def test_lvd_by_hand_and_face_lvd_does_not_include_mouth_lvd() -> None:
    target = face(frames=1).repeat(3, 1, 1)  # a still face: zero true velocity
    prediction = target.clone()
    prediction[1:, 50] += torch.tensor([3.0, 4.0], dtype=torch.float64)  # moves at frame 1, then stays
    mouth, face_metric = LandmarkVelocityDistance("mouth"), LandmarkVelocityDistance("face")
    mouth.update(prediction, target)
    face_metric.update(prediction, target)
    # two velocity frames; only the first has motion: point 50 at 5 * 67/68, 67 others at 5/68
    expected_mouth = (5 * 67 / 68 + 19 * 5 / 68) / (2 * 20)
    expected_face = (5 * 67 / 68 + 67 * 5 / 68) / (2 * 68)
    assert mouth.compute().item() == pytest.approx(expected_mouth, rel=1e-6)
    assert face_metric.compute().item() == pytest.approx(expected_face, rel=1e-6)
    assert face_metric.compute().item() != pytest.approx(expected_face + expected_mouth, rel=1e-3)


def test_metrics_match_a_numpy_loop_reference_on_random_sequences() -> None:
    generator = torch.Generator().manual_seed(3)
    target = 60 + 130 * torch.rand(3, 6, 68, 2, generator=generator)
    prediction = target + 4 * torch.randn(3, 6, 68, 2, generator=generator)
    for region, points in (("mouth", MOUTH), ("face", list(range(68)))):
        ld, lvd = LandmarkDistance(region), LandmarkVelocityDistance(region)
        ld.update(prediction, target)
        lvd.update(prediction, target)
        pooled_ld = np.mean(
            [
                reference_ld(p.numpy().astype(np.float64), t.numpy().astype(np.float64), points)
                for p, t in zip(prediction, target)
            ]
        )  # every clip has the same number of frames, so the mean of clip means is the pooled mean
        pooled_lvd = np.mean(
            [
                reference_lvd(p.numpy().astype(np.float64), t.numpy().astype(np.float64), points)
                for p, t in zip(prediction, target)
            ]
        )
        assert ld.compute().item() == pytest.approx(pooled_ld, rel=1e-5)
        assert lvd.compute().item() == pytest.approx(pooled_lvd, rel=1e-5)


@pytest.mark.parametrize("metric_class", [LandmarkDistance, LandmarkVelocityDistance])
@pytest.mark.parametrize("region", ["mouth", "face"])
def test_two_instances_on_halves_merge_to_one_instance_on_all(metric_class, region: str) -> None:
    generator = torch.Generator().manual_seed(5)
    target = 60 + 130 * torch.rand(5, 8, 68, 2, generator=generator)
    prediction = target + 3 * torch.randn(5, 8, 68, 2, generator=generator)
    whole, first, second = metric_class(region), metric_class(region), metric_class(region)
    whole.update(prediction, target)
    first.update(prediction[:2], target[:2])  # unequal halves: the sums and counts still pool exactly
    second.update(prediction[2:], target[2:])
    first.merge_state(second)
    assert first.compute().item() == pytest.approx(whole.compute().item(), rel=1e-7)
    assert first.count.item() == whole.count.item()


def test_bad_shapes_and_regions_are_refused() -> None:
    with pytest.raises(ValueError, match="region must be one of"):
        LandmarkDistance("eyes")
    metric = LandmarkDistance()
    with pytest.raises(ValueError, match=r"prediction must have shape \(B, T, 68, 2\)"):
        metric.update(torch.zeros(4, 20, 2), torch.zeros(4, 20, 2))
    with pytest.raises(ValueError, match="differ"):
        metric.update(torch.zeros(4, 68, 2), torch.zeros(5, 68, 2))
