import uuid

from sqlalchemy import bindparam, select
from sqlalchemy.orm import Session, joinedload

from registry_tokens.auth.models import ApiAccessToken, ApiAccessTokenOrganization
from registry_tokens.db.prepared import AnySelect


class ApiAccessTokenRepository:
    def __init__(self, session: Session) -> None:
        self.session = session

    def get_by_secret_hash(self, secret_hash: bytes) -> ApiAccessToken | None:
        """The token with its organization limits, in one query (every request asks)."""
        result = self.session.execute(
            select(ApiAccessToken)
            .options(joinedload(ApiAccessToken.organization_limits))
            .where(ApiAccessToken.secret_hash == secret_hash)
        )
        return result.unique().scalar_one_or_none()

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


def credential_by_secret_hash() -> AnySelect:
    """For :meth:`Database.prepare`: a token's id, user, scopes, digest and revocation, one
    row per organization it is limited to (one row, limit ``None``, when unlimited).

    Every API request asks this, so it is one indexed query run on the driver directly.
    """
    return (
        select(
            ApiAccessToken.id,
            ApiAccessToken.user_id,
            ApiAccessToken.scopes,
            ApiAccessToken.secret_hash,
            ApiAccessToken.revoked_at,
            ApiAccessTokenOrganization.organization_id,
        )
        .outerjoin(ApiAccessToken.organization_limits)
        .where(ApiAccessToken.secret_hash == bindparam("secret_hash"))
    )
