"""The package's build facts, its light import and its command line."""

from __future__ import annotations

import importlib.metadata
import json
import subprocess
import sys

import pytest

import fusionrt
from fusionrt import cli
from fusionrt._optional import require


def test_build_info_reports_what_was_compiled():
    info = fusionrt.build_info()
    assert info["version"] == fusionrt.__version__ == importlib.metadata.version("fusionrt")
    assert isinstance(info["openmp"], bool) and isinstance(info["cuda"], bool)
    assert info["compiler"] and info["compiler"] != "unknown"
    if info["cuda"]:
        assert info["cuda_version"].split(".")[0].isdigit()
        assert info["cuda_architectures"] and all(isinstance(a, int) for a in info["cuda_architectures"])
    else:
        assert info["cuda_version"] is None and info["cuda_architectures"] is None
    assert info["tensorrt"] is None or info["tensorrt"][0].isdigit()
    assert info["torch"] is None or info["torch"][0].isdigit()
    assert isinstance(info["torch_cuda_kernels"], bool)
    assert not info["torch_cuda_kernels"] or (info["torch"] and info["cuda"])


def test_cuda_available_is_false_without_a_cuda_build_and_never_raises():
    available = fusionrt.cuda_available()
    assert isinstance(available, bool)
    if not fusionrt.build_info()["cuda"]:
        assert available is False


def test_import_loads_no_heavy_framework():
    heavy = ("torch", "onnxruntime", "onnx", "tensorrt", "transformers", "timm", "tokenizers")
    code = f"import sys, fusionrt; print([m for m in sys.modules if m.split('.')[0] in {heavy!r}])"
    loaded = subprocess.run([sys.executable, "-c", code], check=True, capture_output=True, text=True).stdout
    assert loaded.strip() == "[]"


def test_missing_optional_dependency_names_the_extra():
    with pytest.raises(ImportError, match=r"pip install fusionrt\[onnx\]"):
        require("onnxruntime.this_module_does_not_exist")


def test_cli_info_prints_build_facts(capsys):
    assert cli.main(["info"]) == 0
    printed = json.loads(capsys.readouterr().out)
    assert printed["build"] == fusionrt.build_info()
    assert printed["cuda_available"] == fusionrt.cuda_available()


def test_cli_op_demo_checks_the_op_against_numpy(capsys):
    assert cli.main(["op-demo", "--batch", "3", "--repeats", "20"]) == 0
    rows = [line for line in capsys.readouterr().out.splitlines() if "+" in line and "e-" in line]
    assert len(rows) == len(cli.STUDY_FEATURE_SIZES)
    assert all(float(row.split()[-3]) < 1e-4 for row in rows)
