"""fusionrt.atomic: the one way files and directories are written (temp + fsync + rename)."""

from __future__ import annotations

import os
import stat
import subprocess
import sys

import numpy as np
import pytest

from fusionrt import atomic
from fusionrt.atomic import atomic_directory, atomic_file, copy_atomic, write_bytes_atomic, write_text_atomic


@pytest.fixture
def umask():
    """Sets a process umask for one test and restores the old one."""
    old = os.umask(0o022)
    yield lambda mask: os.umask(mask)
    os.umask(old)


def _mode(path) -> int:
    return stat.S_IMODE(os.stat(path).st_mode)


def test_file_round_trips_and_leaves_no_temporary(tmp_path):
    data = np.random.default_rng().bytes(4096)
    write_bytes_atomic(tmp_path / "sub" / "engine.plan", data)
    write_text_atomic(tmp_path / "note.json", "{\"ü\": 1}")
    assert (tmp_path / "sub" / "engine.plan").read_bytes() == data
    assert (tmp_path / "note.json").read_text(encoding="utf-8") == "{\"ü\": 1}"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["note.json", "sub"]


def test_file_keeps_the_old_content_when_the_writer_fails(tmp_path):
    target = tmp_path / "last.pt"
    write_bytes_atomic(target, b"good")
    with pytest.raises(KeyboardInterrupt):
        with atomic_file(target) as tmp:
            tmp.write_bytes(b"half")
            raise KeyboardInterrupt
    assert target.read_bytes() == b"good"
    assert [p.name for p in tmp_path.iterdir()] == ["last.pt"]


def test_file_temporary_keeps_the_suffix_writers_pick_formats_from(tmp_path):
    with atomic_file(tmp_path / "frame.npy") as tmp:
        assert tmp.suffix == ".npy" and tmp.parent == tmp_path
        np.save(tmp, np.arange(3))
    np.testing.assert_array_equal(np.load(tmp_path / "frame.npy"), np.arange(3))


@pytest.mark.parametrize("mask", [0o022, 0o077, 0o002])
def test_permissions_follow_the_umask(tmp_path, umask, mask):
    umask(mask)
    write_bytes_atomic(tmp_path / "f", b"x")
    with atomic_directory(tmp_path / "d") as staging:
        (staging / "inner").write_bytes(b"y")
    assert _mode(tmp_path / "f") == 0o666 & ~mask
    assert _mode(tmp_path / "d") == 0o777 & ~mask


def test_writes_are_fsynced_before_the_rename(tmp_path, monkeypatch):
    events = []
    real_fsync, real_replace = os.fsync, os.replace
    monkeypatch.setattr(atomic.os, "fsync", lambda fd: (events.append("fsync"), real_fsync(fd))[1])
    monkeypatch.setattr(atomic.os, "replace", lambda a, b: (events.append("replace"), real_replace(a, b))[1])
    write_bytes_atomic(tmp_path / "f", b"x")
    # the file before the rename, its directory after it
    assert events == ["fsync", "replace", "fsync"]
    events.clear()
    with atomic_directory(tmp_path / "d") as staging:
        (staging / "a").write_bytes(b"a")
    assert events.index("replace") > 0 and events[: events.index("replace")].count("fsync") >= 2


@pytest.mark.parametrize("links", [True, False])
def test_copy_is_a_link_or_a_copy_and_survives_replacing_the_source(tmp_path, monkeypatch, links):
    if not links:  # a filesystem without hard links
        monkeypatch.setattr(os, "link", lambda *args: (_ for _ in ()).throw(OSError("no links here")))
    data = np.random.default_rng().bytes(4096)
    src, dst = tmp_path / "best.pt", tmp_path / "last.pt"
    write_bytes_atomic(src, data)
    write_bytes_atomic(dst, b"older state")
    copy_atomic(src, dst)
    assert dst.read_bytes() == data
    assert os.path.samefile(src, dst) == links
    write_bytes_atomic(src, b"the next state")  # replaced by rename: the copy keeps its bytes
    assert dst.read_bytes() == data
    assert sorted(p.name for p in tmp_path.iterdir()) == ["best.pt", "last.pt"]
    with pytest.raises(FileNotFoundError):
        copy_atomic(tmp_path / "missing.pt", dst)
    assert dst.read_bytes() == data and len(list(tmp_path.iterdir())) == 2


def test_atomic_directory_leaves_nothing_on_failure(tmp_path):
    target = tmp_path / "bundle"
    with pytest.raises(RuntimeError):
        with atomic_directory(target) as staging:
            (staging / "model.onnx").write_bytes(b"partial")
            raise RuntimeError("export failed")
    assert not target.exists()
    assert list(tmp_path.iterdir()) == []


def test_atomic_directory_replaces_only_when_asked(tmp_path):
    target = tmp_path / "bundle"
    with atomic_directory(target) as staging:
        (staging / "a").write_text("first")
    with pytest.raises(FileExistsError, match="overwrite=True"):
        with atomic_directory(target):
            pass
    with atomic_directory(target, overwrite=True) as staging:
        (staging / "b").write_text("second")
    assert sorted(p.name for p in target.iterdir()) == ["b"]
    assert [p.name for p in tmp_path.iterdir()] == ["bundle"]


def _dead_pid() -> int:
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    return child.pid


@pytest.mark.parametrize("exchange", [True, False], ids=["renameat2-exchange", "two-renames"])
def test_overwrite_swaps_in_the_new_directory(tmp_path, monkeypatch, exchange):
    if not exchange:
        monkeypatch.setattr(atomic, "_exchange", lambda a, b: False)
    target = tmp_path / "bundle"
    with atomic_directory(target) as staging:
        (staging / "model.onnx").write_bytes(b"old")
    old_inode = target.stat().st_ino
    with atomic_directory(target, overwrite=True) as staging:
        (staging / "model.onnx").write_bytes(b"new")
        assert (target / "model.onnx").read_bytes() == b"old"  # untouched until the new one is complete
    assert (target / "model.onnx").read_bytes() == b"new" and target.stat().st_ino != old_inode
    assert [p.name for p in tmp_path.iterdir()] == ["bundle"]


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="renameat2 is Linux-only")
def test_exchange_swaps_two_directories_in_one_step(tmp_path):
    a, b = tmp_path / "a", tmp_path / "b"
    a.mkdir(), b.mkdir()
    (a / "x").write_text("a"), (b / "x").write_text("b")
    if not atomic._exchange(a, b):
        pytest.skip("this filesystem cannot exchange directories")
    assert (a / "x").read_text() == "b" and (b / "x").read_text() == "a"


def test_abandoned_temporaries_of_killed_writers_are_removed(tmp_path):
    target = tmp_path / "bundle"
    dead = _dead_pid()
    abandoned = [tmp_path / f".bundle.tmp-{dead}-abc", tmp_path / f".bundle.old-{dead}-def",
                 tmp_path / f".other.tmp-{dead}-jkl"]  # another target's in the same folder: as abandoned
    live = tmp_path / f".bundle.tmp-{os.getpid()}-ghi"  # a writer still at work: kept
    unrelated = [tmp_path / ".bundle.tmp-x-abc", tmp_path / ".cache", tmp_path / ".v.tmp-1234567890-abc"]
    for path in (*abandoned, live, *unrelated):
        path.mkdir()
        (path / "model.onnx").write_bytes(b"partial")
    with atomic_directory(target) as staging:
        (staging / "model.onnx").write_bytes(b"whole")
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(["bundle", live.name, *(p.name for p in unrelated)])
