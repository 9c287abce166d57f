"""fusionrt.video: the frame sampling rule training and serving share, on clips made with PyAV here."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest

from fusionrt.video import FrameSampling, average_frames, clip_image, decode_clip_frames

av = pytest.importorskip("av", reason="PyAV is the [video] extra")
from clips import flat_frames, write_clip  # noqa: E402


def reference_frames(path: Path, size: tuple[int, int]) -> list[np.ndarray]:
    """Every frame of the clip, decoded and resized independently of fusionrt.video."""
    with av.open(str(path)) as container:
        return [f.to_ndarray(format="rgb24", width=size[1], height=size[0], interpolation="AREA")
                for f in container.decode(video=0)]


@pytest.mark.parametrize("total", [1, 5, 12])
@pytest.mark.parametrize("mode,num", [("middle", 1), ("uniform", 3), ("uniform", 7)])
def test_sampled_frames_are_the_rules_frames(tmp_path, rng, total, mode, num):
    values = [int(v) for v in rng.integers(16, 240, total)]
    path = tmp_path / "clip.mp4"
    write_clip(path, flat_frames(values, (24, 32)))
    sampling = FrameSampling(mode, num, (12, 20))
    frames = decode_clip_frames(path, sampling)
    all_frames = reference_frames(path, sampling.size)
    expected = np.stack([all_frames[i] for i in sampling.indices(total)])
    np.testing.assert_array_equal(frames, expected)
    # The centre of the i-th of num equal slices: the grey values written there, within codec error.
    wanted = [values[min(total - 1, int((i + 0.5) * total / num))] for i in range(num)]
    np.testing.assert_allclose(frames.reshape(num, -1).mean(axis=1), wanted, atol=4)
    image = clip_image(path, sampling)
    assert image.shape == (12, 20, 3) and image.dtype == np.uint8
    np.testing.assert_array_equal(image, np.rint(expected.astype(np.float64).mean(axis=0)).astype(np.uint8))


def test_training_uses_the_same_rule():
    from training.data import frames

    assert frames.FrameSampling is FrameSampling and frames.decode_clip_frames is decode_clip_frames


@pytest.mark.parametrize("count", [1, 2, 5])
def test_average_is_the_rounded_pixel_mean(rng, count):
    frames = rng.integers(0, 256, (count, 4, 5, 3), dtype=np.uint8)
    expected = np.rint(frames.astype(np.float64).mean(axis=0)).astype(np.uint8)
    np.testing.assert_array_equal(average_frames(frames), expected)


def test_bad_clips_and_settings_say_what_was_expected(tmp_path):
    with pytest.raises(FileNotFoundError, match="video clip not found"):
        clip_image(tmp_path / "none.mp4", FrameSampling())
    (tmp_path / "junk.mp4").write_bytes(b"not a video at all" * 10)
    with pytest.raises(ValueError, match="junk.mp4"):
        clip_image(tmp_path / "junk.mp4", FrameSampling())
    with pytest.raises(ValueError, match="expected 'middle' or 'uniform'"):
        FrameSampling("first")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="expected 1 for 'middle'"):
        FrameSampling("middle", 2)


def test_without_pyav_the_error_names_the_extra(tmp_path, monkeypatch):
    path = tmp_path / "clip.mp4"
    write_clip(path, flat_frames([50, 60], (8, 8)))
    monkeypatch.setitem(sys.modules, "av", None)  # import av now raises ImportError
    with pytest.raises(ImportError, match=r"pip install fusionrt\[video\]"):
        clip_image(path, FrameSampling(size=(8, 8)))


def test_import_fusionrt_video_does_not_import_pyav():
    import subprocess

    code = "import sys, fusionrt.video; assert 'av' not in sys.modules, 'av imported'"
    subprocess.run([sys.executable, "-c", code], check=True)
