"""API access tokens: issuing and revoking them (admin), and authenticating requests."""

import uuid
from collections.abc import Iterable
from dataclasses import dataclass

from registry_tokens.auth.caller import Caller
from registry_tokens.auth.models import ApiAccessToken
from registry_tokens.auth.repository import ApiAccessTokenRepository, credential_by_secret_hash
from registry_tokens.auth.scopes import Scope
from registry_tokens.db import Database
from registry_tokens.kit import validation
from registry_tokens.kit.errors import FieldProblem, NotFound, Unauthenticated, ValidationFailed
from registry_tokens.kit.secrets import (
    SecretKind,
    digests_match,
    generate_secret,
    hash_secret,
    secret_kind,
)
from registry_tokens.kit.timestamps import utcnow
from registry_tokens.organizations.repository import OrganizationRepository
from registry_tokens.users.repository import UserRepository


@dataclass(frozen=True)
class IssuedApiAccessToken:
    token: ApiAccessToken
    secret: str  # shown once, never stored


class AuthService:
    def __init__(self, database: Database, secret_key: bytes) -> None:
        self.database = database
        self.secret_key = secret_key
        self._credential_by_secret_hash = database.prepare(credential_by_secret_hash())

    def authenticate(self, authorization: str | None) -> Caller:
        """The caller a ``Bearer`` API access token stands for, or 401.

        Malformed secrets (wrong prefix or checksum) are refused before any database work.
        """
        scheme, _, credentials = (authorization or "").partition(" ")
        credentials = credentials.strip()
        if scheme.lower() != "bearer" or not credentials:
            raise Unauthenticated()
        if secret_kind(credentials) is not SecretKind.API_ACCESS_TOKEN:
            raise Unauthenticated()
        presented = hash_secret(self.secret_key, credentials)
        rows = self.database.fetch(self._credential_by_secret_hash, secret_hash=presented)
        if not rows:
            raise Unauthenticated()
        token_id, user_id, scopes, secret_hash, revoked_at, _ = rows[0]
        if not digests_match(secret_hash, presented) or revoked_at is not None:
            raise Unauthenticated()
        limits = frozenset(row[5] for row in rows if row[5] is not None)
        return Caller(
            token_id=token_id,
            user_id=user_id,
            scopes=frozenset(scopes),
            organization_ids=limits or None,
        )

    def current_token(self, caller: Caller) -> ApiAccessToken:
        with self.database.read() as session:
            token = ApiAccessTokenRepository(session).get(caller.token_id)
            if token is None or token.revoked_at is not None:
                raise Unauthenticated()
            return token

    def revoke_current(self, caller: Caller) -> None:
        self.revoke(caller.token_id)

    def revoke(self, token_id: uuid.UUID) -> ApiAccessToken:
        with self.database.write() as session:
            token = ApiAccessTokenRepository(session).get(token_id)
            if token is None:
                raise NotFound("API access token")
            if token.revoked_at is None:
                token.revoked_at = utcnow()
        return token

    def replace_described(
        self, email: str, scopes: Iterable[str], *, description: str
    ) -> IssuedApiAccessToken:
        """Revokes the user's live tokens with this description and issues a new one.

        For tokens a tool owns by name (the demo's): secrets are shown once, so running the
        tool again cannot print the old secret, only replace it.
        """
        with self.database.write() as session:
            user = UserRepository(session).get_by_email(validation.email_address(email))
            if user is None:
                raise NotFound("user")
            for token in ApiAccessTokenRepository(session).list_for_user(user.id):
                if token.description == description and token.revoked_at is None:
                    token.revoked_at = utcnow()
        return self.issue(email, scopes, description=description)

    def issue(
        self,
        email: str,
        scopes: Iterable[str],
        *,
        organization_slugs: Iterable[str] = (),
        description: str | None = None,
    ) -> IssuedApiAccessToken:
        scope_list = sorted({_known_scope(scope.strip()) for scope in scopes if scope.strip()})
        if not scope_list:
            raise ValidationFailed([FieldProblem("scopes", "missing", "can't be blank")])
        if description is not None:
            description = validation.require_text("description", description, max_length=255)
        secret = generate_secret(SecretKind.API_ACCESS_TOKEN)
        with self.database.write() as session:
            user = UserRepository(session).get_by_email(validation.email_address(email))
            if user is None:
                raise NotFound("user")
            organizations = OrganizationRepository(session)
            organization_ids: list[uuid.UUID] = []
            for slug in dict.fromkeys(organization_slugs):
                organization = organizations.get_by_slug(slug)
                if organization is None:
                    raise NotFound(f"organization {slug!r}")
                organization_ids.append(organization.id)
            token = ApiAccessToken(
                user_id=user.id,
                scopes=scope_list,
                description=description,
                secret_hash=hash_secret(self.secret_key, secret),
            )
            ApiAccessTokenRepository(session).add(token, organization_ids)
            token.user = user
        return IssuedApiAccessToken(token=token, secret=secret)


def _known_scope(value: str) -> str:
    try:
        return Scope(value).value
    except ValueError:
        known = ", ".join(scope.value for scope in Scope)
        raise ValidationFailed(
            [FieldProblem("scopes", "invalid", f"has an unknown scope {value!r} (known: {known})")]
        ) from None
