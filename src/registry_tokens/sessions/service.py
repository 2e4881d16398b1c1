"""Signing in to the web console: passwords checked, attempts rate-limited, sessions
opened, resumed on every page, and closed.

The cookie is ``<secret>.<signature>``: a random secret (its keyed hash names the stored
session) signed with a key of its own, so a forged or mangled cookie is refused without
a database read. The session is stored, not carried in the cookie, so signing out, the
idle limit and a password change end it at once on every process.
"""

import hashlib
import hmac
import secrets
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta

from registry_tokens.db import Database
from registry_tokens.kit.context import Caller, RequestContext, Scope
from registry_tokens.kit.errors import AppError
from registry_tokens.kit.secrets import digests_match, hash_secret
from registry_tokens.kit.signing import derive_key
from registry_tokens.ratelimits.service import RateLimitPolicy
from registry_tokens.sessions.models import ConsoleSession
from registry_tokens.sessions.repository import SESSION_BY_SECRET, SessionRepository
from registry_tokens.users.service import UserService

# A person signed in acts with every scope: what they may do is what their memberships
# (and roles) allow, as for an API token with every scope.
EVERY_SCOPE = frozenset(scope.value for scope in Scope)
# Longer cookies are not ours: refused before any work.
MAX_COOKIE_LENGTH = 256
MAX_USER_AGENT = 256


class SignInRefused(AppError):
    """One answer for an unknown email and a wrong password."""

    def __init__(self) -> None:
        super().__init__("Incorrect email or password", 401)


@dataclass(frozen=True)
class SignedIn:
    """The person behind a console request, and what their forms must carry."""

    session_id: uuid.UUID
    user_id: uuid.UUID
    name: str
    email: str
    caller: Caller
    csrf_token: str


class SessionService:
    def __init__(
        self,
        database: Database,
        users: UserService,
        rate_limits: RateLimitPolicy,
        key: bytes,
        clock: Callable[[], datetime],
        *,
        idle: timedelta,
        lifetime: timedelta,
    ) -> None:
        self.database = database
        self.users = users
        self.rate_limits = rate_limits
        self.key = key
        self.clock = clock
        self.idle = idle
        self.lifetime = lifetime
        self._cookie_key = derive_key(key, "console-session")
        self._csrf_key = derive_key(key, "console-csrf")
        self._sign_in_csrf_key = derive_key(key, "console-sign-in-csrf")
        self._account_key = derive_key(key, "console-sign-in-account")

    async def sign_in(self, email: str, password: str, context: RequestContext) -> str:
        """The new session's cookie value, or :class:`SignInRefused` (401), or
        ``RateLimited`` (429) once the address or the account has failed too often in
        the window. Attempts under way at once are checked before any of them is
        counted, so as many as run concurrently may be verified past the limit."""
        account = hmac.new(
            self._account_key, email.strip().lower().encode("utf-8", "replace"), hashlib.sha256
        ).hexdigest()[:40]
        address = context.client_ip or "unknown"
        await self.rate_limits.check_sign_in(address, account)
        try:
            user = await self.database.write(self.users.verify_password, email, password)
        except AppError:  # not an email address at all: the same answer
            user = None
        if user is None:
            await self.rate_limits.count_failed_sign_in(address, account)
            raise SignInRefused()
        secret = secrets.token_urlsafe(32)
        await self.database.write(self._open, user.id, secret, context)
        return f"{secret}.{self._sign(secret)}"

    def _open(self, user_id: uuid.UUID, secret: str, context: RequestContext) -> None:
        now = self.clock()
        with self.database.writing() as session:
            sessions = SessionRepository(session)
            # Now and then, as people sign in: the sessions nobody can resume any more.
            sessions.remove_stale(now - self.idle, now - self.lifetime)
            sessions.add(
                ConsoleSession(
                    # The service's clock, not the id's: idle and lifetime are measured
                    # on the one clock every check reads.
                    created_at=now,
                    user_id=user_id,
                    secret_hash=hash_secret(self.key, secret),
                    last_seen_at=now,
                    client_ip=context.client_ip,
                    user_agent=context.user_agent[:MAX_USER_AGENT] if context.user_agent else None,
                )
            )

    def resume(self, cookie: str | None) -> SignedIn | None:
        """The person whose live session the cookie names, now seen again; ``None`` for no
        cookie, a forged one, or a session that is over (idle too long, too old, signed
        out, or opened before its password last changed)."""
        secret = self._verified(cookie)
        if secret is None:
            return None
        now = self.clock()
        with self.database.writing() as session:
            rows = self.database.fetch_in(
                session, SESSION_BY_SECRET, secret_hash=hash_secret(self.key, secret)
            )
            if not rows:
                return None
            row = rows[0]
            sessions = SessionRepository(session)
            changed = row.password_changed_at
            if (
                now - row.last_seen_at > self.idle
                or now - row.created_at > self.lifetime
                or (changed is not None and changed > row.created_at)
            ):
                sessions.remove(row.id)
                return None
            sessions.touch(row.id, now)
        return SignedIn(
            session_id=row.id,
            user_id=row.user_id,
            name=row.name,
            email=row.email,
            caller=Caller(
                token_id=row.id,
                user_id=row.user_id,
                scopes=EVERY_SCOPE,
                organization_ids=None,
            ),
            csrf_token=self._mac(self._csrf_key, secret),
        )

    def sign_out(self, cookie: str | None) -> None:
        """Ends the session the cookie names (if any): no copy of the cookie opens it again."""
        secret = self._verified(cookie)
        if secret is None:
            return
        with self.database.writing() as session:
            rows = self.database.fetch_in(
                session, SESSION_BY_SECRET, secret_hash=hash_secret(self.key, secret)
            )
            if rows:
                SessionRepository(session).remove(rows[0].id)

    def sign_in_csrf_token(self, nonce: str) -> str:
        """What the sign-in form carries for the nonce in its cookie (before any session:
        a forged sign-in would sign the victim in as the forger)."""
        return self._mac(self._sign_in_csrf_key, nonce)

    @staticmethod
    def tokens_match(expected: str, presented: str | None) -> bool:
        return presented is not None and hmac.compare_digest(
            expected.encode(), presented.encode("utf-8", "replace")
        )

    def _verified(self, cookie: str | None) -> str | None:
        if not cookie or len(cookie) > MAX_COOKIE_LENGTH or not cookie.isascii():
            return None
        secret, _, signature = cookie.rpartition(".")
        if not secret or not digests_match(
            self._sign(secret).encode(), signature.encode("ascii", "replace")
        ):
            return None
        return secret

    def _sign(self, secret: str) -> str:
        return self._mac(self._cookie_key, secret)

    @staticmethod
    def _mac(key: bytes, value: str) -> str:
        return hmac.new(key, value.encode(), hashlib.sha256).hexdigest()
