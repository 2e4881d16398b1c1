"""go-buildkite v5's ``PackageRegistriesService`` and ``PackagesService``, as they are.

The client is rebuilt request for request as in ``test_go_client_contract.py`` (whose
client, encoder and request checks are reused). The facts relied on, read from
github.com/buildkite/go-buildkite:

``package_registries.go``
  * ``Create``: POST ``v2/packages/organizations/{org}/registries`` with
    ``CreatePackageRegistryInput{Name name,omitempty; Ecosystem ecosystem,omitempty;
    Description description,omitempty; Emoji emoji,omitempty; Color color,omitempty;
    OIDCPolicy PackageRegistryOIDCPolicy oidc_policy,omitempty}`` (an empty string or an
    empty policy is left out).
  * ``Update``: **PATCH** ``…/registries/{registry}`` with ``UpdatePackageRegistryInput``:
    the same fields less ``ecosystem``, each ``omitempty``.
  * ``Get``: GET ``…/registries/{registry}``; ``List``: GET ``…/registries`` (no query) into
    ``[]PackageRegistry``. ``PackageRegistry``: ``id, graphql_id, slug, url, web_url, name,
    ecosystem, description, emoji, color`` and ``oidc_policy`` are Go ``string``s (so a
    policy must come back as text: a JSON list would be a decoding error), ``public bool``.
  * ``PackageRegistryOIDCPolicy []OIDCPolicyStatement``; ``OIDCPolicyStatement{Issuer
    string iss; Scopes []string scopes,omitzero; Claims map[string]ClaimRule claims}`` (a
    nil map is ``null``; ``encoding/json`` writes map keys sorted); ``ClaimRule{Equals any
    equals,omitempty; NotEquals any not_equals,omitempty; In []any in,omitempty; NotIn
    []any not_in,omitempty; Matches []string matches,omitempty}``.
  * ``ListPackages``: GET ``…/registries/{registry}/packages`` with
    ``RegistryPackagesOptions{Before before,omitempty; After after,omitempty; PerPage
    per_page,omitempty}`` (strings; go-querystring sorts the keys) into ``RegistryPackages{
    Items []Package items; Links {First first; Previous prev; Self self; Next next}}``, the
    links strings; ``RegistryPackagesLink.ToOptions`` reads ``before``, ``after`` and
    ``per_page`` back out of a link.

``packages.go``
  * ``Get``: GET ``…/registries/{registry}/packages/{id}`` into ``Package{ID id; Name name;
    Version version; Variant *string variant; Metadata map[string]any metadata; URL url;
    WebURL web_url; Organization Organization organization; Registry PackageRegistry
    registry}``.
"""

import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar, cast
from urllib.parse import parse_qs, urlencode, urlsplit

import httpx
import pytest

from tests.api.test_go_client_contract import (
    GoClient,
    GoErrorResponse,
    GoResponse,
    Organization,
    PackageRegistry,
    assert_go_request,
    go_decode,
    go_decoder_decode,
    graphql_id_of,
    tag,
)
from tests.distributions import build_sdist, build_wheel
from tests.harness import Seeder, Server, Tenant
from tests.package_helpers import admin_tenant, published

T = TypeVar("T")
POLICY_YAML = (
    "- iss: https://agent.buildkite.com\n"
    "  scopes:\n"
    "  - read_packages\n"
    "  claims:\n"
    "    organization_slug:\n"
    "      equals: my-org\n"
    "    pipeline_slug:\n"
    "      in:\n"
    "      - my-pipeline\n"
    "      - my-other-pipeline\n"
)


# --- The Go input structs, encoded as encoding/json encodes them ---------------------------


@dataclass
class ClaimRule:
    equals: Any = None
    not_equals: Any = None
    in_: list[Any] | None = None
    not_in: list[Any] | None = None
    matches: list[str] | None = None

    def encoded(self) -> dict[str, Any]:
        """``omitempty``: a nil ``any`` and an empty slice are left out."""
        body: dict[str, Any] = {}
        for key, value in (("equals", self.equals), ("not_equals", self.not_equals)):
            if value is not None:
                body[key] = value
        for key, values in (("in", self.in_), ("not_in", self.not_in), ("matches", self.matches)):
            if values:
                body[key] = values
        return body


@dataclass
class OIDCPolicyStatement:
    issuer: str = ""
    scopes: list[str] | None = None  # omitzero: only a nil slice is left out
    claims: dict[str, ClaimRule] | None = None

    def encoded(self) -> dict[str, Any]:
        body: dict[str, Any] = {"iss": self.issuer}
        if self.scopes is not None:
            body["scopes"] = self.scopes
        body["claims"] = (
            None
            if self.claims is None
            else {name: self.claims[name].encoded() for name in sorted(self.claims)}
        )
        return body


@dataclass
class PackageRegistryInput:
    """``CreatePackageRegistryInput`` (with ``ecosystem``) or ``UpdatePackageRegistryInput``."""

    name: str = ""
    ecosystem: str = ""
    description: str = ""
    emoji: str = ""
    color: str = ""
    oidc_policy: list[OIDCPolicyStatement] = field(default_factory=list)

    def encoded(self, *, update: bool = False) -> dict[str, object]:
        body: dict[str, object] = {}
        for key in ("name", "ecosystem", "description", "emoji", "color"):
            if update and key == "ecosystem":
                continue
            if getattr(self, key):
                body[key] = getattr(self, key)
        if self.oidc_policy:
            body["oidc_policy"] = [statement.encoded() for statement in self.oidc_policy]
        return body


# --- The Go output structs -----------------------------------------------------------------


@dataclass
class Package:
    id: str = field(default="", metadata=tag("id"))
    name: str = field(default="", metadata=tag("name"))
    version: str = field(default="", metadata=tag("version"))
    variant: str | None = field(default=None, metadata=tag("variant"))  # *string
    metadata: dict[str, Any] | None = field(default=None, metadata=tag("metadata"))
    url: str = field(default="", metadata=tag("url"))
    web_url: str = field(default="", metadata=tag("web_url"))
    organization: Organization = field(default_factory=Organization, metadata=tag("organization"))
    registry: PackageRegistry = field(default_factory=PackageRegistry, metadata=tag("registry"))


@dataclass
class RegistryPackagesLinks:
    first: str = field(default="", metadata=tag("first"))
    prev: str = field(default="", metadata=tag("prev"))
    self: str = field(default="", metadata=tag("self"))
    next: str = field(default="", metadata=tag("next"))


@dataclass
class RegistryPackages:
    items: list[Package] = field(default_factory=list, metadata=tag("items"))
    links: RegistryPackagesLinks = field(
        default_factory=RegistryPackagesLinks, metadata=tag("links")
    )


class GoPackagesClient(GoClient):
    """``PackageRegistriesService`` and ``PackagesService`` of the same client."""

    def decoded(self, request: httpx.Request, into: Any) -> tuple[Any, GoResponse]:
        result = self.do_without_body(request)  # checkResponse: errors raise
        return go_decode(into, go_decoder_decode(result.http.content)), result

    @staticmethod
    def registries(org: str) -> str:
        return f"v2/packages/organizations/{org}/registries"

    def create(self, org: str, body: PackageRegistryInput) -> tuple[PackageRegistry, GoResponse]:
        request = self.new_request("POST", self.registries(org), body.encoded())
        return cast(tuple[PackageRegistry, GoResponse], self.decoded(request, PackageRegistry))

    def update(
        self, org: str, registry: str, body: PackageRegistryInput
    ) -> tuple[PackageRegistry, GoResponse]:
        url = f"{self.registries(org)}/{registry}"
        request = self.new_request("PATCH", url, body.encoded(update=True))
        return cast(tuple[PackageRegistry, GoResponse], self.decoded(request, PackageRegistry))

    def get(self, org: str, registry: str) -> tuple[PackageRegistry, GoResponse]:
        request = self.new_request("GET", f"{self.registries(org)}/{registry}", None)
        return cast(tuple[PackageRegistry, GoResponse], self.decoded(request, PackageRegistry))

    def list(self, org: str) -> tuple[list[PackageRegistry], GoResponse]:
        request = self.new_request("GET", self.registries(org), None)
        return cast(
            tuple[list[PackageRegistry], GoResponse],
            self.decoded(request, list[PackageRegistry]),
        )

    def list_packages(
        self, org: str, registry: str, before: str = "", after: str = "", per_page: str = ""
    ) -> tuple[RegistryPackages, GoResponse]:
        options = {"after": after, "before": before, "per_page": per_page}
        query = urlencode(sorted((k, v) for k, v in options.items() if v))
        url = f"{self.registries(org)}/{registry}/packages" + (f"?{query}" if query else "")
        request = self.new_request("GET", url, None)
        return cast(tuple[RegistryPackages, GoResponse], self.decoded(request, RegistryPackages))

    def get_package(self, org: str, registry: str, package_id: str) -> tuple[Package, GoResponse]:
        url = f"{self.registries(org)}/{registry}/packages/{package_id}"
        request = self.new_request("GET", url, None)
        return cast(tuple[Package, GoResponse], self.decoded(request, Package))


def to_options(link: str) -> dict[str, str]:
    """``RegistryPackagesLink.ToOptions``: ``before``, ``after`` and ``per_page``."""
    query = parse_qs(urlsplit(link).query)
    return {key: query.get(key, [""])[0] for key in ("before", "after", "per_page")}


@pytest.fixture
def admin(package_seeder: Seeder) -> Tenant:
    return admin_tenant(package_seeder)


@pytest.fixture
def go(package_server: Server, admin: Tenant) -> Iterator[GoPackagesClient]:
    client = GoPackagesClient(package_server, admin.tokens["rw"])
    yield client
    client.close()


def full_input(name: str) -> PackageRegistryInput:
    return PackageRegistryInput(
        name=name,
        ecosystem="python",
        description="Wheels <from> Go & co",
        emoji=":package:",
        color="#FF0000",
        oidc_policy=[
            OIDCPolicyStatement(
                issuer="https://agent.buildkite.com",
                scopes=["read_packages"],
                claims={
                    "pipeline_slug": ClaimRule(in_=["my-pipeline", "my-other-pipeline"]),
                    "organization_slug": ClaimRule(equals="my-org"),
                },
            )
        ],
    )


# --- PackageRegistriesService ----------------------------------------------------------------


def test_create_sends_emoji_color_and_oidc_policy_as_go_encodes_them(
    go: GoPackagesClient, admin: Tenant, package_server: Server
) -> None:
    created, response = go.create(admin.org, full_input("Go Wheels"))

    assert_go_request(
        go.sent[-1],
        "POST",
        go.registries(admin.org),
        b'{"name":"Go Wheels","ecosystem":"python",'
        b'"description":"Wheels \\u003cfrom\\u003e Go \\u0026 co",'
        b'"emoji":":package:","color":"#FF0000","oidc_policy":[{"iss":'
        b'"https://agent.buildkite.com","scopes":["read_packages"],"claims":{'
        b'"organization_slug":{"equals":"my-org"},'
        b'"pipeline_slug":{"in":["my-pipeline","my-other-pipeline"]}}}]}\n',
    )
    assert response.status == 200
    assert uuid.UUID(created.id).version == 7
    assert graphql_id_of(created.graphql_id) == f"Registry---{created.id}"
    assert created.slug == "go-wheels"
    assert created.url == f"{package_server.base_url}/{go.registries(admin.org)}/go-wheels"
    assert created.web_url.startswith("http://web.example.test/")
    assert (created.name, created.ecosystem) == ("Go Wheels", "python")
    assert created.description == "Wheels <from> Go & co"
    assert (created.emoji, created.color, created.public) == (":package:", "#FF0000", False)
    # A Go string: the normalized policy as YAML text (claims in Go's sorted order).
    assert created.oidc_policy == POLICY_YAML

    fetched, response = go.get(admin.org, "go-wheels")
    assert_go_request(go.sent[-1], "GET", f"{go.registries(admin.org)}/go-wheels", None)
    assert response.status == 200
    assert fetched == created

    listed, response = go.list(admin.org)
    assert_go_request(go.sent[-1], "GET", go.registries(admin.org), None)
    assert response.status == 200
    assert created in listed
    assert all(isinstance(registry.oidc_policy, str) for registry in listed)


def test_create_with_only_the_required_fields_leaves_the_rest_out(
    go: GoPackagesClient, admin: Tenant
) -> None:
    created, _ = go.create(admin.org, PackageRegistryInput(name="Bare Go", ecosystem="python"))
    assert_go_request(
        go.sent[-1], "POST", go.registries(admin.org), b'{"name":"Bare Go","ecosystem":"python"}\n'
    )
    # null is Go's zero value: "" for every string.
    assert (created.description, created.emoji, created.color, created.oidc_policy) == (
        "",
        "",
        "",
        "",
    )


def test_update_is_a_patch_that_sends_only_the_fields_set(
    go: GoPackagesClient, admin: Tenant
) -> None:
    created, _ = go.create(admin.org, full_input("Patched"))
    path = f"{go.registries(admin.org)}/patched"

    recolored, response = go.update(
        admin.org, "patched", PackageRegistryInput(emoji=":snake:", color="#3776ab")
    )
    assert_go_request(go.sent[-1], "PATCH", path, b'{"emoji":":snake:","color":"#3776ab"}\n')
    assert response.status == 200
    assert (recolored.emoji, recolored.color) == (":snake:", "#3776ab")
    assert recolored.oidc_policy == created.oidc_policy  # left out: unchanged
    assert recolored.description == created.description

    every_matcher = [
        OIDCPolicyStatement(
            issuer="https://token.actions.githubusercontent.com",
            claims={
                "repository": ClaimRule(equals="acme/widgets"),
                "ref": ClaimRule(not_equals="refs/heads/scratch", matches=["refs/tags/*"]),
                "run_attempt": ClaimRule(in_=[1, 2, True]),
                "actor": ClaimRule(not_in=["dependabot[bot]"]),
            },
        ),
        OIDCPolicyStatement(
            issuer="https://agent.buildkite.com",
            scopes=[],
            claims={"build_branch": ClaimRule(equals="main")},
        ),
    ]
    repolicied, response = go.update(
        admin.org, "patched", PackageRegistryInput(oidc_policy=every_matcher)
    )
    assert_go_request(
        go.sent[-1],
        "PATCH",
        path,
        b'{"oidc_policy":[{"iss":"https://token.actions.githubusercontent.com","claims":{'
        b'"actor":{"not_in":["dependabot[bot]"]},"ref":{"not_equals":"refs/heads/scratch",'
        b'"matches":["refs/tags/*"]},"repository":{"equals":"acme/widgets"},'
        b'"run_attempt":{"in":[1,2,true]}}},{"iss":"https://agent.buildkite.com",'
        b'"scopes":[],"claims":{"build_branch":{"equals":"main"}}}]}\n',
    )
    assert response.status == 200
    assert repolicied.oidc_policy == (
        "- iss: https://token.actions.githubusercontent.com\n"
        "  claims:\n"
        "    actor:\n"
        "      not_in:\n"
        "      - dependabot[bot]\n"
        "    ref:\n"
        "      not_equals: refs/heads/scratch\n"
        "      matches:\n"
        "      - refs/tags/*\n"
        "    repository:\n"
        "      equals: acme/widgets\n"
        "    run_attempt:\n"
        "      in:\n"
        "      - 1\n"
        "      - 2\n"
        "      - true\n"
        "- iss: https://agent.buildkite.com\n"
        "  claims:\n"
        "    build_branch:\n"
        "      equals: main\n"
    )
    assert (repolicied.emoji, repolicied.color) == (":snake:", "#3776ab")
    fetched, _ = go.get(admin.org, "patched")
    assert fetched == repolicied


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (
            PackageRegistryInput(emoji="package"),
            'Validation failed: Emoji must be an emoji in Buildkite\'s format such as ":package:" '
            "(letters, digits, _, + and - between colons)",
        ),
        (
            PackageRegistryInput(color="red"),
            'Validation failed: Color must be a hex color such as "#FF0000"',
        ),
        (
            PackageRegistryInput(color="#FF00001"),
            'Validation failed: Color must be a hex color such as "#FF0000"',
        ),
        (
            PackageRegistryInput(oidc_policy=[OIDCPolicyStatement(issuer="", claims={})]),
            "Validation failed: Oidc policy at [0].iss can't be blank",
        ),
        (
            PackageRegistryInput(
                oidc_policy=[OIDCPolicyStatement(issuer="https://agent.buildkite.com")]
            ),
            "Validation failed: Oidc policy at [0].claims can't be blank: name at least one "
            "claim to match",
        ),
        (
            PackageRegistryInput(
                oidc_policy=[
                    OIDCPolicyStatement(
                        issuer="https://agent.buildkite.com",
                        claims={"pipeline_slug": ClaimRule()},
                    )
                ]
            ),
            "Validation failed: Oidc policy at [0].claims.pipeline_slug must have a matcher "
            "(one of: equals, not_equals, in, not_in, matches)",
        ),
        (
            PackageRegistryInput(
                oidc_policy=[
                    OIDCPolicyStatement(
                        issuer="https://agent.buildkite.com",
                        scopes=["write_registries"],
                        claims={"pipeline_slug": ClaimRule(equals="x")},
                    )
                ]
            ),
            "Validation failed: Oidc policy at [0].scopes[0] must be one of: read_packages, "
            "write_packages",
        ),
    ],
    ids=["emoji", "color word", "color too long", "blank iss", "no claims", "no matcher", "scope"],
)
def test_invalid_emoji_color_and_policy_are_422s_go_decodes(
    go: GoPackagesClient, admin: Tenant, body: PackageRegistryInput, message: str
) -> None:
    created, _ = go.create(admin.org, full_input("Guarded"))
    with pytest.raises(GoErrorResponse) as raised:
        go.update(admin.org, "guarded", body)
    assert raised.value.status == 422
    assert raised.value.message.startswith(message), raised.value.message
    assert go.get(admin.org, "guarded")[0] == created  # nothing changed

    with pytest.raises(GoErrorResponse) as raised:
        go.create(admin.org, _with_name(body, "Refused"))
    assert raised.value.status == 422
    assert all(registry.slug != "refused" for registry in go.list(admin.org)[0])


def _with_name(body: PackageRegistryInput, name: str) -> PackageRegistryInput:
    return PackageRegistryInput(
        name=name,
        ecosystem="python",
        description=body.description,
        emoji=body.emoji,
        color=body.color,
        oidc_policy=body.oidc_policy,
    )


# --- PackagesService.Get and PackageRegistriesService.ListPackages ---------------------------


def test_packages_get_and_list_decode_into_package(
    go: GoPackagesClient, admin: Tenant, package_server: Server, tmp_path: Path
) -> None:
    go.update(admin.org, admin.registry, PackageRegistryInput(emoji=":snake:", color="#3776AB"))
    registry, _ = go.get(admin.org, admin.registry)
    http = package_server.client(timeout=60).__enter__()
    try:
        wheel = build_wheel(tmp_path, "go-pkg", "1.2.0", summary="Spoken to from Go ✓")
        sdist = build_sdist(tmp_path, "go-pkg", "1.2.0")
        wheel_body = published(http, admin.org, admin.registry, admin.tokens["rw"], wheel)
        sdist_body = published(http, admin.org, admin.registry, admin.tokens["rw"], sdist)
    finally:
        http.__exit__(None, None, None)

    package, response = go.get_package(admin.org, admin.registry, wheel_body["id"])
    packages = f"{go.registries(admin.org)}/{admin.registry}/packages"
    assert_go_request(go.sent[-1], "GET", f"{packages}/{wheel_body['id']}", None)
    assert response.status == 200
    assert (package.id, package.name, package.version) == (wheel_body["id"], "go-pkg", "1.2.0")
    assert package.url == f"{package_server.base_url}/{packages}/{package.id}"
    assert package.web_url.startswith("http://web.example.test/")
    assert package.variant == "py3-none-any"
    assert package.metadata == {
        "filename": wheel.name,
        "packagetype": "bdist_wheel",
        "size": wheel.stat().st_size,
        "requires_python": ">=3.8",
        "summary": "Spoken to from Go ✓",
    }
    assert package.organization.slug == admin.org
    assert graphql_id_of(package.organization.graphql_id) == (
        f"Organization---{package.organization.id}"
    )
    assert package.organization.url == f"{package_server.base_url}/v2/organizations/{admin.org}"
    assert package.organization.web_url.startswith("http://web.example.test/")
    assert package.registry == registry  # the whole registry, not a short form
    assert (package.registry.emoji, package.registry.color) == (":snake:", "#3776AB")
    assert package.registry.ecosystem == "python"

    source, _ = go.get_package(admin.org, admin.registry, sdist_body["id"])
    assert source.variant is None  # an sdist has no compatibility tags
    assert source.metadata is not None
    assert source.metadata["packagetype"] == "sdist"
    assert source.metadata["summary"] is None

    # Newest first, one per page, walking links.next through ToOptions.
    page, response = go.list_packages(admin.org, admin.registry, per_page="1")
    assert_go_request(go.sent[-1], "GET", packages, None, query="per_page=1")
    assert response.status == 200
    assert [item.id for item in page.items] == [sdist_body["id"]]
    assert page.items[0] == source
    assert page.links.prev == ""  # null: Go's zero value
    assert page.links.self
    assert page.links.first
    options = to_options(page.links.next)
    assert options["per_page"] == "1"
    page, _ = go.list_packages(admin.org, admin.registry, **options)
    expected_query = urlencode(sorted((k, v) for k, v in options.items() if v))
    assert_go_request(go.sent[-1], "GET", packages, None, query=expected_query)
    assert page.items == [package]
    assert page.links.prev != ""
    if page.links.next:
        last, _ = go.list_packages(admin.org, admin.registry, **to_options(page.links.next))
        assert last.items == []

    everything, _ = go.list_packages(admin.org, admin.registry)
    assert_go_request(go.sent[-1], "GET", packages, None)
    assert everything.items == [source, package]
    assert everything.links.next == ""


def test_get_of_an_unknown_package_is_a_404_go_decodes(go: GoPackagesClient, admin: Tenant) -> None:
    for package_id in (str(uuid.uuid4()), "not-a-uuid"):
        with pytest.raises(GoErrorResponse) as raised:
            go.get_package(admin.org, admin.registry, package_id)
        assert (raised.value.status, raised.value.message) == (404, "No package found")
    with pytest.raises(GoErrorResponse) as raised:
        go.list_packages(admin.org, "no-such-registry")
    assert (raised.value.status, raised.value.message) == (404, "No registry found")
