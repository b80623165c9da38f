"""``eapc evaluate-render``: re-detected mouths against the driving landmarks, and a video that cannot pass.

The driving landmarks of the first tests are the photo's own with the jaw and lower lip moved down by a
known open-close sequence (0 to 12 px, a syllable every half second), rendered by the warp renderer; the
measurement only sees the frames, so what it reports is what MediaPipe finds in the pictures.
"""

import csv

import numpy as np
import pytest

from eapc_lightning.cli import main as eapc
from eapc_lightning.evaluation.render_fidelity import measure_render, mouth_and_forehead
from eapc_lightning.render.warp_renderer import WarpRenderer
from helpers.prepare_media import write_wav
from helpers.tiny_models import tiny_models_once

SIZE = 256
FRAMES = 50
LOWER_LIP_AND_JAW = [55, 56, 57, 58, 59, 65, 66, 67, *range(4, 13)]


def open_close(reference: np.ndarray, phase: float = 0.0) -> np.ndarray:
    """(FRAMES, 68, 2): the mouth opens from 0 to 12 px and closes again every 12.5 frames."""
    opening = 6.0 - 6.0 * np.cos(np.arange(FRAMES) * 2 * np.pi / 12.5 + phase)
    driving = np.repeat(np.asarray(reference, np.float64)[None], FRAMES, axis=0)
    driving[:, LOWER_LIP_AND_JAW, 1] += opening[:, None]
    return driving


@pytest.fixture(scope="module")
def photos(shared_data):
    from eapc_lightning.inference.face_photo import load_face_photo

    return [load_face_photo(shared_data / "crema_d" / "faces" / f"img0{i}.png") for i in (1, 2, 3)]


def test_warped_photo_follows_a_known_open_close_sequence(photos):
    for photo in photos:
        reference = photo.reference_landmarks
        driving = open_close(reference)
        image = photo.aligned_face(SIZE)
        frames = WarpRenderer(image, reference)(driving.astype(np.float32))
        measured = measure_render(frames, driving, image, reference)
        # measured on img01-03: r 0.97 / 0.94 / 0.97, std ratio 0.96 / 1.15 / 0.96, mouth box 14.0 / 15.2 /
        # 12.0 grey levels off the photo, forehead 0.0, mouth difference against the gap r 0.97-0.98
        assert measured.detected == measured.frames == FRAMES
        assert measured.r > 0.7
        assert 0.7 < measured.std_ratio < 1.4
        assert measured.mouth_difference > 5.0 and measured.forehead_difference < 0.5
        assert measured.mouth_difference_r > 0.7  # the mouth region differs from the photo when it opens
        assert measured.follows(min_r=0.7)


def test_a_mouth_moving_out_of_step_does_not_follow(photos):
    photo = photos[0]
    reference = photo.reference_landmarks
    image = photo.aligned_face(SIZE)
    shown = WarpRenderer(image, reference)(open_close(reference, phase=np.pi).astype(np.float32))
    measured = measure_render(shown, open_close(reference), image, reference)
    # opening while the landmarks close: measured r -0.97; the mouth moves, so it differs from the photo
    assert measured.r < -0.7 and measured.mouth_difference > 5.0
    assert not measured.follows()


def test_the_reference_repeated_fails_the_check(photos):
    photo = photos[0]
    reference = photo.reference_landmarks
    image = photo.aligned_face(SIZE)
    measured = measure_render([image] * FRAMES, open_close(reference), image, reference)
    # MediaPipe's tracking jitters on identical frames: measured r -0.23 over a 0.2 px gap (std ratio 0.01)
    assert measured.r is None or abs(measured.r) < 0.5
    assert measured.std_ratio < 0.1
    assert measured.mouth_difference == 0.0 and measured.forehead_difference == 0.0
    assert measured.contrast is None and not measured.follows()


def test_regions_lie_around_the_mouth_and_above_the_brows(photos):
    reference = photos[0].reference_landmarks
    mouth, forehead = mouth_and_forehead(reference, SIZE)
    assert mouth.top < reference[51, 1] and mouth.bottom > reference[57, 1] + 10
    assert mouth.left < reference[48, 0] and mouth.right > reference[54, 0]
    assert forehead.bottom < reference[17:27, 1].min() and forehead.bottom - forehead.top > 10
    half, _ = mouth_and_forehead(reference, SIZE // 2)  # the same boxes in a smaller frame
    assert abs(half.top - mouth.top / 2) <= 1 and abs(half.right - mouth.right / 2) <= 1


def test_command_measures_real_speech_through_the_tiny_model_and_records_a_bad_photo(
    shared_data, tmp_path_factory, tmp_path, capsys
):
    from eapc_lightning.audio import load_audio

    models = tiny_models_once(tmp_path_factory)
    speech = write_wav(
        tmp_path / "speech.wav", load_audio(shared_data / "hdtf" / "RD_Radio34_002.wav")[:48000]
    )
    faces = shared_data / "crema_d" / "faces"
    not_a_photo = tmp_path / "notes.png"
    not_a_photo.write_text("no picture here")
    out = tmp_path / "fidelity"
    code = eapc(["evaluate-render", "--faces", str(faces / "img01.png"), str(not_a_photo), str(faces / "img02.png"),
                 "--speech", str(speech), "--renderer", "warp", "--a2l", str(models.a2l), "--out", str(out)])  # fmt: skip
    assert code == 0
    assert "notes.png x speech.wav x warp: failed" in capsys.readouterr().err
    with open(out / "render_fidelity.csv", newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert [(row["face"].rsplit("/", 1)[-1], row["status"]) for row in rows] == [
        ("img01.png", "ok"),
        ("notes.png", "failed"),
        ("img02.png", "ok"),
    ]
    assert "not a readable image" in rows[1]["error"]
    for row in (rows[0], rows[2]):
        # measured: r 0.98 (img01) and 0.96 (img02), std ratio 1.00 / 1.39, mouth box 11.0 / 11.5 grey levels
        # off the photo against 2.2 / 3.6 on the forehead; the tiny model opens the mouth by about 15 px
        assert float(row["r"]) > 0.7, row
        assert float(row["mouth_difference"]) > 1.5 * float(row["forehead_difference"])
        assert row["follows"] == "True"
        driving = np.load(row["video"].replace(".mp4", ".npy"))
        assert driving.shape == (75, 68, 2)
    table = (out / "render_fidelity.md").read_text()
    assert "| warp | 2/3 | 2 |" in table and "notes.png x speech.wav x warp: " in table
    assert not list(out.glob(".*"))  # the tables were renamed into place


def test_faces_are_files_as_given_and_the_images_of_folders(tmp_path):
    from eapc_lightning.evaluation.render_fidelity import face_files

    folder = tmp_path / "faces"
    folder.mkdir()
    for name in ("b.png", "a.JPG", "notes.txt"):
        (folder / name).write_bytes(b"x")
    missing = tmp_path / "missing.png"  # kept: it is recorded as a failed item when used
    assert face_files([folder, missing]) == [folder / "a.JPG", folder / "b.png", missing]
