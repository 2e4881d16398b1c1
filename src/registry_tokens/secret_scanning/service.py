"""Acting on leak reports: verify the reporter's signature, revoke what is live, record it.

The report format is GitHub's secret scanning partner program's: a JSON list of
``{"token", "type", "url", "source"}``, signed (ECDSA P-256, SHA-256, base64 DER) with a
key named by the ``Github-Public-Key-Identifier`` header. Each answer says whether the
token was live, as ``token_hash`` (SHA-256 of the token) so the secret is not echoed back.
"""

import base64
import binascii
import hashlib
import json
import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import load_pem_public_key

from registry_tokens.audit.service import Actor, EventType, record
from registry_tokens.auth.service import AuthService
from registry_tokens.db import Database
from registry_tokens.kit.context import RequestContext
from registry_tokens.kit.errors import AppError
from registry_tokens.kit.secrets import SecretKind, secret_kind
from registry_tokens.registry_tokens.access import InstallAccess
from registry_tokens.registry_tokens.repository import RegistryTokenRepository
from registry_tokens.registry_tokens.service import RegistryTokenService, subject_of

logger = logging.getLogger("registry_tokens.secret_scanning")
MAX_REPORTED_TOKENS = 1000


@dataclass(frozen=True)
class ReportedToken:
    token: str
    type: str
    url: str | None
    source: str | None


class SecretScanningService:
    def __init__(
        self,
        database: Database,
        auth: AuthService,
        tokens: RegistryTokenService,
        access: InstallAccess,
        keys_file: Path | None,
        clock: Callable[[], datetime],
    ) -> None:
        self.database = database
        self.auth = auth
        self.tokens = tokens
        self.access = access
        self.keys_file = keys_file
        self.clock = clock

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
        reported = _parse(body)
        answers = []
        for item in reported:
            live = self._revoke(item, context)
            answers.append(
                {
                    "token_hash": hashlib.sha256(item.token.encode("utf-8")).hexdigest(),
                    "token_type": item.type,
                    "label": "true_positive" if live else "false_positive",
                }
            )
        return answers

    def _revoke(self, item: ReportedToken, context: RequestContext) -> bool:
        """Revokes the reported secret if it is ours; whether it was live."""
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
        now = self.clock()
        retired = bool(found.retired)
        live = found.revoked_at is None and (found.expires_at is None or now < found.expires_at)
        if retired:  # an old secret leaked: end its grace period; the current one is not
            live = live and found.grace_ends_at is not None and now < found.grace_ends_at
        actor = Actor("secret_scanner", None, "GitHub secret scanning")
        data: dict[str, object] = {
            "live": live,
            "revoked": not retired,
            "secret": "retired" if retired else "current",
            "url": item.url,
            "source": item.source,
        }
        with self.database.writing() as session:
            tokens = RegistryTokenRepository(session)
            token = tokens.get(found.id)
            if token is None:  # deleted with its registry since
                return False
            if retired:
                tokens.end_grace_of(found.secret_hash, now)
            elif token.revoked_at is None:
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


def _parse(body: bytes) -> list[ReportedToken]:
    try:
        document: Any = json.loads(body)
    except (ValueError, UnicodeDecodeError):
        raise AppError("Problems parsing JSON: the report is not valid JSON", 400) from None
    if not isinstance(document, list) or len(document) > MAX_REPORTED_TOKENS:
        raise AppError(
            f"Validation failed: a report is a JSON list of at most {MAX_REPORTED_TOKENS} "
            "objects with token, type, url and source",
            422,
        )
    reported = []
    for entry in document:
        if not isinstance(entry, dict) or not isinstance(entry.get("token"), str):
            raise AppError("Validation failed: every reported item needs a token string", 422)
        reported.append(
            ReportedToken(
                token=entry["token"],
                type=str(entry.get("type") or ""),
                url=entry["url"] if isinstance(entry.get("url"), str) else None,
                source=entry["source"] if isinstance(entry.get("source"), str) else None,
            )
        )
    return reported
