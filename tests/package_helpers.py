"""Helpers shared by the registries, packages and pip tests: paths, uploads, disk state."""

import base64
import uuid
from pathlib import Path
from typing import Any

import httpx

from registry_tokens.organizations.models import Role
from registry_tokens.packages.storage import package_location
from tests.harness import Seeder, Server, Tenant
from tests.object_store import StoredObject, objects, stored_object

ALL_REGISTRY_SCOPES = (
    "read_registries",
    "write_registries",
    "delete_registries",
    "read_packages",
    "write_packages",
    "delete_packages",
)


def registries_path(org: str) -> str:
    return f"/v2/packages/organizations/{org}/registries"


def registry_path(org: str, registry: str) -> str:
    return f"{registries_path(org)}/{registry}"


def packages_path(org: str, registry: str) -> str:
    return f"{registry_path(org, registry)}/packages"


def tokens_path(org: str, registry: str) -> str:
    return f"{registry_path(org, registry)}/tokens"


def simple_path(org: str, registry: str) -> str:
    return f"/{org}/{registry}/pypi/simple/"


def bearer(secret: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {secret}"}


def basic(secret: str, user: str = "buildkite") -> dict[str, str]:
    encoded = base64.b64encode(f"{user}:{secret}".encode()).decode()
    return {"Authorization": f"Basic {encoded}"}


def admin_tenant(seeder: Seeder, scopes: tuple[str, ...] = ALL_REGISTRY_SCOPES) -> Tenant:
    """A tenant whose user administers its organization, with a token of ``scopes``."""
    tenant = seeder.tenant(scopes=scopes)
    seeder.services.organizations.add_member(tenant.org, tenant.email, Role.ADMIN)
    return tenant


def publish(
    client: httpx.Client,
    org: str,
    registry: str,
    secret: str,
    path: Path | None = None,
    *,
    filename: str | None = None,
    content: bytes | None = None,
) -> httpx.Response:
    """POSTs a file as the multipart field ``file``, as curl ``-F file=@…`` does."""
    data = content if content is not None else path.read_bytes() if path else b""
    name = filename or (path.name if path else "upload.bin")
    return client.post(
        packages_path(org, registry),
        headers=bearer(secret),
        files={"file": (name, data, "application/octet-stream")},
    )


def published(
    client: httpx.Client, org: str, registry: str, secret: str, path: Path
) -> dict[str, Any]:
    response = publish(client, org, registry, secret, path)
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


def create_registry_token(
    client: httpx.Client, org: str, registry: str, secret: str, description: str = "pip"
) -> dict[str, Any]:
    """Creates a registry token through the API; the body carries the secret as ``token``."""
    response = client.post(
        tokens_path(org, registry), headers=bearer(secret), json={"description": description}
    )
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    assert body["token"].startswith("bkpt_")
    return body


def storage_dir(server: Server) -> Path:
    """Where the server keeps package files, or with a bucket stages them (``package_server``
    always configures it)."""
    configured = server.env.get("REGISTRY_TOKENS_PACKAGE_STORAGE_DIR")
    assert configured, "use the package_server fixture, or set the storage directory"
    return Path(configured)


def stored_files(root: Path) -> dict[Path, bytes]:
    """Every file under a storage directory, staging area included, with its bytes."""
    if not root.exists():
        return {}
    return {path: path.read_bytes() for path in sorted(root.rglob("*")) if path.is_file()}


def stored(server: Server) -> dict[str, bytes]:
    """Every file the server keeps, staged ones included: its directory's, and its
    bucket's objects when it has one."""
    files = {str(path): content for path, content in stored_files(storage_dir(server)).items()}
    bucket = server.env.get("REGISTRY_TOKENS_PACKAGE_STORAGE_URL")
    return {**files, **(objects(bucket) if bucket else {})}


def package_file(server: Server, sha256: str, package_id: str) -> "Path | StoredObject":
    """The file the storage layout promises for a package: addressed by digest, owned by id
    (in the server's bucket, when it has one)."""
    relative = package_location(sha256, uuid.UUID(package_id))
    bucket = server.env.get("REGISTRY_TOKENS_PACKAGE_STORAGE_URL")
    if bucket:
        return stored_object(bucket, relative)
    return storage_dir(server) / relative


def staged_files(server: Server) -> list[str]:
    """Presigned uploads' files waiting for their finalize, on disk or in the bucket."""
    tmp = storage_dir(server) / "tmp"
    local = sorted(str(path) for path in tmp.iterdir()) if tmp.exists() else []
    bucket = server.env.get("REGISTRY_TOKENS_PACKAGE_STORAGE_URL")
    return local + sorted(objects(bucket, "tmp/") if bucket else [])


def list_all_packages(
    client: httpx.Client, org: str, registry: str, secret: str
) -> list[dict[str, Any]]:
    """Every package of a registry, newest first, walking ``links.next``."""
    items: list[dict[str, Any]] = []
    url: str | None = f"{packages_path(org, registry)}?per_page=100"
    while url is not None:
        response = client.get(url, headers=bearer(secret))
        assert response.status_code == 200, response.text
        items.extend(response.json()["items"])
        url = response.json()["links"]["next"]
    return items
