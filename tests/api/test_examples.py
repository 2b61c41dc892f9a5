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
            if not claims:
                continue  # a claim the user brings (half-plus-two.yaml says how to fill it)
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
