"""Registries: the Registries API, and creation by administrators from the CLI."""

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from enum import StrEnum

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from registry_tokens.audit.service import EventType, RequestContext, record, user_actor
from registry_tokens.auth.caller import Caller
from registry_tokens.auth.scopes import Scope
from registry_tokens.db import Database
from registry_tokens.db.prepared import PreparedQuery
from registry_tokens.kit import validation
from registry_tokens.kit.errors import FieldProblem, NotFound, ValidationFailed, already_taken
from registry_tokens.kit.pagination import Page, PageRequest
from registry_tokens.kit.validation import OMITTED
from registry_tokens.organizations.models import Organization
from registry_tokens.organizations.repository import OrganizationRepository
from registry_tokens.organizations.service import administered_organization, visible_organization
from registry_tokens.packages.models import Package
from registry_tokens.packages.storage import FileStore
from registry_tokens.registries.models import Registry
from registry_tokens.registries.repository import (
    OrganizationView,
    RegistryRepository,
    RegistryView,
)
from registry_tokens.registry_tokens.models import RegistryToken


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


NAME_MAX = 255
DESCRIPTION_MAX = 4096
EMOJI_MAX = 100
COLOR_MAX = 50
OIDC_POLICY_MAX = 65_536


@dataclass(frozen=True)
class RegistryChanges:
    """Fields a create or update request sent; ``OMITTED`` for those it left out."""

    name: object = OMITTED
    ecosystem: object = OMITTED
    description: object = OMITTED
    emoji: object = OMITTED
    color: object = OMITTED
    oidc_policy: object = OMITTED
    public: object = OMITTED


def visible_registry(
    session: Session, caller: Caller, organization_slug: str, registry_slug: str
) -> Registry:
    """The registry if the caller may see its organization; one query when it exists."""
    registry = RegistryRepository(session).get_for_member(
        organization_slug, registry_slug, caller.user_id
    )
    if registry is not None and caller.may_act_in(registry.organization_id):
        return registry
    visible_organization(session, caller, organization_slug)  # "No organization found"?
    raise NotFound("registry")


def visible_registry_view(
    database: Database,
    query: PreparedQuery,
    caller: Caller,
    organization_slug: str,
    registry_slug: str,
) -> RegistryView:
    """:func:`visible_registry` for the hot read paths: one prepared query when the
    registry is there; otherwise the ORM path, for its exact "not found" answer."""
    rows = database.fetch(
        query,
        organization_slug=organization_slug,
        registry_slug=registry_slug,
        user_id=caller.user_id,
    )
    if rows and caller.may_act_in(rows[0][2]):
        registry_id, slug, organization_id, organization, tokens_version = rows[0]
        return RegistryView(
            registry_id, slug, OrganizationView(organization_id, organization), tokens_version
        )
    with database.read() as session:
        visible_registry(session, caller, organization_slug, registry_slug)
    raise NotFound("registry")  # not reached unless it appeared in between


class RegistryService:
    def __init__(self, database: Database, files: FileStore) -> None:
        self.database = database
        self.files = files

    def get(self, caller: Caller, organization_slug: str, registry_slug: str) -> Registry:
        caller.require(Scope.READ_REGISTRIES)
        with self.database.read() as session:
            return visible_registry(session, caller, organization_slug, registry_slug)

    def list(self, caller: Caller, organization_slug: str, request: PageRequest) -> Page[Registry]:
        caller.require(Scope.READ_REGISTRIES)
        with self.database.read() as session:
            organization = visible_organization(session, caller, organization_slug)
            registries = RegistryRepository(session)
            return Page(
                items=registries.page(organization.id, request),
                request=request,
                total=registries.count(organization.id),
            )

    def create_for(
        self, caller: Caller, organization_slug: str, changes: RegistryChanges
    ) -> Registry:
        """The API's create: ``name`` and ``ecosystem`` required, the slug from the name."""
        caller.require(Scope.WRITE_REGISTRIES)
        fields = _checked(changes, creating=True)
        with _unique_slug(), self.database.write() as session:
            organization = administered_organization(session, caller, organization_slug)
            return self._insert(session, organization, fields)

    def update(
        self, caller: Caller, organization_slug: str, registry_slug: str, changes: RegistryChanges
    ) -> Registry:
        """Changes the fields sent; the slug stays, so every URL keeps working."""
        caller.require(Scope.WRITE_REGISTRIES)
        fields = _checked(changes, creating=False)
        with self.database.write() as session:
            administered_organization(session, caller, organization_slug)
            registry = visible_registry(session, caller, organization_slug, registry_slug)
            for field, value in fields.items():
                setattr(registry, field, value)
        return registry

    def delete(
        self,
        caller: Caller,
        organization_slug: str,
        registry_slug: str,
        context: RequestContext,
    ) -> None:
        """Deletes the registry with its tokens and packages: all unusable from the commit."""
        caller.require(Scope.DELETE_REGISTRIES)
        with self.database.write() as session:
            administered_organization(session, caller, organization_slug)
            registry = visible_registry(session, caller, organization_slug, registry_slug)
            files = session.execute(
                select(Package.sha256, Package.id).where(Package.registry_id == registry.id)
            ).all()
            actor = user_actor(session, caller)
            live_tokens = session.scalars(
                select(RegistryToken).where(
                    RegistryToken.registry_id == registry.id, RegistryToken.revoked_at.is_(None)
                )
            )
            for token in live_tokens:  # the audit log outlives the registry and its tokens
                record(
                    session,
                    EventType.REGISTRY_TOKEN_DELETED,
                    token,
                    actor,
                    context,
                    {"reason": "registry deleted"},
                )
            RegistryRepository(session).delete(registry)
        # Only once the rows are gone: a crash before this leaves orphans, never dangling rows.
        for sha256, package_id in files:
            self.files.remove(sha256, package_id)

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
        """The admin CLI's create: no caller, any organization, an optional explicit slug."""
        changes = RegistryChanges(
            name=name, ecosystem=ecosystem.value, description=description, public=public
        )
        fields = _checked(changes, creating=True)
        if slug is not None:
            fields["slug"] = validation.registry_slug(slug)
        with _unique_slug(), self.database.write() as session:
            organization = OrganizationRepository(session).get_by_slug(organization_slug)
            if organization is None:
                raise NotFound("organization")
            return self._insert(session, organization, fields)

    def get_or_create(self, organization_slug: str, name: str, slug: str) -> Registry:
        with self.database.read() as session:
            organization = OrganizationRepository(session).get_by_slug(organization_slug)
            if organization is not None:
                existing = RegistryRepository(session).get_by_slug(organization.id, slug)
                if existing is not None:
                    return existing
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


def _checked(changes: RegistryChanges, *, creating: bool) -> dict[str, object]:
    """The fields to store, validated; every problem reported at once."""
    problems: list[FieldProblem] = []
    fields: dict[str, object] = {}

    def text(
        field: str, value: object, max_length: int, *, required: bool, nullable: bool = True
    ) -> None:
        if value is OMITTED:
            if required:
                problems.append(FieldProblem(field, "missing", "can't be blank"))
            return
        if value is None and nullable:
            fields[field] = None
            return
        problem = validation.text_problem(field, value, max_length=max_length)
        if problem is not None:
            problems.append(problem)
        else:
            fields[field] = value

    # An update may leave the name out, never clear it: every registry has one.
    text("name", changes.name, NAME_MAX, required=creating, nullable=False)
    if creating:  # on update, like any field the body does not document, it is ignored
        if changes.ecosystem is OMITTED:
            problems.append(FieldProblem("ecosystem", "missing", "can't be blank"))
        elif not isinstance(changes.ecosystem, str) or changes.ecosystem not in set(Ecosystem):
            known = ", ".join(e.value for e in Ecosystem)
            problems.append(FieldProblem("ecosystem", "invalid", f"must be one of: {known}"))
        else:
            fields["ecosystem"] = changes.ecosystem
    text("description", changes.description, DESCRIPTION_MAX, required=False)
    text("emoji", changes.emoji, EMOJI_MAX, required=False)
    text("color", changes.color, COLOR_MAX, required=False)
    text("oidc_policy", changes.oidc_policy, OIDC_POLICY_MAX, required=False)
    if changes.public is not OMITTED:
        if isinstance(changes.public, bool):
            fields["public"] = changes.public
        else:
            problems.append(FieldProblem("public", "invalid", "must be true or false"))
    if problems:
        raise ValidationFailed(problems)
    return fields
