"""Acting on leak reports: verify the reporter's signature, revoke what is live, record it.

The report format is GitHub's secret scanning partner program's: a JSON list of
``{"token", "type", "url", "source"}``, signed (ECDSA P-256, SHA-256, base64 DER) with a
key named by the ``Github-Public-Key-Identifier`` header. Each answer says whether the
token was live, as ``token_hash`` (SHA-256 of the token) so the secret is not echoed back.

Only what a report changes is recorded: a token revoked already (by an earlier report or
otherwise), or an old secret whose grace is over, records nothing, so a replayed report
is a no-op. Reports count against their sender's address (the per-client rate limit) and
hold at most ``REGISTRY_TOKENS_SECRET_SCANNING_MAX_TOKENS`` tokens.
"""

import base64
import binascii
import hashlib
import json
import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import load_pem_public_key

from registry_tokens.api.http import strict_json
from registry_tokens.audit.service import Actor, EventType, record
from registry_tokens.auth.service import AuthService
from registry_tokens.db import Database
from registry_tokens.kit.context import RequestContext
from registry_tokens.kit.errors import AppError, FieldProblem, ValidationFailed
from registry_tokens.kit.secrets import SecretKind, secret_kind
from registry_tokens.ratelimits.service import RateLimitPolicy
from registry_tokens.registry_tokens.access import InstallAccess
from registry_tokens.registry_tokens.repository import RegistryTokenRepository
from registry_tokens.registry_tokens.service import RegistryTokenService, subject_of

logger = logging.getLogger("registry_tokens.secret_scanning")


@dataclass(frozen=True)
class ReportedToken:
    token: str
    type: str
    url: str | None
    source: str | None

    def unreadable_field(self) -> str | None:
        """The first field that is not valid Unicode (e.g. a lone surrogate, which JSON's
        ``\\ud800`` escape can spell), or ``None``: such text cannot be hashed or stored."""
        for name in ("token", "type", "url", "source"):
            value = getattr(self, name)
            try:
                if value is not None:
                    value.encode("utf-8")
            except UnicodeEncodeError:
                return name
        return None


class SecretScanningService:
    def __init__(
        self,
        database: Database,
        auth: AuthService,
        tokens: RegistryTokenService,
        access: InstallAccess,
        rate_limits: RateLimitPolicy,
        keys_file: Path | None,
        max_tokens: int,
        clock: Callable[[], datetime],
    ) -> None:
        self.database = database
        self.auth = auth
        self.tokens = tokens
        self.access = access
        self.rate_limits = rate_limits
        self.keys_file = keys_file
        self.max_tokens = max_tokens
        self.clock = clock

    async def admit(self, context: RequestContext) -> Mapping[str, str] | None:
        """Counts a report against its sender's address, signed or not (the per-client
        limit of requests without an API token): 429 beyond it. The ``RateLimit-*``
        headers to send."""
        allowance = await self.rate_limits.for_client(context.client_ip or "unknown")
        return allowance.headers() if allowance is not None else None

    def verify(self, body: bytes, key_identifier: str | None, signature: str | None) -> None:
        """Raises unless ``signature`` is the named configured key's signature of ``body``."""
        keys = self._public_keys()
        key = keys.get(key_identifier or "")
        if key is None or not signature:
            raise AppError("The report's signing key is unknown or its signature is missing", 401)
        try:
            key.verify(base64.b64decode(signature, validate=True), body, ec.ECDSA(hashes.SHA256()))
        except (InvalidSignature, binascii.Error, ValueError):
            raise AppError("The report's signature does not verify", 401) from None

    def report(self, body: bytes, context: RequestContext) -> list[dict[str, str]]:
        """Acts on each distinct token once; every item is answered, in order."""
        reported = _parse(body, self.max_tokens)
        live: dict[str, bool] = {}
        for item in reported:
            if item.token not in live:
                live[item.token] = self._revoke(item, context)
        return [
            {
                "token_hash": hashlib.sha256(item.token.encode("utf-8")).hexdigest(),
                "token_type": item.type,
                "label": "true_positive" if live[item.token] else "false_positive",
            }
            for item in reported
        ]

    def _revoke(self, item: ReportedToken, context: RequestContext) -> bool:
        """Revokes the reported secret if it is ours and still works; whether it was live.

        Records an event only when something changes, decided on the token's row locked in
        the writing transaction, so concurrent copies of one report record it once."""
        kind = secret_kind(item.token)
        if kind is SecretKind.API_ACCESS_TOKEN:
            caller = self.auth.identify(item.token)
            if caller is None:
                return False
            self.auth.revoke(caller.token_id)
            logger.warning("revoked API access token %s: reported leaked", caller.token_id)
            return True
        if kind is not SecretKind.REGISTRY_TOKEN:
            return False
        found = self.access.presented(item.token)
        if found is None:
            return False
        retired = bool(found.retired)
        actor = Actor("secret_scanner", None, "GitHub secret scanning")
        with self.database.writing() as session:
            tokens = RegistryTokenRepository(session)
            token = tokens.get_live(found.registry_id, found.id, for_update=True)
            if token is None:  # revoked already (or deleted with its registry): no change
                return False
            now = self.clock()
            live = token.expires_at is None or now < token.expires_at
            data: dict[str, object] = {
                "live": live,
                "revoked": not retired,
                "secret": "retired" if retired else "current",
                "url": item.url,
                "source": item.source,
            }
            if not retired:
                self.tokens.revoke(
                    session,
                    token,
                    reason="leaked",
                    event=EventType.REGISTRY_TOKEN_LEAK_REPORTED,
                    actor=actor,
                    context=context,
                    data=data,
                )
                return live
            # An old secret leaked: end its grace period; the current one is not revoked.
            if not tokens.end_grace_of(found.secret_hash, now):
                return False  # its grace was over already: no change
            record(
                session,
                EventType.REGISTRY_TOKEN_LEAK_REPORTED,
                subject_of(token),
                actor,
                context,
                data,
            )
        return live

    def _public_keys(self) -> dict[str, ec.EllipticCurvePublicKey]:
        if self.keys_file is None:
            raise AppError("Secret scanning reports are not enabled on this server", 404)
        try:
            document = json.loads(self.keys_file.read_text())
            keys = {}
            for entry in document["public_keys"]:
                key = load_pem_public_key(entry["key"].encode())
                if isinstance(key, ec.EllipticCurvePublicKey):
                    keys[str(entry["key_identifier"])] = key
        except (OSError, ValueError, KeyError, TypeError) as exc:
            logger.error("cannot read the secret scanning keys file: %s", exc)
            raise AppError("Secret scanning is misconfigured on this server", 503) from exc
        return keys


def _parse(body: bytes, max_tokens: int) -> list[ReportedToken]:
    try:
        document: Any = strict_json(body)
    except json.JSONDecodeError as exc:
        raise AppError(
            f"Problems parsing JSON: the report is not valid JSON ({exc.msg})", 400
        ) from None
    if not isinstance(document, list):
        raise AppError(
            "Validation failed: a report is a JSON list of objects with token, type, url "
            "and source",
            422,
        )
    if len(document) > max_tokens:
        raise AppError(f"Validation failed: a report may hold at most {max_tokens} tokens", 422)
    reported = []
    for entry in document:
        if not isinstance(entry, dict) or not isinstance(entry.get("token"), str):
            raise AppError("Validation failed: every reported item needs a token string", 422)
        item = ReportedToken(
            token=entry["token"],
            type=str(entry.get("type") or ""),
            url=entry["url"] if isinstance(entry.get("url"), str) else None,
            source=entry["source"] if isinstance(entry.get("source"), str) else None,
        )
        unreadable = item.unreadable_field()
        if unreadable is not None:
            raise ValidationFailed(
                [FieldProblem(unreadable, "invalid", "must be valid Unicode text")]
            )
        reported.append(item)
    return reported
