import uuid
from collections.abc import Callable, Iterable

from pydantic import BaseModel, ConfigDict, Field, JsonValue

from registry_tokens.kit.ids import graphql_id
from registry_tokens.kit.network import MAX_CIDRS
from registry_tokens.kit.schemas import ResponseModel, Timestamp
from registry_tokens.kit.urls import Urls
from registry_tokens.kit.validation import NON_BLANK_TEXT_PATTERN
from registry_tokens.organizations.schemas import OrganizationRef
from registry_tokens.registries.repository import RegistryRow
from registry_tokens.registries.schemas import RegistryRef
from registry_tokens.registry_tokens.repository import TokenRow
from registry_tokens.registry_tokens.service import (
    DESCRIPTION_MAX_LENGTH,
    MAX_GRACE_PERIOD_SECONDS,
    CreatedRegistryToken,
    RegistryTokenOf,
    TokenChanges,
)
from registry_tokens.users.schemas import UserOut

# The request bodies are documented here and checked in the service, so that every client
# gets Buildkite's wording; unknown fields are ignored for forward compatibility.
_PROPERTIES: dict[str, JsonValue] = {
    "description": {
        "type": "string",
        "minLength": 1,
        "maxLength": DESCRIPTION_MAX_LENGTH,
        "pattern": NON_BLANK_TEXT_PATTERN,
        "description": "Description of the token: not blank, at most 255 characters.",
        "examples": ["Usher"],
    },
    "expires_at": {
        "type": ["string", "null"],
        "format": "date-time",
        "description": "When the token stops working (ISO 8601 with a time zone, in the "
        "future). `null` on update removes the expiry.",
        "examples": ["2030-01-01T00:00:00Z"],
    },
    "allowed_cidrs": {
        "type": ["array", "null"],
        "items": {"type": "string", "examples": ["10.0.0.0/8"]},
        "maxItems": MAX_CIDRS,
        "description": "IPv4/IPv6 networks installs may come from; `null` or `[]`: anywhere.",
    },
}


def _body_schema(*, required: list[str]) -> dict[str, JsonValue]:
    return {"properties": _PROPERTIES, "required": list(required)}


class RegistryTokenCreate(BaseModel):
    model_config = ConfigDict(json_schema_extra=_body_schema(required=["description"]))

    description: object = Field(default=None)
    expires_at: object = Field(default=None)
    allowed_cidrs: object = Field(default=None)

    def changes(self) -> TokenChanges:
        return _changes(self)


class RegistryTokenUpdate(RegistryTokenCreate):
    """Every field optional: those left out stay as they are."""

    model_config = ConfigDict(json_schema_extra=_body_schema(required=[]))


class RegistryTokenRotate(BaseModel):
    model_config = ConfigDict(
        json_schema_extra={
            "properties": {
                "grace_period_seconds": {
                    "type": ["integer", "null"],
                    "minimum": 0,
                    "maximum": MAX_GRACE_PERIOD_SECONDS,
                    "description": "How long the old secret keeps working (absent or `null`: 0).",
                }
            }
        }
    )

    grace_period_seconds: object = Field(default=None)


def _changes(body: BaseModel) -> TokenChanges:
    """Only the fields the client sent: an explicit ``null`` differs from leaving one out."""
    return TokenChanges(**{name: getattr(body, name) for name in body.model_fields_set})


class RegistryTokenOut(ResponseModel):
    """The seed's keys in the seed's order, then (after them) our additions."""

    id: uuid.UUID
    graphql_id: str
    description: str
    url: str
    created_at: Timestamp
    created_by: UserOut
    organization: OrganizationRef
    registry: RegistryRef
    expires_at: Timestamp | None
    allowed_cidrs: list[str] | None
    last_used_at: Timestamp | None
    last_used_ip: str | None

    @classmethod
    def of(cls, found: RegistryTokenOf, urls: Urls) -> "RegistryTokenOut":
        return cls(**_fields(found.token, found.registry, urls))

    @classmethod
    def list_of(
        cls, tokens: Iterable[TokenRow], registry: RegistryRow, urls: Urls
    ) -> list["RegistryTokenOut"]:
        """A page of one registry's tokens: the organization, registry and creator each
        one shows are built once for the page, not once for every token."""
        shared: dict[tuple[str, uuid.UUID], ResponseModel] = {}
        return [cls(**_fields(token, registry, urls, shared)) for token in tokens]


class RegistryTokenCreated(RegistryTokenOut):
    """The create and rotate responses: the only times a secret is ever shown."""

    token: str = Field(description="The registry token's secret. Shown once; store it now.")

    @classmethod
    def of_new(cls, created: CreatedRegistryToken, urls: Urls) -> "RegistryTokenCreated":
        return cls(**_fields(created.token, created.registry, urls), token=created.secret)


def _fields(
    token: TokenRow,
    registry: RegistryRow,
    urls: Urls,
    shared: dict[tuple[str, uuid.UUID], ResponseModel] | None = None,
) -> dict[str, object]:
    """The response's fields; ``shared`` keeps the nested objects built so far (by kind
    and id), for tokens that show the same ones."""
    org = registry.organization_slug
    known = shared if shared is not None else {}

    def nested(kind: str, key: uuid.UUID, build: Callable[[], ResponseModel]) -> ResponseModel:
        if (kind, key) not in known:
            known[(kind, key)] = build()
        return known[(kind, key)]

    return {
        "id": token.id,
        "graphql_id": graphql_id("RegistryToken", token.id),
        "description": token.description,
        "url": urls.registry_token(org, registry.slug, token.id),
        "created_at": token.created_at,
        "created_by": nested(
            "user",
            token.creator_id,
            lambda: UserOut.of_fields(
                token.creator_id,
                token.creator_name,
                token.creator_email,
                token.creator_avatar_url,
                token.creator_created_at,
            ),
        ),
        "organization": nested(
            "organization",
            registry.organization_id,
            lambda: OrganizationRef.of(registry.organization_id, org, urls),
        ),
        "registry": nested("registry", registry.id, lambda: RegistryRef.of(registry, urls)),
        "expires_at": token.expires_at,
        "allowed_cidrs": token.allowed_cidrs,
        "last_used_at": token.last_used_at,
        "last_used_ip": token.last_used_ip,
    }
