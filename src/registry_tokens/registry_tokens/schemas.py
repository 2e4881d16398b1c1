import uuid

from pydantic import BaseModel, ConfigDict, Field, JsonValue

from registry_tokens.kit.ids import graphql_id
from registry_tokens.kit.schemas import ResponseModel, Timestamp
from registry_tokens.kit.urls import Urls
from registry_tokens.kit.validation import NON_BLANK_TEXT_PATTERN
from registry_tokens.organizations.schemas import OrganizationRef
from registry_tokens.registries.schemas import RegistryRef
from registry_tokens.registry_tokens.models import RegistryToken
from registry_tokens.users.schemas import UserOut

DESCRIPTION_MAX_LENGTH = 255

# The request bodies are documented here and checked in the service (kit.validation), so
# that every client gets Buildkite's wording; unknown fields are ignored for forward
# compatibility with newer clients.
_DESCRIPTION_SCHEMA: dict[str, JsonValue] = {
    "type": "string",
    "minLength": 1,
    "maxLength": DESCRIPTION_MAX_LENGTH,
    "pattern": NON_BLANK_TEXT_PATTERN,
    "description": "Description of the token: not blank, at most 255 characters.",
    "examples": ["Usher"],
}


class RegistryTokenCreate(BaseModel):
    model_config = ConfigDict(
        json_schema_extra={
            "properties": {"description": _DESCRIPTION_SCHEMA},
            "required": ["description"],
        }
    )

    description: object = Field(default=None)


class RegistryTokenUpdate(BaseModel):
    model_config = ConfigDict(
        json_schema_extra={"properties": {"description": _DESCRIPTION_SCHEMA}}
    )

    description: object = Field(default=None)


class RegistryTokenOut(ResponseModel):
    id: uuid.UUID
    graphql_id: str
    description: str
    url: str
    created_at: Timestamp
    created_by: UserOut
    organization: OrganizationRef
    registry: RegistryRef

    @classmethod
    def of(cls, token: RegistryToken, urls: Urls) -> "RegistryTokenOut":
        return cls(**_fields(token, urls))


class RegistryTokenCreated(RegistryTokenOut):
    """The create response: the only time the secret is ever shown."""

    token: str = Field(description="The registry token's secret. Shown once; store it now.")

    @classmethod
    def of_new(cls, token: RegistryToken, secret: str, urls: Urls) -> "RegistryTokenCreated":
        return cls(**_fields(token, urls), token=secret)


def _fields(token: RegistryToken, urls: Urls) -> dict[str, object]:
    registry = token.package_registry
    organization = registry.organization
    return {
        "id": token.id,
        "graphql_id": graphql_id("RegistryToken", token.id),
        "description": token.description,
        "url": urls.registry_token(organization.slug, registry.slug, token.id),
        "created_at": token.created_at,
        "created_by": UserOut.of(token.created_by),
        "organization": OrganizationRef.of(organization, urls),
        "registry": RegistryRef.of(registry, urls),
    }
