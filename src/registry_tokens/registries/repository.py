import uuid
from dataclasses import dataclass

from sqlalchemy import bindparam, exists, func, select
from sqlalchemy.orm import Session, contains_eager

from registry_tokens.db.prepared import AnySelect
from registry_tokens.kit.pagination import PageRequest
from registry_tokens.organizations.models import Organization, OrganizationMembership
from registry_tokens.registries.models import Registry


class RegistryRepository:
    def __init__(self, session: Session) -> None:
        self.session = session

    def get_by_slug(self, organization_id: uuid.UUID, slug: str) -> Registry | None:
        return self.session.scalar(
            select(Registry).where(
                Registry.organization_id == organization_id, Registry.slug == slug
            )
        )

    def get_for_member(
        self, organization_slug: str, registry_slug: str, user_id: uuid.UUID
    ) -> Registry | None:
        """The registry, with its organization, only if the user belongs to that
        organization: one query on the path of every registry-scoped request."""
        is_member = exists().where(
            OrganizationMembership.organization_id == Organization.id,
            OrganizationMembership.user_id == user_id,
        )
        return self.session.scalar(
            select(Registry)
            .join(Registry.organization)
            .options(contains_eager(Registry.organization))
            .where(Organization.slug == organization_slug, Registry.slug == registry_slug)
            .where(is_member)
        )

    def page(self, organization_id: uuid.UUID, request: PageRequest) -> list[Registry]:
        return list(
            self.session.scalars(
                select(Registry)
                .where(Registry.organization_id == organization_id)
                .order_by(Registry.created_at.desc(), Registry.id.desc())
                .limit(request.per_page)
                .offset(request.offset)
            )
        )

    def count(self, organization_id: uuid.UUID) -> int:
        return (
            self.session.scalar(
                select(func.count()).where(Registry.organization_id == organization_id)
            )
            or 0
        )

    def add(self, registry: Registry) -> None:
        self.session.add(registry)
        self.session.flush()

    def delete(self, registry: Registry) -> None:
        self.session.delete(registry)
        self.session.flush()


@dataclass(frozen=True)
class OrganizationView:
    id: uuid.UUID
    slug: str


@dataclass(frozen=True)
class RegistryView:
    """A registry as the hot read paths see it: enough to authorize and to link to it."""

    id: uuid.UUID
    slug: str
    organization: OrganizationView
    tokens_version: int


def member_registry_view() -> AnySelect:
    """For :meth:`Database.prepare`: :meth:`RegistryRepository.get_for_member` as a
    :class:`RegistryView` row (registry id and slug, organization id and slug, version)."""
    is_member = exists().where(
        OrganizationMembership.organization_id == Organization.id,
        OrganizationMembership.user_id == bindparam("user_id", type_=Organization.id.type),
    )
    return (
        select(
            Registry.id, Registry.slug, Organization.id, Organization.slug, Registry.tokens_version
        )
        .join(Registry.organization)
        .where(
            Organization.slug == bindparam("organization_slug"),
            Registry.slug == bindparam("registry_slug"),
        )
        .where(is_member)
    )


def install_registry_by_slugs() -> AnySelect:
    """For :meth:`Database.prepare`: a registry's id, slug and whether it is public, by
    its organization's slug and its own (the first question of every install request)."""
    return (
        select(Registry.id, Registry.slug, Registry.public)
        .join(Registry.organization)
        .where(
            Organization.slug == bindparam("organization_slug"),
            Registry.slug == bindparam("registry_slug"),
        )
    )
