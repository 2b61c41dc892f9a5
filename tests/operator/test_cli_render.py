"""``trtserve-operator render`` prints exactly what the builders produce, without a cluster."""

from __future__ import annotations

import io
from pathlib import Path

import pytest
import yaml
from builder_inputs import EXAMPLES, SETTINGS, manifests

from trtserve_operator.api.crd import render_crd
from trtserve_operator.cli import build_parser, main, render


def test_render_prints_the_builders_output_for_an_example() -> None:
    out, err = io.StringIO(), io.StringIO()
    example = EXAMPLES[0]
    assert render(example, "default", SETTINGS, out, err) == 0
    printed = list(yaml.safe_load_all(out.getvalue()))
    expected = manifests(example)
    assert expected[0]["metadata"]["name"] == "trtserve-monitoring"
    for obj in expected:  # no uid in a file: what the operator would create, unowned
        obj["metadata"].pop("ownerReferences", None)
    assert printed == expected
    assert err.getvalue() == ""


def test_render_refuses_an_unsupported_serving_image(tmp_path: Path) -> None:
    manifest = tmp_path / "m.yaml"
    manifest.write_text(
        yaml.safe_dump(
            {
                "apiVersion": "trtserve.io/v1alpha1",
                "kind": "TRTModel",
                "metadata": {"name": "m"},
                "spec": {
                    "source": {"uri": "s3://b/m"},
                    "serving": {"image": "tensorflow/serving:2.18.0-gpu"},
                },
            }
        )
    )
    out, err = io.StringIO(), io.StringIO()
    assert render(manifest, "default", SETTINGS, out, err) == 1
    assert "UnsupportedServingImage" in err.getvalue()


def test_render_names_the_invalid_field(tmp_path: Path) -> None:
    manifest = tmp_path / "bad.yaml"
    manifest.write_text(
        "apiVersion: trtserve.io/v1alpha1\nkind: TRTModel\nmetadata: {name: bad}\n"
        "spec: {source: {uri: s3://b/m}, serving: {gpus: 99}}\n"
    )
    out, err = io.StringIO(), io.StringIO()
    assert render(manifest, "default", SETTINGS, out, err) == 1
    assert "spec.serving.gpus" in err.getvalue()


def test_run_accepts_namespace_scoping() -> None:
    args = build_parser().parse_args(["run", "-n", "a", "--namespace", "b"])
    assert args.namespace == ["a", "b"]
    with pytest.raises(SystemExit):
        build_parser().parse_args(["run", "-n", "a", "--all-namespaces"])


def test_crd_command_prints_the_committed_crd(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["crd"]) == 0
    printed = capsys.readouterr().out
    assert printed == render_crd()
    assert yaml.safe_load(printed)["kind"] == "CustomResourceDefinition"


def test_render_prints_the_benchmark_job_of_a_file_with_both_models() -> None:
    out, err = io.StringIO(), io.StringIO()
    example = next(p for p in EXAMPLES if p.stem == "benchmark-native-vs-fp16")
    assert render(example, "default", SETTINGS, out, err) == 0
    printed = list(yaml.safe_load_all(out.getvalue()))
    (job,) = [obj for obj in printed if obj["kind"] == "Job"]
    assert job["metadata"]["labels"]["app.kubernetes.io/instance"] == "resnet50-fp16"
    args = job["spec"]["template"]["spec"]["containers"][0]["args"]
    assert "--baseline=resnet50-native.default.svc:8500" in args
    assert "--concurrency=1,4,16" in args
