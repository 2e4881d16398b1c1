"""Whatever a client sends, the answer is a clear JSON 4xx (or a success), never a 5xx.

Each test talks to the live server over HTTP. After every rejected request it checks that
nothing was stored: a rejected create leaves the registry's token list as it was, and a
rejected update leaves the token as it was.
"""

import json
import unicodedata
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.harness import Seeder, Server, Tenant

JSON_ERROR = "Problems parsing JSON: the request body is not valid JSON"
BLANK = "Validation failed: Description can't be blank"
TOO_LONG = "Validation failed: Description is too long (maximum is 255 characters)"
NOT_A_STRING = "Validation failed: Description must be a string"
TEN_MB = 10 * 1024 * 1024
UPDATE_METHODS = ("POST", "PATCH", "PUT")


# --- helpers -------------------------------------------------------------------------------


def assert_json_error(response: httpx.Response, status: int) -> dict[str, Any]:
    """A ``status`` answer whose body is Buildkite's JSON error: a non-empty message."""
    assert response.status_code == status, (response.status_code, response.text)
    assert response.headers["content-type"].startswith("application/json")
    body = response.json()
    assert isinstance(body, dict)
    assert isinstance(body.get("message"), str)
    assert body["message"].strip()
    return body


def assert_validation_failed(
    response: httpx.Response, message: str, code: str, field: str = "description"
) -> None:
    body = assert_json_error(response, 422)
    assert body["message"] == message
    assert body["errors"] == [{"field": field, "code": code}]


def stored(client: httpx.Client, tenant: Tenant) -> list[tuple[str, str]]:
    """Every token of the tenant's registry, as (id, description), newest first."""
    response = client.get(tenant.tokens_path, params={"per_page": 100}, headers=tenant.auth())
    assert response.status_code == 200, response.text
    assert "next" not in response.headers.get("link", "")
    return [(item["id"], item["description"]) for item in response.json()]


def create(client: httpx.Client, tenant: Tenant, description: str) -> dict[str, Any]:
    response = client.post(
        tenant.tokens_path, headers=tenant.auth(), json={"description": description}
    )
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


def send_raw(
    client: httpx.Client, path: str, tenant: Tenant, content: bytes, method: str = "POST"
) -> httpx.Response:
    headers = {**tenant.auth(), "Content-Type": "application/json"}
    return client.request(method, path, headers=headers, content=content)


@pytest.fixture
def existing(client: httpx.Client, tenant: Tenant) -> dict[str, Any]:
    """A registry token to send bad updates to."""
    return create(client, tenant, "Original")


def token_path(tenant: Tenant, token: dict[str, Any]) -> str:
    return f"{tenant.tokens_path}/{token['id']}"


# --- malformed JSON -----------------------------------------------------------------------

MALFORMED_JSON = {
    "truncated": b'{"description": "Ush',
    "trailing garbage": b'{"description": "Usher"} garbage',
    "two documents": b'{"description": "Usher"}{"description": "Usher"}',
    "single quotes": b"{'description': 'Usher'}",
    "trailing comma": b'{"description": "Usher",}',
    "NaN": b'{"description": NaN}',
    "NaN in an ignored field": b'{"description": "Usher", "extra": NaN}',
    "Infinity": b'{"description": "Usher", "extra": -Infinity}',
    "invalid UTF-8": b'{"description": "Usher \xff\xfe"}',
    "overlong UTF-8": b'{"description": "\xc0\xaf"}',
    "UTF-8 BOM": b'\xef\xbb\xbf{"description": "Usher"}',
    "UTF-16": '{"description": "Usher"}'.encode("utf-16"),
    "arrays 100k deep": b"[" * 100_000 + b"]" * 100_000,
    "objects 100k deep": b'{"a":' * 100_000 + b"1" + b"}" * 100_000,
    "description 100k deep": b'{"description": ' + b"[" * 100_000 + b"]" * 100_000 + b"}",
    "integer of 5000 digits": b'{"description": ' + b"9" * 5000 + b"}",
    "whitespace only": b"  \n ",
    "unescaped control character": b'{"description": "a\x01b"}',
}


@pytest.mark.parametrize("body", MALFORMED_JSON.values(), ids=MALFORMED_JSON.keys())
def test_malformed_json_on_create_is_a_clear_400(
    client: httpx.Client, tenant: Tenant, body: bytes
) -> None:
    before = stored(client, tenant)
    response = send_raw(client, tenant.tokens_path, tenant, body)
    assert assert_json_error(response, 400)["message"] == JSON_ERROR
    assert stored(client, tenant) == before


@pytest.mark.parametrize("method", UPDATE_METHODS)
@pytest.mark.parametrize("body", MALFORMED_JSON.values(), ids=MALFORMED_JSON.keys())
def test_malformed_json_on_update_is_a_clear_400(
    client: httpx.Client, tenant: Tenant, existing: dict[str, Any], body: bytes, method: str
) -> None:
    before = stored(client, tenant)
    response = send_raw(client, token_path(tenant, existing), tenant, body, method)
    assert assert_json_error(response, 400)["message"] == JSON_ERROR
    assert stored(client, tenant) == before


def test_the_server_is_healthy_after_deeply_nested_json(
    client: httpx.Client, tenant: Tenant
) -> None:
    for _ in range(3):
        response = send_raw(client, tenant.tokens_path, tenant, MALFORMED_JSON["arrays 100k deep"])
        assert_json_error(response, 400)
    assert create(client, tenant, "Still here")["description"] == "Still here"


def test_escaped_surrogate_pair_is_one_character(client: httpx.Client, tenant: Tenant) -> None:
    """``\\ud83d\\ude00`` is valid JSON for U+1F600, unlike a lone surrogate."""
    response = send_raw(client, tenant.tokens_path, tenant, b'{"description": "\\ud83d\\ude00"}')
    assert response.status_code == 200, response.text
    assert response.json()["description"] == "\U0001f600"


# --- the description field -----------------------------------------------------------------

WRONG_TYPES: dict[str, tuple[object, str, str]] = {
    "integer": (42, NOT_A_STRING, "invalid"),
    "float": (4.2, NOT_A_STRING, "invalid"),
    "true": (True, NOT_A_STRING, "invalid"),
    "false": (False, NOT_A_STRING, "invalid"),
    "null": (None, BLANK, "missing"),
    "list": (["Usher"], NOT_A_STRING, "invalid"),
    "empty list": ([], NOT_A_STRING, "invalid"),
    "object": ({"text": "Usher"}, NOT_A_STRING, "invalid"),
}


@pytest.mark.parametrize(("value", "message", "code"), WRONG_TYPES.values(), ids=WRONG_TYPES.keys())
def test_wrong_type_for_description_on_create(
    client: httpx.Client, tenant: Tenant, value: object, message: str, code: str
) -> None:
    response = client.post(tenant.tokens_path, headers=tenant.auth(), json={"description": value})
    assert_validation_failed(response, message, code)
    assert stored(client, tenant) == []


@pytest.mark.parametrize(("value", "message", "code"), WRONG_TYPES.values(), ids=WRONG_TYPES.keys())
def test_wrong_type_for_description_on_update(
    client: httpx.Client,
    tenant: Tenant,
    existing: dict[str, Any],
    value: object,
    message: str,
    code: str,
) -> None:
    before = stored(client, tenant)
    response = client.patch(
        token_path(tenant, existing), headers=tenant.auth(), json={"description": value}
    )
    assert_validation_failed(response, message, code)
    assert stored(client, tenant) == before


@pytest.mark.parametrize(
    "body", [{}, {"name": "Usher"}, {"Description": "Usher"}], ids=["empty", "other", "case"]
)
def test_missing_description_on_create(
    client: httpx.Client, tenant: Tenant, body: dict[str, str]
) -> None:
    response = client.post(tenant.tokens_path, headers=tenant.auth(), json=body)
    assert_validation_failed(response, BLANK, "missing")
    assert stored(client, tenant) == []


@pytest.mark.parametrize(
    "body",
    [b"", b"null", b"[]", b'["Usher"]', b'"Usher"', b"42", b"true"],
    ids=["no body", "null", "empty list", "list", "string", "number", "boolean"],
)
def test_create_needs_a_json_object(client: httpx.Client, tenant: Tenant, body: bytes) -> None:
    response = send_raw(client, tenant.tokens_path, tenant, body)
    body_error = assert_json_error(response, 422)
    assert body_error["message"].startswith("Validation failed: Body ")
    assert body_error["errors"][0]["field"] == "body"
    assert stored(client, tenant) == []


def test_update_without_description_changes_nothing(
    client: httpx.Client, tenant: Tenant, existing: dict[str, Any]
) -> None:
    """The Go client sends ``description`` only when set: an absent one is kept."""
    for body in (b"{}", b'{"name": "ignored"}', b"null", b""):
        response = send_raw(client, token_path(tenant, existing), tenant, body, "PATCH")
        assert response.status_code == 200, (body, response.text)
        assert response.json()["description"] == "Original"
    assert stored(client, tenant) == [(existing["id"], "Original")]


@pytest.mark.parametrize("body", [b"[]", b'"Usher"', b"42"], ids=["list", "string", "number"])
def test_update_needs_a_json_object(
    client: httpx.Client, tenant: Tenant, existing: dict[str, Any], body: bytes
) -> None:
    response = send_raw(client, token_path(tenant, existing), tenant, body, "PATCH")
    assert assert_json_error(response, 422)["errors"][0]["field"] == "body"
    assert stored(client, tenant) == [(existing["id"], "Original")]


BLANKS = {
    "empty": "",
    "space": " ",
    "spaces": "     ",
    "tab and newlines": "\t\r\n",
    "no-break space": "\u00a0",
    "ideographic space": "\u3000",
    "line separator": "\u2028",
    "255 spaces": " " * 255,
}


@pytest.mark.parametrize("value", BLANKS.values(), ids=BLANKS.keys())
def test_blank_description(client: httpx.Client, tenant: Tenant, value: str) -> None:
    response = client.post(tenant.tokens_path, headers=tenant.auth(), json={"description": value})
    assert_validation_failed(response, BLANK, "missing")
    assert stored(client, tenant) == []


@pytest.mark.parametrize("value", BLANKS.values(), ids=BLANKS.keys())
def test_blank_description_on_update(
    client: httpx.Client, tenant: Tenant, existing: dict[str, Any], value: str
) -> None:
    response = client.put(
        token_path(tenant, existing), headers=tenant.auth(), json={"description": value}
    )
    assert_validation_failed(response, BLANK, "missing")
    assert stored(client, tenant) == [(existing["id"], "Original")]


@pytest.mark.parametrize(
    "unit", ["x", "é", "\U0001f600", "界"], ids=["ascii", "latin", "emoji", "cjk"]
)
def test_description_length_counts_characters(
    client: httpx.Client, tenant: Tenant, unit: str
) -> None:
    """255 characters are accepted whatever their UTF-8 size; 256 are refused."""
    longest = unit * 255
    created = create(client, tenant, longest)
    assert created["description"] == longest
    response = client.post(
        tenant.tokens_path, headers=tenant.auth(), json={"description": unit * 256}
    )
    assert_validation_failed(response, TOO_LONG, "invalid")
    response = client.post(
        token_path(tenant, created), headers=tenant.auth(), json={"description": unit * 256}
    )
    assert_validation_failed(response, TOO_LONG, "invalid")
    assert stored(client, tenant) == [(created["id"], longest)]


@pytest.mark.parametrize(
    "value", ["\x00", "a\x00b", "Usher\x00", "\x00" * 10], ids=["nul", "inside", "end", "many"]
)
def test_nul_character_is_refused(client: httpx.Client, tenant: Tenant, value: str) -> None:
    response = client.post(tenant.tokens_path, headers=tenant.auth(), json={"description": value})
    body = assert_json_error(response, 422)
    assert body["message"].startswith("Validation failed: Description ")
    assert body["errors"] == [{"field": "description", "code": "invalid"}]
    assert stored(client, tenant) == []


@pytest.mark.parametrize(
    "escaped",
    [b"\\ud800", b"\\udfff", b"a\\udc00b", b"\\ude00\\ud83d", b"\\ud83d"],
    ids=["high", "low", "inside", "reversed pair", "unpaired high"],
)
def test_lone_surrogate_is_refused(client: httpx.Client, tenant: Tenant, escaped: bytes) -> None:
    response = send_raw(client, tenant.tokens_path, tenant, b'{"description": "' + escaped + b'"}')
    assert_validation_failed(
        response, "Validation failed: Description must be valid Unicode text", "invalid"
    )
    assert stored(client, tenant) == []


UNICODE = {
    "emoji": "Usher \U0001f680\U0001f525",
    "zwj family": "\U0001f468\u200d\U0001f469\u200d\U0001f467\u200d\U0001f466",
    "flag": "\U0001f1f3\U0001f1ff",
    "rtl arabic": "\u0645\u0641\u062a\u0627\u062d \u0627\u0644\u062a\u062b\u0628\u064a\u062a",
    "rtl hebrew with marks": "\u200f\u05d0\u05e9\u05e8 \u202bembedded\u202c",
    "combining": "e\u0301 n\u0303 a\u030a\u0327",
    "zalgo": "Z\u0351\u036b\u0343a\u0310\u036cl\u0357g\u0344o\u0489",
    "decomposed vs composed": "Cafe\u0301 / Caf\u00e9",
    "cjk": "\u6ce8\u518c\u8868\u4ee4\u724c \u30c8\u30fc\u30af\u30f3 \ud1a0\ud070",
    "astral cjk": "\U00020000\U0002a6d6",
    "mixed scripts": "Usher \u0423\u0448\u0435\u0440 \u03a5\u03c3\u03b5\u03c1 \u0909\u0936\u0930",
    "private use and specials": "\ue000\ufffd\ufeff\u00ad",
    "control characters": "tab\there\nnewline\u0007bell",
    "quotes and backslashes": '"quoted" \\ back\\slash / solidus',
    "html": "<script>alert('x')</script>&amp;",
}


@pytest.mark.parametrize("description", UNICODE.values(), ids=UNICODE.keys())
def test_unicode_descriptions_round_trip_exactly(
    client: httpx.Client, tenant: Tenant, description: str
) -> None:
    created = create(client, tenant, description)
    assert created["description"] == description
    fetched = client.get(token_path(tenant, created), headers=tenant.auth())
    assert fetched.status_code == 200
    assert fetched.json()["description"] == description
    assert stored(client, tenant) == [(created["id"], description)]

    # Sent unescaped too (not only as \\u escapes): the server must not normalize either way.
    changed = unicodedata.normalize("NFD", description) + " \u2713"
    raw = json.dumps({"description": changed}, ensure_ascii=False).encode()
    updated = send_raw(client, token_path(tenant, created), tenant, raw, "PATCH")
    assert updated.status_code == 200, updated.text
    assert updated.json()["description"] == changed
    fetched = client.get(token_path(tenant, created), headers=tenant.auth())
    assert fetched.json()["description"] == changed
    assert stored(client, tenant) == [(created["id"], changed)]


# --- content types -------------------------------------------------------------------------

WRONG_CONTENT = {
    "text/plain": {
        "content": b'{"description": "Usher"}',
        "headers": {"Content-Type": "text/plain"},
    },
    "form-urlencoded": {"data": {"description": "Usher"}},
    "multipart": {"files": {"description": (None, "Usher")}},
    "multipart file": {
        "files": {"file": ("d.json", b'{"description": "Usher"}', "application/json")}
    },
    "xml": {
        "content": b"<description>Usher</description>",
        "headers": {"Content-Type": "application/xml"},
    },
    "empty content type": {"content": b'{"description": "Usher"}', "headers": {"Content-Type": ""}},
}


def _send(
    client: httpx.Client, method: str, path: str, tenant: Tenant, kwargs: dict[str, Any]
) -> httpx.Response:
    headers = {**tenant.auth(), **kwargs.get("headers", {})}
    rest = {key: value for key, value in kwargs.items() if key != "headers"}
    return client.request(method, path, headers=headers, **rest)


@pytest.mark.parametrize("kwargs", WRONG_CONTENT.values(), ids=WRONG_CONTENT.keys())
def test_wrong_content_type_on_create_is_415(
    client: httpx.Client, tenant: Tenant, kwargs: dict[str, Any]
) -> None:
    response = _send(client, "POST", tenant.tokens_path, tenant, kwargs)
    assert "JSON" in assert_json_error(response, 415)["message"]
    assert stored(client, tenant) == []


@pytest.mark.parametrize("method", UPDATE_METHODS)
@pytest.mark.parametrize("kwargs", WRONG_CONTENT.values(), ids=WRONG_CONTENT.keys())
def test_wrong_content_type_on_update_is_415(
    client: httpx.Client,
    tenant: Tenant,
    existing: dict[str, Any],
    kwargs: dict[str, Any],
    method: str,
) -> None:
    response = _send(client, method, token_path(tenant, existing), tenant, kwargs)
    assert "JSON" in assert_json_error(response, 415)["message"]
    assert stored(client, tenant) == [(existing["id"], "Original")]


@pytest.mark.parametrize(
    "content_type",
    ["application/json; charset=utf-8", "APPLICATION/JSON", "application/vnd.api+json"],
)
def test_json_media_types_are_accepted(
    client: httpx.Client, tenant: Tenant, content_type: str
) -> None:
    headers = {**tenant.auth(), "Content-Type": content_type}
    response = client.post(tenant.tokens_path, headers=headers, content=b'{"description": "Usher"}')
    assert response.status_code == 200, response.text
    assert [description for _, description in stored(client, tenant)] == ["Usher"]


# --- body size -----------------------------------------------------------------------------


def _ten_megabytes() -> Iterator[bytes]:
    chunk = b'{"description": "' + b"x" * (64 * 1024)
    sent = 0
    while sent < TEN_MB:
        yield chunk
        sent += len(chunk)


@pytest.mark.parametrize("chunked", [False, True], ids=["content-length", "chunked"])
@pytest.mark.parametrize("target", ["create", "update"])
def test_ten_megabyte_body_is_413_and_the_server_survives(
    server: Server,
    client: httpx.Client,
    tenant: Tenant,
    existing: dict[str, Any],
    chunked: bool,
    target: str,
) -> None:
    path = tenant.tokens_path if target == "create" else token_path(tenant, existing)
    headers = {**tenant.auth(), "Content-Type": "application/json"}
    # A connection of its own: the server may close it after refusing the body.
    with server.client(timeout=60) as own:
        if chunked:
            response = own.post(path, headers=headers, content=_ten_megabytes())
            assert "content-length" not in response.request.headers
        else:
            response = own.post(path, headers=headers, content=b"x" * TEN_MB)
            assert response.request.headers["content-length"] == str(TEN_MB)
    assert "too large" in assert_json_error(response, 413)["message"]
    assert stored(client, tenant) == [(existing["id"], "Original")]
    assert create(client, tenant, "After")["description"] == "After"


# --- query parameters ----------------------------------------------------------------------

BAD_QUERIES = {
    "page=0": ("page", "0"),
    "page=-1": ("page", "-1"),
    "page=abc": ("page", "abc"),
    "page=1.5": ("page", "1.5"),
    "page empty": ("page", ""),
    "page huge": ("page", "99999999999999999999"),
    "per_page=0": ("per_page", "0"),
    "per_page=-5": ("per_page", "-5"),
    "per_page=abc": ("per_page", "abc"),
    "per_page huge": ("per_page", "99999999999999999999"),
}


@pytest.mark.parametrize(("name", "value"), BAD_QUERIES.values(), ids=BAD_QUERIES.keys())
def test_bad_pagination_is_422(client: httpx.Client, tenant: Tenant, name: str, value: str) -> None:
    response = client.get(tenant.tokens_path, params={name: value}, headers=tenant.auth())
    body = assert_json_error(response, 422)
    assert body["message"].startswith("Validation failed: ")
    assert body["errors"] == [{"field": name, "code": "invalid"}]


def test_per_page_over_100_means_100(client: httpx.Client, tenant: Tenant) -> None:
    created = {create(client, tenant, f"Token {number}")["id"] for number in range(101)}
    response = client.get(tenant.tokens_path, params={"per_page": 1000}, headers=tenant.auth())
    assert response.status_code == 200, response.text
    first = [item["id"] for item in response.json()]
    assert len(first) == 100
    link = response.headers["link"]
    assert '?page=2&per_page=100>; rel="next"' in link
    assert "per_page=1000" not in link
    second = client.get(
        tenant.tokens_path, params={"per_page": 1000, "page": 2}, headers=tenant.auth()
    )
    assert second.status_code == 200, second.text
    rest = [item["id"] for item in second.json()]
    assert len(rest) == 1
    assert set(first) | set(rest) == created


# --- routes and methods --------------------------------------------------------------------


@pytest.mark.parametrize(
    "path",
    [
        "/nope",
        "/v2",
        "/v2/packages/organizations/acme/registries/reg/tokens/id/extra",
        "/v2/packages/organizations/acme/registries/reg/no-such-collection",
        "/v2/organizations/acme/pipelines",
        "/v3/user",
        "/%ff%fe",
    ],
)
def test_unknown_routes_are_json_404(client: httpx.Client, tenant: Tenant, path: str) -> None:
    for headers in (tenant.auth(), {}):
        response = client.get(path, headers=headers)
        assert assert_json_error(response, 404)["message"] == "Not Found"


@pytest.mark.parametrize(
    ("method", "path", "allowed"),
    [
        ("DELETE", "{tokens}", "GET, HEAD, POST"),
        ("PUT", "{tokens}", "GET, HEAD, POST"),
        ("OPTIONS", "{tokens}", "GET, HEAD, POST"),
        ("TRACE", "{tokens}/some-id", "DELETE, GET, HEAD, PATCH, POST, PUT"),
        ("POST", "/v2/user", "GET, HEAD"),
        ("PATCH", "/v2/access-token", "DELETE, GET, HEAD"),
        ("DELETE", "/v2/organizations/acme", "GET, HEAD"),
        ("POST", "/openapi.json", "GET, HEAD"),
    ],
)
def test_unsupported_methods_are_json_405_with_allow(
    client: httpx.Client, tenant: Tenant, method: str, path: str, allowed: str
) -> None:
    """``Allow`` lists every method of the resource, even when several routes serve it."""
    target = path.replace("{tokens}", tenant.tokens_path)
    before = stored(client, tenant)
    response = client.request(method, target, headers=tenant.auth(), json={"description": "x"})
    assert assert_json_error(response, 405)["message"] == "Method Not Allowed"
    assert response.headers["allow"] == allowed
    assert stored(client, tenant) == before


# --- any JSON at all -----------------------------------------------------------------------

# Strings include lone surrogates, NUL and every other code point.
ANY_TEXT = st.text(st.characters(exclude_categories=()), max_size=300)
ANY_JSON = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=False, allow_infinity=False)
    | ANY_TEXT,
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(ANY_TEXT, children, max_size=4)
    ),
    max_leaves=12,
)
# Bodies that reach the description check more often than uniformly random JSON would.
ANY_BODY = (
    ANY_JSON
    | st.fixed_dictionaries({"description": ANY_JSON})
    | st.fixed_dictionaries({"description": ANY_TEXT}, optional={"extra": ANY_JSON})
)


def valid_description(value: object) -> bool:
    """The contract: a string of 1-255 characters, not all whitespace, no NUL, no surrogate."""
    return (
        isinstance(value, str)
        and 0 < len(value) <= 255
        and not value.isspace()
        and "\x00" not in value
        and not _has_surrogate(value)
    )


def _has_surrogate(value: object) -> bool:
    if isinstance(value, str):
        return any(0xD800 <= ord(char) <= 0xDFFF for char in value)
    if isinstance(value, list):
        return any(_has_surrogate(item) for item in value)
    if isinstance(value, dict):
        return any(_has_surrogate(key) or _has_surrogate(item) for key, item in value.items())
    return False


def encode(body: object, ascii_only: bool) -> bytes:
    # Unescaped lone surrogates cannot be UTF-8: they make invalid bytes, also worth sending.
    return json.dumps(body, ensure_ascii=ascii_only).encode("utf-8", "surrogatepass")


@pytest.fixture(scope="module")
def property_client(server: Server) -> Iterator[httpx.Client]:
    with server.client(timeout=30) as http:
        yield http


@pytest.fixture(scope="module")
def property_tenant(seeder: Seeder) -> Tenant:
    return seeder.tenant()


PROPERTY_SETTINGS = settings(
    max_examples=150,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)


def _check_status(response: httpx.Response, sent: bytes) -> None:
    """A success, or a 4xx with a JSON message: never a 5xx."""
    assert response.status_code < 500, (sent[:200], response.status_code, response.text)
    if response.status_code != 200:
        assert 400 <= response.status_code < 500, (sent[:200], response.status_code)
        assert_json_error(response, response.status_code)


@PROPERTY_SETTINGS
@given(body=ANY_BODY, ascii_only=st.booleans())
def test_any_json_body_on_create(
    property_client: httpx.Client, property_tenant: Tenant, body: object, ascii_only: bool
) -> None:
    client, tenant = property_client, property_tenant
    sent = encode(body, ascii_only)
    before = stored(client, tenant)
    response = send_raw(client, tenant.tokens_path, tenant, sent)
    _check_status(response, sent)
    bytes_ok = ascii_only or not _has_surrogate(body)
    should_succeed = (
        bytes_ok and isinstance(body, dict) and valid_description(body.get("description"))
    )
    assert (response.status_code == 200) == should_succeed, (sent[:200], response.text)
    if response.status_code == 200:
        assert isinstance(body, dict)
        created = response.json()
        assert created["description"] == body["description"]
        fetched = client.get(f"{tenant.tokens_path}/{created['id']}", headers=tenant.auth())
        assert fetched.json()["description"] == body["description"]
        # Keep the list short, so `stored` sees it all on one page.
        deleted = client.delete(f"{tenant.tokens_path}/{created['id']}", headers=tenant.auth())
        assert deleted.status_code == 200
    else:
        assert stored(client, tenant) == before


@pytest.fixture(scope="module")
def property_token(property_client: httpx.Client, property_tenant: Tenant) -> dict[str, Any]:
    return create(property_client, property_tenant, "Property target")


@PROPERTY_SETTINGS
@given(body=ANY_BODY, ascii_only=st.booleans(), method=st.sampled_from(UPDATE_METHODS))
def test_any_json_body_on_update(
    property_client: httpx.Client,
    property_tenant: Tenant,
    property_token: dict[str, Any],
    body: object,
    ascii_only: bool,
    method: str,
) -> None:
    client, tenant = property_client, property_tenant
    path = f"{tenant.tokens_path}/{property_token['id']}"
    before = client.get(path, headers=tenant.auth()).json()["description"]
    sent = encode(body, ascii_only)
    response = send_raw(client, path, tenant, sent, method)
    _check_status(response, sent)
    bytes_ok = ascii_only or not _has_surrogate(body)
    changes = isinstance(body, dict) and "description" in body
    should_succeed = bytes_ok and (
        body is None
        or (isinstance(body, dict) and (not changes or valid_description(body["description"])))
    )
    assert (response.status_code == 200) == should_succeed, (sent[:200], response.text)
    after = client.get(path, headers=tenant.auth()).json()["description"]
    if response.status_code == 200:
        assert isinstance(body, dict) or body is None
        expected = body["description"] if isinstance(body, dict) and changes else before
        assert response.json()["description"] == expected
        assert after == expected
    else:
        assert after == before
