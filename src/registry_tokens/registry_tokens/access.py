"""Who may install from a registry: the one decision behind every package-client request.

Package clients present credentials as HTTP basic auth (user ``buildkite``, password a
registry token, an API access token with ``read_packages`` or an OIDC token its registry's
policy lets read) or as a Bearer token.
Anything else gets 401 with a ``WWW-Authenticate: Basic`` challenge, whether or not the
registry exists, so a client without access learns nothing about it.

The decision reads the database on every request: a deleted, expired or rotated-out token
is refused from the commit that changed it, on every process and instance.
"""

import base64
import binascii
import logging
import math
import uuid
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import datetime, timedelta

import anyio.to_thread
from sqlalchemy.exc import DBAPIError, IntegrityError

from registry_tokens.audit.service import Refusal
from registry_tokens.auth.service import AuthService
from registry_tokens.db import Database
from registry_tokens.db.failures import is_storage_full
from registry_tokens.kit.context import RequestContext, Scope
from registry_tokens.kit.errors import AppError, NotFound
from registry_tokens.kit.metrics import CREDENTIAL_REFUSALS, DOWNLOADS
from registry_tokens.kit.network import address_allowed
from registry_tokens.kit.patterns import PackagePatterns, normalized_name, patterns_of
from registry_tokens.kit.secrets import SecretKind, digests_match, hash_secret, secret_kind
from registry_tokens.kit.timestamps import format_timestamp, truncate_to_millisecond
from registry_tokens.kit.validation import is_organization_slug, is_registry_slug
from registry_tokens.oidc.schemas import OidcRefused, VerifiedToken
from registry_tokens.oidc.service import OidcGrant, OidcService, looks_like_jwt
from registry_tokens.organizations.service import member_organization
from registry_tokens.ratelimits.service import RateLimitPolicy
from registry_tokens.registries.repository import REGISTRY_BY_SLUGS, RegistryRow
from registry_tokens.registry_tokens.counting import UsageBuffer
from registry_tokens.registry_tokens.refusals import RefusalLog
from registry_tokens.registry_tokens.repository import (
    PRESENTED_CREDENTIAL,
    QUOTA_STATE,
    PresentedCredential,
    RegistryTokenRepository,
)
from registry_tokens.registry_tokens.usage import (
    UNKNOWN_ADDRESS,
    Download,
    UsageRepository,
    hour_of,
    period_end,
    period_key,
)

REALM = 'Basic realm="registry-tokens", charset="UTF-8"'
logger = logging.getLogger("registry_tokens")


class InstallUnauthorized(AppError):
    def __init__(self, oidc: OidcRefused | None = None) -> None:
        super().__init__(
            oidc.message
            if oidc is not None
            else "Authentication required: use a registry token (or an API access token with "
            "read_packages, or an OIDC token) as the password of user buildkite",
            401,
            headers={"WWW-Authenticate": REALM},
        )


def presented_secret(authorization: str | None) -> str | None:
    """The secret in a ``Basic`` (as password) or ``Bearer`` Authorization header."""
    scheme, _, value = (authorization or "").partition(" ")
    value = value.strip()
    if scheme.lower() == "bearer":
        return value or None
    if scheme.lower() == "basic":
        try:
            decoded = base64.b64decode(value, validate=True).decode("utf-8")
        except (binascii.Error, UnicodeDecodeError):
            return None
        _user, sep, password = decoded.partition(":")
        return password if sep and password else None
    return None


@dataclass(frozen=True)
class InstallDecision:
    """What :meth:`InstallAccess.decide` found: the registry to serve (``None``: 401), the
    registry token presented (if any), why it was refused, and whether its use is due to
    be recorded."""

    org: str
    registry_slug: str
    context: RequestContext
    registry: RegistryRow | None
    token: PresentedCredential | None = None
    refusal: Refusal | None = None
    record_use: bool = False
    oidc: OidcGrant | None = None
    oidc_refusal: OidcRefused | None = None
    # The registry at the path whatever the decision: where an OIDC refusal is recorded.
    found: RegistryRow | None = None
    # An API access token that may read here: its id (for the request log).
    api_token_id: uuid.UUID | None = None

    @property
    def caller(self) -> tuple[str, uuid.UUID] | None:
        """Who was let in, as the request log names them: a kind and a token's id."""
        if self.token is not None:
            return "registry_token", self.token.id
        if self.api_token_id is not None:
            return "api_token", self.api_token_id
        if self.oidc is not None:
            return "oidc_token", self.oidc.caller().token_id
        return None


@dataclass(frozen=True)
class InstallGrant:
    """What :meth:`InstallAccess.authorize` let in: the registry, and the registry token
    presented, if one was (``None``: a public registry, an API access token, an OIDC
    token), whose limits then apply to what is shown and downloaded."""

    registry: RegistryRow
    token: PresentedCredential | None
    context: RequestContext
    # Who was let in (``InstallDecision.caller``), if anyone: for the request log.
    caller: tuple[str, uuid.UUID] | None = None

    @property
    def packages(self) -> PackagePatterns | None:
        """The names it may see; ``None``: every package."""
        return patterns_of(self.token.allowed_packages if self.token is not None else None)


class QuotaExceeded(AppError):
    """A download the token's quota has no room for: 403 (the token is good, and may see
    the file; retrying does not help before its counts start again, when ``Retry-After``
    says)."""

    def __init__(self, limit: str, maximum: int, until: datetime | None, now: datetime) -> None:
        what = {
            "max_downloads": f"its {maximum:,} downloads",
            "max_bytes": f"its {maximum:,} bytes of downloads",
            "max_clients": f"downloads from {maximum:,} client addresses",
        }[limit]
        when = (
            f"until {format_timestamp(until)}"
            if until is not None
            else "until its usage is reset or the limit raised"
        )
        headers = {}
        if until is not None:
            headers["Retry-After"] = str(max(1, math.ceil((until - now).total_seconds())))
        super().__init__(
            f"Quota exceeded: this registry token has used {what} ({limit}); no more {when}",
            403,
            headers=headers,
        )


def _refusal_reason(decision: InstallDecision, secret: str | None) -> str:
    """Why a credential was refused, as the metrics count it (a fixed set of words)."""
    if decision.refusal is not None:
        return decision.refusal.value
    if decision.oidc_refusal is not None:
        return f"oidc_{decision.oidc_refusal.reason.value}"
    if secret is None:
        return "missing"
    if secret_kind(secret) is SecretKind.API_ACCESS_TOKEN:
        return "api_token_not_allowed"
    return "unknown"


class _NotCounted(Exception):
    """Rolls back a download's counting (the quota had no room for it)."""


class InstallAccess:
    def __init__(
        self,
        database: Database,
        auth: AuthService,
        secret_key: bytes,
        clock: Callable[[], datetime],
        usage_interval: timedelta,
        rate_limits: RateLimitPolicy,
        refusals: RefusalLog,
        oidc: OidcService,
        usage: UsageBuffer,
    ) -> None:
        self.usage = usage
        self.refusals = refusals
        self.oidc = oidc
        self.database = database
        self.auth = auth
        self.secret_key = secret_key
        self.clock = clock
        self.usage_interval = usage_interval
        self.rate_limits = rate_limits

    async def authorize(
        self, org: str, registry: str, authorization: str | None, context: RequestContext
    ) -> InstallGrant:
        """The registry, if it is public or the credentials may read it; else 401.

        The decision is a few indexed reads; only a last use due takes a write. Refusals
        count against the client's rate limit (successful installs never do), and a
        refusal to record is queued for :class:`RefusalLog`, so a refusal costs the same
        whether or not the token was ever real, and no one can flood the audit log.
        """
        verified: VerifiedToken | OidcRefused | None = None
        secret = presented_secret(authorization)
        if secret is not None and looks_like_jwt(secret):
            # Verified off the event loop: the issuer's keys may have to be fetched.
            verified = await anyio.to_thread.run_sync(self._verify, secret)
        decision = await self.database.read(
            self.decide, org, registry, authorization, context, verified
        )
        if decision.registry is None:  # counted first: a client over its limit gets 429,
            await self.rate_limits.for_client(context.client_ip or "unknown")  # unrecorded
            CREDENTIAL_REFUSALS.labels(_refusal_reason(decision, secret)).inc()
            self.settle(decision)
            raise InstallUnauthorized(decision.oidc_refusal)
        if decision.record_use:
            try:
                await self.database.write(self.settle, decision)
            except DBAPIError as error:
                # A full disk must not stop installs, which only read: the last use is
                # written at the token's next use instead.
                if not is_storage_full(error):
                    raise
                logger.warning("A registry token's last use cannot be written: %s", error.orig)
        return InstallGrant(decision.registry, decision.token, context, decision.caller)

    async def admit_download(self, grant: InstallGrant, name: str, size: int) -> None:
        """:meth:`_admit_download`, counted in the metrics once admitted."""
        await self._admit_download(grant, name, size)
        DOWNLOADS.labels(grant.registry.ecosystem).inc()

    async def _admit_download(self, grant: InstallGrant, name: str, size: int) -> None:
        """Whether the grant's token may download this package file now, and its count.

        A download is a package file served (index pages are not). Without a registry
        token (a public registry, an API access token, OIDC) nothing is counted. A name the
        token may not see is a 404, as if absent (and recorded). A token with a quota is
        counted before the file is sent, in the one conditional UPDATE that also checks
        the quota (``usage.UsageRepository.count``): exact across processes and
        instances; no room is a 403, recorded. A token without one is counted after,
        off the request path (``counting.UsageBuffer``)."""
        token = grant.token
        if token is None:
            return
        registry = grant.registry
        patterns = grant.packages
        if patterns is not None and not patterns.allows(normalized_name(name, registry.ecosystem)):
            self._refuse_download(grant, token, Refusal.PACKAGE_NOT_ALLOWED)
            raise NotFound("file")
        now = self.clock()
        download = Download(
            token.id,
            period_key(token.quota_period, token.usage_since, now),
            hour_of(now),
            grant.context.client_ip or UNKNOWN_ADDRESS,
            1,
            size,
        )
        if not token.has_quota:
            self.usage.add(download)
            return
        for _ in range(2):  # once more if a usage reset moved the period under it
            if await self.database.write(self._count, download):
                return
            exceeded = await self.database.read(self._exceeded, download)
            if exceeded is not None:
                self._refuse_download(grant, token, Refusal.QUOTA_EXCEEDED)
                limit, maximum = exceeded
                raise QuotaExceeded(limit, maximum, period_end(token.quota_period, now), now)
            download = download._replace(
                key=await self.database.read(self._current_key, token.id, now)
            )
        self._refuse_download(grant, token, Refusal.QUOTA_EXCEEDED)
        raise AppError("The download could not be counted; try again", 409)

    def _count(self, download: Download) -> bool:
        try:
            with self.database.writing() as session:
                if not UsageRepository(session, self.database.is_sqlite).count(
                    download, enforce=True
                ):
                    raise _NotCounted  # rolls back the new client's row
        except _NotCounted:
            return False
        except IntegrityError:
            # The token's row went with its registry between the decision and this write.
            raise NotFound("file") from None
        return True

    def _exceeded(self, download: Download) -> tuple[str, int] | None:
        """Which of the token's quotas (as stored now) this download would exceed."""
        rows = self.database.fetch(QUOTA_STATE, token_id=download.token_id)
        if not rows:
            return None
        state = rows[0]
        current = state.usage_period_start == download.key
        downloads = state.usage_downloads if current else 0
        size = state.usage_bytes if current else 0
        clients = state.usage_clients if current else 0
        if state.max_downloads is not None and downloads + 1 > state.max_downloads:
            return "max_downloads", state.max_downloads
        if state.max_bytes is not None and size + download.bytes > state.max_bytes:
            return "max_bytes", state.max_bytes
        if state.max_clients is not None and clients >= state.max_clients:
            return "max_clients", state.max_clients
        return None

    def _current_key(self, token_id: uuid.UUID, now: datetime) -> datetime:
        rows = self.database.fetch(QUOTA_STATE, token_id=token_id)
        if not rows:
            raise NotFound("file")
        return period_key(rows[0].quota_period, rows[0].usage_since, now)

    def _refuse_download(
        self, grant: InstallGrant, token: PresentedCredential, refusal: Refusal
    ) -> None:
        registry = grant.registry
        CREDENTIAL_REFUSALS.labels(refusal.value).inc()
        self.refusals.add(
            token, refusal, f"{registry.organization_slug}/{registry.slug}", grant.context
        )

    def decide(
        self,
        org: str,
        registry: str,
        authorization: str | None,
        context: RequestContext,
        verified: VerifiedToken | OidcRefused | None = None,
    ) -> InstallDecision:
        """Whether the presented credential may install from the registry: the one place
        this is decided. Reads only.

        A path whose organization or registry cannot be a slug names no registry: refused
        before any database work, whatever the credentials, and never recorded. An OIDC
        token (a JWT, never one of our secrets) is verified first (``verified``: what
        :meth:`authorize` found off the event loop; else here), then its registry's
        policy decides."""
        if not (is_organization_slug(org) and is_registry_slug(registry)):
            return InstallDecision(org, registry, context, None)
        secret = presented_secret(authorization)
        kind = secret_kind(secret) if secret is not None else None
        rows = self.database.fetch(REGISTRY_BY_SLUGS, organization_slug=org, registry_slug=registry)
        found = rows[0] if rows else None
        decision = InstallDecision(org, registry, context, found)
        if found is not None and found.public:
            return decision
        if secret is not None and kind is None and looks_like_jwt(secret):
            return self._oidc_decision(decision, secret, verified)
        if secret is not None and kind is SecretKind.REGISTRY_TOKEN:
            token = self.presented(secret)
            if token is not None:
                refusal = self._refusal(token, found, context)
                if refusal is None and found is not None:
                    return replace(decision, token=token, record_use=self._use_unrecorded(token))
                return replace(decision, registry=None, token=token, refusal=refusal)
        if kind is SecretKind.API_ACCESS_TOKEN:
            reader = self._api_token_reader(secret, org)  # first: same work either way
            if reader is not None and found is not None:
                return replace(decision, api_token_id=reader)
        return replace(decision, registry=None)

    def _verify(self, secret: str) -> VerifiedToken | OidcRefused:
        try:
            return self.oidc.verify(secret)
        except OidcRefused as refused:
            return refused

    def _oidc_decision(
        self,
        decision: InstallDecision,
        secret: str,
        verified: VerifiedToken | OidcRefused | None,
    ) -> InstallDecision:
        if verified is None:
            verified = self._verify(secret)
        found = decision.registry
        try:
            if isinstance(verified, OidcRefused):
                raise verified
            grant = self.oidc.grant(
                verified, found, decision.org, decision.registry_slug, Scope.READ_PACKAGES
            )
        except OidcRefused as refused:
            return replace(decision, registry=None, oidc_refusal=refused, found=found)
        return replace(decision, oidc=grant, record_use=self.oidc.use_unrecorded(grant))

    def settle(self, decision: InstallDecision) -> None:
        """What :meth:`decide` called for: a refusal queued to be recorded in the audit
        log (no I/O), or the token's last use written (at most once per interval; in a
        write, see :meth:`authorize`). An OIDC token's first use is recorded once."""
        if decision.oidc_refusal is not None:
            self.oidc.refused(
                decision.oidc_refusal,
                decision.found,
                decision.org,
                decision.registry_slug,
                "install",
                decision.context,
            )
            return
        if decision.oidc is not None:
            if decision.record_use:
                self.oidc.record_use(decision.oidc, decision.context, "install")
            return
        token = decision.token
        if token is None:
            return
        if decision.refusal is not None:
            self.refusals.add(
                token,
                decision.refusal,
                f"{decision.org}/{decision.registry_slug}",
                decision.context,
            )
        elif decision.record_use:
            now = self.clock()
            with self.database.writing() as session:
                RegistryTokenRepository(session).record_use(
                    token.id,
                    truncate_to_millisecond(now),
                    decision.context.client_ip,
                    now - self.usage_interval,
                )

    def presented(self, secret: str) -> PresentedCredential | None:
        """The registry token a secret belongs to, current or retired; None for one no
        token had (leak reports ask this too)."""
        presented = hash_secret(self.secret_key, secret)
        rows = self.database.fetch(PRESENTED_CREDENTIAL, secret_hash=presented)
        if not rows or not digests_match(rows[0].secret_hash, presented):
            return None
        return rows[0]

    def _use_unrecorded(self, token: PresentedCredential) -> bool:
        not_since = self.clock() - self.usage_interval
        return token.last_used_at is None or token.last_used_at < not_since

    def _refusal(
        self, token: PresentedCredential, registry: RegistryRow | None, context: RequestContext
    ) -> Refusal | None:
        """Why the token may not be used here, if it may not."""
        now = self.clock()
        if token.revoked_at is not None:
            return Refusal.REVOKED
        if token.retired and token.grace_ends_at is not None and now >= token.grace_ends_at:
            return Refusal.ROTATED_OUT
        if registry is None or token.registry_id != registry.id:
            return Refusal.WRONG_REGISTRY
        if token.expires_at is not None and now >= token.expires_at:
            return Refusal.EXPIRED
        if token.disabled_at is not None:
            return Refusal.DISABLED
        if token.not_before is not None and now < token.not_before:
            return Refusal.NOT_YET_VALID
        if token.allowed_cidrs and not address_allowed(context.client_ip, token.allowed_cidrs):
            return Refusal.IP_NOT_ALLOWED
        return None

    def _api_token_reader(self, secret: str | None, org: str) -> uuid.UUID | None:
        """The id of the API access token, if it may read the organization's packages."""
        caller = self.auth.identify(secret)
        if caller is None or Scope.READ_PACKAGES.value not in caller.scopes:
            return None
        if member_organization(self.database, caller, org) is None:
            return None
        return caller.token_id
