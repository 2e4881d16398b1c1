"""Users: created by administrators, read by the API as "the calling user", signed in to
the console with a password."""

import uuid
from collections.abc import Callable
from datetime import datetime

from sqlalchemy.exc import IntegrityError

from registry_tokens.db import Database
from registry_tokens.kit import validation
from registry_tokens.kit.context import Caller, Scope
from registry_tokens.kit.errors import (
    NotFound,
    Unauthenticated,
    ValidationFailed,
    already_taken,
)
from registry_tokens.kit.timestamps import truncate_to_millisecond, utcnow
from registry_tokens.users import passwords
from registry_tokens.users.models import User
from registry_tokens.users.repository import UserRepository


class UserService:
    def __init__(self, database: Database, clock: Callable[[], datetime] = utcnow) -> None:
        self.database = database
        self.clock = clock

    def current(self, caller: Caller) -> User:
        caller.require(Scope.READ_USER)
        with self.database.reading() as session:
            user = UserRepository(session).get(caller.user)
        if user is None:  # deleted between authentication and now
            raise Unauthenticated()
        return user

    def email_of(self, user_id: uuid.UUID) -> str | None:
        """Who an authenticated caller is, as package clients print it (``npm whoami``):
        no scope needed, the caller is asking about itself."""
        with self.database.reading() as session:
            user = UserRepository(session).get(user_id)
        return user.email if user is not None else None

    def create(self, name: str, email: str, avatar_url: str | None = None) -> User:
        name = validation.require_text("name", name, max_length=255)
        email = validation.email_address(email)
        if avatar_url is not None:
            avatar_url = validation.require_text("avatar_url", avatar_url, max_length=2048)
        try:
            with self.database.writing() as session:
                users = UserRepository(session)
                if users.get_by_email(email) is not None:
                    raise already_taken("email")
                user = User(name=name, email=email, avatar_url=avatar_url)
                users.add(user)
        except IntegrityError as exc:
            raise already_taken("email") from exc
        return user

    def get_or_create(self, name: str, email: str) -> User:
        with self.database.reading() as session:
            existing = UserRepository(session).get_by_email(validation.email_address(email))
        return existing or self.create(name, email)

    def set_password(self, email: str, password: str) -> User:
        """Give the user a new console password (argon2id), replacing any old one.

        422 for a password shorter than ``passwords.MIN_LENGTH`` or longer than
        ``passwords.MAX_LENGTH`` characters; 404 for an email no user has. The password is
        hashed before the transaction starts, so the write lock is never held while argon2
        works.
        """
        email = validation.email_address(email)
        stored = passwords.hash_password(passwords.acceptable(password))
        with self.database.writing() as session:
            user = UserRepository(session).get_by_email(email)
            if user is None:
                raise NotFound("user")
            user.password_hash = stored
            user.password_changed_at = truncate_to_millisecond(self.clock())
        return user

    @staticmethod
    def prepare_password_checks() -> None:
        """What a process does once before its first sign-in (``passwords.prepare``)."""
        passwords.prepare()

    def verify_password(self, email: str, password: str) -> User | None:
        """The user whose email and password these are, or ``None``.

        ``None`` alike for an unknown (or malformed) email, a user without a password and
        a wrong password, and each of them costs one argon2 verification, so neither the
        answer nor its time tells whether the email has an account. A password over
        ``passwords.MAX_LENGTH`` characters matches no stored one (none may be set) and is
        refused before any hashing. A hash made with older parameters than today's is
        replaced on success, unless the password changed meanwhile.
        """
        if len(password) > passwords.MAX_LENGTH:
            return None
        candidate = passwords.normalized(password)
        try:
            email = validation.email_address(email)
        except ValidationFailed:
            passwords.spend_one_verification(candidate)
            return None
        with self.database.reading() as session:
            user = UserRepository(session).get_by_email(email)
        stored = user.password_hash if user is not None else None
        if user is None or stored is None:
            passwords.spend_one_verification(candidate)
            return None
        if not passwords.matches(stored, candidate):
            return None
        if passwords.needs_rehash(stored):
            return self._rehash(user, stored, candidate)
        return user

    def _rehash(self, user: User, stored: str, password: str) -> User | None:
        """Store a hash of ``password`` with today's parameters in place of ``stored``,
        only if it is still the user's hash (a password set meanwhile wins)."""
        upgraded = passwords.hash_password(password)
        with self.database.writing() as session:
            current = UserRepository(session).get(user.id)
            if current is None:  # gone since it was read: nobody to sign in
                return None
            if current.password_hash == stored:
                current.password_hash = upgraded
        return current
