"""The web console in a real browser (Debian's headless Chromium, tests/browser.py) against
a real server: a person signs in, creates a registry, sees a publish, creates a registry
token and reads its secret once, installs with real pip using it, sees "last used" change,
rotates, deletes, and reads the audit log. Each page is saved as a screenshot
(``tests/screenshots/console-*.png``; a few are in the README, from ``docs/screenshots/``).
"""

import subprocess
import sys
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from urllib.parse import urlsplit

import httpx
import pytest
from selenium.common.exceptions import WebDriverException
from selenium.webdriver.common.action_chains import ActionChains
from selenium.webdriver.common.by import By
from selenium.webdriver.common.keys import Keys
from selenium.webdriver.remote.webdriver import WebDriver
from selenium.webdriver.remote.webelement import WebElement
from selenium.webdriver.support import expected_conditions
from selenium.webdriver.support.ui import Select
from selenium.webdriver.support.wait import WebDriverWait

from tests.browser import LoopbackOnly, chromium, narrow, screenshot, wide
from tests.distributions import build_wheel
from tests.harness import Seeder, ServerProcess, Tenant, running_server
from tests.package_helpers import admin_tenant, basic, bearer, published, simple_path

PASSWORD = "correct horse battery staple"
NAME, VERSION = "console-hello", "1.0.0"


@pytest.fixture(scope="module")
def console(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    """A server whose console is at its own address (``WEB_URL`` = ``API_URL``)."""
    with running_server(
        tmp_path_factory.mktemp("console"), env={"REGISTRY_TOKENS_WEB_URL": "{base_url}"}
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


def wait_for(browser: WebDriver, css: str) -> WebElement:
    return WebDriverWait(browser, 30).until(
        expected_conditions.visibility_of_element_located((By.CSS_SELECTOR, css))
    )


def submit(browser: WebDriver, button_text: str) -> None:
    """Presses the button by its text, and waits for the page it leads to."""
    button = browser.find_element(
        By.XPATH, f"//button[starts-with(normalize-space(), '{button_text}')]"
    )
    button.click()
    # While the old document is torn down, chromedriver can answer a probe of the button with a
    # generic "node does not belong to the document" error rather than a stale reference: that
    # is the page changing too, so it is waited through and the probe tried again.
    WebDriverWait(browser, 30, ignored_exceptions=(WebDriverException,)).until(
        expected_conditions.staleness_of(button)
    )


def fill(browser: WebDriver, label: str, value: str) -> None:
    """Types into the field a label names, as a person (or a screen reader) finds it."""
    label_element = browser.find_element(
        By.XPATH, f"//label[starts-with(normalize-space(), '{label}')]"
    )
    field = browser.find_element(By.ID, label_element.get_attribute("for") or "")
    field.clear()
    field.send_keys(value)


def sign_in(browser: WebDriver, email: str) -> None:
    fill(browser, "Email", email)
    fill(browser, "Password", PASSWORD)
    submit(browser, "Sign in")


def no_overflow(browser: WebDriver) -> None:
    """Nothing on the page is wider than the window (no sideways scrolling of the page)."""
    wider = browser.execute_script(
        "return [...document.querySelectorAll('body *')]"
        ".filter(e => e.getBoundingClientRect().right > window.innerWidth + 0.5"
        " && !e.closest('.scroll'))"
        ".map(e => e.tagName + '.' + e.className + '#' + e.id)"
    )
    assert browser.execute_script(
        "return document.documentElement.scrollWidth <= window.innerWidth"
    ), (browser.current_url, wider)


def fits_narrow(browser: WebDriver, narrow_screenshot: str | None = None) -> None:
    """The page in a phone's window: nothing wider than the window (saved as the screenshot
    ``narrow_screenshot`` too, if given); then back to the desktop's window."""
    narrow(browser)
    try:
        no_overflow(browser)
        if narrow_screenshot is not None:
            screenshot(browser, narrow_screenshot)
    finally:
        wide(browser)


def looked_at(browser: WebDriver, name: str, *, narrow_screenshot: str | None = None) -> None:
    """Saves the page's screenshot, then checks it fits a phone's window too."""
    screenshot(browser, name)
    fits_narrow(browser, narrow_screenshot)


def pip_install(index_url: str, target: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "install",
            "--isolated",
            "--no-input",
            "--disable-pip-version-check",
            "--no-cache-dir",
            "--retries",
            "0",
            "--target",
            str(target),
            "--index-url",
            index_url,
            NAME,
        ],
        env={"PATH": "/usr/bin:/bin", "PIP_CONFIG_FILE": "/dev/null", "HOME": str(target)},
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )


def test_a_person_manages_a_registry_and_its_tokens_in_a_browser(
    browser: WebDriver,
    browser_proxy: LoopbackOnly,
    console: ServerProcess,
    person: Tenant,
    tmp_path: Path,
) -> None:
    base = console.base_url
    # Signed out, a page sends the person to sign in, and back to it afterwards.
    browser.get(f"{base}/organizations/{person.org}")
    wait_for(browser, "input[name=email]")
    assert urlsplit(browser.current_url).path == "/sign-in"
    assert browser.switch_to.active_element.get_attribute("name") == "email"  # autofocus
    looked_at(browser, "console-sign-in")
    sign_in(browser, person.email)
    assert urlsplit(browser.current_url).path == f"/organizations/{person.org}"
    assert browser.find_element(By.TAG_NAME, "h1").text == f"Org {person.org}"
    looked_at(browser, "console-organization")

    # Create a registry with the organization page's form.
    name = f"Web {uuid.uuid4().hex[:6]}"
    slug = name.lower().replace(" ", "-")
    fill(browser, "Name", name)
    fill(browser, "Description", "made in a browser")
    submit(browser, "Create registry")
    registry_path = f"/organizations/{person.org}/packages/registries/{slug}"
    assert urlsplit(browser.current_url).path == registry_path
    assert "Registry created." in browser.find_element(By.CSS_SELECTOR, "[role=status]").text
    assert browser.switch_to.active_element.get_attribute("role") == "status"  # focus moved
    assert "No packages published yet." in browser.page_source
    fits_narrow(browser)

    # A publish (through the API) is shown on the registry page.
    with httpx.Client(base_url=base, timeout=60) as api:
        wheel = build_wheel(tmp_path, NAME, VERSION, value="from the console")
        package = published(api, person.org, slug, person.tokens["rw"], wheel)
    browser.refresh()
    row = wait_for(browser, "table tbody tr")
    assert NAME in row.text
    assert VERSION in row.text
    assert wheel.name in row.text
    install = browser.find_element(By.ID, "install-1").text
    assert (
        f"buildkite:$REGISTRY_TOKEN@{urlsplit(base).netloc}/{person.org}/{slug}/pypi/simple/"
        in install
    )
    looked_at(browser, "console-registry")
    browser.find_element(By.LINK_TEXT, "Settings").click()
    assert wait_for(browser, "#field-name").get_attribute("value") == name
    looked_at(browser, "console-registry-settings")
    browser.find_element(By.LINK_TEXT, "Packages").click()
    wait_for(browser, "#packages-heading")

    # The Tokens page: create one, read its secret once.
    browser.find_element(By.LINK_TEXT, "Tokens").click()
    wait_for(browser, "#tokens-heading")
    assert "No tokens yet." in browser.page_source
    fill(browser, "Description", "CI of the web app")
    fill(browser, "Allowed networks", "127.0.0.1/32")
    submit(browser, "Create token")
    secret = wait_for(browser, "pre#secret").text.strip()
    assert secret.startswith("bkpt_")
    assert len(secret) == 41
    heading = browser.find_element(By.TAG_NAME, "h1")
    assert browser.switch_to.active_element == heading  # focus on what the action made
    copy = browser.find_element(By.CSS_SELECTOR, "button[data-copy=secret]")
    assert copy.is_displayed()  # the script shows it where copying works
    pip_lines = browser.find_element(By.ID, "install-1").text
    assert f"buildkite:{secret}@" in pip_lines
    looked_at(browser, "console-token-secret")
    browser.find_element(By.PARTIAL_LINK_TEXT, "back to the tokens").click()
    wait_for(browser, "#tokens-heading")
    assert secret not in browser.page_source
    last_used = browser.find_element(By.CSS_SELECTOR, "td.last-used").text
    assert last_used == "never"

    # Real pip installs with the secret; the Tokens page then shows when and from where.
    host = urlsplit(base).netloc
    index = f"http://buildkite:{secret}@{host}{simple_path(person.org, slug)}"
    installed = pip_install(index, tmp_path / "site")
    assert installed.returncode == 0, installed.stdout + installed.stderr
    assert (tmp_path / "site" / "console_hello").exists() or any(
        (tmp_path / "site").glob("console_hello*")
    )
    browser.refresh()
    last_used = wait_for(browser, "td.last-used").text
    assert "UTC" in last_used, last_used
    assert "127.0.0.1" in last_used, last_used
    assert secret not in browser.page_source
    looked_at(browser, "console-tokens", narrow_screenshot="console-tokens-narrow")

    # Rotate with no grace: a new secret, shown once; the old one stops at once.
    browser.find_element(By.PARTIAL_LINK_TEXT, "Edit").click()
    wait_for(browser, "#rotate-heading")
    looked_at(browser, "console-token")
    Select(browser.find_element(By.NAME, "grace_period_seconds")).select_by_value("0")
    submit(browser, "Rotate secret")
    rotated = wait_for(browser, "pre#secret").text.strip()
    assert rotated.startswith("bkpt_")
    assert rotated != secret
    simple = f"{base}{simple_path(person.org, slug)}"
    assert httpx.get(simple, headers=basic(secret)).status_code == 401
    assert httpx.get(simple, headers=basic(rotated)).status_code == 200

    # Delete, with a confirmation: the secret stops working.
    browser.find_element(By.PARTIAL_LINK_TEXT, "back to the tokens").click()
    wait_for(browser, "#tokens-heading")
    browser.find_element(By.PARTIAL_LINK_TEXT, "Delete").click()
    wait_for(browser, "form.actions")
    assert "cannot be undone" in browser.page_source
    looked_at(browser, "console-token-delete")
    submit(browser, "Delete token")
    assert "it no longer works" in wait_for(browser, "[role=status]").text
    assert httpx.get(simple, headers=basic(rotated)).status_code == 401
    fits_narrow(browser)
    assert rotated not in browser.page_source

    # The audit log shows all of it, newest first.
    browser.find_element(By.LINK_TEXT, "Audit log").click()
    wait_for(browser, "table")

    def events_shown() -> list[str]:
        return [cell.text for cell in browser.find_elements(By.CSS_SELECTOR, "tbody th[scope=row]")]

    # Refused installs are written by a background writer within a moment: reload till then.
    def all_written(_: WebDriver) -> bool:
        if len(events_shown()) >= 5:
            return True
        browser.refresh()
        return False

    WebDriverWait(browser, 30, poll_frequency=0.2).until(all_written)
    events = events_shown()
    # With the two refused installs: the old secret after the rotation, the new one after
    # the deletion.
    assert events == [
        "REGISTRY_TOKEN_USE_REFUSED",
        "REGISTRY_TOKEN_DELETED",
        "REGISTRY_TOKEN_USE_REFUSED",
        "REGISTRY_TOKEN_ROTATED",
        "REGISTRY_TOKEN_CREATED",
    ], events
    reasons = browser.find_element(By.CSS_SELECTOR, "tbody").text
    assert "reason: revoked" in reasons, reasons
    assert "reason: rotated_out" in reasons, reasons
    assert secret not in browser.page_source
    assert rotated not in browser.page_source
    looked_at(browser, "console-audit-log")

    # The package's page (its web_url) and the API access tokens page.
    browser.get(package["web_url"])
    assert wait_for(browser, "h1").text == f"{NAME} {VERSION}"
    looked_at(browser, "console-package")
    browser.get(f"{base}/organizations")
    assert wait_for(browser, "h1").text == "Your organizations"
    looked_at(browser, "console-organizations")
    browser.get(f"{base}/access-tokens")
    wait_for(browser, "#create-heading")
    looked_at(browser, "console-access-tokens")

    # Every web_url of the API's answers opens its page; signed out, the sign-in page.
    with httpx.Client(base_url=base, timeout=30) as api:
        auth = bearer(person.tokens["rw"])
        web_urls = {
            api.get(f"/v2/organizations/{person.org}", headers=auth).json()["web_url"],
            api.get(
                f"/v2/packages/organizations/{person.org}/registries/{slug}", headers=auth
            ).json()["web_url"],
            package["web_url"],
            package["organization"]["web_url"],
            package["registry"]["web_url"],
        }
    titles = {}
    for url in sorted(web_urls):
        browser.get(url)
        titles[url] = wait_for(browser, "h1").text
        assert urlsplit(browser.current_url).path == urlsplit(url).path
    assert set(titles.values()) == {f"Org {person.org}", name, f"{NAME} {VERSION}"}
    submit(browser, "Sign out")
    assert "You have signed out." in wait_for(browser, "[role=status]").text
    fits_narrow(browser)
    for url in sorted(web_urls):
        browser.get(url)
        wait_for(browser, "input[name=email]")
        assert urlsplit(browser.current_url).path == "/sign-in"

    assert browser_proxy.requests == [], "\n".join(browser_proxy.requests)


def test_the_console_works_without_javascript(
    browser_proxy: LoopbackOnly, console: ServerProcess, person: Tenant
) -> None:
    """Every page is plain HTML and forms: with JavaScript off a person signs in, creates
    a token and reads its secret (only the copy button, which needs a script, is gone)."""
    with chromium(browser_proxy, javascript=False) as browser:
        browser.get(
            f"{console.base_url}/organizations/{person.org}/packages/registries/{person.registry}/tokens"
        )
        wait_for(browser, "input[name=email]")
        sign_in(browser, person.email)
        wait_for(browser, "#tokens-heading")
        fill(browser, "Description", "no script")
        submit(browser, "Create token")
        secret = wait_for(browser, "pre#secret").text.strip()
        assert secret.startswith("bkpt_")
        # The page's script never ran: the copy button it would show stays hidden.
        copy = browser.find_element(By.CSS_SELECTOR, "button[data-copy=secret]")
        assert not copy.is_displayed()
        simple = f"{console.base_url}{simple_path(person.org, person.registry)}"
        assert httpx.get(simple, headers=basic(secret)).status_code == 200
        browser.find_element(By.PARTIAL_LINK_TEXT, "back to the tokens").click()
        wait_for(browser, "#tokens-heading")
        browser.find_element(By.PARTIAL_LINK_TEXT, "Delete").click()
        submit(browser, "Delete token")
        assert "it no longer works" in wait_for(browser, "[role=status]").text
        assert httpx.get(simple, headers=basic(secret)).status_code == 401
    assert browser_proxy.requests == [], "\n".join(browser_proxy.requests)


def press(browser: WebDriver, *keys: str) -> None:
    """Keys pressed on whatever has the focus, as a person at a keyboard does."""
    ActionChains(browser).send_keys(*keys).perform()


def focused(browser: WebDriver) -> WebElement:
    return browser.switch_to.active_element


def tab_to(browser: WebDriver, found: Callable[[WebElement], bool], limit: int = 60) -> None:
    """Presses Tab until the focused element is the one ``found`` picks (or fails)."""
    seen = []
    for _ in range(limit):
        press(browser, Keys.TAB)
        element = focused(browser)
        if found(element):
            return
        seen.append(f"{element.tag_name}#{element.get_attribute('id')}")
    raise AssertionError(f"Tab never reached it; the focus went {seen}")


def test_a_person_signs_in_and_creates_a_token_with_the_keyboard_only(
    browser: WebDriver, browser_proxy: LoopbackOnly, console: ServerProcess, person: Tenant
) -> None:
    tokens = f"/organizations/{person.org}/packages/registries/{person.registry}/tokens"
    browser.get(console.base_url + tokens)
    wait_for(browser, "input[name=email]")
    assert focused(browser).get_attribute("name") == "email"  # the form starts focused
    press(browser, person.email, Keys.TAB)
    assert focused(browser).get_attribute("name") == "password"
    press(browser, PASSWORD, Keys.ENTER)  # Enter in a field submits its form
    WebDriverWait(browser, 30).until(lambda _: urlsplit(browser.current_url).path == tokens)
    wait_for(browser, "#tokens-heading")

    # From the top of the page: Tab to the description, type it, Tab on to the button.
    tab_to(browser, lambda element: element.get_attribute("id") == "field-description")
    press(browser, "typed at a keyboard")
    tab_to(browser, lambda element: element.text == "Create token")
    assert focused(browser).tag_name == "button"
    press(browser, Keys.ENTER)
    secret = wait_for(browser, "pre#secret").text.strip()
    assert secret.startswith("bkpt_")
    # The focus is on the heading that says what happened, read first by a screen reader.
    heading = focused(browser)
    assert heading.tag_name == "h1"
    assert heading.text.startswith("Token created")
    simple = f"{console.base_url}{simple_path(person.org, person.registry)}"
    assert httpx.get(simple, headers=basic(secret)).status_code == 200

    # On with the keyboard: the link back to the tokens, then the new token is listed.
    tab_to(browser, lambda element: "back to the tokens" in element.text)
    press(browser, Keys.ENTER)
    wait_for(browser, "#tokens-heading")
    assert "typed at a keyboard" in browser.find_element(By.CSS_SELECTOR, "table.tokens").text
    assert secret not in browser.page_source
    assert browser_proxy.requests == [], "\n".join(browser_proxy.requests)


def test_rotating_with_a_grace_period_in_the_browser_keeps_the_old_secret_working(
    browser: WebDriver, browser_proxy: LoopbackOnly, console: ServerProcess, person: Tenant
) -> None:
    """The rotate form's "5 minutes": a new secret shown once, and the old one still
    installs (its end, to the millisecond, is tests/console/test_console_pages.py's)."""
    tokens = f"/organizations/{person.org}/packages/registries/{person.registry}/tokens"
    browser.get(console.base_url + tokens)
    wait_for(browser, "input[name=email]")
    sign_in(browser, person.email)
    wait_for(browser, "#tokens-heading")
    fill(browser, "Description", "rotated with a grace")
    submit(browser, "Create token")
    old = wait_for(browser, "pre#secret").text.strip()
    browser.find_element(By.PARTIAL_LINK_TEXT, "back to the tokens").click()
    wait_for(browser, "#tokens-heading")
    browser.find_element(By.PARTIAL_LINK_TEXT, "Edit").click()
    wait_for(browser, "#rotate-heading")
    Select(browser.find_element(By.NAME, "grace_period_seconds")).select_by_visible_text(
        "5 minutes"
    )
    submit(browser, "Rotate secret")
    new = wait_for(browser, "pre#secret").text.strip()
    assert new.startswith("bkpt_")
    assert new != old
    assert old not in browser.page_source
    assert browser.find_element(By.TAG_NAME, "h1").text.startswith("Token rotated")
    simple = f"{console.base_url}{simple_path(person.org, person.registry)}"
    assert httpx.get(simple, headers=basic(old)).status_code == 200  # in its grace
    assert httpx.get(simple, headers=basic(new)).status_code == 200
    browser.find_element(By.PARTIAL_LINK_TEXT, "back to the tokens").click()
    wait_for(browser, "#tokens-heading")
    assert new not in browser.page_source
    browser.find_element(By.LINK_TEXT, "Audit log").click()
    rotation = wait_for(browser, "tbody tr").text
    assert "REGISTRY_TOKEN_ROTATED" in rotation
    assert "grace_period_seconds: 300" in rotation
    assert browser_proxy.requests == [], "\n".join(browser_proxy.requests)
