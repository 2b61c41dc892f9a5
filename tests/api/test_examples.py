"""Every manifest in examples/ is valid: TRTModels against the CRD (schema + CEL) and the
models, everything else against the Kubernetes OpenAPI schemas (kubernetes-validate)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest

from trtserve_operator.api.v1alpha1 import TRTModel

from .crd_validation import validate_against_crd
from .manifests import EXAMPLES, REPO, is_trtmodel, load_documents

KUBERNETES_VERSION = "1.37.0"
EXPECTED = {
    "resnet50-fp16-s3.yaml",
    "int8-calibrated.yaml",
    "native-baseline-pvc.yaml",
    "batching-hpa.yaml",
    "half-plus-two.yaml",
    "benchmark-native-vs-fp16.yaml",
}
HALF_PLUS_TWO = (
    REPO.parent / "shared/fixtures/tensorflow-serving-testdata/saved_model_half_plus_two_cpu"
)

DOCUMENTS = [
    pytest.param(path, index, document, id=f"{path.name}#{index}")
    for path in sorted(EXAMPLES.glob("*.yaml"))
    for index, document in enumerate(load_documents(path))
]


def test_expected_examples_exist_and_each_has_a_trtmodel() -> None:
    files = {path.name for path in EXAMPLES.glob("*.yaml")}
    assert files >= EXPECTED
    for name in files:
        assert any(is_trtmodel(doc) for doc in load_documents(EXAMPLES / name)), name


@pytest.mark.parametrize(("path", "index", "document"), DOCUMENTS)
def test_example_document_is_valid(path: Path, index: int, document: dict[str, Any]) -> None:
    if is_trtmodel(document):
        assert validate_against_crd(document) == []
        TRTModel.model_validate(document)
    else:
        kubernetes_validate.validate(document, KUBERNETES_VERSION, strict=True)


def test_hpa_scales_the_trtmodel_of_its_file() -> None:
    documents = load_documents(EXAMPLES / "batching-hpa.yaml")
    [hpa] = [doc for doc in documents if doc["kind"] == "HorizontalPodAutoscaler"]
    [model] = [doc for doc in documents if is_trtmodel(doc)]
    assert hpa["spec"]["scaleTargetRef"] == {
        "apiVersion": "trtserve.io/v1alpha1",
        "kind": "TRTModel",
        "name": model["metadata"]["name"],
    }
    spec = TRTModel.model_validate(model).spec
    batch_sizes = {shape["input_1"][0] for shape in spec.conversion.build_shapes or []}
    assert spec.serving.batching.enabled
    assert batch_sizes == set(spec.serving.batching.allowed_batch_sizes or [])


def test_secret_referenced_by_the_s3_example_is_in_the_file() -> None:
    documents = load_documents(EXAMPLES / "resnet50-fp16-s3.yaml")
    [model] = [doc for doc in documents if is_trtmodel(doc)]
    secrets = {doc["metadata"]["name"] for doc in documents if doc["kind"] == "Secret"}
    assert model["spec"]["source"]["secretRef"]["name"] in secrets


@pytest.mark.tf
def test_half_plus_two_declares_the_real_signature_inputs() -> None:
    """The example's declared input x: [-1, 1] is the fixture SavedModel's serving_default."""
    version_dir = HALF_PLUS_TWO / "00000123"
    if not version_dir.is_dir():
        pytest.skip(f"TF Serving testdata fixture not found at {version_dir}")
    saved_model_pb2 = pytest.importorskip("tensorflow.core.protobuf.saved_model_pb2")
    saved_model = saved_model_pb2.SavedModel()
    saved_model.ParseFromString((version_dir / "saved_model.pb").read_bytes())
    signature = saved_model.meta_graphs[0].signature_def["serving_default"]
    real = {
        name: [dim.size for dim in tensor.tensor_shape.dim]
        for name, tensor in signature.inputs.items()
    }
    [model] = [d for d in load_documents(EXAMPLES / "half-plus-two.yaml") if is_trtmodel(d)]
    spec = TRTModel.model_validate(model).spec
    assert {i.name: i.shape for i in spec.conversion.inputs or []} == real
    assert spec.source.version == int(version_dir.name)


def test_benchmark_example_compares_native_with_fp16_of_the_same_model() -> None:
    documents = load_documents(EXAMPLES / "benchmark-native-vs-fp16.yaml")
    models = {
        doc["metadata"]["name"]: TRTModel.model_validate(doc)
        for doc in documents
        if is_trtmodel(doc)
    }
    fp16 = models["resnet50-fp16"].spec
    assert fp16.benchmark is not None
    baseline = models[fp16.benchmark.baseline].spec
    assert baseline.conversion.precision.value == "NATIVE"
    assert fp16.conversion.precision.value == "FP16"
    assert baseline.source == fp16.source
    assert (baseline.model_name, baseline.serving.node_selector) == (
        fp16.model_name, fp16.serving.node_selector,
    )  # fmt: skip
    # The benchmark sends the batch size the engine was built for.
    batch_sizes = {shape["input_1"][0] for shape in fp16.conversion.build_shapes or []}
    assert batch_sizes == {fp16.benchmark.batch_size}


def _claim_of(uri: str) -> tuple[str, str]:
    claim, _, path = uri.removeprefix("pvc://").partition("/")
    return claim, path


def test_every_pvc_example_shows_how_the_model_gets_onto_the_claim() -> None:
    """A claim an example creates is empty: the file also holds a Job that mounts it
    writable and writes the path the TRTModel reads."""
    for path in sorted(EXAMPLES.glob("*.yaml")):
        documents = load_documents(path)
        for model in [doc for doc in documents if is_trtmodel(doc)]:
            uri = model["spec"]["source"]["uri"]
            if not uri.startswith("pvc://"):
                continue
            claim, in_volume = _claim_of(uri)
            claims = [
                doc
                for doc in documents
                if doc["kind"] == "PersistentVolumeClaim" and doc["metadata"]["name"] == claim
            ]
            assert claims, f"{path.name}: claim {claim} is not in the file (issue 19, item 8)"
            [pvc] = claims
            assert set(pvc["spec"]["accessModes"]) & {"ReadWriteOnce", "ReadWriteMany"}, path
            writers = [
                doc
                for doc in documents
                if doc["kind"] == "Job" and _writes(doc["spec"]["template"]["spec"], claim)
            ]
            assert writers, f"{path.name}: nothing writes to claim {claim}"
            [job] = writers
            script = " ".join(
                " ".join(container.get("command", []) + container.get("args", []))
                for container in job["spec"]["template"]["spec"]["containers"]
            )
            mount = _mount_path(job["spec"]["template"]["spec"], claim)
            assert f"{mount}/{in_volume}" in script, script


def _volume_name(pod: dict[str, Any], claim: str) -> str | None:
    for volume in pod.get("volumes", []):
        source = volume.get("persistentVolumeClaim") or {}
        if source.get("claimName") == claim and not source.get("readOnly"):
            return str(volume["name"])
    return None


def _mount_path(pod: dict[str, Any], claim: str) -> str:
    name = _volume_name(pod, claim)
    for container in pod["containers"]:
        for mount in container.get("volumeMounts", []):
            if mount["name"] == name and not mount.get("readOnly"):
                return str(mount["mountPath"]).rstrip("/")
    raise AssertionError(f"claim {claim} is not mounted writable")


def _writes(pod: dict[str, Any], claim: str) -> bool:
    try:
        _mount_path(pod, claim)
    except AssertionError:
        return False
    return True


def _secret_names(document: dict[str, Any]) -> set[str]:
    """Every Secret a document refers to by name (secretRef objects anywhere in it)."""
    found: set[str] = set()

    def walk(node: Any) -> None:
        if isinstance(node, dict):
            for key, value in node.items():
                if key == "secretRef" and isinstance(value, dict) and "name" in value:
                    found.add(str(value["name"]))
                elif key == "secret" and isinstance(value, dict) and "secretName" in value:
                    found.add(str(value["secretName"]))
                walk(value)
        elif isinstance(node, list):
            for item in node:
                walk(item)

    walk(document)
    return found


def _header(path: Path) -> str:
    lines = []
    for line in path.read_text().splitlines():
        if not line.startswith("#"):
            break
        lines.append(line)
    return "\n".join(lines)


def test_every_example_applies_on_its_own() -> None:
    """Each Secret an example needs is in the file, or its first lines say how to make it
    (issue 19, item 8: examples needed Secrets defined only in other files)."""
    for path in sorted(EXAMPLES.glob("*.yaml")):
        documents = load_documents(path)
        defined = {d["metadata"]["name"] for d in documents if d["kind"] == "Secret"}
        needed = set().union(*(_secret_names(d) for d in documents))
        for name in sorted(needed - defined):
            assert f"kubectl create secret generic {name}" in _header(path), (
                f"{path.name} needs Secret {name}: put it in the file or say how to make it"
            )


def test_no_two_examples_define_different_objects_of_one_name() -> None:
    """Applying two examples never silently rewrites an object of the other: a name used
    in several files is the same object in each (a shared Secret), or a collision."""
    seen: dict[tuple[str, str], tuple[str, dict[str, Any]]] = {}
    for path in sorted(EXAMPLES.glob("*.yaml")):
        for document in load_documents(path):
            key = (document["kind"], document["metadata"]["name"])
            if key in seen:
                other, first = seen[key]
                assert first == document, f"{key} differs in {other} and {path.name}"
            else:
                seen[key] = (path.name, document)
