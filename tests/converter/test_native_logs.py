"""--log-format json: native (C++) lines on stderr become JSON records too (issue 8, item 10).

TensorFlow's C++ logging and anything else writing to file descriptor 2 bypass Python's
logging. With --log-format json the converter runs as a child process whose stderr is a
pipe read by its parent (`supervise`); these tests drive that with real subprocesses.
"""

from __future__ import annotations

import io
import json
import sys
from pathlib import Path

from trtserve_converter.native_logs import format_line
from trtserve_converter.report import Report, write_report
from trtserve_converter.supervisor import supervise

TF_LINE = (
    "2026-12-01 08:56:31.287958: I tensorflow/core/platform/cpu_feature_guard.cc:210] "
    "This TensorFlow binary is optimized to use available CPU instructions."
)
ABSL_LINE = (
    "W1201 09:07:39.139740   23245 ssl_transport_security.cc:2563] Handshake failed with error"
)


def test_tensorflow_and_absl_lines_are_parsed() -> None:
    entry, level = format_line(TF_LINE, "INFO")
    record = json.loads(entry)
    assert (record["level"], record["logger"]) == ("INFO", "native")
    assert record["source"] == "tensorflow/core/platform/cpu_feature_guard.cc:210"
    assert (
        record["message"]
        == "This TensorFlow binary is optimized to use available CPU instructions."
    )
    assert level == "INFO"
    record = json.loads(format_line(ABSL_LINE, "INFO")[0])
    assert (record["level"], record["source"]) == ("WARNING", "ssl_transport_security.cc:2563")
    fatal = json.loads(format_line(TF_LINE.replace(": I ", ": F "), "INFO")[0])
    assert fatal["level"] == "CRITICAL"


def test_continuation_lines_keep_the_level_and_json_passes_through() -> None:
    entry, _ = format_line("To enable the following instructions: AVX2 FMA", "WARNING")
    assert json.loads(entry) | {"time": None} == {
        "time": None,
        "level": "WARNING",
        "logger": "native",
        "message": "To enable the following instructions: AVX2 FMA",
    }
    ours = '{"time":"2026-01-01T00:00:00+00:00","level":"INFO","logger":"x","message":"m"}'
    assert format_line(ours, "ERROR") == (ours, "ERROR")
    broken = '{"time": not json'
    assert json.loads(format_line(broken, "INFO")[0])["message"] == broken


def test_every_line_of_a_child_becomes_json(tmp_path: Path) -> None:
    """Native writes to fd 2 (os.write, not Python logging) and partial last lines."""
    script = (
        "import os\n"
        f"os.write(2, {TF_LINE + chr(10)!r}.encode())\n"
        "os.write(2, b'continued\\n')\n"
        "os.write(2, b'\\xff not utf-8\\n')\n"
        "os.write(2, b'no newline at the end')\n"
    )
    out = io.StringIO()
    code = supervise([sys.executable, "-c", script], out=out)
    assert code == 0
    records = [json.loads(line) for line in out.getvalue().splitlines()]
    assert [r["message"] for r in records] == [
        "This TensorFlow binary is optimized to use available CPU instructions.",
        "continued",
        "\ufffd not utf-8",
        "no newline at the end",
    ]
    assert {r["level"] for r in records} == {"INFO"}


def test_a_crashing_child_still_gets_its_last_lines_and_a_report(tmp_path: Path) -> None:
    """An abort in native code: every line written before it is kept, and the report
    says what happened (the child could not write one)."""
    report = tmp_path / "report.json"
    script = (
        "import os\n"
        "os.write(2, b'2026-12-01 08:56:31.287958: F tensorflow/core/x.cc:1] Check failed\\n')\n"
        "os.abort()\n"
    )
    out = io.StringIO()
    code = supervise([sys.executable, "-c", script], out=out, report_path=str(report))
    assert code == 70
    records = [json.loads(line) for line in out.getvalue().splitlines()]
    assert records[0]["level"] == "CRITICAL"
    assert records[0]["message"] == "Check failed"
    assert "SIGABRT" in records[-1]["message"]
    data = json.loads(report.read_text())
    assert (data["reason"], data["exitCode"]) == ("InternalError", 70)
    assert "SIGABRT" in data["message"]


def test_a_child_report_is_not_overwritten(tmp_path: Path) -> None:
    report = tmp_path / "report.json"
    write_report(Report.succeeded("done"), report)
    code = supervise(
        [sys.executable, "-c", "import sys; sys.exit(0)"],
        out=io.StringIO(),
        report_path=str(report),
    )
    assert code == 0
    assert json.loads(report.read_text())["message"] == "done"
