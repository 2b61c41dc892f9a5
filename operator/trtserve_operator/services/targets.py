"""TRTModel bodies -> :class:`Target` (validated spec), and what blocks a rollout."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from trtserve_operator.api.v1alpha1 import API_VERSION, KIND, TRTModelSpec
from trtserve_operator.services.builders.deployment import serving_image
from trtserve_operator.services.builders.images import unsupported_serving_image
from trtserve_operator.services.builders.target import Target
from trtserve_operator.services.status import INVALID_SPEC, Blocker
from trtserve_operator.settings import CONVERTER_IMAGE_MISSING, Settings

UNSUPPORTED_SERVING_IMAGE = "UnsupportedServingImage"
CONVERTER_IMAGE_MISSING_REASON = "ConverterImageMissing"
__all__ = [
    "CONVERTER_IMAGE_MISSING_REASON",
    "INVALID_SPEC",
    "UNSUPPORTED_SERVING_IMAGE",
    "blocker_for",
    "object_reference",
    "target_from_body",
]


def target_from_body(body: Mapping[str, Any]) -> Target:
    """Validate the spec of a TRTModel body (raises ``pydantic.ValidationError``)."""
    metadata = body.get("metadata", {})
    return Target(
        name=str(metadata["name"]),
        namespace=str(metadata.get("namespace") or "default"),
        uid=str(metadata.get("uid") or ""),
        generation=int(metadata.get("generation") or 0),
        spec=TRTModelSpec.model_validate(body.get("spec") or {}),
    )


def blocker_for(target: Target, settings: Settings) -> Blocker | None:
    """Why the spec must not be rolled out, if it must not."""
    if not target.spec.converter_image and settings.converter_image is None:
        return Blocker(CONVERTER_IMAGE_MISSING_REASON, CONVERTER_IMAGE_MISSING)
    reason = unsupported_serving_image(serving_image(target, settings.serving_image))
    return Blocker(UNSUPPORTED_SERVING_IMAGE, reason) if reason else None


def object_reference(body_or_target: Mapping[str, Any] | Target) -> dict[str, Any]:
    """``involvedObject`` of an Event about a TRTModel."""
    if isinstance(body_or_target, Target):
        name, namespace, uid = body_or_target.name, body_or_target.namespace, body_or_target.uid
    else:
        metadata = body_or_target.get("metadata", {})
        name = metadata["name"]
        namespace = metadata.get("namespace") or "default"
        uid = metadata.get("uid") or ""
    reference = {"apiVersion": API_VERSION, "kind": KIND, "name": name, "namespace": namespace}
    if uid:
        reference["uid"] = uid
    return reference
