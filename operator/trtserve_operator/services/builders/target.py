"""The TRTModel as the builders see it: identity plus the validated spec."""

from __future__ import annotations

from dataclasses import dataclass

from trtserve_operator.api.v1alpha1 import API_VERSION, KIND, TRTModelSpec


@dataclass(frozen=True)
class Target:
    """One TRTModel: what every child manifest is rendered from."""

    name: str
    namespace: str
    spec: TRTModelSpec
    uid: str = ""
    generation: int = 0

    @property
    def model_name(self) -> str:
        """Name the model is served under (``spec.modelName``, default ``metadata.name``)."""
        return self.spec.model_name or self.name

    def owner_reference(self) -> dict[str, object]:
        """ownerReference making the TRTModel the controller of a child (GC deletes it)."""
        return {
            "apiVersion": API_VERSION,
            "kind": KIND,
            "name": self.name,
            "uid": self.uid,
            "controller": True,
            "blockOwnerDeletion": True,
        }
