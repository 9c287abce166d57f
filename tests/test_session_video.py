"""Session.predict(video=...): a clip becomes the image the way training made one (the manifest's record)."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest

pytest.importorskip("onnxruntime")
av = pytest.importorskip("av", reason="PyAV is the [video] extra")
import fusionrt  # noqa: E402
from fusionrt.bundle import BundleError, FrameSamplingSpec, read_manifest  # noqa: E402
from clips import write_clip  # noqa: E402
from tiny_bundles import tiny_bundle  # noqa: E402


def training_image(path, mode: str, num: int, size) -> np.ndarray:
    """The image training makes of a clip, computed here from PyAV directly: the centres of ``num``
    equal slices (the middle one for "middle"), resized with area filtering, averaged and rounded."""
    with av.open(str(path)) as container:
        frames = [f.to_ndarray(format="rgb24", width=size[1], height=size[0], interpolation="AREA")
                  for f in container.decode(video=0)]
    picked = [frames[int((i + 0.5) * len(frames) / num)] for i in range(num)]
    return np.rint(np.mean(np.stack(picked).astype(np.float64), axis=0)).astype(np.uint8)


def with_sampling(src, dst, sampling: dict | None):
    shutil.copytree(src, dst)
    manifest = json.loads((dst / "manifest.json").read_text())
    manifest["image"]["frame_sampling"] = sampling
    (dst / "manifest.json").write_text(json.dumps(manifest))
    return dst


@pytest.fixture(scope="module")
def late(tmp_path_factory):
    return tiny_bundle(tmp_path_factory, "late")


@pytest.mark.parametrize("mode,num", [("middle", 1), ("uniform", 4)])
def test_predict_video_samples_as_training_did(late, tmp_path, rng, mode, num):
    bundle = with_sampling(late, tmp_path / "bundle", {"mode": mode, "num_frames": num})
    session = fusionrt.load(bundle, backend="onnxruntime")
    size = session.manifest.image.size
    clips = []
    for k, frames in enumerate((9, 14)):
        clip = tmp_path / f"clip{k}.mp4"
        write_clip(clip, rng.integers(0, 256, (frames, 40, 48, 3), dtype=np.uint8))
        clips.append(clip)
    got = session.predict(text=["a fine day", None, "so so"], video=[clips[0], clips[1], None])
    images = [training_image(c, mode, num, size) for c in clips]
    ref = session.predict(text=["a fine day", None, "so so"], image=[images[0], images[1], None])
    np.testing.assert_allclose([p.score for p in got], [p.score for p in ref], rtol=0, atol=1e-6)
    one = session.predict(text="a fine day", video=str(clips[0]))
    assert one.score == pytest.approx(ref[0].score, abs=1e-6)


def test_video_and_image_together_is_an_error(late, tmp_path, rng):
    session = fusionrt.load(with_sampling(late, tmp_path / "b", {"mode": "middle", "num_frames": 1}))
    with pytest.raises(ValueError, match="image or video, not both"):
        session.predict(image=np.zeros((8, 8, 3), np.uint8), video="clip.mp4")


def test_a_bundle_without_the_record_takes_no_video(late, tmp_path):
    session = fusionrt.load(late, backend="onnxruntime")
    assert session.manifest.image.frame_sampling is None
    with pytest.raises(ValueError, match=r"records no frame sampling \(manifest.image.frame_sampling\)"):
        session.predict(video=str(tmp_path / "clip.mp4"))


@pytest.mark.parametrize("sampling,message", [
    ({"mode": "first", "num_frames": 1}, "expected 'middle' or 'uniform'"),
    ({"mode": "middle", "num_frames": 3}, "expected 1 for 'middle'"),
    ({"mode": "uniform", "num_frames": "3"}, r"frame_sampling.num_frames is a str .*expected an integer"),
])
def test_a_bad_record_is_a_bundle_error(late, tmp_path, sampling, message):
    bundle = with_sampling(late, tmp_path / "bad", sampling)
    with pytest.raises(BundleError, match=message):
        read_manifest(bundle)


def test_the_exporter_records_the_training_sampling():
    torch = pytest.importorskip("torch")
    from tiny_bundles import TINY
    from training.export.bundle_writer import _image_spec
    from training.models import create_model

    torch.manual_seed(0)
    model = create_model("late", **TINY).eval()
    spec = _image_spec(model, FrameSamplingSpec("uniform", 5))
    assert spec.frame_sampling == FrameSamplingSpec("uniform", 5)
    assert _image_spec(model).frame_sampling is None


def test_cli_predict_video(late, tmp_path, rng, capsys):
    from fusionrt.cli import main

    bundle = with_sampling(late, tmp_path / "bundle", {"mode": "uniform", "num_frames": 3})
    clip = tmp_path / "clip.mp4"
    write_clip(clip, rng.integers(0, 256, (7, 36, 36, 3), dtype=np.uint8))
    assert main(["predict", str(bundle), "--text", "lovely", "--video", str(clip), "--backend", "onnxruntime"]) == 0
    got = json.loads(capsys.readouterr().out)["predictions"][0]["score"]
    session = fusionrt.load(bundle, backend="onnxruntime")
    image = training_image(clip, "uniform", 3, session.manifest.image.size)
    assert got == pytest.approx(session.predict(text="lovely", image=image).score, abs=1e-6)
