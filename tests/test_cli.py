"""The bundle commands of the ``fusionrt`` command line: info BUNDLE, predict, export."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest

import fusionrt
from fusionrt import cli
from tiny_bundles import tiny_bundle

pytest.importorskip("onnxruntime")
Image = pytest.importorskip("PIL.Image")


@pytest.fixture(scope="module")
def bundle(tmp_path_factory):
    return tiny_bundle(tmp_path_factory, "late", ("fp32", "fp16", "int8"))


def test_info_summarises_a_bundle(bundle, capsys):
    assert cli.main(["info", str(bundle)]) == 0
    printed = json.loads(capsys.readouterr().out)
    assert printed["model_name"] == "late_tiny" and printed["strategy"] == "late"
    assert set(printed["variants"]) == {"fp32", "fp16", "int8"}
    assert all("metrics" in variant for variant in printed["variants"].values())
    assert printed["inputs"]["image"]["shape"] == ["batch", 3, 32, 32]
    assert printed["backends"]["onnxruntime"] == "available"
    if fusionrt.build_info()["tensorrt"] is None:
        assert "not built into this fusionrt" in printed["backends"]["tensorrt"]
    assert printed["build"] == fusionrt.build_info()


def test_verify_checks_every_file(bundle, tmp_path, capsys):
    assert cli.main(["verify", str(bundle)]) == 0
    printed = json.loads(capsys.readouterr().out)
    manifest = fusionrt.bundle.read_manifest(bundle, verify_hashes=False)
    assert printed["verified"] and printed["files"] == len(manifest.files)
    assert printed["bytes"] == sum((bundle / name).stat().st_size for name in manifest.files)
    copy = tmp_path / "bundle"
    shutil.copytree(bundle, copy)
    with open(copy / manifest.torch_program, "ab") as file:  # a file ONNX Runtime's load never reads
        file.write(b"\0")
    assert cli.main(["verify", str(copy)]) == 1
    assert f"{manifest.torch_program} does not match its hash" in capsys.readouterr().err


def test_predict_prints_json(bundle, tmp_path, rng, capsys):
    image = tmp_path / "face.png"
    Image.fromarray(rng.integers(0, 256, (40, 30, 3), dtype=np.uint8)).save(image)
    argv = ["predict", str(bundle), "--text", "a fine film", "--image", str(image), "--backend", "onnxruntime"]
    assert cli.main(argv) == 0
    printed = json.loads(capsys.readouterr().out)
    assert (printed["backend"], printed["device"], printed["precision"]) == ("onnxruntime", "cpu", "fp32")
    (prediction,) = printed["predictions"]
    expected = fusionrt.load(bundle, backend="onnxruntime").predict(text="a fine film", image=str(image))
    assert prediction["sentiment"] == expected.sentiment
    assert prediction["score"] == pytest.approx(expected.score)
    assert prediction["logits"] == pytest.approx(expected.logits)


def test_predict_text_only_batch(bundle, capsys):
    assert cli.main(["predict", str(bundle), "--text", "good", "--text", "bad", "--precision", "int8"]) == 0
    printed = json.loads(capsys.readouterr().out)
    assert printed["precision"] == "int8" and len(printed["predictions"]) == 2


def test_predict_errors_go_to_stderr(tmp_path, bundle, capsys):
    assert cli.main(["predict", str(tmp_path / "nowhere"), "--text", "x"]) == 1
    assert "fusionrt predict: error: no bundle at" in capsys.readouterr().err
    if fusionrt.build_info()["tensorrt"] is None:
        assert cli.main(["predict", str(bundle), "--text", "x", "--backend", "tensorrt"]) == 1
        assert "TensorRT support is not built into this fusionrt" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        cli.main(["predict", str(bundle)])
    assert "needs --text, --image or both" in capsys.readouterr().err


def test_export_delegates_to_the_training_exporter(capsys):
    pytest.importorskip("training.export")
    with pytest.raises(SystemExit) as exit_info:
        cli.main(["export", "--help"])
    assert exit_info.value.code == 0
    assert "usage:" in capsys.readouterr().out


class _Stopped(Exception):
    """What the test's signal handler raises, standing in for Ctrl-C's KeyboardInterrupt."""


@pytest.mark.parametrize("delay", [0.1, 0.5])
def test_serve_waits_so_that_a_signal_to_any_thread_stops_it(delay):
    """``fusionrt serve`` waits on tritonserver with wait_interruptibly: a signal the kernel hands to
    another thread of the process (here sent there on purpose) still runs the handler within a poll,
    where a blocking wait would sleep in waitpid until the child exits (here 30 s)."""
    import signal
    import subprocess
    import sys
    import threading
    import time

    from fusionrt.serving.cli import wait_interruptibly

    def stop(signum, frame):
        raise _Stopped

    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"])
    previous = signal.signal(signal.SIGUSR1, stop)
    helper = threading.Thread(target=lambda: (time.sleep(delay),
                                              signal.pthread_kill(threading.get_ident(), signal.SIGUSR1)))
    try:
        start = time.monotonic()
        helper.start()
        with pytest.raises(_Stopped):
            wait_interruptibly(child, poll_seconds=0.2)
        assert time.monotonic() - start < delay + 5  # not the child's 30 s
        assert child.poll() is None
    finally:
        helper.join()
        signal.signal(signal.SIGUSR1, previous)
        child.kill()
        child.wait()


@pytest.mark.parametrize("inherited", ["blocked", "ignored"])
def test_serve_hears_ctrl_c_whatever_its_launcher_left(inherited):
    """accept_stop_signals (``fusionrt serve`` calls it first): a process started with SIGINT blocked
    (the mask is inherited across exec) or ignored (a background job of a script) still stops on it."""
    import signal
    import subprocess
    import sys

    child_code = ("from fusionrt.serving.cli import accept_stop_signals; accept_stop_signals(); import time; "
                  "print('ready', flush=True); time.sleep(30)")
    previous_mask = signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT} if inherited == "blocked" else set())
    previous_handler = signal.signal(signal.SIGINT, signal.SIG_IGN) if inherited == "ignored" else None
    try:
        child = subprocess.Popen([sys.executable, "-c", child_code], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                 text=True)
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, previous_mask)
        if previous_handler is not None:
            signal.signal(signal.SIGINT, previous_handler)
    try:
        assert child.stdout.readline() == "ready\n", child.stderr.read()
        child.send_signal(signal.SIGINT)
        child.wait(timeout=10)  # not its 30 s sleep
        assert "KeyboardInterrupt" in child.stderr.read()
    finally:
        child.kill()
        child.wait()
