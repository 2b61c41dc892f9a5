"""Which TF Serving images can serve TF-TRT models."""

from __future__ import annotations

import re

FIRST_UNSUPPORTED = (2, 18)
"""TF Serving 2.18+ is built without TF-TRT: "Op type not registered 'CreateTRTResourceHandle'"."""

_VERSION_TAG = re.compile(r"^(\d+)\.(\d+)")
_MOVING_TAGS = ("latest", "nightly")


def image_tag(image: str) -> str | None:
    """Tag of an image reference (``None`` for a digest-only or untagged reference)."""
    reference = image.split("@", 1)[0]
    last = reference.rsplit("/", 1)[-1]
    return last.split(":", 1)[1] if ":" in last else None


def unsupported_serving_image(image: str) -> str | None:
    """Why ``image`` cannot serve TF-TRT models, or ``None`` when it may.

    Tags ``2.18`` and newer, and the moving ``latest``/``nightly`` tags (which point past
    2.17), are refused. Untagged, digest and custom tags are allowed: the operator cannot
    know their version.
    """
    tag = image_tag(image)
    if tag is None:
        return None
    if tag.startswith(_MOVING_TAGS):
        return (
            f"serving image {image!r}: the tag {tag!r} points to a TF Serving release >= 2.18, "
            "which cannot load TensorRT ops; use tensorflow/serving:2.17.1-gpu"
        )
    match = _VERSION_TAG.match(tag)
    if match and (int(match[1]), int(match[2])) >= FIRST_UNSUPPORTED:
        return (
            f"serving image {image!r}: TF Serving {match[1]}.{match[2]} is built without TF-TRT "
            "(Op type not registered 'CreateTRTResourceHandle'); use tensorflow/serving:2.17.1-gpu"
        )
    return None
