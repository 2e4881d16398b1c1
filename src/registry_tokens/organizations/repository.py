import uuid
from datetime import datetime
from typing import NamedTuple

from sqlalchemy import bindparam, select
from sqlalchemy.orm import Session

from registry_tokens.db.queries import Query
from registry_tokens.organizations.models import Organization, OrganizationMembership


class MemberOrganization(NamedTuple):
    """An organization as one of its members sees it, with the member's role."""

    id: uuid.UUID
    slug: str
    name: str
    created_at: datetime
    role: str


# The user's memberships, with their organizations.
_MEMBERSHIPS = select(
    Organization.id.label("id"),
    Organization.slug.label("slug"),
    Organization.name.label("name"),
    Organization.created_at.label("created_at"),
    OrganizationMembership.role.label("role"),
).join(OrganizationMembership, OrganizationMembership.organization_id == Organization.id)
_OF_USER = OrganizationMembership.user_id == bindparam("user_id", type_=Organization.id.type)

# "Which organization of this slug does this user belong to, and as what?" Every
# organization- or registry-scoped request asks it (authorization, rate limits).
MEMBER_ORGANIZATION = Query(
    _MEMBERSHIPS.where(Organization.slug == bindparam("organization_slug"), _OF_USER),
    MemberOrganization,
)

# "Which organizations does this user belong to?", by name: the organizations list (a
# user belongs to a handful, so the token's limits and the page are applied to the rows).
MEMBER_ORGANIZATIONS = Query(
    _MEMBERSHIPS.where(_OF_USER).order_by(Organization.name, Organization.slug),
    MemberOrganization,
)


class OrganizationRepository:
    def __init__(self, session: Session) -> None:
        self.session = session

    def get_by_slug(self, slug: str) -> Organization | None:
        return self.session.scalar(select(Organization).where(Organization.slug == slug))

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
