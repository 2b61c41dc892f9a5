"""Every (apiGroup, resource, verb) the operator process needs: the chart's RBAC source.

It covers the adapter (:mod:`trtserve_operator.kube.client`, and its informers in
:mod:`trtserve_operator.kube.watch`, which list and watch TRTModels, Deployments,
Services, ConfigMaps, PodDisruptionBudgets, Pods and benchmark Jobs) and kopf as the
operator runs it:
``--standalone`` (no peering objects), namespace/CRD scanning disabled, no resource
handlers (kopf watches nothing), no progress or diff-base storage and no event posting.
Discovery (``/api``, ``/apis/...``) is a non-resource URL granted to every authenticated
user by the default ``system:discovery`` role. A test records every request the operator
makes against the kmock emulator and checks it is covered here.
"""

from __future__ import annotations

from typing import NamedTuple

from trtserve_operator.api.v1alpha1 import GROUP, PLURAL


class Permission(NamedTuple):
    api_group: str
    resource: str
    verb: str


def _grant(api_group: str, resource: str, *verbs: str) -> set[Permission]:
    return {Permission(api_group, resource, verb) for verb in verbs}


REQUIRED_PERMISSIONS: frozenset[Permission] = frozenset(
    # The adapter's informer lists and watches TRTModels (nothing GETs one); nothing
    # writes their metadata or spec.
    _grant(GROUP, PLURAL, "list", "watch")
    # The adapter writes the status subresource only.
    | _grant(GROUP, f"{PLURAL}/status", "patch")
    # Children carry ownerReferences with blockOwnerDeletion: true, which the
    # OwnerReferencesPermissionEnforcement admission plugin only allows to whoever may
    # update the owner's finalizers (no request is made with it).
    | _grant(GROUP, f"{PLURAL}/finalizers", "update")
    # Children: the adapter's informers list and watch them; the adapter gets (on a
    # conflict), creates and patches them.
    | _grant("apps", "deployments", "get", "list", "watch", "create", "patch")
    | _grant("", "services", "get", "list", "watch", "create", "patch")
    | _grant("", "configmaps", "get", "list", "watch", "create", "patch")
    # The serving pods' PodDisruptionBudget: as the other children, and deleted when
    # spec.serving.disruptionBudget.enabled turns false (left, it would still act).
    | _grant("policy", "poddisruptionbudgets", "get", "list", "watch", "create", "patch", "delete")
    # Pods are only read (the adapter's informer, and a list for the benchmark Job's pod):
    # the converter's termination message and readiness, trt-bench's JSON summary.
    | _grant("", "pods", "list", "watch")
    # The A/B benchmark Job (spec.benchmark): the adapter's informer watches it, the adapter
    # creates it, reads it back on a conflict and deletes it once its result is read.
    | _grant("batch", "jobs", "create", "get", "list", "watch", "delete")
    # Events: the adapter's, for transitions a person acts on (kopf posts none).
    | _grant("", "events", "create")
)

LEADER_ELECTION_PERMISSIONS: frozenset[Permission] = frozenset(
    # The leader Lease (kube/election.py), in the operator's own namespace only: followers
    # get it, the first candidate creates it, holders and successors update it (PUT with
    # the resourceVersion read). Nothing lists, watches, patches or deletes a Lease.
    _grant("coordination.k8s.io", "leases", "get", "create", "update")
)
