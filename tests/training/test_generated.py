"""training.data.generated: the seeded MOSI-like sample dataset, read back through the MOSI loader."""

import hashlib
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from training.data.generated import EXPRESSIONS, STYLES, combine_score, draw_face, generate
from training.data.mosi import build_index, read_opinion_labels
from training.metrics import mosi_metrics

SCALE = 0.1


@pytest.fixture(scope="module")
def small(tmp_path_factory):
    out = tmp_path_factory.mktemp("generated") / "mosi"
    return out, generate(out, seed=3, scale=SCALE, workers=1)


def tree_digest(root: Path) -> dict[str, str]:
    return {
        str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(root.rglob("*"))
        if p.is_file()
    }


def test_round_trip_through_the_mosi_loader(small):
    out, segments = small
    index = build_index(out)
    intended = {s.id: s for s in segments}
    expected_sizes = {"train": round(1284 * SCALE), "valid": round(229 * SCALE), "test": round(686 * SCALE)}
    assert {fold: len(samples) for fold, samples in index.items()} == expected_sizes
    for fold, samples in index.items():
        for sample in samples:
            seg = intended[sample.id]
            assert seg.fold == fold
            assert sample.label == np.float32(seg.score)
            assert sample.label == combine_score(seg.text_score, seg.expression)
            assert sample.text == seg.text
            assert sample.image.kind == "frames" and len(sample.image.paths) == 1
    image = np.asarray(Image.open(index["train"][0].image.paths[0]))
    assert image.shape == (64, 64, 3) and image.dtype == np.uint8
    manifest = json.loads((out / "generation.json").read_text())
    assert manifest["sizes"] == expected_sizes and len(manifest["segments"]) == len(segments)


def test_timestamped_words_give_the_same_transcripts(small):
    out, segments = small
    index = build_index(out, modalities=["text"], words_path=out / "CMU_MOSI_TimestampedWords.csd")
    texts = {s.id: s.text for samples in index.values() for s in samples}
    assert texts == {s.id: s.text for s in segments}


def test_scores_span_the_mosi_range_and_depend_on_both_factors(small):
    _, segments = small
    scores = np.array([s.score for s in segments])
    assert scores.min() >= -3.0 and scores.max() <= 3.0 and (scores < 0).any() and (scores > 0).any()
    assert {s.expression for s in segments} == set(EXPRESSIONS)
    assert combine_score(2.0, "sarcastic") == -2.0 and combine_score(1.0, "frown") == -0.5
    assert combine_score(3.0, "smile") == 3.0 and combine_score(0.0, "frown") == -1.5
    with pytest.raises(ValueError, match="expression is 'wink'"):
        combine_score(1.0, "wink")


def test_same_seed_same_bytes_different_seed_different_data(small, tmp_path):
    out, _ = small
    again = tmp_path / "again"
    generate(again, seed=3, scale=SCALE, workers=2)  # the process pool must not change a byte
    assert tree_digest(again) == tree_digest(out)
    other = tmp_path / "other"
    generate(other, seed=4, scale=SCALE, workers=1)
    assert read_opinion_labels(other / "CMU_MOSI_Opinion_Labels.csd") != read_opinion_labels(
        out / "CMU_MOSI_Opinion_Labels.csd"
    )
    assert tree_digest(other) != tree_digest(out)


def test_regenerating_replaces_the_whole_dataset_and_protects_other_dirs(tmp_path):
    out = tmp_path / "mosi"
    first = {s.id for s in generate(out, seed=1, scale=0.02, workers=1)}
    second = {s.id for s in generate(out, seed=2, scale=0.02, workers=1)}
    assert {p.name for p in (out / "Frames").iterdir()} == second != first  # no stale frames
    assert [p.name for p in tmp_path.iterdir()] == ["mosi"]  # no staging leftovers
    other = tmp_path / "other"
    other.mkdir()
    (other / "notes.txt").write_text("keep me")
    with pytest.raises(ValueError, match="not a generated dataset"):
        generate(other, scale=0.02, workers=1)
    assert (other / "notes.txt").read_text() == "keep me"


@pytest.mark.parametrize("style", STYLES)
def test_faces_vary_and_have_the_requested_size(style):
    rng = np.random.default_rng(0)
    faces = [draw_face(e, rng, size=48, style=style) for e in EXPRESSIONS]
    assert all(f.shape == (48, 48, 3) and f.dtype == np.uint8 for f in faces)
    assert len({f.tobytes() for f in faces}) == 4
    with pytest.raises(ValueError, match="style is 'noisy'"):
        draw_face("smile", rng, style="noisy")


def test_style_changes_the_pixels_not_the_scores(tmp_path):
    clean = generate(tmp_path / "clean", seed=1, scale=0.02, workers=1)  # the default style
    varied = generate(tmp_path / "varied", seed=1, scale=0.02, workers=1, style="varied")
    assert clean == varied  # same texts, expressions and scores
    assert json.loads((tmp_path / "varied" / "generation.json").read_text())["style"] == "varied"
    frame = f"Frames/{clean[0].id}/0000.png"
    assert (tmp_path / "clean" / frame).read_bytes() != (tmp_path / "varied" / frame).read_bytes()
    with pytest.raises(ValueError, match="style is"):
        generate(tmp_path / "bad", scale=0.02, style="noisy")


def test_cli(tmp_path):
    out = tmp_path / "cli"
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "training.data.generated",
            "--out",
            str(out),
            "--seed",
            "1",
            "--scale",
            "0.02",
            "--workers",
            "1",
        ],
        capture_output=True,
        text=True,
        check=True,
    )
    assert "wrote" in done.stdout
    assert len(build_index(out)["train"]) == round(1284 * 0.02)


# -- both modalities are needed ----------------------------------------------------------------------

NEGATORS = {"not", "never"}


def text_features(texts: list[str], vocab: dict[str, int]) -> np.ndarray:
    """Bag of words with the classic negation marking (words after "not" become NOT_word)."""
    features = np.zeros((len(texts), len(vocab)))
    for row, text in enumerate(texts):
        negated = False
        for word in text.split():
            token = f"NOT_{word}" if negated else word
            negated = negated or word in NEGATORS
            if token in vocab:
                features[row, vocab[token]] = 1.0
    return features


def image_features(paths: list[Path], window: int = 44, side: int = 22) -> np.ndarray:
    """Grey pixels of a window centred on the face (non-background pixels' centroid), downsampled."""
    rows = []
    for path in paths:
        rgb = np.asarray(Image.open(path).convert("RGB"), dtype=np.float64)
        border = np.concatenate([rgb[0], rgb[-1], rgb[:, 0], rgb[:, -1]])
        ys, xs = np.nonzero(np.linalg.norm(rgb - np.median(border, axis=0), axis=2) > 40)
        cy, cx = (int(ys.mean()), int(xs.mean())) if len(ys) else (rgb.shape[0] // 2, rgb.shape[1] // 2)
        grey = np.pad(rgb.mean(axis=2), window, mode="edge")
        crop = grey[cy + window // 2 : cy + window // 2 + window, cx + window // 2 : cx + window // 2 + window]
        small = np.asarray(
            Image.fromarray(crop.astype(np.uint8)).resize((side, side), Image.Resampling.BOX), dtype=np.float64
        )
        rows.append(((small - small.mean()) / (small.std() + 1e-6)).ravel())
    return np.array(rows)


def ridge(
    train_x: np.ndarray, train_y: np.ndarray, test_x: np.ndarray, lam: float = 100.0
) -> tuple[np.ndarray, np.ndarray]:
    """Ridge regression on standardised features: (train predictions, test predictions)."""
    mean, std = train_x.mean(0), train_x.std(0) + 1e-6
    x = np.c_[(train_x - mean) / std, np.ones(len(train_x))]
    xt = np.c_[(test_x - mean) / std, np.ones(len(test_x))]
    weights = np.linalg.solve(x.T @ x + lam * np.eye(x.shape[1]), x.T @ train_y)
    return x @ weights, xt @ weights


def test_both_modalities_are_needed(tmp_path):
    out = tmp_path / "mosi"
    generate(out, seed=0, scale=0.5)
    index = build_index(out)
    train, test = index["train"], index["test"]
    words = sorted({w for s in train for w in s.text.split()})
    vocab = {t: i for i, t in enumerate(words + [f"NOT_{w}" for w in words])}
    text = text_features([s.text for s in train], vocab), text_features([s.text for s in test], vocab)
    image = image_features([s.image.paths[0] for s in train]), image_features([s.image.paths[0] for s in test])
    y_train, y_test = np.array([s.label for s in train]), np.array([s.label for s in test])

    def has0(pred: np.ndarray) -> float:
        return mosi_metrics(pred, y_test)["Has0_acc_2"]

    text_train, text_test = ridge(text[0], y_train, text[1])
    _, image_test = ridge(image[0], y_train, image[1])
    # Fused: both feature sets plus their interaction (the face re-weighting what the words say),
    # which is what sarcasm needs; a sum of the two modalities cannot flip the words' sign.
    _, fused_test = ridge(
        np.c_[text[0], image[0], text_train[:, None] * image[0]],
        y_train,
        np.c_[text[1], image[1], text_test[:, None] * image[1]],
    )
    accuracy = {"text": has0(text_test), "image": has0(image_test), "both": has0(fused_test)}
    assert accuracy["text"] > 0.55 and accuracy["image"] > 0.55, accuracy  # each modality is informative
    assert accuracy["both"] >= max(accuracy["text"], accuracy["image"]) + 0.1, accuracy
