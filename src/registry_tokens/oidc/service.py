"""Verifying OIDC tokens and deciding what a registry's policy lets them do: the one place
both are done, for installs (``registry_tokens.access``) and the REST API (:class:`OidcGate`).

Verification, in this order, each failure a refusal with its reason: the token is a JWT;
its algorithm is an asymmetric one (never ``none``, never HMAC, whose "secret" could be
the issuer's public key); ``iss`` is a trusted issuer (so no other issuer is ever
fetched from); the issuer's key ``kid`` (see :mod:`.keys`), whose type must fit the
algorithm; the signature; ``exp`` in the future, ``nbf`` and ``iat`` not in it, beyond
:data:`LEEWAY_SECONDS`; a lifetime ``exp - iat`` of at most :data:`MAX_LIFETIME_SECONDS`,
as Buildkite requires. Then, for a registry: ``aud`` exactly ``{API_URL}/{org}/{registry}``,
and the first statement of its policy that holds (:mod:`.policy`) grants the scopes.
"""

import logging
import threading
import uuid
from collections import OrderedDict
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import anyio.to_thread
import jwt
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from registry_tokens.api.routes import PackageAccess
from registry_tokens.audit.service import Actor, EventType, Subject, record
from registry_tokens.auth.service import AuthService
from registry_tokens.db import Database
from registry_tokens.kit.context import Caller, RequestContext, Scope
from registry_tokens.kit.errors import AppError
from registry_tokens.kit.secrets import hash_secret
from registry_tokens.kit.urls import Urls
from registry_tokens.oidc.keys import IssuerKeys, IssuerUnavailable, SigningKey, UnknownKey
from registry_tokens.oidc.policy import first_match, parsed
from registry_tokens.oidc.repository import OidcTokenUseRepository
from registry_tokens.oidc.schemas import (
    OidcRefusal,
    OidcRefused,
    OidcRefusedUse,
    VerifiedToken,
)
from registry_tokens.ratelimits.service import RateLimitPolicy
from registry_tokens.registries.repository import REGISTRY_BY_SLUGS, RegistryRow

logger = logging.getLogger("registry_tokens.oidc")

MAX_LIFETIME_SECONDS = 300  # Buildkite's limit for registry OIDC tokens
LEEWAY_SECONDS = 30  # clocks drift: exp, nbf and iat may be this far off
MAX_TOKEN_LENGTH = 16 * 1024
# Algorithm -> the key types (and curves) that can verify it.
ALGORITHMS: dict[str, tuple[str, str | None]] = {
    "RS256": ("RSA", None),
    "RS384": ("RSA", None),
    "RS512": ("RSA", None),
    "PS256": ("RSA", None),
    "PS384": ("RSA", None),
    "PS512": ("RSA", None),
    "ES256": ("EC", "P-256"),
    "ES384": ("EC", "P-384"),
    "ES512": ("EC", "P-521"),
    "EdDSA": ("OKP", None),
}
# The claims that say which job a token stands for (Buildkite agents, GitHub Actions,
# and the standard ones), recorded in the audit log; the token itself never is.
IDENTITY_CLAIMS = (
    "iss",
    "sub",
    "jti",
    "organization_slug",
    "pipeline_slug",
    "build_number",
    "build_branch",
    "job_id",
    "agent_id",
    "repository",
    "ref",
    "workflow",
    "run_id",
    "run_attempt",
    "actor",
)
MAX_IDENTITY_TEXT = 255
SEEN_CAPACITY = 100_000  # tokens whose first use this process knows is recorded
_B64URL = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_")


def looks_like_jwt(secret: str) -> bool:
    """Three base64url parts (the signature's may be empty, as ``alg: none``'s is): never
    one of our own secrets, whose prefixes (``bkpt_``, ``bkua_``) hold no dot."""
    parts = secret.split(".")
    return (
        len(parts) == 3
        and bool(parts[0])
        and bool(parts[1])
        and len(secret) <= MAX_TOKEN_LENGTH
        and all(_B64URL.issuperset(part) for part in parts)
    )


def identity_of(claims: Mapping[str, Any]) -> dict[str, Any]:
    """The job a token names, as the audit log keeps it: scalars only, cut short."""
    identity: dict[str, Any] = {}
    for name in IDENTITY_CLAIMS:
        value = claims.get(name)
        if isinstance(value, str):
            identity[name] = value[:MAX_IDENTITY_TEXT]
        elif isinstance(value, bool | int | float):
            identity[name] = value
    return identity


@dataclass(frozen=True)
class OidcGrant:
    """A verified token, the registry it may use, and the scopes its statement grants."""

    token: VerifiedToken
    registry: RegistryRow
    scopes: frozenset[str]
    statement: int

    def caller(self) -> Caller:
        """The token as a REST caller: no user, this registry only, the granted scopes.
        Its ``token_id`` is derived from the token, so a presigned upload it asks for can
        be finalized by the same token alone."""
        return Caller(
            token_id=uuid.UUID(self.token.token_hash[:32]),
            user_id=None,
            scopes=self.scopes,
            organization_ids=frozenset({self.registry.organization_id}),
            registry_id=self.registry.id,
        )


class OidcService:
    def __init__(
        self,
        database: Database,
        urls: Urls,
        secret_key: bytes,
        issuers: tuple[str, ...],
        keys: IssuerKeys,
        refusals: Callable[[OidcRefusedUse], None],
        clock: Callable[[], datetime],
    ) -> None:
        self.database = database
        self.urls = urls
        self.secret_key = secret_key
        self.issuers = frozenset(issuers)
        self.keys = keys
        self.refusals = refusals
        self.clock = clock
        self._seen: OrderedDict[str, datetime] = OrderedDict()
        self._seen_lock = threading.Lock()

    # -- verification (no database; may fetch keys: call it off the event loop) --

    def verify(self, token: str) -> VerifiedToken:
        """The token's claims if it is signed by a trusted issuer and valid now; else
        :class:`OidcRefused`."""
        try:
            header = jwt.get_unverified_header(token)
            unverified = jwt.decode(token, options={"verify_signature": False})
        except jwt.PyJWTError:
            raise OidcRefused(OidcRefusal.MALFORMED) from None
        identity = identity_of(unverified)
        alg = header.get("alg")
        if not isinstance(alg, str) or alg not in ALGORITHMS:
            raise OidcRefused(OidcRefusal.ALGORITHM_NOT_ALLOWED, identity)
        issuer = unverified.get("iss")
        if not isinstance(issuer, str) or issuer.rstrip("/") not in self.issuers:
            raise OidcRefused(OidcRefusal.UNTRUSTED_ISSUER, identity)
        kid = header.get("kid")
        try:
            key = self.keys.key(issuer.rstrip("/"), kid if isinstance(kid, str) else None)
        except IssuerUnavailable as error:
            logger.warning("OIDC issuer unavailable: %s", error)
            raise OidcRefused(OidcRefusal.ISSUER_UNAVAILABLE, identity) from None
        except UnknownKey:
            raise OidcRefused(OidcRefusal.UNKNOWN_KEY, identity) from None
        if not _fits(alg, key):
            raise OidcRefused(OidcRefusal.ALGORITHM_NOT_ALLOWED, identity)
        claims = self._checked(token, key, alg, identity)
        lifetime = claims["exp"] - claims["iat"]
        if lifetime > MAX_LIFETIME_SECONDS:
            raise OidcRefused(OidcRefusal.LIFETIME_TOO_LONG, identity, verified=True)
        return VerifiedToken(
            claims=claims,
            token_hash=hash_secret(self.secret_key, token).hex(),
            identity=identity,
            expires_at=datetime.fromtimestamp(claims["exp"], UTC),
        )

    @staticmethod
    def _checked(token: str, key: SigningKey, alg: str, identity: dict[str, Any]) -> dict[str, Any]:
        try:
            claims: dict[str, Any] = jwt.decode(
                token,
                key=key.jwk.key,
                algorithms=[alg],
                leeway=LEEWAY_SECONDS,
                options={"require": ["iss", "aud", "exp", "iat"], "verify_aud": False},
            )
        except jwt.InvalidSignatureError:
            raise OidcRefused(OidcRefusal.BAD_SIGNATURE, identity) from None
        except jwt.ExpiredSignatureError:
            raise OidcRefused(OidcRefusal.EXPIRED, identity, verified=True) from None
        except jwt.ImmatureSignatureError:
            raise OidcRefused(OidcRefusal.NOT_YET_VALID, identity, verified=True) from None
        except jwt.MissingRequiredClaimError:
            raise OidcRefused(OidcRefusal.MISSING_CLAIM, identity, verified=True) from None
        except jwt.PyJWTError:  # iat, exp or nbf not numbers, a key that cannot verify
            raise OidcRefused(OidcRefusal.MALFORMED, identity) from None
        if not all(isinstance(claims[name], int | float) for name in ("exp", "iat")):
            raise OidcRefused(OidcRefusal.MALFORMED, identity)
        return claims

    # -- the registry's decision (reads only) --

    def grant(
        self,
        token: VerifiedToken,
        registry: RegistryRow | None,
        org: str,
        registry_slug: str,
        scope: Scope,
    ) -> OidcGrant:
        """What the token may do at ``{org}/{registry_slug}`` (the path's registry, or
        ``None`` when there is none), if it may do ``scope``; else :class:`OidcRefused`."""
        audience = token.claims.get("aud")
        expected = self.urls.oidc_audience(org, registry_slug)
        if audience != expected and audience != [expected]:
            raise OidcRefused(self._audience_refusal(audience), token.identity, verified=True)
        if registry is None:
            raise OidcRefused(OidcRefusal.UNKNOWN_REGISTRY, token.identity, verified=True)
        policy = parsed(registry.oidc_policy) if registry.oidc_policy else None
        if policy is None:
            raise OidcRefused(OidcRefusal.NO_POLICY, token.identity, verified=True)
        matched = first_match(policy, token.claims)
        if matched is None:
            raise OidcRefused(OidcRefusal.NO_MATCHING_STATEMENT, token.identity, verified=True)
        statement, scopes = matched
        if scope.value not in scopes:
            raise OidcRefused(OidcRefusal.SCOPE_NOT_GRANTED, token.identity, verified=True)
        return OidcGrant(token, registry, frozenset(scopes), statement)

    def _audience_refusal(self, audience: object) -> OidcRefusal:
        """Another registry's audience is told apart from a token meant for elsewhere."""
        prefix = f"{self.urls.api}/"
        auds = audience if isinstance(audience, list) else [audience]
        for aud in auds:
            if isinstance(aud, str) and aud.startswith(prefix):
                rest = aud[len(prefix) :].split("/")
                if len(rest) == 2 and all(rest):
                    return OidcRefusal.WRONG_REGISTRY
        return OidcRefusal.WRONG_AUDIENCE

    # -- what the audit log learns --

    def use_unrecorded(self, grant: OidcGrant) -> bool:
        """Whether this token's first use may not be recorded yet (this process has not
        recorded or seen it recorded): only then does its request take a write."""
        with self._seen_lock:
            return grant.token.token_hash not in self._seen

    def record_use(self, grant: OidcGrant, context: RequestContext, action: str) -> None:
        """Records the token's first use (``OIDC_TOKEN_USED``), once across processes; a
        later use finds its row and records nothing. In a write of its own."""
        token = grant.token
        now = self.clock()
        try:
            with self.database.writing() as session:
                uses = OidcTokenUseRepository(session)
                if not uses.seen(token.token_hash):
                    uses.prune(now)
                    uses.add(token.token_hash, token.expires_at)
                    record(
                        session,
                        EventType.OIDC_TOKEN_USED,
                        _subject(grant.registry.organization_id, grant.registry, token.identity),
                        _actor(token.identity),
                        context,
                        {
                            **token.identity,
                            "action": action,
                            "scopes": sorted(grant.scopes),
                            "statement": grant.statement,
                        },
                    )
        except IntegrityError:
            pass  # another process recorded it first
        self._remember(token, now)

    def _remember(self, token: VerifiedToken, now: datetime) -> None:
        with self._seen_lock:
            self._seen[token.token_hash] = token.expires_at
            while self._seen:  # expired ones first, then the oldest, beyond capacity
                oldest_hash, oldest_expiry = next(iter(self._seen.items()))
                if oldest_expiry >= now and len(self._seen) <= SEEN_CAPACITY:
                    break
                del self._seen[oldest_hash]

    def refused(
        self,
        refused: OidcRefused,
        registry: RegistryRow | None,
        org: str,
        registry_slug: str,
        action: str,
        context: RequestContext,
    ) -> None:
        """Queues a refusal to be recorded in the registry's organization (no I/O); a path
        with no registry has nowhere to record it."""
        self.refusals(
            OidcRefusedUse(
                reason=refused.reason,
                organization_id=registry.organization_id if registry else None,
                registry_id=registry.id if registry else None,
                requested_registry=f"{org}/{registry_slug}",
                action=action,
                identity=refused.identity,
                verified=refused.verified,
                context=context,
            )
        )


def record_refusal(session: Session, use: OidcRefusedUse, registry_slug: str | None) -> None:
    """Adds a queued refusal to the session (``registry_tokens.refusals`` writes them)."""
    assert use.organization_id is not None
    record(
        session,
        EventType.OIDC_TOKEN_REFUSED,
        Subject(
            use.organization_id,
            use.registry_id,
            registry_slug,
            None,
            _name(use.identity),
        ),
        _actor(use.identity),
        use.context,
        {
            **use.identity,
            "reason": use.reason.value,
            "verified": use.verified,
            "action": use.action,
            "requested_registry": use.requested_registry,
        },
        event_id=use.event_id,
    )


def _fits(alg: str, key: SigningKey) -> bool:
    """Whether the issuer's key is of the type (and curve) the token's algorithm needs,
    and the algorithm the key names, if it names one."""
    kty, crv = ALGORITHMS[alg]
    if key.kty != kty or (crv is not None and key.crv != crv):
        return False
    return key.alg is None or key.alg == alg


def _name(identity: Mapping[str, Any]) -> str | None:
    subject = identity.get("sub")
    return str(subject)[:MAX_IDENTITY_TEXT] if subject is not None else None


def _subject(
    organization_id: uuid.UUID, registry: RegistryRow | None, identity: Mapping[str, Any]
) -> Subject:
    return Subject(
        organization_id,
        registry.id if registry else None,
        registry.slug if registry else None,
        None,
        _name(identity),
    )


def _actor(identity: Mapping[str, Any]) -> Actor:
    return Actor("oidc", None, _name(identity))


class OidcUnauthorized(AppError):
    def __init__(self, refused: OidcRefused, headers: Mapping[str, str] | None = None) -> None:
        super().__init__(refused.message, 401, headers=dict(headers or {}))


class OidcGate:
    """The REST door's gate (``api.routes.Gate``): an OIDC token on a Packages API route of
    its registry is verified here; every other credential goes to :class:`AuthService`.

    An OIDC caller has no user: it counts against its registry's organization and the
    client's address. A refusal counts against the address, as any bad credential does."""

    def __init__(
        self,
        auth: AuthService,
        oidc: OidcService,
        database: Database,
        rate_limits: RateLimitPolicy,
    ) -> None:
        self.auth = auth
        self.oidc = oidc
        self.database = database
        self.rate_limits = rate_limits

    async def admit(
        self,
        authorization: str | None,
        organization_slug: str | None,
        context: RequestContext,
        package_access: PackageAccess | None = None,
    ) -> tuple[Caller, Mapping[str, str] | None]:
        scheme, _, credentials = (authorization or "").partition(" ")
        token = credentials.strip()
        if (
            package_access is None
            or organization_slug is None
            or scheme.lower() != "bearer"
            or not looks_like_jwt(token)
        ):
            return await self.auth.admit(authorization, organization_slug, context)
        address = context.client_ip or "unknown"
        registry_slug = package_access.registry_slug
        registry = await self.database.read(self._registry, organization_slug, registry_slug)
        try:
            verified = await anyio.to_thread.run_sync(self.oidc.verify, token)
            grant = self.oidc.grant(
                verified, registry, organization_slug, registry_slug, package_access.scope
            )
        except OidcRefused as refused:
            self.oidc.refused(
                refused, registry, organization_slug, registry_slug, package_access.action, context
            )
            allowance = await self.rate_limits.for_client(address)
            raise OidcUnauthorized(refused, allowance.headers() if allowance else None) from None
        if self.oidc.use_unrecorded(grant):
            await self.database.write(self.oidc.record_use, grant, context, package_access.action)
        allowance = await self.rate_limits.for_oidc(grant.registry.organization_id, address)
        return grant.caller(), allowance.headers() if allowance is not None else None

    def _registry(self, org: str, registry_slug: str) -> RegistryRow | None:
        rows = self.database.fetch(
            REGISTRY_BY_SLUGS, organization_slug=org, registry_slug=registry_slug
        )
        return rows[0] if rows else None
