"""Secrets are shown once and stored nowhere: not in the database, its WAL, nor the log.

A dedicated server (own database, own log) issues API access tokens and registry tokens,
is driven through every registry token operation and some failed logins with those
secrets, and then every byte it wrote is searched for each secret in the forms a careless
implementation might store it: clear, its random part alone, hex, base64, UTF-16.
"""

import base64
import hashlib
import re
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import quote_plus

import httpx
from sqlalchemy import Engine, MetaData, select

from registry_tokens.kit.context import Scope
from registry_tokens.kit.secrets import RANDOM_LENGTH, hash_secret
from tests.console.conftest import csrf_of
from tests.harness import Seeder, ServerProcess, Tenant, running_server
from tests.package_helpers import basic as basic_auth

ALL_SCOPES = tuple(scope.value for scope in Scope)


# --------------------------------------------------------------------------- the search


def _base64_cores(raw: bytes) -> Iterator[tuple[str, bytes]]:
    """The part of ``raw``'s base64 that is the same wherever ``raw`` sits in a larger blob.

    Base64 works in 3-byte groups, so the encoding of embedded bytes depends on their
    offset modulo 3; for each offset, keep only the characters no neighbour can change.
    """
    for shift in range(3):
        total = shift + len(raw)
        standard = base64.b64encode(b"\0" * shift + raw)[4 if shift else 0 : 4 * (total // 3)]
        yield f"base64 at offset {shift}", standard
        yield f"urlsafe base64 at offset {shift}", standard.replace(b"+", b"-").replace(b"/", b"_")


def secret_forms(secret: str) -> dict[str, bytes]:
    random_part = secret.partition("_")[2][:RANDOM_LENGTH]
    assert len(random_part) == RANDOM_LENGTH
    forms: dict[str, bytes] = {}
    for label, text in (("secret", secret), ("random part", random_part)):
        raw = text.encode("ascii")
        forms[label] = raw
        forms[f"{label} as UTF-16"] = text.encode("utf-16-le")
        forms[f"{label} as hex"] = raw.hex().encode("ascii")
        for name, core in _base64_cores(raw):
            forms[f"{label} as {name}"] = core
    forms["unkeyed SHA-256 of secret"] = hashlib.sha256(secret.encode()).digest()
    forms["unkeyed SHA-256 of secret as hex"] = hashlib.sha256(secret.encode()).hexdigest().encode()
    return forms


def leaks_in(blob: bytes, secret: str) -> list[str]:
    """The forms of ``secret`` found in ``blob``; hex is matched in either case."""
    lowered = blob.lower()
    return [
        name
        for name, form in secret_forms(secret).items()
        if form in (lowered if name.endswith("hex") else blob)
    ]


def leaks_in_files(files: list[Path], secrets: list[str]) -> list[str]:
    found = []
    for path in files:
        blob = path.read_bytes()
        for secret in secrets:
            found += [f"{path.name}: {form} of {secret[:9]}…" for form in leaks_in(blob, secret)]
    return found


def written_files(workdir: Path) -> list[Path]:
    return sorted(path for path in workdir.rglob("*") if path.is_file())


def test_the_search_finds_every_form_it_claims_to(tmp_path: Path) -> None:
    """The positive control: planted secrets are found, in each form and at each offset."""
    secret = "bkpt_" + "Ab3" * 10 + "x1Y2z3"
    other = "bkua_" + "Zz9" * 10 + "q1W2e3"
    random_part = secret[5:35]
    plants = {
        "clear.db": b"\x00page\x01" + secret.encode() + b"\xff",
        "random.wal": b"header" + random_part.encode() + b"trailer",
        "hex.log": b"digest=" + secret.encode().hex().upper().encode() + b"\n",
        "utf16.db": "row:".encode("utf-16-le") + random_part.encode("utf-16-le"),
        "sha.db": b"k" + hashlib.sha256(secret.encode()).digest() + b"v",
        **{
            f"b64-{shift}.log": b"blob=" + base64.b64encode(b"x" * shift + secret.encode() + b"!")
            for shift in range(3)
        },
        "urlsafe.log": base64.urlsafe_b64encode(b"\xfb\xff" + random_part.encode() + b"\xfe"),
    }
    scratch = tmp_path / "scratch"
    scratch.mkdir()
    for name, content in plants.items():
        (scratch / name).write_bytes(content)
    (scratch / "clean.log").write_bytes(b"nothing here but " + other.encode())

    found = leaks_in_files(written_files(scratch), [secret])
    for name in plants:
        assert any(line.startswith(f"{name}:") for line in found), (name, found)
    assert not any(line.startswith("clean.log:") for line in found)
    assert leaks_in(plants["clear.db"], other) == []


# --------------------------------------------------------------------------- the server


def keys_of(document: Any) -> set[str]:
    if isinstance(document, dict):
        return set(document) | {key for value in document.values() for key in keys_of(value)}
    if isinstance(document, list):
        return {key for value in document for key in keys_of(value)}
    return set()


class Recorder:
    """A client that keeps every response, to check later that none echoes a secret."""

    def __init__(self, client: httpx.Client) -> None:
        self.client = client
        self.responses: list[httpx.Response] = []

    def __call__(
        self, method: str, path: str, secret: str | None = None, **kwargs: Any
    ) -> httpx.Response:
        headers = kwargs.pop("headers", {})
        if secret is not None:
            headers["Authorization"] = f"Bearer {secret}"
        response = self.client.request(method, path, headers=headers, **kwargs)
        self.responses.append(response)
        return response


def exercise(server: ServerProcess, seeder: Seeder) -> tuple[list[str], list[str], list[str]]:
    """Drives the server; returns the API secrets, the registry secrets, and those of the
    registry secrets whose keyed digest must still be stored (live or retired by rotation)."""
    tenant: Tenant = seeder.tenant(scopes=ALL_SCOPES)
    other: Tenant = seeder.tenant(scopes=ALL_SCOPES)
    rw = tenant.tokens["rw"]
    reader = seeder.api_token(tenant.email, ("read_registries", "read_user"))
    limited = seeder.api_token(tenant.email, ALL_SCOPES, orgs=(tenant.org,))
    doomed = seeder.api_token(tenant.email, ("read_user",))
    api_secrets = [rw, reader, limited, doomed, other.tokens["rw"]]
    registry_secrets: list[str] = []

    with httpx.Client(base_url=server.base_url, timeout=30) as client:
        call = Recorder(client)
        path = tenant.tokens_path
        ids = []
        for number in range(5):
            created = call("POST", path, rw, json={"description": f"leak test {number}"})
            assert created.status_code == 200, created.text
            assert created.json()["token"].startswith("bkpt_")
            registry_secrets.append(created.json()["token"])
            ids.append(created.json()["id"])
        elsewhere = call("POST", other.tokens_path, other.tokens["rw"], json={"description": "b"})
        registry_secrets.append(elsewhere.json()["token"])

        # Terraform-style clients send the whole object back, secret included: never stored.
        full = created.json()
        for method in ("POST", "PATCH", "PUT"):
            updated = call(method, f"{path}/{ids[0]}", rw, json={**full, "description": method})
            assert updated.status_code == 200, updated.text
        reads = [
            call("GET", path, reader),
            call("GET", f"{path}?per_page=2&page=2", limited),
            call("GET", f"{path}/{ids[1]}", reader),
            call("PATCH", f"{path}/{ids[2]}", limited, json={}),
            *(call("POST", f"{path}/{ident}", rw, json={"description": "x"}) for ident in ids),
        ]
        for response in reads:
            assert response.status_code == 200, response.text
            assert "token" not in keys_of(response.json())
        assert len(reads[0].json()) == 5
        assert "token" in keys_of(full)  # the check above can see a secret's key

        for ident in ids[3:]:
            assert call("DELETE", f"{path}/{ident}", rw).status_code == 200

        # Rotation shows a new secret once, like create; the old one is kept only hashed.
        graced = call("POST", f"{path}/{ids[1]}/rotate", rw, json={"grace_period_seconds": 600})
        cut = call("POST", f"{path}/{ids[2]}/rotate", rw, json={})
        assert graced.status_code == cut.status_code == 200, (graced.text, cut.text)
        registry_secrets += [graced.json()["token"], cut.json()["token"]]
        live_registry_secrets = registry_secrets[:3] + registry_secrets[-2:]

        # The install side: uses, and refused uses (recorded in the audit log).
        simple = f"/{tenant.org}/{tenant.registry}/pypi/simple/"

        def pip(secret: str) -> int:
            basic = base64.b64encode(f"buildkite:{secret}".encode()).decode()
            return call("GET", simple, headers={"Authorization": f"Basic {basic}"}).status_code

        for allowed in (registry_secrets[0], registry_secrets[1], *registry_secrets[-2:], limited):
            assert pip(allowed) == 200
        assert call("GET", simple, registry_secrets[0]).status_code == 200  # as Bearer
        # Rotated out, deleted, another registry's, an API token without read_packages.
        for refused in (registry_secrets[2], registry_secrets[3], registry_secrets[5], reader):
            assert pip(refused) == 401
        deadline = time.monotonic() + 10  # refusals are recorded moments after
        while True:
            events = call("GET", f"/v2/packages/organizations/{tenant.org}/audit-events", rw)
            assert events.status_code == 200, events.text
            types = {event["type"] for event in events.json()["items"]}
            if "REGISTRY_TOKEN_USE_REFUSED" in types or time.monotonic() > deadline:
                break
            time.sleep(0.05)
        assert "REGISTRY_TOKEN_USE_REFUSED" in types

        assert call("GET", "/v2/user", doomed).status_code == 200
        assert call("GET", "/v2/access-token", doomed).status_code == 200
        assert call("DELETE", "/v2/access-token", doomed).status_code == 204

        # Failed logins, each carrying a secret somewhere in the request.
        basic = base64.b64encode(f"buildkite:{registry_secrets[0]}".encode()).decode()
        rejected = [
            call("GET", "/v2/access-token", doomed),  # revoked
            call("GET", path, registry_secrets[0]),  # a registry token is no API token
            call("GET", path, registry_secrets[4]),  # nor is a deleted one
            call("GET", path, headers={"Authorization": f"Basic {basic}"}),
            call("GET", path, headers={"Authorization": f"Token {rw}"}),
            call("GET", path, rw[:-1] + ("A" if rw[-1] != "A" else "B")),  # bad checksum
            call("GET", path, "bkxx" + reader[4:]),  # wrong prefix
            call("GET", path, f"{rw} {rw}"),
        ]
        for response in rejected:
            assert response.status_code == 401, response.text
        forbidden = call("POST", path, reader, json={"description": "no"})
        assert forbidden.status_code == 403
        hidden = call("GET", f"{other.tokens_path}/{elsewhere.json()['id']}", rw)
        assert hidden.status_code == 404

        everything = api_secrets + registry_secrets
        for response in call.responses:
            echoed = [s for s in everything if s in response.text or s in str(response.headers)]
            request = response.request
            is_create = request.method == "POST" and request.url.path.endswith("/tokens")
            is_rotate = request.method == "POST" and request.url.path.endswith("/rotate")
            if (is_create or is_rotate) and response.status_code == 200:
                # Create and rotate show their new secret, once, by design; nothing else.
                assert echoed == [response.json()["token"]]
                continue
            assert not echoed, (request.method, request.url, [s[:9] for s in echoed])
    return api_secrets, registry_secrets, live_registry_secrets


def test_no_secret_reaches_the_database_its_wal_or_the_log(tmp_path: Path) -> None:
    """On SQLite whatever backend the suite runs on: its files are the bytes we can read."""
    workdir = tmp_path / "server"
    with running_server(workdir, f"sqlite:///{workdir / 'registry-tokens.db'}") as server:
        seeder = Seeder(server)
        api_secrets, registry_secrets, live = exercise(server, seeder)
        secrets = api_secrets + registry_secrets
        key = server.env["REGISTRY_TOKENS_SECRET_KEY"].encode("utf-8")
        database = server.settings().sqlite_path
        assert database is not None
        assert database.parent == workdir

        files = written_files(workdir)
        names = {path.name for path in files}
        # WAL mode: recent writes sit in the -wal file, which is scanned like the rest.
        assert {database.name, f"{database.name}-wal", server.log_path.name} <= names
        stored = b"".join(path.read_bytes() for path in files if path.name != "server.log")
        # Controls: we are reading where the data is, and the log is the request log.
        for secret in api_secrets[:3] + live:
            assert hash_secret(key, secret) in stored, "the keyed digest should be stored"
        log = server.log_path.read_bytes()
        assert b"/v2/access-token" in log
        leaks = leaks_in_files(files, secrets)
        assert not leaks, leaks
        seeder.services.database.dispose()

    # Stopped: the WAL is checkpointed into the main file; look again at whatever is left.
    after = written_files(workdir)
    assert database in after
    leaks = leaks_in_files(after, secrets)
    assert not leaks, leaks


def every_stored_value(engine: Engine) -> bytes:
    """Every value of every row of every table, as bytes: a backend-neutral dump."""
    metadata = MetaData()
    metadata.reflect(bind=engine)
    values: list[bytes] = []
    with engine.connect() as connection:
        for table in metadata.tables.values():
            for row in connection.execute(select(table)):
                for value in row:
                    values.append(value if isinstance(value, bytes) else str(value).encode())
    return b"\x00".join(values)


def test_no_secret_is_in_any_row_of_the_backend_under_test(
    client: httpx.Client, seeder: Seeder
) -> None:
    """The same search over the rows of the suite's database, SQLite or PostgreSQL."""
    tenant = seeder.tenant()
    created = [
        client.post(tenant.tokens_path, headers=tenant.auth(), json={"description": "row"})
        for _ in range(3)
    ]
    secrets = [tenant.tokens["rw"], *(response.json()["token"] for response in created)]
    client.delete(f"{tenant.tokens_path}/{created[2].json()['id']}", headers=tenant.auth())

    stored = every_stored_value(seeder.services.database.engine)
    key = seeder.services.settings.secret_key_bytes
    for secret in secrets[:3]:
        assert hash_secret(key, secret) in stored  # the control: we read the token rows
    found = {secret[:9]: leaks_in(stored, secret) for secret in secrets}
    assert not any(found.values()), found


# --------------------------------------------------------------------------- the console


def plain_forms(value: str) -> dict[str, bytes]:
    """A password's or a cookie's forms in a log: clear, URL-encoded (as a form posts
    it), hex, base64 (at each offset) and UTF-16."""
    raw = value.encode()
    forms = {
        "clear": raw,
        "URL-encoded": quote_plus(value).encode(),
        "hex": raw.hex().encode(),
        "UTF-16": value.encode("utf-16-le"),
    }
    forms.update(dict(_base64_cores(raw)))
    return forms


def test_no_console_secret_reaches_the_servers_log(tmp_path: Path) -> None:
    """A person signs in to the console with a password (once wrongly), creates a registry
    token and an API access token there, rotates the registry token and uses them all:
    the server's log holds neither the password, the session cookie, nor any secret."""
    workdir = tmp_path / "server"
    password = f"console log password {uuid.uuid4().hex}"
    with running_server(workdir, env={"REGISTRY_TOKENS_WEB_URL": "{base_url}"}) as server:
        seeder = Seeder(server)
        tenant = seeder.tenant(scopes=("read_registries", "write_registries"))
        seeder.services.users.set_password(tenant.email, password)
        seeder.services.database.dispose()
        with httpx.Client(base_url=server.base_url, timeout=30) as browser:

            def post(page: str, action: str, data: dict[str, Any]) -> httpx.Response:
                form = browser.get(page)
                assert form.status_code == 200, form.text
                return browser.post(action, data={**data, "csrf_token": csrf_of(form.text)})

            wrong = post(
                "/sign-in", "/sign-in", {"email": tenant.email, "password": password[::-1]}
            )
            assert wrong.status_code == 401
            signed_in = post("/sign-in", "/sign-in", {"email": tenant.email, "password": password})
            assert signed_in.status_code == 303, signed_in.text
            cookie = browser.cookies["registry_tokens_session"]

            tokens = f"/organizations/{tenant.org}/packages/registries/{tenant.registry}/tokens"
            created = post(tokens, tokens, {"description": "console leak test"})
            assert created.status_code == 200, created.text
            first = re.findall(r"bkpt_[0-9A-Za-z]{36}", created.text)[0]
            token_id = re.search(r'id="token-([0-9a-f-]{36})"', browser.get(tokens).text)
            assert token_id is not None
            page = f"{tokens}/{token_id[1]}"
            rotated = post(page, f"{page}/rotate", {"grace_period_seconds": "300"})
            assert rotated.status_code == 200, rotated.text
            second = re.findall(r"bkpt_[0-9A-Za-z]{36}", rotated.text)[0]
            assert second != first
            access = post(
                "/access-tokens",
                "/access-tokens",
                {"description": "console leak test", "scopes": ["read_registries"]},
            )
            assert access.status_code == 200, access.text
            api_secret = re.findall(r"bkua_[0-9A-Za-z]{36}", access.text)[0]

            simple = f"/{tenant.org}/{tenant.registry}/pypi/simple/"
            for secret in (first, second):  # the old one in its grace, and the new one
                used = httpx.get(server.base_url + simple, headers=basic_auth(secret))
                assert used.status_code == 200
            organizations = httpx.get(
                f"{server.base_url}/v2/organizations",
                headers={"Authorization": f"Bearer {api_secret}"},
            )
            assert organizations.status_code == 200
            out = post("/organizations", "/sign-out", {})
            assert out.status_code == 303

        log = server.log_path.read_bytes()
    # The control: this is the request log of all of the above.
    for path in ("/sign-in", "/sign-out", "/access-tokens", f"{page}/rotate", simple):
        assert path.encode() in log, path
    leaks = [
        f"{form} of {what}"
        for what, value in (
            ("the password", password),
            ("the session cookie", cookie),
            *(("its secret part", part) for part in cookie.split(".") if len(part) >= 16),
        )
        for form, text in plain_forms(value).items()
        if text in log
    ]
    leaks += [
        f"{form} of {s[:9]}…" for s in (first, second, api_secret) for form in leaks_in(log, s)
    ]
    assert not leaks, leaks
