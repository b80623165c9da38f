"""dlib's 68-point landmarks and the public EAT evaluation's template crop (the ``eat`` protocol).

dlib comes from the ``dlib-bin`` wheel (Boost licence); ``shape_predictor_68_face_landmarks.dat`` from
the ``face-recognition-models`` package (both in the project's ``eval`` extra). The predictor was trained
on iBUG 300-W, whose licence excludes commercial use: dlib's model notes say the file therefore cannot
be used in a commercial product. It serves evaluation here, nothing else.

Facts taken from the public EAT evaluation (yuangan/evaluation_eat, code/utils_crop.py, test_lmd.py):
faces are found with dlib's HOG detector (``get_frontal_face_detector``), one up-sampling for the
alignment pass and none on the aligned crop; the grey image is made with OpenCV's BGR-to-grey
conversion applied to RGB frames (red and blue weights swapped), kept here so detections match; each
frame is warped by a similarity fitted from points 27-44 to the template below into a 163-px image
whose pixels 1-128 are kept, i.e. a 128-px crop of template coordinates minus one.
"""

import importlib.util
from pathlib import Path

import cv2
import numpy as np

from eapc_lightning.errors import MissingWeightsError
from eapc_lightning.landmarks.align import similarity_transform

PREDICTOR_FILE = "shape_predictor_68_face_landmarks.dat"
TEMPLATE_CROP = 128
TEMPLATE_POINTS = tuple(range(27, 45))
# EAT's base_68.npy template, points 27-44 (nose 27-35, right eye 36-41, left eye 42-44), in its 163-px
# warp frame (yuangan/evaluation_eat, code/utils_crop.py uses template[27:45])
TEMPLATE_27_44 = np.array(
    [
        [65, 37], [65, 47], [65, 57], [66, 68], [54, 75], [60, 77], [66, 78], [71, 76], [77, 75],
        [28, 39], [35, 35], [43, 35], [50, 40], [43, 42], [34, 42], [79, 40], [86, 34], [94, 34],
    ],
    dtype=np.float64,
)  # fmt: skip


def predictor_path() -> Path:
    """The 68-point predictor of the installed ``face-recognition-models``; MissingWeightsError if absent."""
    spec = importlib.util.find_spec("face_recognition_models")
    if spec is not None and spec.submodule_search_locations:
        candidate = Path(next(iter(spec.submodule_search_locations))) / "models" / PREDICTOR_FILE
        if candidate.is_file():
            return candidate
    raise MissingWeightsError(
        f"{PREDICTOR_FILE} not found: the eat protocol needs dlib's 68-point predictor from the "
        "face-recognition-models package (make env installs it with the eval extra: "
        "uv sync --extra eval)"
    )


def _grey_as_eat(frame_rgb: np.ndarray) -> np.ndarray:
    return cv2.cvtColor(frame_rgb, cv2.COLOR_BGR2GRAY)


class DlibLandmarkDetector:
    """68 points per RGB frame with dlib (first face found, as EAT takes it); None where none is found."""

    def __init__(self):
        try:
            import dlib
        except ImportError as error:
            raise MissingWeightsError(
                "dlib is not installed: the eat protocol needs the dlib-bin wheel (uv sync --extra eval)"
            ) from error
        self._detector = dlib.get_frontal_face_detector()
        self._predictor = dlib.shape_predictor(str(predictor_path()))

    def __call__(self, frame_rgb: np.ndarray, upsample: int = 0) -> np.ndarray | None:
        grey = _grey_as_eat(np.ascontiguousarray(frame_rgb))
        boxes = self._detector(grey, upsample)
        if len(boxes) == 0:
            return None
        shape = self._predictor(grey, boxes[0])
        return np.array([(shape.part(i).x, shape.part(i).y) for i in range(68)], dtype=np.float32)

    def template_crop(self, frame_rgb: np.ndarray) -> tuple[np.ndarray | None, np.ndarray | None]:
        """EAT's aligned crop of one frame and the landmarks re-detected on it (128-px coordinates);
        (None, None) when either detection finds no face."""
        points = self(frame_rgb, upsample=1)
        if points is None:
            return None, None
        to_crop = similarity_transform(points[list(TEMPLATE_POINTS)], TEMPLATE_27_44 - 1.0)
        crop = cv2.warpAffine(frame_rgb, to_crop, (TEMPLATE_CROP, TEMPLATE_CROP), flags=cv2.INTER_LINEAR)
        return crop, self(crop, upsample=0)
