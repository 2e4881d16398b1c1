"""Issue 11, leak reports: only what a report changes is recorded, reports are bounded and
rate-limited, and bodies no parser should recurse into are a clear 4xx, never a 500.

Each test sends its reports from an address of its own (``X-Forwarded-For`` through the
trusted loopback proxy), so the per-address rate limit of one never touches another's.
"""

import itertools
import json
import threading
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from registry_tokens.api.http import MAX_JSON_DEPTH
from registry_tokens.kit.secrets import SecretKind, generate_secret
from registry_tokens.settings import Settings
from tests.harness import Seeder, Server, Tenant, in_process_server
from tests.registry_tokens.test_token_lifecycle import (
    audit_events,
    create_token,
    install,
    report_body,
    rotate,
    sign,
    token_url,
)

LEAKED = "REGISTRY_TOKEN_LEAK_REPORTED"
PER_CLIENT = 40  # the rate limit of each reporting address in these tests
WINDOW_SECONDS = 3600
# The shipped defaults, which the test server keeps.
MAX_TOKENS: int = Settings.model_fields["secret_scanning_max_tokens"].default
MAX_BODY_BYTES: int = Settings.model_fields["secret_scanning_max_body_bytes"].default
_addresses = itertools.count(1)


@pytest.fixture(scope="module")
def signing_key() -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(ec.SECP256R1())


@pytest.fixture(scope="module")
def scanning_server(
    tmp_path_factory: pytest.TempPathFactory, signing_key: ec.EllipticCurvePrivateKey
) -> Iterator[Server]:
    """Takes reports signed by ``signing_key`` (id k1), with the shipped report bounds,
    behind a trusted proxy (127.0.0.1), limiting each address to ``PER_CLIENT`` requests."""
    workdir = tmp_path_factory.mktemp("scanning-server")
    pem = (
        signing_key.public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
        .decode()
    )
    keys_file = workdir / "secret-scanning-keys.json"
    keys_file.write_text(json.dumps({"public_keys": [{"key_identifier": "k1", "key": pem}]}))
    env = {
        "REGISTRY_TOKENS_TRUSTED_PROXIES": "127.0.0.1",
        "REGISTRY_TOKENS_SECRET_SCANNING_KEYS_FILE": str(keys_file),
        "REGISTRY_TOKENS_RATE_LIMIT_PER_CLIENT": str(PER_CLIENT),
        "REGISTRY_TOKENS_RATE_LIMIT_WINDOW_SECONDS": str(WINDOW_SECONDS),
    }
    with in_process_server(workdir, env=env) as started:
        yield started


@pytest.fixture(scope="module")
def scanning_seeder(scanning_server: Server) -> Seeder:
    return Seeder(scanning_server)


@pytest.fixture
def http(scanning_server: Server) -> Iterator[httpx.Client]:
    with scanning_server.client(timeout=60) as client:
        yield client


@pytest.fixture
def tenant(scanning_seeder: Seeder) -> Tenant:
    return scanning_seeder.tenant()


@pytest.fixture
def reporter() -> str:
    """An address of this test's own to report from."""
    number = next(_addresses)
    return f"198.51.{number // 250}.{number % 250 + 1}"


class Reporter:
    """Signs and sends reports from one address."""

    def __init__(self, http: httpx.Client, key: ec.EllipticCurvePrivateKey, address: str):
        self.http, self.key, self.address = http, key, address

    def send(self, body: bytes, *, signed: bool = True) -> httpx.Response:
        headers = {
            "Content-Type": "application/json",
            "User-Agent": "GitHub-Secret-Scanning",
            "X-Forwarded-For": self.address,
            "Github-Public-Key-Identifier": "k1",
        }
        if signed:
            headers["Github-Public-Key-Signature"] = sign(self.key, body)
        return self.http.post("/secret-scanning/github", content=body, headers=headers)


@pytest.fixture
def github(http: httpx.Client, signing_key: ec.EllipticCurvePrivateKey, reporter: str) -> Reporter:
    return Reporter(http, signing_key, reporter)


def leak_events(http: httpx.Client, tenant: Tenant) -> list[dict[str, Any]]:
    return audit_events(http, tenant.org, tenant.auth(), event_type=LEAKED)


def labels(response: httpx.Response) -> list[str]:
    assert response.status_code == 200, response.text
    return [answer["label"] for answer in response.json()]


def assert_error(response: httpx.Response, status: int) -> str:
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/json")
    message: str = response.json()["message"]
    return message


def live(http: httpx.Client, tenant: Tenant, secret: str) -> bool:
    return install(http, tenant.org, tenant.registry, secret).status_code == 200


# --------------------------------------------------------------------------- what changed


def test_a_replayed_report_records_one_event(
    http: httpx.Client, tenant: Tenant, github: Reporter
) -> None:
    leaked = create_token(http, tenant)
    body = report_body(leaked["token"])
    assert labels(github.send(body)) == ["true_positive"]
    for _ in range(20):
        assert labels(github.send(body)) == ["false_positive"]
    events = leak_events(http, tenant)
    assert [(event["subject"]["id"], event["data"]["live"]) for event in events] == [
        (leaked["id"], True)
    ]


def test_a_token_revoked_before_its_report_records_nothing(
    http: httpx.Client, tenant: Tenant, github: Reporter
) -> None:
    deleted = create_token(http, tenant)
    assert http.delete(token_url(tenant, deleted["id"]), headers=tenant.auth()).status_code == 200
    assert labels(github.send(report_body(deleted["token"]))) == ["false_positive"]
    assert leak_events(http, tenant) == []


def test_copies_of_a_token_in_one_report_count_once(
    http: httpx.Client, tenant: Tenant, github: Reporter
) -> None:
    leaked = create_token(http, tenant)
    bystander = create_token(http, tenant)
    body = report_body(*[leaked["token"]] * (MAX_TOKENS - 1), bystander["token"])
    assert labels(github.send(body)) == ["true_positive"] * MAX_TOKENS
    assert sorted(event["subject"]["id"] for event in leak_events(http, tenant)) == sorted(
        [leaked["id"], bystander["id"]]
    )


def test_a_retired_secret_records_only_the_end_of_its_grace(
    http: httpx.Client, tenant: Tenant, github: Reporter
) -> None:
    graced = create_token(http, tenant)
    assert rotate(http, tenant, graced["id"], {"grace_period_seconds": 600}).status_code == 200
    cut_off = create_token(http, tenant)
    assert rotate(http, tenant, cut_off["id"], {"grace_period_seconds": 0}).status_code == 200

    body = report_body(graced["token"], cut_off["token"])
    assert labels(github.send(body)) == ["true_positive", "false_positive"]
    assert labels(github.send(body)) == ["false_positive", "false_positive"]
    events = leak_events(http, tenant)
    assert [(event["subject"]["id"], event["data"]["secret"]) for event in events] == [
        (graced["id"], "retired")
    ]
    assert not live(http, tenant, graced["token"])


def test_concurrent_copies_of_a_report_record_one_event(
    scanning_server: Server,
    http: httpx.Client,
    tenant: Tenant,
    signing_key: ec.EllipticCurvePrivateKey,
    reporter: str,
) -> None:
    leaked = create_token(http, tenant)
    body = report_body(leaked["token"])
    start = threading.Barrier(8)
    answers: list[list[str]] = []

    def send() -> None:
        with scanning_server.client(timeout=60) as client:
            start.wait()
            answers.append(labels(Reporter(client, signing_key, reporter).send(body)))

    threads = [threading.Thread(target=send) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(answers) == [["false_positive"]] * 7 + [["true_positive"]]
    assert len(leak_events(http, tenant)) == 1


# --------------------------------------------------------------------------- bounds


def test_a_report_holds_at_most_max_tokens(
    http: httpx.Client, tenant: Tenant, github: Reporter
) -> None:
    leaked = create_token(http, tenant)
    noise = [generate_secret(SecretKind.REGISTRY_TOKEN) for _ in range(MAX_TOKENS)]

    too_many = github.send(report_body(leaked["token"], *noise))
    message = assert_error(too_many, 422)
    assert message == f"Validation failed: a report may hold at most {MAX_TOKENS} tokens"
    assert live(http, tenant, leaked["token"])
    assert leak_events(http, tenant) == []

    at_the_edge = github.send(report_body(leaked["token"], *noise[1:]))
    assert labels(at_the_edge) == ["true_positive"] + ["false_positive"] * (MAX_TOKENS - 1)
    assert not live(http, tenant, leaked["token"])


def padded(body: bytes, size: int) -> bytes:
    """``body`` with trailing whitespace (still the same JSON) to exactly ``size`` bytes."""
    assert len(body) <= size
    return body + b" " * (size - len(body))


def test_a_report_body_holds_at_most_max_body_bytes(
    http: httpx.Client, tenant: Tenant, github: Reporter
) -> None:
    leaked = create_token(http, tenant)
    body = report_body(leaked["token"])

    over = github.send(padded(body, MAX_BODY_BYTES + 1))
    message = assert_error(over, 413)
    assert message == f"The request body is too large (the limit is {MAX_BODY_BYTES} bytes)"
    assert live(http, tenant, leaked["token"])

    assert labels(github.send(padded(body, MAX_BODY_BYTES))) == ["true_positive"]
    assert not live(http, tenant, leaked["token"])


def test_reports_are_rate_limited_per_address(
    http: httpx.Client, tenant: Tenant, github: Reporter, signing_key: ec.EllipticCurvePrivateKey
) -> None:
    left = WINDOW_SECONDS - time.time() % WINDOW_SECONDS
    if left < 60:  # start in a fresh window, so the burst cannot straddle two
        time.sleep(left)
    leaked = create_token(http, tenant)
    noise = report_body(generate_secret(SecretKind.REGISTRY_TOKEN))
    for number in range(1, PER_CLIENT + 1):
        # Unsigned reports count too: they cost a signature check.
        response = github.send(noise, signed=number % 2 == 0)
        assert response.status_code == (200 if number % 2 == 0 else 401), response.text
        assert response.headers["RateLimit-Remaining"] == str(PER_CLIENT - number)

    refused = github.send(report_body(leaked["token"]))
    message = assert_error(refused, 429)
    assert message.startswith("You have exceeded your API rate limit.")
    assert 0 < int(refused.headers["Retry-After"]) <= WINDOW_SECONDS
    assert live(http, tenant, leaked["token"])
    assert leak_events(http, tenant) == []

    # Another address is not held back by this one.
    elsewhere = Reporter(http, signing_key, "203.0.113.77")
    assert labels(elsewhere.send(report_body(leaked["token"]))) == ["true_positive"]


# --------------------------------------------------------------------------- bad bodies


def nested(depth: int, kind: str) -> bytes:
    if kind == "arrays":
        return b"[" * depth + b"]" * depth
    return b'{"a":' * depth + b"1" + b"}" * depth


@pytest.mark.parametrize(
    ("kind", "depth"),
    [("arrays", 100_000), ("objects", 40_000)],  # as deep as fits in the body limit
)
def test_a_signed_report_nested_deep_is_400(
    http: httpx.Client, tenant: Tenant, github: Reporter, kind: str, depth: int
) -> None:
    message = assert_error(github.send(nested(depth, kind)), 400)
    assert message == (
        "Problems parsing JSON: the report is not valid JSON "
        f"(Nested more than {MAX_JSON_DEPTH} levels deep)"
    )
    token = create_token(http, tenant)  # and the server is well
    assert labels(github.send(report_body(token["token"]))) == ["true_positive"]


def test_report_nesting_edge(github: Reporter) -> None:
    """``MAX_JSON_DEPTH`` levels parse (and are not a report); one more does not."""
    assert assert_error(github.send(nested(MAX_JSON_DEPTH, "arrays")), 422).startswith(
        "Validation failed: every reported item needs a token string"
    )
    in_a_string = b'[{"token": "' + b"[" * 1000 + b'", "url": "\\"[{"}]'
    assert labels(github.send(in_a_string)) == ["false_positive"]
    assert assert_error(github.send(nested(MAX_JSON_DEPTH + 1, "arrays")), 400).endswith(
        f"(Nested more than {MAX_JSON_DEPTH} levels deep)"
    )


@pytest.mark.parametrize("field", ["token", "type", "url", "source"])
@pytest.mark.parametrize("escaped", ["\\ud800", "\\udfff", "a\\udc00b"])
def test_a_lone_surrogate_in_a_signed_report_is_422(
    http: httpx.Client, tenant: Tenant, github: Reporter, field: str, escaped: str
) -> None:
    leaked = create_token(http, tenant)
    item = {"token": leaked["token"], "type": "t", "url": "https://x", "source": "content"}
    text = json.dumps([item]).replace(json.dumps(item[field]), f'"{escaped}"')
    response = github.send(text.encode())
    assert_error(response, 422)
    assert response.json() == {
        "message": f"Validation failed: {field.capitalize()} must be valid Unicode text",
        "errors": [{"field": field, "code": "invalid"}],
    }
    assert live(http, tenant, leaked["token"])
    assert leak_events(http, tenant) == []


# --------------------------------------------------------------------------- the REST door


def test_rest_bodies_nest_at_most_max_json_depth(http: httpx.Client, tenant: Tenant) -> None:
    """The REST door's strict parser has the same bound: one level more is a 400."""
    headers = {**tenant.auth(), "Content-Type": "application/json"}

    def create(value: bytes) -> httpx.Response:
        return http.post(
            tenant.tokens_path, headers=headers, content=b'{"description": ' + value + b"}"
        )

    within = create(nested(MAX_JSON_DEPTH - 1, "arrays"))
    assert assert_error(within, 422).startswith("Validation failed: Description ")
    brackets = b"[{" * MAX_JSON_DEPTH
    for text in (  # brackets in strings are text, whatever escapes come before them
        b'["' + brackets + b'"]',
        b'["\\\\", "' + brackets + b'"]',
        b'["\\"' + brackets + b'"]',
        b'["\\\\\\"' + brackets + b'\\\\"]',
    ):
        assert assert_error(create(text), 422).startswith("Validation failed: Description ")
    too_deep = create(nested(MAX_JSON_DEPTH, "arrays"))
    assert assert_error(too_deep, 400).startswith("Problems parsing JSON")
    assert http.get(tenant.tokens_path, headers=tenant.auth()).json() == []
