"""Step 2: find and inspect the SavedModel (signatures, input specs, build shapes)."""

# TensorFlow and the transports are imported lazily: --help, argument errors and a
# TF-less failure path must stay fast and never import TensorFlow.
# ruff: noqa: PLC0415

from __future__ import annotations

import logging
import re
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NamedTuple

from trtserve_converter.config import BuildShape
from trtserve_converter.errors import (
    InvalidBuildShape,
    NotASavedModel,
    SignatureNotFound,
    SourceNotFound,
    summarize,
)
from trtserve_converter.shapes import format_build_shape

LOG = logging.getLogger(__name__)

SAVED_MODEL_FILES = ("saved_model.pb", "saved_model.pbtxt")
MAX_WRAPPER_DEPTH = 3
IGNORED_ENTRIES = frozenset({"__MACOSX"})


@dataclass(frozen=True)
class TensorInfo:
    """One signature tensor: name, TF dtype name ('float32', 'string', ...), shape.

    `shape` is None for unknown rank; unknown dimensions are None.
    """

    name: str
    dtype: str
    shape: tuple[int | None, ...] | None

    @property
    def is_string(self) -> bool:
        return self.dtype == "string"


def _has_saved_model(directory: Path) -> bool:
    return any((directory / name).is_file() for name in SAVED_MODEL_FILES)


def _visible_children(directory: Path) -> list[Path]:
    return sorted(
        child
        for child in directory.iterdir()
        if child.is_dir() and not child.name.startswith(".") and child.name not in IGNORED_ENTRIES
    )


class LocatedModel(NamedTuple):
    """The SavedModel directory found in the source, and its version number there.

    `version` is None when the SavedModel is not in a numbered version directory.
    """

    path: Path
    version: int | None


def locate_saved_model(root: Path, source_version: int | None) -> Path:
    """The SavedModel directory inside `root` (see locate_versioned)."""
    return locate_versioned(root, source_version).path


def locate_versioned(root: Path, source_version: int | None) -> LocatedModel:
    """The SavedModel directory inside `root` and the version the source gives it.

    Accepts the SavedModel itself, a TF Serving model base with numbered version
    directories (the highest, or `source_version`), or either wrapped in single
    directories (as archives often are).
    """
    directory = root
    for _ in range(MAX_WRAPPER_DEPTH + 1):
        if _has_saved_model(directory):
            if source_version is not None and directory == root:
                LOG.warning("the source is a single SavedModel: --source-version ignored")
            return LocatedModel(directory, None)
        children = _visible_children(directory)
        versions = {
            int(child.name): child
            for child in children
            if child.name.isdigit() and _has_saved_model(child)
        }
        if versions:
            if source_version is None:
                chosen = max(versions)
                LOG.info("taking version %d of %s", chosen, sorted(versions))
                return LocatedModel(versions[chosen], chosen)
            if source_version not in versions:
                raise SourceNotFound(
                    f"version {source_version} is not in the source; it has versions "
                    f"{sorted(versions)}: fix --source-version"
                )
            return LocatedModel(versions[source_version], source_version)
        if len(children) != 1:
            break
        directory = children[0]
    raise NotASavedModel(
        f"no saved_model.pb found in the source (top level: "
        f"{sorted(p.name for p in root.iterdir())[:10]}): point --source at a SavedModel "
        "directory, a model base with numbered versions, or an archive of one"
    )


REFERENCE_VARIABLE = re.compile(
    r"Unable to create a python object for variable <tf\.Variable '([^']+)'.*reference variable"
)


class _ReferenceVariables(logging.Filter):
    """Holds back TF's warning per TF1 reference variable and signature, keeps the names."""

    def __init__(self) -> None:
        super().__init__()
        self.names: set[str] = set()
        self.warnings = 0

    def filter(self, record: logging.LogRecord) -> bool:
        match = REFERENCE_VARIABLE.search(record.getMessage())
        if match is None:
            return True
        self.names.add(match.group(1).removesuffix(":0"))
        self.warnings += 1
        return False


@contextmanager
def _summarized_reference_variable_warnings() -> Iterator[None]:
    """TF warns once per reference variable *and signature* when loading a TF1 model
    (20 lines for half_plus_two); for serving they are harmless: log one line instead."""
    tf_logger = logging.getLogger("tensorflow")
    notes = _ReferenceVariables()
    tf_logger.addFilter(notes)
    try:
        yield
    finally:
        tf_logger.removeFilter(notes)
        if notes.names:
            LOG.info(
                "TF1 SavedModel with %d reference variables (%s): loaded read-only, which is "
                "all inference needs (%d TensorFlow warnings about them summarized here)",
                len(notes.names),
                ", ".join(sorted(notes.names)),
                notes.warnings,
            )


def load_saved_model(directory: Path) -> Any:
    """tf.saved_model.load, with failures mapped to NotASavedModel."""
    import tensorflow as tf

    try:
        with _summarized_reference_variable_warnings():
            return tf.saved_model.load(str(directory))
    except Exception as error:
        raise NotASavedModel(
            f"the SavedModel at {directory.name} does not load "
            f"({summarize(error, 300)}): check that it is a complete, "
            "TensorFlow 2.17-compatible SavedModel"
        ) from error


def signature_function(loaded: Any, key: str) -> Any:
    """The signature's concrete function, or SignatureNotFound listing the existing keys."""
    signatures = loaded.signatures
    if key not in signatures:
        existing = ", ".join(sorted(signatures)) or "none"
        raise SignatureNotFound(
            f"signature {key!r} not found; the model has: {existing}: set spec.source.signatureKey "
            "(--signature-key) to one of them"
        )
    return signatures[key]


def _tensor_info(name: str, spec: Any) -> TensorInfo:
    shape = None if spec.shape.rank is None else tuple(spec.shape.as_list())
    return TensorInfo(name=name, dtype=spec.dtype.name, shape=shape)


def input_specs(function: Any) -> dict[str, TensorInfo]:
    """Signature inputs by name (signatures take keyword arguments only)."""
    args, kwargs = function.structured_input_signature
    if args:
        raise NotASavedModel("the signature takes positional inputs; TF Serving needs named ones")
    return {name: _tensor_info(name, spec) for name, spec in sorted(kwargs.items())}


def output_specs(function: Any) -> dict[str, TensorInfo]:
    """Signature outputs by name."""
    outputs = function.structured_outputs
    if not isinstance(outputs, dict):
        raise NotASavedModel("the signature's outputs are not named: TF Serving needs a dict")
    return {
        name: TensorInfo(name=name, dtype=tensor.dtype.name, shape=_shape_of(tensor))
        for name, tensor in sorted(outputs.items())
    }


def _shape_of(tensor: Any) -> tuple[int | None, ...] | None:
    return None if tensor.shape.rank is None else tuple(tensor.shape.as_list())


def default_shape(spec: TensorInfo) -> tuple[int, ...] | None:
    """The signature shape with unknown dims = 1; serialized strings get (1,); else None."""
    if spec.shape is None:
        return (1,) if spec.is_string else None
    return tuple(1 if dim is None else dim for dim in spec.shape)


def resolve_build_shapes(
    specs: dict[str, TensorInfo], requested: tuple[BuildShape, ...]
) -> list[BuildShape]:
    """The engines' input shapes: the requested ones checked against the signature,
    or one default shape (unknown dims = 1)."""
    if not requested:
        shape: BuildShape = {}
        for name, spec in specs.items():
            dims = default_shape(spec)
            if dims is None:
                raise InvalidBuildShape(
                    f"input {name!r} has unknown rank: give --build-shape {name}=DIMxDIM..."
                )
            shape[name] = dims
        return [shape]
    return [check_build_shape(specs, shape) for shape in requested]


def check_build_shape(specs: dict[str, TensorInfo], shape: BuildShape) -> BuildShape:
    """Reject a build shape that names unknown inputs, misses one, or contradicts a dim."""
    text = format_build_shape(shape)
    unknown = sorted(set(shape) - set(specs))
    if unknown:
        raise InvalidBuildShape(
            f"build shape {text!r} names {unknown}, the signature's inputs are {sorted(specs)}"
        )
    missing = sorted(set(specs) - set(shape))
    if missing:
        raise InvalidBuildShape(
            f"build shape {text!r} misses inputs {missing}: give every input's shape"
        )
    for name, dims in shape.items():
        expected = specs[name].shape
        if expected is None:
            continue
        if len(dims) != len(expected):
            raise InvalidBuildShape(
                f"build shape {name}={'x'.join(map(str, dims))} has rank {len(dims)}, "
                f"the signature's {name} has shape {_describe(expected)} (rank {len(expected)})"
            )
        for index, (got, want) in enumerate(zip(dims, expected, strict=True)):
            if want is not None and got != want:
                raise InvalidBuildShape(
                    f"build shape {name}={'x'.join(map(str, dims))}: dimension {index} is "
                    f"{got} but the signature fixes it to {want} ({_describe(expected)})"
                )
    return dict(shape)


def _describe(shape: tuple[int | None, ...]) -> str:
    return "[" + ",".join("?" if dim is None else str(dim) for dim in shape) + "]"
