"""The console in process: a server whose ``WEB_URL`` is its own address, people with
passwords, and a client that keeps cookies like a browser (``tests/e2e/test_console_browser.py``
drives a real one)."""

import re
from collections.abc import Iterator, Mapping
from pathlib import Path

import httpx
import pytest
from starlette.testclient import TestClient

from tests.harness import InProcessServer, Seeder, Tenant, in_process_server
from tests.package_helpers import admin_tenant

PASSWORD = "correct horse battery staple"
READ_AND_PUBLISH = ("read_registries", "write_registries", "read_packages", "write_packages")
_CSRF = re.compile(r'name="csrf_token" value="([^"]+)"')


@pytest.fixture(scope="session")
def console_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[InProcessServer]:
    # Sign-in limits off, as the harness turns the REST ones off: every test here signs
    # in from the same address (test_sign_in.py tests the limits on servers of their own).
    with in_process_server(
        tmp_path_factory.mktemp("console"),
        env={
            "REGISTRY_TOKENS_WEB_URL": "{base_url}",
            "REGISTRY_TOKENS_SIGN_IN_ATTEMPTS_PER_CLIENT": "0",
            "REGISTRY_TOKENS_SIGN_IN_ATTEMPTS_PER_ACCOUNT": "0",
        },
    ) as started:
        yield started


@pytest.fixture(scope="session")
def console_seeder(console_server: InProcessServer) -> Seeder:
    return Seeder(console_server)


@pytest.fixture
def member(console_seeder: Seeder) -> Tenant:
    """A member (not an admin) of an organization with one registry, with a password."""
    tenant = console_seeder.tenant(scopes=READ_AND_PUBLISH)
    console_seeder.services.users.set_password(tenant.email, PASSWORD)
    return tenant


@pytest.fixture
def admin(console_seeder: Seeder) -> Tenant:
    tenant = admin_tenant(console_seeder)
    console_seeder.services.users.set_password(tenant.email, PASSWORD)
    return tenant


@pytest.fixture
def browser(console_server: InProcessServer) -> Iterator[TestClient]:
    """A client with a cookie jar, signed in by nobody yet."""
    with console_server.client() as client:
        yield client


def csrf_of(html: str) -> str:
    found = _CSRF.search(html)
    assert found is not None, html
    return found[1]


def sign_in(browser: TestClient, email: str, password: str = PASSWORD) -> None:
    page = browser.get("/sign-in")
    assert page.status_code == 200
    answer = browser.post(
        "/sign-in", data={"email": email, "password": password, "csrf_token": csrf_of(page.text)}
    )
    assert answer.status_code == 303, answer.text
    assert answer.headers["location"] == "/organizations"


def post_form(
    browser: TestClient, page_path: str, action: str, data: Mapping[str, str | list[str]]
) -> httpx.Response:
    """Posts ``data`` to ``action`` with the CSRF token of the page at ``page_path``, as
    submitting that page's form does."""
    page = browser.get(page_path)
    assert page.status_code == 200, page.text
    answer: httpx.Response = browser.post(action, data={**data, "csrf_token": csrf_of(page.text)})
    return answer


def web_path(org: str, registry: str | None = None) -> str:
    path = f"/organizations/{org}"
    return path if registry is None else f"{path}/packages/registries/{registry}"


def storage(server: InProcessServer) -> Path:
    return server.settings().package_storage_path
