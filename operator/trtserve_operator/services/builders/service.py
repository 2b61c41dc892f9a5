"""The ClusterIP Service in front of the serving pods."""

from __future__ import annotations

from typing import Any

from trtserve_operator.services.builders.names import (
    GRPC_PORT,
    REST_PORT,
    child_metadata,
    selector_labels,
)
from trtserve_operator.services.builders.target import Target


def build_service(target: Target) -> dict[str, Any]:
    """Service ``<name>`` with ports ``grpc`` 8500 and ``http`` 8501."""
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": child_metadata(target, target.name),
        "spec": {
            "type": "ClusterIP",
            "selector": selector_labels(target),
            "ports": [
                {
                    "name": "grpc",
                    "port": GRPC_PORT,
                    "targetPort": "grpc",
                    "protocol": "TCP",
                    "appProtocol": "grpc",
                },
                {
                    "name": "http",
                    "port": REST_PORT,
                    "targetPort": "http",
                    "protocol": "TCP",
                    "appProtocol": "http",
                },
            ],
        },
    }
