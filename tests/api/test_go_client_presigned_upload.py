"""``PackagesService.Create`` of go-buildkite, request for request: the presigned upload.

Read from go-buildkite (``package_uploads.go``, ``packages.go``,
``internal/bkmultipart/streamer.go``):

* ``RequestPresignedUpload``: ``NewRequest("POST", "v2/packages/organizations/{org}/
  registries/{registry}/packages/upload", nil)``: no body, so no Content-Type; net/http sends
  ``Content-Length: 0`` for a bodiless POST. Decoded into ``PackagePresignedUpload{URI uri;
  Form{FileInput file_input; Method method; URL url; Data map[string]string data}}``.
* ``Perform``: needs ``data["key"]``; a ``bkmultipart.Streamer`` writes every ``data`` field
  (``WriteFields`` ranges over a Go map: any order) and then the file under ``file_input``
  with the file's base name (``CreateFormFile``: ``Content-Type: application/octet-stream``);
  ``http.NewRequestWithContext(form.method, form.url, …)`` (not ``NewRequest``: no
  Authorization, no go-buildkite User-Agent, so net/http's ``Go-http-client/1.1``), its
  ``Content-Type`` the streamer's and ``ContentLength`` set to the exact length. Any 2xx is
  success, the body unread. The file's URL is ``url.JoinPath(form.url, strings.ReplaceAll(
  data["key"], "${filename}", base name))``.
* ``Finalize``: a streamer with the one field ``package_url``, ``NewRequest("POST",
  "…/packages", reader)`` (Authorization and User-Agent), ``Content-Type`` multipart and
  ``ContentLength`` exact; decoded into ``Package{ID id; Name name; Version version;
  Variant *string variant; Metadata map[string]any metadata; URL url; WebURL web_url;
  Organization Organization organization; Registry PackageRegistry registry}``.
"""

import posixpath
import random
import secrets
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, cast
from urllib.parse import urljoin, urlsplit, urlunsplit

import httpx
import pytest

from tests.api.test_go_client_contract import (
    GO_REQUEST_HEADERS_WITH_BODY,
    GO_USER_AGENT,
    GoClient,
    GoErrorResponse,
    Organization,
    PackageRegistry,
    go_decode,
    go_decoder_decode,
    header_names,
    tag,
)
from tests.distributions import build_wheel
from tests.harness import Seeder, Server, Tenant
from tests.package_helpers import admin_tenant, basic, create_registry_token, simple_path

GO_HTTP_USER_AGENT = "Go-http-client/1.1"


@dataclass
class PackagePresignedUploadForm:
    file_input: str = field(default="", metadata=tag("file_input"))
    method: str = field(default="", metadata=tag("method"))
    url: str = field(default="", metadata=tag("url"))
    data: dict[str, str] = field(default_factory=dict, metadata=tag("data"))


@dataclass
class PackagePresignedUpload:
    uri: str = field(default="", metadata=tag("uri"))
    form: PackagePresignedUploadForm = field(
        default_factory=PackagePresignedUploadForm, metadata=tag("form")
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


def decode_presigned(raw: bytes) -> PackagePresignedUpload:
    value = go_decoder_decode(raw)
    assert isinstance(value, dict), value
    assert isinstance(value.get("form"), dict), value
    return cast(PackagePresignedUpload, go_decode(PackagePresignedUpload, value))


def decode_package(raw: bytes) -> Package:
    value = go_decoder_decode(raw)
    assert isinstance(value, dict), value
    return cast(Package, go_decode(Package, value))


# --- bkmultipart.Streamer and net/url, as Go writes them ---------------------------------


class Streamer:
    """``bkmultipart.NewStreamer()``: mime/multipart's writer with a random 60-hex-digit
    boundary; parts begin ``--B`` (the first without a leading CRLF), headers in sorted
    order; the close ``\\r\\n--B--\\r\\n``."""

    def __init__(self) -> None:
        self.boundary = secrets.token_hex(30)
        self.content_type = f"multipart/form-data; boundary={self.boundary}"
        self.body = b""

    def _part(self, headers: list[tuple[str, str]]) -> None:
        start = b"--" if not self.body else b"\r\n--"
        lines = "".join(f"{name}: {value}\r\n" for name, value in sorted(headers))
        self.body += start + self.boundary.encode() + b"\r\n" + lines.encode() + b"\r\n"

    def write_field(self, key: str, value: str) -> None:
        self._part([("Content-Disposition", f'form-data; name="{key}"')])
        self.body += value.encode()

    def write_file(self, key: str, content: bytes, filename: str) -> None:
        self._part(
            [
                ("Content-Disposition", f'form-data; name="{key}"; filename="{filename}"'),
                ("Content-Type", "application/octet-stream"),
            ]
        )
        self.body += content

    def reader(self) -> bytes:
        return self.body + f"\r\n--{self.boundary}--\r\n".encode()


def go_join_path(base: str, element: str) -> str:
    """``url.JoinPath``: the path elements joined and cleaned of ``.`` and ``..``."""
    parsed = urlsplit(base)
    joined = posixpath.normpath(posixpath.join(parsed.path or "/", element))
    if element.endswith("/") and not joined.endswith("/"):
        joined += "/"
    return urlunsplit((parsed.scheme, parsed.netloc, joined, parsed.query, parsed.fragment))


# --- PackagesService.Create ---------------------------------------------------------------


@dataclass
class Created:
    presigned: PackagePresignedUpload
    package_url: str
    package: Package
    requests: list[httpx.Request]


class GoPackages:
    """``PackagesService`` of a client made with ``WithTokenAuth``."""

    def __init__(self, go: GoClient) -> None:
        self.go = go

    @staticmethod
    def packages_path(org: str, registry: str) -> str:
        return f"v2/packages/organizations/{org}/registries/{registry}/packages"

    def request_presigned_upload(self, org: str, registry: str) -> PackagePresignedUpload:
        request = self.go.new_request("POST", f"{self.packages_path(org, registry)}/upload", None)
        request.headers["Content-Length"] = "0"  # net/http, for a POST without a body
        result = self.go.do_without_body(request)
        return decode_presigned(result.http.content)

    def perform(self, presigned: PackagePresignedUpload, content: bytes, filename: str) -> str:
        assert "key" in presigned.form.data, "missing 'key' in presigned upload form data"
        streamer = Streamer()
        data = list(presigned.form.data.items())
        random.shuffle(data)  # a Go map's order
        for key, value in data:
            streamer.write_field(key, value)
        streamer.write_file(presigned.form.file_input, content, filename)
        body = streamer.reader()
        request = httpx.Request(
            presigned.form.method,
            presigned.form.url,
            headers={
                "User-Agent": GO_HTTP_USER_AGENT,
                "Content-Length": str(len(body)),
                "Content-Type": streamer.content_type,
                "Accept-Encoding": "gzip",
            },
            content=body,
        )
        response, _ = self.go.send(request)
        if not 200 <= response.status_code < 300:
            raise AssertionError(f"S3 rejected upload with unexpected status code {response}")
        key = presigned.form.data["key"].replace("${filename}", filename)
        return go_join_path(presigned.form.url, key)

    def finalize(self, org: str, registry: str, package_url: str) -> Package:
        streamer = Streamer()
        streamer.write_field("package_url", package_url)
        body = streamer.reader()
        bodiless = self.go.new_request("POST", self.packages_path(org, registry), None)
        headers = httpx.Headers(bodiless.headers)
        headers["Content-Type"] = streamer.content_type
        headers["Content-Length"] = str(len(body))
        request = httpx.Request("POST", bodiless.url, headers=headers, content=body)
        result = self.go.do_without_body(request)
        return decode_package(result.http.content)

    def create(self, org: str, registry: str, path: Path) -> Created:
        start = len(self.go.sent)
        presigned = self.request_presigned_upload(org, registry)
        package_url = self.perform(presigned, path.read_bytes(), path.name)
        package = self.finalize(org, registry, package_url)
        return Created(presigned, package_url, package, self.go.sent[start:])


@pytest.fixture
def owner(seeder: Seeder) -> Tenant:
    return admin_tenant(seeder)


@pytest.fixture
def go(server: Server, owner: Tenant) -> Iterator[GoClient]:
    client = GoClient(server, owner.tokens["rw"])
    yield client
    client.close()


def test_create_runs_the_three_requests_and_pip_sees_the_package(
    go: GoClient, server: Server, owner: Tenant, tmp_path: Path
) -> None:
    wheel = build_wheel(tmp_path, "presigned-pkg", "1.0")
    created = GoPackages(go).create(owner.org, owner.registry, wheel)

    presign, upload, finalize = created.requests
    base = urlsplit(server.base_url)
    # 1. The presign: a bodiless POST with the client's credentials.
    assert presign.method == "POST"
    assert (
        presign.url.path
        == f"/v2/packages/organizations/{owner.org}/registries/{owner.registry}/packages/upload"
    )
    assert header_names(presign) == {
        "host",
        "authorization",
        "user-agent",
        "accept-encoding",
        "content-length",
    }
    assert presign.headers["user-agent"] == GO_USER_AGENT
    form = created.presigned.form
    assert (form.file_input, form.method) == ("file", "POST")
    assert form.url == f"{server.base_url}/uploads/packages"
    assert form.data["key"].endswith("/${filename}")
    assert set(form.data) == {"key", "policy", "signature"}
    assert created.presigned.uri.startswith(form.url)
    # 2. The upload: to form.url, no Buildkite credentials, the policy in the body only.
    assert upload.method == "POST"
    assert (upload.url.scheme, upload.url.host, upload.url.port) == (
        base.scheme,
        base.hostname,
        base.port,
    )
    assert upload.url.query == b""
    assert header_names(upload) == {
        "host",
        "user-agent",
        "content-length",
        "content-type",
        "accept-encoding",
    }
    assert upload.headers["user-agent"] == GO_HTTP_USER_AGENT
    assert upload.headers["content-length"] == str(len(upload.content))
    assert form.data["signature"].encode() in upload.content
    assert form.data["signature"] not in str(upload.url)
    # 3. The finalize: package_url, the file's URL on this server.
    assert created.package_url == (
        f"{form.url}/{form.data['key'].replace('${filename}', wheel.name)}"
    )
    assert header_names(finalize) == GO_REQUEST_HEADERS_WITH_BODY
    assert finalize.headers["content-type"].startswith("multipart/form-data; boundary=")
    assert (
        finalize.url.path
        == f"/v2/packages/organizations/{owner.org}/registries/{owner.registry}/packages"
    )

    package = created.package
    assert (package.name, package.version) == ("presigned-pkg", "1.0")
    assert package.url.endswith(f"/packages/{package.id}")
    assert package.organization.slug == owner.org
    assert package.registry.slug == owner.registry

    # pip's view: the index lists the file, and it downloads byte for byte.
    with server.client() as http:
        token = create_registry_token(http, owner.org, owner.registry, owner.tokens["rw"])
        project_url = f"{server.base_url}{simple_path(owner.org, owner.registry)}presigned-pkg/"
        page = http.get(
            project_url,
            headers={**basic(token["token"]), "Accept": "application/vnd.pypi.simple.v1+json"},
        )
        assert page.status_code == 200, page.text
        (entry,) = page.json()["files"]
        assert entry["filename"] == wheel.name
        download = http.get(urljoin(project_url, entry["url"]), headers=basic(token["token"]))
        assert download.status_code == 200
        assert download.content == wheel.read_bytes()


def test_a_staged_upload_is_consumed_by_its_finalize(
    go: GoClient, owner: Tenant, tmp_path: Path
) -> None:
    packages = GoPackages(go)
    wheel = build_wheel(tmp_path, "once-pkg", "1.0")
    created = packages.create(owner.org, owner.registry, wheel)
    with pytest.raises(GoErrorResponse) as again:
        packages.finalize(owner.org, owner.registry, created.package_url)
    assert again.value.status == 404
    assert again.value.message == "No staged upload found"


def test_the_upload_target_refuses_a_second_file_for_one_policy(
    go: GoClient, owner: Tenant, tmp_path: Path
) -> None:
    packages = GoPackages(go)
    wheel = build_wheel(tmp_path, "twice-pkg", "1.0")
    presigned = packages.request_presigned_upload(owner.org, owner.registry)
    packages.perform(presigned, wheel.read_bytes(), wheel.name)
    with pytest.raises(AssertionError, match="409"):
        packages.perform(presigned, wheel.read_bytes(), wheel.name)


def test_a_bad_package_is_refused_at_finalize_as_a_direct_upload_is(
    go: GoClient, owner: Tenant
) -> None:
    packages = GoPackages(go)
    presigned = packages.request_presigned_upload(owner.org, owner.registry)
    package_url = packages.perform(presigned, b"not a zip", "broken-1.0-py3-none-any.whl")
    with pytest.raises(GoErrorResponse) as refused:
        packages.finalize(owner.org, owner.registry, package_url)
    assert refused.value.status == 422
    assert refused.value.message.startswith("Validation failed: ")
