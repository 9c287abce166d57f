"""Atomic writes: the one way fusionrt writes a file or a directory that someone else may read.

A reader (another process, a crash-restarted run, a device pulling a bundle) sees either the old
content or the complete new one, never a half-written file: content goes to a temporary sibling
(same directory, so the final ``os.replace`` is a rename on one filesystem), is flushed and fsynced,
then renamed over the target, and the parent directory is fsynced so the rename survives a power
loss. On an error the temporary is removed and the target is untouched. New files and directories
get the permissions the process's umask gives (``tempfile`` would leave them 0600 / 0700, which a
service account reading a bundle cannot open).

Example:
    >>> from fusionrt.atomic import atomic_file, write_text_atomic
    >>> write_text_atomic("out/manifest.json", "{}")  # doctest: +SKIP
    >>> with atomic_file("out/weights.npy") as tmp:  # doctest: +SKIP
    ...     np.save(tmp, array)
"""

from __future__ import annotations

import contextlib
import ctypes
import errno
import functools
import os
import re
import shutil
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

__all__ = [
    "atomic_directory", "atomic_file", "copy_atomic", "fsync_tree", "remove_abandoned", "write_bytes_atomic",
    "write_text_atomic",
]


def _umask() -> int:
    # os.umask can only be read by setting it; set it straight back (no thread writes files between).
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def _fsync_directory(path: Path) -> None:
    """Makes a rename inside ``path`` durable; a no-op where directories cannot be opened (Windows)."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass  # some filesystems (and all of Windows) refuse fsync on a directory
    finally:
        os.close(fd)


def _fsync_file(path: Path) -> None:
    with open(path, "rb") as file:
        os.fsync(file.fileno())


@contextlib.contextmanager
def atomic_file(path: str | os.PathLike[str]) -> Iterator[Path]:
    """Yields a temporary path beside ``path``; when the block ends without an error, the file written
    there is fsynced and renamed onto ``path``.

    The temporary keeps ``path``'s suffix last, because some writers (``np.save``, PIL, ``torch.save``
    through extensions) pick the format from it. Missing parent directories are created.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, name = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=f".tmp{path.suffix}")
    os.close(fd)
    tmp = Path(name)
    try:
        yield tmp
        os.chmod(tmp, 0o666 & ~_umask())
        _fsync_file(tmp)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    _fsync_directory(path.parent)


def write_bytes_atomic(path: str | os.PathLike[str], data: bytes) -> None:
    """Writes ``data`` to ``path`` atomically."""
    with atomic_file(path) as tmp:
        tmp.write_bytes(data)


def write_text_atomic(path: str | os.PathLike[str], text: str) -> None:
    """Writes ``text`` to ``path`` atomically, UTF-8 encoded."""
    write_bytes_atomic(path, text.encode("utf-8"))


def copy_atomic(src: str | os.PathLike[str], dst: str | os.PathLike[str]) -> None:
    """Makes ``dst`` a copy of the complete file ``src``, atomically: a hard link where the filesystem
    allows one (no bytes written again; safe because fusionrt replaces files by rename, never in
    place), else a byte copy."""
    with atomic_file(dst) as tmp:
        tmp.unlink()
        try:
            os.link(src, tmp)
        except OSError:  # no hard links here (some network and FAT filesystems), or another device
            shutil.copyfile(src, tmp)


def fsync_tree(root: str | os.PathLike[str]) -> None:
    """fsyncs every file and directory below ``root`` (deepest first), so a rename of ``root`` publishes
    content that is already on disk."""
    for folder, _, files in os.walk(root, topdown=False):
        for name in files:
            file = Path(folder) / name
            if not file.is_symlink():
                _fsync_file(file)
        _fsync_directory(Path(folder))


def _exchange(a: Path, b: Path) -> bool:
    """Swaps the paths ``a`` and ``b`` in one step (Linux ``renameat2(RENAME_EXCHANGE)``); False where the
    OS or filesystem cannot, so the caller falls back to two renames."""
    renameat2 = getattr(_libc(), "renameat2", None) if sys.platform.startswith("linux") else None
    if renameat2 is None:
        return False
    at_fdcwd, rename_exchange = -100, 2
    if renameat2(at_fdcwd, os.fsencode(a), at_fdcwd, os.fsencode(b), rename_exchange) == 0:
        return True
    error = ctypes.get_errno()
    if error in (errno.EINVAL, errno.ENOSYS, errno.ENOTSUP, errno.EOPNOTSUPP):
        return False  # an old kernel or a filesystem without exchange (some network / overlay mounts)
    raise OSError(error, f"cannot exchange {a} and {b}: {os.strerror(error)}")


@functools.cache
def _libc() -> ctypes.CDLL | None:
    try:
        return ctypes.CDLL(None, use_errno=True)
    except OSError:
        return None


def _staging_prefix(target: Path, kind: str) -> str:
    # The writer's pid in the name lets a later writer tell an abandoned temporary from a live one.
    return f".{target.name}.{kind}-{os.getpid()}-"


#: A temporary :func:`atomic_directory` names with its writer's pid: ``.<target>.<tmp|old>-<pid>-<random>``
#: (pids stay below 2**22 on Linux; a longer number is not one of ours).
_STAGING_NAME = re.compile(r"\.(?P<target>.+)\.(?P<kind>tmp|old)-(?P<pid>[1-9][0-9]{0,8})-[A-Za-z0-9_]+")


def remove_abandoned(target: str | os.PathLike[str]) -> list[Path]:
    """Removes the temporaries that writers killed mid-write left in ``target``'s folder (those of any
    target there: a killed export of another bundle into the same folder leaves one too), and returns
    them. Temporaries of live writers are kept."""
    removed = []
    for path in Path(target).parent.glob(".*.*-*-*"):
        match = _STAGING_NAME.fullmatch(path.name)
        if match is not None and not _alive(int(match["pid"])):
            if path.is_dir() and not path.is_symlink():
                shutil.rmtree(path, ignore_errors=True)
            else:
                path.unlink(missing_ok=True)
            removed.append(path)
    return removed


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # someone else's live process
    return True


@contextlib.contextmanager
def atomic_directory(target: str | os.PathLike[str], overwrite: bool = False) -> Iterator[Path]:
    """Yields an empty temporary directory beside ``target``; when the block ends without an error,
    its content is fsynced and the directory renamed to ``target``.

    On an error the temporary directory is removed and ``target`` is untouched. With ``overwrite``, an
    existing ``target`` is replaced only once the new one is complete, and its path never stands
    empty: the two directories are exchanged in one step where the OS can (Linux), else the old one
    is moved aside just before the new one is renamed in. Without ``overwrite``, an existing
    ``target`` raises FileExistsError before anything is written. Temporaries that killed writers
    left in ``target``'s folder are removed first (:func:`remove_abandoned`).
    """
    target = Path(target)
    if target.exists() and not overwrite:
        raise FileExistsError(f"{target} exists; pass overwrite=True to replace it")
    target.parent.mkdir(parents=True, exist_ok=True)
    remove_abandoned(target)
    staging = Path(tempfile.mkdtemp(dir=target.parent, prefix=_staging_prefix(target, "tmp")))
    try:
        yield staging
        os.chmod(staging, 0o777 & ~_umask())
        fsync_tree(staging)
        if not target.exists():
            os.replace(staging, target)
        elif _exchange(staging, target):
            shutil.rmtree(staging, ignore_errors=True)  # now holds the old content
        else:
            retired = Path(tempfile.mkdtemp(dir=target.parent, prefix=_staging_prefix(target, "old")))
            os.replace(target, retired / target.name)
            os.replace(staging, target)
            shutil.rmtree(retired, ignore_errors=True)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    _fsync_directory(target.parent)
