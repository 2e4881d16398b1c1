"""``PackagesService.Copy`` of Buildkite's Go client (go-buildkite v5), request for request.

From ``packages.go``: ``Copy(ctx, org, sourceRegistry, packageID, destinationRegistry)`` is
``NewRequest("POST", u, nil)`` with ``u`` =
``v2/packages/organizations/{org}/registries/{source}/packages/{id}/copy?to={destination}``,
and ``Do(req, &p)`` into ``Package{ID id; Name name; Version version; Variant *string variant;
Metadata map[string]any metadata; URL url; WebURL web_url; Organization Organization
organization; Registry PackageRegistry registry}``. A nil body sends no ``Content-Type``;
``net/http`` sends ``Content-Length: 0`` for a POST without one (httpx does the same).
``Get`` and ``Delete`` are GET and DELETE of ``…/packages/{id}`` (``Delete`` with
``Do(req, nil)``). Buildkite's docs ("Copy a package"): required query ``to`` (the
destination registry's slug), scopes ``read_packages, write_packages``, ``200 OK``.

The rest of the client (headers, retries, error bodies, ``encoding/json``) is the model in
``test_go_client_contract.py``, reused here.
"""

import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, cast

import httpx
import pytest

from registry_tokens.registries.service import Ecosystem
from tests.api.test_go_client_contract import (
    GO_REQUEST_HEADERS_WITHOUT_BODY,
    GO_USER_AGENT,
    GoClient,
    GoErrorResponse,
    GoResponse,
    Organization,
    PackageRegistry,
    go_decode,
    go_decoder_decode,
    graphql_id_of,
    tag,
)
from tests.distributions import build_wheel
from tests.harness import Seeder, Server, Tenant, unique
from tests.package_helpers import (
    ALL_REGISTRY_SCOPES,
    admin_tenant,
    basic,
    create_registry_token,
    list_all_packages,
    package_file,
    published,
    simple_path,
    stored,
)


@dataclass
class Package:
    """go-buildkite's ``Package``, ``Variant *string`` and ``Metadata map[string]any``
    included."""

    id: str = field(default="", metadata=tag("id"))
    name: str = field(default="", metadata=tag("name"))
    version: str = field(default="", metadata=tag("version"))
    url: str = field(default="", metadata=tag("url"))
    web_url: str = field(default="", metadata=tag("web_url"))
    organization: Organization = field(default_factory=Organization, metadata=tag("organization"))
    registry: PackageRegistry = field(default_factory=PackageRegistry, metadata=tag("registry"))
    variant: str | None = field(default=None, metadata=tag("variant"))
    metadata: dict[str, Any] | None = field(default=None, metadata=tag("metadata"))


def decode_package(value: object) -> Package:
    return cast(Package, go_decode(Package, value))


class PackagesClient(GoClient):
    """``PackagesService``: Get, Copy and Delete."""

    @staticmethod
    def package_path(org: str, registry: str, package_id: str) -> str:
        return f"v2/packages/organizations/{org}/registries/{registry}/packages/{package_id}"

    def _package(self, request: httpx.Request) -> tuple[Package, GoResponse]:
        result = self._do(request)
        return decode_package(go_decoder_decode(result.http.content)), result

    def packages_get(self, org: str, registry: str, package_id: str) -> tuple[Package, GoResponse]:
        url = self.package_path(org, registry, package_id)
        return self._package(self.new_request("GET", url, None))

    def packages_copy(
        self, org: str, source: str, package_id: str, destination: str
    ) -> tuple[Package, GoResponse]:
        # fmt.Sprintf with %s: the slug goes into the query unescaped, as the client does.
        url = f"{self.package_path(org, source, package_id)}/copy?to={destination}"
        return self._package(self.new_request("POST", url, None))

    def packages_delete(self, org: str, registry: str, package_id: str) -> GoResponse:
        url = self.package_path(org, registry, package_id)
        return self.do_without_body(self.new_request("DELETE", url, None))


def assert_go_copy_request(request: httpx.Request, path: str, to: str) -> None:
    """What ``Copy`` puts on the wire: a POST without a body, so ``Content-Length: 0``."""
    assert request.method == "POST"
    assert request.url.path == f"/{path}/copy"
    assert request.url.query.decode() == f"to={to}"
    assert {name.lower() for name in request.headers} == GO_REQUEST_HEADERS_WITHOUT_BODY | {
        "content-length"
    }
    assert request.headers["content-length"] == "0"
    assert request.headers["user-agent"] == GO_USER_AGENT
    assert request.headers["accept-encoding"] == "gzip"
    assert request.content == b""


# --- Fixtures ------------------------------------------------------------------------------


@dataclass
class Copying:
    tenant: Tenant
    target: str  # a second python registry of the tenant's organization
    wheel: Path
    source: dict[str, Any]  # the published package, as the API answered


@pytest.fixture
def copying(package_seeder: Seeder, package_client: httpx.Client, tmp_path: Path) -> Copying:
    tenant = admin_tenant(package_seeder)
    target = package_seeder.services.registries.create(tenant.org, "Target", slug=unique("reg"))
    wheel = build_wheel(tmp_path, "copied-pkg", "1.2.0", value=uuid.uuid4().hex)
    source = published(package_client, tenant.org, tenant.registry, tenant.tokens["rw"], wheel)
    return Copying(tenant, target.slug, wheel, source)


@pytest.fixture
def go(package_server: Server, copying: Copying) -> Iterator[PackagesClient]:
    client = PackagesClient(package_server, copying.tenant.tokens["rw"])
    yield client
    client.close()


def download(client: httpx.Client, org: str, registry: str, secret: str, name: str) -> bytes:
    """The file pip would fetch: the project's simple page, then its one link."""
    page = client.get(f"{simple_path(org, registry)}{name}/", headers=basic(secret))
    assert page.status_code == 200, page.text
    (href,) = [part.split('"')[1] for part in page.text.split("<a ")[1:]]
    found = client.get(str(httpx.URL(str(page.url)).join(href)), headers=basic(secret))
    assert found.status_code == 200, found.text
    return found.content


# --- Copy ----------------------------------------------------------------------------------


def test_copy_sends_what_go_sends_and_decodes_into_package(
    go: PackagesClient, copying: Copying, package_server: Server, package_client: httpx.Client
) -> None:
    tenant, source = copying.tenant, copying.source
    copy, response = go.packages_copy(tenant.org, tenant.registry, source["id"], copying.target)

    assert_go_copy_request(
        go.sent[-1], go.package_path(tenant.org, tenant.registry, source["id"]), copying.target
    )
    assert response.status == 200
    assert response.attempts == 1
    assert uuid.UUID(copy.id).version == 7
    assert copy.id != source["id"]
    assert (copy.name, copy.version) == ("copied-pkg", "1.2.0")
    assert copy.variant == "py3-none-any"  # the wheel's tags, as its file name spells them
    assert copy.url == (
        f"{package_server.base_url}/{go.package_path(tenant.org, copying.target, copy.id)}"
    )
    assert copy.web_url.startswith("http://web.example.test/")
    assert copy.web_url.endswith(f"/{copying.target}/packages/{copy.id}")
    assert copy.organization.slug == tenant.org
    assert copy.organization.url == f"{package_server.base_url}/v2/organizations/{tenant.org}"
    assert copy.registry.slug == copying.target
    assert graphql_id_of(copy.registry.graphql_id) == f"Registry---{copy.registry.id}"

    # Get decodes the same package from the target; the source is unchanged.
    fetched, _ = go.packages_get(tenant.org, copying.target, copy.id)
    assert fetched == copy
    original, _ = go.packages_get(tenant.org, tenant.registry, source["id"])
    assert original.id == source["id"]
    assert original.registry.slug == tenant.registry

    # The same digests, and the target serves the very bytes that were published.
    raw = package_client.get(
        "/" + go.package_path(tenant.org, copying.target, copy.id), headers=tenant.auth()
    ).json()
    assert raw["digests"] == source["digests"]
    token = create_registry_token(package_client, tenant.org, copying.target, tenant.tokens["rw"])
    served = download(package_client, tenant.org, copying.target, token["token"], "copied-pkg")
    assert served == copying.wheel.read_bytes()
    # Each package owns its file.
    sha256 = source["digests"]["sha256"]
    assert package_file(package_server, sha256, copy.id).read_bytes() == served
    assert package_file(package_server, sha256, source["id"]).read_bytes() == served


def test_deleting_either_package_leaves_the_other_whole(
    go: PackagesClient, copying: Copying, package_server: Server, package_client: httpx.Client
) -> None:
    tenant, source = copying.tenant, copying.source
    copy, _ = go.packages_copy(tenant.org, tenant.registry, source["id"], copying.target)

    deleted = go.packages_delete(tenant.org, tenant.registry, source["id"])
    assert deleted.status == 200
    with pytest.raises(GoErrorResponse) as gone:
        go.packages_get(tenant.org, tenant.registry, source["id"])
    assert (gone.value.status, gone.value.message) == (404, "No package found")
    sha256 = source["digests"]["sha256"]
    assert not package_file(package_server, sha256, source["id"]).exists()

    fetched, _ = go.packages_get(tenant.org, copying.target, copy.id)
    assert fetched == copy
    token = create_registry_token(package_client, tenant.org, copying.target, tenant.tokens["rw"])
    served = download(package_client, tenant.org, copying.target, token["token"], "copied-pkg")
    assert served == copying.wheel.read_bytes()


def test_refused_copies_answer_go_errors_and_store_nothing(
    go: PackagesClient,
    copying: Copying,
    package_seeder: Seeder,
    package_server: Server,
    package_client: httpx.Client,
) -> None:
    tenant, source = copying.tenant, copying.source
    ruby = package_seeder.services.registries.create(
        tenant.org, "Gems", slug=unique("reg"), ecosystem=Ecosystem.RUBY
    )
    stranger = admin_tenant(package_seeder)  # another organization
    before = stored(package_server)
    read_only = package_seeder.api_token(tenant.email, ("read_packages",))
    write_only = package_seeder.api_token(tenant.email, ("write_packages",))
    limited = package_seeder.api_token(tenant.email, ALL_REGISTRY_SCOPES, orgs=(stranger.org,))

    def refused(
        token: str, registry: str, package_id: str, to: str, *, org: str = tenant.org
    ) -> tuple[int, str]:
        client = PackagesClient(package_server, token)
        try:
            with pytest.raises(GoErrorResponse) as raised:
                client.packages_copy(org, registry, package_id, to)
        finally:
            client.close()
        return raised.value.status, raised.value.message

    rw = tenant.tokens["rw"]
    missing = str(uuid.uuid4())
    assert refused(rw, tenant.registry, source["id"], "no-such-registry") == (
        404,
        "No registry found",
    )
    assert refused(rw, tenant.registry, missing, copying.target) == (404, "No package found")
    assert refused(rw, tenant.registry, "not-a-uuid", copying.target) == (404, "No package found")
    assert refused(rw, "no-such-registry", source["id"], copying.target) == (
        404,
        "No registry found",
    )
    # The source package in another organization is invisible, as is that organization.
    assert refused(stranger.tokens["rw"], tenant.registry, source["id"], copying.target)[0] == 404
    assert refused(limited, tenant.registry, source["id"], copying.target)[0] == 404
    assert refused(read_only, tenant.registry, source["id"], copying.target) == (
        403,
        "Your access token doesn't have the write_packages scope",
    )
    assert refused(write_only, tenant.registry, source["id"], copying.target) == (
        403,
        "Your access token doesn't have the read_packages scope",
    )
    status, message = refused(rw, tenant.registry, source["id"], ruby.slug)
    assert status == 422
    assert message.startswith(f"Validation failed: {ruby.slug} is a ruby registry")
    # Into its own registry, the file is already there.
    assert refused(rw, tenant.registry, source["id"], tenant.registry) == (
        409,
        f"{copying.wheel.name} is already published in this registry",
    )
    # An empty destination is a validation error, not a registry lookup.
    assert refused(rw, tenant.registry, source["id"], "") == (
        422,
        "Validation failed: To can't be blank",
    )

    assert stored(package_server) == before
    assert list_all_packages(package_client, tenant.org, copying.target, rw) == []
    assert list_all_packages(package_client, tenant.org, ruby.slug, rw) == []


def test_a_second_copy_into_the_same_registry_is_a_conflict(
    go: PackagesClient, copying: Copying, package_server: Server, package_client: httpx.Client
) -> None:
    tenant, source = copying.tenant, copying.source
    copy, _ = go.packages_copy(tenant.org, tenant.registry, source["id"], copying.target)
    before = stored(package_server)
    with pytest.raises(GoErrorResponse) as raised:
        go.packages_copy(tenant.org, tenant.registry, source["id"], copying.target)
    assert raised.value.status == 409
    assert raised.value.message == f"{copying.wheel.name} is already published in this registry"
    assert stored(package_server) == before
    listed = list_all_packages(package_client, tenant.org, copying.target, tenant.tokens["rw"])
    assert [item["id"] for item in listed] == [copy.id]
