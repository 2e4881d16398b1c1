import uuid

from pydantic import BaseModel

from registry_tokens.kit.cursor import CursorLinks
from registry_tokens.kit.schemas import ResponseModel, Timestamp
from registry_tokens.kit.urls import Urls
from registry_tokens.organizations.schemas import OrganizationRef
from registry_tokens.packages.models import Package
from registry_tokens.registries.repository import RegistryRow
from registry_tokens.registries.schemas import RegistryRef


class Digests(BaseModel):
    sha256: str
    sha512: str


class PackageOut(ResponseModel):
    id: uuid.UUID
    url: str
    web_url: str
    name: str
    created_at: Timestamp
    version: str
    digests: Digests
    organization: OrganizationRef
    registry: RegistryRef

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
            digests=Digests(sha256=package.sha256, sha512=package.sha512),
            organization=OrganizationRef.of(registry.organization_id, org, urls),
            registry=RegistryRef.of(registry, urls),
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
