"""What a Jetson adds to a benchmark: L4T / JetPack release, board, power mode, clocks and the power
rails (INA3221 monitors) that give energy per inference.

Every reader is optional: on other machines, or when a file is unreadable (some need root), it
returns None and never raises. Paths are read under ``root`` so tests can give a fake tree.

Layouts read:

* L4T release: ``/etc/nv_tegra_release`` (``# R36 (release), REVISION: 4.0, ...``); JetPack from the
  ``nvidia-jetpack`` package (``dpkg-query``) when it is installed,
* power mode: ``nvpmodel -q`` (``NV Power Mode: MAXN`` then the mode id),
* clocks: ``/sys/devices/system/cpu/cpu*/cpufreq/scaling_cur_freq`` (kHz), GPU devfreq
  ``/sys/class/devfreq/*/cur_freq`` (Hz), EMC ``/sys/kernel/debug/bpmp/debug/clk/emc/rate`` (root only),
* rails, JetPack 5 / 6 / 7 (hwmon): ``/sys/bus/i2c/drivers/ina3221/*/hwmon/hwmon*/in<N>_label``,
  ``in<N>_input`` (mV), ``curr<N>_input`` (mA); JetPack 4 (iio):
  ``/sys/bus/i2c/drivers/ina3221x/*/iio:device*/rail_name_<N>``, ``in_power<N>_input`` (mW),
* ``tegrastats`` lines (``VDD_IN 5012mW/5012mW``) where the rails cannot be read directly.

Example:
    >>> release_of("# R36 (release), REVISION: 4.0, GCID: 37537400, BOARD: generic, EABI: aarch64")
    '36.4.0'
    >>> parse_tegrastats("RAM 2000/7000MB CPU [1%@729] VDD_IN 4940mW/4940mW VDD_CPU_GPU_CV 512mW/512mW")
    {'VDD_IN': 4940.0, 'VDD_CPU_GPU_CV': 512.0}
"""

from __future__ import annotations

import re
import shutil
import subprocess
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

#: Rails that measure the whole module's input power, in the order looked for (Orin, Xavier / Nano).
INPUT_RAILS = ("VDD_IN", "POM_5V_IN", "VIN_SYS_5V0")

_TEGRASTATS_RAIL = re.compile(r"\b([A-Z][A-Z0-9_]+) (\d+)mW/(\d+)mW")


def _read(path: Path) -> str | None:
    try:
        return path.read_text().strip()
    except (OSError, UnicodeDecodeError):
        return None


def _command(argv: list[str], timeout: float = 5.0) -> str | None:
    """A command's stdout, or None when it is absent, fails or hangs."""
    if shutil.which(argv[0]) is None:
        return None
    try:
        run = subprocess.run(argv, capture_output=True, text=True, timeout=timeout, check=False)
    except (OSError, subprocess.SubprocessError):
        return None
    return run.stdout if run.returncode == 0 else None


def release_of(text: str) -> str | None:
    """``36.4.0`` from the first line of ``/etc/nv_tegra_release``."""
    match = re.search(r"R(\d+)\s*\(release\),\s*REVISION:\s*([\d.]+)", text)
    if match is None:
        return None
    revision = match.group(2)
    return f"{match.group(1)}.{revision}" + (".0" if revision.count(".") == 0 else "")


def l4t_release(root: Path = Path("/")) -> str | None:
    """The L4T release of this Jetson (``"36.4.0"``), None elsewhere."""
    text = _read(root / "etc/nv_tegra_release")
    return release_of(text) if text else None


def jetpack_release() -> str | None:
    """The installed ``nvidia-jetpack`` package's version (``"6.1+b123"``); None when it is not
    installed (a minimal L4T image has no such package, and L4T alone does not name the JetPack)."""
    out = _command(["dpkg-query", "-W", "-f=${Version}", "nvidia-jetpack"])
    return out.strip() or None if out else None


def board_model(root: Path = Path("/")) -> str | None:
    """The device tree's model (``"NVIDIA Jetson AGX Orin Developer Kit"``), None elsewhere."""
    text = _read(root / "proc/device-tree/model")
    return text.rstrip("\x00") if text else None


def parse_nvpmodel(text: str) -> dict[str, Any] | None:
    """``{"name": "MAXN", "id": 0}`` from ``nvpmodel -q`` output.

    Example:
        >>> parse_nvpmodel("NV Power Mode: 15W\\n1\\n")
        {'name': '15W', 'id': 1}
    """
    match = re.search(r"NV Power Mode:\s*(\S+)", text)
    if match is None:
        return None
    ids = re.findall(r"^\s*(\d+)\s*$", text[match.end():], flags=re.MULTILINE)
    return {"name": match.group(1), "id": int(ids[0]) if ids else None}


def nvpmodel_mode() -> dict[str, Any] | None:
    """The power mode ``nvpmodel -q`` reports; None without nvpmodel."""
    out = _command(["nvpmodel", "-q"])
    return parse_nvpmodel(out) if out else None


def clocks_mhz(root: Path = Path("/")) -> dict[str, Any] | None:
    """Current clocks: ``cpu`` (min and max over cores), ``gpu`` (per devfreq device whose name says
    GPU) and ``emc``; None when none is readable. Read at start, so a throttled run shows itself."""
    clocks: dict[str, Any] = {}
    cpu = [int(t) / 1e3 for p in sorted((root / "sys/devices/system/cpu").glob("cpu[0-9]*/cpufreq/scaling_cur_freq"))
           if (t := _read(p)) and t.isdigit()]
    if cpu:
        clocks["cpu"] = {"min": min(cpu), "max": max(cpu)}
    gpu = {}
    for device in sorted((root / "sys/class/devfreq").glob("*")):
        # Orin: 17000000.ga10b (or .gpu); Xavier: 17000000.gv11b; Nano / TX2: 57000000.gpu / 17000000.gp10b
        if not re.search(r"gpu|ga10b|gv11b|gp10b|gb10b", device.name):
            continue
        text = _read(device / "cur_freq")
        if text and text.isdigit():
            gpu[device.name] = int(text) / 1e6
    if gpu:
        clocks["gpu"] = gpu
    for emc in ("sys/kernel/debug/bpmp/debug/clk/emc/rate", "sys/kernel/debug/clk/emc/clk_rate"):
        text = _read(root / emc)
        if text and text.isdigit():
            clocks["emc"] = int(text) / 1e6
            break
    return clocks or None


@dataclass(frozen=True)
class Rail:
    """One INA3221 channel: its name and how to read its power now (milliwatts)."""

    name: str
    read_mw: Callable[[], float]


def _hwmon_rails(root: Path) -> list[Rail]:
    rails = []
    for label in sorted(root.glob("sys/bus/i2c/drivers/ina3221*/*/hwmon/hwmon*/in*_label")):
        name, channel = _read(label), label.name.removesuffix("_label").removeprefix("in")
        volts, amps = label.with_name(f"in{channel}_input"), label.with_name(f"curr{channel}_input")
        if name and "sum" not in name.lower() and _read(volts) and _read(amps):
            rails.append(Rail(name, lambda v=volts, a=amps: int(v.read_text()) * int(a.read_text()) / 1e3))
    return rails


def _iio_rails(root: Path) -> list[Rail]:
    rails = []
    for label in sorted(root.glob("sys/bus/i2c/drivers/ina3221*/*/iio:device*/rail_name_*")):
        name, channel = _read(label), label.name.removeprefix("rail_name_")
        power = label.with_name(f"in_power{channel}_input")
        if name and _read(power):
            rails.append(Rail(name, lambda p=power: float(p.read_text())))
    return rails


def power_rails(root: Path = Path("/")) -> list[Rail]:
    """The readable power rails (hwmon layout first, then iio); empty on other machines or without
    permission to read them."""
    rails = _hwmon_rails(root) or _iio_rails(root)
    readable = []
    for rail in rails:
        try:
            rail.read_mw()
            readable.append(rail)
        except (OSError, ValueError):
            continue
    return readable


def read_rails(rails: list[Rail]) -> dict[str, float]:
    """``{rail: milliwatts}`` now."""
    return {rail.name: rail.read_mw() for rail in rails}


def parse_tegrastats(line: str) -> dict[str, float]:
    """``{rail: current milliwatts}`` from one tegrastats line (``NAME now mW/average mW`` pairs)."""
    return {name: float(now) for name, now, _ in _TEGRASTATS_RAIL.findall(line)}


def input_rail(names: list[str] | tuple[str, ...] | set[str]) -> str | None:
    """The rail that measures the whole module (:data:`INPUT_RAILS`), None when none of them is present."""
    return next((name for name in INPUT_RAILS if name in names), None)
