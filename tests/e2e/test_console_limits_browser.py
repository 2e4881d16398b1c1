"""Token limits and usage in a real browser (tests/browser.py's headless Chromium): a
person sets limits in the create form, sees them on the Tokens page, disables and enables
the token, and opens its usage page, whose SVG charts load as images under the page's
policy (no script, nothing from outside), on a desktop and a phone's window."""

import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from urllib.parse import urlsplit

import httpx
import pytest
from selenium.webdriver.common.by import By
from selenium.webdriver.remote.webdriver import WebDriver
from selenium.webdriver.support.ui import Select

from registry_tokens.registry_tokens.usage import Download, UsageRepository, hour_of, period_key
from tests.browser import LoopbackOnly, narrow, screenshot, wide
from tests.e2e.test_console_browser import (
    PASSWORD,
    fill,
    no_overflow,
    sign_in,
    submit,
    wait_for,
)
from tests.harness import Seeder, ServerProcess, Tenant, running_server
from tests.package_helpers import admin_tenant, bearer


@pytest.fixture(scope="module")
def console(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    with running_server(
        tmp_path_factory.mktemp("console-limits"), env={"REGISTRY_TOKENS_WEB_URL": "{base_url}"}
    ) as started:
        yield started


@pytest.fixture(scope="module")
def console_seeder(console: ServerProcess) -> Seeder:
    return Seeder(console)


@pytest.fixture
def person(console_seeder: Seeder) -> Tenant:
    tenant = admin_tenant(
        console_seeder,
        scopes=("read_registries", "write_registries", "read_packages", "write_packages"),
    )
    console_seeder.services.users.set_password(tenant.email, PASSWORD)
    return tenant


def images_loaded(browser: WebDriver) -> list[int]:
    """Each ``<img>``'s drawn width: 0 for one the browser could not load or decode."""
    widths: list[int] = browser.execute_script(
        "return [...document.images].map(i => i.complete ? i.naturalWidth : 0)"
    )
    return widths


def test_limits_and_usage_in_a_browser(
    browser: WebDriver,
    browser_proxy: LoopbackOnly,
    console: ServerProcess,
    console_seeder: Seeder,
    person: Tenant,
) -> None:
    base = console.base_url
    tokens = f"{base}/organizations/{person.org}/packages/registries/{person.registry}/tokens"
    browser.get(tokens)
    wait_for(browser, "input[name=email]")
    sign_in(browser, person.email)
    wait_for(browser, "#tokens-heading")

    # Limits in the create form, found by their labels.
    fill(browser, "Description", "Limited CI")
    fill(browser, "Allowed packages", "acme-*\nwidget")
    fill(browser, "Max downloads", "100")
    fill(browser, "Max clients", "5")
    fill(browser, "Max bytes", "50000000")
    Select(browser.find_element(By.NAME, "quota_period")).select_by_value("month")
    browser.execute_script("document.querySelector('fieldset.limits').scrollIntoView()")
    screenshot(browser, "console-token-limits")
    submit(browser, "Create token")
    wait_for(browser, "pre#secret")
    browser.find_element(By.PARTIAL_LINK_TEXT, "back to the tokens").click()
    limits = wait_for(browser, "td.limits").text
    assert "acme-*, widget" in limits, limits
    assert "100 downloads per month" in limits, limits
    with httpx.Client(base_url=base, timeout=30) as api:
        listed = api.get(
            f"/v2/packages/organizations/{person.org}/registries/{person.registry}/tokens",
            headers=bearer(person.tokens["rw"]),
        ).json()
    [token] = [item for item in listed if item["description"] == "Limited CI"]
    assert (token["max_downloads"], token["max_clients"], token["max_bytes"]) == (
        100,
        5,
        50000000,
    )
    assert token["quota_period"] == "month"
    assert token["allowed_packages"] == ["acme-*", "widget"]

    # Disable, then enable, from the token's page.
    browser.find_element(By.PARTIAL_LINK_TEXT, "Edit").click()
    wait_for(browser, "#switch-heading")
    submit(browser, "Disable token")
    assert "disabled" in wait_for(browser, "[role=status]").text
    assert "Disabled" in browser.find_element(By.TAG_NAME, "h1").text
    submit(browser, "Enable token")
    assert "enabled" in wait_for(browser, "[role=status]").text

    # Usage as counting stores it, then its page: charts and the same numbers in a table.
    now = datetime.now(UTC)
    database = console_seeder.services.database
    with database.writing() as session:
        UsageRepository(session, database.is_sqlite).count_all(
            [
                Download(
                    uuid.UUID(token["id"]),
                    period_key("month", None, at),
                    hour_of(at),
                    f"10.0.0.{n % 3}",
                    n + 1,
                    (n + 1) * 1500,
                )
                for n, at in enumerate(now - timedelta(days=d) for d in range(0, 10, 2))
            ]
        )
    browser.find_element(By.LINK_TEXT, "Usage chart").click()
    wait_for(browser, "table.usage-series")
    assert "15 downloads" in browser.find_element(By.TAG_NAME, "main").text
    Select(browser.find_element(By.NAME, "last")).select_by_value("30d")
    submit(browser, "Show")
    wait_for(browser, "table.usage-series")
    assert "last=30d" in urlsplit(browser.current_url).query
    assert len(browser.find_elements(By.CSS_SELECTOR, "table.usage-series tbody tr")) == 30
    widths = images_loaded(browser)
    assert len(widths) == 2
    assert all(width > 0 for width in widths), widths
    screenshot(browser, "console-usage")
    narrow(browser)
    no_overflow(browser)
    screenshot(browser, "console-usage-narrow")
    browser.get(tokens)
    wait_for(browser, "#tokens-heading")
    no_overflow(browser)
    wide(browser)

    # The registry's usage page: every token's, with per-token totals.
    browser.find_element(By.LINK_TEXT, "Usage").click()
    wait_for(browser, "table.per-token")
    assert "Limited CI" in browser.find_element(By.CSS_SELECTOR, "table.per-token").text
    assert all(width > 0 for width in images_loaded(browser))
    assert browser_proxy.requests == [], "\n".join(browser_proxy.requests)
