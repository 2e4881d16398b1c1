import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import NamedTuple

from sqlalchemy import bindparam, select
from sqlalchemy.orm import Session

from registry_tokens.auth.models import ApiAccessToken, ApiAccessTokenOrganization
from registry_tokens.db.queries import Query
from registry_tokens.organizations.models import Organization


class ApiAccessTokenRepository:
    def __init__(self, session: Session) -> None:
        self.session = session

    def get(self, token_id: uuid.UUID) -> ApiAccessToken | None:
        return self.session.get(ApiAccessToken, token_id)

    def list_for_user(self, user_id: uuid.UUID) -> list[ApiAccessToken]:
        return list(
            self.session.scalars(
                select(ApiAccessToken)
                .where(ApiAccessToken.user_id == user_id)
                .order_by(ApiAccessToken.created_at.desc(), ApiAccessToken.id.desc())
            )
        )

    def add(self, token: ApiAccessToken, organization_ids: list[uuid.UUID]) -> None:
        token.organization_limits = [
            ApiAccessTokenOrganization(organization_id=org_id) for org_id in organization_ids
        ]
        self.session.add(token)
        self.session.flush()


class ApiCredential(NamedTuple):
    """An API access token as authentication sees it: one row per organization it is
    limited to (one row, ``limited_to`` None, when it is not limited)."""

    id: uuid.UUID
    user_id: uuid.UUID
    scopes: list[str]
    secret_hash: bytes
    revoked_at: datetime | None
    limited_to: uuid.UUID | None


# "Which API access token has this secret's digest?": every API request, every install
# with an API token and every leak report ask it.
API_CREDENTIAL = Query(
    select(
        ApiAccessToken.id.label("id"),
        ApiAccessToken.user_id.label("user_id"),
        ApiAccessToken.scopes.label("scopes"),
        ApiAccessToken.secret_hash.label("secret_hash"),
        ApiAccessToken.revoked_at.label("revoked_at"),
        ApiAccessTokenOrganization.organization_id.label("limited_to"),
    )
    .outerjoin(ApiAccessToken.organization_limits)
    .where(ApiAccessToken.secret_hash == bindparam("secret_hash")),
    ApiCredential,
)


class OwnTokenRow(NamedTuple):
    id: uuid.UUID
    description: str | None
    scopes: list[str]
    created_at: datetime
    revoked_at: datetime | None
    organization_slug: str | None


@dataclass(frozen=True)
class OwnToken:
    """An API access token as its owner sees it in the console."""

    id: uuid.UUID
    description: str | None
    scopes: list[str]
    organizations: list[str]
    created_at: datetime
    revoked_at: datetime | None


# "Which API access tokens does this user have?": one row per organization a token is
# limited to (one, with no slug, when it is not limited), newest token first.
OWN_TOKENS = Query(
    select(
        ApiAccessToken.id.label("id"),
        ApiAccessToken.description.label("description"),
        ApiAccessToken.scopes.label("scopes"),
        ApiAccessToken.created_at.label("created_at"),
        ApiAccessToken.revoked_at.label("revoked_at"),
        Organization.slug.label("organization_slug"),
    )
    .outerjoin(ApiAccessToken.organization_limits)
    .outerjoin(Organization, Organization.id == ApiAccessTokenOrganization.organization_id)
    .where(ApiAccessToken.user_id == bindparam("user_id", type_=ApiAccessToken.user_id.type))
    .order_by(ApiAccessToken.created_at.desc(), ApiAccessToken.id.desc(), Organization.slug),
    OwnTokenRow,
)
