"""Signing in to the console: one answer for every refusal, attempts limited per address
and per account, sessions that end when idle, when too old, on sign-out and on a new
password, and cookies that cannot be forged."""

import re
import time
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest
from starlette.testclient import TestClient

from registry_tokens.users.service import UserService
from tests.console.conftest import PASSWORD, csrf_of, sign_in, web_path
from tests.harness import Clock, InProcessServer, Seeder, Tenant, in_process_server

IDLE = timedelta(seconds=600)
LIFETIME = timedelta(seconds=3600)


def attempt(browser: TestClient, email: str, password: str) -> tuple[int, str]:
    form = browser.get("/sign-in")
    answer = browser.post(
        "/sign-in", data={"email": email, "password": password, "csrf_token": csrf_of(form.text)}
    )
    return answer.status_code, answer.text


def fresh_sign_in_window(seconds: int = 900, min_seconds_left: float = 30) -> None:
    """Start the attempts early in a sign-in window (the default 900 s), so they cannot
    straddle two."""
    left = seconds - time.time() % seconds
    if left < min_seconds_left:
        time.sleep(left + 0.05)


def message(page: str) -> str:
    found = re.search(r'id="sign-in-error">([^<]*)<', page)
    assert found is not None, page
    return found[1]


def test_an_unknown_email_and_a_wrong_password_get_the_same_answer(
    browser: TestClient, member: Tenant, console_seeder: Seeder
) -> None:
    without_password = console_seeder.tenant()  # a user who never set one
    answers = [
        attempt(browser, member.email, "wrong password, long enough"),
        attempt(browser, "nobody-at-all@example.test", PASSWORD),
        attempt(browser, without_password.email, PASSWORD),
        attempt(browser, "not an email", PASSWORD),
        attempt(browser, member.email, ""),
        attempt(browser, member.email, "x" * 5000),
    ]
    assert {status for status, _ in answers} == {401}
    assert {message(page) for _, page in answers} == {"Incorrect email or password"}
    assert "registry_tokens_session" not in browser.cookies
    # The password is never written back into the page.
    assert all("wrong password" not in page for _, page in answers)


@pytest.fixture
def limited(tmp_path: Path) -> Iterator[InProcessServer]:
    with in_process_server(
        tmp_path,
        env={
            "REGISTRY_TOKENS_WEB_URL": "{base_url}",
            "REGISTRY_TOKENS_SIGN_IN_ATTEMPTS_PER_ACCOUNT": "3",
            "REGISTRY_TOKENS_SIGN_IN_ATTEMPTS_PER_CLIENT": "5",
        },
    ) as server:
        yield server


def test_sign_in_attempts_are_limited_per_account_and_per_address(
    limited: InProcessServer,
) -> None:
    seeder = Seeder(limited)
    first, second = seeder.tenant(), seeder.tenant()
    for tenant in (first, second):
        seeder.services.users.set_password(tenant.email, PASSWORD)
    fresh_sign_in_window()
    with limited.client() as browser:
        # The account: three failures, then even the right password waits.
        for _ in range(3):
            assert attempt(browser, first.email, "not the password!")[0] == 401
        status, page = attempt(browser, first.email, PASSWORD)
        assert status == 429
        assert "Too many sign-in attempts" in page
        # Another account from the same address (3 of its 5 failures spent): signing in
        # is not a failure and costs nothing, however often.
        for _ in range(4):
            assert attempt(browser, second.email, PASSWORD)[0] == 303
        assert attempt(browser, second.email, "not the password!")[0] == 401  # 4 of 5
        assert attempt(browser, second.email, "not the password!")[0] == 401  # 5 of 5
        status, page = attempt(browser, second.email, PASSWORD)
        assert status == 429  # the address has failed 5 times: everyone waits
    with limited.client() as browser:
        # An unknown email from that address too (the limit tells nothing of accounts).
        form = browser.get("/sign-in")
        answer = browser.post(
            "/sign-in",
            data={
                "email": "nobody@example.test",
                "password": "x",
                "csrf_token": csrf_of(form.text),
            },
        )
        assert answer.status_code == 429
        assert int(answer.headers["retry-after"]) > 0


def test_an_unknown_account_is_limited_like_a_known_one(limited: InProcessServer) -> None:
    fresh_sign_in_window()
    with limited.client() as browser:
        statuses = [attempt(browser, "ghost@example.test", "whatever it is")[0] for _ in range(4)]
    assert statuses == [401, 401, 401, 429]


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def timed(tmp_path: Path, clock: Clock) -> Iterator[InProcessServer]:
    with in_process_server(
        tmp_path,
        env={
            "REGISTRY_TOKENS_WEB_URL": "{base_url}",
            "REGISTRY_TOKENS_CONSOLE_SESSION_IDLE_SECONDS": str(int(IDLE.total_seconds())),
            "REGISTRY_TOKENS_CONSOLE_SESSION_MAX_SECONDS": str(int(LIFETIME.total_seconds())),
        },
        clock=clock,
    ) as server:
        yield server


def signed_in_person(server: InProcessServer) -> tuple[Seeder, Tenant]:
    seeder = Seeder(server)
    tenant = seeder.tenant()
    seeder.services.users.set_password(tenant.email, PASSWORD)
    return seeder, tenant


def test_a_session_ends_after_its_idle_time_to_the_millisecond(
    timed: InProcessServer, clock: Clock
) -> None:
    _, tenant = signed_in_person(timed)
    page = web_path(tenant.org)
    with timed.client() as browser:
        sign_in(browser, tenant.email)
        clock.now += IDLE
        assert browser.get(page).status_code == 200  # exactly the idle time: still on
        clock.now += IDLE  # seen again just now, so idle counts from then
        assert browser.get(page).status_code == 200
        clock.now += IDLE + timedelta(milliseconds=1)
        gone = browser.get(page)
        assert gone.status_code == 303
        assert gone.headers["location"].startswith("/sign-in?next=")
        assert 'registry_tokens_session=""' in gone.headers["set-cookie"]


def test_a_session_ends_at_its_lifetime_however_busy(timed: InProcessServer, clock: Clock) -> None:
    _, tenant = signed_in_person(timed)
    with timed.client() as browser:
        sign_in(browser, tenant.email)
        cookie = browser.cookies["registry_tokens_session"]
        started = clock.now
        while clock.now - started + IDLE / 2 <= LIFETIME:
            clock.now += IDLE / 2
            assert browser.get("/organizations").status_code == 200
        clock.now = started + LIFETIME + timedelta(milliseconds=1)
        assert browser.get("/organizations").status_code == 303
    # The same cookie, replayed, opens nothing: the session is gone.
    with timed.client() as replay:
        replay.cookies.set("registry_tokens_session", cookie)
        clock.now = started
        assert replay.get("/organizations").status_code == 303


def test_signing_out_and_a_new_password_end_sessions(timed: InProcessServer, clock: Clock) -> None:
    seeder, tenant = signed_in_person(timed)
    with timed.client() as browser, timed.client() as other:
        sign_in(browser, tenant.email)
        sign_in(other, tenant.email)
        cookie = browser.cookies["registry_tokens_session"]
        page = browser.get("/organizations")
        out = browser.post("/sign-out", data={"csrf_token": csrf_of(page.text)})
        assert out.status_code == 303
        assert out.headers["location"] == "/sign-in?notice=signed-out"
        browser.cookies.set("registry_tokens_session", cookie)  # kept by a thief
        assert browser.get("/organizations").status_code == 303
        assert other.get("/organizations").status_code == 200  # only that session ended

        clock.now += timedelta(seconds=1)
        # (on the test's clock, as the server's own services would)
        UserService(seeder.services.database, clock).set_password(
            tenant.email, "a brand new password"
        )
        assert other.get("/organizations").status_code == 303
        assert attempt(other, tenant.email, PASSWORD)[0] == 401
        sign_in(other, tenant.email, "a brand new password")
        assert other.get("/organizations").status_code == 200


def test_a_sign_out_needs_the_csrf_token(browser: TestClient, member: Tenant) -> None:
    sign_in(browser, member.email)
    assert browser.post("/sign-out").status_code == 403
    assert browser.get("/organizations").status_code == 200


@pytest.mark.parametrize(
    "cookie",
    [
        "",
        "garbage",
        "a.b",
        "x" * 10_000,
        "\x7f.\x7f",
        "0" * 43 + "." + "0" * 64,
        ".",
    ],
)
def test_forged_cookies_open_nothing(browser: TestClient, member: Tenant, cookie: str) -> None:
    browser.cookies.set("registry_tokens_session", cookie)
    answer = browser.get(web_path(member.org))
    assert answer.status_code == 303
    assert answer.headers["location"].startswith("/sign-in")


def test_a_cookie_signed_for_another_secret_opens_nothing(
    browser: TestClient, member: Tenant
) -> None:
    sign_in(browser, member.email)
    secret, _, signature = browser.cookies["registry_tokens_session"].rpartition(".")
    # Another first character: the last may carry only padding bits (the same bytes), and
    # a fixed replacement may be the character that was there.
    other = ("B" if secret[0] == "A" else "A") + secret[1:]
    browser.cookies.set("registry_tokens_session", other + "." + signature)
    assert browser.get("/organizations").status_code == 303


def test_over_https_the_cookies_are_secure_and_host_only(tmp_path: Path) -> None:
    with in_process_server(
        tmp_path, env={"REGISTRY_TOKENS_WEB_URL": "https://console.example.test"}
    ) as server:
        _, tenant = signed_in_person(server)
        with server.client() as browser:
            form = browser.get("/sign-in")
            nonce_cookie = form.headers["set-cookie"]
            assert nonce_cookie.startswith("__Host-sign_in=")
            for attribute in ("HttpOnly", "Path=/", "SameSite=lax", "Secure"):
                assert attribute in nonce_cookie
            cookie = nonce_cookie.split(";", 1)[0]  # httpx keeps Secure ones off http
            fields = {"email": tenant.email, "password": PASSWORD, "csrf_token": csrf_of(form.text)}
            answer = browser.post(
                "/sign-in",
                data=fields,
                headers={"Cookie": cookie, "Origin": "https://console.example.test"},
            )
            assert answer.status_code == 303, answer.text
            session = next(
                value
                for name, value in answer.headers.multi_items()
                if name == "set-cookie" and value.startswith("__Host-session=")
            )
            for attribute in ("HttpOnly", "Path=/", "SameSite=lax", "Secure"):
                assert attribute in session
            # The same origin written with its default port is the same origin.
            again = browser.post(
                "/sign-in",
                data=fields,
                headers={"Cookie": cookie, "Origin": "https://console.example.test:443"},
            )
            assert again.status_code == 303, again.text
            # A post from the plain-http origin of the same host is another origin.
            cross = browser.post(
                "/sign-in",
                data=fields,
                headers={"Cookie": cookie, "Origin": "http://console.example.test"},
            )
            assert cross.status_code == 403


def test_a_console_under_a_path_keeps_to_it(tmp_path: Path) -> None:
    with in_process_server(
        tmp_path, env={"REGISTRY_TOKENS_WEB_URL": "{base_url}/console"}
    ) as server:
        _, tenant = signed_in_person(server)
        with server.client() as browser:
            assert browser.get("/sign-in").status_code == 404  # not the console's path
            page = browser.get(f"/console/organizations/{tenant.org}")
            assert page.status_code == 303
            assert page.headers["location"] == (
                f"/console/sign-in?next=%2Fconsole%2Forganizations%2F{tenant.org}"
            )
            form = browser.get("/console/sign-in")
            assert "Path=/console" in form.headers["set-cookie"]
            assert 'href="' + server.base_url + '/console/console-static/console.css"' in form.text
            assert browser.get("/console/console-static/console.css").status_code == 200
            answer = browser.post(
                "/console/sign-in",
                data={
                    "email": tenant.email,
                    "password": PASSWORD,
                    "csrf_token": csrf_of(form.text),
                    "next": f"/console/organizations/{tenant.org}",
                },
            )
            assert answer.status_code == 303
            assert answer.headers["location"] == f"/console/organizations/{tenant.org}"
            assert browser.get(answer.headers["location"]).status_code == 200
            api = browser.get(
                f"/v2/organizations/{tenant.org}",
                headers={"Authorization": f"Bearer {tenant.tokens['rw']}"},
            )
            assert api.json()["web_url"] == f"{server.base_url}/console/organizations/{tenant.org}"
