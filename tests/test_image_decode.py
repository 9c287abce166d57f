"""Every image kind decodes to the 8-bit RGB a person would see: references are built in numpy."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from fusionrt.image_decode import load_image

WHITE = 255.0


@pytest.fixture(params=["array", "pil", "png file"])
def via(request, tmp_path):
    """Hands an image to load_image as a numpy array, a PIL image or a PNG file (where each applies)."""
    def hand(array: np.ndarray, mode: str | None = None):
        if request.param == "array":
            return array
        pil = Image.fromarray(array, mode) if mode else Image.fromarray(array)
        if request.param == "pil":
            return pil
        path = tmp_path / "image.png"
        pil.save(path)
        return path
    return hand


@pytest.mark.parametrize("shape", [(5, 7), (1, 9), (9, 1)])
def test_sixteen_bit_grayscale_is_scaled_not_clipped(rng, via, shape):
    array = rng.integers(0, 65536, shape, dtype=np.uint16)
    array.flat[0], array.flat[-1] = 65535, 0
    expected = np.rint(array / 257.0).astype(np.uint8)
    got = np.asarray(load_image(via(array)))
    assert got.shape == (*shape, 3)
    for channel in range(3):
        np.testing.assert_array_equal(got[..., channel], expected)


def test_grayscale_becomes_three_equal_channels(rng, via):
    array = rng.integers(0, 256, (6, 4), dtype=np.uint8)
    got = np.asarray(load_image(via(array)))
    np.testing.assert_array_equal(got, np.repeat(array[..., None], 3, axis=2))


def _composited(rgba: np.ndarray) -> np.ndarray:
    alpha = rgba[..., 3:].astype(np.float64) / 255.0
    return rgba[..., :3] * alpha + WHITE * (1 - alpha)


def test_transparency_is_composited_over_white(rng, via):
    rgba = rng.integers(0, 256, (8, 5, 4), dtype=np.uint8)
    rgba[0, 0, 3], rgba[0, 1, 3] = 0, 255
    got = np.asarray(load_image(via(rgba)), dtype=np.float64)
    np.testing.assert_allclose(got, _composited(rgba), atol=1.0)  # PIL rounds in 8-bit integer math
    np.testing.assert_array_equal(got[0, 0], [255, 255, 255])


def test_gray_with_alpha_is_composited_over_white(rng):
    gray = rng.integers(0, 256, (4, 6), dtype=np.uint8)
    alpha = rng.integers(0, 256, (4, 6), dtype=np.uint8)
    image = Image.merge("LA", [Image.fromarray(gray), Image.fromarray(alpha)])
    rgba = np.stack([gray, gray, gray, alpha], axis=2)
    np.testing.assert_allclose(np.asarray(load_image(image), dtype=np.float64), _composited(rgba), atol=1.0)


def test_palette_images_show_their_palette_colours(rng, tmp_path):
    palette = rng.integers(0, 256, (256, 3), dtype=np.uint8)
    indices = rng.integers(0, 256, (7, 3), dtype=np.uint8)
    image = Image.fromarray(indices, "L").convert("P")
    image.putpalette(palette.ravel().tolist())
    image.save(tmp_path / "palette.png")
    for source in (image, tmp_path / "palette.png"):
        np.testing.assert_array_equal(np.asarray(load_image(source)), palette[indices])


def test_a_transparent_palette_entry_shows_white(rng, tmp_path):
    palette = rng.integers(0, 256, (256, 3), dtype=np.uint8)
    indices = rng.integers(0, 4, (5, 5), dtype=np.uint8)
    indices[0, 0] = 3
    image = Image.fromarray(indices, "L").convert("P")
    image.putpalette(palette.ravel().tolist())
    image.info["transparency"] = 3
    image.save(tmp_path / "transparent.png", transparency=3)
    expected = palette[indices].astype(np.float64)
    expected[indices == 3] = WHITE
    np.testing.assert_array_equal(np.asarray(load_image(tmp_path / "transparent.png")), expected)


# EXIF orientation tag values and the numpy view of the stored pixels a viewer shows.
ORIENTATIONS = {
    2: lambda a: a[:, ::-1],
    3: lambda a: a[::-1, ::-1],
    4: lambda a: a[::-1],
    5: lambda a: np.swapaxes(a, 0, 1),
    6: lambda a: np.rot90(a, -1),
    7: lambda a: np.swapaxes(a, 0, 1)[::-1, ::-1],
    8: lambda a: np.rot90(a, 1),
}


@pytest.mark.parametrize("orientation", sorted(ORIENTATIONS))
def test_exif_orientation_is_applied(rng, tmp_path, orientation):
    stored = rng.integers(0, 256, (4, 6, 3), dtype=np.uint8)
    exif = Image.Exif()
    exif[0x0112] = orientation
    Image.fromarray(stored).save(tmp_path / "photo.png", exif=exif)
    np.testing.assert_array_equal(np.asarray(load_image(tmp_path / "photo.png")), ORIENTATIONS[orientation](stored))


@pytest.mark.parametrize("view", ["reversed rows", "reversed columns", "every other row"])
def test_strided_arrays_decode_as_their_values(rng, view):
    base = rng.integers(0, 256, (8, 6, 3), dtype=np.uint8)
    array = {"reversed rows": base[::-1], "reversed columns": base[:, ::-1], "every other row": base[::2]}[view]
    np.testing.assert_array_equal(np.asarray(load_image(array)), array)


@pytest.mark.parametrize("shape", [(0, 5, 3), (5, 0, 3), (0, 0)])
def test_empty_arrays_are_rejected(shape):
    with pytest.raises(ValueError, match="has no pixels"):
        load_image(np.zeros(shape, np.uint8))


@pytest.mark.parametrize("content", [b"", b"not an image at all", b"\x89PNG\r\n\x1a\n" + b"\0" * 10])
def test_files_that_are_not_images_are_rejected_by_name(tmp_path, content):
    path = tmp_path / "upload.png"
    path.write_bytes(content)
    with pytest.raises(ValueError, match="upload.png' cannot be decoded as an image"):
        load_image(path)


def test_a_missing_file_stays_a_file_not_found_error(tmp_path):
    with pytest.raises(FileNotFoundError):
        load_image(tmp_path / "nowhere.png")


def test_float_images_are_read_as_zero_to_one(rng):
    values = rng.random((3, 4), dtype=np.float32)
    got = np.asarray(load_image(Image.fromarray(values, "F")))
    np.testing.assert_array_equal(got[..., 0], np.floor(values * 255.0 + 0.5).astype(np.uint8))
