"""A bundle's ``execution.json`` (the ONNX Runtime calibration ``execution="auto"`` reads) is untrusted:
a malformed one is a BundleError naming the file and the field, a missing one means "not calibrated"."""

from __future__ import annotations

import json

import pytest

pytest.importorskip("onnxruntime")
import fusionrt  # noqa: E402
from fusionrt.backends import RunOptions  # noqa: E402
from fusionrt.backends.onnxruntime.execution import (  # noqa: E402
    CALIBRATION_FILE,
    _record,
    calibration_key,
    read_records,
    recorded_mode,
)
from fusionrt.bundle import BundleError  # noqa: E402

OPTIONS = RunOptions(device="cpu", precision="fp32", threads=2)
KEY = calibration_key(OPTIONS)


def record(**changes) -> dict:
    """A record as choose_execution writes it, with ``changes``."""
    return {"mode": "branches", "latency_ms": {"sequential": 2.0, "parallel": 1.9, "branches": 1.5},
            "min_ms": {"sequential": 1.8, "parallel": 1.7, "branches": 1.4}, "slower_branch_ms": 1.4,
            "branch_ms": {"text": 0.9, "image": 1.4}, "ratio_to_slower_branch": 1.07, "speedup_vs_sequential": 1.33,
            "batch": 1, "repeats": 30, "key": KEY, **changes}


def test_a_missing_file_is_no_calibration(tmp_path):
    assert read_records(tmp_path) == {}
    assert recorded_mode(tmp_path, OPTIONS) is None


def test_a_written_record_is_read_back(tmp_path):
    (tmp_path / CALIBRATION_FILE).write_text(json.dumps({KEY: record()}))
    assert recorded_mode(tmp_path, OPTIONS) == "branches"
    assert recorded_mode(tmp_path, OPTIONS.replace(threads=3)) is None  # another key: not calibrated
    assert read_records(tmp_path)[KEY].branch_ms == {"text": 0.9, "image": 1.4}


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b"\xff\xfe{}", "is not UTF-8 text"),
        (b"{not json", "is not valid JSON"),
        (b"[" * 100_000, "is not valid JSON"),  # nesting deep enough to exhaust the parser
        (b"[1, 2]", "holds a list, expected a JSON object of calibration records by key"),
        (json.dumps({KEY: "branches"}).encode(), r"\[.*\] is a str \('branches'\), expected a JSON object"),
        (json.dumps({KEY: record(mode=3)}).encode(), r"\.mode is a int \(3\), expected a string"),
        (json.dumps({KEY: record(mode="fastest")}).encode(), r"\.mode is 'fastest', expected one of \['sequential'"),
        (json.dumps({KEY: record(latency_ms=[1.0])}).encode(), r"\.latency_ms is a list .*, expected a JSON object"),
        (json.dumps({KEY: record(batch=True)}).encode(), r"\.batch is a bool \(True\), expected an integer"),
        (json.dumps({KEY: record(moed="branches")}).encode(), r"unknown field 'moed' \(did you mean 'mode'\?\)"),
        (json.dumps({KEY: {k: v for k, v in record().items() if k != "mode"}}).encode(), "lacks the field 'mode'"),
        (json.dumps({KEY: record(key="other")}).encode(), r"\.key is 'other', expected the key it is filed under"),
    ],
)
def test_a_malformed_file_names_the_file_and_the_field(tmp_path, content, message):
    (tmp_path / CALIBRATION_FILE).write_bytes(content)
    with pytest.raises(BundleError, match=message) as error:
        recorded_mode(tmp_path, OPTIONS)
    assert str(tmp_path / CALIBRATION_FILE) in str(error.value)
    assert f"delete {CALIBRATION_FILE}" in str(error.value)


def test_an_unreadable_file_is_a_bundle_error(tmp_path):
    (tmp_path / CALIBRATION_FILE).mkdir()  # a directory where the file belongs: reading fails with an OSError
    with pytest.raises(BundleError, match=f"{CALIBRATION_FILE} cannot be read"):
        recorded_mode(tmp_path, OPTIONS)


def test_recording_keeps_other_records_and_replaces_a_malformed_file(tmp_path):
    other = calibration_key(OPTIONS.replace(threads=4))
    (tmp_path / CALIBRATION_FILE).write_text(json.dumps({other: record(key=other, mode="parallel")}))
    _record(tmp_path, record())
    assert {k: r.mode for k, r in read_records(tmp_path).items()} == {other: "parallel", KEY: "branches"}
    (tmp_path / CALIBRATION_FILE).write_text("{not json")
    with pytest.warns(UserWarning, match="is not valid JSON.*replacing it with this calibration"):
        _record(tmp_path, record())
    assert list(read_records(tmp_path)) == [KEY]


def test_load_with_auto_execution_reports_a_malformed_file(tmp_path_factory):
    from tiny_bundles import tiny_bundle

    bundle = tiny_bundle(tmp_path_factory, "late")
    path = bundle / CALIBRATION_FILE
    try:
        path.write_text(json.dumps({calibration_key(RunOptions()): record(key=calibration_key(RunOptions()),
                                                                          speedup_vs_sequential="fast")}))
        with pytest.raises(BundleError, match=r"execution\.json: .*\.speedup_vs_sequential is a str"):
            fusionrt.load(bundle, backend="onnxruntime")
        assert fusionrt.load(bundle, backend="onnxruntime", execution="sequential").backend == "onnxruntime"
    finally:
        path.unlink(missing_ok=True)  # the shared bundle's other users stay uncalibrated
