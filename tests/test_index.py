"""Indexing a prepared cache from the metadata inside each clip file."""

import shutil

import numpy as np
import pytest

from eapc_lightning.audio.features import AudioFeatureConfig
from eapc_lightning.constants import EMOTION_TO_INDEX
from eapc_lightning.data.cache import save_clip
from eapc_lightning.data.index import list_clips
from eapc_lightning.data.splits import split_by_speaker
from eapc_lightning.errors import InputError
from helpers.fake_clip_cache import fake_clip_arrays, write_fake_cache


def test_list_clips_reads_labels_from_clip_metadata(tmp_path):
    write_fake_cache(tmp_path, speakers=("A", "B"), clips_per_speaker=4)
    records = list_clips(tmp_path)
    assert [r.clip_id for r in records] == sorted(r.clip_id for r in records)
    assert len(records) == 8
    for record in records:
        with np.load(record.path) as archive:
            assert record.num_frames == archive["mfcc"].shape[0]
        emotion_name = record.clip_id.split("_")[1]
        assert record.emotion == EMOTION_TO_INDEX[emotion_name]
        assert record.speaker == record.clip_id.split("_")[0]
        assert record.level in (1, 2, 3)
        assert record.dataset == "mead"


def test_unlabelled_clips_get_minus_one_and_level_zero(tmp_path):
    write_fake_cache(tmp_path, speakers=("A",), clips_per_speaker=2, labelled=False, dataset="folder")
    records = list_clips(tmp_path)
    assert {(r.emotion, r.level, r.dataset) for r in records} == {(-1, 0, "folder")}


def test_index_and_split_do_not_depend_on_file_creation_order(tmp_path):
    first, second = tmp_path / "first", tmp_path / "second"
    write_fake_cache(first, clips_per_speaker=2)
    names = sorted((first / "clips").glob("*.npz"))
    (second / "clips").mkdir(parents=True)
    for path in reversed(names):
        shutil.copyfile(path, second / "clips" / path.name)
    a, b = list_clips(first), list_clips(second)
    assert [r.clip_id for r in a] == [r.clip_id for r in b]
    split_a = split_by_speaker(a, seed=4, val_fraction=0.2, test_fraction=0.2)
    split_b = split_by_speaker(b, seed=4, val_fraction=0.2, test_fraction=0.2)
    assert {k: [r.clip_id for r in v] for k, v in split_a.items()} == {
        k: [r.clip_id for r in v] for k, v in split_b.items()
    }


def test_empty_cache_names_the_folder_and_says_to_prepare(tmp_path):
    with pytest.raises(InputError, match=r"clips.*eapc prepare"):
        list_clips(tmp_path)
    (tmp_path / "clips").mkdir()
    with pytest.raises(InputError, match=str(tmp_path / "clips")):
        list_clips(tmp_path)


def test_unreadable_or_mislabelled_clip_is_a_clear_error(tmp_path):
    (tmp_path / "clips").mkdir()
    bad = tmp_path / "clips" / "broken.npz"
    bad.write_bytes(b"not a zip file")
    with pytest.raises(InputError, match="broken.npz: not a readable cached clip"):
        list_clips(tmp_path)
    bad.unlink()
    arrays = fake_clip_arrays(np.random.default_rng(0), 30, 0.0)
    meta = {
        "audio_features": AudioFeatureConfig().to_dict(),
        "clip_id": "x",
        "dataset": "mead",
        "speaker": "A",
        "emotion": "bored",
        "level": 1,
        "num_frames": 30,
    }
    save_clip(tmp_path / "clips" / "x.npz", arrays, meta)
    with pytest.raises(InputError, match="x.npz: unknown emotion 'bored'"):
        list_clips(tmp_path)
