"""One error hierarchy, rendered in one place as Buildkite's ``{"message": ...}`` body."""

from dataclasses import dataclass
from typing import Any


class AppError(Exception):
    """An error a client caused or must hear about, with its HTTP status."""

    def __init__(
        self,
        message: str,
        status: int = 400,
        *,
        extra: dict[str, Any] | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.status = status
        self.extra = extra or {}
        self.headers = headers or {}

    def body(self) -> dict[str, Any]:
        return {"message": self.message, **self.extra}


class Unauthenticated(AppError):
    def __init__(
        self, message: str = "Authentication required. Please supply a valid API access token."
    ) -> None:
        super().__init__(message, 401)


class MissingScope(AppError):
    def __init__(self, scope: str) -> None:
        super().__init__(f"Your access token doesn't have the {scope} scope", 403)


class NotFound(AppError):
    def __init__(self, what: str) -> None:
        super().__init__(f"No {what} found", 404)


@dataclass(frozen=True)
class FieldProblem:
    """One invalid field, in both of Buildkite's forms: prose and ``{field, code}``."""

    field: str
    code: str  # "missing" or "invalid", as Buildkite's structured errors say
    text: str  # e.g. "can't be blank"

    def sentence(self) -> str:
        return f"{self.field.replace('_', ' ').capitalize()} {self.text}"


class ValidationFailed(AppError):
    def __init__(self, problems: list[FieldProblem]) -> None:
        message = "Validation failed: " + ", ".join(p.sentence() for p in problems)
        errors = [{"field": p.field, "code": p.code} for p in problems]
        super().__init__(message, 422, extra={"errors": errors})
        self.problems = problems


def already_taken(field: str) -> ValidationFailed:
    """The loser of a uniqueness race, or a plain duplicate: Buildkite's wording."""
    return ValidationFailed([FieldProblem(field, "already_exists", "has already been taken")])
