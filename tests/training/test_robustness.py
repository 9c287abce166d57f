"""Robustness conditions (training.robustness): corruptions against independent references, seeded and
exact at level 0, on the real generated test fold."""

from __future__ import annotations

import copy
import math
from pathlib import Path

import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader

from training import robustness as rb
from training.data.dataset import MosiCollator
from training.experiment import ExperimentConfig
from training.export.graph_io import batch_feeds
from training.loaders import dataset_root, fold_loader, load_tokenizer, resolve_tokenizer
from training.models import get_config

from conftest import TINY  # noqa: E402  (tests/training is on sys.path)
from session_seed import SESSION_SEED  # noqa: E402

scipy_ndimage = pytest.importorskip("scipy.ndimage")


def rng(*extra: int) -> np.random.Generator:
    return np.random.default_rng([SESSION_SEED, *extra])


@pytest.mark.parametrize("shape", [(3, 32, 32), (3, 17, 40), (3, 64, 64)])
@pytest.mark.parametrize("sigma", [0.6, 1.0, 2.0, 4.0])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_blur_matches_scipy_gaussian_filter(shape: tuple[int, ...], sigma: float, dtype: type) -> None:
    pixels = rng(len(shape), int(sigma * 10)).random(shape).astype(dtype)
    radius = min(math.ceil(3 * sigma), min(shape[1:]) - 1)
    # scipy's "mirror" is torchvision's "reflect" padding; the same radius, per channel (sigma 0 on axis 0).
    expected = scipy_ndimage.gaussian_filter(pixels.astype(np.float64), sigma=(0, sigma, sigma), mode="mirror",
                                             truncate=radius / sigma)
    np.testing.assert_allclose(rb.blur(pixels, sigma), expected, atol=2e-6)
    from torchvision.transforms.functional import gaussian_blur

    theirs = gaussian_blur(torch.from_numpy(pixels.astype(np.float32)), [2 * radius + 1] * 2, [sigma, sigma])
    np.testing.assert_allclose(rb.blur(pixels, sigma), theirs.numpy(), atol=2e-6)


def test_blur_and_noise_level_zero_is_the_input() -> None:
    pixels = rng(1).random((3, 8, 8))
    assert rb.blur(pixels, 0.0) is pixels
    assert rb.add_noise(pixels, 0.0, rng(2)) is pixels


@pytest.mark.parametrize("std", [0.02, 0.05, 0.1])
def test_noise_has_the_asked_std_and_stays_in_range(std: float) -> None:
    pixels = np.full((3, 64, 64), 0.5) + rng(3).uniform(-0.05, 0.05, (3, 64, 64))  # far from the clip bounds
    noisy = rb.add_noise(pixels, std, rng(4))
    residual = noisy - pixels
    assert abs(residual.std() / std - 1) < 0.05 and abs(residual.mean()) < 3 * std / math.sqrt(residual.size)
    clipped = rb.add_noise(rng(5).random((3, 16, 16)), 0.4, rng(6))
    assert clipped.min() >= 0.0 and clipped.max() <= 1.0 and (clipped == 0).any() and (clipped == 1).any()


@pytest.mark.parametrize("p", [0.0, 0.25, 0.5, 0.75, 1.0])
def test_word_dropout_keeps_an_ordered_subset_at_the_asked_rate(p: float) -> None:
    words = [f"w{i}" for i in range(4000)]
    out = rb.drop_words("  ".join(words), p, rng(7)).split()
    position = {w: i for i, w in enumerate(words)}
    assert [position[w] for w in out] == sorted(position[w] for w in out)  # in order, no repeats
    assert abs(len(out) / len(words) - (1 - p)) < 0.03
    assert (out == words) == (p == 0.0)


def test_draws_are_seeded_per_sample_condition_and_seed() -> None:
    noise = rb.Condition(rb.NOISE, 0.2)
    a = rb.rng_for(0, noise, "vid_1[3]").normal(size=8)
    np.testing.assert_array_equal(a, rb.rng_for(0, noise, "vid_1[3]").normal(size=8))
    for other in (rb.rng_for(1, noise, "vid_1[3]"), rb.rng_for(0, noise, "vid_1[4]"),
                  rb.rng_for(0, rb.Condition(rb.NOISE, 0.4), "vid_1[3]"), rb.rng_for(0, rb.Condition(rb.BLUR, 0.2), "vid_1[3]")):
        assert not np.array_equal(a, other.normal(size=8))


def test_conditions_and_bad_settings() -> None:
    labels = [c.label for c in rb.conditions(rb.RobustnessSettings())]
    assert labels[:3] == ["both", "text only", "image only"] and len(labels) == 12
    assert "image noise 0.1" in labels and "image blur 4" in labels and "word dropout 0.75" in labels
    assert rb.applies(rb.Condition(rb.IMAGE_ONLY), ["text"]) == "the model has no image input"
    assert rb.applies(rb.Condition(rb.NOISE, 0.1), ["text"]) is None  # scored: the text is still there
    with pytest.raises(ValueError, match="word_dropout"):
        rb.RobustnessSettings(word_dropout=[1.5])
    with pytest.raises(ValueError, match="robustness.noise level"):
        rb.RobustnessSettings(noise=[-0.1])
    with pytest.raises(TypeError, match="robustness.blur"):
        rb.RobustnessSettings(blur=["big"])


@pytest.fixture(scope="module")
def test_fold(trainer_cache: Path) -> tuple:
    """The generated test fold's loader, with the tiny experiment's tokenizer, and its data section."""
    config = copy.deepcopy(TINY)
    config["data"]["cache_dir"] = str(trainer_cache)
    data = ExperimentConfig.from_dict(config).data
    tokenizer = load_tokenizer(resolve_tokenizer(data, get_config("late").text))
    return fold_loader(data, "test", tokenizer, dataset_root(data), shuffle=False, seed=0), data


def _batches(loader, condition: rb.Condition, seed: int = 0) -> list[dict]:
    return list(rb.condition_batches(loader, condition, seed))


def test_level_zero_is_the_clean_fold_exactly(test_fold: tuple) -> None:
    loader, _ = test_fold
    clean = list(loader)
    for condition in (rb.Condition(rb.NOISE, 0.0), rb.Condition(rb.BLUR, 0.0), rb.Condition(rb.WORD_DROPOUT, 0.0),
                      rb.Condition(rb.CLEAN)):
        for ours, theirs in zip(_batches(loader, condition), clean, strict=True):
            assert set(ours) == set(theirs)
            for key in ("input_ids", "attention_mask", "image", "presence"):
                assert torch.equal(ours[key], theirs[key]), (condition, key)


def test_corruptions_change_only_their_modality_and_repeat(test_fold: tuple) -> None:
    loader, _ = test_fold
    clean = next(iter(loader))
    image_mean, image_std = loader.dataset.dataset.mean, loader.dataset.dataset.std
    for kind, level, changed in ((rb.NOISE, 0.2, "image"), (rb.BLUR, 2.0, "image"), (rb.WORD_DROPOUT, 0.5, "input_ids")):
        condition = rb.Condition(kind, level)
        first, again = (next(iter(rb.condition_batches(loader, condition, seed=3))) for _ in range(2))
        for key in ("input_ids", "image"):
            assert torch.equal(first[key], again[key])  # seeded: the same corrupted fold every time
            assert torch.equal(first[key], clean[key]) == (key != changed), (kind, key)
        raw = (first["image"] * image_std + image_mean).numpy()
        # Re-quantised to 8 bits in [0, 1], as an image file would be.
        assert raw.min() >= -1e-6 and raw.max() <= 1 + 1e-6
        np.testing.assert_allclose(raw * 255, np.round(raw * 255), atol=1e-3)
    noisy = [next(iter(rb.condition_batches(loader, rb.Condition(rb.NOISE, 0.2), seed=s)))["image"] for s in (3, 4)]
    assert not torch.equal(*noisy)  # the study's robustness seed picks the draws


def test_blur_of_the_fold_matches_scipy_on_the_raw_pixels(test_fold: tuple) -> None:
    loader, _ = test_fold
    dataset = loader.dataset.dataset
    clean = next(iter(loader))["image"][:4]
    blurred = next(iter(rb.condition_batches(loader, rb.Condition(rb.BLUR, 1.5), seed=0)))["image"][:4]
    raw = np.round(((clean * dataset.std + dataset.mean).numpy().astype(np.float64)) * 255) / 255
    expected = scipy_ndimage.gaussian_filter(raw, sigma=(0, 0, 1.5, 1.5), mode="mirror", truncate=5 / 1.5)
    expected = (torch.from_numpy((np.round(np.clip(expected, 0, 1) * 255) / 255).astype(np.float32)) - dataset.mean) \
        / dataset.std
    # Both round to 8 bits: a value within 1e-6 of a rounding boundary may land one level apart.
    diff = (blurred - expected).abs() * dataset.std * 255
    assert (diff < 1e-3).float().mean() > 0.999 and diff.max() < 1.01


def test_a_missing_modality_becomes_the_bundles_absent_feeds(test_fold: tuple) -> None:
    loader, data = test_fold
    for condition, gone in ((rb.Condition(rb.TEXT_ONLY), 1), (rb.Condition(rb.IMAGE_ONLY), 0)):
        batch = _batches(loader, condition)[0]
        clean = batch_feeds(next(iter(loader)), data.text_max_length, data.image_size)
        feeds = batch_feeds(batch, data.text_max_length, data.image_size)
        assert not feeds["presence"][:, gone].any() and feeds["presence"][:, 1 - gone].all()
        if gone == 1:
            assert not feeds["image"].any()
            np.testing.assert_array_equal(feeds["input_ids"], clean["input_ids"])
        else:
            assert not feeds["input_ids"].any() and feeds["attention_mask"].all()
            np.testing.assert_array_equal(feeds["image"], clean["image"])


def test_word_dropout_is_applied_before_tokenisation(test_fold: tuple) -> None:
    loader, data = test_fold
    dataset = loader.dataset
    condition = rb.Condition(rb.WORD_DROPOUT, 0.5)
    fold = rb.CorruptedFold(dataset, condition, seed=0)
    item = fold[0]
    expected = rb.drop_words(dataset[0]["text"], 0.5, rb.rng_for(0, condition, dataset[0]["id"]))
    assert item["text"] == expected and item["text"] != dataset[0]["text"]
    collate = MosiCollator(loader.collate_fn.tokenizer, max_length=data.text_max_length)
    batch = next(iter(rb.condition_batches(loader, condition, seed=0)))
    assert torch.equal(batch["input_ids"][0], collate([item])["input_ids"][0])


def test_one_test_fold_serves_every_condition_as_the_loader_would(test_fold: tuple) -> None:
    loader, _ = test_fold
    fold = rb.TestFold(loader)
    assert len(fold.items) == len(loader.dataset)
    for condition in (rb.Condition(rb.CLEAN), rb.Condition(rb.NOISE, 0.2), rb.Condition(rb.IMAGE_ONLY)):
        batches = list(fold.batches(condition, seed=1))
        reference = [{k: v for k, v in b.items() if k not in rb.KINDS[condition.kind].absent}
                     for b in DataLoader(rb.CorruptedFold(loader.dataset, condition, 1), batch_size=loader.batch_size,
                                         collate_fn=loader.collate_fn)]
        assert len(batches) == len(reference)
        for ours, theirs in zip(batches, reference, strict=True):
            assert set(ours) == set(theirs)
            assert all(torch.equal(ours[k], theirs[k]) for k in ours if isinstance(ours[k], torch.Tensor))


def test_a_test_fold_subset_is_its_first_samples(test_fold: tuple) -> None:
    loader, _ = test_fold
    fold = rb.TestFold(loader, samples=5, batch_size=2)
    batches = list(fold.batches(rb.Condition(rb.CLEAN), seed=0))
    assert [len(b["id"]) for b in batches] == [2, 2, 1]
    assert [i for b in batches for i in b["id"]] == [loader.dataset[i]["id"] for i in range(5)]
    with pytest.raises(ValueError, match="robustness.samples"):
        rb.RobustnessSettings(samples=0)
