"""The TensorRT engines a bundle caches in its ``engines/`` folder, keyed by what makes an engine valid.

An engine runs only on the GPU model and TensorRT version that built it, for the precision and batch
range it was built for, and only while its ONNX graph and the fusionrt that built it (its plugins) are
unchanged. GPU model means more than the name the driver reports: every Jetson Orin module says "Orin",
while an AGX Orin has 16 SMs and 64 GB and an Orin Nano 8 SMs and 8 GB, and TensorRT tunes for exactly
one of them. :class:`EngineKey` holds exactly those facts and names the files after them (as
jetson-inference names its ``.engine`` caches)::

    engines/orin-nvgpu_sm87_16sms_62841mib_trt10.3.0_fp16_b1-8_3f2a9c1d_fusionrt0.1.0.engine   the serialised engine
    engines/orin-nvgpu_sm87_16sms_62841mib_trt10.3.0_fp16_b1-8_3f2a9c1d_fusionrt0.1.0.json     its sidecar: the full key, size, build facts
    engines/orin-nvgpu_sm87_16sms_62841mib_trt10.3.0.timing.cache                                TensorRT's timing cache for that GPU + version

The sidecar is written last, so an engine without one is an interrupted build and is ignored. An engine
for the same GPU, TensorRT, precision and batches whose ONNX hash or fusionrt version differs from the
key's is *stale*, as is an entry an older fusionrt cached under a key without the SM count, memory and
fusionrt version (sidecar format 1): :meth:`EngineCache.find` never returns them, :meth:`EngineCache.stale`
lists them, and storing the rebuilt engine removes them.

Example:
    >>> gpu = {"name": "Orin (nvgpu)", "compute_capability": (8, 7), "multiprocessor_count": 16,
    ...        "total_memory": 62841 << 20}
    >>> key = EngineKey.for_gpu(gpu, "10.3.0", "fp16", "3f2a9c1d" + "0" * 56, max_batch=8, fusionrt_version="0.1.0")
    >>> key.engine_name
    'orin-nvgpu_sm87_16sms_62841mib_trt10.3.0_fp16_b1-8_3f2a9c1d_fusionrt0.1.0.engine'
    >>> EngineCache("bundle").find(key)  # doctest: +SKIP
    PosixPath('bundle/engines/orin-nvgpu_sm87_16sms_62841mib_trt10.3.0_fp16_b1-8_3f2a9c1d_fusionrt0.1.0.engine')
"""

from __future__ import annotations

import hashlib
import json
import os
import re
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from ...atomic import write_bytes_atomic
from ...bundle import PRECISIONS

ENGINES_DIR = "engines"
# 2: the key holds the GPU's SM count and memory and fusionrt's version (format 1 entries are stale).
SIDECAR_FORMAT_VERSION = 2
_SHA256 = re.compile(r"[0-9a-f]{64}")
_VERSION = re.compile(r"\d+(\.\d+)*")
#: A package version that can stand in a file name (PEP 440 public and local versions).
_PACKAGE_VERSION = re.compile(r"[0-9][0-9A-Za-z.+_-]*")
#: The key fields a format 1 sidecar shares with today's, which say what a legacy entry was built for.
_LEGACY_FIELDS = ("gpu_name", "compute_capability", "trt_version", "precision", "max_batch", "opt_batch")


class EngineCacheError(ValueError):
    """An engine cache entry (key or sidecar) is malformed, or does not describe its engine file."""


def graph_sha256(onnx_sha256: str, weights_sha256: Sequence[str]) -> str:
    """The hash that keys an engine built from a graph: the graph file's ``onnx_sha256``, folded with the
    hash of each weights file its variant's graphs read (:attr:`fusionrt.bundle.Variant.weights_files`,
    in that order). A lean graph names its weights by offset only, so new weights at the same offsets,
    in its own or the shared fp32 file, must key a new engine. No weights files: the graph's hash.

    Example:
        >>> graph_sha256("a" * 64, []) == "a" * 64
        True
    """
    if not weights_sha256:
        return onnx_sha256
    return hashlib.sha256(":".join((onnx_sha256, *weights_sha256)).encode()).hexdigest()


def gpu_slug(name: str) -> str:
    """A file-name-safe spelling of a GPU name: ``"NVIDIA H100 80GB HBM3"`` -> ``"nvidia-h100-80gb-hbm3"``."""
    slug = re.sub(r"[^a-z0-9]+", "-", name.lower()).strip("-")
    return slug or "gpu"


def _count(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 1


@dataclass(frozen=True)
class EngineKey:
    """What an engine is valid for: GPU model (name, compute capability, SM count, memory), TensorRT
    version, precision, ONNX content, batch range and the fusionrt version that built it.

    Build keys for the present GPU with :meth:`for_gpu` (from ``fusionrt._C.cuda_device_properties``).
    """

    gpu_name: str
    compute_capability: tuple[int, int]
    trt_version: str
    precision: str
    onnx_sha256: str
    max_batch: int
    opt_batch: int = 1
    # Keyword-only, so no caller can leave them to a default: a key without them could match an
    # engine built for another module of the same GPU name, or by another fusionrt.
    multiprocessors: int = field(kw_only=True)
    memory_mib: int = field(kw_only=True)
    fusionrt_version: str = field(kw_only=True)

    def __post_init__(self) -> None:
        # Tuples come back from JSON as lists.
        object.__setattr__(self, "compute_capability", tuple(self.compute_capability))
        problems = []
        if not isinstance(self.gpu_name, str) or not self.gpu_name.strip():
            problems.append(f"gpu_name is {self.gpu_name!r}, expected a GPU's name")
        cc = self.compute_capability
        if len(cc) != 2 or not all(isinstance(v, int) and not isinstance(v, bool) and v >= 0 for v in cc):
            problems.append(f"compute_capability is {cc!r}, expected (major, minor) integers")
        if not _count(self.multiprocessors):
            problems.append(f"multiprocessors is {self.multiprocessors!r}, expected the GPU's SM count (>= 1)")
        if not _count(self.memory_mib):
            problems.append(f"memory_mib is {self.memory_mib!r}, expected the GPU's total memory in MiB (>= 1)")
        if not isinstance(self.trt_version, str) or not _VERSION.fullmatch(self.trt_version):
            problems.append(f"trt_version is {self.trt_version!r}, expected a dotted version like '10.3.0'")
        if self.precision not in PRECISIONS:
            problems.append(f"precision is {self.precision!r}, expected one of {list(PRECISIONS)}")
        if not isinstance(self.onnx_sha256, str) or not _SHA256.fullmatch(self.onnx_sha256):
            problems.append(f"onnx_sha256 is {self.onnx_sha256!r}, expected 64 lowercase hex digits")
        batches = (self.opt_batch, self.max_batch)
        if not all(isinstance(b, int) and not isinstance(b, bool) for b in batches) or not 1 <= self.opt_batch <= self.max_batch:
            problems.append(f"batch range is opt {self.opt_batch!r} / max {self.max_batch!r}, expected 1 <= opt <= max")
        if not isinstance(self.fusionrt_version, str) or not _PACKAGE_VERSION.fullmatch(self.fusionrt_version):
            problems.append(f"fusionrt_version is {self.fusionrt_version!r}, expected a package version like '0.1.0'")
        if problems:
            raise EngineCacheError("invalid engine key: " + "; ".join(problems))

    @classmethod
    def for_gpu(cls, properties: Mapping[str, Any], trt_version: str, precision: str, onnx_sha256: str,
                max_batch: int, opt_batch: int = 1, *, fusionrt_version: str) -> EngineKey:
        """The key of an engine for the GPU ``properties`` describe (``fusionrt._C.cuda_device_properties``:
        name, compute capability, multiprocessor count, total memory in bytes).

        Example:
            >>> gpu = {"name": "Orin", "compute_capability": (8, 7), "multiprocessor_count": 8,
            ...        "total_memory": 7620 << 20}  # an Orin Nano 8GB
            >>> EngineKey.for_gpu(gpu, "10.3.0", "fp32", "0" * 64, 8, fusionrt_version="0.1.0").device_stem
            'orin_sm87_8sms_7620mib_trt10.3.0'
        """
        missing = [k for k in ("name", "compute_capability", "multiprocessor_count", "total_memory") if k not in properties]
        if missing:
            raise EngineCacheError(
                f"the GPU's properties lack {missing}, which engine keys need (is fusionrt._C older than this "
                f"package? rebuild it); got {sorted(properties)}"
            )
        memory = properties["total_memory"]  # bytes
        return cls(
            properties["name"], tuple(properties["compute_capability"]), trt_version, precision, onnx_sha256,
            max_batch, opt_batch, multiprocessors=properties["multiprocessor_count"],
            # Whole MiB: enough to tell modules apart, and a name one can read.
            memory_mib=memory // 2**20 if isinstance(memory, int) else memory,
            fusionrt_version=fusionrt_version,
        )

    @property
    def device_stem(self) -> str:
        """``<gpu>_sm<cc>_<n>sms_<m>mib_trt<version>``: what the timing cache is valid for."""
        major, minor = self.compute_capability
        return (f"{gpu_slug(self.gpu_name)}_sm{major}{minor}_{self.multiprocessors}sms_{self.memory_mib}mib"
                f"_trt{self.trt_version}")

    @property
    def stem(self) -> str:
        return (f"{self.device_stem}_{self.precision}_b{self.opt_batch}-{self.max_batch}_{self.onnx_sha256[:8]}"
                f"_fusionrt{self.fusionrt_version}")

    @property
    def engine_name(self) -> str:
        return self.stem + ".engine"

    @property
    def sidecar_name(self) -> str:
        return self.stem + ".json"

    @property
    def timing_cache_name(self) -> str:
        return self.device_stem + ".timing.cache"

    def same_target(self, other: EngineKey) -> bool:
        """Whether ``other`` is for the same GPU model, TensorRT, precision and batches (whatever its ONNX
        graph and fusionrt version): an engine the one for ``self`` replaces."""
        ignored = {"onnx_sha256": "", "fusionrt_version": ""}
        return asdict(self) | ignored == asdict(other) | ignored

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["compute_capability"] = list(self.compute_capability)
        return data

    @classmethod
    def from_dict(cls, data: Any) -> EngineKey:
        if not isinstance(data, dict):
            raise EngineCacheError(f"engine key is a {type(data).__name__}, expected a JSON object")
        try:
            return cls(**data)
        except TypeError as error:
            raise EngineCacheError(f"engine key is malformed: {error}") from None


@dataclass(frozen=True)
class CachedEngine:
    """One complete cache entry: its key, the engine file, and the build facts its sidecar records."""

    key: EngineKey
    path: Path
    engine_bytes: int
    onnx: str
    build: dict[str, Any] = field(default_factory=dict)


class EngineCache:
    """The ``engines/`` folder of the bundle at ``root``."""

    def __init__(self, root: str | os.PathLike[str]) -> None:
        self.folder = Path(root) / ENGINES_DIR

    def engine_path(self, key: EngineKey) -> Path:
        return self.folder / key.engine_name

    def timing_cache_path(self, key: EngineKey) -> Path:
        return self.folder / key.timing_cache_name

    def read(self, sidecar: str | os.PathLike[str]) -> CachedEngine:
        """Reads and validates a sidecar and checks its engine file; raises :class:`EngineCacheError`
        naming the file and what is wrong."""
        sidecar = Path(sidecar)
        try:
            data = json.loads(sidecar.read_text())
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
            raise EngineCacheError(f"engine sidecar {sidecar} is unreadable: {error}") from None
        if not isinstance(data, dict):
            raise EngineCacheError(f"engine sidecar {sidecar} is a {type(data).__name__}, expected a JSON object")
        version = data.get("format_version")
        if version != SIDECAR_FORMAT_VERSION:
            older = " (an older fusionrt's entry: stale, replaced by the next build)" if version == 1 else ""
            raise EngineCacheError(
                f"engine sidecar {sidecar} has format_version {version!r}, expected {SIDECAR_FORMAT_VERSION}{older}"
            )
        try:
            key = EngineKey.from_dict(data["key"])
            size, onnx = data["engine_bytes"], data["onnx"]
        except KeyError as error:
            raise EngineCacheError(f"engine sidecar {sidecar} lacks the field {error.args[0]!r}") from None
        except EngineCacheError as error:
            raise EngineCacheError(f"engine sidecar {sidecar}: {error}") from None
        if key.sidecar_name != sidecar.name:
            raise EngineCacheError(f"engine sidecar {sidecar} describes {key.sidecar_name}, not itself (renamed?)")
        path = sidecar.with_name(key.engine_name)
        if not path.is_file():
            raise EngineCacheError(f"engine sidecar {sidecar} has no engine file {path.name}")
        if path.stat().st_size != size:
            raise EngineCacheError(
                f"engine {path} has {path.stat().st_size} bytes, its sidecar says {size} (truncated or replaced)"
            )
        return CachedEngine(key, path, size, onnx, data.get("build", {}))

    def entries(self) -> list[CachedEngine]:
        """Every complete, valid entry, by file name. Invalid ones are skipped: :meth:`read` says why."""
        found = []
        for sidecar in sorted(self.folder.glob("*.json")):
            try:
                found.append(self.read(sidecar))
            except EngineCacheError:
                continue
        return found

    def find(self, key: EngineKey) -> Path | None:
        """The engine cached for exactly ``key``, or None (absent, incomplete, invalid or stale)."""
        sidecar = self.folder / key.sidecar_name
        if not sidecar.is_file():
            return None
        try:
            entry = self.read(sidecar)
        except EngineCacheError:
            return None
        return entry.path if entry.key == key else None

    def stale(self, key: EngineKey) -> list[CachedEngine]:
        """Entries for ``key``'s GPU model, TensorRT, precision and batches built from another ONNX graph
        or by another fusionrt."""
        return [e for e in self.entries() if e.key.same_target(key) and e.key != key]

    def legacy(self, key: EngineKey) -> list[Path]:
        """Sidecars an older fusionrt wrote (format 1, whose key lacks the SM count, memory and fusionrt
        version) for ``key``'s GPU name, TensorRT, precision and batches: stale, whatever they hold."""
        found = []
        for sidecar in sorted(self.folder.glob("*.json")):
            try:
                data = json.loads(sidecar.read_text())
            except (OSError, UnicodeDecodeError, json.JSONDecodeError):
                continue  # not a legacy entry: read() says what it is
            old = data.get("key") if isinstance(data, dict) and data.get("format_version") == 1 else None
            if isinstance(old, dict) and all(old.get(f) == v for f, v in _legacy_target(key).items()):
                found.append(sidecar)
        return found

    def store(self, key: EngineKey, engine: bytes, onnx: str, build: dict[str, Any]) -> Path:
        """Writes the engine, then its sidecar (each atomically), and removes the stale and legacy
        entries it replaces."""
        path = self.engine_path(key)
        write_bytes_atomic(path, engine)
        sidecar = {
            "format_version": SIDECAR_FORMAT_VERSION,
            "key": key.to_dict(),
            "engine_bytes": len(engine),
            "onnx": onnx,
            "build": build,
        }
        write_bytes_atomic(self.folder / key.sidecar_name, (json.dumps(sidecar, indent=2, sort_keys=True) + "\n").encode())
        for entry in self.stale(key):
            self.remove(entry.key)
        for old in self.legacy(key):
            old.unlink(missing_ok=True)  # the sidecar first: the entry is gone at once
            old.with_suffix(".engine").unlink(missing_ok=True)
        return path

    def remove(self, key: EngineKey) -> None:
        """Deletes ``key``'s sidecar (first: the entry is gone at once) and engine, if present."""
        (self.folder / key.sidecar_name).unlink(missing_ok=True)
        self.engine_path(key).unlink(missing_ok=True)


def _legacy_target(key: EngineKey) -> dict[str, Any]:
    """The fields of ``key`` a format 1 sidecar's key must share to be an engine ``key``'s replaces."""
    data = key.to_dict()
    return {name: data[name] for name in _LEGACY_FIELDS}
