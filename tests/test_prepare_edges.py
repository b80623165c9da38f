"""Edges of ``eapc prepare``: a killed run leaves no process behind, damaged clip files are rebuilt, roots
without clips and unusable cache folders stop the run with a clear one-line error (exit status 2)."""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from eapc_lightning.cli import main as eapc_main
from eapc_lightning.data.cache import CLIP_ARRAYS, load_clip
from eapc_lightning.prepare.errors import PrepareUsageError
from eapc_lightning.prepare.manifest import file_fingerprint, load_manifest
from eapc_lightning.prepare.run import prepare_dataset
from helpers.prepare_media import RealMedia
from test_prepare import make_folder, statuses

CROP = 64
REPO_ROOT = Path(__file__).resolve().parents[1]
MEAD_EXAMPLE = "<root>/M003/video/front/angry/level_1/001.mp4"


@pytest.fixture(scope="module")
def media(shared_data) -> RealMedia:
    return RealMedia(shared_data, size=128, seconds=3.0)


def launcher() -> list[str]:
    script = REPO_ROOT / ".venv/bin/eapc"
    return [str(script)] if script.is_file() else [sys.executable, "-m", "eapc_lightning.cli"]


def prepare_args(root: Path, out: Path, *extra: str) -> list[str]:
    return ["prepare", "--dataset", "folder", "--root", str(root), "--out", str(out), *extra]


# ---------------------------------------------------------------------------------------- processes


def _stat_fields(pid: int) -> list[str] | None:
    """Fields of /proc/<pid>/stat after the command name (state first), or None when it is gone."""
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return text[text.rindex(")") + 2 :].split()


def process_tree(root_pid: int) -> dict[int, str]:
    """Every living descendant of ``root_pid``: pid -> start time (to tell a reused pid apart)."""
    children: dict[int, list[int]] = {}
    starts: dict[int, str] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        fields = _stat_fields(int(entry))
        if fields is None or fields[0] == "Z":
            continue
        children.setdefault(int(fields[1]), []).append(int(entry))
        starts[int(entry)] = fields[19]
    tree, pending = {}, list(children.get(root_pid, []))
    while pending:
        pid = pending.pop()
        tree[pid] = starts[pid]
        pending.extend(children.get(pid, []))
    return tree


def still_running(tree: dict[int, str]) -> dict[int, str]:
    """The processes of ``tree`` that have not ended (a zombie has ended; a reused pid is another process)."""
    running = {}
    for pid, start in tree.items():
        fields = _stat_fields(pid)
        if fields is not None and fields[0] != "Z" and fields[19] == start:
            try:
                command = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
            except (OSError, UnicodeDecodeError):
                command = "?"
            running[pid] = f"state {fields[0]}: {command[:100]}"
    return running


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads the process tree from /proc (Linux)")
def test_sigkill_ends_the_workers_the_forkserver_and_the_resource_tracker(media, tmp_path):
    root = make_folder(tmp_path / "raw", media, 12, frames=40)
    out = tmp_path / "cache"
    command = [
        *launcher(),
        *prepare_args(root, out, "--crop-size", str(CROP), "--workers", "2", "--no-progress"),
    ]
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 120
        tree: dict[int, str] = {}
        while time.monotonic() < deadline and process.poll() is None:
            tree = process_tree(process.pid)
            parents = {pid: _stat_fields(pid) for pid in tree}
            grandchildren = [
                pid for pid, fields in parents.items() if fields and int(fields[1]) != process.pid
            ]
            working = (out / "clips").is_dir() and any((out / "clips").glob("*.npz"))
            if len(grandchildren) >= 2 and working:  # the pool's workers (forked by the forkserver) busy
                break
            time.sleep(0.05)
        assert process.poll() is None, "prepare finished before it could be killed"
        tree = process_tree(process.pid)
        assert len(tree) >= 4, f"expected resource tracker, forkserver and 2 workers, found {tree}"
        os.kill(process.pid, signal.SIGKILL)
    finally:
        process.kill()
        process.wait()
    deadline = time.monotonic() + 15
    while still_running(tree) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not still_running(tree), (
        f"left running after the prepare process was killed: {still_running(tree)}"
    )
    assert not (out / "summary.json").exists()  # it really was killed in the middle of the run


# ---------------------------------------------------------------------------------------- damaged clips


def test_damaged_clip_files_are_rebuilt_and_intact_ones_skipped(media, tmp_path, capsys):
    root = make_folder(tmp_path / "raw", media, 2)
    out = tmp_path / "cache"
    args = prepare_args(root, out, "--crop-size", str(CROP), "--no-progress")
    clip1 = out / "clips/clip1.npz"

    def run() -> dict:
        assert eapc_main(args) == 0
        capsys.readouterr()
        return json.loads((out / "summary.json").read_text())

    assert set(statuses(run()).values()) == {"ok"}
    original = load_clip(clip1)
    original_bytes = clip1.read_bytes()
    entry = load_manifest(out)["clip1"]
    assert entry["files"] == {"clip1": file_fingerprint(clip1)}
    assert entry["files"]["clip1"]["size"] == len(original_bytes)

    written = {path.name: path.stat().st_mtime_ns for path in (out / "clips").iterdir()}
    assert set(statuses(run()).values()) == {"skipped"}  # unchanged: nothing rebuilt
    assert {path.name: path.stat().st_mtime_ns for path in (out / "clips").iterdir()} == written

    def assert_restored() -> None:
        clip = load_clip(clip1)
        assert clip.meta == original.meta
        for key in CLIP_ARRAYS:
            assert clip.arrays[key].shape == original.arrays[key].shape, key
            np.testing.assert_array_equal(clip.arrays[key], original.arrays[key], err_msg=key)
        assert clip1.read_bytes() == original_bytes  # the same clip is written byte for byte

    os.truncate(clip1, len(original_bytes) // 2)
    assert statuses(run()) == {"clip0": "skipped", "clip1": "ok"}
    assert_restored()

    damaged = bytearray(original_bytes)  # same size, one byte changed near the end
    damaged[-100] ^= 0xFF
    clip1.write_bytes(bytes(damaged))
    assert statuses(run()) == {"clip0": "skipped", "clip1": "ok"}
    assert_restored()

    # a run killed before its manifest was written: the clips' own metadata decide, and a truncated
    # file has none to give
    os.truncate(clip1, len(original_bytes) - 10)
    (out / "manifest.json").unlink()
    assert statuses(run()) == {"clip0": "skipped", "clip1": "ok"}
    assert_restored()
    assert load_manifest(out)["clip0"]["files"]["clip0"] == file_fingerprint(out / "clips/clip0.npz")


# ---------------------------------------------------------------------------------------- roots


def touch_mead(root: Path, speakers=("M001", "W002")) -> Path:
    """A MEAD tree of empty placeholder videos (enumeration reads names only)."""
    for speaker in speakers:
        path = root / f"{speaker}/video/front/happy/level_1/001.mp4"
        path.parent.mkdir(parents=True)
        path.write_bytes(b"")
    return root


def prepare_error(capsys, *args: str) -> str:
    """Run ``eapc prepare`` expecting a usage error; returns its one-line message."""
    assert eapc_main(["prepare", *args, "--no-progress"]) == 2
    captured = capsys.readouterr()
    assert "Traceback" not in captured.err and "prepared" not in captured.out
    lines = captured.err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("eapc prepare: error: "), captured.err
    return lines[0]


def test_empty_root_names_the_root_and_the_expected_layout(tmp_path, capsys):
    empty = tmp_path / "empty"
    empty.mkdir()
    out = tmp_path / "cache"
    for dataset, example in (
        ("mead", MEAD_EXAMPLE),
        ("crema_d", "<root>/VideoFlash/1001_DFA_ANG_XX.flv"),
        ("folder", "<root>/<any subfolders>/<clip>.mp4"),
    ):
        message = prepare_error(capsys, "--dataset", dataset, "--root", str(empty), "--out", str(out))
        assert f"{empty}: no " in message and "clips found under this root" in message
        assert example in message
    (empty / "VideoFlash").mkdir()  # CREMA-D's folder present but empty: the same error
    message = prepare_error(capsys, "--dataset", "crema_d", "--root", str(empty), "--out", str(out))
    assert f"{empty}: no CREMA-D clips found" in message
    assert not out.exists()  # stopped before any work


def test_mead_root_one_level_off(tmp_path, capsys):
    mead = touch_mead(tmp_path / "outer/MEAD")
    out = tmp_path / "cache"
    too_deep = mead / "M001"
    message = prepare_error(capsys, "--dataset", "mead", "--root", str(too_deep), "--out", str(out))
    assert f"{too_deep}: no MEAD clips found" in message and MEAD_EXAMPLE in message
    assert f"looks like one speaker's folder: pass the folder holding the speakers, {mead}" in message

    inside = mead / "M001/video/front"
    message = prepare_error(capsys, "--dataset", "mead", "--root", str(inside), "--out", str(out))
    assert f"{inside}: no MEAD clips found" in message and f"pass {mead}" in message

    too_shallow = tmp_path / "outer"
    message = prepare_error(capsys, "--dataset", "mead", "--root", str(too_shallow), "--out", str(out))
    assert f"{too_shallow}: no MEAD clips found" in message and MEAD_EXAMPLE in message
    assert f"the speaker folders seem to be deeper: pass {mead}" in message
    assert not out.exists()


def test_filters_that_select_nothing(tmp_path, capsys):
    mead = touch_mead(tmp_path / "MEAD")
    out = tmp_path / "cache"
    common = ["--dataset", "mead", "--root", str(mead), "--out", str(out)]
    message = prepare_error(capsys, *common, "--speakers", "M009")
    assert f"{mead}: 2 clip(s) found, but none matches --speakers M009" in message
    assert "speakers M001, W002" in message
    message = prepare_error(capsys, *common, "--emotions", "sad", "--views", "left_30")
    assert "none matches --emotions sad --views left_30" in message and "emotions happy" in message
    message = prepare_error(capsys, *common, "--limit", "0")
    assert "--limit must be at least 1, not 0" in message
    assert not out.exists()


def test_the_library_names_parameters_and_the_command_names_flags(tmp_path, capsys):
    mead = touch_mead(tmp_path / "MEAD")
    blocker = tmp_path / "somefile.txt"
    blocker.write_text("not a folder")
    cases = (  # prepare_dataset's arguments, the CLI's, what both messages say
        ({"workers": 0}, ["--workers", "0"], "must be at least 1, not 0"),
        ({"shard_index": 3}, ["--shard-index", "3"], "must be in [0, 1), not 3"),
        ({"speakers": ["M009"]}, ["--speakers", "M009"], "2 clip(s) found, but none matches"),
        ({"out": blocker / "cache"}, ["--out", str(blocker / "cache")], f"{blocker} is a file"),
    )
    for kwargs, flags, problem in cases:
        where = {"out": tmp_path / "cache", **kwargs}
        with pytest.raises(PrepareUsageError) as caught:
            prepare_dataset("mead", mead, where.pop("out"), **where)
        library = str(caught.value)
        assert problem in library and "--" not in library and len(library.splitlines()) == 1
        command = ["--dataset", "mead", "--root", str(mead), "--out", str(tmp_path / "cache"), *flags]
        message = prepare_error(capsys, *command)
        assert problem in message and flags[0] in message
    assert not (tmp_path / "cache").exists()


def test_empty_shard_says_so(tmp_path, capsys):
    mead = touch_mead(tmp_path / "MEAD", speakers=("M001",))
    args = ["prepare", "--dataset", "mead", "--root", str(mead), "--out", str(tmp_path / "cache")]
    assert eapc_main([*args, "--num-shards", "2", "--shard-index", "1", "--no-progress"]) == 0
    assert "shard 1 of 2 holds no items: 1 item(s) selected for all shards" in capsys.readouterr().out


# ---------------------------------------------------------------------------------------- the cache folder


def test_out_under_a_regular_file(tmp_path, capsys):
    mead = touch_mead(tmp_path / "MEAD")
    blocker = tmp_path / "somefile.txt"
    blocker.write_text("not a folder")
    out = blocker / "cache"
    message = prepare_error(capsys, "--dataset", "mead", "--root", str(mead), "--out", str(out))
    assert f"--out {out}: cannot create the cache folder there, {blocker} is a file" in message
    assert blocker.read_text() == "not a folder"


@pytest.mark.parametrize("where", ["read-only folder", "sysfs"])
def test_out_that_cannot_be_written(tmp_path, capsys, where):
    mead = touch_mead(tmp_path / "MEAD")
    if where == "read-only folder":
        if os.geteuid() == 0:
            pytest.skip("root ignores file permissions")
        locked = tmp_path / "locked"
        locked.mkdir()
        locked.chmod(0o555)
        out = locked / "cache"
    else:
        if not Path("/sys/kernel").is_dir():
            pytest.skip("no sysfs at /sys")
        out = Path("/sys/kernel/eapc-prepare-cache")  # not writable, not even for root
    try:
        message = prepare_error(capsys, "--dataset", "mead", "--root", str(mead), "--out", str(out))
    finally:
        if where == "read-only folder":
            locked.chmod(0o755)
    assert f"--out {out}: the cache folder cannot be written" in message
    assert not out.exists()
