"""Atomic file writing and PNG pictures (eapc_lightning.fileio)."""

import os
import stat

import cv2
import numpy as np
import pytest

from eapc_lightning.fileio import atomic_write_bytes, write_png


def test_atomic_write_leaves_no_temp_and_honours_umask(tmp_path):
    target = tmp_path / "sub" / "clip.bin"
    old_mask = os.umask(0o022)
    try:
        atomic_write_bytes(target, b"first")
        atomic_write_bytes(target, b"second")
    finally:
        os.umask(old_mask)
    assert target.read_bytes() == b"second"
    assert sorted(p.name for p in target.parent.iterdir()) == ["clip.bin"]
    assert stat.S_IMODE(target.stat().st_mode) == 0o644


def test_a_failed_write_keeps_the_old_file_and_leaves_no_temp(tmp_path):
    target = tmp_path / "table.md"
    atomic_write_bytes(target, b"old")

    with pytest.raises(TypeError):
        atomic_write_bytes(target, "text, not bytes")  # fails inside the write, after the temp file exists
    assert target.read_bytes() == b"old" and [p.name for p in tmp_path.iterdir()] == ["table.md"]


def test_png_round_trips_through_opencv_in_rgb_order(tmp_path):
    picture = np.zeros((6, 9, 3), np.uint8)
    picture[..., 0] = 200  # red in RGB
    picture[2, 3] = (1, 2, 3)
    path = write_png(tmp_path / "grids" / "a.png", picture)
    read_back = cv2.cvtColor(cv2.imread(str(path), cv2.IMREAD_COLOR), cv2.COLOR_BGR2RGB)
    np.testing.assert_array_equal(read_back, picture)


@pytest.mark.parametrize(
    "bad", [np.zeros((4, 4), np.uint8), np.zeros((4, 4, 3), np.float32), np.zeros((0, 4, 3), np.uint8)]
)
def test_a_picture_that_is_not_rgb_uint8_is_an_error_naming_the_file(bad, tmp_path):
    with pytest.raises(ValueError, match=r"bad\.png: a PNG needs an \(H, W, 3\) uint8 picture"):
        write_png(tmp_path / "bad.png", bad)
    assert not any(tmp_path.iterdir())


def test_require_nonempty_file_names_the_file_and_the_problem(tmp_path):
    from eapc_lightning.errors import InputError
    from eapc_lightning.fileio import require_nonempty_file

    with pytest.raises(InputError, match=rf"^{tmp_path / 'missing.wav'}: file not found$"):
        require_nonempty_file(tmp_path / "missing.wav")
    with pytest.raises(InputError, match="file not found"):
        require_nonempty_file(tmp_path)  # a folder is not a file
    (tmp_path / "empty.wav").write_bytes(b"")
    with pytest.raises(InputError, match=r"empty\.wav: file is empty \(0 bytes\)$"):
        require_nonempty_file(tmp_path / "empty.wav")
    (tmp_path / "one.wav").write_bytes(b"x")
    assert require_nonempty_file(str(tmp_path / "one.wav")) == tmp_path / "one.wav"
