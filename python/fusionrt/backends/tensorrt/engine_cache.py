"""The TensorRT engines a bundle caches in its ``engines/`` folder, keyed by what makes an engine valid.

An engine runs only on the GPU model and TensorRT version that built it, for the precision and batch
range it was built for, and only while its ONNX graph is unchanged. :class:`EngineKey` holds exactly
those facts and names the files after them (as jetson-inference names its ``.engine`` caches)::

    engines/orin-nvgpu_sm87_trt10.3.0_fp16_b1-8_3f2a9c1d.engine   the serialised engine
    engines/orin-nvgpu_sm87_trt10.3.0_fp16_b1-8_3f2a9c1d.json     its sidecar: the full key, size, build facts
    engines/orin-nvgpu_sm87_trt10.3.0.timing.cache                 TensorRT's timing cache for that GPU + version

The sidecar is written last, so an engine without one is an interrupted build and is ignored. An engine
whose ONNX hash no longer matches the bundle's is *stale*: :meth:`EngineCache.stale` finds them, and
the builder replaces them.

Example:
    >>> key = EngineKey("Orin (nvgpu)", (8, 7), "10.3.0", "fp16", onnx_sha256="3f2a9c1d" + "0" * 56, max_batch=8)
    >>> key.engine_name
    'orin-nvgpu_sm87_trt10.3.0_fp16_b1-8_3f2a9c1d.engine'
    >>> EngineCache("bundle").find(key)  # doctest: +SKIP
    PosixPath('bundle/engines/orin-nvgpu_sm87_trt10.3.0_fp16_b1-8_3f2a9c1d.engine')
"""

from __future__ import annotations

import json
import os
import re
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from ...atomic import write_bytes_atomic
from ...bundle import PRECISIONS

ENGINES_DIR = "engines"
SIDECAR_FORMAT_VERSION = 1
_SHA256 = re.compile(r"[0-9a-f]{64}")
_VERSION = re.compile(r"\d+(\.\d+)*")


class EngineCacheError(ValueError):
    """An engine cache entry (key or sidecar) is malformed, or does not describe its engine file."""


def gpu_slug(name: str) -> str:
    """A file-name-safe spelling of a GPU name: ``"NVIDIA H100 80GB HBM3"`` -> ``"nvidia-h100-80gb-hbm3"``."""
    slug = re.sub(r"[^a-z0-9]+", "-", name.lower()).strip("-")
    return slug or "gpu"


@dataclass(frozen=True)
class EngineKey:
    """What an engine is valid for: GPU model, TensorRT version, precision, ONNX content, batch range."""

    gpu_name: str
    compute_capability: tuple[int, int]
    trt_version: str
    precision: str
    onnx_sha256: str
    max_batch: int
    opt_batch: int = 1

    def __post_init__(self) -> None:
        # Tuples come back from JSON as lists.
        object.__setattr__(self, "compute_capability", tuple(self.compute_capability))
        problems = []
        if not isinstance(self.gpu_name, str) or not self.gpu_name.strip():
            problems.append(f"gpu_name is {self.gpu_name!r}, expected a GPU's name")
        cc = self.compute_capability
        if len(cc) != 2 or not all(isinstance(v, int) and not isinstance(v, bool) and v >= 0 for v in cc):
            problems.append(f"compute_capability is {cc!r}, expected (major, minor) integers")
        if not isinstance(self.trt_version, str) or not _VERSION.fullmatch(self.trt_version):
            problems.append(f"trt_version is {self.trt_version!r}, expected a dotted version like '10.3.0'")
        if self.precision not in PRECISIONS:
            problems.append(f"precision is {self.precision!r}, expected one of {list(PRECISIONS)}")
        if not isinstance(self.onnx_sha256, str) or not _SHA256.fullmatch(self.onnx_sha256):
            problems.append(f"onnx_sha256 is {self.onnx_sha256!r}, expected 64 lowercase hex digits")
        batches = (self.opt_batch, self.max_batch)
        if not all(isinstance(b, int) and not isinstance(b, bool) for b in batches) or not 1 <= self.opt_batch <= self.max_batch:
            problems.append(f"batch range is opt {self.opt_batch!r} / max {self.max_batch!r}, expected 1 <= opt <= max")
        if problems:
            raise EngineCacheError("invalid engine key: " + "; ".join(problems))

    @property
    def device_stem(self) -> str:
        """``<gpu>_sm<cc>_trt<version>``: what the timing cache is valid for."""
        major, minor = self.compute_capability
        return f"{gpu_slug(self.gpu_name)}_sm{major}{minor}_trt{self.trt_version}"

    @property
    def stem(self) -> str:
        return f"{self.device_stem}_{self.precision}_b{self.opt_batch}-{self.max_batch}_{self.onnx_sha256[:8]}"

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
        """Whether ``other`` is for the same GPU, TensorRT, precision and batches (whatever its ONNX)."""
        return asdict(self) | {"onnx_sha256": ""} == asdict(other) | {"onnx_sha256": ""}

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
    fusionrt_version: str = ""


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
            raise EngineCacheError(
                f"engine sidecar {sidecar} has format_version {version!r}, expected {SIDECAR_FORMAT_VERSION}"
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
        return CachedEngine(key, path, size, onnx, data.get("build", {}), data.get("fusionrt_version", ""))

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
        """The engine cached for exactly ``key``, or None (absent, incomplete or invalid)."""
        sidecar = self.folder / key.sidecar_name
        if not sidecar.is_file():
            return None
        try:
            entry = self.read(sidecar)
        except EngineCacheError:
            return None
        return entry.path if entry.key == key else None

    def stale(self, key: EngineKey) -> list[CachedEngine]:
        """Entries for ``key``'s GPU, TensorRT, precision and batches built from another ONNX graph."""
        return [e for e in self.entries() if e.key.same_target(key) and e.key.onnx_sha256 != key.onnx_sha256]

    def store(self, key: EngineKey, engine: bytes, onnx: str, build: dict[str, Any], fusionrt_version: str) -> Path:
        """Writes the engine, then its sidecar (each atomically), and removes the stale entries it replaces."""
        path = self.engine_path(key)
        write_bytes_atomic(path, engine)
        sidecar = {
            "format_version": SIDECAR_FORMAT_VERSION,
            "key": key.to_dict(),
            "engine_bytes": len(engine),
            "onnx": onnx,
            "build": build,
            "fusionrt_version": fusionrt_version,
        }
        write_bytes_atomic(self.folder / key.sidecar_name, (json.dumps(sidecar, indent=2, sort_keys=True) + "\n").encode())
        for entry in self.stale(key):
            self.remove(entry.key)
        return path

    def remove(self, key: EngineKey) -> None:
        """Deletes ``key``'s sidecar (first: the entry is gone at once) and engine, if present."""
        (self.folder / key.sidecar_name).unlink(missing_ok=True)
        self.engine_path(key).unlink(missing_ok=True)
