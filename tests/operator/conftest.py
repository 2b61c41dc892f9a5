"""Fixtures of the operator tests: the kmock emulator and the operator process."""

from __future__ import annotations

import socket
from collections.abc import Iterator

import pytest
from kmock_cluster import EmulatedCluster

TEST_CONVERTER_IMAGE = "example.com/trtserve/converter:test"
NO_ELECTION = "false"
"""The emulator has no PUT and no resourceVersion, which a Lease needs: the operator runs
as the only replica here. The elector is tested against a Lease store with the API
server's semantics (test_election.py) and measured on a real API server
(benchmarks/failover.sh)."""


@pytest.fixture(autouse=True)
def converter_image(monkeypatch: pytest.MonkeyPatch) -> str:
    """The operator as it is deployed: with a converter image (TRTSERVE_CONVERTER_IMAGE,
    which has no default); tests of the missing image delete it."""
    monkeypatch.setenv("TRTSERVE_CONVERTER_IMAGE", TEST_CONVERTER_IMAGE)
    monkeypatch.setenv("TRTSERVE_LEADER_ELECTION", NO_ELECTION)
    return TEST_CONVERTER_IMAGE


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EmulatedCluster]:
    """One emulator per test module, with KUBECONFIG pointing at it."""
    emulated = EmulatedCluster()
    emulated.start()
    kubeconfig = emulated.kubeconfig(tmp_path_factory.mktemp("kube") / "config")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("KUBECONFIG", str(kubeconfig))
        patch.delenv("KUBERNETES_SERVICE_HOST", raising=False)
        patch.setenv("TRTSERVE_CONVERTER_IMAGE", TEST_CONVERTER_IMAGE)
        patch.setenv("TRTSERVE_LEADER_ELECTION", NO_ELECTION)
        patch.setenv("TRTSERVE_METRICS_PORT", str(free_port()))
        patch.setenv("TRTSERVE_HEALTH_PORT", str(free_port()))
        yield emulated
    emulated.stop()
