"""The fused image pre-processing op (``_C.preprocess_image``: resize + uint8 HWC -> float + mean/std +
layout, csrc/kernels/*/image_preprocess.*) against independent references: torchvision's float
``resize(antialias=True)`` (no rounding, so tight), and the training transforms on PIL images
(torchvision ``Resize`` + ``ToTensor`` + ``Normalize``, timm's eval transform as a bundle records it)
within 1/255, on real photos and random images of odd, thin, upscaled and huge sizes."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

import fusionrt
from fusionrt import _C
from fusionrt.bundle import ImageSpec
from fusionrt.preprocessing import _preprocess_with_pil, preprocess_images

torch = pytest.importorskip("torch")
F = pytest.importorskip("torchvision.transforms.functional")
transforms = pytest.importorskip("torchvision.transforms")
Image = pytest.importorskip("PIL.Image")

#: How far (in 8-bit levels) the fused op may be from float references: float32 arithmetic only.
LEVEL_FRACTION = 1e-2
#: How far from PIL's resize (8-bit rounding after each pass), in [0, 1] units.
ONE_LEVEL = (1 + LEVEL_FRACTION) / 255
IMAGENET = dict(mean=[0.485, 0.456, 0.406], std=[0.229, 0.224, 0.225])
# (source height, width) -> (output height, width): downscale, upscale, mixed, odd, one pixel wide or
# high, identity, a 640x480 camera frame and a huge photo.
SIZES = [
    ((37, 53), (24, 40)), ((10, 9), (24, 40)), ((480, 640), (224, 224)), ((1, 97), (7, 13)), ((61, 1), (5, 3)),
    ((1, 1), (4, 4)), ((33, 33), (33, 33)), ((300, 17), (224, 224)), ((224, 224), (1, 1)),
    pytest.param((3000, 4000), (224, 224), id="huge"),
]


def torchvision_float(image: np.ndarray, size: tuple[int, int], mean, std) -> np.ndarray:
    """(3, h, w): torchvision's antialiased bilinear resize of the image as float (no 8-bit rounding)."""
    chw = torch.from_numpy(np.ascontiguousarray(image[..., :3])).permute(2, 0, 1).to(torch.float64)
    resized = F.resize(chw[None], list(size), interpolation=F.InterpolationMode.BILINEAR, antialias=True)[0]
    normalised = (resized / 255.0 - torch.tensor(mean, dtype=torch.float64)[:, None, None]) / torch.tensor(
        std, dtype=torch.float64)[:, None, None]
    return normalised.numpy()


def fused(image: np.ndarray, size: tuple[int, int], mean, std, layout: str = "NCHW", order: str = "RGB") -> np.ndarray:
    shape = (3, *size) if layout == "NCHW" else (*size, 3)
    out = np.full(shape, np.nan, np.float32)  # every element must be written
    assert _C.preprocess_image(image, out, mean, std, layout, order) is out
    return out


def random_norm(rng: np.random.Generator) -> dict:
    return dict(mean=rng.uniform(0.2, 0.8, 3).tolist(), std=rng.uniform(0.1, 0.5, 3).tolist())


@pytest.mark.parametrize(("source", "size"), SIZES)
def test_matches_torchvision_antialiased_resize(rng, source, size):
    image = rng.integers(0, 256, (*source, 3), dtype=np.uint8)
    norm = random_norm(rng)
    expected = torchvision_float(image, size, **norm)
    # float32 pixel centres, taps and sums (torchvision: float64 here): at most 1/100 of a level.
    tolerance = LEVEL_FRACTION / 255 / min(norm["std"])
    np.testing.assert_allclose(fused(image, size, **norm), expected, rtol=0, atol=tolerance)


@pytest.mark.parametrize("layout", ["NCHW", "NHWC"])
@pytest.mark.parametrize("order", ["RGB", "BGR"])
def test_layouts_and_channel_orders(rng, layout, order):
    image = rng.integers(0, 256, (29, 41, 3), dtype=np.uint8)
    norm = random_norm(rng)
    got = fused(image, (11, 16), layout=layout, order=order, **norm)
    source = image[..., ::-1] if order == "BGR" else image
    expected = torchvision_float(source, (11, 16), **norm)
    if layout == "NHWC":
        expected = expected.transpose(1, 2, 0)
    np.testing.assert_allclose(got, expected, rtol=0, atol=LEVEL_FRACTION / 255 / min(norm["std"]))


def test_strided_sources_read_as_their_pixels(rng):
    """Crops (padded rows), RGBA / BGRX pixels (the 4th byte ignored) and one-row views of a frame."""
    frame = rng.integers(0, 256, (120, 160, 4), dtype=np.uint8)
    for view in (frame[10:90, 20:150, :3], frame[..., :3], frame[5:6, :, :3], frame[:, 7:8, :3], frame[::2, ::3, :3]):
        assert not view.flags.c_contiguous
        expected = torchvision_float(view, (17, 23), **IMAGENET)
        np.testing.assert_allclose(fused(view, (17, 23), **IMAGENET), expected, rtol=0, atol=LEVEL_FRACTION / 255 / 0.224)
    np.testing.assert_allclose(fused(frame, (17, 23), **IMAGENET), fused(np.ascontiguousarray(frame[..., :3]), (17, 23),
                               **IMAGENET), rtol=0, atol=0)


def photos() -> list[Path]:
    matplotlib = pytest.importorskip("matplotlib")
    folder = Path(matplotlib.get_data_path()) / "sample_data"
    found = [folder / name for name in ("grace_hopper.jpg", "Minduka_Present_Blue_Pack.png", "logo2.png")]
    found = [path for path in found if path.exists()]
    if not found:
        pytest.skip(f"no sample photos under {folder}")
    return found


@pytest.mark.parametrize("size", [(224, 224), (160, 96), (517, 611)])
def test_photos_match_the_torchvision_training_transform_within_one_level(size):
    for path in photos():
        rgb = fusionrt.image_decode.load_image(path)
        reference = transforms.Compose([
            transforms.Resize(size, interpolation=transforms.InterpolationMode.BILINEAR, antialias=True),
            transforms.ToTensor(), transforms.Normalize(**IMAGENET),
        ])
        expected = reference(rgb).numpy()
        got, _ = preprocess_images([path], ImageSpec(size=list(size), **IMAGENET))
        # PIL rounds to 8 bits after each pass (half a level each), the fused op never: one level apart at
        # most, plus the float32 arithmetic's share.
        scale = np.asarray(IMAGENET["std"])[:, None, None]
        assert np.abs((got[0] - expected) * scale).max() <= ONE_LEVEL, path.name


def test_photos_match_timm_eval_transform_as_bundles_record_it():
    timm_data = pytest.importorskip("timm.data")
    for path in photos():
        # A bundle records the size, mean and std timm resolves for the backbone and resizes straight
        # to that size: timm's eval transform with crop_pct 1 and crop_mode "squash".
        config = dict(input_size=(3, 224, 224), interpolation="bilinear", mean=(0.5, 0.5, 0.5), std=(0.5, 0.5, 0.5),
                      crop_pct=1.0, crop_mode="squash")
        transform = timm_data.create_transform(**config, is_training=False)
        rgb = fusionrt.image_decode.load_image(path)
        expected = transform(rgb).numpy()
        got, _ = preprocess_images([path], ImageSpec(size=[224, 224], mean=[0.5] * 3, std=[0.5] * 3))
        assert np.abs((got[0] - expected) * 0.5).max() <= ONE_LEVEL, path.name


@pytest.mark.parametrize("layout", ["NCHW", "NHWC"])
def test_preprocess_images_writes_each_slot_and_keeps_absent_ones_zero(rng, layout):
    spec = ImageSpec(size=[20, 28], layout=layout, channel_order="BGR", **random_norm(rng))
    images = [rng.integers(0, 256, (h, w, 3), dtype=np.uint8) for h, w in ((31, 47), (20, 28))]
    images.insert(1, None)
    images.append(Image.fromarray(images[0]))  # a PIL image goes through load_image
    got, present = preprocess_images(images, spec)
    assert got.dtype == np.float32 and got.flags.c_contiguous and present.tolist() == [True, False, True, True]
    assert got.shape == ((4, 3, 20, 28) if layout == "NCHW" else (4, 20, 28, 3))
    assert not got[1].any()
    old, _ = _preprocess_with_pil(images, spec)
    assert np.abs((got - old) * np.asarray(spec.std)[:, None, None].reshape((3, 1, 1) if layout == "NCHW" else 3)
                  ).max() <= ONE_LEVEL
    np.testing.assert_array_equal(got[3], got[0])


def test_bad_arguments_say_what_was_expected():
    image, out = np.zeros((8, 8, 3), np.uint8), np.zeros((3, 4, 4), np.float32)
    norm = dict(mean=[0.5] * 3, std=[0.5] * 3)
    cases = [
        (TypeError, "image must be uint8", dict(image=image.astype(np.float32))),
        (ValueError, r"image has 2 channels, expected 3 \(RGB\) or 4", dict(image=np.zeros((8, 8, 2), np.uint8))),
        (ValueError, r"image has 2 dims", dict(image=np.zeros((8, 8), np.uint8))),
        (ValueError, r"image has shape \(0, 8, 3\): it has no pixels", dict(image=np.zeros((0, 8, 3), np.uint8))),
            (ValueError, "source width is 70000, expected 1 to 65536",
             dict(image=np.zeros((1, 70000, 3), np.uint8))),
        (ValueError, "expected non-negative rows", dict(image=image[::-1])),
        (ValueError, "channel stride", dict(image=np.zeros((8, 8, 6), np.uint8)[..., ::2])),
        (TypeError, "out is float64, expected float32", dict(out=out.astype(np.float64))),
        (ValueError, r"out has shape \(4, 4, 3\), expected \(3, height, width\)", dict(out=np.zeros((4, 4, 3), np.float32))),
        (ValueError, "out has strides", dict(out=np.zeros((3, 4, 8), np.float32)[..., ::2])),
        (ValueError, "out is read-only", dict(out=np.zeros((3, 4, 4), np.float32).view())),
        (ValueError, r"std\[1\] is 0.000000, expected finite and non-zero", dict(std=[0.5, 0.0, 0.5])),
        (ValueError, r"mean\[2\] is not finite", dict(mean=[0.5, 0.5, float("nan")])),
        (ValueError, r"mean has 2 values, expected 3", dict(mean=[0.5, 0.5])),
        (ValueError, "layout is 'CHW', expected 'NCHW' or 'NHWC'", dict(layout="CHW")),
        (ValueError, "channel_order is 'RGBA'", dict(channel_order="RGBA")),
        (TypeError, "image is a list, expected a numpy array", dict(image=[[1, 2, 3]])),
    ]
    for error, message, change in cases:
        args = {"image": image, "out": out, **norm, **change}
        if message == "out is read-only":
            args["out"].flags.writeable = False
        with pytest.raises(error, match=message):
            _C.preprocess_image(**args)


@pytest.mark.skipif(not fusionrt.cuda_available(), reason="needs a CUDA device")
@pytest.mark.parametrize(("source", "size"), SIZES)
def test_cuda_kernel_matches_the_cpu_kernel(rng, source, size):
    if not torch.cuda.is_available():
        pytest.skip("needs torch with CUDA to hand device arrays over")
    image = rng.integers(0, 256, (*source, 4), dtype=np.uint8)
    norm = random_norm(rng)
    device_image = torch.from_numpy(image).cuda()[..., :3]  # a BGRX-style pixel stride on the device
    out = torch.full((3, *size), float("nan"), device="cuda")
    stream = torch.cuda.current_stream()
    _C.preprocess_image(device_image, out, norm["mean"], norm["std"], stream=stream.cuda_stream)
    stream.synchronize()
    np.testing.assert_allclose(out.cpu().numpy(), fused(np.ascontiguousarray(image[..., :3]), size, **norm),
                               rtol=0, atol=1e-3 / 255 / min(norm["std"]))
