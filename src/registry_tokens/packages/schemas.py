import uuid
from typing import Any

from pydantic import BaseModel

from registry_tokens.kit.cursor import CursorLinks
from registry_tokens.kit.ids import graphql_id
from registry_tokens.kit.schemas import ResponseModel, Timestamp
from registry_tokens.kit.urls import Urls
from registry_tokens.packages.metadata import wheel_tags
from registry_tokens.packages.models import Package
from registry_tokens.registries.repository import RegistryRow
from registry_tokens.registries.schemas import RegistryOut

# The PyPI JSON API's names for the two kinds of file (``packagetype``).
_PACKAGE_TYPES = {"wheel": "bdist_wheel", "sdist": "sdist"}


class Digests(BaseModel):
    sha256: str
    sha512: str


class PackageOrganization(ResponseModel):
    """The organization as Buildkite embeds it in a package."""

    id: uuid.UUID
    graphql_id: str
    slug: str
    url: str
    web_url: str


class PackageOut(ResponseModel):
    """A package as Buildkite's Packages API (and go-buildkite's ``Package``) has it, with
    the whole registry; every endpoint that answers with packages renders them here."""

    id: uuid.UUID
    url: str
    web_url: str
    name: str
    created_at: Timestamp
    version: str
    variant: str | None
    metadata: dict[str, Any]
    digests: Digests
    organization: PackageOrganization
    registry: RegistryOut

    @classmethod
    def of(cls, package: Package, registry: RegistryRow, urls: Urls) -> "PackageOut":
        org = registry.organization_slug
        return cls(
            id=package.id,
            url=urls.package(org, registry.slug, package.id),
            web_url=urls.package_web(org, registry.slug, package.id),
            name=package.name,
            created_at=package.created_at,
            version=package.version,
            variant=wheel_tags(package.filename),
            metadata={
                "filename": package.filename,
                "packagetype": _PACKAGE_TYPES.get(package.kind, package.kind),
                "size": package.size,
                "requires_python": package.requires_python,
                "summary": package.summary,
            },
            digests=Digests(sha256=package.sha256, sha512=package.sha512),
            organization=PackageOrganization(
                id=registry.organization_id,
                graphql_id=graphql_id("Organization", registry.organization_id),
                slug=org,
                url=urls.organization(org),
                web_url=urls.organization_web(org),
            ),
            registry=RegistryOut.of(registry, urls),
        )


class PackageList(BaseModel):
    """Buildkite's cursor-paginated list: ``items`` newest first, and ``links``."""

    items: list[PackageOut]
    links: CursorLinks


class PresignedUploadForm(BaseModel):
    file_input: str
    method: str
    url: str
    data: dict[str, str]


class PresignedUploadOut(BaseModel):
    """go-buildkite's ``PackagePresignedUpload``: post ``form.data`` and the file (under
    ``form.file_input``) to ``form.url``, then finalize with ``package_url``."""

    uri: str
    form: PresignedUploadForm
