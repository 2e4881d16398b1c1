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
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import NoReturn
from urllib.parse import quote

from sqlalchemy.orm import Session

from registry_tokens.audit.service import Actor, EventType, Refusal, RequestContext, record
from registry_tokens.auth.scopes import Scope
from registry_tokens.auth.service import AuthService
from registry_tokens.db import Database
from registry_tokens.kit.errors import AppError, NotFound
from registry_tokens.kit.network import address_allowed
from registry_tokens.kit.secrets import SecretKind, hash_secret, secret_kind
from registry_tokens.kit.timestamps import truncate_to_millisecond
from registry_tokens.organizations.repository import OrganizationRepository
from registry_tokens.packages.models import Package
from registry_tokens.packages.repository import PackageRepository
from registry_tokens.packages.storage import FileStore
from registry_tokens.ratelimits.service import RateLimitPolicy
from registry_tokens.registries.models import Registry
from registry_tokens.registries.repository import RegistryRepository
from registry_tokens.registry_tokens.models import RegistryToken
from registry_tokens.registry_tokens.repository import RegistryTokenRepository

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

    def authorize(
        self, org: str, registry: str, authorization: str | None, context: RequestContext
    ) -> Registry:
        """The registry, if it is public or the credentials may read it; else 401.

        Checked against the database on every request: a deleted, expired or rotated-out
        token is refused from that instant, on every worker and instance. A refused
        registry token is recorded in the audit log, once per request.
        """
        secret = presented_secret(authorization)
        kind = secret_kind(secret) if secret is not None else None
        token: RegistryToken | None = None
        refusal: Refusal | None = None
        with self.database.read() as session:
            found = RegistryRepository(session).get_by_slugs(org, registry)
            if found is not None and found.public:
                return found
            if secret is not None and kind is SecretKind.REGISTRY_TOKEN:
                token, refusal = self._check_registry_token(session, secret, found, context)
        if token is not None and refusal is None and found is not None:
            self._record_use(token, context)
            return found
        if (
            secret is not None
            and kind is SecretKind.API_ACCESS_TOKEN
            and self._api_token_may_read(secret, org)  # checked first: same work either way
            and found is not None
        ):
            return found
        self._deny(context, token if refusal is not None else None, refusal, org, registry)

    def _deny(
        self,
        context: RequestContext,
        token: RegistryToken | None,
        reason: Refusal | None,
        org: str,
        registry: str,
    ) -> NoReturn:
        """401, recorded when a real token was refused. Refusals count against the client's
        rate limit (successful installs never do), so no one can flood the audit log."""
        self.rate_limits.for_client(context.client_ip or "unknown")
        if token is not None and reason is not None:
            with self.database.write() as session:
                refused = RegistryTokenRepository(session).get(token.id)
                if refused is not None:  # its registry may have been deleted meanwhile
                    record(
                        session,
                        EventType.REGISTRY_TOKEN_USE_REFUSED,
                        refused,
                        Actor("registry_token", refused.id, refused.description),
                        context,
                        {"reason": reason.value, "requested_registry": f"{org}/{registry}"},
                    )
        raise InstallUnauthorized()

    def _check_registry_token(
        self, session: Session, secret: str, registry: Registry | None, context: RequestContext
    ) -> tuple[RegistryToken | None, Refusal | None]:
        """The token a secret belongs to, and why it may not be used here (if it may not)."""
        found = RegistryTokenRepository(session).find_by_secret_hash(
            hash_secret(self.secret_key, secret)
        )
        if found is None:
            return None, None  # noise: nothing to attribute a record to
        token, retired = found
        now = self.clock()
        if token.revoked_at is not None:
            return token, Refusal.REVOKED
        if retired is not None and now >= retired.valid_until:
            return token, Refusal.ROTATED_OUT
        if registry is None or token.registry_id != registry.id:
            return token, Refusal.WRONG_REGISTRY
        if token.expires_at is not None and now >= token.expires_at:
            return token, Refusal.EXPIRED
        if token.allowed_cidrs and not address_allowed(context.client_ip, token.allowed_cidrs):
            return token, Refusal.IP_NOT_ALLOWED
        return token, None

    def _record_use(self, token: RegistryToken, context: RequestContext) -> None:
        """Last use, written at most once per interval so installs rarely write at all."""
        now = self.clock()
        not_since = now - self.usage_interval
        if token.last_used_at is not None and token.last_used_at >= not_since:
            return
        with self.database.write() as session:
            RegistryTokenRepository(session).record_use(
                token.id, truncate_to_millisecond(now), context.client_ip, not_since
            )

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

    def projects(self, registry: Registry) -> list[str]:
        with self.database.read() as session:
            return PackageRepository(session).projects(registry.id)

    def project_files(self, registry: Registry, project: str) -> list[ProjectFile]:
        with self.database.read() as session:
            packages = PackageRepository(session).files_of_project(registry.id, project)
        if not packages:
            raise NotFound("project")
        return [ProjectFile(str(p.id), p.filename, p.sha256, p.requires_python) for p in packages]

    def file(self, registry: Registry, package_id: str, filename: str) -> tuple[Package, Path]:
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
