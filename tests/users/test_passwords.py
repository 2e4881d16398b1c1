"""Console passwords (``UserService.set_password`` / ``verify_password``) on the real
database: argon2id hashes, bounds, one verification per attempt whatever the email, and
hashes upgraded when argon2-cffi's parameters grow."""

from datetime import UTC, datetime, timedelta
from typing import Literal

import pytest
from argon2 import PasswordHasher
from sqlalchemy import select, update

from registry_tokens.kit.errors import AppError, NotFound, ValidationFailed
from registry_tokens.services import Services
from registry_tokens.users import passwords
from registry_tokens.users.models import User
from tests.harness import Seeder

PASSWORD = "correct horse battery"


@pytest.fixture
def services(seeder: Seeder) -> Services:
    return seeder.services


@pytest.fixture
def email(seeder: Seeder) -> str:
    return seeder.tenant().email


class CountingHasher(PasswordHasher):
    """argon2-cffi's hasher, with today's parameters, noting each hash it verifies
    against (every verification still runs in full)."""

    def __init__(self) -> None:
        super().__init__()
        self.verified: list[str] = []

    def verify(self, hash: str | bytes, password: str | bytes) -> Literal[True]:
        self.verified.append(hash if isinstance(hash, str) else hash.decode())
        return super().verify(hash, password)


@pytest.fixture
def verifications(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The hashes argon2 verifies against from here on."""
    hasher = CountingHasher()
    monkeypatch.setattr(passwords, "_hasher", hasher)
    return hasher.verified


def stored_hash(services: Services, email: str) -> str | None:
    with services.database.reading() as session:
        return session.scalar(select(User.password_hash).where(User.email == email))


def test_a_set_password_verifies_and_is_stored_as_argon2id_only(
    services: Services, email: str
) -> None:
    before = datetime.now(UTC)
    user = services.users.set_password(email, PASSWORD)
    assert user.email == email
    assert user.password_changed_at is not None
    assert before - timedelta(seconds=1) <= user.password_changed_at <= datetime.now(UTC)
    stored = stored_hash(services, email)
    assert stored is not None
    assert stored.startswith("$argon2id$")
    assert PASSWORD not in stored
    assert not passwords.needs_rehash(stored)

    verified = services.users.verify_password(email, PASSWORD)
    assert verified is not None
    assert verified.id == user.id
    # The email as people type it: any case, spaces around it.
    assert services.users.verify_password(f"  {email.upper()} ", PASSWORD) is not None


def test_a_new_password_replaces_the_old_one(services: Services, email: str) -> None:
    first = services.users.set_password(email, PASSWORD)
    second = services.users.set_password(email, PASSWORD + " staple")
    assert first.password_changed_at is not None
    assert second.password_changed_at is not None
    assert second.password_changed_at >= first.password_changed_at
    assert services.users.verify_password(email, PASSWORD) is None
    assert services.users.verify_password(email, PASSWORD + " staple") is not None


@pytest.mark.parametrize(
    ("password", "message"),
    [
        ("", "Validation failed: Password is too short (minimum is 12 characters)"),
        ("x" * 11, "Validation failed: Password is too short (minimum is 12 characters)"),
        ("x" * 1025, "Validation failed: Password is too long (maximum is 1024 characters)"),
        # NFKC lengthens U+FDFA to 18 characters: the bound is on the normalized text too.
        ("\ufdfa" * 60, "Validation failed: Password is too long (maximum is 1024 characters)"),
    ],
)
def test_passwords_out_of_bounds_are_refused_with_a_422(
    services: Services, email: str, password: str, message: str
) -> None:
    with pytest.raises(ValidationFailed) as refused:
        services.users.set_password(email, password)
    assert refused.value.status == 422
    assert refused.value.message == message
    assert refused.value.body()["errors"] == [{"field": "password", "code": "invalid"}]
    assert stored_hash(services, email) is None


@pytest.mark.parametrize("length", [12, 1024])
def test_passwords_at_the_bounds_are_accepted(services: Services, email: str, length: int) -> None:
    password = ("abc" * 400)[:length]
    services.users.set_password(email, password)
    assert services.users.verify_password(email, password) is not None
    assert services.users.verify_password(email, password[:-1]) is None


def test_an_unknown_email_is_not_found(services: Services) -> None:
    with pytest.raises(NotFound) as missing:
        services.users.set_password("nobody@example.test", PASSWORD)
    assert missing.value.status == 404
    assert missing.value.message == "No user found"
    with pytest.raises(AppError) as malformed:
        services.users.set_password("not an email", PASSWORD)
    assert malformed.value.status == 422


def test_every_refusal_is_none_and_costs_one_verification(
    services: Services, seeder: Seeder, email: str, verifications: list[str]
) -> None:
    services.users.set_password(email, PASSWORD)
    stored = stored_hash(services, email)
    without_password = seeder.tenant().email
    attempts = {
        "wrong password": (email, PASSWORD + "!"),
        "unknown email": ("nobody-at-all@example.test", PASSWORD),
        "no password set": (without_password, PASSWORD),
        "not an email": ("not an email", PASSWORD),
    }
    for case, (address, password) in attempts.items():
        verifications.clear()
        assert services.users.verify_password(address, password) is None, case
        assert len(verifications) == 1, case
    # The stand-in for a missing hash is a real argon2id hash with today's parameters.
    verifications.clear()
    services.users.verify_password("nobody-at-all@example.test", PASSWORD)
    (dummy,) = verifications
    assert dummy != stored
    assert dummy.startswith("$argon2id$")
    assert not passwords.needs_rehash(dummy)


def test_an_over_long_password_is_refused_before_any_hashing(
    services: Services, email: str, verifications: list[str]
) -> None:
    services.users.set_password(email, PASSWORD)
    for password in (PASSWORD + "x" * 1024, "x" * 5_000_000):
        assert services.users.verify_password(email, password) is None
    assert verifications == []


def test_the_same_characters_typed_differently_are_the_same_password(
    services: Services, email: str
) -> None:
    precomposed = "mot de passe caf\u00e9 \uff21"  # é as one code point, a fullwidth A
    services.users.set_password(email, precomposed)
    assert services.users.verify_password(email, "mot de passe cafe\u0301 A") is not None


def test_a_hash_with_weaker_parameters_is_upgraded_at_sign_in(
    services: Services, email: str
) -> None:
    user = services.users.set_password(email, PASSWORD)
    weak = PasswordHasher(time_cost=1, memory_cost=8 * 1024, parallelism=1).hash(PASSWORD)
    with services.database.writing() as session:
        session.execute(update(User).where(User.id == user.id).values(password_hash=weak))
    assert passwords.needs_rehash(weak)

    assert services.users.verify_password(email, "not " + PASSWORD) is None
    assert stored_hash(services, email) == weak  # only a successful sign-in rehashes

    assert services.users.verify_password(email, PASSWORD) is not None
    upgraded = stored_hash(services, email)
    assert upgraded is not None
    assert upgraded != weak
    assert not passwords.needs_rehash(upgraded)
    assert services.users.verify_password(email, PASSWORD) is not None


def test_a_stored_value_that_is_no_hash_matches_nothing(services: Services, email: str) -> None:
    user = services.users.set_password(email, PASSWORD)
    with services.database.writing() as session:
        session.execute(update(User).where(User.id == user.id).values(password_hash="garbage"))
    assert services.users.verify_password(email, PASSWORD) is None
    assert services.users.verify_password(email, "garbage") is None


def test_generated_passwords_are_long_random_and_acceptable() -> None:
    generated = {passwords.generate_password() for _ in range(100)}
    assert len(generated) == 100
    for password in generated:
        assert len(password) == 24
        assert passwords.acceptable(password) == password
