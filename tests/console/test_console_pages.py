"""The console's pages in process: what they show, whom to, and what their forms change,
through the same services (and rules) as the REST API."""

import hashlib
import os
import re
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

from starlette.testclient import TestClient

from registry_tokens.kit.pagination import PageRequest
from registry_tokens.organizations.models import Role
from registry_tokens.registries.requests import Ecosystem
from registry_tokens.registry_tokens.models import RegistryToken
from tests.console.conftest import (
    PASSWORD,
    READ_AND_PUBLISH,
    csrf_of,
    post_form,
    sign_in,
    web_path,
)
from tests.distributions import build_wheel
from tests.harness import Clock, InProcessServer, Seeder, Tenant, in_process_server
from tests.package_helpers import (
    ALL_REGISTRY_SCOPES,
    basic,
    bearer,
    create_registry_token,
    published,
    registry_path,
    simple_path,
    tokens_path,
)

SECRET = re.compile(r"bkpt_[0-9A-Za-z]{36}")
SECURITY_HEADERS = {
    "referrer-policy": "same-origin",
    "x-content-type-options": "nosniff",
    "x-frame-options": "DENY",
}


def assert_secure_page(response_headers: dict[str, str] | object, *, secret: bool) -> None:
    headers = response_headers  # httpx.Headers
    policy = headers["content-security-policy"]  # type: ignore[index]
    assert "frame-ancestors 'none'" in policy
    assert "script-src 'self'" in policy
    assert "unsafe-inline" not in policy
    for name, value in SECURITY_HEADERS.items():
        assert headers[name] == value  # type: ignore[index]
    assert headers["cache-control"] == ("no-store" if secret else "private, no-cache")  # type: ignore[index]


def no_inline_script(html: str) -> None:
    for tag in re.findall(r"<script[^>]*>", html):
        assert "src=" in tag, tag
    assert " on" not in " ".join(re.findall(r"<[a-z]+ [^>]*\bon[a-z]+=", html))
    assert "style=" not in html


def test_signed_out_pages_go_to_sign_in_and_back(browser: TestClient, member: Tenant) -> None:
    page = browser.get(web_path(member.org, member.registry) + "/tokens?page=1")
    assert page.status_code == 303
    assert page.headers["location"].startswith("/sign-in?next=")
    form = browser.get(page.headers["location"])
    assert form.status_code == 200
    assert_secure_page(form.headers, secret=False)
    no_inline_script(form.text)
    answer = browser.post(
        "/sign-in",
        data={
            "email": member.email,
            "password": "correct horse battery staple",
            "csrf_token": csrf_of(form.text),
            "next": web_path(member.org, member.registry) + "/tokens?page=1",
        },
    )
    assert answer.status_code == 303
    assert answer.headers["location"] == web_path(member.org, member.registry) + "/tokens?page=1"
    assert "HttpOnly" in answer.headers["set-cookie"]
    assert "SameSite=lax" in answer.headers["set-cookie"]


def test_next_never_leaves_the_console(browser: TestClient, member: Tenant) -> None:
    for target in ("//evil.example/x", "https://evil.example/", "/\\evil.example", "javascript:x"):
        form = browser.get("/sign-in")
        answer = browser.post(
            "/sign-in",
            data={
                "email": member.email,
                "password": "correct horse battery staple",
                "csrf_token": csrf_of(form.text),
                "next": target,
            },
        )
        assert answer.status_code == 303
        assert answer.headers["location"] == "/organizations", target


def test_organizations_and_registries_of_a_member(browser: TestClient, member: Tenant) -> None:
    sign_in(browser, member.email)
    page = browser.get("/organizations")
    assert page.status_code == 200
    assert f"Org {member.org}" in page.text
    assert_secure_page(page.headers, secret=False)
    no_inline_script(page.text)
    organization = browser.get(web_path(member.org))
    assert organization.status_code == 200
    assert web_path(member.org, member.registry) in organization.text
    # A member sees no "create a registry" form (admins do).
    assert "Create a registry" not in organization.text
    assert "<main" in organization.text
    assert 'aria-label="Breadcrumb"' in organization.text


def test_a_member_cannot_create_a_registry_even_with_a_forged_form(
    browser: TestClient, member: Tenant, console_seeder: Seeder
) -> None:
    sign_in(browser, member.email)
    answer = post_form(
        browser,
        web_path(member.org),
        web_path(member.org) + "/registries",
        {"name": "Forged", "ecosystem": "python"},
    )
    assert answer.status_code == 403
    assert "Only organization admins" in answer.text
    registries = console_seeder.services.registries.list(
        console_seeder.services.auth.identify(member.tokens["rw"]),  # type: ignore[arg-type]
        member.org,
        PageRequest(),
    )
    assert [registry.slug for registry in registries.items] == [member.registry]


def test_an_admin_creates_edits_and_deletes_a_registry(
    browser: TestClient, admin: Tenant, console_server: InProcessServer
) -> None:
    sign_in(browser, admin.email)
    name = f"Console {uuid.uuid4().hex[:6]}"
    created = post_form(
        browser,
        web_path(admin.org),
        web_path(admin.org) + "/registries",
        {"name": name, "ecosystem": "python", "description": "made in a browser"},
    )
    assert created.status_code == 303
    slug = name.lower().replace(" ", "-")
    assert created.headers["location"] == web_path(admin.org, slug) + "?notice=registry-created"
    page = browser.get(created.headers["location"])
    assert "Registry created." in page.text
    assert "pip install --index-url" in page.text
    assert f"/{admin.org}/{slug}/pypi/simple/" in page.text

    invalid = post_form(
        browser,
        web_path(admin.org),
        web_path(admin.org) + "/registries",
        {"name": "", "ecosystem": "python"},
    )
    assert invalid.status_code == 422
    assert "Name can&#39;t be blank" in invalid.text

    saved_page = web_path(admin.org, slug) + "/settings"
    saved = post_form(
        browser,
        web_path(admin.org, slug) + "/settings",
        web_path(admin.org, slug) + "/settings",
        {"name": name, "description": "changed", "color": "#ff0000", "public": "on"},
    )
    assert saved.status_code == 303
    assert "changed" in browser.get(web_path(admin.org, slug)).text
    api, auth = console_server.client(), bearer(admin.tokens["rw"])
    stored = api.get(registry_path(admin.org, slug), headers=auth).json()
    assert (stored["description"], stored["color"], stored["public"]) == (
        "changed",
        "#ff0000",
        True,
    )
    checkbox = re.search(r"<input[^>]*name=\"public\"[^>]*>", browser.get(saved_page).text)
    assert checkbox is not None
    assert "checked" in checkbox[0]
    # Without the box ticked (a browser then sends no field), the registry is private again.
    private = post_form(browser, saved_page, saved_page, {"name": name, "description": "changed"})
    assert private.status_code == 303
    assert api.get(registry_path(admin.org, slug), headers=auth).json()["public"] is False
    checkbox = re.search(r"<input[^>]*name=\"public\"[^>]*>", browser.get(saved_page).text)
    assert checkbox is not None
    assert "checked" not in checkbox[0]
    bad_color = post_form(
        browser,
        web_path(admin.org, slug) + "/settings",
        web_path(admin.org, slug) + "/settings",
        {"name": name, "color": "red"},
    )
    assert bad_color.status_code == 422

    confirm = browser.get(web_path(admin.org, slug) + "/delete")
    assert confirm.status_code == 200
    assert "cannot be undone" in confirm.text
    deleted = browser.post(
        web_path(admin.org, slug) + "/delete", data={"csrf_token": csrf_of(confirm.text)}
    )
    assert deleted.status_code == 303
    assert browser.get(web_path(admin.org, slug)).status_code == 404


def test_another_organizations_pages_are_not_found(
    browser: TestClient, member: Tenant, console_seeder: Seeder, console_server: InProcessServer
) -> None:
    other = console_seeder.tenant()
    token = create_registry_token(
        console_server.client(), other.org, other.registry, other.tokens["rw"], "Payroll CI"
    )
    hidden = console_seeder.services.registries.create(
        other.org,
        "Quarterly Forecasts",
        slug=f"forecasts-{uuid.uuid4().hex[:6]}",
        description="the board's numbers",
    )
    # What the other organization's pages would show beyond the slugs and ids of the URL
    # typed: none of it may be on a 404 page.
    their_data = (f"Org {other.org}", "Quarterly Forecasts", "board", "Payroll CI")
    console_seeder.services.users.set_password(other.email, PASSWORD)
    with console_server.client() as theirs:  # the control: their own pages show it all
        sign_in(theirs, other.email)
        shown = (
            theirs.get(web_path(other.org)).text
            + theirs.get(web_path(other.org, other.registry) + "/tokens").text
            + theirs.get(web_path(other.org, hidden.slug)).text
        )
        for data in their_data:
            assert data in shown.replace("&#39;", "'"), data
    sign_in(browser, member.email)
    base = web_path(other.org, other.registry)
    for path in (
        web_path(other.org),
        web_path(other.org) + "/audit-log",
        web_path(other.org, hidden.slug),
        base,
        base + "/settings",
        base + "/delete",
        base + "/tokens",
        f"{base}/tokens/{token['id']}",
        f"{base}/tokens/{token['id']}/delete",
        f"{base}/packages/{uuid.uuid4()}",
    ):
        page = browser.get(path)
        assert page.status_code == 404, path
        assert "Page not found" in page.text
        for data in their_data:
            assert data not in page.text, (path, data)
    # A forged post with this person's own CSRF token changes nothing there either.
    own = browser.get(web_path(member.org, member.registry) + "/tokens")
    for action in (base + "/tokens", f"{base}/tokens/{token['id']}/delete"):
        answer = browser.post(
            action, data={"description": "forged", "csrf_token": csrf_of(own.text)}
        )
        assert answer.status_code == 404, action
    listed = console_server.client().get(
        f"/v2/packages/organizations/{other.org}/registries/{other.registry}/tokens",
        headers=bearer(other.tokens["rw"]),
    )
    assert [item["description"] for item in listed.json()] == ["Payroll CI"]


def test_forms_without_the_sessions_csrf_token_are_refused(
    browser: TestClient, member: Tenant, console_server: InProcessServer
) -> None:
    sign_in(browser, member.email)
    action = web_path(member.org, member.registry) + "/tokens"
    for data in (
        {"description": "no token"},
        {"description": "wrong token", "csrf_token": "0" * 64},
        {"description": "empty token", "csrf_token": ""},
    ):
        answer = browser.post(action, data=data)
        assert answer.status_code == 403, data
        assert "not sent from this console" in answer.text
    page = browser.get(action)
    right = csrf_of(page.text)
    cross = browser.post(
        action,
        data={"description": "cross", "csrf_token": right},
        headers={"Origin": "http://evil.example"},
    )
    assert cross.status_code == 403
    fetched = browser.post(
        action,
        data={"description": "cross", "csrf_token": right},
        headers={"Sec-Fetch-Site": "cross-site"},
    )
    assert fetched.status_code == 403
    listed = console_server.client().get(
        f"/v2/packages/organizations/{member.org}/registries/{member.registry}/tokens",
        headers=bearer(member.tokens["rw"]),
    )
    assert listed.json() == []
    # Another session's token is not this one's.
    with console_server.client() as second:
        sign_in(second, member.email)
        theirs = csrf_of(second.get(action).text)
    assert theirs != right
    assert browser.post(action, data={"description": "x", "csrf_token": theirs}).status_code == 403


def test_sign_in_form_needs_its_own_cookie(browser: TestClient, member: Tenant) -> None:
    page = browser.get("/sign-in")
    token = csrf_of(page.text)
    browser.cookies.clear()
    answer = browser.post(
        "/sign-in",
        data={
            "email": member.email,
            "password": "correct horse battery staple",
            "csrf_token": token,
        },
    )
    assert answer.status_code == 403
    assert "set-cookie" not in answer.headers or "session=" not in answer.headers["set-cookie"]


def test_a_token_secret_is_shown_once_then_never(
    browser: TestClient, member: Tenant, console_server: InProcessServer
) -> None:
    sign_in(browser, member.email)
    tokens_page = web_path(member.org, member.registry) + "/tokens"
    created = post_form(
        browser,
        tokens_page,
        tokens_page,
        {
            "description": "CI of the web app",
            "expires_at": "2099-01-02T03:04",
            "allowed_cidrs": "10.0.0.0/8\n127.0.0.1/32",
        },
    )
    assert created.status_code == 200
    assert_secure_page(created.headers, secret=True)
    secret = re.search(r"bkpt_[0-9A-Za-z]{36}", created.text)
    assert secret is not None
    assert created.text.count(secret[0]) >= 2  # the secret, and the pip lines with it
    assert f"buildkite:{secret[0]}@" in created.text
    assert "[global]" in created.text
    # Not in the URL: the page is the answer to the post, and nothing redirected.
    assert secret[0] not in str(created.url)

    listed = browser.get(tokens_page)
    assert "CI of the web app" in listed.text
    assert "2099-01-02 03:04:00 UTC" in listed.text
    assert "10.0.0.0/8" in listed.text
    token_id = re.search(r'id="token-([0-9a-f-]{36})"', listed.text)
    assert token_id is not None
    pages = [
        tokens_page,
        f"{tokens_page}/{token_id[1]}",
        f"{tokens_page}/{token_id[1]}/delete",
        web_path(member.org, member.registry),
        web_path(member.org) + "/audit-log",
    ]
    for path in pages:
        page = browser.get(path)
        assert page.status_code == 200, path
        assert secret[0] not in page.text, path
        assert "bkpt_" not in page.text, path

    rotated = post_form(
        browser,
        f"{tokens_page}/{token_id[1]}",
        f"{tokens_page}/{token_id[1]}/rotate",
        {"grace_period_seconds": "0"},
    )
    assert rotated.status_code == 200
    assert_secure_page(rotated.headers, secret=True)
    new_secret = re.search(r"bkpt_[0-9A-Za-z]{36}", rotated.text)
    assert new_secret is not None
    assert new_secret[0] != secret[0]
    for path in pages:
        assert "bkpt_" not in browser.get(path).text, path
    audit = browser.get(web_path(member.org) + "/audit-log")
    assert "REGISTRY_TOKEN_CREATED" in audit.text
    assert "REGISTRY_TOKEN_ROTATED" in audit.text


def test_token_forms_answer_bad_input_with_the_apis_words(
    browser: TestClient, member: Tenant
) -> None:
    sign_in(browser, member.email)
    tokens_page = web_path(member.org, member.registry) + "/tokens"
    for fields, words in (
        ({"description": ""}, "Description can&#39;t be blank"),
        ({"description": "x" * 256}, "Description is too long"),
        ({"description": "ok", "expires_at": "2001-01-01T00:00"}, 'id="error-expires_at"'),
        ({"description": "ok", "expires_at": "yesterday"}, 'id="error-expires_at"'),
        ({"description": "ok", "allowed_cidrs": "10.0.0.0/33"}, 'id="error-allowed_cidrs"'),
        ({"description": "ok\x00"}, 'id="error-description"'),
    ):
        answer = post_form(browser, tokens_page, tokens_page, fields)
        assert answer.status_code == 422, (fields, answer.text[:300])
        assert words in answer.text, fields
        assert 'role="alert"' in answer.text
        assert 'aria-invalid="true"' in answer.text
        assert "bkpt_" not in answer.text
    assert "No tokens yet." in browser.get(tokens_page).text
    assert browser.get(tokens_page + "?page=abc").status_code == 422
    assert browser.get(tokens_page + "/not-a-uuid").status_code == 404


def test_edit_and_delete_a_token(
    browser: TestClient, member: Tenant, console_server: InProcessServer
) -> None:
    token = create_registry_token(
        console_server.client(), member.org, member.registry, member.tokens["rw"], "old name"
    )
    sign_in(browser, member.email)
    page = f"{web_path(member.org, member.registry)}/tokens/{token['id']}"
    edited = post_form(
        browser, page, page, {"description": "new name", "allowed_cidrs": "192.168.0.0/16"}
    )
    assert edited.status_code == 303
    listed = browser.get(edited.headers["location"])
    assert "new name" in listed.text
    assert "192.168.0.0/16" in listed.text
    assert "Registry token saved." in listed.text
    deleted = post_form(browser, page + "/delete", page + "/delete", {})
    assert deleted.status_code == 303
    assert "it no longer works" in browser.get(deleted.headers["location"]).text
    assert browser.get(page).status_code == 404
    api = console_server.client().get(
        f"/v2/packages/organizations/{member.org}/registries/{member.registry}/tokens/{token['id']}",
        headers=bearer(member.tokens["rw"]),
    )
    assert api.status_code == 404


def test_packages_are_listed_downloaded_and_deleted(
    browser: TestClient, member: Tenant, console_server: InProcessServer, tmp_path: Path
) -> None:
    wheel = build_wheel(tmp_path, "console-pkg", "1.2.3")
    body = published(
        console_server.client(), member.org, member.registry, member.tokens["rw"], wheel
    )
    sign_in(browser, member.email)
    registry_page = browser.get(web_path(member.org, member.registry))
    assert "console-pkg" in registry_page.text
    assert "1.2.3" in registry_page.text
    package_page = browser.get(body["web_url"].removeprefix(console_server.base_url))
    assert package_page.status_code == 200
    assert wheel.name in package_page.text
    assert hashlib.sha256(wheel.read_bytes()).hexdigest() in package_page.text
    download = browser.get(body["web_url"].removeprefix(console_server.base_url) + "/download")
    assert download.status_code == 200
    assert download.content == wheel.read_bytes()
    assert "attachment" in download.headers["content-disposition"]
    path = body["web_url"].removeprefix(console_server.base_url)
    deleted = post_form(browser, path + "/delete", path + "/delete", {})
    assert deleted.status_code == 303
    assert browser.get(path).status_code == 404
    assert browser.get(path + "/download").status_code == 404


def test_every_web_url_the_api_returns_opens_its_page(
    browser: TestClient, admin: Tenant, console_server: InProcessServer, tmp_path: Path
) -> None:
    api = console_server.client()
    published(
        api, admin.org, admin.registry, admin.tokens["rw"], build_wheel(tmp_path, "weburl", "1.0")
    )
    auth = bearer(admin.tokens["rw"])
    documents = [
        api.get(f"/v2/organizations/{admin.org}", headers=auth).json(),
        *api.get(f"/v2/packages/organizations/{admin.org}/registries", headers=auth).json(),
        *api.get(
            f"/v2/packages/organizations/{admin.org}/registries/{admin.registry}/packages",
            headers=auth,
        ).json()["items"],
        api.get("/v2/organizations", headers=auth).json(),
        # A registry token's organization and registry carry web_urls too.
        create_registry_token(api, admin.org, admin.registry, admin.tokens["rw"]),
        api.get(
            f"/v2/packages/organizations/{admin.org}/registries/{admin.registry}/tokens",
            headers=auth,
        ).json(),
    ]
    web_urls: set[str] = set()

    def collect(value: object) -> None:
        if isinstance(value, dict):
            for key, item in value.items():
                if key == "web_url" and isinstance(item, str):
                    web_urls.add(item)
                collect(item)
        elif isinstance(value, list):
            for item in value:
                collect(item)

    collect(documents)
    assert len(web_urls) >= 3
    for url in web_urls:
        assert url.startswith(console_server.base_url), url
        signed_out = browser.get(url.removeprefix(console_server.base_url))
        assert signed_out.status_code == 303
        assert signed_out.headers["location"].startswith("/sign-in?next=")
    sign_in(browser, admin.email)
    for url in web_urls:
        page = browser.get(url.removeprefix(console_server.base_url))
        assert page.status_code == 200, url


def test_api_access_tokens_are_created_shown_once_and_revoked(
    browser: TestClient, member: Tenant, console_seeder: Seeder, console_server: InProcessServer
) -> None:
    other = console_seeder.tenant()  # an organization the member does not belong to
    sign_in(browser, member.email)
    created = post_form(
        browser,
        "/access-tokens",
        "/access-tokens",
        {
            "description": "laptop",
            "scopes": ["read_registries", "read_user"],
            "organizations": [member.org],
        },
    )
    assert created.status_code == 200
    assert_secure_page(created.headers, secret=True)
    secret = re.search(r"bkua_[0-9A-Za-z]{36}", created.text)
    assert secret is not None
    api = console_server.client()
    orgs = api.get("/v2/organizations", headers=bearer(secret[0]))
    assert [org["slug"] for org in orgs.json()] == [member.org]
    listing = browser.get("/access-tokens")
    assert "laptop" in listing.text
    assert "bkua_" not in listing.text
    assert "read_user" in listing.text

    refused = post_form(
        browser,
        "/access-tokens",
        "/access-tokens",
        {"description": "elsewhere", "scopes": ["read_registries"], "organizations": [other.org]},
    )
    assert refused.status_code == 404
    no_scope = post_form(browser, "/access-tokens", "/access-tokens", {"description": "none"})
    assert no_scope.status_code == 422
    assert "Scopes can&#39;t be blank" in no_scope.text

    token_id = re.search(r'action="[^"]*/access-tokens/([0-9a-f-]{36})/revoke"', listing.text)
    assert token_id is not None
    someone_elses = console_seeder.services.auth.identify(other.tokens["rw"])
    assert someone_elses is not None
    not_mine = post_form(
        browser, "/access-tokens", f"/access-tokens/{someone_elses.token_id}/revoke", {}
    )
    assert not_mine.status_code == 404
    assert api.get("/v2/organizations", headers=bearer(other.tokens["rw"])).status_code == 200
    revoked = post_form(browser, "/access-tokens", f"/access-tokens/{token_id[1]}/revoke", {})
    assert revoked.status_code == 303
    assert api.get("/v2/organizations", headers=bearer(secret[0])).status_code == 401


def test_audit_log_filters_and_pages(
    browser: TestClient, member: Tenant, console_server: InProcessServer
) -> None:
    api = console_server.client()
    for number in range(35):
        create_registry_token(api, member.org, member.registry, member.tokens["rw"], f"t{number}")
    sign_in(browser, member.email)
    log = web_path(member.org) + "/audit-log"
    first = browser.get(log)
    assert first.status_code == 200
    assert first.text.index(">t34<") < first.text.index(">t33<")  # newest first
    assert ">t4<" not in first.text
    older = re.search(r'href="\?(after=[0-9a-f-]{36})" rel="next"', first.text)
    assert older is not None
    second = browser.get(f"{log}?{older[1]}")
    assert ">t4<" in second.text
    assert ">t34<" not in second.text
    filtered = browser.get(f"{log}?event_type=REGISTRY_TOKEN_DELETED")
    assert "No events match these filters." in filtered.text
    assert browser.get(f"{log}?event_type=NOPE").status_code == 422
    assert browser.get(f"{log}?registry=nope").status_code == 422
    assert browser.get(f"{log}?token=nope").status_code == 422
    assert browser.get(f"{log}?before=nope").status_code == 422


def test_a_javascript_registry_shows_the_npmrc_lines(
    browser: TestClient, member: Tenant, console_seeder: Seeder, console_server: InProcessServer
) -> None:
    registry = console_seeder.services.registries.create(
        member.org, "JS", slug=f"js-{uuid.uuid4().hex[:6]}", ecosystem=Ecosystem.JAVASCRIPT
    )
    sign_in(browser, member.email)
    host = console_server.base_url.split("://", 1)[1]
    npm_path = f"{host}/{member.org}/{registry.slug}/npm/"
    page = browser.get(web_path(member.org, registry.slug))
    assert "Install with npm" in page.text
    assert f"registry=http://{npm_path}" in page.text
    assert f"//{npm_path}:_authToken=${{REGISTRY_TOKEN}}" in page.text
    assert "npm publish --registry" in page.text
    assert "pip install" not in page.text
    tokens_page = web_path(member.org, registry.slug) + "/tokens"
    created = post_form(browser, tokens_page, tokens_page, {"description": "npm ci"})
    secret = re.search(r"bkpt_[0-9A-Za-z]{36}", created.text)
    assert secret is not None
    assert f"//{npm_path}:_authToken={secret[0]}" in created.text
    assert "npm publish" not in created.text  # a registry token only installs


def test_numbers_in_forms_and_queries_are_ascii_digits_only(
    browser: TestClient, member: Tenant, console_server: InProcessServer
) -> None:
    token = create_registry_token(
        console_server.client(), member.org, member.registry, member.tokens["rw"]
    )
    sign_in(browser, member.email)
    tokens_page = web_path(member.org, member.registry) + "/tokens"
    for page_number in ("²", "0", "-1", "1e3", "9" * 40, "\u0661"):
        assert browser.get(f"{tokens_page}?page={page_number}").status_code == 422, page_number
        assert browser.get(f"{web_path(member.org)}?page={page_number}").status_code == 422
    page = f"{tokens_page}/{token['id']}"
    for grace in ("²", "-5", "99999999999", "1.5", ""):
        answer = post_form(browser, page, page + "/rotate", {"grace_period_seconds": grace})
        assert answer.status_code == 422, grace
        assert "bkpt_" not in answer.text


def test_an_expired_tokens_other_fields_can_still_be_edited(
    browser: TestClient, member: Tenant, console_server: InProcessServer, console_seeder: Seeder
) -> None:
    token = create_registry_token(
        console_server.client(), member.org, member.registry, member.tokens["rw"], "soon gone"
    )
    expired = datetime.now(UTC) - timedelta(days=1, milliseconds=123)
    with console_seeder.services.database.writing() as session:
        stored = session.get(RegistryToken, uuid.UUID(token["id"]))
        assert stored is not None
        stored.expires_at = expired
    sign_in(browser, member.email)
    page = f"{web_path(member.org, member.registry)}/tokens/{token['id']}"
    form = browser.get(page)
    shown = re.search(
        r'name="expires_at" type="datetime-local" step="1" value="([^"]+)"', form.text
    )
    assert shown is not None
    # The expiry sent back as the page showed it (to the second), the description changed.
    edited = browser.post(
        page,
        data={
            "description": "renamed",
            "expires_at": shown[1],
            "expires_at_was": shown[1],
            "allowed_cidrs": "",
            "csrf_token": csrf_of(form.text),
        },
    )
    assert edited.status_code == 303, edited.text
    api = (
        console_server.client()
        .get(
            f"/v2/packages/organizations/{member.org}/registries/{member.registry}/tokens/{token['id']}",
            headers=bearer(member.tokens["rw"]),
        )
        .json()
    )
    assert api["description"] == "renamed"
    assert api["expires_at"] == expired.isoformat(timespec="milliseconds").replace("+00:00", "Z")
    # Changed to another past time, it is refused as the API refuses it.
    moved = post_form(
        browser,
        page,
        page,
        {"description": "renamed", "expires_at": "2001-01-01T00:00", "expires_at_was": shown[1]},
    )
    assert moved.status_code == 422


def test_unknown_console_paths_are_pages_too(browser: TestClient, member: Tenant) -> None:
    for path in (
        f"{web_path(member.org, member.registry)}/nope",
        f"{web_path(member.org)}/packages",
        "/access-tokens/nope/more",
    ):
        for signed_in in (False, True):
            if signed_in:
                sign_in(browser, member.email)
            page = browser.get(path)
            assert page.status_code == 404, path
            assert page.headers["content-type"].startswith("text/html")
            assert_secure_page(page.headers, secret=False)
            assert "Page not found" in page.text


def test_a_taken_registry_name_is_the_name_fields_problem(
    browser: TestClient, admin: Tenant
) -> None:
    sign_in(browser, admin.email)
    answer = post_form(
        browser,
        web_path(admin.org),
        web_path(admin.org) + "/registries",
        {"name": admin.registry, "ecosystem": "python"},
    )
    assert answer.status_code == 422
    assert 'href="#field-name"' in answer.text
    assert 'id="error-name"' in answer.text
    assert "has already been taken" in answer.text


def test_form_posts_count_against_the_persons_rate_limit(tmp_path: Path) -> None:
    with in_process_server(
        tmp_path,
        env={"REGISTRY_TOKENS_WEB_URL": "{base_url}", "REGISTRY_TOKENS_RATE_LIMIT_PER_USER": "3"},
    ) as server:
        seeder = Seeder(server)
        tenant = seeder.tenant()
        seeder.services.users.set_password(tenant.email, PASSWORD)
        with server.client() as browser:
            sign_in(browser, tenant.email)
            tokens_page = web_path(tenant.org, tenant.registry) + "/tokens"
            statuses = []
            for number in range(4):
                answer = post_form(browser, tokens_page, tokens_page, {"description": f"t{number}"})
                statuses.append(answer.status_code)
            assert statuses[:3] == [200, 200, 200]
            assert statuses[3] == 429
            assert int(answer.headers["retry-after"]) > 0
            assert "Too many requests" in answer.text


def test_a_rotation_with_a_grace_period_keeps_the_old_secret_until_it_ends(
    tmp_path: Path,
) -> None:
    """Rotated in the console with the form's shortest grace (5 minutes): the new secret
    is shown once; the old one still installs with pip until the grace ends, then not."""
    clock = Clock()
    with in_process_server(
        tmp_path, env={"REGISTRY_TOKENS_WEB_URL": "{base_url}"}, clock=clock
    ) as server:
        seeder = Seeder(server)
        tenant = seeder.tenant(scopes=READ_AND_PUBLISH)
        seeder.services.users.set_password(tenant.email, PASSWORD)
        with server.client() as browser, server.client() as pip:
            sign_in(browser, tenant.email)
            tokens_page = web_path(tenant.org, tenant.registry) + "/tokens"
            created = post_form(browser, tokens_page, tokens_page, {"description": "graced"})
            old = SECRET.search(created.text)
            assert old is not None
            token_id = re.search(r'id="token-([0-9a-f-]{36})"', browser.get(tokens_page).text)
            assert token_id is not None
            page = f"{tokens_page}/{token_id[1]}"
            assert '<option value="300"' in browser.get(page).text  # a choice the form offers

            rotated = post_form(browser, page, page + "/rotate", {"grace_period_seconds": "300"})
            assert rotated.status_code == 200, rotated.text
            assert_secure_page(rotated.headers, secret=True)
            new = SECRET.search(rotated.text)
            assert new is not None
            assert new[0] != old[0]
            assert old[0] not in rotated.text
            assert f"buildkite:{new[0]}@" in rotated.text
            for path in (tokens_page, page, web_path(tenant.org) + "/audit-log"):
                assert "bkpt_" not in browser.get(path).text, path  # shown once

            index = simple_path(tenant.org, tenant.registry)
            rotated_at = clock.now
            for moment in (rotated_at, rotated_at + timedelta(seconds=300, milliseconds=-1)):
                clock.now = moment
                assert pip.get(index, headers=basic(old[0])).status_code == 200, moment
                assert pip.get(index, headers=basic(new[0])).status_code == 200, moment
            clock.now = rotated_at + timedelta(seconds=300)
            assert pip.get(index, headers=basic(old[0])).status_code == 401
            assert pip.get(index, headers=basic(new[0])).status_code == 200


def test_a_member_sees_settings_without_an_admins_buttons_and_forged_posts_fail(
    browser: TestClient,
    member: Tenant,
    admin: Tenant,
    console_seeder: Seeder,
    console_server: InProcessServer,
) -> None:
    """What a member may see but not change (a registry's settings, its deletion) has no
    button for them, and a forged post is refused with the API's answer, changing nothing."""
    console_seeder.services.organizations.add_member(admin.org, member.email, Role.MEMBER)
    settings = web_path(admin.org, admin.registry) + "/settings"
    delete = web_path(admin.org, admin.registry) + "/delete"
    admin_only = (  # patterns: the console's links and actions are absolute URLs
        rf'action="[^"]*{settings}"',
        "Save settings",
        rf'href="[^"]*{delete}"',
        "Delete registry",
        'name="public"',
        'name="oidc_policy"',
    )
    with console_server.client() as as_admin:  # the control: an admin has them all
        sign_in(as_admin, admin.email)
        admins = as_admin.get(settings)
        assert admins.status_code == 200
        for control in admin_only:
            assert re.search(control, admins.text), control

    sign_in(browser, member.email)
    for path in (settings, web_path(admin.org, admin.registry), web_path(admin.org)):
        page = browser.get(path)
        assert page.status_code == 200, path
        for control in admin_only:
            assert not re.search(control, page.text), (path, control)
    assert "Only the organization's admins can change these settings." in browser.get(settings).text
    assert browser.get(delete).status_code == 403

    # The member's own API token, with every registry scope, is refused the same changes.
    api = console_server.client()
    token = console_seeder.api_token(member.email, ALL_REGISTRY_SCOPES)
    registry_api = registry_path(admin.org, admin.registry)
    patched = api.patch(registry_api, headers=bearer(token), json={"description": "forged"})
    removed = api.delete(registry_api, headers=bearer(token))
    assert patched.status_code == removed.status_code == 403
    message = patched.json()["message"]
    assert removed.json()["message"] == message
    forged_edit = post_form(
        browser, settings, settings, {"name": "Forged", "description": "forged", "public": "on"}
    )
    forged_delete = post_form(browser, settings, delete, {})
    for answer in (forged_edit, forged_delete):
        assert answer.status_code == 403
        assert message.replace("'", "&#39;") in answer.text
    shown = api.get(registry_api, headers=bearer(admin.tokens["rw"]))
    assert shown.status_code == 200
    assert shown.json()["name"] == "My Registry"
    assert shown.json()["description"] is None
    assert shown.json()["public"] is False


def table_rows(html: str) -> list[list[str]]:
    """The cells of each row of the page's table bodies, as text (tags dropped)."""
    rows = []
    for body in re.findall(r"<tbody[^>]*>(.*?)</tbody>", html, re.S):
        for row in re.findall(r"<tr[^>]*>(.*?)</tr>", body, re.S):
            cells = re.findall(r"<t[hd][^>]*>(.*?)</t[hd]>", row, re.S)
            rows.append([" ".join(re.sub(r"<[^>]+>", " ", cell).split()) for cell in cells])
    return rows


def test_the_packages_table_shows_each_files_size_and_when_it_was_published(
    browser: TestClient, member: Tenant, console_server: InProcessServer, tmp_path: Path
) -> None:
    api = console_server.client()
    small = build_wheel(tmp_path, "sized-small", "1.0")
    noise = {"sized_large/noise.bin": os.urandom(3000)}  # does not compress
    large = build_wheel(tmp_path, "sized-large", "2.0", extra_members=noise)
    bodies = [published(api, member.org, member.registry, member.tokens["rw"], small)]
    bodies.append(published(api, member.org, member.registry, member.tokens["rw"], large))
    sizes = [body["metadata"]["size"] for body in bodies]
    assert sizes[1] > 1000 > sizes[0]  # one in bytes, one in kB
    sign_in(browser, member.email)
    page = browser.get(web_path(member.org, member.registry))
    assert page.status_code == 200
    rows = {row[0]: row for row in table_rows(page.text)}
    for body, size in zip(bodies, sizes, strict=True):
        shown_size = f"{size} Bytes" if size < 1000 else f"{size / 1000:.1f} kB"  # decimal
        published_at = body["created_at"][:19].replace("T", " ") + " UTC"
        _, version, filename, shown, at, download = rows[body["name"]]
        assert (version, filename) == (body["version"], body["metadata"]["filename"])
        assert shown == shown_size, (body["name"], shown, size)
        assert at == published_at, (body["name"], at, body["created_at"])
        assert download.startswith("Download")
    assert list(rows) == ["sized-large", "sized-small"]  # newest first


def test_the_tokens_table_says_who_created_each_token(
    browser: TestClient, member: Tenant, console_seeder: Seeder, console_server: InProcessServer
) -> None:
    colleague = f"colleague-{uuid.uuid4().hex[:8]}@example.test"
    console_seeder.services.users.create("Ada Lovelace", colleague)
    console_seeder.services.organizations.add_member(member.org, colleague, Role.MEMBER)
    theirs = create_registry_token(
        console_server.client(),
        member.org,
        member.registry,
        console_seeder.api_token(colleague),
        "made by a colleague",
    )
    sign_in(browser, member.email)
    tokens_page = web_path(member.org, member.registry) + "/tokens"
    assert post_form(browser, tokens_page, tokens_page, {"description": "mine"}).status_code == 200
    rows = {row[0]: row for row in table_rows(browser.get(tokens_page).text)}
    created = theirs["created_at"][:19].replace("T", " ") + " UTC"
    assert rows["made by a colleague"][1] == f"by Ada Lovelace {created}"
    assert rows["mine"][1].startswith("by Test User ")


def test_the_audit_logs_registry_and_token_filters_show_only_their_events(
    browser: TestClient, member: Tenant, console_seeder: Seeder, console_server: InProcessServer
) -> None:
    api = console_server.client()
    second = console_seeder.services.registries.create(
        member.org, "Second", slug=f"second-{uuid.uuid4().hex[:6]}"
    )
    first_a = create_registry_token(api, member.org, member.registry, member.tokens["rw"], "a1")
    create_registry_token(api, member.org, member.registry, member.tokens["rw"], "a2")
    create_registry_token(api, member.org, second.slug, member.tokens["rw"], "b1")
    renamed = api.patch(
        f"{tokens_path(member.org, member.registry)}/{first_a['id']}",
        headers=bearer(member.tokens["rw"]),
        json={"description": "a1 renamed"},
    )
    assert renamed.status_code == 200, renamed.text
    sign_in(browser, member.email)
    log = web_path(member.org) + "/audit-log"

    def shown(query: str) -> list[tuple[str, str, str]]:
        page = browser.get(f"{log}?{query}")
        assert page.status_code == 200, page.text
        # (event, registry, token's description) of each row
        return [(row[1], row[2], row[3].split(" ")[0]) for row in table_rows(page.text)]

    assert shown("") == [
        ("REGISTRY_TOKEN_UPDATED", member.registry, "a1"),
        ("REGISTRY_TOKEN_CREATED", second.slug, "b1"),
        ("REGISTRY_TOKEN_CREATED", member.registry, "a2"),
        ("REGISTRY_TOKEN_CREATED", member.registry, "a1"),
    ]
    assert shown(f"registry={member.registry}") == [
        ("REGISTRY_TOKEN_UPDATED", member.registry, "a1"),
        ("REGISTRY_TOKEN_CREATED", member.registry, "a2"),
        ("REGISTRY_TOKEN_CREATED", member.registry, "a1"),
    ]
    assert shown(f"registry={second.slug}") == [("REGISTRY_TOKEN_CREATED", second.slug, "b1")]
    assert shown(f"token={first_a['id']}") == [
        ("REGISTRY_TOKEN_UPDATED", member.registry, "a1"),
        ("REGISTRY_TOKEN_CREATED", member.registry, "a1"),
    ]
    assert shown(f"registry={second.slug}&token={first_a['id']}") == []
    assert shown(f"token={first_a['id']}&event_type=REGISTRY_TOKEN_UPDATED") == [
        ("REGISTRY_TOKEN_UPDATED", member.registry, "a1"),
    ]
    # The filters the page was asked for are the ones its form shows.
    page = browser.get(f"{log}?registry={second.slug}&token={first_a['id']}")
    assert re.search(rf'<option value="{second.slug}" selected>', page.text)
    assert f'name="token" value="{first_a["id"]}"' in page.text
