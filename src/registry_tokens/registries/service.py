"""Registries: created by administrators (the Registries API arrives later), read by callers."""

from enum import StrEnum

from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from registry_tokens.auth.caller import Caller
from registry_tokens.auth.scopes import Scope
from registry_tokens.db import Database
from registry_tokens.kit import validation
from registry_tokens.kit.errors import FieldProblem, NotFound, ValidationFailed
from registry_tokens.organizations.repository import OrganizationRepository
from registry_tokens.organizations.service import visible_organization
from registry_tokens.registries.models import Registry
from registry_tokens.registries.repository import RegistryRepository


class Ecosystem(StrEnum):
    """The package ecosystems Buildkite Package Registries knows."""

    PYTHON = "python"
    JAVASCRIPT = "javascript"
    RUBY = "ruby"
    JAVA = "java"
    CONTAINER = "container"
    HELM = "helm"
    DEBIAN = "debian"
    REDHAT = "redhat"
    ALPINE = "alpine"
    TERRAFORM = "terraform"
    SWIFT = "swift"
    NUGET = "nuget"
    FILES = "files"


def visible_registry(
    session: Session, caller: Caller, organization_slug: str, registry_slug: str
) -> Registry:
    organization = visible_organization(session, caller, organization_slug)
    registry = RegistryRepository(session).get_by_slug(organization.id, registry_slug)
    if registry is None:
        raise NotFound("registry")
    return registry


class RegistryService:
    def __init__(self, database: Database) -> None:
        self.database = database

    def get(self, caller: Caller, organization_slug: str, registry_slug: str) -> Registry:
        caller.require(Scope.READ_REGISTRIES)
        with self.database.read() as session:
            return visible_registry(session, caller, organization_slug, registry_slug)

    def create(
        self,
        organization_slug: str,
        name: str,
        *,
        slug: str | None = None,
        ecosystem: Ecosystem = Ecosystem.PYTHON,
        description: str | None = None,
        public: bool = False,
    ) -> Registry:
        name = validation.require_text("name", name, max_length=255)
        slug = validation.registry_slug(slug if slug is not None else validation.slugify(name))
        if description is not None:
            description = validation.require_text("description", description, max_length=4096)
        try:
            with self.database.write() as session:
                organization = OrganizationRepository(session).get_by_slug(organization_slug)
                if organization is None:
                    raise NotFound("organization")
                registries = RegistryRepository(session)
                if registries.get_by_slug(organization.id, slug) is not None:
                    raise _slug_taken()
                registry = Registry(
                    organization=organization,
                    slug=slug,
                    name=name,
                    ecosystem=ecosystem.value,
                    description=description,
                    public=public,
                )
                registries.add(registry)
        except IntegrityError as exc:
            raise _slug_taken() from exc
        return registry

    def get_or_create(self, organization_slug: str, name: str, slug: str) -> Registry:
        with self.database.read() as session:
            organization = OrganizationRepository(session).get_by_slug(organization_slug)
            if organization is not None:
                existing = RegistryRepository(session).get_by_slug(organization.id, slug)
                if existing is not None:
                    return existing
        return self.create(organization_slug, name, slug=slug)


def _slug_taken() -> ValidationFailed:
    return ValidationFailed([FieldProblem("slug", "already_exists", "has already been taken")])
