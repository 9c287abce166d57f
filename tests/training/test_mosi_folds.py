"""CMU-MOSI as distributed: the SDK's standard folds by default, the official zip's and the SDK's layouts."""

import importlib
import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from training.data import generated
from training.data.mosi import (
    FOLDS,
    FOLDS_FILENAME,
    LABELS_FILENAME,
    SDK_FOLD_NAMES,
    SDK_FOLDS_MODULE,
    WORDS_FILENAME,
    build_index,
    read_folds,
    read_opinion_labels,
    standard_folds,
)

REAL = Path("/work/shared/data/mosi")
REAL_LABELS, REAL_FOLDS = REAL / "CMU_MOSI_Opinion_Labels.csd", REAL / "standard_folds.json"
needs_real = pytest.mark.skipif(not REAL_LABELS.is_file(), reason=f"real MOSI labels not at {REAL_LABELS}")


def _sdk_importable() -> bool:
    try:
        importlib.import_module(SDK_FOLDS_MODULE)  # its parents import the whole SDK, which may fail
    except ImportError:
        return False
    return True


SDK_IMPORTABLE = _sdk_importable()
needs_mmsdk = pytest.mark.skipif(
    not SDK_IMPORTABLE, reason="the CMU Multimodal SDK (mmsdk) is not installed (PyPI has only a third-party copy, cmu-multimodal-sdk)"
)


def _index_signature(index):
    return {fold: [(s.id, s.label, s.text, s.image) for s in samples] for fold, samples in index.items()}


# -- the standard folds --------------------------------------------------------------------------------


def test_shipped_folds_are_52_10_31_disjoint_videos():
    folds = standard_folds("shipped")
    assert {f: len(v) for f, v in folds.items()} == {"train": 52, "valid": 10, "test": 31}
    everything = [v for f in FOLDS for v in folds[f]]
    assert len(set(everything)) == 93


@needs_real
def test_shipped_folds_match_the_reference_folds_and_cover_every_labelled_video():
    assert standard_folds("shipped") == read_folds(REAL_FOLDS)
    labelled = {sid.rpartition("_")[0] for sid in read_opinion_labels(REAL_LABELS)}
    assert {v for videos in standard_folds("shipped").values() for v in videos} == labelled


@needs_mmsdk
def test_shipped_folds_equal_the_sdk_folds():
    module = importlib.import_module(SDK_FOLDS_MODULE)
    sdk = {fold: list(getattr(module, name)) for fold, name in SDK_FOLD_NAMES.items()}
    assert standard_folds("shipped") == sdk
    assert standard_folds("mmsdk") == sdk == standard_folds()


@pytest.mark.skipif(SDK_IMPORTABLE, reason="mmsdk is installed: the missing-SDK error cannot happen")
def test_missing_sdk_is_named_and_auto_falls_back():
    with pytest.raises(ImportError, match=r"mmsdk.*source='shipped'"):
        standard_folds("mmsdk")
    assert standard_folds() == standard_folds("shipped")


def test_unknown_source_is_a_value_error():
    with pytest.raises(ValueError, match=r"'auto', 'mmsdk' or 'shipped', got 'sdk'"):
        standard_folds("sdk")  # type: ignore[arg-type]


@needs_real
def test_a_real_download_without_folds_file_gets_the_standard_folds(tmp_path):
    """The official download has no standard_folds.json: the index is the one the reference folds give."""
    root = tmp_path / "CMU_MOSI"
    (root / "Raw" / "Transcript" / "Segmented").mkdir(parents=True)
    shutil.copy(REAL_LABELS, root / LABELS_FILENAME)
    default = build_index(root)
    assert {f: len(s) for f, s in default.items()} == {"train": 1284, "valid": 229, "test": 686}
    assert _index_signature(default) == _index_signature(build_index(root, folds_path=REAL_FOLDS))


@needs_real
def test_folds_path_and_a_root_folds_file_override_the_standard_folds(tmp_path):
    root = tmp_path / "CMU_MOSI"
    (root / "Transcript" / "Segmented").mkdir(parents=True)
    shutil.copy(REAL_LABELS, root / LABELS_FILENAME)
    rng = np.random.default_rng()
    videos = sorted({v for vs in standard_folds("shipped").values() for v in vs})
    picked = [str(v) for v in rng.choice(videos, size=6, replace=False)]
    own = {"train": picked[:3], "valid": picked[3:5], "test": picked[5:]}
    (tmp_path / "mine.json").write_text(json.dumps(own))
    index = build_index(root, folds_path=tmp_path / "mine.json")
    assert [sorted({s.id.rpartition("_")[0] for s in index[f]}) for f in FOLDS] == [sorted(own[f]) for f in FOLDS]
    (root / FOLDS_FILENAME).write_text(json.dumps(own))
    assert _index_signature(build_index(root)) == _index_signature(index)


def test_labels_of_other_videos_without_folds_say_so(tmp_path):
    root = tmp_path / "root"
    root.mkdir()
    generated.generate(root, seed=3, scale=0.01, workers=1)
    (root / FOLDS_FILENAME).unlink()
    with pytest.raises(ValueError, match=r"the SDK's standard folds: 93 fold videos have no labels.*folds_path="):
        build_index(root, modalities=[])
    with pytest.raises(FileNotFoundError, match=r"folds file not found: .*absent\.json"):
        build_index(root, modalities=[], folds_path=root / "absent.json")


# -- layouts: the official zip (Raw/) and an SDK download (words .csd) -----------------------------------


@pytest.fixture(scope="module")
def sample_root(tmp_path_factory) -> Path:
    """A small generated dataset in our layout: transcripts, clips-or-frames and a words .csd."""
    root = tmp_path_factory.mktemp("mosi") / "sample"
    generated.generate(root, seed=5, scale=0.01, workers=1)
    return root


def test_official_zip_layout_reads_like_the_flat_one(sample_root, tmp_path):
    """CMU_MOSI.zip unpacks its modality folders under Raw/; the labels .csd sits beside Raw/."""
    root = tmp_path / "download"
    (root / "Raw").mkdir(parents=True)
    for name in (LABELS_FILENAME, FOLDS_FILENAME):
        shutil.copy(sample_root / name, root / name)
    moved = [d for d in ("Transcript", "Video", "Frames") if (sample_root / d).is_dir()]
    assert "Transcript" in moved and len(moved) >= 2
    for d in moved:
        shutil.copytree(sample_root / d, root / "Raw" / d)
    flat, raw = build_index(sample_root), build_index(root)
    assert any(s.text for s in raw["train"]) and any(s.image for s in raw["train"])
    strip = lambda index, base: {  # noqa: E731 - image paths differ by their root only
        f: [(s.id, s.label, s.text, s.image and [str(p.relative_to(base)) for p in s.image.paths]) for s in samples]
        for f, samples in index.items()
    }
    assert strip(raw, root / "Raw") == strip(flat, sample_root)


def test_sdk_download_layout_takes_text_from_the_words_csd(sample_root, tmp_path):
    """An SDK download holds the labels and words .csd files and no Transcript/ folder."""
    root = tmp_path / "sdk"
    root.mkdir()
    for name in (LABELS_FILENAME, FOLDS_FILENAME, WORDS_FILENAME):
        shutil.copy(sample_root / name, root / name)
    index = build_index(root, modalities=["text"])
    explicit = build_index(sample_root, modalities=["text"], words_path=sample_root / WORDS_FILENAME)
    assert _index_signature(index) == _index_signature(explicit)
    assert sum(bool(s.text) for s in index["train"]) > 0
