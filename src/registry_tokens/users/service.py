"""Users: created by administrators, read by the API as "the calling user"."""

import uuid

from sqlalchemy.exc import IntegrityError

from registry_tokens.db import Database
from registry_tokens.kit import validation
from registry_tokens.kit.context import Caller, Scope
from registry_tokens.kit.errors import (
    Unauthenticated,
    already_taken,
)
from registry_tokens.users.models import User
from registry_tokens.users.repository import UserRepository


class UserService:
    def __init__(self, database: Database) -> None:
        self.database = database

    def current(self, caller: Caller) -> User:
        caller.require(Scope.READ_USER)
        with self.database.reading() as session:
            user = UserRepository(session).get(caller.user_id)
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
