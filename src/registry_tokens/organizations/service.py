"""Organizations: creation and membership (admin), and who may see which."""

from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from registry_tokens.db import Database
from registry_tokens.kit import validation
from registry_tokens.kit.context import Caller
from registry_tokens.kit.errors import (
    AppError,
    NotFound,
    already_taken,
)
from registry_tokens.kit.pagination import Page, PageRequest
from registry_tokens.organizations.models import Organization, OrganizationMembership, Role
from registry_tokens.organizations.repository import (
    MEMBER_ORGANIZATION,
    MEMBER_ORGANIZATIONS,
    MemberOrganization,
    OrganizationRepository,
)
from registry_tokens.users.repository import UserRepository


def member_organization(
    database: Database, caller: Caller, slug: str, session: Session | None = None
) -> MemberOrganization | None:
    """The organization if the caller's user belongs to it and the token may act there.

    ``session``: ask inside that (write) transaction rather than in one of its own.
    """
    if caller.user_id is None:  # an OIDC token is a member of nothing
        return None
    rows = database.ask(
        MEMBER_ORGANIZATION, session, organization_slug=slug, user_id=caller.user_id
    )
    if rows and caller.may_act_in(rows[0].id):
        return rows[0]
    return None


def visible_organization(
    database: Database, caller: Caller, slug: str, session: Session | None = None
) -> MemberOrganization:
    """:func:`member_organization`, or "not found": a caller never learns that an
    organization it may not see exists."""
    found = member_organization(database, caller, slug, session)
    if found is None:
        raise NotFound("organization")
    return found


def administered_organization(
    database: Database, caller: Caller, slug: str, session: Session | None = None
) -> MemberOrganization:
    """The organization, if the caller may see it and is one of its admins (else 403)."""
    organization = visible_organization(database, caller, slug, session)
    if organization.role != Role.ADMIN.value:
        raise AppError("Only organization admins can manage registries", 403)
    return organization


class OrganizationService:
    def __init__(self, database: Database) -> None:
        self.database = database

    def get(self, caller: Caller, slug: str) -> MemberOrganization:
        return visible_organization(self.database, caller, slug)

    def list(self, caller: Caller, request: PageRequest) -> Page[MemberOrganization]:
        """The organizations the caller may see, by name: its user's, less those the token
        is limited away from (the same rule as :func:`member_organization`)."""
        visible = [
            organization
            for organization in self.database.fetch(MEMBER_ORGANIZATIONS, user_id=caller.user)
            if caller.may_act_in(organization.id)
        ]
        return Page(
            items=visible[request.offset : request.offset + request.per_page],
            request=request,
            total=len(visible),
        )

    def create(self, slug: str, name: str | None = None) -> Organization:
        slug = validation.organization_slug(slug)
        name = validation.require_text("name", name or slug, max_length=255)
        try:
            with self.database.writing() as session:
                repository = OrganizationRepository(session)
                if repository.get_by_slug(slug) is not None:
                    raise already_taken("slug")
                organization = Organization(slug=slug, name=name)
                repository.add(organization)
        except IntegrityError as exc:  # a concurrent create won the race
            raise already_taken("slug") from exc
        return organization

    def get_or_create(self, slug: str, name: str | None = None) -> Organization:
        with self.database.reading() as session:
            existing = OrganizationRepository(session).get_by_slug(slug)
        return existing or self.create(slug, name)

    def add_member(
        self, organization_slug: str, email: str, role: Role = Role.MEMBER
    ) -> OrganizationMembership:
        """Adds the user to the organization; an existing member gets the given role."""
        email = validation.email_address(email)
        with self.database.writing() as session:
            organizations = OrganizationRepository(session)
            organization = organizations.get_by_slug(organization_slug)
            if organization is None:
                raise NotFound("organization")
            user = UserRepository(session).get_by_email(email)
            if user is None:
                raise NotFound("user")
            membership = organizations.get_membership(organization.id, user.id)
            if membership is None:
                membership = OrganizationMembership(
                    organization_id=organization.id, user_id=user.id, role=role.value
                )
                organizations.add_membership(membership)
            else:
                membership.role = role.value
        return membership
