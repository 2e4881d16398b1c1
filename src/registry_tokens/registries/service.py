"""Registries: the Registries API, and creation by administrators from the CLI."""

from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from typing import Protocol

from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from registry_tokens.db import Database
from registry_tokens.kit import validation
from registry_tokens.kit.context import Caller, RequestContext, Scope
from registry_tokens.kit.errors import FieldProblem, NotFound, ValidationFailed, already_taken
from registry_tokens.kit.pagination import Page, PageRequest
from registry_tokens.organizations.models import Organization
from registry_tokens.organizations.repository import OrganizationRepository
from registry_tokens.organizations.service import administered_organization, visible_organization
from registry_tokens.registries.models import Registry
from registry_tokens.registries.repository import (
    MEMBER_REGISTRY,
    REGISTRY_BY_SLUGS,
    REGISTRY_COUNT,
    REGISTRY_PAGE,
    RegistryRepository,
    RegistryRow,
    page_values,
)
from registry_tokens.registries.requests import Ecosystem as Ecosystem
from registry_tokens.registries.requests import RegistryCreate, RegistryUpdate


def visible_registry(
    database: Database,
    caller: Caller,
    organization_slug: str,
    registry_slug: str,
    session: Session | None = None,
) -> RegistryRow:
    """The registry if the caller may see its organization: one query when it exists.

    ``session``: ask inside that (write) transaction rather than in one of its own.
    """
    if caller.registry_id is not None:  # an OIDC token: its own registry, nothing else
        found = database.ask(
            REGISTRY_BY_SLUGS,
            session,
            organization_slug=organization_slug,
            registry_slug=registry_slug,
        )
        if found and found[0].id == caller.registry_id:
            return found[0]
        raise NotFound("registry")
    rows = database.ask(
        MEMBER_REGISTRY,
        session,
        organization_slug=organization_slug,
        registry_slug=registry_slug,
        user_id=caller.user,
    )
    if rows and caller.may_act_in(rows[0].organization_id):
        return rows[0]
    visible_organization(database, caller, organization_slug, session)  # "No organization"?
    raise NotFound("registry")


class DeletionStep(Protocol):
    """What another domain does when a registry is deleted, inside the deleting
    transaction (before the registry's row goes); it may return work to run once the
    deletion has committed (e.g. removing files)."""

    def __call__(
        self, session: Session, registry: RegistryRow, caller: Caller, context: RequestContext
    ) -> Callable[[], None] | None: ...


class RegistryService:
    def __init__(self, database: Database, deletion_steps: Sequence[DeletionStep] = ()) -> None:
        self.database = database
        # Registry tokens and packages live under a registry and depend on this domain,
        # so they take part in its deletion through steps given at assembly (services.py).
        self.deletion_steps = list(deletion_steps)

    def get(self, caller: Caller, organization_slug: str, registry_slug: str) -> RegistryRow:
        caller.require(Scope.READ_REGISTRIES)
        return visible_registry(self.database, caller, organization_slug, registry_slug)

    def list(
        self, caller: Caller, organization_slug: str, request: PageRequest
    ) -> Page[RegistryRow]:
        caller.require(Scope.READ_REGISTRIES)
        organization = visible_organization(self.database, caller, organization_slug)
        values = page_values(organization.id, request)
        return Page(
            items=self.database.fetch(REGISTRY_PAGE, **values),
            request=request,
            total=self.database.fetch(REGISTRY_COUNT, organization_id=organization.id)[0].total,
        )

    def create_for(
        self, caller: Caller, organization_slug: str, body: RegistryCreate
    ) -> RegistryRow:
        """The API's create: ``name`` and ``ecosystem`` required, the slug from the name."""
        caller.require(Scope.WRITE_REGISTRIES)
        fields = body.fields()
        with _unique_slug(), self.database.writing() as session:
            organization = administered_organization(
                self.database, caller, organization_slug, session
            )
            found = OrganizationRepository(session).get_by_slug(organization.slug)
            assert found is not None  # just read in this transaction
            return RegistryRow.of(self._insert(session, found, fields))

    def update(
        self,
        caller: Caller,
        organization_slug: str,
        registry_slug: str,
        body: RegistryUpdate,
    ) -> RegistryRow:
        """Changes the fields sent; the slug stays, so every URL keeps working."""
        caller.require(Scope.WRITE_REGISTRIES)
        fields = body.fields()
        with self.database.writing() as session:
            registry = self._administered(session, caller, organization_slug, registry_slug)
            for field, value in fields.items():
                setattr(registry, field, value)
            return RegistryRow.of(registry)

    def delete(
        self,
        caller: Caller,
        organization_slug: str,
        registry_slug: str,
        context: RequestContext,
    ) -> None:
        """Deletes the registry with its tokens and packages: all unusable from the commit."""
        caller.require(Scope.DELETE_REGISTRIES)
        after_commit = []
        with self.database.writing() as session:
            registry = self._administered(session, caller, organization_slug, registry_slug)
            row = RegistryRow.of(registry)
            for step in self.deletion_steps:
                then = step(session, row, caller, context)
                if then is not None:
                    after_commit.append(then)
            RegistryRepository(session).delete(registry)
        # Only once the rows are gone: a crash before this leaves orphans, never dangling rows.
        for then in after_commit:
            then()

    def _administered(
        self, session: Session, caller: Caller, organization_slug: str, registry_slug: str
    ) -> Registry:
        """The registry, locked, if the caller administers its organization."""
        administered_organization(self.database, caller, organization_slug, session)
        found = visible_registry(self.database, caller, organization_slug, registry_slug, session)
        registry = RegistryRepository(session).lock(found.id)
        if registry is None:  # deleted since the lookup, in another transaction
            raise NotFound("registry")
        return registry

    def create(
        self,
        organization_slug: str,
        name: str,
        *,
        slug: str | None = None,
        ecosystem: Ecosystem = Ecosystem.PYTHON,
        description: str | None = None,
        public: bool = False,
    ) -> RegistryRow:
        """The admin CLI's create: no caller, any organization, an optional explicit slug."""
        data = {"name": name, "ecosystem": ecosystem, "description": description, "public": public}
        fields = validation.validated(RegistryCreate, data).fields()  # the API's rules
        if slug is not None:
            fields["slug"] = validation.registry_slug(slug)
        with _unique_slug(), self.database.writing() as session:
            organization = OrganizationRepository(session).get_by_slug(organization_slug)
            if organization is None:
                raise NotFound("organization")
            return RegistryRow.of(self._insert(session, organization, fields))

    def get_or_create(self, organization_slug: str, name: str, slug: str) -> RegistryRow:
        with self.database.reading() as session:
            organization = OrganizationRepository(session).get_by_slug(organization_slug)
            if organization is not None:
                existing = RegistryRepository(session).get_by_slug(organization.id, slug)
                if existing is not None:
                    return RegistryRow.of(existing)
        return self.create(organization_slug, name, slug=slug)

    def _insert(
        self, session: Session, organization: Organization, fields: dict[str, object]
    ) -> Registry:
        fields.setdefault("slug", _slug_from_name(str(fields["name"])))
        registries = RegistryRepository(session)
        if registries.get_by_slug(organization.id, str(fields["slug"])) is not None:
            raise already_taken("slug")
        registry = Registry(organization=organization, **fields)
        registries.add(registry)
        return registry


@contextmanager
def _unique_slug() -> Iterator[None]:
    """A concurrent create that won the race on the slug becomes the usual 422."""
    try:
        yield
    except IntegrityError as exc:
        raise already_taken("slug") from exc


def _slug_from_name(name: str) -> str:
    slug = validation.slugify(name)
    if not slug:
        raise ValidationFailed(
            [FieldProblem("name", "invalid", "must contain a letter or digit (it names the slug)")]
        )
    return validation.registry_slug(slug)
