"""Converge decisions: create when missing, no-op when what exists holds the rendering."""

from __future__ import annotations

import copy
from typing import Any

from builder_inputs import EXAMPLES, SETTINGS, rendered

from trtserve_operator.api.v1alpha1 import TRTModelSpec
from trtserve_operator.services.builders import build_children
from trtserve_operator.services.builders.target import Target
from trtserve_operator.services.converge import Action, contains, plan, removal
from trtserve_operator.services.quantities import parse_quantity


def desired() -> dict[str, Any]:
    return rendered(EXAMPLES[0])[0].deployment


def as_returned_by_the_api(obj: dict[str, Any]) -> dict[str, Any]:
    """What an API server adds: defaults, uid, resourceVersion, status, managedFields."""
    actual = copy.deepcopy(obj)
    actual["metadata"].update(uid="x", resourceVersion="7", generation=2, managedFields=[{}])
    actual["metadata"].setdefault("annotations", {})["deployment.kubernetes.io/revision"] = "2"
    pod = actual["spec"]["template"]["spec"]
    pod.update(restartPolicy="Always", dnsPolicy="ClusterFirst", schedulerName="default")
    for container in pod["containers"] + pod["initContainers"]:
        container.update(imagePullPolicy="IfNotPresent", terminationMessagePath="/dev/x")
    actual["status"] = {"replicas": 1}
    return actual


def test_missing_object_is_created() -> None:
    assert plan(desired(), None).action is Action.CREATE


def test_unchanged_object_with_server_defaults_is_left_alone() -> None:
    wanted = desired()
    assert plan(wanted, as_returned_by_the_api(wanted)).action is Action.NOOP


def test_hand_edit_is_patched_back_with_the_managed_fields_only() -> None:
    wanted = desired()
    actual = as_returned_by_the_api(wanted)
    actual["spec"]["template"]["spec"]["containers"][0]["image"] = "evil:1"
    step = plan(wanted, actual)
    assert step.action is Action.PATCH
    assert step.patch is not None
    assert set(step.patch) == {"metadata", "spec"}
    assert step.patch["spec"] == wanted["spec"]
    assert "status" not in step.patch


def test_an_added_container_is_a_difference() -> None:
    wanted = desired()
    actual = as_returned_by_the_api(wanted)
    actual["spec"]["template"]["spec"]["containers"].append({"name": "sidecar", "image": "x"})
    assert plan(wanted, actual).action is Action.PATCH


def test_object_being_deleted_is_created_again() -> None:
    wanted = desired()
    actual = as_returned_by_the_api(wanted)
    actual["metadata"]["deletionTimestamp"] = "2026-01-01T00:00:00Z"
    assert plan(wanted, actual).action is Action.CREATE


def test_contains_compares_lists_by_position_and_length() -> None:
    assert contains({"a": [{"x": 1, "y": 2}]}, {"a": [{"x": 1}]})
    assert not contains({"a": [{"x": 1}, {"x": 2}]}, {"a": [{"x": 1}]})
    assert not contains({"a": "1"}, {"a": 1})


def test_quantities_in_canonical_form_are_not_a_difference() -> None:
    wanted = rendered_with_resources({"cpu": "0.5", "memory": "1024Mi"}, {"memory": "2Gi"})
    actual = as_returned_by_the_api(wanted)
    for container in actual["spec"]["template"]["spec"]["containers"]:
        container["resources"] = {
            "requests": {"cpu": "500m", "memory": "1Gi"},
            "limits": {"memory": "2048Mi", "nvidia.com/gpu": "1"},
        }
    for container in actual["spec"]["template"]["spec"]["initContainers"]:
        container["resources"] = copy.deepcopy(
            actual["spec"]["template"]["spec"]["containers"][0]["resources"]
        )
    assert plan(wanted, actual).action is Action.NOOP
    actual["spec"]["template"]["spec"]["containers"][0]["resources"]["requests"]["cpu"] = "600m"
    assert plan(wanted, actual).action is Action.PATCH


def test_quantity_parsing() -> None:
    assert parse_quantity("500m") == parse_quantity("0.5")
    assert parse_quantity("1Gi") == parse_quantity("1024Mi") == 2**30
    assert parse_quantity("1e3") == parse_quantity("1k") == 1000
    assert parse_quantity("12Qi") is None
    assert parse_quantity("latest") is None
    # Outside requests/limits, text is text.
    assert not contains({"value": "1k"}, {"value": "1000"})


def rendered_with_resources(requests: dict[str, str], limits: dict[str, str]) -> dict[str, Any]:
    spec = TRTModelSpec.model_validate(
        {
            "source": {"uri": "s3://b/m"},
            "serving": {"resources": {"requests": requests, "limits": limits}},
        }
    )
    target = Target("m", "ns", spec, uid="u")
    return build_children(target, SETTINGS).deployment


def test_an_unwanted_child_is_deleted_only_if_the_model_controls_it() -> None:
    gone = {"kind": "PodDisruptionBudget", "metadata": {"namespace": "ns", "name": "m"}}
    ours = {"metadata": {"name": "m", "ownerReferences": [{"uid": "u", "controller": True}]}}
    assert removal(gone, None, "u").action is Action.NOOP
    assert removal(gone, ours, "u").action is Action.DELETE
    assert removal(gone, ours, "other-uid").action is Action.NOOP  # someone else's
    unowned = {"metadata": {"name": "m"}}
    assert removal(gone, unowned, "u").action is Action.NOOP
    going = {"metadata": {**ours["metadata"], "deletionTimestamp": "t"}}
    assert removal(gone, going, "u").action is Action.NOOP
