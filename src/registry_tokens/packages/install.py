"""The install side: who may read a registry's packages, and PEP 503 / PEP 691 pages.

Package clients present credentials as HTTP basic auth (user ``buildkite``, password a
registry token or an API access token with ``read_packages``) or as a Bearer token.
Anything else gets 401 with a ``WWW-Authenticate: Basic`` challenge, whether or not the
registry exists, so a client without access learns nothing about it.
"""

import base64
import binascii
import html
import json
import uuid
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from pathlib import Path
from typing import NoReturn
from urllib.parse import quote

from registry_tokens.audit.service import Actor, EventType, Refusal, RequestContext, record
from registry_tokens.auth.scopes import Scope
from registry_tokens.auth.service import AuthService
from registry_tokens.db import Database
from registry_tokens.kit.errors import AppError, NotFound
from registry_tokens.kit.network import address_allowed
from registry_tokens.kit.secrets import SecretKind, digests_match, hash_secret, secret_kind
from registry_tokens.kit.timestamps import truncate_to_millisecond
from registry_tokens.organizations.repository import OrganizationRepository
from registry_tokens.packages.models import Package
from registry_tokens.packages.repository import PackageRepository, install_project_files
from registry_tokens.packages.storage import FileStore
from registry_tokens.ratelimits.service import RateLimitPolicy
from registry_tokens.registries.repository import install_registry_by_slugs
from registry_tokens.registry_tokens.repository import (
    RegistryTokenRepository,
    install_credential_by_secret_hash,
)

SIMPLE_JSON = "application/vnd.pypi.simple.v1+json"
SIMPLE_HTML = "application/vnd.pypi.simple.v1+html"
REALM = 'Basic realm="registry-tokens", charset="UTF-8"'


class InstallUnauthorized(AppError):
    def __init__(self) -> None:
        super().__init__(
            "Authentication required: use a registry token (or an API access token with "
            "read_packages) as the password of user buildkite",
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
class ProjectFile:
    package_id: str
    filename: str
    sha256: str
    requires_python: str | None


@dataclass(frozen=True)
class InstallRegistry:
    """A registry the request may read."""

    id: uuid.UUID
    slug: str


@dataclass(frozen=True)
class PresentedToken:
    """What the install path knows of the registry token a presented secret belongs to."""

    id: uuid.UUID
    registry_id: uuid.UUID
    revoked_at: datetime | None
    expires_at: datetime | None
    allowed_cidrs: list[str] | None
    last_used_at: datetime | None
    grace_ends_at: datetime | None  # set when the secret is one a rotation retired


@dataclass(frozen=True)
class InstallDecision:
    """What :meth:`InstallService.check` found: the registry to serve (``None``: 401), the
    registry token presented (if any), why it was refused, and whether its use is due to
    be recorded."""

    org: str
    registry_slug: str
    context: RequestContext
    registry: InstallRegistry | None
    token: PresentedToken | None = None
    refusal: Refusal | None = None
    record_use: bool = False

    @property
    def writes(self) -> bool:
        return self.registry is None or self.record_use


class InstallService:
    def __init__(
        self,
        database: Database,
        auth: AuthService,
        files: FileStore,
        secret_key: bytes,
        clock: Callable[[], datetime],
        usage_interval: timedelta,
        rate_limits: RateLimitPolicy,
    ) -> None:
        self.rate_limits = rate_limits
        self.database = database
        self.auth = auth
        self.files = files
        self.secret_key = secret_key
        self.clock = clock
        self.usage_interval = usage_interval
        self._registry_by_slugs = database.prepare(install_registry_by_slugs())
        self._token_by_secret_hash = database.prepare(install_credential_by_secret_hash())
        self._project_files = database.prepare(install_project_files())

    def authorize(
        self, org: str, registry: str, authorization: str | None, context: RequestContext
    ) -> InstallRegistry:
        """The registry, if it is public or the credentials may read it; else 401.

        Checked against the database on every request: a deleted, expired or rotated-out
        token is refused from that instant, on every worker and instance. A refused
        registry token is recorded in the audit log, once per request.
        """
        return self.settle(self.check(org, registry, authorization, context))

    def check(
        self, org: str, registry: str, authorization: str | None, context: RequestContext
    ) -> InstallDecision:
        """The read-only half of :meth:`authorize`: what to answer, and what to write.

        Split from :meth:`settle` so that the install route can run this half, a few
        indexed reads, on the event loop, and hand only the rare writes to a thread.
        """
        secret = presented_secret(authorization)
        kind = secret_kind(secret) if secret is not None else None
        rows = self.database.fetch(
            self._registry_by_slugs, organization_slug=org, registry_slug=registry
        )
        found = InstallRegistry(rows[0][0], rows[0][1]) if rows else None
        decision = InstallDecision(org, registry, context, found)
        if found is not None and rows[0][2]:  # public
            return decision
        if secret is not None and kind is SecretKind.REGISTRY_TOKEN:
            token = self._presented_token(secret)
            if token is not None:
                refusal = self._refusal(token, found, context)
                if refusal is None and found is not None:
                    return replace(decision, token=token, record_use=self._use_unrecorded(token))
                return replace(decision, registry=None, token=token, refusal=refusal)
        if (
            secret is not None
            and kind is SecretKind.API_ACCESS_TOKEN
            and self._api_token_may_read(secret, org)  # checked first: same work either way
            and found is not None
        ):
            return decision
        return replace(decision, registry=None)

    def settle(self, decision: InstallDecision) -> InstallRegistry:
        """The writes :meth:`check` decided on, then the registry or 401."""
        if decision.registry is None:
            self._deny(decision)
        if decision.record_use and decision.token is not None:
            now = self.clock()
            with self.database.write() as session:
                RegistryTokenRepository(session).record_use(
                    decision.token.id,
                    truncate_to_millisecond(now),
                    decision.context.client_ip,
                    now - self.usage_interval,
                )
        return decision.registry

    def _use_unrecorded(self, token: PresentedToken) -> bool:
        """Last use is written at most once per interval, so installs rarely write at all."""
        not_since = self.clock() - self.usage_interval
        return token.last_used_at is None or token.last_used_at < not_since

    def _presented_token(self, secret: str) -> PresentedToken | None:
        """The token a secret belongs to, current or retired; None for one no token had."""
        presented = hash_secret(self.secret_key, secret)
        rows = self.database.fetch(self._token_by_secret_hash, secret_hash=presented)
        if not rows:
            return None
        (token_id, registry_id, revoked_at, expires_at, cidrs, last_used_at, stored, valid_until,
         retired) = rows[0]  # fmt: skip
        if not digests_match(stored, presented):
            return None
        return PresentedToken(
            token_id,
            registry_id,
            revoked_at,
            expires_at,
            cidrs,
            last_used_at,
            grace_ends_at=valid_until if retired else None,
        )

    def _refusal(
        self, token: PresentedToken, registry: InstallRegistry | None, context: RequestContext
    ) -> Refusal | None:
        """Why the token may not be used here, if it may not."""
        now = self.clock()
        if token.revoked_at is not None:
            return Refusal.REVOKED
        if token.grace_ends_at is not None and now >= token.grace_ends_at:
            return Refusal.ROTATED_OUT
        if registry is None or token.registry_id != registry.id:
            return Refusal.WRONG_REGISTRY
        if token.expires_at is not None and now >= token.expires_at:
            return Refusal.EXPIRED
        if token.allowed_cidrs and not address_allowed(context.client_ip, token.allowed_cidrs):
            return Refusal.IP_NOT_ALLOWED
        return None

    def _deny(self, decision: InstallDecision) -> NoReturn:
        """401, recorded when a real token was refused. Refusals count against the client's
        rate limit (successful installs never do), so no one can flood the audit log."""
        context = decision.context
        self.rate_limits.for_client_sync(context.client_ip or "unknown")
        if decision.token is not None and decision.refusal is not None:
            requested = f"{decision.org}/{decision.registry_slug}"
            with self.database.write() as session:
                refused = RegistryTokenRepository(session).get(decision.token.id)
                if refused is not None:  # its registry may have been deleted meanwhile
                    record(
                        session,
                        EventType.REGISTRY_TOKEN_USE_REFUSED,
                        refused,
                        Actor("registry_token", refused.id, refused.description),
                        context,
                        {"reason": decision.refusal.value, "requested_registry": requested},
                    )
        raise InstallUnauthorized()

    def _api_token_may_read(self, secret: str, org: str) -> bool:
        try:
            caller = self.auth.authenticate(f"Bearer {secret}")
        except AppError:
            return False
        if Scope.READ_PACKAGES.value not in caller.scopes:
            return False
        with self.database.read() as session:
            member = OrganizationRepository(session).get_by_slug_for_member(org, caller.user_id)
        return member is not None and caller.may_act_in(member.id)

    def projects(self, registry: InstallRegistry) -> list[str]:
        with self.database.read() as session:
            return PackageRepository(session).projects(registry.id)

    def project_files(self, registry: InstallRegistry, project: str) -> list[ProjectFile]:
        rows = self.database.fetch(self._project_files, registry_id=registry.id, project=project)
        if not rows:
            raise NotFound("project")
        return [
            ProjectFile(str(package_id), filename, sha256, requires_python)
            for package_id, filename, sha256, requires_python in rows
        ]

    def file(
        self, registry: InstallRegistry, package_id: str, filename: str
    ) -> tuple[Package, Path]:
        try:
            parsed = uuid.UUID(package_id)
        except ValueError:
            raise NotFound("file") from None
        with self.database.read() as session:
            package = PackageRepository(session).get(registry.id, parsed)
        if package is None or package.filename != filename:
            raise NotFound("file")
        return package, self.files.path_for(package.sha256, package.id)


def choose_media_type(accept: str | None) -> str | None:
    """PEP 691 content negotiation: the best of what we serve, or ``None`` (406)."""
    offered = {
        SIMPLE_JSON: SIMPLE_JSON,
        "application/vnd.pypi.simple.latest+json": SIMPLE_JSON,
        SIMPLE_HTML: SIMPLE_HTML,
        "application/vnd.pypi.simple.latest+html": SIMPLE_HTML,
        "text/html": "text/html",
        "text/*": "text/html",
        "*/*": "text/html",
    }
    if not accept or not accept.strip():
        return "text/html"
    best: tuple[float, int, str] | None = None
    for position, item in enumerate(accept.split(",")):
        media_type, *parameters = (part.strip() for part in item.split(";"))
        quality = 1.0
        for parameter in parameters:
            key, _, value = parameter.partition("=")
            if key.strip().lower() == "q":
                try:
                    quality = float(value)
                except ValueError:
                    quality = 0.0
        served = offered.get(media_type.lower())
        if served is None or quality <= 0:
            continue
        candidate = (quality, -position, served)
        if best is None or candidate > best:
            best = candidate
    return best[2] if best else None


def index_page(projects: list[str], media_type: str) -> str:
    if media_type == SIMPLE_JSON:
        return json.dumps(
            {"meta": {"api-version": "1.0"}, "projects": [{"name": name} for name in projects]}
        )
    links = "\n".join(
        f'    <a href="{html.escape(name)}/">{html.escape(name)}</a><br/>' for name in projects
    )
    return _html("Simple index", links)


def project_page(project: str, files: list[ProjectFile], media_type: str) -> str:
    def url(file: ProjectFile) -> str:
        return f"../../files/{file.package_id}/{quote(file.filename)}"

    if media_type == SIMPLE_JSON:
        entries = []
        for file in files:
            entry: dict[str, object] = {
                "filename": file.filename,
                "url": url(file),
                "hashes": {"sha256": file.sha256},
            }
            if file.requires_python:
                entry["requires-python"] = file.requires_python
            entries.append(entry)
        return json.dumps({"meta": {"api-version": "1.0"}, "name": project, "files": entries})
    links = []
    for file in files:
        requires = (
            f' data-requires-python="{html.escape(file.requires_python)}"'
            if file.requires_python
            else ""
        )
        links.append(
            f'    <a href="{html.escape(url(file))}#sha256={file.sha256}"{requires}>'
            f"{html.escape(file.filename)}</a><br/>"
        )
    return _html(f"Links for {html.escape(project)}", "\n".join(links))


def _html(title: str, body: str) -> str:
    return (
        '<!DOCTYPE html>\n<html>\n  <head>\n    <meta name="pypi:repository-version" '
        f'content="1.0">\n    <title>{title}</title>\n  </head>\n  <body>\n'
        f"    <h1>{title}</h1>\n{body}\n  </body>\n</html>\n"
    )
