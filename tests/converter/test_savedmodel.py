"""Finding the SavedModel, its signatures, input specs and build-shape checks."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from trtserve_converter.errors import InvalidBuildShape, NotASavedModel, SourceNotFound
from trtserve_converter.savedmodel import (
    TensorInfo,
    default_shape,
    input_specs,
    load_saved_model,
    locate_saved_model,
    locate_versioned,
    output_specs,
    resolve_build_shapes,
    signature_function,
)


def fake_model(directory: Path) -> Path:
    directory.mkdir(parents=True)
    (directory / "saved_model.pb").write_bytes(b"")
    return directory


def test_locate_the_model_itself(tmp_path: Path) -> None:
    assert locate_saved_model(fake_model(tmp_path / "m"), None) == tmp_path / "m"


def test_locate_highest_or_chosen_numbered_version(tmp_path: Path) -> None:
    for version in ("1", "00000123", "20"):
        fake_model(tmp_path / "base" / version)
    (tmp_path / "base" / "999").mkdir()  # not a model: ignored
    (tmp_path / "base" / ".staging").mkdir()
    assert locate_saved_model(tmp_path / "base", None) == tmp_path / "base" / "00000123"
    assert locate_saved_model(tmp_path / "base", 20) == tmp_path / "base" / "20"
    with pytest.raises(SourceNotFound, match=r"version 7 .* \[1, 20, 123\]"):
        locate_saved_model(tmp_path / "base", 7)


def test_located_version_is_the_source_directorys_number(tmp_path: Path) -> None:
    """The version the source numbers its model with, kept as the version served."""
    for version in ("1", "00000123"):
        fake_model(tmp_path / "base" / version)
    assert locate_versioned(tmp_path / "base", None) == (tmp_path / "base" / "00000123", 123)
    assert locate_versioned(tmp_path / "base", 1) == (tmp_path / "base" / "1", 1)
    fake_model(tmp_path / "wrapped" / "export" / "7")
    assert locate_versioned(tmp_path / "wrapped", None) == (tmp_path / "wrapped/export/7", 7)
    # A SavedModel that is not in a numbered directory has no version of its own.
    assert locate_versioned(fake_model(tmp_path / "m"), None) == (tmp_path / "m", None)


def test_locate_through_wrapper_directories(tmp_path: Path) -> None:
    fake_model(tmp_path / "x" / "export" / "resnet" / "3")
    (tmp_path / "x" / "__MACOSX").mkdir()
    assert locate_saved_model(tmp_path / "x", None) == tmp_path / "x/export/resnet/3"


def test_no_saved_model(tmp_path: Path) -> None:
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    with pytest.raises(NotASavedModel, match=r"no saved_model.pb .*\['a', 'b'\]"):
        locate_saved_model(tmp_path, None)


SPECS = {
    "images": TensorInfo("images", "float32", (None, 224, 224, 3)),
    "mask": TensorInfo("mask", "int32", (None, None)),
}


def test_default_build_shape_sets_unknown_dims_to_one() -> None:
    assert resolve_build_shapes(SPECS, ()) == [{"images": (1, 224, 224, 3), "mask": (1, 1)}]
    assert default_shape(TensorInfo("s", "string", None)) == (1,)
    with pytest.raises(InvalidBuildShape, match="unknown rank"):
        resolve_build_shapes({"x": TensorInfo("x", "float32", None)}, ())


def test_requested_build_shapes_are_kept() -> None:
    shapes = (
        {"images": (1, 224, 224, 3), "mask": (1, 5)},
        {"images": (8, 224, 224, 3), "mask": (8, 9)},
    )
    assert resolve_build_shapes(SPECS, shapes) == list(shapes)


@pytest.mark.parametrize(
    ("shape", "fragment"),
    [
        ({"images": (1, 224, 224, 3), "mask": (1, 5), "extra": (1,)}, "names \\['extra'\\]"),
        ({"images": (1, 224, 224, 3)}, "misses inputs \\['mask'\\]"),
        ({"images": (1, 224, 224), "mask": (1, 5)}, "rank 3"),
        ({"images": (1, 224, 224, 4), "mask": (1, 5)}, "dimension 3 is 4 .* fixes it to 3"),
    ],
)
def test_contradicting_build_shapes_are_rejected(shape: dict[str, Any], fragment: str) -> None:
    with pytest.raises(InvalidBuildShape, match=fragment):
        resolve_build_shapes(SPECS, (shape,))


@pytest.mark.tf
def test_input_specs_of_real_models(models: Any, half_plus_two: Path) -> None:
    classifier = signature_function(load_saved_model(models.classifier), "serving_default")
    assert input_specs(classifier) == {"images": TensorInfo("images", "float32", (None, 8, 8, 3))}
    assert output_specs(classifier) == {
        "probabilities": TensorInfo("probabilities", "float32", (None, 4))
    }
    two = signature_function(load_saved_model(models.two_input), "serving_default")
    assert input_specs(two) == {
        "a": TensorInfo("a", "float32", (None, 4)),
        "b": TensorInfo("b", "int64", (None,)),
    }
    tf1 = load_saved_model(half_plus_two / "00000123")
    assert input_specs(signature_function(tf1, "classify_x_to_y")) == {
        "inputs": TensorInfo("inputs", "string", None)
    }
    assert input_specs(signature_function(tf1, "serving_default")) == {
        "x": TensorInfo("x", "float32", (None, 1))
    }


@pytest.mark.tf
def test_build_shape_contradicting_the_signature_exits_22(models: Any, run_cli: Any) -> None:
    result = run_cli(
        "--source", str(models.classifier), "--model-name", "clf", "--precision", "NATIVE",
        "--build-shape", "images=1x8x8x4",
    )  # fmt: skip
    assert (result.code, result.report["reason"]) == (22, "InvalidBuildShape")
    assert "dimension 3" in result.report["message"]
    assert not (result.output_base / "clf" / "1").exists()
