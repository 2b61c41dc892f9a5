"""Operator settings from the environment (``TRTSERVE_`` prefix).

The Helm chart sets exactly these variables. Every one has a default but the converter
image: trtserve publishes no images, so without ``TRTSERVE_CONVERTER_IMAGE`` (or a
TRTModel's ``spec.converterImage``) the operator says so at start and refuses to roll out
the models it cannot serve, instead of pulling a name nobody owns.
"""

from __future__ import annotations

import re
from typing import Annotated, Literal, Self

from pydantic import Field, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from trtserve_operator.api import rules
from trtserve_operator.api.v1alpha1 import DEFAULT_SERVING_IMAGE

CONVERTER_IMAGE_MISSING = (
    "no converter image: set TRTSERVE_CONVERTER_IMAGE on the operator (chart: "
    "converterImage.repository) or spec.converterImage; trtserve publishes no images: build "
    "Dockerfile.converter and push it to your registry (docs/admin.md)"
)
DEFAULT_HEALTH_PORT = 19080


class Settings(BaseSettings):
    """Runtime configuration of the operator."""

    model_config = SettingsConfigDict(env_prefix="TRTSERVE_", extra="ignore", frozen=True)

    converter_image: Annotated[
        str | None,
        Field(
            min_length=1,
            description="Converter image used when spec.converterImage is unset; no default.",
        ),
    ] = None
    serving_image: Annotated[
        str,
        Field(min_length=1, description="TF Serving image used when spec.serving.image is unset."),
    ] = DEFAULT_SERVING_IMAGE
    namespaces: Annotated[
        tuple[str, ...],
        NoDecode,
        Field(description="Namespaces to watch (comma-separated); empty: all namespaces."),
    ] = ()
    log_format: Literal["text", "json"] = "text"
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"
    health_port: Annotated[
        int,
        Field(
            ge=1,
            le=65535,
            description=(
                "Port of kopf's /healthz; uncommon on purpose (8080 collides with local "
                "servers when the operator runs on a laptop) and below the ephemeral range."
            ),
        ),
    ] = DEFAULT_HEALTH_PORT
    metrics_port: Annotated[int, Field(ge=0, le=65535, description="0 disables metrics.")] = 0
    max_concurrent_reconciles: Annotated[
        int, Field(ge=1, le=1024, description="TRTModels converged at the same time.")
    ] = 16
    max_concurrent_writes: Annotated[
        int,
        Field(
            ge=1,
            le=256,
            description="Write requests in flight at once (no rate limit: the API server "
            "sets the pace).",
        ),
    ] = 8
    resync_seconds: Annotated[
        float,
        Field(
            ge=0,
            description=(
                "Every this many seconds every TRTModel is converged again from the caches "
                "(no write where nothing differs); 0 disables the resync."
            ),
        ),
    ] = 600
    status_interval: Annotated[
        float,
        Field(
            ge=0.0,
            le=60.0,
            description="Seconds a TRTModel's status update waits so that the changes of its "
            "Deployment and pods coalesce into one write (at most one per interval).",
        ),
    ] = 1.0
    cache_uri: Annotated[
        str | None,
        Field(
            description=(
                "Converted-model cache for every TRTModel (s3://, gs:// or pvc://<claim>/<path>); "
                "empty: no cache unless spec.cache.uri is set."
            ),
        ),
    ] = None
    cache_secret_name: Annotated[
        str | None,
        Field(description="Secret (in each model's namespace) with the cache's credentials."),
    ] = None
    cache_signing_secret_name: Annotated[
        str | None,
        Field(description="Secret (in each model's namespace) holding the HMAC signing key."),
    ] = None
    cache_signing_secret_key: Annotated[
        str, Field(min_length=1, description="Key of the signing Secret that holds the key.")
    ] = "key"

    leader_election: Annotated[
        bool,
        Field(
            description=(
                "Elect one leader among the operator's replicas with a coordination.k8s.io "
                "Lease; only the leader writes. false: exactly one replica may run."
            )
        ),
    ] = True
    leader_election_namespace: Annotated[
        str | None,
        Field(
            description=(
                "Namespace of the leader Lease; default: the pod's own (the service account's "
                "namespace file), else default."
            )
        ),
    ] = None
    leader_election_lease_name: Annotated[
        str, Field(min_length=1, max_length=253, description="Name of the leader Lease.")
    ] = "trtserve-operator"
    leader_election_lease_duration: Annotated[
        float,
        Field(
            ge=2,
            le=3600,
            description=(
                "Seconds a follower waits, after it last saw the Lease change, before it "
                "takes over (client-go's LeaseDuration)."
            ),
        ),
    ] = 15.0
    leader_election_renew_deadline: Annotated[
        float,
        Field(
            ge=1,
            le=3600,
            description=(
                "Seconds the leader keeps writing without a successful renewal; then it stops "
                "(client-go's RenewDeadline; shorter than the lease duration)."
            ),
        ),
    ] = 10.0
    leader_election_retry_period: Annotated[
        float,
        Field(
            gt=0,
            le=600,
            description="Seconds between renewals and between a follower's attempts.",
        ),
    ] = 2.0
    pod_name: Annotated[
        str | None,
        Field(description="The pod's name (the leader identity's prefix); default: hostname."),
    ] = None

    @model_validator(mode="after")
    def _election_timing(self) -> Self:
        """client-go's checks (with the followers' jitter of 20 %)."""
        if not self.leader_election_lease_duration > self.leader_election_renew_deadline:
            raise ValueError(
                "TRTSERVE_LEADER_ELECTION_LEASE_DURATION must be longer than "
                "TRTSERVE_LEADER_ELECTION_RENEW_DEADLINE"
            )
        if not self.leader_election_renew_deadline > 1.2 * self.leader_election_retry_period:
            raise ValueError(
                "TRTSERVE_LEADER_ELECTION_RENEW_DEADLINE must be longer than 1.2 x "
                "TRTSERVE_LEADER_ELECTION_RETRY_PERIOD"
            )
        return self

    @field_validator(
        "cache_uri",
        "cache_secret_name",
        "cache_signing_secret_name",
        "leader_election_namespace",
        "pod_name",
        mode="before",
    )
    @classmethod
    def _empty_is_none(cls, value: object) -> object:
        return None if value == "" else value

    @field_validator("cache_uri")
    @classmethod
    def _cache_scheme(cls, uri: str | None) -> str | None:
        if uri is not None and not re.search(rules.CACHE_URI_SCHEME_PATTERN, uri):
            raise ValueError(rules.CACHE_URI_SCHEME.message)
        return uri

    @field_validator("namespaces", mode="before")
    @classmethod
    def _split_namespaces(cls, value: object) -> object:
        if isinstance(value, str):
            return tuple(part.strip() for part in value.split(",") if part.strip())
        return value

    @field_validator("log_level", mode="before")
    @classmethod
    def _upper_level(cls, value: object) -> object:
        return value.upper() if isinstance(value, str) else value
