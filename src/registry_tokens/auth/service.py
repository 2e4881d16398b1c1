"""API access tokens: issuing and revoking them (admin), and authenticating requests."""

import uuid
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from registry_tokens.auth.models import ApiAccessToken
from registry_tokens.auth.repository import (
    API_CREDENTIAL,
    OWN_TOKENS,
    ApiAccessTokenRepository,
    OwnToken,
)
from registry_tokens.db import Database
from registry_tokens.kit import validation
from registry_tokens.kit.context import Caller, RequestContext, Scope
from registry_tokens.kit.errors import FieldProblem, NotFound, Unauthenticated, ValidationFailed
from registry_tokens.kit.secrets import (
    SecretKind,
    digests_match,
    generate_secret,
    hash_secret,
    secret_kind,
)
from registry_tokens.kit.timestamps import utcnow
from registry_tokens.organizations.repository import MemberOrganization, OrganizationRepository
from registry_tokens.organizations.service import member_organization, visible_organization
from registry_tokens.ratelimits.service import RateLimitPolicy, RateLimitStatus
from registry_tokens.users.repository import UserRepository


@dataclass(frozen=True)
class IssuedApiAccessToken:
    token: ApiAccessToken
    secret: str  # shown once, never stored


class AuthService:
    def __init__(self, database: Database, secret_key: bytes, rate_limits: RateLimitPolicy) -> None:
        self.database = database
        self.secret_key = secret_key
        self.rate_limits = rate_limits

    def identify(self, secret: str | None) -> Caller | None:
        """The caller an API access token's secret stands for, or None: the one place an
        API token is authenticated (the REST API, installs, leak reports all ask here).

        A malformed secret (wrong prefix or checksum) is refused before any database work.
        """
        if secret is None or secret_kind(secret) is not SecretKind.API_ACCESS_TOKEN:
            return None
        presented = hash_secret(self.secret_key, secret)
        rows = self.database.fetch(API_CREDENTIAL, secret_hash=presented)
        if not rows:
            return None
        token = rows[0]
        if not digests_match(token.secret_hash, presented) or token.revoked_at is not None:
            return None
        limits = frozenset(row.limited_to for row in rows if row.limited_to is not None)
        return Caller(
            token_id=token.id,
            user_id=token.user_id,
            scopes=frozenset(token.scopes),
            organization_ids=limits or None,
        )

    def authenticate(self, authorization: str | None) -> Caller:
        """The caller of a ``Bearer`` API access token, or 401."""
        scheme, _, credentials = (authorization or "").partition(" ")
        caller = self.identify(credentials.strip() if scheme.lower() == "bearer" else None)
        if caller is None:
            raise Unauthenticated()
        return caller

    async def admit(
        self, authorization: str | None, organization_slug: str | None, context: RequestContext
    ) -> tuple[Caller, Mapping[str, str] | None]:
        """The REST API's gate (``api.routes.Gate``): authenticates the request, then counts
        it against the user and, when the caller may see it, the path's organization.

        Requests without a valid token count against the client's address. An organization
        the caller cannot see is not charged: no one can spend another organization's
        allowance, or learn from its headers that it exists.
        """
        try:
            caller, organization = await self.database.read(
                self._caller_and_organization, authorization, organization_slug
            )
        except Unauthenticated as refused:
            allowance = await self.rate_limits.for_client(context.client_ip or "unknown")
            if allowance is not None:
                refused.headers.update(allowance.headers())
            raise
        if not self.rate_limits.counts_callers:
            return caller, None
        allowance = await self.rate_limits.for_caller(
            caller.user, organization.id if organization is not None else None
        )
        return caller, allowance.headers() if allowance is not None else None

    def _caller_and_organization(
        self, authorization: str | None, organization_slug: str | None
    ) -> tuple[Caller, MemberOrganization | None]:
        caller = self.authenticate(authorization)
        if organization_slug is None or not self.rate_limits.counts_organizations:
            return caller, None
        return caller, member_organization(self.database, caller, organization_slug)

    async def organization_rate_limit(self, caller: Caller, slug: str) -> RateLimitStatus:
        """The REST window of an organization the caller may see (else 404), read from the
        counters the gate counts in; this request was counted like any other."""
        organization = await self.database.read(visible_organization, self.database, caller, slug)
        return await self.rate_limits.organization_status(organization.id)

    def current_token(self, caller: Caller) -> ApiAccessToken:
        with self.database.reading() as session:
            token = ApiAccessTokenRepository(session).get(caller.token_id)
            if token is None or token.revoked_at is not None:
                raise Unauthenticated()
            return token

    def revoke_current(self, caller: Caller) -> None:
        self.revoke(caller.token_id)

    def revoke(self, token_id: uuid.UUID) -> ApiAccessToken:
        """Revokes an API access token (the one place it is done): it stops working at
        once. Revoking a revoked token changes nothing."""
        with self.database.writing() as session:
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
        with self.database.writing() as session:
            user = UserRepository(session).get_by_email(validation.email_address(email))
            if user is None:
                raise NotFound("user")
            for token in ApiAccessTokenRepository(session).list_for_user(user.id):
                if token.description == description and token.revoked_at is None:
                    token.revoked_at = utcnow()
        return self.issue(email, scopes, description=description)

    def own_tokens(self, caller: Caller) -> list[OwnToken]:
        """The caller's user's API access tokens, newest first, each with the slugs of the
        organizations it is limited to (the console's "API access tokens" page)."""
        tokens: dict[uuid.UUID, OwnToken] = {}
        for row in self.database.fetch(OWN_TOKENS, user_id=caller.user):
            token = tokens.setdefault(
                row.id,
                OwnToken(
                    row.id, row.description, sorted(row.scopes), [], row.created_at, row.revoked_at
                ),
            )
            if row.organization_slug is not None:
                token.organizations.append(row.organization_slug)
        return list(tokens.values())

    def issue_own(
        self,
        caller: Caller,
        scopes: Iterable[str],
        organization_slugs: Iterable[str],
        description: str | None,
    ) -> IssuedApiAccessToken:
        """A new API access token for the caller's own user, limited to organizations the
        user belongs to (another one is "not found", as everywhere)."""
        with self.database.reading() as session:
            user = UserRepository(session).get(caller.user)
        if user is None:
            raise Unauthenticated()
        slugs = list(dict.fromkeys(organization_slugs))
        for slug in slugs:
            visible_organization(self.database, caller, slug)
        return self.issue(user.email, scopes, organization_slugs=slugs, description=description)

    def revoke_own(self, caller: Caller, token_id: uuid.UUID) -> ApiAccessToken:
        """Revokes one of the caller's user's tokens; anyone else's is "not found"."""
        with self.database.reading() as session:
            token = ApiAccessTokenRepository(session).get(token_id)
        if token is None or token.user_id != caller.user:
            raise NotFound("API access token")
        return self.revoke(token_id)

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
        with self.database.writing() as session:
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
