"""The rendered chart: valid Kubernetes objects, and the operator Deployment an admin expects."""

from __future__ import annotations

from pathlib import Path

import kubernetes_validate
import pytest
import yaml
from chart_support import (
    CHART_DIR,
    NAMESPACE,
    REPO_ROOT,
    REQUIRED_VALUES,
    Rendered,
    helm_template,
    run_tool,
)

from trtserve_operator.api.v1alpha1 import TRTModelSpec
from trtserve_operator.services.builders.deployment import SCRAPE_ANNOTATIONS, build_deployment
from trtserve_operator.services.builders.target import Target
from trtserve_operator.settings import Settings

# The chart's minimum (Chart.yaml kubeVersion) and the newest schemas kubernetes-validate has.
KUBERNETES_VERSIONS = ("1.28.0", kubernetes_validate.utils.latest_version())
CLUSTER_SCOPED_KINDS = {"CustomResourceDefinition", "ClusterRole", "ClusterRoleBinding"}
# Kinds of other projects' CRDs, which kubernetes-validate has no schema for: checked by
# their own tests below.
FOREIGN_KINDS = {"PodMonitor", "PrometheusRule"}
SOURCE_CRD = REPO_ROOT / "crds" / "trtmodels.yaml"
CHART_CRD = CHART_DIR / "files" / "crds" / "trtmodels.yaml"
OPERATOR_ENV = {
    "TRTSERVE_CONVERTER_IMAGE",
    "TRTSERVE_SERVING_IMAGE",
    "TRTSERVE_NAMESPACES",
    "TRTSERVE_RESYNC_SECONDS",
    "TRTSERVE_LOG_FORMAT",
    "TRTSERVE_LOG_LEVEL",
    "TRTSERVE_HEALTH_PORT",
    "TRTSERVE_METRICS_PORT",
    "TRTSERVE_CACHE_URI",
    "TRTSERVE_CACHE_SECRET_NAME",
    "TRTSERVE_CACHE_SIGNING_SECRET_NAME",
    "TRTSERVE_CACHE_SIGNING_SECRET_KEY",
    "TRTSERVE_LEADER_ELECTION",
    "TRTSERVE_LEADER_ELECTION_NAMESPACE",
    "TRTSERVE_LEADER_ELECTION_LEASE_NAME",
    "TRTSERVE_LEADER_ELECTION_LEASE_DURATION",
    "TRTSERVE_LEADER_ELECTION_RENEW_DEADLINE",
    "TRTSERVE_LEADER_ELECTION_RETRY_PERIOD",
    "TRTSERVE_POD_NAME",
}


@pytest.mark.parametrize("version", KUBERNETES_VERSIONS)
def test_every_rendered_object_is_valid_kubernetes(rendered: Rendered, version: str) -> None:
    assert rendered.manifests, f"{rendered.name}: nothing rendered"
    for manifest in rendered.manifests:
        if manifest["kind"] in FOREIGN_KINDS:
            continue
        try:
            kubernetes_validate.validate(manifest, version, strict=True)
        except kubernetes_validate.ValidationError as error:
            pytest.fail(f"{rendered.name}: {manifest['kind']} invalid for {version}: {error}")


def test_namespaced_objects_are_in_the_release_or_a_watched_namespace(rendered: Rendered) -> None:
    watched = rendered_values_namespaces(rendered)
    for manifest in rendered.manifests:
        namespace = manifest["metadata"].get("namespace")
        if manifest["kind"] in CLUSTER_SCOPED_KINDS:
            assert namespace is None, manifest["kind"]
        elif manifest["kind"] in {"Role", "RoleBinding"}:
            if manifest["metadata"]["name"].endswith("-leader-election"):
                assert namespace == NAMESPACE  # the Lease: the operator's own namespace
            else:
                assert namespace in watched
        elif manifest["kind"] in {"PodMonitor", "PrometheusRule"} or manifest["metadata"][
            "name"
        ].endswith("-dashboard"):
            assert namespace in {NAMESPACE, "monitoring"}  # *.namespace values
        else:
            assert namespace == NAMESPACE, manifest["kind"]


def rendered_values_namespaces(rendered: Rendered) -> set[str]:
    value = rendered.env["TRTSERVE_NAMESPACES"]
    return set(value.split(",")) if value else set()


def test_two_replicas_elect_one_writer_and_roll_without_a_gap(rendered: Rendered) -> None:
    spec = rendered.one("Deployment")["spec"]
    assert spec["replicas"] == 2
    assert spec["strategy"] == {
        "type": "RollingUpdate",
        "rollingUpdate": {"maxSurge": 1, "maxUnavailable": 0},
    }
    env = rendered.env
    assert env["TRTSERVE_LEADER_ELECTION"] == "true"
    assert env["TRTSERVE_LEADER_ELECTION_NAMESPACE"] == NAMESPACE  # the pod's own
    assert env["TRTSERVE_POD_NAME"] == "operator-0"
    assert (
        env["TRTSERVE_LEADER_ELECTION_LEASE_NAME"]
        == spec["selector"]["matchLabels"]["app.kubernetes.io/instance"] + "-trtserve"
    )
    assert rendered.operator_container["command"] == ["trtserve-operator", "run"]
    assert "args" not in rendered.operator_container
    (spread,) = spec["template"]["spec"]["topologySpreadConstraints"]
    assert spread["topologyKey"] == "kubernetes.io/hostname"
    assert spread["whenUnsatisfiable"] == "ScheduleAnyway"
    assert spread["labelSelector"]["matchLabels"] == spec["selector"]["matchLabels"]
    (budget,) = rendered.of_kind("PodDisruptionBudget")
    assert budget["spec"]["maxUnavailable"] == 1
    assert budget["spec"]["selector"] == spec["selector"]


def test_one_replica_still_elects_and_has_no_budget(helm: Path) -> None:
    """replicas: 1 keeps the Lease, so the old and the new pod of a rolling update never
    both write; a budget would only block drains."""
    result = helm_template(helm, "--set", "replicaCount=1")
    assert result.returncode == 0, result.stderr
    docs = [doc for doc in yaml.safe_load_all(result.stdout) if doc]
    (deployment,) = [d for d in docs if d["kind"] == "Deployment"]
    assert deployment["spec"]["replicas"] == 1
    assert deployment["spec"]["strategy"]["type"] == "RollingUpdate"
    assert not [d for d in docs if d["kind"] == "PodDisruptionBudget"]
    assert [d for d in docs if d["kind"] == "Role"]  # the Lease's


def test_without_election_exactly_one_operator_replaced_by_recreate(helm: Path) -> None:
    result = helm_template(helm, "--set", "leaderElection.enabled=false", "--set", "replicaCount=1")
    assert result.returncode == 0, result.stderr
    docs = [doc for doc in yaml.safe_load_all(result.stdout) if doc]
    (deployment,) = [d for d in docs if d["kind"] == "Deployment"]
    assert deployment["spec"]["replicas"] == 1
    assert deployment["spec"]["strategy"] == {"type": "Recreate"}
    assert not [d for d in docs if d["kind"] in ("Role", "PodDisruptionBudget")]
    refused = helm_template(helm, "--set", "leaderElection.enabled=false")
    assert refused.returncode != 0
    assert "replicaCount > 1 needs leaderElection.enabled" in refused.stderr


def test_restricted_security_context(rendered: Rendered) -> None:
    pod = rendered.one("Deployment")["spec"]["template"]["spec"]
    container = rendered.operator_container["securityContext"]
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert isinstance(pod["securityContext"]["runAsUser"], int)
    assert pod["securityContext"]["runAsUser"] > 0
    assert pod["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
    assert container["allowPrivilegeEscalation"] is False
    assert container["readOnlyRootFilesystem"] is True
    assert container["capabilities"] == {"drop": ["ALL"]}
    assert container["runAsNonRoot"] is True
    # A read-only root needs a writable /tmp for Python.
    container_mounts = rendered.operator_container["volumeMounts"]
    mounts = {item["mountPath"]: item["name"] for item in container_mounts}
    volumes = {volume["name"]: volume for volume in pod["volumes"]}
    assert "emptyDir" in volumes[mounts["/tmp"]]


def test_probes_use_kopf_health_endpoint_on_the_health_port(rendered: Rendered) -> None:
    container = rendered.operator_container
    ports = {port["name"]: port["containerPort"] for port in container["ports"]}
    assert ports["health"] == int(rendered.env["TRTSERVE_HEALTH_PORT"])
    for probe in ("livenessProbe", "readinessProbe"):
        assert container[probe]["httpGet"] == {"path": "/healthz", "port": "health"}


def test_resources_are_bounded(rendered: Rendered) -> None:
    resources = rendered.operator_container["resources"]
    assert set(resources["requests"]) >= {"cpu", "memory"}
    assert set(resources["limits"]) >= {"cpu", "memory"}


def test_operator_env_names_are_exactly_the_operator_settings(rendered: Rendered) -> None:
    assert set(rendered.env) == OPERATOR_ENV


def test_default_env_values(default: Rendered) -> None:
    assert default.env == {
        "TRTSERVE_CONVERTER_IMAGE": "registry.example.com/ml/trtserve-converter:0.1.0",
        "TRTSERVE_SERVING_IMAGE": "tensorflow/serving:2.17.1-gpu",
        "TRTSERVE_NAMESPACES": "",
        "TRTSERVE_RESYNC_SECONDS": "600",
        "TRTSERVE_LOG_FORMAT": "text",
        "TRTSERVE_LOG_LEVEL": "INFO",
        "TRTSERVE_HEALTH_PORT": "19080",
        "TRTSERVE_METRICS_PORT": "0",
        "TRTSERVE_CACHE_URI": "",
        "TRTSERVE_CACHE_SECRET_NAME": "",
        "TRTSERVE_CACHE_SIGNING_SECRET_NAME": "",
        "TRTSERVE_CACHE_SIGNING_SECRET_KEY": "key",
        "TRTSERVE_LEADER_ELECTION": "true",
        "TRTSERVE_LEADER_ELECTION_NAMESPACE": NAMESPACE,
        "TRTSERVE_LEADER_ELECTION_LEASE_NAME": "trt-trtserve",
        "TRTSERVE_LEADER_ELECTION_LEASE_DURATION": "15",
        "TRTSERVE_LEADER_ELECTION_RENEW_DEADLINE": "10",
        "TRTSERVE_LEADER_ELECTION_RETRY_PERIOD": "2",
        "TRTSERVE_POD_NAME": "operator-0",
    }


def test_operator_settings_accept_the_rendered_env(
    rendered: Rendered, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The operator's own settings model parses what the chart sets, to the same values."""
    settings_module = pytest.importorskip("trtserve_operator.settings")
    for name, value in rendered.env.items():
        monkeypatch.setenv(name, value)
    settings = settings_module.Settings()
    assert settings.converter_image == rendered.env["TRTSERVE_CONVERTER_IMAGE"]
    assert settings.serving_image == rendered.env["TRTSERVE_SERVING_IMAGE"]
    assert ",".join(settings.namespaces) == rendered.env["TRTSERVE_NAMESPACES"]
    assert settings.log_format == rendered.env["TRTSERVE_LOG_FORMAT"]
    assert settings.log_level == rendered.env["TRTSERVE_LOG_LEVEL"]
    assert settings.health_port == int(rendered.env["TRTSERVE_HEALTH_PORT"])
    assert settings.metrics_port == int(rendered.env["TRTSERVE_METRICS_PORT"])
    assert settings.leader_election is True
    assert settings.leader_election_namespace == NAMESPACE
    assert settings.leader_election_lease_duration == 15
    assert settings.pod_name == "operator-0"


def test_namespaced_value_set_scopes_the_operator(renders: dict[str, Rendered]) -> None:
    env = renders["namespaced"].env
    assert env["TRTSERVE_NAMESPACES"] == "team-a,team-b"
    assert env["TRTSERVE_LOG_FORMAT"] == "json"
    assert env["TRTSERVE_LOG_LEVEL"] == "DEBUG"


def test_images_are_pinned_by_tag(rendered: Rendered) -> None:
    images = [
        rendered.operator_container["image"],
        rendered.env["TRTSERVE_CONVERTER_IMAGE"],
        rendered.env["TRTSERVE_SERVING_IMAGE"],
    ]
    for image in images:
        name = image.split("@")[0]
        repository, _, tag = name.rpartition(":")
        assert repository
        assert "/" not in tag, f"{image} has no tag"
        assert tag not in {"", "latest"}, image


def test_custom_images(renders: dict[str, Rendered]) -> None:
    custom = renders["custom-images"]
    assert custom.operator_container["image"] == (
        "registry.example.com:5000/ml/trtserve-operator:0.1.0-rc.1"
        "@sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"
    )
    assert custom.operator_container["imagePullPolicy"] == "Always"
    pod = custom.one("Deployment")["spec"]["template"]["spec"]
    assert pod["imagePullSecrets"] == [{"name": "registry-credentials"}]
    assert custom.env["TRTSERVE_CONVERTER_IMAGE"] == (
        "registry.example.com:5000/ml/trtserve-converter:0.1.0-rc.1"
        "@sha256:fedcba9876543210fedcba9876543210fedcba9876543210fedcba9876543210"
    )
    assert custom.env["TRTSERVE_SERVING_IMAGE"] == (
        "registry.example.com:5000/mirror/tensorflow-serving:2.17.1-gpu"
    )


def test_metrics_port_only_when_enabled(renders: dict[str, Rendered]) -> None:
    default, operations = renders["default"], renders["operations"]
    assert {port["name"] for port in default.operator_container["ports"]} == {"health"}
    assert default.env["TRTSERVE_METRICS_PORT"] == "0"
    assert not default.of_kind("Service")

    ports = {port["name"]: port["containerPort"] for port in operations.operator_container["ports"]}
    assert ports == {"health": 8081, "metrics": 9100}
    assert operations.env["TRTSERVE_METRICS_PORT"] == "9100"
    service = operations.one("Service")
    assert service["spec"]["ports"] == [
        {"name": "metrics", "port": 9100, "targetPort": "metrics", "protocol": "TCP"}
    ]
    selector = operations.one("Deployment")["spec"]["selector"]["matchLabels"]
    assert service["spec"]["selector"] == selector


def test_network_policy_admits_only_metrics(renders: dict[str, Rendered]) -> None:
    default_policy = renders["default"].one("NetworkPolicy")["spec"]
    assert default_policy["ingress"] == []
    assert default_policy["policyTypes"] == ["Ingress", "Egress"]
    egress_ports = {
        (port["protocol"], port["port"])
        for rule in default_policy["egress"]
        for port in rule["ports"]
    }
    assert egress_ports == {("UDP", 53), ("TCP", 53), ("TCP", 443), ("TCP", 6443)}
    operations_policy = renders["operations"].one("NetworkPolicy")["spec"]
    assert operations_policy["ingress"] == [{"ports": [{"port": "metrics", "protocol": "TCP"}]}]


def test_placement_values_reach_the_pod(renders: dict[str, Rendered]) -> None:
    pod = renders["operations"].one("Deployment")["spec"]["template"]
    assert pod["spec"]["nodeSelector"] == {"kubernetes.io/os": "linux"}
    assert pod["spec"]["tolerations"][0]["key"] == "dedicated"
    assert "nodeAffinity" in pod["spec"]["affinity"]
    assert pod["spec"]["priorityClassName"] == "system-cluster-critical"
    assert pod["spec"]["securityContext"]["runAsUser"] == 10001
    assert pod["metadata"]["labels"]["team"] == "ml-platform"
    assert pod["metadata"]["annotations"] == {"prometheus.io/scrape": "true"}
    assert pod["spec"]["serviceAccountName"] == "trtserve-operator"


# --- the CRD ---------------------------------------------------------------------------------


def test_chart_crd_is_a_verbatim_copy_of_the_source() -> None:
    assert SOURCE_CRD.is_file(), f"{SOURCE_CRD} is missing (generated by the API: make crd)"
    assert CHART_CRD.read_bytes() == SOURCE_CRD.read_bytes(), (
        f"{CHART_CRD.relative_to(REPO_ROOT)} differs from crds/trtmodels.yaml: "
        f"cp crds/trtmodels.yaml {CHART_CRD.relative_to(REPO_ROOT)}"
    )


def assert_same_typed(actual: object, expected: object, path: str = "") -> None:
    """Equality that also tells 2048 from 2048.0 (a YAML round trip can turn one into the other)."""
    assert type(actual) is type(expected), f"{path}: {actual!r} vs {expected!r}"
    if isinstance(expected, dict):
        assert isinstance(actual, dict)
        assert actual.keys() == expected.keys(), path
        for key in expected:
            assert_same_typed(actual[key], expected[key], f"{path}.{key}")
    elif isinstance(expected, list):
        assert isinstance(actual, list)
        assert len(actual) == len(expected), path
        for index, (left, right) in enumerate(zip(actual, expected, strict=True)):
            assert_same_typed(left, right, f"{path}[{index}]")
    else:
        assert actual == expected, path


def test_rendered_crd_is_the_source_crd_kept_on_uninstall(default: Rendered) -> None:
    source = yaml.safe_load(CHART_CRD.read_text())
    crd = default.one("CustomResourceDefinition")
    for key in source:
        if key != "metadata":
            assert_same_typed(crd[key], source[key], key)
    assert crd["metadata"]["name"] == source["metadata"]["name"]
    assert crd["metadata"]["annotations"]["helm.sh/resource-policy"] == "keep"
    assert crd["metadata"]["labels"]["app.kubernetes.io/managed-by"] == "Helm"


def test_crd_keep_can_be_turned_off(renders: dict[str, Rendered]) -> None:
    crd = renders["operations"].one("CustomResourceDefinition")
    assert "helm.sh/resource-policy" not in crd["metadata"].get("annotations", {})


def test_crd_install_can_be_skipped(renders: dict[str, Rendered]) -> None:
    assert not renders["no-crds"].of_kind("CustomResourceDefinition")
    assert renders["no-crds"].of_kind("Deployment")


def test_notes_tell_how_to_apply_an_example_and_watch_trtmodels(helm: Path) -> None:
    result = run_tool(
        helm, "install", "trt", CHART_DIR, "--namespace", NAMESPACE, "--dry-run=client",
        "--values", REQUIRED_VALUES, "--set", "watch.namespaces={team-a}",
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    notes = result.stdout.split("NOTES:", 1)[1]
    assert "kubectl apply --namespace team-a -f examples/" in notes
    assert "kubectl get trtmodels" in notes
    example = notes.split("-f ", 1)[1].split()[0]
    assert (REPO_ROOT / example).is_file(), f"NOTES.txt names a missing example: {example}"


def test_packaged_chart_renders_the_same(helm: Path, default: Rendered, tmp_path: Path) -> None:
    """`helm package` keeps everything the templates read (the CRD copy under files/)."""
    packaged = run_tool(helm, "package", CHART_DIR, "--destination", tmp_path)
    assert packaged.returncode == 0, packaged.stderr
    (archive,) = tmp_path.glob("trtserve-*.tgz")
    result = helm_template(helm, chart=archive)
    assert result.returncode == 0, result.stderr
    assert result.stdout == default.text


def test_cache_values_become_the_operator_cache_settings(helm: Path) -> None:
    result = helm_template(
        helm,
        "--set", "cache.uri=s3://models-cache/trtserve",
        "--set", "cache.secretName=cache-credentials",
        "--set", "cache.signingSecretName=cache-signing",
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    manifests = [m for m in yaml.safe_load_all(result.stdout) if m]
    rendered = Rendered("cache", result.stdout, manifests)
    settings = Settings.model_validate(
        {key.removeprefix("TRTSERVE_").lower(): value for key, value in rendered.env.items()}
    )
    assert settings.cache_uri == "s3://models-cache/trtserve"
    assert settings.cache_secret_name == "cache-credentials"
    assert (settings.cache_signing_secret_name, settings.cache_signing_secret_key) == (
        "cache-signing",
        "key",
    )
    rules = [r for m in rendered.of_kind("ClusterRole") for r in m["rules"]]
    assert not any("secrets" in r.get("resources", []) for r in rules)  # RBAC unchanged


def test_notes_name_the_images_to_push(helm: Path) -> None:
    result = run_tool(
        helm, "install", "trt", CHART_DIR, "--namespace", NAMESPACE, "--dry-run=client",
        "--values", REQUIRED_VALUES, "--set", "converterImage.digest=sha256:" + "a" * 64,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    notes = result.stdout.split("NOTES:", 1)[1]
    assert "registry.example.com/ml/trtserve-operator:0.1.0" in notes
    assert "registry.example.com/ml/trtserve-converter:0.1.0@sha256:" + "a" * 64 in notes
    assert "docs/admin.md" in notes


def test_image_repositories_have_no_default(helm: Path) -> None:
    """trtserve publishes no images: a default name would pull whatever someone publishes
    under it (Docker Hub's trtserve/operator is nobody's here)."""
    values = yaml.safe_load((CHART_DIR / "values.yaml").read_text())
    assert values["image"]["repository"] == ""
    assert values["converterImage"]["repository"] == ""
    result = helm_template(helm, required=False)
    assert result.returncode != 0
    assert "/image/repository" in result.stderr
    assert "/converterImage/repository" in result.stderr


def test_readme_tells_admins_which_repositories_to_set() -> None:
    readme = (REPO_ROOT / "README.md").read_text()
    quickstart = readme.split("## Quickstart", 1)[1].split("\n## ", 1)[0]
    assert "image.repository=" in quickstart
    assert "converterImage.repository=" in quickstart


def test_pod_monitor_only_when_enabled(renders: dict[str, Rendered]) -> None:
    assert not renders["default"].of_kind("PodMonitor")
    assert "PodMonitor" not in renders["default"].text


def test_pod_monitor_scrapes_tf_serving_of_the_watched_namespaces(
    renders: dict[str, Rendered],
) -> None:
    everywhere = renders["operations"].one("PodMonitor")
    assert everywhere["apiVersion"] == "monitoring.coreos.com/v1"
    assert everywhere["metadata"]["namespace"] == NAMESPACE
    assert everywhere["metadata"]["labels"]["release"] == "prometheus"
    spec = everywhere["spec"]
    assert spec["namespaceSelector"] == {"any": True}
    # The labels the operator puts on serving pods (and not on its own pod).
    assert spec["selector"]["matchLabels"] == {
        "app.kubernetes.io/part-of": "trtserve",
        "app.kubernetes.io/component": "serving",
        "app.kubernetes.io/managed-by": "trtserve-operator",
    }
    (endpoint,) = spec["podMetricsEndpoints"]
    assert endpoint["port"] == "http"
    assert endpoint["path"] == SCRAPE_ANNOTATIONS["prometheus.io/path"]
    assert (endpoint["interval"], endpoint["scrapeTimeout"]) == ("15s", "10s")
    assert endpoint["relabelings"][0]["targetLabel"] == "trtmodel"

    namespaced = renders["namespaced"].one("PodMonitor")
    assert namespaced["metadata"]["namespace"] == "monitoring"
    assert namespaced["spec"]["namespaceSelector"] == {"matchNames": ["team-a", "team-b"]}
    assert "interval" in namespaced["spec"]["podMetricsEndpoints"][0]  # the default, 30s
    assert "scrapeTimeout" not in namespaced["spec"]["podMetricsEndpoints"][0]


def test_pod_monitor_selects_what_the_operator_renders() -> None:
    target = Target("m", "ns", TRTModelSpec.model_validate({"source": {"uri": "s3://b/m"}}))
    template = build_deployment(target, converter_image="c", serving_image="s")["spec"]["template"]
    labels = template["metadata"]["labels"]
    assert labels["app.kubernetes.io/part-of"] == "trtserve"
    assert labels["app.kubernetes.io/component"] == "serving"
    assert labels["app.kubernetes.io/managed-by"] == "trtserve-operator"
    ports = {p["name"]: p["containerPort"] for p in template["spec"]["containers"][0]["ports"]}
    assert ports["http"] == 8501
