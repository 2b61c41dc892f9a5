"""--timeout-seconds is enforced by the parent process (supervisor.py), never inside the work.

The alarm of before raised an exception wherever the conversion's main thread was, and
left locks held (a logging handler's, in the hang of issue 21). Now the parent stops the
child's process group at the deadline (SIGTERM, a grace, SIGKILL) and writes the Timeout
report with what the child told it over the progress pipe. These tests drive that with
real child processes that run no TensorFlow: one busy in Python, one in a C call, one that
ignores SIGTERM, one with a grandchild, and the old reproduction of the hang.
"""

from __future__ import annotations

import io
import json
import logging
import sys
import textwrap
import time
from pathlib import Path
from typing import Any

import pytest

from trtserve_converter.progress import ProgressChannel
from trtserve_converter.supervisor import supervise

TELL = "from trtserve_converter.progress import channel\n"
FIELDS = {"precision": "FP16", "model_name": "m", "durations": {"inspect": 0.25}}


def child(body: str) -> list[str]:
    return [sys.executable, "-c", TELL + textwrap.dedent(body)]


def run(
    tmp_path: Path, body: str, timeout: float | None = 0.5, grace: float = 10, **kw: Any
) -> tuple[int, dict[str, Any] | None, str]:
    report = tmp_path / "report.json"
    out = io.StringIO()
    code = supervise(
        child(body),
        report_path=str(report),
        timeout_seconds=timeout,
        grace_seconds=grace,
        out=out,
        **kw,
    )
    data = json.loads(report.read_text()) if report.exists() else None
    return code, data, out.getvalue()


def stopped_with(caplog: pytest.LogCaptureFixture) -> str:
    messages = [r.getMessage() for r in caplog.records if r.name == "trtserve_converter.supervisor"]
    return "SIGKILL" if any("SIGKILL" in m for m in messages) else "SIGTERM"


def test_a_child_busy_in_python_is_stopped_and_the_report_names_its_step(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, "trtserve_converter.supervisor")
    code, report, out = run(
        tmp_path,
        f"""
        channel().send(step="inspect", fields={{}})
        channel().send(step="fetch", fields={FIELDS!r})
        while True:
            pass
        """,
    )
    assert code == 60
    assert report is not None
    assert (report["result"], report["reason"], report["exitCode"]) == ("Failed", "Timeout", 60)
    assert "--timeout-seconds=0.5" in report["message"]
    assert "stopped in step fetch" in report["message"]
    assert (report["precision"], report["modelName"]) == ("FP16", "m")
    durations = report["durations"]
    assert durations["inspect"] == 0.25  # what the child had finished
    assert 0 < durations["fetch"] <= durations["total"]  # the step it was stopped in
    assert durations["total"] >= 0.5
    assert stopped_with(caplog) == "SIGTERM"
    last = json.loads(out.splitlines()[-1])  # --log-format json: our line says why
    assert last["level"] == "ERROR"
    assert last["message"].startswith("Timeout: ")


def test_a_child_inside_a_c_call_is_stopped(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """A regular expression that backtracks for hours holds the GIL inside C: no Python
    signal handler could run there, the kernel's SIGTERM still ends it."""
    caplog.set_level(logging.INFO, "trtserve_converter.supervisor")
    code, report, _ = run(
        tmp_path,
        """
        import re
        channel().send(step="convert", fields={})
        re.match(r"(a+)+$", "a" * 64 + "b")
        """,
    )
    assert code == 60
    assert report is not None
    assert report["reason"] == "Timeout"
    assert "stopped in step convert" in report["message"]
    assert stopped_with(caplog) == "SIGTERM"


def test_a_child_that_ignores_sigterm_is_killed_after_the_grace(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, "trtserve_converter.supervisor")
    code, report, _ = run(
        tmp_path,
        """
        import signal, time
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        channel().send(step="build", fields={})
        while True:
            time.sleep(0.01)
        """,
        grace=0.5,
    )
    assert code == 60
    assert report is not None
    assert "stopped in step build" in report["message"]
    assert stopped_with(caplog) == "SIGKILL"


def test_a_child_stopped_before_its_first_step_says_so(tmp_path: Path) -> None:
    code, report, _ = run(tmp_path, "import time\ntime.sleep(600)\n", json_stderr=False)
    assert code == 60
    assert report is not None
    assert "before its first step" in report["message"]
    assert set(report["durations"]) == {"total"}


def process_is_gone(pid: int) -> bool:
    stat = Path(f"/proc/{pid}/stat")
    try:
        return stat.read_text().rsplit(")", 1)[1].split()[0] == "Z"  # a zombie is gone too
    except (OSError, IndexError):
        return True


def test_the_whole_process_group_is_stopped_and_the_work_dir_removed(tmp_path: Path) -> None:
    """The load check's grandchild (and the pipe it holds) must not outlive the deadline;
    the work directory is the parent's to remove once the child can no longer write it."""
    pid_file, work_dir = tmp_path / "grandchild.pid", tmp_path / "work"
    code, report, _ = run(
        tmp_path,
        f"""
        import os, subprocess, sys, time
        os.mkdir({str(work_dir)!r})
        open(os.path.join({str(work_dir)!r}, "partial"), "w").write("half")
        channel().send(work_dir={str(work_dir)!r})
        grandchild = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(600)"])
        open({str(pid_file)!r}, "w").write(str(grandchild.pid))
        channel().send(step="accuracy", fields={{}})
        time.sleep(600)
        """,
        timeout=2,
    )
    assert code == 60
    assert report is not None
    assert "stopped in step accuracy" in report["message"]
    grandchild = int(pid_file.read_text())
    for _ in range(100):
        if process_is_gone(grandchild):
            break
        time.sleep(0.05)
    assert process_is_gone(grandchild)
    assert not work_dir.exists()


def test_a_served_model_whose_publish_is_stopped_still_succeeds(tmp_path: Path) -> None:
    """The model is in place when the cache publish starts: stopping the publish at the
    deadline is a failed publish (a warning), as any other publish failure."""
    code, report, _ = run(
        tmp_path,
        """
        import time
        fields = {"model_name": "m", "cache": {"result": "Miss", "key": "k"}}
        channel().send(step="save", fields=fields)
        channel().send(step="publish", served="served m version 1", fields=fields)
        time.sleep(600)
        """,
    )
    assert code == 0
    assert report is not None
    assert (report["result"], report["message"]) == ("Succeeded", "served m version 1")
    assert report["cache"]["result"] == "PublishFailed"
    assert report["cache"]["key"] == "k"
    assert "--timeout-seconds=0.5" in report["cache"]["warning"]


def test_a_child_within_its_deadline_keeps_its_exit_code_and_report(tmp_path: Path) -> None:
    code, report, _ = run(
        tmp_path,
        """
        import sys
        channel().send(step="fetch", fields={})
        sys.exit(12)
        """,
        timeout=60,
    )
    assert (code, report) == (12, None)  # the child's report is its own to write


def test_progress_is_not_sent_without_a_parent() -> None:
    """In-process (no pipe in the environment) the channel is off and sending is a no-op."""
    channel = ProgressChannel.from_environment({})
    assert not channel.enabled
    channel.send(step="fetch")


# The hang of issue 21: short deadlines over code that logs from several threads. With the
# alarm, about one run in twenty left a logging lock held; each run here must end, every
# time, with the Timeout report.
STRESS_RUNS = 1000
LOGGING_FROM_THREADS = """
import logging, os, threading
logging.basicConfig(level=logging.INFO, format="%(threadName)s %(message)s")
log = logging.getLogger("converting")
def work():
    while True:
        log.info("converting")
for _ in range(3):
    threading.Thread(target=work, daemon=True).start()
os.write(int(os.environ["TRTSERVE_CONVERTER_PROGRESS_FD"]), b'{"step":"convert"}\\n')
work()
"""


@pytest.mark.slow
def test_the_old_deadlock_reproduction_never_hangs(tmp_path: Path) -> None:
    # A bare `python -S` child that writes the progress line itself: it starts in about
    # 10 ms, so most runs are stopped while their threads log.
    command = [sys.executable, "-S", "-c", LOGGING_FROM_THREADS]
    codes = []
    in_work = 0
    for attempt in range(STRESS_RUNS):
        report = tmp_path / f"report-{attempt % 2}.json"
        codes.append(
            supervise(
                command,
                report_path=str(report),
                timeout_seconds=0.005 if attempt % 2 else 0.05,  # before and after its first step
                grace_seconds=5,
                out=(out := io.StringIO()),
            )
        )
        assert report.exists(), (attempt, codes[-1], out.getvalue()[-300:])
        data = json.loads(report.read_text())
        assert data["reason"] == "Timeout", attempt
        in_work += "stopped in step convert" in data["message"]
    assert set(codes) == {60}
    print(f"{in_work} of {STRESS_RUNS} runs were stopped while their threads logged")
    assert in_work > 0
