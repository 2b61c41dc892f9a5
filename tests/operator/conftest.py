"""Fixtures of the operator tests: the kmock emulator and the operator process."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from kmock_cluster import EmulatedCluster


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EmulatedCluster]:
    """One emulator per test module, with KUBECONFIG pointing at it."""
    emulated = EmulatedCluster()
    emulated.start()
    kubeconfig = emulated.kubeconfig(tmp_path_factory.mktemp("kube") / "config")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("KUBECONFIG", str(kubeconfig))
        patch.delenv("KUBERNETES_SERVICE_HOST", raising=False)
        patch.setenv("TRTSERVE_CONVERTER_IMAGE", "example.com/trtserve/converter:test")
        yield emulated
    emulated.stop()
