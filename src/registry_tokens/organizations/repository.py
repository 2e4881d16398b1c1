import uuid

from sqlalchemy import exists, select
from sqlalchemy.orm import Session

from registry_tokens.organizations.models import Organization, OrganizationMembership


class OrganizationRepository:
    def __init__(self, session: Session) -> None:
        self.session = session

    def get_by_slug(self, slug: str) -> Organization | None:
        return self.session.scalar(select(Organization).where(Organization.slug == slug))

    def get_by_slug_for_member(self, slug: str, user_id: uuid.UUID) -> Organization | None:
        """The organization, only if the user belongs to it: one query, no existence leak."""
        is_member = exists().where(
            OrganizationMembership.organization_id == Organization.id,
            OrganizationMembership.user_id == user_id,
        )
        return self.session.scalar(select(Organization).where(Organization.slug == slug, is_member))

    def get_membership(
        self, organization_id: uuid.UUID, user_id: uuid.UUID
    ) -> OrganizationMembership | None:
        return self.session.scalar(
            select(OrganizationMembership).where(
                OrganizationMembership.organization_id == organization_id,
                OrganizationMembership.user_id == user_id,
            )
        )

    def add(self, organization: Organization) -> None:
        self.session.add(organization)
        self.session.flush()

    def add_membership(self, membership: OrganizationMembership) -> None:
        self.session.add(membership)
        self.session.flush()
