import uuid

from registry_tokens.kit.ids import graphql_id
from registry_tokens.kit.schemas import ResponseModel
from registry_tokens.kit.urls import Urls
from registry_tokens.registries import oidc_policy
from registry_tokens.registries.repository import RegistryRow
from registry_tokens.registries.requests import RegistryCreate, RegistryUpdate

__all__ = ["RegistryCreate", "RegistryOut", "RegistryRef", "RegistryUpdate"]


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
            oidc_policy=oidc_policy.shown(registry.oidc_policy),
            team_ids=[],
        )
