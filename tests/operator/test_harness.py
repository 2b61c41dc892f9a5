"""The test harness itself: an operator that never stops fails its test, says where it is
stuck, and cannot keep the test process (and CI) running after the session."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

HERE = Path(__file__).parent

STUCK_OPERATOR = textwrap.dedent(
    """
    import os, sys, time
    sys.path.insert(0, sys.argv[1])
    from pathlib import Path
    from conftest import free_port
    from kmock_cluster import EmulatedCluster, operator_running
    from trtserve_operator.kube import watch

    async def stuck_stop(self):
        time.sleep(3600)  # blocks the operator's event loop: its cleanup never finishes

    watch.Informer.stop = stuck_stop
    cluster = EmulatedCluster()
    cluster.start()
    os.environ["KUBECONFIG"] = str(cluster.kubeconfig(Path(sys.argv[2])))
    os.environ.pop("KUBERNETES_SERVICE_HOST", None)
    os.environ["TRTSERVE_CONVERTER_IMAGE"] = "example.com/trtserve/converter:test"
    os.environ["TRTSERVE_METRICS_PORT"] = str(free_port())
    os.environ["TRTSERVE_HEALTH_PORT"] = str(free_port())
    try:
        with operator_running(timeout=2):
            time.sleep(2)
    except Exception as error:
        print("RAISED", error, file=sys.__stderr__, flush=True)
    """
)


@pytest.mark.timeout(120)
def test_an_operator_that_does_not_stop_fails_with_its_stacks_and_the_process_exits(
    tmp_path: Path,
) -> None:
    done = subprocess.run(
        [sys.executable, "-c", STUCK_OPERATOR, str(HERE), str(tmp_path / "kubeconfig")],
        check=False,
        capture_output=True,
        text=True,
        timeout=90,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert "RAISED The operator didn't stop, still running." in done.stderr
    assert "the operator did not stop" in done.stderr
    assert "in stuck_stop" in done.stderr  # where it is stuck
