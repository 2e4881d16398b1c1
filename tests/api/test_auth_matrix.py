"""The auth matrix: every REST endpoint against every kind of caller that must be refused.

Endpoints: everything under ``/v2`` (a guard test fails when one is added without a row
here): registry tokens (update by POST, PATCH and PUT; rotate), registries, packages, the
audit log, the organization, the current user, and reading and revoking the current API
access token.
The install side (``/{org}/{registry}/pypi/...``) takes registry tokens, not API access
tokens, and is not part of this matrix.

Each rejected request is bracketed by a dump of every row of every table and of every
stored package file, so a request that is refused but still writes (creates, renames,
deletes, revokes) fails the test. Controls at the end prove that each endpoint, target and
token used here works for a caller who is allowed, so no rejection is an accident of a
wrong URL or dead data.
"""

import base64
import functools
import hashlib
import itertools
import re
import secrets
import tempfile
import zlib
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import Engine, MetaData, inspect, select

from registry_tokens.kit.context import Scope
from registry_tokens.kit.ids import new_id
from registry_tokens.kit.secrets import (
    BASE62_ALPHABET,
    CHECKSUM_LENGTH,
    RANDOM_LENGTH,
    SecretKind,
    generate_secret,
    secret_kind,
)
from registry_tokens.organizations.models import Role
from tests.distributions import build_wheel
from tests.harness import Seeder, Server, in_process_server, unique

ALL_SCOPES = tuple(scope.value for scope in Scope)

# --------------------------------------------------------------------------- snapshots

Snapshot = dict[str, list[tuple[str, ...]]]


@functools.cache
def reflected(engine: Engine, table_names: frozenset[str]) -> MetaData:
    metadata = MetaData()
    metadata.reflect(bind=engine, only=sorted(table_names))
    return metadata


def snapshot(engine: Engine, storage: Path) -> Snapshot:
    """Every row of every table there is (a new table is reflected when it appears), and
    every file under ``storage`` with its digest; all sorted."""
    with engine.connect() as connection:
        tables = reflected(engine, frozenset(inspect(connection).get_table_names())).tables
        state = {
            name: sorted(
                tuple(repr(value) for value in row) for row in connection.execute(select(table))
            )
            for name, table in sorted(tables.items())
        }
    state["<package files>"] = sorted(
        (str(path.relative_to(storage)), hashlib.sha256(path.read_bytes()).hexdigest())
        for path in storage.rglob("*")
        if path.is_file()
    )
    return state


def describe_change(before: Snapshot, after: Snapshot) -> str:
    lines = []
    for name in sorted(set(before) | set(after)):
        old, new = set(before.get(name, [])), set(after.get(name, []))
        if old != new:
            lines.append(f"{name}: +{sorted(new - old)} -{sorted(old - new)}")
    return "; ".join(lines)


# --------------------------------------------------------------------------- endpoints

_versions = itertools.count(1)


def wheel_upload() -> dict[str, tuple[str, bytes, str]]:
    """A real, never-published wheel as the multipart field ``file``."""
    with tempfile.TemporaryDirectory() as directory:
        path = build_wheel(Path(directory), "matrix_pkg", f"1.0.{next(_versions)}")
        return {"file": (path.name, path.read_bytes(), "application/octet-stream")}


@dataclass(frozen=True)
class Target:
    org: str
    registry: str
    token_id: str
    package_id: str


@dataclass(frozen=True)
class Endpoint:
    name: str
    method: str
    template: str
    scope: Scope | None
    success: int = 200
    body: dict[str, Any] | None = None
    upload: bool = False
    writes: bool = False
    admins_only: bool = False
    query: str = ""  # a query string template, filled like the path's
    also: tuple[Scope, ...] = ()  # scopes needed besides ``scope``

    def path(self, target: Target) -> str:
        names = {
            "org": target.org,
            "registry": target.registry,
            "id": target.token_id,
            "package": target.package_id,
        }
        path = self.template.format(**names)
        return f"{path}?{self.query.format(**names)}" if self.query else path

    def reaches(self, level: str) -> bool:
        """Whether the path names a resource of this level: org, registry, id or package."""
        return "{" + level + "}" in self.template

    def call(
        self, client: httpx.Client, authorization: str | None, target: Target
    ) -> httpx.Response:
        headers = {} if authorization is None else {"Authorization": authorization}
        if self.upload:
            return client.post(self.path(target), headers=headers, files=wheel_upload())
        return client.request(self.method, self.path(target), headers=headers, json=self.body)


REGISTRIES = "/v2/packages/organizations/{org}/registries"
REGISTRY = REGISTRIES + "/{registry}"
TOKENS = REGISTRY + "/tokens"
TOKEN = TOKENS + "/{id}"
PACKAGES = REGISTRY + "/packages"
PACKAGE = PACKAGES + "/{package}"
CHANGE = {"description": "changed by the auth matrix"}
NEW_REGISTRY = {"name": "Matrix Registry", "ecosystem": "python"}

ENDPOINTS = [
    Endpoint("create-token", "POST", TOKENS, Scope.WRITE_REGISTRIES, body=CHANGE, writes=True),
    Endpoint("list-tokens", "GET", TOKENS, Scope.READ_REGISTRIES),
    Endpoint("get-token", "GET", TOKEN, Scope.READ_REGISTRIES),
    *(
        Endpoint(f"update-token-{method.lower()}", method, TOKEN, Scope.WRITE_REGISTRIES,
                 body=CHANGE, writes=True)
        for method in ("POST", "PATCH", "PUT")
    ),
    Endpoint("delete-token", "DELETE", TOKEN, Scope.WRITE_REGISTRIES, writes=True),
    Endpoint("rotate-token", "POST", TOKEN + "/rotate", Scope.WRITE_REGISTRIES,
             body={"grace_period_seconds": 60}, writes=True),
    Endpoint("disable-token", "POST", TOKEN + "/disable", Scope.WRITE_REGISTRIES, writes=True),
    # Enabling a token that is not disabled changes nothing: the control sees no write.
    Endpoint("enable-token", "POST", TOKEN + "/enable", Scope.WRITE_REGISTRIES),
    Endpoint("reset-token-usage", "POST", TOKEN + "/usage/reset", Scope.WRITE_REGISTRIES,
             writes=True),
    Endpoint("get-token-usage", "GET", TOKEN + "/usage", Scope.READ_REGISTRIES),
    Endpoint("get-registry-usage", "GET", REGISTRY + "/usage", Scope.READ_REGISTRIES),
    Endpoint("create-registry", "POST", REGISTRIES, Scope.WRITE_REGISTRIES, body=NEW_REGISTRY,
             writes=True, admins_only=True),
    Endpoint("list-registries", "GET", REGISTRIES, Scope.READ_REGISTRIES),
    Endpoint("get-registry", "GET", REGISTRY, Scope.READ_REGISTRIES),
    *(
        Endpoint(f"update-registry-{method.lower()}", method, REGISTRY, Scope.WRITE_REGISTRIES,
                 body=CHANGE, writes=True, admins_only=True)
        for method in ("POST", "PATCH", "PUT")
    ),
    Endpoint("delete-registry", "DELETE", REGISTRY, Scope.DELETE_REGISTRIES, writes=True,
             admins_only=True),
    Endpoint("publish-package", "POST", PACKAGES, Scope.WRITE_PACKAGES, upload=True, writes=True),
    Endpoint("request-presigned-upload", "POST", PACKAGES + "/upload", Scope.WRITE_PACKAGES),
    Endpoint("list-packages", "GET", PACKAGES, Scope.READ_PACKAGES),
    Endpoint("get-package", "GET", PACKAGE, Scope.READ_PACKAGES),
    Endpoint("delete-package", "DELETE", PACKAGE, Scope.DELETE_PACKAGES, writes=True),
    # Copied into its own registry: past every check of the caller, the file is already
    # there (409, nothing written). Real copies: tests/api/test_go_client_package_copy.py.
    Endpoint("copy-package", "POST", PACKAGE + "/copy", Scope.WRITE_PACKAGES, success=409,
             query="to={registry}", also=(Scope.READ_PACKAGES,)),
    Endpoint("list-audit-events", "GET", "/v2/packages/organizations/{org}/audit-events",
             Scope.READ_REGISTRIES),
    Endpoint("get-organization", "GET", "/v2/organizations/{org}", None),
    Endpoint("list-organizations", "GET", "/v2/organizations", None),
    Endpoint("get-rate-limit", "GET", "/v2/organizations/{org}/rate_limit", None),
    Endpoint("get-user", "GET", "/v2/user", Scope.READ_USER),
    Endpoint("get-access-token", "GET", "/v2/access-token", None),
    Endpoint("revoke-access-token", "DELETE", "/v2/access-token", None, success=204, writes=True),
]  # fmt: skip


def endpoints(*, scoped: bool = False, level: str | None = None, admins: bool = False) -> list[Any]:
    return [
        pytest.param(endpoint, id=endpoint.name)
        for endpoint in ENDPOINTS
        if (not scoped or endpoint.scope is not None)
        and (level is None or endpoint.reaches(level))
        and (not admins or endpoint.admins_only)
    ]


# --------------------------------------------------------------------------- the world


def _base62(number: int, width: int) -> str:
    digits = ""
    while number:
        number, remainder = divmod(number, 62)
        digits = BASE62_ALPHABET[remainder] + digits
    return digits.rjust(width, "0")


def well_formed_secret(prefix: str) -> str:
    """A secret in our format with a correct checksum, under any prefix."""
    body = f"{prefix}_" + "".join(secrets.choice(BASE62_ALPHABET) for _ in range(RANDOM_LENGTH))
    return body + _base62(zlib.crc32(body.encode("ascii")), CHECKSUM_LENGTH)


def bearer(secret: str) -> str:
    return f"Bearer {secret}"


@dataclass
class Party:
    """An organization with a registry, and an admin of it holding an all-scopes token."""

    org: str
    registry: str
    email: str
    secret: str

    @property
    def authorization(self) -> str:
        return bearer(self.secret)


@dataclass
class World:
    a: Party
    b: Party  # another tenant
    a_registry2: str  # a second registry in A
    a_target: Target  # a token and a package in a.registry
    a_token2: str  # a registry token id in a_registry2
    a_package2: str  # a package id in a_registry2
    b_target: Target
    limited_to_a: str  # secret: a user in A and B, the token limited to A
    unlimited_multi: str  # secret: the same user, not limited
    member_only: str  # secret, all scopes: a member of A who is not an admin
    unauthenticated: dict[str, str | None] = field(default_factory=dict)
    lacking: dict[Scope, str] = field(default_factory=dict)  # every scope but the key


def create_token(client: httpx.Client, party: Party, registry: str) -> dict[str, Any]:
    response = client.post(
        TOKENS.format(org=party.org, registry=registry),
        headers={"Authorization": party.authorization},
        json={"description": unique("matrix")},
    )
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


def publish(client: httpx.Client, party: Party, registry: str) -> str:
    response = client.post(
        PACKAGES.format(org=party.org, registry=registry),
        headers={"Authorization": party.authorization},
        files=wheel_upload(),
    )
    assert response.status_code == 200, response.text
    package_id: str = response.json()["id"]
    return package_id


def party(seeder: Seeder) -> Party:
    tenant = seeder.tenant(scopes=ALL_SCOPES)
    seeder.services.organizations.add_member(tenant.org, tenant.email, Role.ADMIN)
    return Party(tenant.org, tenant.registry, tenant.email, tenant.tokens["rw"])


@dataclass
class Matrix:
    server: Server
    seeder: Seeder
    storage: Path


@pytest.fixture(scope="module")
def matrix(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Matrix]:
    """A server of this module's own, so that package files land where we can watch them."""
    workdir = tmp_path_factory.mktemp("auth-matrix")
    storage = workdir / "package-files"
    env = {"REGISTRY_TOKENS_PACKAGE_STORAGE_DIR": str(storage)}
    with in_process_server(workdir, env=env) as server:
        seeder = Seeder(server)
        yield Matrix(server, seeder, storage)
        seeder.services.database.dispose()


@pytest.fixture(scope="module")
def http(matrix: Matrix) -> Iterator[httpx.Client]:
    with matrix.server.client(timeout=30) as client:
        yield client


@pytest.fixture(scope="module")
def world(matrix: Matrix, http: httpx.Client) -> World:
    seeder = matrix.seeder
    services = seeder.services
    a, b = party(seeder), party(seeder)
    a_registry2 = services.registries.create(a.org, "Second", slug=unique("reg")).slug

    multi = f"{unique('multi')}@example.test"
    services.users.create("Member Of Two", multi)
    services.organizations.add_member(a.org, multi)
    services.organizations.add_member(b.org, multi)
    member = f"{unique('member')}@example.test"
    services.users.create("Just A Member", member)
    services.organizations.add_member(a.org, member, Role.MEMBER)

    valid = a.secret
    revoked = services.auth.issue(a.email, ALL_SCOPES)
    services.auth.revoke(revoked.token.id)
    registry_secret = create_token(http, a, a.registry)["token"]
    assert secret_kind(registry_secret) is SecretKind.REGISTRY_TOKEN
    assert secret_kind(well_formed_secret("bkua")) is SecretKind.API_ACCESS_TOKEN  # the forger
    last = valid[-1]
    world = World(
        a=a,
        b=b,
        a_registry2=a_registry2,
        a_target=Target(
            a.org, a.registry, create_token(http, a, a.registry)["id"], publish(http, a, a.registry)
        ),
        a_token2=create_token(http, a, a_registry2)["id"],
        a_package2=publish(http, a, a_registry2),
        b_target=Target(
            b.org, b.registry, create_token(http, b, b.registry)["id"], publish(http, b, b.registry)
        ),
        limited_to_a=seeder.api_token(multi, ALL_SCOPES, orgs=(a.org,)),
        unlimited_multi=seeder.api_token(multi, ALL_SCOPES),
        member_only=seeder.api_token(member, ALL_SCOPES),
    )
    world.unauthenticated = {
        "no-header": None,
        "unknown": bearer(generate_secret(SecretKind.API_ACCESS_TOKEN)),
        "revoked": bearer(revoked.secret),
        "garbage": "Bearer not-a-token",
        "wrong-prefix": bearer(well_formed_secret("ghp")),
        "valid-with-prefix-swapped": bearer("bkxx" + valid[4:]),
        "bad-checksum": bearer(valid[:-1] + ("0" if last != "0" else "1")),
        "registry-token": bearer(registry_secret),
        "basic-auth": "Basic " + base64.b64encode(f"buildkite:{valid}".encode()).decode(),
        "token-scheme": f"Token {valid}",
        # httpx refuses to send "Bearer " (trailing whitespace); tests/e2e/test_raw_http.py does.
        "empty-bearer": "Bearer",
        "two-tokens": f"Bearer {valid} {valid}",
    }
    world.lacking = {
        scope: seeder.api_token(a.email, tuple(s for s in ALL_SCOPES if s != scope.value))
        for scope in Scope
    }
    return world


UNAUTHENTICATED = [
    "no-header", "unknown", "revoked", "garbage", "wrong-prefix", "valid-with-prefix-swapped",
    "bad-checksum", "registry-token", "basic-auth", "token-scheme", "empty-bearer",
    "two-tokens",
]  # fmt: skip


class Rejections:
    """Sends requests that must be refused, and checks that nothing stored moved."""

    def __init__(self, client: httpx.Client, matrix: Matrix) -> None:
        self.client = client
        self.engine = matrix.seeder.services.database.engine
        self.storage = matrix.storage

    def snapshot(self) -> Snapshot:
        return snapshot(self.engine, self.storage)

    def send(
        self, endpoint: Endpoint, authorization: str | None, target: Target, status: int
    ) -> dict[str, Any]:
        before = self.snapshot()
        response = endpoint.call(self.client, authorization, target)
        after = self.snapshot()
        assert after == before, "a rejected request wrote: " + describe_change(before, after)
        assert response.status_code == status, response.text
        assert response.headers["content-type"].startswith("application/json")
        body = response.json()
        assert isinstance(body, dict)
        assert isinstance(body.get("message"), str)
        assert body["message"]
        return body


@pytest.fixture
def rejections(http: httpx.Client, matrix: Matrix) -> Rejections:
    return Rejections(http, matrix)


def nonexistent(level: str, real: Target) -> Target:
    """``real`` with the resource at ``level`` (and everything beneath it) made up."""
    org = unique("nope").replace("-", "_") if level == "org" else real.org
    registry = unique("nope") if level in ("org", "registry") else real.registry
    return Target(org, registry, str(new_id()), str(new_id()))


# --------------------------------------------------------------------------- the matrix


@pytest.mark.parametrize("endpoint", endpoints())
@pytest.mark.parametrize("subject", UNAUTHENTICATED)
def test_unauthenticated_callers_get_401(
    world: World, rejections: Rejections, subject: str, endpoint: Endpoint
) -> None:
    body = rejections.send(endpoint, world.unauthenticated[subject], world.a_target, 401)
    # One answer for every kind of bad credential: no oracle for "this token exists".
    reference = endpoint.call(rejections.client, None, world.a_target)
    assert body == reference.json()


@pytest.mark.parametrize("endpoint", endpoints(scoped=True))
def test_a_token_without_the_scope_gets_403(
    world: World, rejections: Rejections, endpoint: Endpoint
) -> None:
    assert endpoint.scope is not None
    body = rejections.send(endpoint, bearer(world.lacking[endpoint.scope]), world.a_target, 403)
    assert body == {"message": f"Your access token doesn't have the {endpoint.scope} scope"}


@pytest.mark.parametrize("endpoint", endpoints(admins=True))
def test_a_member_who_is_not_an_admin_cannot_manage_registries(
    world: World, rejections: Rejections, endpoint: Endpoint
) -> None:
    rejections.send(endpoint, bearer(world.member_only), world.a_target, 403)


LEVELS = [
    pytest.param(level, endpoint, id=f"{level}-{endpoint.name}")
    for level in ("org", "registry", "id", "package")
    for endpoint in ENDPOINTS
    if endpoint.reaches(level)
]


@pytest.mark.parametrize(("level", "endpoint"), LEVELS)
def test_another_tenants_resources_look_exactly_like_nonexistent_ones(
    world: World, rejections: Rejections, level: str, endpoint: Endpoint
) -> None:
    """B's admin, with every scope, names A's organization, or A's registry, token or
    package under B's own organization and registry."""
    a, b = world.a_target, world.b_target
    foreign = {
        "org": a,
        "registry": Target(b.org, a.registry, a.token_id, a.package_id),
        "id": Target(b.org, b.registry, a.token_id, a.package_id),
        "package": Target(b.org, b.registry, a.token_id, a.package_id),
    }[level]
    seen = rejections.send(endpoint, world.b.authorization, foreign, 404)
    made_up = rejections.send(endpoint, world.b.authorization, nonexistent(level, b), 404)
    assert seen == made_up


@pytest.mark.parametrize("endpoint", endpoints(level="org"))
def test_a_token_limited_to_one_organization_cannot_reach_the_other(
    world: World, rejections: Rejections, endpoint: Endpoint
) -> None:
    """The user belongs to A and B, the token only to A; B must look like no organization."""
    caller = bearer(world.limited_to_a)
    seen = rejections.send(endpoint, caller, world.b_target, 404)
    made_up = rejections.send(endpoint, caller, nonexistent("org", world.b_target), 404)
    assert seen == made_up


@pytest.mark.parametrize("endpoint", [*endpoints(level="id"), *endpoints(level="package")])
def test_an_id_from_another_registry_of_the_same_org_is_not_found(
    world: World, rejections: Rejections, endpoint: Endpoint
) -> None:
    a = world.a_target
    elsewhere = Target(a.org, a.registry, world.a_token2, world.a_package2)
    seen = rejections.send(endpoint, world.a.authorization, elsewhere, 404)
    made_up = rejections.send(endpoint, world.a.authorization, nonexistent("id", a), 404)
    assert seen == made_up


# --------------------------------------------------------------------------- controls


@pytest.mark.parametrize("endpoint", endpoints())
def test_a_token_with_just_the_needed_scope_succeeds(
    world: World, matrix: Matrix, http: httpx.Client, endpoint: Endpoint
) -> None:
    """Proves every endpoint and path above is live, and that the snapshot sees writes."""
    a = world.a
    needed = endpoint.scope.value if endpoint.scope is not None else Scope.READ_PACKAGES.value
    secret = matrix.seeder.api_token(a.email, (needed, *(scope.value for scope in endpoint.also)))
    fresh = matrix.seeder.services.registries.create(a.org, unique("Fresh"), slug=unique("reg"))
    target = Target(
        a.org, fresh.slug, create_token(http, a, fresh.slug)["id"], publish(http, a, fresh.slug)
    )
    rejections = Rejections(http, matrix)
    before = rejections.snapshot()
    assert {"registry_tokens", "api_access_tokens", "<package files>"} <= set(before)
    response = endpoint.call(http, bearer(secret), target)
    assert response.status_code == endpoint.success, response.text
    assert (rejections.snapshot() != before) == endpoint.writes


def test_the_callers_refused_above_are_allowed_where_they_belong(
    world: World, http: httpx.Client
) -> None:
    def status(secret: str, template: str, target: Target) -> int:
        path = Endpoint("", "GET", template, None).path(target)
        return http.get(path, headers={"Authorization": bearer(secret)}).status_code

    a, b = world.a_target, world.b_target
    # The limited token works in A; the same user's unlimited token works in B.
    assert status(world.limited_to_a, REGISTRY, a) == 200
    for template in (REGISTRY, TOKEN, PACKAGE):
        assert status(world.unlimited_multi, template, b) == 200
        assert status(world.b.secret, template, b) == 200
    # The ids of A's second registry are real, there.
    other = Target(a.org, world.a_registry2, world.a_token2, world.a_package2)
    assert status(world.a.secret, TOKEN, other) == 200
    assert status(world.a.secret, PACKAGE, other) == 200
    # The member who may not manage registries may read them.
    assert status(world.member_only, REGISTRY, a) == 200
    # Each token lacking one scope still has the others.
    for scope, secret in world.lacking.items():
        scopes = http.get("/v2/access-token", headers={"Authorization": bearer(secret)}).json()
        assert set(scopes["scopes"]) == set(ALL_SCOPES) - {scope.value}


def _operation(method: str, path: str) -> tuple[str, str]:
    return method.upper(), re.sub(r"\{[^}]*\}", "{}", path)


def test_the_matrix_covers_every_rest_operation(http: httpx.Client) -> None:
    """A new /v2 endpoint fails here until it has a row in ENDPOINTS."""
    spec = http.get("/openapi.json").json()
    served = {
        _operation(method, path)
        for path, operations in spec["paths"].items()
        if path.startswith("/v2/")
        for method in operations
    }
    covered = {_operation(endpoint.method, endpoint.template) for endpoint in ENDPOINTS}
    assert served == covered
