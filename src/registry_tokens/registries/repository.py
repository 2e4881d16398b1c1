import uuid
from datetime import datetime
from typing import NamedTuple

from sqlalchemy import bindparam, func, select
from sqlalchemy.orm import Session

from registry_tokens.db.queries import Query
from registry_tokens.kit.pagination import PageRequest
from registry_tokens.organizations.models import Organization, OrganizationMembership
from registry_tokens.registries.models import Registry


class RegistryRow(NamedTuple):
    """A registry as every read shows it, with its organization's id and slug."""

    id: uuid.UUID
    slug: str
    name: str
    ecosystem: str
    description: str | None
    emoji: str | None
    color: str | None
    public: bool
    oidc_policy: str | None
    created_at: datetime
    tokens_version: int
    organization_id: uuid.UUID
    organization_slug: str

    @classmethod
    def of(cls, registry: Registry) -> "RegistryRow":
        """The row of a registry a write has just made or changed."""
        return cls(
            registry.id,
            registry.slug,
            registry.name,
            registry.ecosystem,
            registry.description,
            registry.emoji,
            registry.color,
            registry.public,
            registry.oidc_policy,
            registry.created_at,
            registry.tokens_version,
            registry.organization_id,
            registry.organization.slug,
        )


_REGISTRY_ROWS = select(
    Registry.id.label("id"),
    Registry.slug.label("slug"),
    Registry.name.label("name"),
    Registry.ecosystem.label("ecosystem"),
    Registry.description.label("description"),
    Registry.emoji.label("emoji"),
    Registry.color.label("color"),
    Registry.public.label("public"),
    Registry.oidc_policy.label("oidc_policy"),
    Registry.created_at.label("created_at"),
    Registry.tokens_version.label("tokens_version"),
    Organization.id.label("organization_id"),
    Organization.slug.label("organization_slug"),
).join(Organization, Organization.id == Registry.organization_id)

# "The registry of this organization slug and slug, if this user belongs to the
# organization": the first question of every registry-scoped API request.
MEMBER_REGISTRY = Query(
    _REGISTRY_ROWS.join(
        OrganizationMembership, OrganizationMembership.organization_id == Organization.id
    ).where(
        Organization.slug == bindparam("organization_slug"),
        Registry.slug == bindparam("registry_slug"),
        OrganizationMembership.user_id == bindparam("user_id", type_=Organization.id.type),
    ),
    RegistryRow,
)

# "The registry at this path" for package clients, whoever they are (access is decided
# after, from the credential presented).
REGISTRY_BY_SLUGS = Query(
    _REGISTRY_ROWS.where(
        Organization.slug == bindparam("organization_slug"),
        Registry.slug == bindparam("registry_slug"),
    ),
    RegistryRow,
)

# A page of an organization's registries, newest first.
REGISTRY_PAGE = Query(
    _REGISTRY_ROWS.where(Registry.organization_id == bindparam("organization_id"))
    .order_by(Registry.created_at.desc(), Registry.id.desc())
    .limit(bindparam("limit"))
    .offset(bindparam("offset")),
    RegistryRow,
)


class Count(NamedTuple):
    total: int


REGISTRY_COUNT = Query(
    select(func.count().label("total")).where(
        Registry.organization_id == bindparam("organization_id", type_=Registry.id.type)
    ),
    Count,
)


def page_values(organization_id: uuid.UUID, request: PageRequest) -> dict[str, object]:
    return {"organization_id": organization_id, "limit": request.per_page, "offset": request.offset}


class RegistryRepository:
    def __init__(self, session: Session) -> None:
        self.session = session

    def get(self, registry_id: uuid.UUID) -> Registry | None:
        return self.session.get(Registry, registry_id)

    def get_by_slug(self, organization_id: uuid.UUID, slug: str) -> Registry | None:
        return self.session.scalar(
            select(Registry).where(
                Registry.organization_id == organization_id, Registry.slug == slug
            )
        )

    def lock(self, registry_id: uuid.UUID) -> Registry | None:
        """The registry's row, locked (PostgreSQL) until the transaction ends: a change to
        it, or its deletion, takes turns with publishes and token writes in it."""
        return self.session.scalar(
            select(Registry).where(Registry.id == registry_id).with_for_update(of=Registry)
        )

    def hold(self, registry_id: uuid.UUID) -> bool:
        """Whether the registry still exists, holding it (PostgreSQL: ``FOR KEY SHARE``)
        until the transaction ends: what is added under it (a package) takes turns with
        its deletion, which locks it first (:meth:`lock`), and never with other adds."""
        found = self.session.scalar(
            select(Registry.id)
            .where(Registry.id == registry_id)
            .with_for_update(read=True, key_share=True)
        )
        return found is not None

    def add(self, registry: Registry) -> None:
        self.session.add(registry)
        self.session.flush()

    def delete(self, registry: Registry) -> None:
        self.session.delete(registry)
        self.session.flush()
