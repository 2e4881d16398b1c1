import uuid

from pydantic import BaseModel, ConfigDict, JsonValue

from registry_tokens.kit.ids import graphql_id
from registry_tokens.kit.schemas import ResponseModel
from registry_tokens.kit.urls import Urls
from registry_tokens.kit.validation import NON_BLANK_TEXT_PATTERN
from registry_tokens.registries.repository import RegistryRow
from registry_tokens.registries.service import Ecosystem, RegistryChanges


class RegistryRef(ResponseModel):
    """A registry as embedded in a registry token (the seed's shape)."""

    id: uuid.UUID
    graphql_id: str
    slug: str
    url: str
    web_url: str

    @classmethod
    def of(cls, registry: RegistryRow, urls: Urls) -> "RegistryRef":
        org = registry.organization_slug
        return cls(
            id=registry.id,
            graphql_id=graphql_id("Registry", registry.id),
            slug=registry.slug,
            url=urls.registry(org, registry.slug),
            web_url=urls.registry_web(org, registry.slug),
        )


class RegistryOut(ResponseModel):
    """``GET …/registries/{registry}``, in the field order of Buildkite's Registries API."""

    id: uuid.UUID
    graphql_id: str
    slug: str
    url: str
    web_url: str
    name: str
    ecosystem: str
    description: str | None
    emoji: str | None
    color: str | None
    public: bool
    oidc_policy: str | None
    team_ids: list[str]

    @classmethod
    def of(cls, registry: RegistryRow, urls: Urls) -> "RegistryOut":
        org = registry.organization_slug
        return cls(
            id=registry.id,
            graphql_id=graphql_id("Registry", registry.id),
            slug=registry.slug,
            url=urls.registry(org, registry.slug),
            web_url=urls.registry_web(org, registry.slug),
            name=registry.name,
            ecosystem=registry.ecosystem,
            description=registry.description,
            emoji=registry.emoji,
            color=registry.color,
            public=registry.public,
            oidc_policy=registry.oidc_policy,
            team_ids=[],
        )


# Optional text: null clears it; a string must not be blank (the same rule as names).
_TEXT: dict[str, JsonValue] = {
    "type": ["string", "null"],
    "minLength": 1,
    "pattern": NON_BLANK_TEXT_PATTERN,
}


def _registry_request_schema(*, creating: bool) -> dict[str, JsonValue]:
    properties: dict[str, JsonValue] = {
        "name": {
            "type": "string",
            "minLength": 1,
            "maxLength": 255,
            "pattern": NON_BLANK_TEXT_PATTERN,
            "examples": ["My registry"],
        },
        "ecosystem": {"type": "string", "enum": [e.value for e in Ecosystem]},
        "description": {**_TEXT, "maxLength": 4096},
        "emoji": {**_TEXT, "maxLength": 100},
        "color": {**_TEXT, "maxLength": 50},
        "oidc_policy": {**_TEXT, "maxLength": 65536},
        "public": {"type": "boolean"},
    }
    if not creating:
        del properties["ecosystem"]
    return {"properties": properties, "required": ["name", "ecosystem"] if creating else []}


class RegistryCreate(BaseModel):
    """``name`` and ``ecosystem`` are required; the slug is the kebab-case name."""

    model_config = ConfigDict(json_schema_extra=_registry_request_schema(creating=True))

    name: object = None
    ecosystem: object = None
    description: object = None
    emoji: object = None
    color: object = None
    oidc_policy: object = None
    public: object = None

    def changes(self) -> RegistryChanges:
        return _changes(self)


class RegistryUpdate(RegistryCreate):
    """Fields left out stay as they are; the ecosystem and the slug never change."""

    model_config = ConfigDict(json_schema_extra=_registry_request_schema(creating=False))


def _changes(body: BaseModel) -> RegistryChanges:
    """Only the fields the client sent: an explicit ``null`` differs from leaving one out."""
    return RegistryChanges(**{field: getattr(body, field) for field in body.model_fields_set})
