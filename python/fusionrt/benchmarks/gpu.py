"""GPU facts ``fusionrt._C`` does not report, from the CUDA driver (``libcuda``) through ctypes: the SM
count and memory in use (for peak device memory). Only called where ``fusionrt.cuda_available()``;
every failure gives None.

Memory in use is ``cuMemGetInfo``'s total minus free: the whole device, so other processes count
too (the peak is taken relative to the use before the bundle was loaded). On Jetson's integrated GPU
it is the shared system memory.

Example:
    >>> sm_count(0)  # doctest: +SKIP
    132
"""

from __future__ import annotations

import ctypes
import functools

_MULTIPROCESSOR_COUNT = 16  # CU_DEVICE_ATTRIBUTE_MULTIPROCESSOR_COUNT


@functools.cache
def _driver() -> ctypes.CDLL | None:
    try:
        lib = ctypes.CDLL("libcuda.so.1")
    except OSError:
        return None
    return lib if lib.cuInit(0) == 0 else None


def _device(index: int) -> ctypes.c_int | None:
    lib = _driver()
    device = ctypes.c_int()
    if lib is None or lib.cuDeviceGet(ctypes.byref(device), index) != 0:
        return None
    return device


def sm_count(index: int = 0) -> int | None:
    """Streaming multiprocessors of device ``index``; None without a driver."""
    lib, device = _driver(), _device(index)
    value = ctypes.c_int()
    if lib is None or device is None:
        return None
    if lib.cuDeviceGetAttribute(ctypes.byref(value), _MULTIPROCESSOR_COUNT, device) != 0:
        return None
    return value.value


class MemoryProbe:
    """Reads device ``index``'s memory in use through its primary context (the one the CUDA runtime,
    and so TensorRT, uses: retaining it here creates no second context)."""

    def __init__(self, index: int = 0) -> None:
        lib, device = _driver(), _device(index)
        if lib is None or device is None:
            raise RuntimeError("no CUDA driver or device")
        self._lib = lib
        self._context = ctypes.c_void_p()
        if lib.cuDevicePrimaryCtxRetain(ctypes.byref(self._context), device) != 0:
            raise RuntimeError("cuDevicePrimaryCtxRetain failed")
        self._device = device

    def used_bytes(self) -> int:
        """Device memory in use now (all processes)."""
        free, total = ctypes.c_size_t(), ctypes.c_size_t()
        if self._lib.cuCtxPushCurrent_v2(self._context) != 0:
            raise RuntimeError("cuCtxPushCurrent failed")
        try:
            if self._lib.cuMemGetInfo_v2(ctypes.byref(free), ctypes.byref(total)) != 0:
                raise RuntimeError("cuMemGetInfo failed")
        finally:
            self._lib.cuCtxPopCurrent_v2(ctypes.byref(ctypes.c_void_p()))
        return total.value - free.value

    def close(self) -> None:
        self._lib.cuDevicePrimaryCtxRelease_v2(self._device)
