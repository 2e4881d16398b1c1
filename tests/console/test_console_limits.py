"""Token limits in the console: the forms set them through the same service as the API,
the token page disables, enables and resets usage, and the usage pages draw the stored
series as script-free SVG beside a table of the same numbers."""

import re
import uuid
import xml.etree.ElementTree as ElementTree
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import urlsplit

from starlette.testclient import TestClient

from registry_tokens.registry_tokens.usage import Download, UsageRepository, hour_of, period_key
from tests.console.conftest import csrf_of, post_form, sign_in, web_path
from tests.console.test_console_pages import assert_secure_page, no_inline_script
from tests.harness import InProcessServer, Seeder, Tenant
from tests.package_helpers import create_registry_token

SVG = "{http://www.w3.org/2000/svg}"
LIMITS = {
    "description": "limited CI",
    "allowed_packages": "acme-*\nwidget",
    "not_before": "2026-01-02T03:04:05",
    "max_downloads": "10",
    "max_clients": "3",
    "max_bytes": "1000000",
    "quota_period": "week",
}


def token_json(server: InProcessServer, tenant: Tenant, token_id: str) -> dict[str, Any]:
    """The token as the REST API shows it: what the console's forms stored."""
    answer = server.client().get(f"{tenant.tokens_path}/{token_id}", headers=tenant.auth())
    assert answer.status_code == 200, answer.text
    body: dict[str, Any] = answer.json()
    return body


def created_id(server: InProcessServer, tenant: Tenant, description: str) -> str:
    listed = server.client().get(tenant.tokens_path, headers=tenant.auth()).json()
    [found] = [item for item in listed if item["description"] == description]
    return str(found["id"])


def test_a_token_created_with_limits_keeps_them(
    browser: TestClient, member: Tenant, console_server: InProcessServer
) -> None:
    sign_in(browser, member.email)
    tokens = web_path(member.org, member.registry) + "/tokens"
    form = browser.get(tokens)
    for name in LIMITS:
        assert f'name="{name}"' in form.text, name
    answer = post_form(browser, tokens, tokens, LIMITS)
    assert answer.status_code == 200, answer.text
    stored = token_json(console_server, member, created_id(console_server, member, "limited CI"))
    assert stored["allowed_packages"] == ["acme-*", "widget"]
    assert stored["not_before"].startswith("2026-01-02T03:04:05")
    assert (stored["max_downloads"], stored["max_clients"], stored["max_bytes"]) == (
        10,
        3,
        1000000,
    )
    assert stored["quota_period"] == "week"
    listed = browser.get(tokens)
    row = re.search(r'<tr id="token-[^"]+" role="row">.*?</tr>', listed.text, re.S)
    assert row is not None
    for shown in (
        "acme-*, widget",
        "10 downloads per week",
        "3 clients per week",
        "1.0 MB per week",
    ):
        assert shown in row[0], shown
    assert "0 downloads" in row[0]
    assert "Disabled" not in row[0]


def test_a_token_without_limits_is_stored_without_them(
    browser: TestClient, member: Tenant, console_server: InProcessServer
) -> None:
    sign_in(browser, member.email)
    tokens = web_path(member.org, member.registry) + "/tokens"
    empty = {name: "" for name in LIMITS} | {"description": "plain"}
    assert post_form(browser, tokens, tokens, empty).status_code == 200
    stored = token_json(console_server, member, created_id(console_server, member, "plain"))
    for name in ("allowed_packages", "not_before", "max_downloads", "max_clients", "max_bytes"):
        assert stored[name] is None, name
    assert stored["quota_period"] is None


def test_bad_limits_are_shown_beside_their_fields(
    browser: TestClient, member: Tenant, console_server: InProcessServer
) -> None:
    sign_in(browser, member.email)
    tokens = web_path(member.org, member.registry) + "/tokens"
    cases = {
        "max_downloads": "0",
        "max_clients": "many",
        "max_bytes": "-5",
        "quota_period": "year",
        "not_before": "soon",
        "allowed_packages": "Not A Name!",
    }
    for name, value in cases.items():
        answer = post_form(browser, tokens, tokens, {"description": "bad", name: value})
        assert answer.status_code == 422, (name, answer.text)
        assert f'id="error-{name}"' in answer.text, name
        assert f'<a href="#field-{name}">' in answer.text, name
        if name != "quota_period":  # a select shows its choices only
            assert value in answer.text, name  # what was typed is kept for correcting
    listed = console_server.client().get(member.tokens_path, headers=member.auth()).json()
    assert [item["description"] for item in listed] == []


def test_the_edit_form_changes_and_clears_limits(
    browser: TestClient, member: Tenant, console_server: InProcessServer
) -> None:
    created = create_registry_token(
        console_server.client(), member.org, member.registry, member.tokens["rw"]
    )
    sign_in(browser, member.email)
    page = web_path(member.org, member.registry) + f"/tokens/{created['id']}"
    assert post_form(browser, page, page, LIMITS).status_code == 303
    stored = token_json(console_server, member, created["id"])
    assert (stored["max_downloads"], stored["quota_period"]) == (10, "week")
    # The page shows what is stored; saving it unchanged changes nothing.
    shown = browser.get(page).text
    assert 'value="1000000"' in shown
    assert '<option value="week" selected>' in shown
    assert "acme-*\nwidget</textarea>" in shown
    form = {name: value for name, value in LIMITS.items()}
    form["not_before_was"] = LIMITS["not_before"]
    assert post_form(browser, page, page, form).status_code == 303
    assert token_json(console_server, member, created["id"]) == stored
    # A form without the limits' fields (a page from before them) leaves them as they are.
    assert post_form(browser, page, page, {"description": "renamed"}).status_code == 303
    after = token_json(console_server, member, created["id"])
    assert after["description"] == "renamed"
    kept = ("allowed_packages", "not_before", "max_downloads", "max_clients", "max_bytes")
    assert [after[name] for name in kept] == [stored[name] for name in kept]
    assert after["quota_period"] == "week"
    # Emptied fields remove the limits.
    cleared = {name: "" for name in LIMITS} | {"description": "pip"}
    cleared["not_before_was"] = LIMITS["not_before"]  # as the page's hidden field says
    assert post_form(browser, page, page, cleared).status_code == 303
    stored = token_json(console_server, member, created["id"])
    for name in ("allowed_packages", "not_before", "max_downloads", "max_bytes", "quota_period"):
        assert stored[name] is None, name
    bad = post_form(browser, page, page, cleared | {"max_bytes": "1.5"})
    assert bad.status_code == 422
    assert 'id="error-max_bytes"' in bad.text


def test_disable_enable_and_reset_are_buttons_that_work_and_are_audited(
    browser: TestClient,
    member: Tenant,
    console_server: InProcessServer,
    console_seeder: Seeder,
) -> None:
    created = create_registry_token(
        console_server.client(), member.org, member.registry, member.tokens["rw"]
    )
    token_id = uuid.UUID(created["id"])
    now = datetime.now(UTC)
    seed(console_seeder, token_id, [(now, "10.0.0.1", 2, 300)])
    sign_in(browser, member.email)
    page = web_path(member.org, member.registry) + f"/tokens/{token_id}"
    shown = browser.get(page).text
    assert "Disable token" in shown
    assert "Reset usage" in shown
    assert "2 downloads" in shown

    answer = post_form(browser, page, page + "/disable", {})
    assert answer.status_code == 303
    assert token_json(console_server, member, str(token_id))["disabled_at"] is not None
    shown = browser.get(answer.headers["location"]).text
    assert "Registry token disabled" in shown
    assert "Enable token" in shown
    listed = browser.get(web_path(member.org, member.registry) + "/tokens").text
    assert '<span class="badge">Disabled</span>' in listed
    # A disabled token installs nothing.
    index = urlsplit(console_seeder.services.urls.pypi_index(member.org, member.registry)).path
    refused = console_server.client().get(index, auth=("buildkite", created["token"]))
    assert refused.status_code in (401, 403), refused.text

    answer = post_form(browser, page, page + "/enable", {})
    assert answer.status_code == 303
    assert token_json(console_server, member, str(token_id))["disabled_at"] is None

    confirm = browser.get(page + "/usage/reset")
    assert confirm.status_code == 200
    assert "start again from zero" in confirm.text
    answer = post_form(browser, page + "/usage/reset", page + "/usage/reset", {})
    assert answer.status_code == 303
    assert token_json(console_server, member, str(token_id))["usage"]["downloads"] == 0
    assert "0 downloads" in browser.get(page).text
    works = console_server.client().get(index, auth=("buildkite", created["token"]))
    assert works.status_code == 200, works.text

    log = browser.get(web_path(member.org) + f"/audit-log?token={token_id}").text
    for event in (
        "REGISTRY_TOKEN_DISABLED",
        "REGISTRY_TOKEN_ENABLED",
        "REGISTRY_TOKEN_USAGE_RESET",
    ):
        assert event in log, event


def test_forged_or_foreign_switches_are_refused(
    browser: TestClient,
    member: Tenant,
    console_server: InProcessServer,
    console_seeder: Seeder,
) -> None:
    created = create_registry_token(
        console_server.client(), member.org, member.registry, member.tokens["rw"]
    )
    other = console_seeder.tenant()
    theirs = create_registry_token(
        console_server.client(), other.org, other.registry, other.tokens["rw"]
    )
    sign_in(browser, member.email)
    page = web_path(member.org, member.registry) + f"/tokens/{created['id']}"
    for action in ("/disable", "/enable", "/usage/reset"):
        for data in ({}, {"csrf_token": "0" * 64}):
            answer = browser.post(page + action, data=data)
            assert answer.status_code == 403, (action, data)
        cross = browser.post(
            page + action,
            data={"csrf_token": csrf_of(browser.get(page).text)},
            headers={"Origin": "http://evil.example"},
        )
        assert cross.status_code == 403, action
        # Another organization's token: as absent as through the API.
        foreign = web_path(other.org, other.registry) + f"/tokens/{theirs['id']}"
        answer = post_form(browser, page, foreign + action, {})
        assert answer.status_code == 404, action
    assert token_json(console_server, member, created["id"])["disabled_at"] is None
    assert token_json(console_server, other, theirs["id"])["disabled_at"] is None
    assert (
        browser.get(
            web_path(other.org, other.registry) + f"/tokens/{theirs['id']}/usage"
        ).status_code
        == 404
    )
    assert browser.get(web_path(other.org, other.registry) + "/usage").status_code == 404
    assert (
        browser.get(
            web_path(other.org, other.registry) + f"/tokens/{theirs['id']}/usage/downloads.svg"
        ).status_code
        == 404
    )


def seed(
    seeder: Seeder, token_id: uuid.UUID, downloads: list[tuple[datetime, str, int, int]]
) -> None:
    """Usage as counting stores it: (when, client address, downloads, bytes)."""
    database = seeder.services.database
    with database.writing() as session:
        UsageRepository(session, database.is_sqlite).count_all(
            [
                Download(token_id, period_key(None, None, at), hour_of(at), address, count, size)
                for at, address, count, size in downloads
            ]
        )


def table_rows(html: str, table_class: str) -> list[list[str]]:
    found = re.search(rf'<table class="{table_class}">(.*?)</table>', html, re.S)
    assert found is not None, html
    body = found[1].split("<tbody>")[1]
    rows = re.findall(r"<tr>(.*?)</tr>", body, re.S)
    return [
        [
            re.sub(r"<[^>]+>", "", cell).strip()
            for cell in re.findall(r"<t[hd][^>]*>(.*?)</t[hd]>", row, re.S)
        ]
        for row in rows
    ]


def test_usage_pages_show_the_seeded_series_as_svg_and_table(
    browser: TestClient,
    member: Tenant,
    console_server: InProcessServer,
    console_seeder: Seeder,
) -> None:
    client = console_server.client()
    first = create_registry_token(client, member.org, member.registry, member.tokens["rw"], "ci")
    second = create_registry_token(client, member.org, member.registry, member.tokens["rw"], "dev")
    now = datetime.now(UTC)
    today = now.replace(hour=0, minute=0, second=0, microsecond=0)
    yesterday = today - timedelta(days=1)
    seed(
        console_seeder,
        uuid.UUID(first["id"]),
        [
            (yesterday + timedelta(hours=3), "10.0.0.1", 2, 200),
            (yesterday + timedelta(hours=5), "10.0.0.2", 1, 50),
            (today, "10.0.0.1", 4, 4000),
        ],
    )
    seed(console_seeder, uuid.UUID(second["id"]), [(today, "10.0.0.9", 3, 30)])
    sign_in(browser, member.email)
    registry = web_path(member.org, member.registry)
    token_page = registry + f"/tokens/{first['id']}"
    assert f'{token_page}/usage"' in browser.get(token_page).text
    assert f'{registry}/usage"' in browser.get(registry + "/tokens").text

    page = browser.get(token_page + "/usage?interval=day&last=7d")
    assert page.status_code == 200, page.text
    assert_secure_page(page.headers, secret=False)
    no_inline_script(page.text)
    rows = table_rows(page.text, "usage-series")
    assert len(rows) == 7
    assert rows[-2] == [yesterday.strftime("%Y-%m-%d"), "3", "250", "2"]
    assert rows[-1] == [today.strftime("%Y-%m-%d"), "4", "4000", "1"]
    assert all(row[1:] == ["0", "0", "0"] for row in rows[:-2])
    assert "<strong>7 downloads</strong>" in page.text

    hourly = browser.get(
        token_page + f"/usage?interval=hour&from={yesterday:%Y-%m-%dT%H:%M}"
        f"&to={yesterday + timedelta(hours=6):%Y-%m-%dT%H:%M}"
    )
    assert hourly.status_code == 200, hourly.text
    rows = table_rows(hourly.text, "usage-series")
    assert [row[1] for row in rows] == ["0", "0", "0", "2", "0", "1"]

    charts = re.findall(r'<img src="([^"]+\.svg\?[^"]*)"', page.text)
    assert len(charts) == 2
    for url in charts:
        chart = browser.get(url.replace("&amp;", "&"))
        assert chart.status_code == 200, chart.text
        assert chart.headers["content-type"].startswith("image/svg+xml")
        assert "script-src" not in chart.headers["content-security-policy"]
        assert chart.headers["content-security-policy"].startswith("default-src 'none'")
        root = ElementTree.fromstring(chart.text)  # noqa: S314 (our own server's answer)
        assert root.tag == f"{SVG}svg"
        assert root.find(f"{SVG}title") is not None
        assert root.get("aria-label")
        assert not [node for node in root.iter() if "script" in str(node.tag)]
        assert "<script" not in chart.text
        assert "javascript:" not in chart.text
        assert not re.search(r'(?:href|src)="(?:https?:)?//', chart.text)
    downloads_chart = browser.get(charts[0].replace("&amp;", "&")).text
    # The bars' values are the series': pygal writes each as a bar's value text.
    assert "Downloads per day of registry token ci" in downloads_chart

    whole = browser.get(registry + "/usage?interval=day&last=7d")
    assert whole.status_code == 200
    rows = table_rows(whole.text, "usage-series")
    assert rows[-1] == [today.strftime("%Y-%m-%d"), "7", "4030", "2"]
    per_token = table_rows(whole.text, "per-token")
    assert sorted(per_token) == sorted([["ci", "7", "4250", "2"], ["dev", "3", "30", "1"]])
    svg = browser.get(registry + "/usage/bytes.svg?interval=hour")
    assert svg.status_code == 200
    ElementTree.fromstring(svg.text)  # noqa: S314

    bad = browser.get(registry + "/usage?interval=week")
    assert bad.status_code == 422
    assert 'id="error-interval"' in bad.text
    assert browser.get(registry + "/usage?from=yesterday").status_code == 422
    assert browser.get(registry + "/usage?last=forever").status_code == 422
    too_long = browser.get(registry + "/usage?interval=hour&last=90d")
    assert too_long.status_code == 422
    assert 'id="error-last"' in too_long.text
    assert browser.get(registry + "/usage/pie.svg").status_code == 404
    unknown = browser.get(registry + f"/tokens/{uuid.uuid4()}/usage")
    assert unknown.status_code == 404
