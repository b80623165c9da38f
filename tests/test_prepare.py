"""The prepare pipeline's bookkeeping: re-runs, stale items, gaps, shards, workers, the CLI, SIGKILL + resume."""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from eapc_lightning.audio import extract_features, load_audio
from eapc_lightning.cli import main as eapc_main
from eapc_lightning.data.cache import CLIP_ARRAYS, load_clip
from eapc_lightning.prepare.errors import ArgumentError
from eapc_lightning.prepare.manifest import cached_clip_paths, load_manifest
from eapc_lightning.prepare.run import prepare_dataset
from eapc_lightning.prepare.selection import select_items
from eapc_lightning.prepare.settings import PrepareSettings
from helpers.prepare_media import RealMedia, noise_frames, write_clip

CROP = 64
REPO_ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def media(shared_data) -> RealMedia:
    return RealMedia(shared_data, size=128, seconds=3.0)


def make_folder(root: Path, media: RealMedia, count: int, frames: int = 30) -> Path:
    """``count`` talking-face clips cut at different offsets of the real recording, with their speech."""
    for index in range(count):
        start = (index * 7) % (len(media.frames) - frames)
        speech = media.speech[start * 640 : (start + frames) * 640][None]
        write_clip(root / f"clip{index}.mp4", media.frames[start : start + frames], 25, speech)
    return root


def clip_files(out: Path) -> set[str]:
    return {path.name for path in (out / "clips").iterdir()}


def assert_same_clip(path_a: Path, path_b: Path) -> None:
    a, b = load_clip(path_a), load_clip(path_b)
    assert a.meta == b.meta
    for key in CLIP_ARRAYS:
        np.testing.assert_array_equal(a.arrays[key], b.arrays[key], err_msg=f"{path_a.name}: {key}")


def statuses(summary: dict) -> dict[str, str]:
    return {record["item"]: record["status"] for record in summary["items"]}


def test_rerun_skips_current_clips_and_redoes_stale_ones(media, tmp_path):
    root = make_folder(tmp_path / "raw", media, 3)
    out = tmp_path / "cache"
    first = prepare_dataset("folder", root, out, crop_size=CROP)
    assert statuses(first) == {"clip0": "ok", "clip1": "ok", "clip2": "ok"}
    clip = load_clip(out / "clips/clip0.npz")
    assert clip.num_frames == 30 and clip.arrays["faces_offsets"].shape == (31,)
    assert clip.faces([0, 29]).shape == (2, CROP, CROP, 3)
    written = {name: (out / "clips" / name).stat().st_mtime_ns for name in clip_files(out)}

    second = prepare_dataset("folder", root, out, crop_size=CROP)
    assert set(statuses(second).values()) == {"skipped"}
    assert {name: (out / "clips" / name).stat().st_mtime_ns for name in clip_files(out)} == written

    source = root / "clip1.mp4"
    os.utime(source, ns=(source.stat().st_atime_ns, source.stat().st_mtime_ns + 10**9))  # "edited"
    third = prepare_dataset("folder", root, out, crop_size=CROP)
    assert statuses(third) == {"clip0": "skipped", "clip1": "ok", "clip2": "skipped"}
    assert load_manifest(out)["clip1"]["video_mtime_ns"] == source.stat().st_mtime_ns

    fourth = prepare_dataset("folder", root, out, crop_size=CROP + 16)  # settings changed: all stale
    assert set(statuses(fourth).values()) == {"ok"}
    assert load_clip(out / "clips/clip2.npz").faces([0]).shape == (1, CROP + 16, CROP + 16, 3)
    assert len({entry["settings_hash"] for entry in load_manifest(out).values()}) == 1
    assert fourth["settings_hash"] != first["settings_hash"]

    (out / "manifest.json").unlink()  # a run killed before writing its manifest: the clips' meta decide
    fifth = prepare_dataset("folder", root, out, crop_size=CROP + 16)
    assert set(statuses(fifth).values()) == {"skipped"}
    assert set(load_manifest(out)) == {"clip0", "clip1", "clip2"}


def test_clips_too_large_to_keep_are_decoded_twice_with_the_same_result(media, tmp_path):
    root = make_folder(tmp_path / "raw", media, 1)
    prepare_dataset("folder", root, tmp_path / "kept", crop_size=CROP)
    low_memory = PrepareSettings(crop_size=CROP, frame_memory_mb=0)  # no frame fits: second decoding pass
    assert low_memory.digest() == PrepareSettings(crop_size=CROP).digest()  # same output, same hash
    prepare_dataset("folder", root, tmp_path / "twice", settings=low_memory)
    assert_same_clip(tmp_path / "kept/clips/clip0.npz", tmp_path / "twice/clips/clip0.npz")


def test_long_face_gap_splits_or_drops_the_clip(media, tmp_path):
    frames = np.concatenate([media.frames[:30], noise_frames(15, 128), media.frames[45:75]])
    speech = media.speech[: 75 * 640]
    write_clip(tmp_path / "raw/talk.mp4", frames, 25, speech[None])
    out = tmp_path / "cache"

    split = prepare_dataset("folder", tmp_path / "raw", out, crop_size=CROP, max_gap=5)
    [record] = split["items"]
    assert record["status"] == "ok" and record["clips"] == ["talk_seg0", "talk_seg1"]
    assert any("cut out" in warning for warning in record["warnings"])
    first, second = (load_clip(out / f"clips/talk_seg{k}.npz") for k in (0, 1))
    (a0, b0), (a1, b1) = first.meta["frame_range"], second.meta["frame_range"]
    assert a0 == 0 and abs(b0 - 30) <= 2 and abs(a1 - 45) <= 2 and b1 == 75
    # each piece carries the audio features of its own frames, cut from the whole clip's features
    whole = extract_features(load_audio(tmp_path / "raw/talk.mp4"), 75)
    np.testing.assert_allclose(second.arrays["mfcc"], whole["mfcc"][a1:b1], atol=1e-4)
    np.testing.assert_allclose(second.arrays["llf"], whole["llf"][a1:b1], atol=1e-4)
    assert second.arrays["detected"].all() and np.isfinite(second.arrays["landmarks"]).all()

    dropped = prepare_dataset(
        "folder", tmp_path / "raw", tmp_path / "dropped", crop_size=CROP, max_gap=5, gap_policy="drop"
    )
    [record] = dropped["items"]
    assert record["status"] == "failed" and "consecutive frames" in record["reason"]

    # a longer max_gap bridges the gap: one clip, interpolated, and the two pieces are removed
    bridged = prepare_dataset("folder", tmp_path / "raw", out, crop_size=CROP, max_gap=20)
    assert bridged["items"][0]["clips"] == ["talk"] and clip_files(out) == {"talk.npz"}
    clip = load_clip(out / "clips/talk.npz")
    assert clip.num_frames == 75 and not clip.arrays["detected"][32:43].any()
    assert np.isfinite(clip.arrays["landmarks"]).all()


def test_shards_split_the_items_and_workers_match_one_process(media, tmp_path):
    root = make_folder(tmp_path / "raw", media, 4)
    sharded = tmp_path / "sharded"
    parts = [
        prepare_dataset("folder", root, sharded, crop_size=CROP, num_shards=2, shard_index=index)
        for index in (0, 1)
    ]
    items = [set(statuses(part)) for part in parts]
    assert items[0] | items[1] == {f"clip{k}" for k in range(4)} and not items[0] & items[1]
    assert items[0] == {item.clip_id for item in select_items("folder", root, num_shards=2, shard_index=0)}
    names = sorted(path.name for path in sharded.glob("*.json"))
    assert names == [
        "manifest.shard-0-of-2.json",
        "manifest.shard-1-of-2.json",
        "summary.shard-0-of-2.json",
        "summary.shard-1-of-2.json",
    ]
    assert set(load_manifest(sharded)) == {f"clip{k}" for k in range(4)}
    assert [path.name for path in cached_clip_paths(sharded)] == [f"clip{k}.npz" for k in range(4)]

    # the pool run goes through the installed console script: its workers must not re-run it
    pooled = tmp_path / "pooled"
    script = REPO_ROOT / ".venv/bin/eapc"
    launcher = [str(script)] if script.is_file() else [sys.executable, "-m", "eapc_lightning.cli"]
    command = [*launcher, "prepare", "--dataset", "folder", "--root", str(root), "--out", str(pooled)]
    done = subprocess.run(
        [*command, "--crop-size", str(CROP), "--workers", "2", "--no-progress"],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert "prepared 4 item(s), 0 up to date, 0 failed" in done.stdout
    for name in clip_files(sharded):
        assert_same_clip(sharded / "clips" / name, pooled / "clips" / name)

    with pytest.raises(ArgumentError, match="shard_index must be in"):
        prepare_dataset("folder", root, pooled, num_shards=2, shard_index=2)


def test_subset_filters_and_limit(tmp_path):
    for speaker in ("M001", "W002"):
        for emotion in ("happy", "sad"):
            for view in ("front", "left_30"):
                path = tmp_path / f"{speaker}/video/{view}/{emotion}/level_1/001.mp4"
                path.parent.mkdir(parents=True)
                path.write_bytes(b"")
    chosen = select_items("mead", tmp_path, speakers=["W002"], emotions=["sad"])
    assert [item.clip_id for item in chosen] == ["W002_front_sad_level_1_001"]
    everything = select_items("mead", tmp_path, views=None)
    assert len(everything) == 8
    assert [item.clip_id for item in select_items("mead", tmp_path, limit=3)] == [
        "M001_front_happy_level_1_001",
        "M001_front_sad_level_1_001",
        "W002_front_happy_level_1_001",
    ]
    summary = prepare_dataset("mead", tmp_path, tmp_path / "cache", limit=1)
    assert summary["counts"] == {"ok": 0, "skipped": 0, "failed": 1}  # the empty file, recorded


def test_cli_exit_codes(media, tmp_path, capsys):
    root = make_folder(tmp_path / "raw", media, 1)
    (root / "broken.mp4").write_bytes(b"")
    out = tmp_path / "cache"
    args = [
        "prepare",
        "--dataset",
        "folder",
        "--root",
        str(root),
        "--out",
        str(out),
        "--crop-size",
        str(CROP),
    ]
    assert eapc_main([*args, "--no-progress"]) == 0  # finished, one item failed
    printed = capsys.readouterr().out
    assert "prepared 1 item(s), 0 up to date, 1 failed" in printed and "broken.mp4: file is empty" in printed
    assert json.loads((out / "summary.json").read_text())["counts"]["failed"] == 1
    assert eapc_main([*args, "--num-shards", "2", "--shard-index", "5"]) == 2
    assert (
        eapc_main(["prepare", "--dataset", "folder", "--root", str(tmp_path / "nowhere"), "--out", str(out)])
        == 2
    )
    assert "is not a folder" in capsys.readouterr().err


def test_sigkill_then_rerun_gives_the_uninterrupted_cache(media, tmp_path):
    root = make_folder(tmp_path / "raw", media, 6, frames=40)
    reference = tmp_path / "reference"
    prepare_dataset("folder", root, reference, crop_size=CROP)

    out = tmp_path / "killed"
    command = [sys.executable, "-m", "eapc_lightning.cli", "prepare", "--dataset", "folder"]
    command += ["--root", str(root), "--out", str(out), "--crop-size", str(CROP), "--no-progress"]
    process = subprocess.Popen(command, cwd=REPO_ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and process.poll() is None:
            if (out / "clips").is_dir() and len(list((out / "clips").glob("*.npz"))) >= 2:
                break
            time.sleep(0.02)
        assert process.poll() is None, "prepare finished before it could be killed"
        process.send_signal(signal.SIGKILL)
    finally:
        process.kill()
        process.wait()
    done_before = set(clip_files(out))
    assert 2 <= len([n for n in done_before if n.endswith(".npz")]) < 6
    assert not (out / "summary.json").exists()
    # what a kill in the middle of a write leaves: the temporary file of the atomic write
    leftover = out / "clips" / ".clip5.npz.k1ll3d.tmp"
    leftover.write_bytes(b"partial")

    resumed = prepare_dataset("folder", root, out, crop_size=CROP)
    assert resumed["counts"]["failed"] == 0 and resumed["counts"]["skipped"] >= 2
    assert clip_files(out) == clip_files(reference) == {f"clip{k}.npz" for k in range(6)}
    assert sorted(p.name for p in out.iterdir()) == sorted(p.name for p in reference.iterdir())
    for name in clip_files(reference):
        assert_same_clip(reference / "clips" / name, out / "clips" / name)
    assert load_manifest(out) == load_manifest(reference)
    assert not list(out.rglob("*.tmp"))


def test_temp_files_of_other_shards_are_left_alone(media, tmp_path):
    root = make_folder(tmp_path / "raw", media, 2)
    out = tmp_path / "cache"
    (out / "clips").mkdir(parents=True)
    own = out / "clips" / ".clip0.npz.abc123.tmp"
    foreign = out / "clips" / ".clip1.npz.def456.tmp"  # clip1 belongs to shard 1 of 2
    for path in (own, foreign):
        path.write_bytes(b"partial")
    prepare_dataset("folder", root, out, crop_size=CROP, num_shards=2, shard_index=0)
    assert not own.exists() and foreign.exists()
