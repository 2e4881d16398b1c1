import uuid

from sqlalchemy import select
from sqlalchemy.orm import Session

from registry_tokens.users.models import User


class UserRepository:
    def __init__(self, session: Session) -> None:
        self.session = session

    def get(self, user_id: uuid.UUID) -> User | None:
        return self.session.get(User, user_id)

    def get_by_email(self, email: str) -> User | None:
        return self.session.scalar(select(User).where(User.email == email.lower()))

    def add(self, user: User) -> None:
        self.session.add(user)
        self.session.flush()
