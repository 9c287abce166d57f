"""The host fingerprint and a Jetson's extras (L4T, power mode, clocks, INA3221 rails, energy per
inference), read from fake /proc and /sys trees laid out as on JetPack 4 (iio) and 5 / 6 / 7 (hwmon)."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from fusionrt.benchmarks import host, jetson
from fusionrt.benchmarks.energy import EnergyMeter, SysfsMeter, summarize
from fusionrt.benchmarks.sampler import Sampler

ORIN_CPUINFO = "processor\t: 0\nBogoMIPS\t: 62.50\nCPU part\t: 0xd42\n\nprocessor\t: 1\nModel\t: NVIDIA Jetson AGX Orin\n"
X86_CPUINFO = "".join(
    f"processor\t: {i}\nmodel name\t: AMD EPYC 7B13\nphysical id\t: 0\ncore id\t: {i // 2}\n\n" for i in range(4)
)


def _write(root: Path, relative: str, text: str) -> None:
    path = root / relative
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)


@pytest.fixture
def orin(tmp_path) -> Path:
    """A JetPack 6 AGX Orin's files: release, board, clocks and three INA3221 channels (hwmon)."""
    _write(tmp_path, "etc/nv_tegra_release", "# R36 (release), REVISION: 4.0, GCID: 37537400, BOARD: generic, EABI: aarch64\n")
    _write(tmp_path, "proc/device-tree/model", "NVIDIA Jetson AGX Orin Developer Kit\x00")
    _write(tmp_path, "proc/cpuinfo", ORIN_CPUINFO)
    for cpu, khz in enumerate((1728000, 2201600)):
        _write(tmp_path, f"sys/devices/system/cpu/cpu{cpu}/cpufreq/scaling_cur_freq", f"{khz}\n")
    _write(tmp_path, "sys/class/devfreq/17000000.ga10b/cur_freq", "1300500000\n")
    _write(tmp_path, "sys/class/devfreq/15340000.vic/cur_freq", "115200000\n")  # not the GPU
    hwmon = "sys/bus/i2c/drivers/ina3221/1-0040/hwmon/hwmon3"
    for channel, (name, mv, ma) in enumerate([("VDD_GPU_SOC", 5000, 600), ("VDD_CPU_CV", 5000, 200),
                                              ("VIN_SYS_5V0", 5000, 1000)], start=1):
        _write(tmp_path, f"{hwmon}/in{channel}_label", name + "\n")
        _write(tmp_path, f"{hwmon}/in{channel}_input", f"{mv}\n")
        _write(tmp_path, f"{hwmon}/curr{channel}_input", f"{ma}\n")
    _write(tmp_path, f"{hwmon}/in7_label", "sum of shunt voltages\n")
    _write(tmp_path, f"{hwmon}/in7_input", "5000\n")
    _write(tmp_path, f"{hwmon}/curr7_input", "1800\n")
    return tmp_path


def test_jetson_facts_from_an_orin(orin):
    facts = host.jetson_facts(orin)
    assert facts["l4t"] == "36.4.0" and facts["board"] == "NVIDIA Jetson AGX Orin Developer Kit"
    assert facts["clocks_mhz"] == {"cpu": {"min": 1728.0, "max": 2201.6}, "gpu": {"17000000.ga10b": 1300.5}}
    assert facts["power_rails"] == ["VDD_GPU_SOC", "VDD_CPU_CV", "VIN_SYS_5V0"]  # the sum channel is left out
    assert jetson.read_rails(jetson.power_rails(orin)) == {"VDD_GPU_SOC": 3000.0, "VDD_CPU_CV": 1000.0,
                                                          "VIN_SYS_5V0": 5000.0}
    assert host.cpu_facts(orin)["model"] == "NVIDIA Jetson AGX Orin"


def test_energy_per_inference_from_the_rails(orin):
    meter = EnergyMeter.find(orin)
    assert isinstance(meter, SysfsMeter)
    with meter.block():
        time.sleep(0.05)
    energy = meter.summary(calls=10, batch=2)
    _, seconds = meter.samples()
    assert energy["source"] == "ina3221 sysfs" and energy["samples"] >= 2
    assert energy["input_rail"] == "VIN_SYS_5V0"
    assert energy["mj_per_call"] == pytest.approx(5000 * seconds / 10)
    assert energy["mj_per_sample"] == pytest.approx(energy["mj_per_call"] / 2)
    assert energy["rails"]["VDD_GPU_SOC"]["mean_mw"] == pytest.approx(3000)


def test_jetpack4_iio_rails(tmp_path):
    iio = "sys/bus/i2c/drivers/ina3221x/6-0040/iio:device0"
    for channel, (name, mw) in enumerate([("POM_5V_IN", 3100), ("POM_5V_GPU", 400)]):
        _write(tmp_path, f"{iio}/rail_name_{channel}", name)
        _write(tmp_path, f"{iio}/in_power{channel}_input", str(mw))
    assert jetson.read_rails(jetson.power_rails(tmp_path)) == {"POM_5V_IN": 3100.0, "POM_5V_GPU": 400.0}
    assert jetson.input_rail(["POM_5V_GPU", "POM_5V_IN"]) == "POM_5V_IN"


def test_nothing_of_a_jetson_elsewhere_is_none_not_an_error(tmp_path):
    assert host.jetson_facts(tmp_path) is None
    assert jetson.clocks_mhz(tmp_path) is None and jetson.power_rails(tmp_path) == []
    assert EnergyMeter.find(tmp_path) is None
    assert summarize([], 1.0, 10, 1, "none") is None


@pytest.mark.parametrize("text, expected", [
    ("# R36 (release), REVISION: 4.0, GCID: 37537400, BOARD: generic", "36.4.0"),
    ("# R35 (release), REVISION: 5.0, GCID: 35550185, BOARD: t186ref", "35.5.0"),
    ("# R38 (release), REVISION: 2, GCID: 1", "38.2.0"),
    ("not a release file", None),
])
def test_l4t_release(text, expected):
    assert jetson.release_of(text) == expected


def test_nvpmodel_and_tegrastats_output():
    assert jetson.parse_nvpmodel("NV Power Mode: MAXN\n0\n") == {"name": "MAXN", "id": 0}
    assert jetson.parse_nvpmodel("NVPM WARN: ...\nNV Power Mode: 30W\n3") == {"name": "30W", "id": 3}
    assert jetson.parse_nvpmodel("command not understood") is None
    line = ("12-02-2026 10:00:00 RAM 3100/30593MB CPU [2%@1728] GR3D_FREQ 0% VDD_GPU_SOC 2400mW/2400mW "
            "VDD_CPU_CV 800mW/810mW VIN_SYS_5V0 4200mW/4150mW")
    assert jetson.parse_tegrastats(line) == {"VDD_GPU_SOC": 2400.0, "VDD_CPU_CV": 800.0, "VIN_SYS_5V0": 4200.0}


def test_cpu_facts_count_physical_cores(tmp_path):
    _write(tmp_path, "proc/cpuinfo", X86_CPUINFO)
    facts = host.cpu_facts(tmp_path)
    assert facts["model"] == "AMD EPYC 7B13" and facts["cores_physical"] == 2
    assert 1 <= facts["cores_usable"] <= facts["cores_logical"]


def test_fingerprint_of_this_machine_has_every_field():
    info = host.fingerprint()
    assert set(info) == {"hostname", "os", "machine", "cpu", "memory_total_mib", "gpu", "jetson", "versions"}
    assert info["versions"]["fusionrt"] and info["memory_total_mib"] > 0


def test_sampler_keeps_what_it_read_before_a_reader_fails():
    values = iter([1, 2])
    with Sampler(lambda: next(values), interval_s=0.001) as sampler:
        time.sleep(0.02)
    assert sampler.values() == [1, 2]
