import uuid

from registry_tokens.kit.ids import graphql_id
from registry_tokens.kit.schemas import ResponseModel, Timestamp
from registry_tokens.kit.urls import Urls
from registry_tokens.organizations.models import Organization
from registry_tokens.organizations.repository import MemberOrganization


class OrganizationRef(ResponseModel):
    """An organization as embedded in other objects (the seed's shape)."""

    id: uuid.UUID
    slug: str
    url: str
    web_url: str

    @classmethod
    def of(cls, organization_id: uuid.UUID, slug: str, urls: Urls) -> "OrganizationRef":
        return cls(
            id=organization_id,
            slug=slug,
            url=urls.organization(slug),
            web_url=urls.organization_web(slug),
        )


class OrganizationOut(ResponseModel):
    """``GET /v2/organizations[/{org}]``: Buildkite's organization, in its docs' order."""

    id: uuid.UUID
    graphql_id: str
    url: str
    web_url: str
    name: str
    slug: str
    # Buildkite links its pipelines, agents and emojis here; this server has none of them.
    pipelines_url: None = None
    agents_url: None = None
    emojis_url: None = None
    created_at: Timestamp

    @classmethod
    def of(cls, organization: Organization | MemberOrganization, urls: Urls) -> "OrganizationOut":
        return cls(
            id=organization.id,
            graphql_id=graphql_id("Organization", organization.id),
            url=urls.organization(organization.slug),
            web_url=urls.organization_web(organization.slug),
            name=organization.name,
            slug=organization.slug,
            created_at=organization.created_at,
        )
