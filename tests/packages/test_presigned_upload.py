"""The presigned upload flow's refusals: the policy (expired, tampered, another server's,
over its size limit), the upload target's form, and ``package_url`` values that name
anything but a staged upload of the caller's in this registry. Each refusal leaves nothing
published and nothing staged; no ``package_url`` makes the server open a connection."""

import base64
import json
import socket
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import func, select, update

from registry_tokens.kit.signing import derive_key, sign
from registry_tokens.organizations.models import Role
from registry_tokens.packages.models import StagedUpload
from tests.api.test_go_client_contract import GoClient, GoErrorResponse
from tests.api.test_go_client_presigned_upload import GoPackages, PackagePresignedUpload
from tests.distributions import build_wheel
from tests.harness import Seeder, Server, Tenant, in_process_server
from tests.package_helpers import admin_tenant, bearer, list_all_packages, staged_files

LIMIT = 4096
OTHER_ID = "01930000-0000-7000-8000-000000000000"
PUBLISHER = ("read_registries", "write_registries", "read_packages", "write_packages")


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    workdir = tmp_path_factory.mktemp("presigned")
    env = {
        "REGISTRY_TOKENS_MAX_UPLOAD_BYTES": str(LIMIT),
        "REGISTRY_TOKENS_PACKAGE_STORAGE_DIR": str(workdir / "packages"),
    }
    with in_process_server(workdir, env=env) as started:
        yield started


@pytest.fixture(scope="module")
def seeder(server: Server) -> Seeder:
    return Seeder(server)


@pytest.fixture
def owner(seeder: Seeder) -> Tenant:
    return admin_tenant(seeder)


@pytest.fixture
def go(server: Server, owner: Tenant) -> Iterator[GoClient]:
    client = GoClient(server, owner.tokens["rw"])
    yield client
    client.close()


@pytest.fixture
def packages(go: GoClient) -> GoPackages:
    return GoPackages(go)


def staged_count(seeder: Seeder) -> int:
    with seeder.services.database.reading() as session:
        return session.scalar(select(func.count()).select_from(StagedUpload)) or 0


def post_upload(
    server: Server, presigned: PackagePresignedUpload, content: bytes, filename: str, **data: str
) -> httpx.Response:
    """The upload target, as any client posts a form (the Go client's own is in the
    contract tests): ``data`` replaces fields of the form."""
    fields = {**presigned.form.data, **data}
    with server.client() as http:
        return http.post(
            presigned.form.url,
            data=fields,
            files={presigned.form.file_input: (filename, content, "application/octet-stream")},
        )


def claims_of(presigned: PackagePresignedUpload) -> dict[str, Any]:
    decoded: dict[str, Any] = json.loads(base64.urlsafe_b64decode(presigned.form.data["policy"]))
    return decoded


def signed(server: Server, claims: dict[str, Any]) -> dict[str, str]:
    """A policy the server itself would sign (its key), for claims it never would."""
    key = derive_key(server.settings().secret_key_bytes, "presigned-upload-policy")
    policy, signature = sign(key, claims)
    return {"policy": policy, "signature": signature}


@pytest.fixture
def nothing_left(seeder: Seeder, server: Server, owner: Tenant) -> Iterator[None]:
    """Whatever the test refused, no package was published and nothing stays staged."""
    before_rows, before_files = staged_count(seeder), staged_files(server)
    yield
    assert staged_count(seeder) == before_rows
    assert staged_files(server) == before_files
    with server.client() as http:
        assert list_all_packages(http, owner.org, owner.registry, owner.tokens["rw"]) == []


def wheel_of(tmp_path: Path, name: str = "guarded") -> tuple[bytes, str]:
    path = build_wheel(tmp_path, name, "1.0")
    return path.read_bytes(), path.name


# --- The policy ----------------------------------------------------------------------------


@pytest.mark.usefixtures("nothing_left")
def test_an_expired_policy_is_refused(
    server: Server, packages: GoPackages, owner: Tenant, tmp_path: Path
) -> None:
    presigned = packages.request_presigned_upload(owner.org, owner.registry)
    expired = {**claims_of(presigned), "expires": int(datetime.now(UTC).timestamp()) - 1}
    content, filename = wheel_of(tmp_path)
    response = post_upload(server, presigned, content, filename, **signed(server, expired))
    assert response.status_code == 403
    assert response.json() == {"message": "The upload is not authorized: the policy has expired"}


@pytest.mark.usefixtures("nothing_left")
@pytest.mark.parametrize(
    ("claim", "value"),
    [
        ("upload", OTHER_ID),
        ("organization", OTHER_ID),
        ("registry", OTHER_ID),
        ("user", OTHER_ID),
        ("token", OTHER_ID),
        ("max_bytes", 10 * LIMIT),
        ("expires", 2**40),
    ],
)
def test_a_policy_changed_in_any_claim_is_refused(
    server: Server, packages: GoPackages, owner: Tenant, tmp_path: Path, claim: str, value: object
) -> None:
    presigned = packages.request_presigned_upload(owner.org, owner.registry)
    changed = {**claims_of(presigned), claim: value}
    policy = base64.urlsafe_b64encode(
        json.dumps(changed, sort_keys=True, separators=(",", ":")).encode()
    ).decode()
    response = post_upload(server, presigned, *wheel_of(tmp_path), policy=policy)
    assert response.status_code == 403
    assert response.json()["message"] == (
        "The upload is not authorized: the policy's signature is wrong"
    )


@pytest.mark.usefixtures("nothing_left")
@pytest.mark.parametrize(
    ("field", "change"),
    [
        ("signature", lambda value: value[:-1] + ("0" if value[-1] != "0" else "1")),
        ("signature", lambda value: ""),
        ("policy", lambda value: value + "e30="),
        ("key", lambda value: f"{uuid.uuid4()}/${{filename}}"),
        ("key", lambda value: "../" + value),
    ],
)
def test_a_tampered_form_is_refused(
    server: Server, packages: GoPackages, owner: Tenant, tmp_path: Path, field: str, change: Any
) -> None:
    presigned = packages.request_presigned_upload(owner.org, owner.registry)
    tampered = {field: change(presigned.form.data[field])}
    response = post_upload(server, presigned, *wheel_of(tmp_path), **tampered)
    assert response.status_code == 403
    assert response.json()["message"].startswith("The upload is not authorized: ")


@pytest.mark.usefixtures("nothing_left")
def test_another_servers_policy_is_refused(
    server: Server, packages: GoPackages, owner: Tenant, tmp_path: Path
) -> None:
    presigned = packages.request_presigned_upload(owner.org, owner.registry)
    policy, signature = sign(
        derive_key(b"another key", "presigned-upload-policy"), claims_of(presigned)
    )
    response = post_upload(
        server, presigned, *wheel_of(tmp_path), policy=policy, signature=signature
    )
    assert response.status_code == 403


@pytest.mark.usefixtures("nothing_left")
def test_a_form_without_the_policy_or_the_file_is_refused(
    server: Server, packages: GoPackages, owner: Tenant
) -> None:
    presigned = packages.request_presigned_upload(owner.org, owner.registry)
    with server.client() as http:
        no_policy = http.post(
            presigned.form.url,
            data={"key": presigned.form.data["key"]},
            files={"file": ("a-1.0-py3-none-any.whl", b"x", "application/octet-stream")},
        )
        no_file = http.post(presigned.form.url, data=presigned.form.data)
        not_a_form = http.post(
            presigned.form.url, content=b"{}", headers={"Content-Type": "application/json"}
        )
    assert no_policy.status_code == 403
    assert no_policy.json()["message"] == "The upload is not authorized: no policy, signature field"
    assert no_file.status_code == 422
    assert not_a_form.status_code == 422


@pytest.mark.usefixtures("nothing_left")
def test_a_file_over_the_limit_is_refused_and_one_at_it_is_staged(
    server: Server, seeder: Seeder, packages: GoPackages, owner: Tenant
) -> None:
    presigned = packages.request_presigned_upload(owner.org, owner.registry)
    over = post_upload(server, presigned, b"x" * (LIMIT + 1), "big-1.0-py3-none-any.whl")
    assert over.status_code == 413
    # A policy's own limit, below the server's, holds at its exact edge too.
    smaller = signed(server, {**claims_of(presigned), "max_bytes": 1000})
    assert post_upload(server, presigned, b"x" * 1001, "b-1.0.tar.gz", **smaller).status_code == 413
    files_before = staged_files(server)
    at_limit = post_upload(server, presigned, b"x" * 1000, "b-1.0.tar.gz", **smaller)
    assert at_limit.status_code == 204
    assert len(staged_files(server)) == len(files_before) + 1
    # Not a distribution: its finalize is the direct upload's 422, and consumes it.
    with pytest.raises(GoErrorResponse) as refused:
        packages.finalize(
            owner.org,
            owner.registry,
            f"{presigned.form.url}/{claims_of(presigned)['upload']}/b-1.0.tar.gz",
        )
    assert refused.value.status == 422
    assert staged_files(server) == files_before


@pytest.mark.usefixtures("nothing_left")
def test_a_file_name_a_url_would_escape_is_refused(
    server: Server, packages: GoPackages, owner: Tenant, tmp_path: Path
) -> None:
    presigned = packages.request_presigned_upload(owner.org, owner.registry)
    content, _ = wheel_of(tmp_path)
    for name in ("..", ".hidden.whl", "a b-1.0.tar.gz", "a%2f-1.0.tar.gz"):
        response = post_upload(server, presigned, content, name)
        assert response.status_code == 422, name


# --- The finalize's package_url --------------------------------------------------------------


@pytest.fixture
def listener() -> Iterator[socket.socket]:
    """A server on another loopback port that nobody should ever connect to."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))
    sock.listen(16)
    sock.setblocking(False)
    yield sock
    sock.close()


def assert_never_connected(sock: socket.socket) -> None:
    with pytest.raises(BlockingIOError):
        sock.accept()


def test_a_package_url_naming_anything_else_is_refused_without_a_request(
    server: Server,
    packages: GoPackages,
    owner: Tenant,
    tmp_path: Path,
    listener: socket.socket,
) -> None:
    presigned = packages.request_presigned_upload(owner.org, owner.registry)
    content, filename = wheel_of(tmp_path)
    ours = packages.perform(presigned, content, filename)
    parts = httpx.URL(ours)
    upload_id = claims_of(presigned)["upload"]
    port = listener.getsockname()[1]
    elsewhere = [
        f"http://127.0.0.1:{port}/uploads/packages/{upload_id}/{filename}",
        f"http://localhost:{port}{parts.path}",
        f"http://evil.example{parts.path}",
        f"https://{parts.host}:{parts.port}{parts.path}",
        f"http://{parts.host}:{parts.port}@127.0.0.1:{port}{parts.path}",
        f"http://ours@{parts.host}:{parts.port}{parts.path}",
        f"http://{parts.host}:{parts.port}/uploads/../uploads/packages/{upload_id}/{filename}",
        f"http://{parts.host}:{parts.port}/uploads/packages/{upload_id}/%2e%2e/{filename}",
        f"http://{parts.host}:{parts.port}/uploads/packages/%2e%2e/{upload_id}/{filename}",
        f"http://{parts.host}:{parts.port}/uploads/packages/{upload_id}/{filename}?x=1",
        f"http://{parts.host}:{parts.port}/uploads/packages/{upload_id}/{filename}#x",
        f"http://{parts.host}:{parts.port}/v2/uploads/packages/{upload_id}/{filename}",
        f"http://{parts.host}:{parts.port}/uploads/packages/{upload_id}/{filename}/",
        f"http://{parts.host}:{parts.port}/uploads/packages/{upload_id}/\t{filename}",
        f"file:///uploads/packages/{upload_id}/{filename}",
        "file:///etc/passwd",
        f"gopher://{parts.host}:{parts.port}{parts.path}",
        "",
    ]
    for url in elsewhere:
        with pytest.raises(GoErrorResponse) as refused:
            packages.finalize(owner.org, owner.registry, url)
        assert refused.value.status == 422, url
        assert refused.value.message.startswith("Validation failed: Package url must be"), url
    assert_never_connected(listener)
    # None of them consumed the upload: its own URL still publishes it.
    assert packages.finalize(owner.org, owner.registry, ours).name == "guarded"


def test_another_callers_or_registrys_finalize_is_a_404_and_leaves_the_upload(
    server: Server, seeder: Seeder, packages: GoPackages, owner: Tenant, tmp_path: Path
) -> None:
    presigned = packages.request_presigned_upload(owner.org, owner.registry)
    content, filename = wheel_of(tmp_path, "mine")
    ours = packages.perform(presigned, content, filename)
    # Another token of the same user, another member, another registry, another org.
    same_user = seeder.api_token(owner.email, PUBLISHER)
    other = admin_tenant(seeder)
    seeder.services.organizations.add_member(owner.org, other.email, Role.MEMBER)
    sibling = seeder.services.registries.create(
        owner.org, "Sibling", slug=f"sib-{uuid.uuid4().hex[:8]}"
    )
    attempts = [
        (same_user, owner.org, owner.registry),
        (seeder.api_token(other.email, PUBLISHER), owner.org, owner.registry),
        (owner.tokens["rw"], owner.org, sibling.slug),
        (other.tokens["rw"], other.org, other.registry),
    ]
    for token, org, registry in attempts:
        client = GoClient(server, token)
        try:
            with pytest.raises(GoErrorResponse) as refused:
                GoPackages(client).finalize(org, registry, ours)
            assert refused.value.status == 404, (org, registry)
        finally:
            client.close()
    assert packages.finalize(owner.org, owner.registry, ours).name == "mine"


def test_an_expired_staged_upload_is_refused_at_finalize_and_removed(
    server: Server, seeder: Seeder, packages: GoPackages, owner: Tenant, tmp_path: Path
) -> None:
    before = staged_files(server)
    presigned = packages.request_presigned_upload(owner.org, owner.registry)
    ours = packages.perform(presigned, *wheel_of(tmp_path, "late"))
    _expire(seeder, claims_of(presigned)["upload"])
    with pytest.raises(GoErrorResponse) as refused:
        packages.finalize(owner.org, owner.registry, ours)
    assert refused.value.status == 422
    assert "expired" in refused.value.message
    assert staged_files(server) == before


def test_expired_staged_uploads_are_cleaned(
    server: Server, seeder: Seeder, packages: GoPackages, owner: Tenant, tmp_path: Path
) -> None:
    before_rows, before = staged_count(seeder), staged_files(server)
    presigned = packages.request_presigned_upload(owner.org, owner.registry)
    packages.perform(presigned, *wheel_of(tmp_path, "forgotten"))
    assert staged_count(seeder) == before_rows + 1
    _expire(seeder, claims_of(presigned)["upload"])
    # The next presign sweeps them, rows and files.
    packages.request_presigned_upload(owner.org, owner.registry)
    assert staged_count(seeder) == before_rows
    assert staged_files(server) == before


# --- Who may ask for a policy -------------------------------------------------------------


def test_a_presign_needs_write_packages_in_a_visible_registry(
    server: Server, seeder: Seeder, owner: Tenant
) -> None:
    read_only = seeder.api_token(owner.email, ("read_packages",))
    stranger = admin_tenant(seeder)
    path = f"/v2/packages/organizations/{owner.org}/registries/{owner.registry}/packages/upload"
    with server.client() as http:
        assert http.post(path).status_code == 401
        assert http.post(path, headers=bearer(read_only)).json() == {
            "message": "Your access token doesn't have the write_packages scope"
        }
        hidden = http.post(path, headers=bearer(stranger.tokens["rw"]))
        assert hidden.status_code == 404


def _expire(seeder: Seeder, upload_id: str) -> None:
    with seeder.services.database.writing() as session:
        session.execute(
            update(StagedUpload)
            .where(StagedUpload.id == uuid.UUID(upload_id))
            .values(expires_at=datetime.now(UTC) - timedelta(seconds=1))
        )


# --- The upload target reads the form as it streams ----------------------------------------


def _form_body(fields: dict[str, str], filename: str, content: bytes) -> tuple[bytes, str]:
    boundary = uuid.uuid4().hex
    parts = [
        f'--{boundary}\r\nContent-Disposition: form-data; name="{name}"\r\n\r\n{value}\r\n'.encode()
        for name, value in fields.items()
    ]
    parts.append(
        f'--{boundary}\r\nContent-Disposition: form-data; name="file"; '
        f'filename="{filename}"\r\nContent-Type: application/octet-stream\r\n\r\n'.encode()
        + content
        + f"\r\n--{boundary}--\r\n".encode()
    )
    return b"".join(parts), f"multipart/form-data; boundary={boundary}"


@pytest.mark.usefixtures("nothing_left")
def test_a_bad_policy_is_refused_before_the_file_is_read(
    server: Server, packages: GoPackages, owner: Tenant
) -> None:
    """A file far over every limit, streamed without a Content-Length: the refusal is the
    policy's 403, not the size's 413, because the file was never read."""
    presigned = packages.request_presigned_upload(owner.org, owner.registry)
    body, content_type = _form_body(
        {**presigned.form.data, "signature": "0" * 64}, "big-1.0.tar.gz", b"x" * (LIMIT * 50)
    )

    def chunks() -> Iterator[bytes]:
        for start in range(0, len(body), 8192):
            yield body[start : start + 8192]

    with server.client() as http:
        response = http.post(
            presigned.form.url, content=chunks(), headers={"Content-Type": content_type}
        )
    assert response.status_code == 403


@pytest.mark.usefixtures("nothing_left")
def test_malformed_forms_are_400(server: Server, packages: GoPackages, owner: Tenant) -> None:
    presigned = packages.request_presigned_upload(owner.org, owner.registry)
    body, content_type = _form_body(presigned.form.data, "a-1.0.tar.gz", b"x")
    boundary = content_type.split("=", 1)[1]
    duplicated = (
        f'--{boundary}\r\nContent-Disposition: form-data; name="key"\r\n\r\nx\r\n'.encode() + body
    )
    truncated = body[: -len(f"\r\n--{boundary}--\r\n") - 1]
    other_file_field = body.replace(b'name="file"', b'name="upload"')
    with server.client() as http:
        for sent in (duplicated, truncated, other_file_field):
            response = http.post(
                presigned.form.url, content=sent, headers={"Content-Type": content_type}
            )
            assert response.status_code in (400, 422), response.text
            assert "message" in response.json()
