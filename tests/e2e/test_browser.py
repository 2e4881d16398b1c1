"""The test browser itself (tests/browser.py): Debian's Chromium renders a real server's
pages, JavaScript included, in a wide and a narrow window, and reaches nothing but the
loopback."""

import pytest
from selenium.common.exceptions import WebDriverException
from selenium.webdriver.common.by import By
from selenium.webdriver.remote.webdriver import WebDriver
from selenium.webdriver.support import expected_conditions
from selenium.webdriver.support.wait import WebDriverWait

from tests.browser import BLOCKED_BODY, LoopbackOnly, narrow, screenshot, wide
from tests.harness import ServerProcess


def test_swagger_ui_renders_the_api_with_javascript(
    browser: WebDriver, browser_proxy: LoopbackOnly, server: ServerProcess
) -> None:
    browser.get(f"{server.base_url}/docs")
    # The page's HTML is an empty <div id="swagger-ui">: everything below is drawn by
    # Swagger UI's JavaScript from /openapi.json.
    wait = WebDriverWait(browser, 30)
    title = wait.until(
        expected_conditions.visibility_of_element_located((By.CSS_SELECTOR, ".info .title"))
    )
    assert title.text.startswith("registry-tokens")
    wait.until(
        expected_conditions.presence_of_element_located(
            (By.CSS_SELECTOR, '.opblock-summary-path[data-path="/v2/user"]')
        )
    )
    paths = {
        element.get_attribute("data-path")
        for element in browser.find_elements(By.CSS_SELECTOR, ".opblock-summary-path")
    }
    tokens_path = "/v2/packages/organizations/{org}/registries/{registry}/tokens"
    assert tokens_path in paths
    tokens = browser.find_element(
        By.CSS_SELECTOR, f'.opblock-summary-path[data-path="{tokens_path}"]'
    )
    wide_height = tokens.size["height"]
    assert browser.execute_script("return [innerWidth, innerHeight]") == [1280, 900]
    assert screenshot(browser, "browser-docs-wide").stat().st_size > 0

    narrow(browser)
    assert browser.execute_script("return [innerWidth, innerHeight]") == [390, 844]
    # Laid out again for the narrow window: the long path wraps onto several lines.
    assert tokens.size["height"] > wide_height
    assert title.is_displayed()
    assert screenshot(browser, "browser-docs-narrow").stat().st_size > 0
    wide(browser)
    assert browser.execute_script("return [innerWidth, innerHeight]") == [1280, 900]
    # The docs are served whole by this server: nothing was asked of anywhere else.
    assert browser_proxy.requests == [], "\n".join(browser_proxy.requests)


def test_the_browser_reaches_the_loopback_only(
    browser: WebDriver, browser_proxy: LoopbackOnly
) -> None:
    # .invalid names never resolve (RFC 6761): even a broken proxy setting sends nothing.
    browser.get("http://registry-tokens.invalid/page")
    assert BLOCKED_BODY.decode().strip() in browser.find_element(By.TAG_NAME, "body").text
    with pytest.raises(WebDriverException, match="ERR_TUNNEL_CONNECTION_FAILED"):
        browser.get("https://registry-tokens.invalid/page")  # a tunnel, refused
    # Both went to the refusing proxy (with a favicon and retried tunnels), nothing else.
    asked = set(browser_proxy.requests)
    assert {
        "GET http://registry-tokens.invalid/page HTTP/1.1",
        "CONNECT registry-tokens.invalid:443 HTTP/1.1",
    } <= asked
    assert all("registry-tokens.invalid" in line for line in asked), asked
