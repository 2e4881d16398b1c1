"""Registry tokens: the five operations of the spec, with their authorization."""

import uuid
from dataclasses import dataclass

from registry_tokens.auth.caller import Caller
from registry_tokens.auth.scopes import Scope
from registry_tokens.db import Database
from registry_tokens.kit.errors import NotFound, ValidationFailed
from registry_tokens.kit.pagination import Page, PageRequest
from registry_tokens.kit.secrets import SecretKind, generate_secret, hash_secret
from registry_tokens.kit.timestamps import utcnow
from registry_tokens.kit.validation import OMITTED, text_problem
from registry_tokens.registries.service import visible_registry
from registry_tokens.registry_tokens.models import RegistryToken
from registry_tokens.registry_tokens.repository import RegistryTokenRepository
from registry_tokens.registry_tokens.schemas import DESCRIPTION_MAX_LENGTH
from registry_tokens.users.repository import UserRepository


@dataclass(frozen=True)
class CreatedRegistryToken:
    token: RegistryToken
    secret: str  # shown once in the create response, never stored


class RegistryTokenService:
    def __init__(self, database: Database, secret_key: bytes) -> None:
        self.database = database
        self.secret_key = secret_key

    def create(
        self, caller: Caller, org: str, registry: str, description: object
    ) -> CreatedRegistryToken:
        caller.require(Scope.WRITE_REGISTRIES)
        checked_description = _description(description)
        secret = generate_secret(SecretKind.REGISTRY_TOKEN)
        with self.database.write() as session:
            found_registry = visible_registry(session, caller, org, registry)
            creator = UserRepository(session).get(caller.user_id)
            assert creator is not None  # memberships and tokens cascade with their user
            token = RegistryToken(
                package_registry=found_registry,
                description=checked_description,
                secret_hash=hash_secret(self.secret_key, secret),
                created_by=creator,
            )
            token.updated_at = token.created_at
            RegistryTokenRepository(session).add(token)
        return CreatedRegistryToken(token=token, secret=secret)

    def list(
        self, caller: Caller, org: str, registry: str, request: PageRequest
    ) -> Page[RegistryToken]:
        caller.require(Scope.READ_REGISTRIES)
        with self.database.read() as session:
            found_registry = visible_registry(session, caller, org, registry)
            tokens = RegistryTokenRepository(session)
            return Page(
                items=tokens.page(found_registry.id, request),
                request=request,
                total=tokens.count(found_registry.id),
            )

    def get(self, caller: Caller, org: str, registry: str, token_id: str) -> RegistryToken:
        caller.require(Scope.READ_REGISTRIES)
        with self.database.read() as session:
            found_registry = visible_registry(session, caller, org, registry)
            return _existing(RegistryTokenRepository(session), found_registry.id, token_id)

    def update(
        self, caller: Caller, org: str, registry: str, token_id: str, description: object
    ) -> RegistryToken:
        """Changes what the body names; an absent ``description`` leaves it as it is."""
        caller.require(Scope.WRITE_REGISTRIES)
        new_description = None if description is OMITTED else _description(description)
        with self.database.write() as session:
            found_registry = visible_registry(session, caller, org, registry)
            token = _existing(RegistryTokenRepository(session), found_registry.id, token_id)
            if new_description is not None and new_description != token.description:
                token.description = new_description
                token.updated_at = utcnow()
        return token

    def delete(self, caller: Caller, org: str, registry: str, token_id: str) -> None:
        """Deletes the token: from this commit on, its secret authenticates nothing."""
        caller.require(Scope.WRITE_REGISTRIES)
        with self.database.write() as session:
            found_registry = visible_registry(session, caller, org, registry)
            parsed = _parse_id(token_id)
            if parsed is None or not RegistryTokenRepository(session).delete(
                found_registry.id, parsed
            ):
                raise NotFound("registry token")


def _description(value: object) -> str:
    problem = text_problem("description", value, max_length=DESCRIPTION_MAX_LENGTH)
    if problem is not None:
        raise ValidationFailed([problem])
    assert isinstance(value, str)
    return value


def _parse_id(token_id: str) -> uuid.UUID | None:
    try:
        return uuid.UUID(token_id)
    except ValueError:
        return None


def _existing(
    tokens: RegistryTokenRepository, registry_id: uuid.UUID, token_id: str
) -> RegistryToken:
    parsed = _parse_id(token_id)
    token = tokens.get(registry_id, parsed) if parsed is not None else None
    if token is None:
        raise NotFound("registry token")
    return token
