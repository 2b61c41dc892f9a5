"""The chart grants exactly the permissions the operator uses: no more, no less, no wildcard."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import pytest
import yaml
from chart_support import NAMESPACE, Rendered, helm_template

permissions = pytest.importorskip(
    "trtserve_operator.kube.permissions", reason="the operator's permission list is not there"
)

Triple = tuple[str, str, str]

# Granted beyond REQUIRED_PERMISSIONS, each with its reason (docs/admin.md repeats them).
# Empty: the operator's list covers everything (trtmodels/finalizers included).
CHART_EXTRAS: dict[Triple, str] = {}


def required() -> set[Triple]:
    return {(group, resource, verb) for group, resource, verb in permissions.REQUIRED_PERMISSIONS}


def granted(rules: Iterable[Mapping[str, Any]]) -> set[Triple]:
    return {
        (group, resource, verb)
        for rule in rules
        for group in rule["apiGroups"]
        for resource in rule["resources"]
        for verb in rule["verbs"]
    }


def test_no_wildcards_and_no_resource_names_or_urls(rendered: Rendered) -> None:
    for role in [*rendered.of_kind("ClusterRole"), *rendered.of_kind("Role")]:
        for rule in role["rules"]:
            assert set(rule) == {"apiGroups", "resources", "verbs"}, rule
            for field in ("apiGroups", "resources", "verbs"):
                assert not any("*" in item for item in rule[field]), rule


def election() -> set[Triple]:
    return {
        (group, resource, verb) for group, resource, verb in permissions.LEADER_ELECTION_PERMISSIONS
    }


def models_roles(rendered: Rendered) -> list[Mapping[str, Any]]:
    """The Roles of the watched namespaces (not the leader election's)."""
    return [
        role
        for role in rendered.of_kind("Role")
        if not role["metadata"]["name"].endswith("-leader-election")
    ]


def test_cluster_wide_grants_exactly_what_the_operator_uses(default: Rendered) -> None:
    assert not models_roles(default)
    assert granted(default.one("ClusterRole")["rules"]) == required() | CHART_EXTRAS.keys()


def test_leases_only_in_the_release_namespace_and_only_what_the_elector_does(
    rendered: Rendered,
) -> None:
    """The leader Lease: get, create, update in the operator's namespace, nowhere else
    (no cluster-wide lease right, and none in the watched namespaces)."""
    (role,) = [
        r for r in rendered.of_kind("Role") if r["metadata"]["name"].endswith("-leader-election")
    ]
    assert role["metadata"]["namespace"] == NAMESPACE
    assert granted(role["rules"]) == election()
    for other in [*rendered.of_kind("ClusterRole"), *models_roles(rendered)]:
        assert not {r for r in granted(other["rules"]) if r[1] == "leases"}, other["metadata"]


def test_namespaced_grants_exactly_what_the_operator_uses_per_namespace(
    renders: dict[str, Rendered],
) -> None:
    namespaced = renders["namespaced"]
    # The operator reads no cluster-scoped resource, so nothing is granted cluster-wide.
    assert not namespaced.of_kind("ClusterRole")
    assert not namespaced.of_kind("ClusterRoleBinding")
    roles = {role["metadata"]["namespace"]: role for role in models_roles(namespaced)}
    assert set(roles) == {"team-a", "team-b"}
    for role in roles.values():
        assert granted(role["rules"]) == required() | CHART_EXTRAS.keys()


def test_chart_extras_are_not_already_required() -> None:
    """An extra that the operator starts to declare itself must leave this list."""
    assert not CHART_EXTRAS.keys() & required()


def test_finalizers_update_for_block_owner_deletion(default: Rendered) -> None:
    """Children set blockOwnerDeletion, which needs update on trtmodels/finalizers."""
    assert ("trtserve.io", "trtmodels/finalizers", "update") in granted(
        default.one("ClusterRole")["rules"]
    )


def test_bindings_bind_the_operator_service_account(rendered: Rendered) -> None:
    account = rendered.one("ServiceAccount")["metadata"]["name"]
    pod = rendered.one("Deployment")["spec"]["template"]["spec"]
    assert pod["serviceAccountName"] == account
    roles = {
        (role["kind"], role["metadata"]["name"], role["metadata"].get("namespace"))
        for role in [*rendered.of_kind("ClusterRole"), *rendered.of_kind("Role")]
    }
    bindings = [*rendered.of_kind("ClusterRoleBinding"), *rendered.of_kind("RoleBinding")]
    assert len(bindings) == len(roles)
    for binding in bindings:
        assert binding["subjects"] == [
            {"kind": "ServiceAccount", "name": account, "namespace": NAMESPACE}
        ]
        ref = binding["roleRef"]
        namespace = binding["metadata"].get("namespace")
        assert (ref["kind"], ref["name"], namespace) in roles


def test_rbac_and_service_account_can_be_left_to_the_admin(helm: Path) -> None:
    result = helm_template(
        helm, "--set", "rbac.create=false", "--set", "serviceAccount.create=false",
        "--set", "serviceAccount.name=platform-operator",
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    kinds = {doc["kind"] for doc in yaml.safe_load_all(result.stdout) if doc}
    assert kinds == {
        "CustomResourceDefinition",
        "Deployment",
        "NetworkPolicy",
        "PodDisruptionBudget",
    }
    assert "serviceAccountName: platform-operator" in result.stdout


def test_an_existing_service_account_must_be_named(helm: Path) -> None:
    result = helm_template(helm, "--set", "serviceAccount.create=false")
    assert result.returncode != 0
    assert "serviceAccount.name is required" in result.stderr


def test_benchmark_jobs_add_exactly_the_job_verbs_and_nothing_on_pods(default: Rendered) -> None:
    """spec.benchmark runs a Job: create/get/list/watch/delete on jobs, and its pod's
    result is read with the pods list/watch the operator already had."""
    rules = granted(default.one("ClusterRole")["rules"])
    assert {verb for group, resource, verb in rules if (group, resource) == ("batch", "jobs")} == {
        "create", "get", "list", "watch", "delete",
    }  # fmt: skip
    assert {verb for group, resource, verb in rules if resource == "pods"} == {"list", "watch"}
    assert not {resource for group, resource, _ in rules if group == "batch"} - {"jobs"}
