import uuid

from sqlalchemy import exists, func, select
from sqlalchemy.orm import Session, contains_eager

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

    def get_by_slugs(self, organization_slug: str, registry_slug: str) -> Registry | None:
        """The registry, with its organization, in one query (the install path's first)."""
        return self.session.scalar(
            select(Registry)
            .join(Registry.organization)
            .options(contains_eager(Registry.organization))
            .where(Organization.slug == organization_slug, Registry.slug == registry_slug)
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
