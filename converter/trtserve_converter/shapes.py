"""Parsing of `--build-shape` specs (`name=1x224x224x3,name2=1x10`), without TensorFlow."""

from __future__ import annotations

from trtserve_converter.config import INPUT_NAME_PATTERN, BuildShape


def parse_build_shape(spec: str) -> BuildShape:
    """Parse one engine's input shapes; raise ValueError with the offending part."""
    shapes: BuildShape = {}
    for part in spec.split(","):
        name, sep, dims_text = part.strip().partition("=")
        name = name.strip()
        if not sep or not INPUT_NAME_PATTERN.match(name):
            raise ValueError(f"{part!r} is not name=DIMxDIM (e.g. input_1=1x224x224x3)")
        if name in shapes:
            raise ValueError(f"input {name!r} appears twice in {spec!r}")
        dims_text = dims_text.strip()
        try:
            dims = tuple(int(dim) for dim in dims_text.split("x")) if dims_text else ()
        except ValueError:
            raise ValueError(f"{part!r}: dimensions must be integers joined by 'x'") from None
        if any(dim < 1 for dim in dims):
            raise ValueError(f"{part!r}: every dimension must be >= 1")
        shapes[name] = dims
    return shapes


def format_build_shape(shape: BuildShape) -> str:
    """The inverse of parse_build_shape (for logs and messages)."""
    return ",".join(f"{name}={'x'.join(map(str, dims))}" for name, dims in shape.items())
