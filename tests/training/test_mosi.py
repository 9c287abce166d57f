"""training.data: CMU-MOSI reading (labels, folds, transcripts, index), frames and the torch dataset."""

import json
import pickle
import re
from pathlib import Path

import numpy as np
import pytest

from clips import flat_frames, write_clip  # tests/ is on sys.path, as for tiny_bundles
from training.data.csd import (
    ComputationalSequence,
    VideoSequence,
    read_computational_sequence,
    words_by_segment,
    write_computational_sequence,
)
from training.data.frames import FrameSampling, decode_clip_frames, load_segment_image
from training.data.mosi import (
    FOLDS_FILENAME,
    LABELS_FILENAME,
    build_index,
    read_annotprocessed,
    read_folds,
    read_opinion_labels,
    read_word_transcripts,
)

REAL = Path("/work/shared/data/mosi")
REAL_LABELS, REAL_FOLDS = REAL / "CMU_MOSI_Opinion_Labels.csd", REAL / "standard_folds.json"
needs_real = pytest.mark.skipif(not REAL_LABELS.is_file(), reason=f"real MOSI labels not at {REAL_LABELS}")

LABELS = {"vidA": [2.0, -1.4, 0.0], "vidB": [-3.0, 0.6]}


def write_labels(path: Path, labels: dict[str, list[float]] = LABELS) -> None:
    videos = {
        v: VideoSequence(
            np.array(s, dtype=np.float32).reshape(-1, 1),
            np.array([[2.0 * k, 2.0 * k + 1.5] for k in range(len(s))], dtype=np.float32),
        )
        for v, s in labels.items()
    }
    write_computational_sequence(path, ComputationalSequence("Opinion Segment Labels", videos, {"dataset name": '"t"'}))


def make_root(root: Path, text: bool = True, frames: bool = True) -> Path:
    """A tiny MOSI-layout root: vidA (3 segments) in train, vidB (2) in valid, no test videos."""
    root.mkdir(parents=True, exist_ok=True)
    write_labels(root / LABELS_FILENAME)
    (root / FOLDS_FILENAME).write_text(json.dumps({"train": ["vidA"], "valid": ["vidB"], "test": []}))
    if text:
        transcripts = root / "Transcript" / "Segmented"
        transcripts.mkdir(parents=True)
        (transcripts / "vidA.annotprocessed").write_text("1_DELIM_it was great\n2_DELIM_ not so good \n\n")
        # vidB has no transcript file: its texts are absent, not an error; vidA_3 has no line.
    if frames:
        from PIL import Image

        for sid, value in [("vidA_1", 10), ("vidA_2", 20), ("vidB_1", 30)]:
            folder = root / "Frames" / sid
            folder.mkdir(parents=True)
            for i in range(3):
                Image.fromarray(np.full((12, 16, 3), value + 40 * i, np.uint8)).save(folder / f"{i:04d}.png")
    return root


CLIP_SIZE = (24, 32)  # height, width of the clips the frame tests write


# -- the real CMU-MOSI labels and folds --------------------------------------------------------------


@needs_real
def test_real_labels_read_as_2199_segments_of_93_videos():
    sequence = read_computational_sequence(REAL_LABELS)
    assert sequence.root_name == "Opinion Segment Labels"
    assert len(sequence.videos) == 93
    assert sequence.metadata["dataset name"] == '"CMU-MOSI"'
    labels = read_opinion_labels(REAL_LABELS)
    assert len(labels) == 2199
    scores = np.array(list(labels.values()))
    assert scores.min() >= -3.0 and scores.max() <= 3.0
    assert labels["03bSnISJMiM_1"] == pytest.approx(2.4)
    # Segments keep file order even where it is not time order (clips are named that way).
    assert labels["d6hH302o4v8_25"] == pytest.approx(-1.6)
    assert labels["bOL9jKpeJRs_24"] == pytest.approx(-1.0) and labels["bOL9jKpeJRs_25"] == pytest.approx(-0.6)


@needs_real
def test_real_folds_give_standard_fold_sizes(tmp_path):
    folds = read_folds(REAL_FOLDS)
    assert {f: len(v) for f, v in folds.items()} == {"train": 52, "valid": 10, "test": 31}
    (tmp_path / "Transcript" / "Segmented").mkdir(parents=True)
    index = build_index(tmp_path, labels_path=REAL_LABELS, folds_path=REAL_FOLDS)
    assert {f: len(s) for f, s in index.items()} == {"train": 1284, "valid": 229, "test": 686}
    ids = [s.id for samples in index.values() for s in samples]
    assert len(set(ids)) == 2199
    assert all(s.text is None and s.image is None for samples in index.values() for s in samples)


# -- computational sequences and timestamped words ---------------------------------------------------


def test_words_are_assigned_to_segments_by_overlap(tmp_path):
    words = VideoSequence(
        np.array([b"so", b"sp", b"good", b"but", b"then", b"bad"], dtype=object).reshape(-1, 1),
        #        inside 1   silence   inside 1   60% in 1   70% in 2   inside 2
        np.array([[0.0, 0.5], [0.5, 0.9], [0.9, 1.2], [1.7, 2.2], [2.85, 3.2], [3.5, 3.8]]),
    )
    segments = np.array([[0.0, 2.0], [2.0, 4.0], [5.0, 6.0]])
    assert words_by_segment(words, segments) == ["so good but", "then bad", ""]

    write_computational_sequence(tmp_path / "words.csd", ComputationalSequence("words", {"vidA": words}))
    labels = {"vidA": [1.0, -1.0, 0.0]}
    write_labels(tmp_path / "labels.csd", labels)  # intervals [0, 1.5], [2, 3.5], [4, 5.5]
    transcripts = read_word_transcripts(tmp_path / "words.csd", tmp_path / "labels.csd")
    # "but" is 40% inside segment 2 and "bad" falls in the gap after it: neither is assigned.
    assert transcripts == {"vidA_1": "so good", "vidA_2": "then", "vidA_3": ""}


def test_computational_sequence_round_trip(tmp_path):
    seq = ComputationalSequence(
        "x", {"v": VideoSequence(np.arange(6, dtype=np.float32).reshape(3, 2), np.zeros((3, 2)))}, {"creator": '"me"'}
    )
    write_computational_sequence(tmp_path / "x.csd", seq)
    back = read_computational_sequence(tmp_path / "x.csd")
    assert back.root_name == "x" and back.metadata == {"creator": '"me"'}
    np.testing.assert_array_equal(back.videos["v"].features, seq.videos["v"].features)


# -- broken files --------------------------------------------------------------------------------------


def test_missing_files_name_the_path(tmp_path):
    with pytest.raises(FileNotFoundError, match=r"not a directory: .*nowhere"):
        build_index(tmp_path / "nowhere")
    root = make_root(tmp_path / "root")
    (root / LABELS_FILENAME).unlink()
    with pytest.raises(FileNotFoundError, match=re.escape(f"labels file not found: {root / LABELS_FILENAME}")):
        build_index(root)
    write_labels(root / LABELS_FILENAME)
    (root / FOLDS_FILENAME).unlink()  # now the SDK's standard folds, whose videos these labels lack
    with pytest.raises(ValueError, match=re.escape("the SDK's standard folds: 93 fold videos have no labels")):
        build_index(root)
    with pytest.raises(FileNotFoundError, match=re.escape(f"folds file not found: {root / FOLDS_FILENAME}")):
        build_index(root, folds_path=root / FOLDS_FILENAME)
    with pytest.raises(FileNotFoundError, match=r"computational sequence not found: .*missing\.csd"):
        read_opinion_labels(tmp_path / "missing.csd")


def test_corrupt_hdf5_is_a_value_error(tmp_path):
    path = tmp_path / "labels.csd"
    path.write_bytes(b"\x89HDF\r\n\x1a\n" + bytes(range(256)) * 4)
    with pytest.raises(ValueError, match="not a readable HDF5"):
        read_opinion_labels(path)


def test_wrong_hdf5_layouts_are_value_errors(tmp_path):
    import h5py

    path = tmp_path / "labels.csd"
    with h5py.File(path, "w") as f:
        f.create_group("Opinion Segment Labels").create_group("metadata")
    with pytest.raises(ValueError, match="expected group '/Opinion Segment Labels/data'"):
        read_opinion_labels(path)
    with h5py.File(path, "w") as f:
        f.create_group("a/data/vid").create_dataset("features", data=np.zeros((2, 1)))
    with pytest.raises(ValueError, match=r"'features' and 'intervals' in /a/data/vid"):
        read_opinion_labels(path)
    write_computational_sequence(
        path, ComputationalSequence("a", {"v": VideoSequence(np.zeros((2, 2)), np.zeros((2, 2)))})
    )
    with pytest.raises(ValueError, match=r"shape \(2, 2\) .* expected \(n, 1\) numbers"):
        read_opinion_labels(path)
    write_labels(path, {"v": [1.0, 3.5]})
    with pytest.raises(ValueError, match=r"segment v_2 is 3.5, expected a finite score in \[-3.0, 3.0\]"):
        read_opinion_labels(path)


def test_bad_folds_and_transcripts_are_value_errors(tmp_path):
    path = tmp_path / "folds.json"
    path.write_text('{"train": [], "dev": [], "test": []}')
    with pytest.raises(ValueError, match=r"expected an object with keys \['train', 'valid', 'test'\]"):
        read_folds(path)
    path.write_text("not json")
    with pytest.raises(ValueError, match="not a JSON folds file"):
        read_folds(path)
    path.write_text('{"train": ["a"], "valid": ["a"], "test": []}')
    with pytest.raises(ValueError, match="'a' is in both 'train' and 'valid'"):
        read_folds(path)
    annot = tmp_path / "v.annotprocessed"
    annot.write_text("1_DELIM_fine\nsecond line without delimiter\n")
    with pytest.raises(ValueError, match=r"v.annotprocessed:2: expected '<k>_DELIM_<text>'"):
        read_annotprocessed(annot)
    root = make_root(tmp_path / "root")
    (root / FOLDS_FILENAME).write_text(json.dumps({"train": ["vidA", "ghost"], "valid": [], "test": []}))
    with pytest.raises(ValueError, match=r"1 fold videos have no labels .*\['ghost'\]"):
        build_index(root)


# -- modalities ------------------------------------------------------------------------------------


def test_full_root_index(tmp_path):
    index = build_index(make_root(tmp_path))
    assert [s.id for s in index["train"]] == ["vidA_1", "vidA_2", "vidA_3"]
    assert [s.id for s in index["valid"]] == ["vidB_1", "vidB_2"] and index["test"] == []
    a1, a2, a3 = index["train"]
    assert (a1.label, a2.label, a3.label) == (2.0, pytest.approx(-1.4), 0.0)
    assert (a1.text, a2.text, a3.text) == ("it was great", "not so good", None)
    assert a1.image.kind == "frames" and len(a1.image.paths) == 3 and a3.image is None
    assert index["valid"][0].text is None and index["valid"][0].image is not None


def test_root_with_only_transcripts(tmp_path):
    index = build_index(make_root(tmp_path, frames=False))
    assert all(s.image is None for s in index["train"] + index["valid"])
    assert index["train"][0].text == "it was great"


def test_root_with_only_frames(tmp_path):
    index = build_index(make_root(tmp_path, text=False))
    assert all(s.text is None for s in index["train"] + index["valid"])
    assert index["train"][1].image.kind == "frames"


def test_modalities_argument_restricts(tmp_path):
    root = make_root(tmp_path)
    text_only = build_index(root, modalities=["text"])
    assert all(s.image is None for s in text_only["train"]) and text_only["train"][0].text
    image_only = build_index(root, modalities=["image"])
    assert all(s.text is None for s in image_only["train"]) and image_only["train"][0].image
    with pytest.raises(ValueError, match=r"unknown modalities \['audio'\]"):
        build_index(root, modalities=["text", "audio"])
    with pytest.raises(ValueError, match="got the string 'text'"):
        build_index(root, modalities="text")


def test_root_without_any_requested_modality_is_a_layout_error(tmp_path):
    root = make_root(tmp_path, text=False, frames=False)
    with pytest.raises(ValueError, match=r"holds none of the requested modalities \['text'\]; looked for .*Transcript"):
        build_index(root, modalities=["text"])
    assert len(build_index(root, modalities=[])["train"]) == 3  # labels only, on request


# -- frames: PyAV clips, frame folders, cache ---------------------------------------------------------


def test_clip_decoding_middle_and_uniform(tmp_path):
    clip = tmp_path / "clip.mp4"
    write_clip(clip, flat_frames([0, 30, 60, 90, 120, 150, 180, 210, 240], CLIP_SIZE))
    middle = decode_clip_frames(clip, FrameSampling("middle", 1, (8, 10)))
    assert middle.shape == (1, 8, 10, 3) and middle.dtype == np.uint8
    assert abs(int(middle[0, 4, 5, 0]) - 120) <= 6  # frame 4 of 9 (lossy codec)
    uniform = decode_clip_frames(clip, FrameSampling("uniform", 3, (8, 10)))
    assert np.abs(uniform[:, 4, 5, 0].astype(int) - [30, 120, 210]).max() <= 6  # frames 1, 4, 7


def test_clip_index_decode_and_cache_hit(tmp_path):
    root = make_root(tmp_path / "root", frames=False)
    clip = root / "Video" / "Segmented" / "vidA_2.mp4"
    write_clip(clip, flat_frames([40, 80, 120, 160], CLIP_SIZE))
    sample = build_index(root)["train"][1]
    assert sample.image.kind == "video" and sample.image.paths == (clip,)
    sampling = FrameSampling("uniform", 2, (6, 6))
    cache = tmp_path / "cache"
    first = load_segment_image(sample.id, sample.image, sampling, cache)
    assert first.shape == (6, 6, 3) and abs(int(first[3, 3, 1]) - 120) <= 6  # mean of frames 1 and 3
    assert [p.name for p in cache.iterdir()] == ["vidA_2.uniform2.6x6.npy"]
    clip.unlink()  # a cache hit must not touch the clip
    np.testing.assert_array_equal(load_segment_image(sample.id, sample.image, sampling, cache), first)


def test_undecodable_clip_is_a_value_error(tmp_path):
    clip = tmp_path / "bad.mp4"
    clip.write_bytes(b"\x00\x00\x00\x18ftypmp42" + b"garbage" * 50)
    with pytest.raises(ValueError, match=r"bad\.mp4"):
        decode_clip_frames(clip, FrameSampling())


def test_frame_folder_uniform_average(tmp_path):
    sample = build_index(make_root(tmp_path))["train"][0]  # frames of value 10, 50, 90 at 12 x 16
    image = load_segment_image(sample.id, sample.image, FrameSampling("uniform", 3, (12, 16)))
    assert image.shape == (12, 16, 3) and (image == 50).all()
    assert (load_segment_image(sample.id, sample.image, FrameSampling("middle", 1, (6, 8))) == 50).all()


def test_frame_sampling_validation():
    with pytest.raises(ValueError, match="expected 'middle' or 'uniform'"):
        FrameSampling("first")
    with pytest.raises(ValueError, match="num_frames is 4, expected 1 for 'middle'"):
        FrameSampling("middle", 4)


# -- torch dataset and collator ----------------------------------------------------------------------


@pytest.fixture(scope="module")
def word_tokenizer():
    tokenizers = pytest.importorskip("tokenizers")
    vocab = {
        "[PAD]": 0,
        "[UNK]": 1,
        "[CLS]": 2,
        "[SEP]": 3,
        "it": 4,
        "was": 5,
        "great": 6,
        "not": 7,
        "so": 8,
        "good": 9,
    }
    tok = tokenizers.Tokenizer(tokenizers.models.WordLevel(vocab, unk_token="[UNK]"))
    tok.pre_tokenizer = tokenizers.pre_tokenizers.Whitespace()
    tok.post_processor = tokenizers.processors.TemplateProcessing(
        single="[CLS] $A [SEP]", special_tokens=[("[CLS]", 2), ("[SEP]", 3)]
    )
    return tok


def test_dataset_items_and_collated_batch(tmp_path, word_tokenizer):
    torch = pytest.importorskip("torch")
    from training.data.dataset import MosiCollator, MosiDataset

    index = build_index(make_root(tmp_path))
    ds = MosiDataset(index["train"], FrameSampling("middle", 1, (4, 4)), mean=(0.5, 0.5, 0.5), std=(0.25, 0.5, 1.0))
    item = ds[0]
    assert item["id"] == "vidA_1" and item["text"] == "it was great" and item["has_text"] and item["has_image"]
    assert item["image"].shape == (3, 4, 4) and item["image"].dtype == torch.float32
    expected = (50 / 255 - 0.5) / torch.tensor([0.25, 0.5, 1.0])  # middle frame has value 50
    torch.testing.assert_close(item["image"][:, 0, 0], expected)
    assert ds[2]["image"] is None and ds[2]["text"] is None and not ds[2]["has_image"]

    batch = MosiCollator(word_tokenizer, max_length=4)([ds[0], ds[1], ds[2]])
    assert batch["id"] == ["vidA_1", "vidA_2", "vidA_3"]
    assert batch["input_ids"].tolist() == [[2, 4, 5, 3], [2, 7, 8, 3], [2, 3, 0, 0]]  # truncated keeps [SEP]
    assert batch["attention_mask"].tolist() == [[1, 1, 1, 1], [1, 1, 1, 1], [1, 1, 0, 0]]
    assert batch["presence"].tolist() == [[True, True], [True, True], [False, False]]
    assert batch["image"].shape == (3, 3, 4, 4) and (batch["image"][2] == 0).all()
    torch.testing.assert_close(batch["label"], torch.tensor([2.0, -1.4, 0.0]))
    assert word_tokenizer.truncation is None  # the caller's tokenizer is left as it was
    # DataLoader workers may pickle the collator.
    again = pickle.loads(pickle.dumps(MosiCollator(word_tokenizer, max_length=4)))([ds[0], ds[1], ds[2]])
    assert again["input_ids"].tolist() == batch["input_ids"].tolist()


def test_collator_with_transformers_tokenizer_and_image_only_batches(tmp_path, word_tokenizer):
    pytest.importorskip("torch")
    transformers = pytest.importorskip("transformers")
    from training.data.dataset import MosiCollator, MosiDataset

    hf = transformers.PreTrainedTokenizerFast(tokenizer_object=word_tokenizer, pad_token="[PAD]")
    ds = MosiDataset(build_index(make_root(tmp_path), modalities=["text"])["train"], FrameSampling(size=(4, 4)))
    batch = MosiCollator(hf, max_length=6, image_size=(4, 4))([ds[0], ds[2]])
    assert batch["input_ids"].tolist() == [[2, 4, 5, 6, 3, 0], [2, 3, 0, 0, 0, 0]]
    assert batch["image"].shape == (2, 3, 4, 4) and not batch["presence"][:, 1].any()
    assert "image" not in MosiCollator(hf, max_length=6)([ds[0]])
    with pytest.raises(ValueError, match="batch has texts but the collator has no tokenizer"):
        MosiCollator(None)([ds[0]])
    with pytest.raises(TypeError, match="tokenizer must be a tokenizers.Tokenizer or a callable, got dict"):
        MosiCollator({"not": "a tokenizer"})
    with pytest.raises(ValueError, match=r"input_ids \(1, 2\) .* expected \(1, 6\)"):
        MosiCollator(lambda texts, **_: {"input_ids": [[1, 2]]}, max_length=6)([ds[0]])
