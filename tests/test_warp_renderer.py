"""``--renderer warp``: the photo warped onto landmarks, the painted mouth, no folded mesh, end to end."""

import shutil

import av
import cv2
import numpy as np
import pytest

from eapc_lightning.audio import load_audio
from eapc_lightning.cli import main as eapc
from eapc_lightning.inference.pipeline import GenerateOptions, generate
from eapc_lightning.landmarks.mesh_warp import signed_areas
from eapc_lightning.render.warp_renderer import WarpRenderer
from eapc_lightning.synth.face import Identity, render_identity
from helpers.prepare_media import write_wav
from helpers.tiny_models import tiny_models_once

SIZE = 256
LOWER_LIP = [55, 56, 57, 58, 59, 65, 66, 67]
JAW_MIDDLE = list(range(4, 13))
DOT_RGB = (0, 0, 255)


@pytest.fixture(scope="module")
def photo():
    """A real face photograph (skimage's astronaut, framed at 256 px) and its landmarks in the canonical
    frame's convention (x = pixel column + 0.5)."""
    image, points = render_identity(Identity(), SIZE)
    return image, points + 0.5


def opened(landmarks: np.ndarray, pixels: float) -> np.ndarray:
    """The lower lip and the middle of the jaw moved straight down by ``pixels``."""
    out = landmarks.copy()
    out[LOWER_LIP + JAW_MIDDLE, 1] += pixels
    return out


def test_target_equal_to_reference_returns_the_photo(photo):
    image, landmarks = photo
    frames = list(WarpRenderer(image, landmarks)(np.stack([landmarks] * 3)))
    assert len(frames) == 3
    for frame in frames:
        assert frame.shape == image.shape and frame.dtype == np.uint8
        assert np.abs(frame.astype(int) - image.astype(int)).max() <= 2


@pytest.mark.parametrize(("scale", "shift"), [(1.0, (7.3, -4.6)), (1.08, (-3.0, 2.0)), (0.93, (0.0, 0.0))])
def test_affine_motion_of_all_points_moves_the_photo(photo, scale, shift):
    image, landmarks = photo
    centre = np.array([SIZE / 2, SIZE / 2])
    target = (landmarks - centre) * scale + centre + np.asarray(shift)
    frame = WarpRenderer(image, landmarks).render(target)
    # the same motion in OpenCV pixel coordinates (landmark = pixel + 0.5)
    translation = (centre - 0.5) * (1 - scale) + np.asarray(shift)
    matrix = np.array([[scale, 0.0, translation[0]], [0.0, scale, translation[1]]])
    expected = cv2.warpAffine(image, matrix, (SIZE, SIZE), flags=cv2.INTER_LINEAR)
    interior = (slice(40, SIZE - 40), slice(40, SIZE - 40))
    difference = np.abs(frame[interior].astype(int) - expected[interior].astype(int))
    assert difference.mean() < 1.0
    assert np.percentile(difference, 99) <= 6
    unmoved = np.abs(image[interior].astype(int) - expected[interior].astype(int)).mean()
    assert unmoved > 5 * difference.mean()  # the motion is visible, and followed


def inside(polygon: np.ndarray, shape: tuple[int, int], erode: int = 2) -> np.ndarray:
    mask = np.zeros(shape, np.uint8)
    cv2.fillPoly(mask, [np.round(polygon - 0.5).astype(np.int32)], 1)
    return cv2.erode(mask, np.ones((2 * erode + 1, 2 * erode + 1), np.uint8)).astype(bool)


def dot_centre(frame: np.ndarray) -> np.ndarray:
    rgb = frame.astype(int)
    blue = (rgb[..., 2] - rgb[..., 0] > 120) & (rgb[..., 2] - rgb[..., 1] > 120)
    ys, xs = np.nonzero(blue)
    assert len(xs) > 5
    return np.array([xs.mean(), ys.mean()])


@pytest.mark.parametrize("pixels", [10, 18])
def test_open_mouth_is_dark_inside_and_moves_the_chin(photo, pixels):
    image, landmarks = photo
    image = image.copy()
    chin = 0.5 * (landmarks[57] + landmarks[8]) - 0.5  # pixel position of a drawn feature on the chin
    cv2.circle(image, tuple(int(v) for v in np.round(chin)), 3, DOT_RGB, -1)
    renderer = WarpRenderer(image, landmarks)
    before = dot_centre(renderer.render(landmarks))
    target = opened(landmarks, pixels)
    frame = renderer.render(target)
    assert np.allclose(dot_centre(frame) - before, [0.0, pixels], atol=1.0)
    # the lower part of the target inner-lip polygon (below the teeth band) is the dark mouth
    lower_half = np.concatenate([target[[60]], 0.5 * (target[[61, 62, 63]] + target[[67, 66, 65]]),
                                 target[[64, 65, 66, 67]]])  # fmt: skip
    mask = inside(lower_half, frame.shape[:2])
    assert mask.sum() > 40
    brightness = frame[mask].astype(int).max(axis=1)
    assert np.percentile(brightness, 95) < 70
    assert np.median(image[mask].astype(int).max(axis=1)) > 120  # it was lip and skin before
    # outside the mouth and chin (the upper face) nothing changed
    upper_face = (slice(int(landmarks[27, 1]) - 30, int(landmarks[33, 1]) - 3), slice(60, 200))
    assert np.abs(frame[upper_face].astype(int) - image[upper_face].astype(int)).max() <= 2


def mesh_areas(renderer: WarpRenderer, landmarks: np.ndarray) -> np.ndarray:
    """Signed areas of the renderer's mesh triangles moved onto ``landmarks`` (canonical frame)."""
    control, _ = renderer.mesh.control_points(renderer.to_pixels(landmarks))
    return signed_areas(control, renderer.mesh.triangles)


def test_no_triangle_folds_for_mouth_openings(photo):
    image, landmarks = photo
    renderer = WarpRenderer(image, landmarks)
    reference = mesh_areas(renderer, landmarks)
    assert np.all(np.abs(reference) > 0.1)
    for pixels in np.arange(0.0, 25.5, 0.5):
        for target in (opened(landmarks, pixels), opened(landmarks, pixels) * [1.0, 1.0] + [3.0, -2.0]):
            wider = target.copy()
            wider[[48, 60], 0] -= 0.15 * pixels  # mouth corners pulled apart a little as well
            wider[[54, 64], 0] += 0.15 * pixels
            for points in (target, wider):
                areas = mesh_areas(renderer, points)
                assert np.all(areas * np.sign(reference) > 0), f"fold at {pixels} px"


def test_inner_lips_pressed_past_each_other_do_not_fold(photo):
    image, landmarks = photo
    renderer = WarpRenderer(image, landmarks)
    pressed = landmarks.copy()
    pressed[[65, 66, 67], 1] = landmarks[[63, 62, 61], 1] - 2.0  # lower inner lip above the upper one
    reference = mesh_areas(renderer, landmarks)
    areas = mesh_areas(renderer, pressed)
    assert np.all(areas * np.sign(reference) > -1e-6)  # the mouth interior collapses, nothing folds
    assert renderer.render(pressed).shape == image.shape


# ------------------------------------------------------------------------------------ end to end


def decode(path) -> np.ndarray:
    with av.open(str(path)) as container:
        return np.stack([frame.to_ndarray(format="rgb24") for frame in container.decode(video=0)])


def test_generate_with_warp_renderer_needs_no_vid2vid(shared_data, tmp_path_factory, tmp_path, capsys):
    from eapc_lightning.inference.face_photo import load_face_photo

    models = tiny_models_once(tmp_path_factory)
    face = shared_data / "crema_d" / "faces" / "img01.png"
    speech = write_wav(
        tmp_path / "speech.wav", load_audio(shared_data / "hdtf" / "RD_Radio31_000.wav")[:48000]
    )
    runs = tmp_path / "runs"
    shutil.copytree(models.a2l.parents[1], runs / "a2l" / "tiny")  # only an a2l run: no vid2vid anywhere
    out = tmp_path / "warp.mp4"
    code = eapc(["generate", "--audio", str(speech), "--face", str(face), "--renderer", "warp", "--runs",
                 str(runs), "--out", str(out), "--no-progress"])  # fmt: skip
    assert code == 0
    printed = capsys.readouterr().out
    assert "landmark-to-video checkpoint" not in printed and "warp renderer" in printed
    frames = decode(out)
    assert frames.shape == (75, 256, 256, 3)
    # the mouth region changes from frame to frame; the forehead hardly does
    reference = load_face_photo(face).reference_landmarks
    low, high = reference[48:68].min(axis=0) - 6, reference[48:68].max(axis=0) + 10
    mouth = frames[:, int(low[1]) : int(high[1]), int(low[0]) : int(high[0])].astype(float)
    steps = np.abs(np.diff(mouth, axis=0)).mean(axis=(1, 2, 3))
    assert np.mean(steps > 0.5) > 0.5, steps.round(2)
    brow = reference[17:27]
    forehead = frames[
        :, int(brow[:, 1].min()) - 25 : int(brow[:, 1].min()) - 5, int(brow[0, 0]) : int(brow[-1, 0])
    ]
    assert np.abs(np.diff(forehead.astype(float), axis=0)).mean() < 0.5 * steps.mean()


def test_warp_renderer_refuses_a_vid2vid_checkpoint(tmp_path, capsys):
    code = eapc(["generate", "--audio", "a.wav", "--face", "f.png", "--renderer", "warp",
                 "--vid2vid", "v.ckpt", "--out", str(tmp_path / "o.mp4")])  # fmt: skip
    assert code == 2
    assert "--vid2vid needs --renderer vid2vid" in capsys.readouterr().err


def test_unknown_renderer_fails_before_any_work(tmp_path):
    options = GenerateOptions(
        audio=tmp_path / "missing.wav",
        face=tmp_path / "missing.png",
        out=tmp_path / "o.mp4",
        renderer="paint",
        runs_dir=tmp_path / "no_runs",
    )
    with pytest.raises(ValueError, match="--renderer"):
        generate(options)
