"""A person's path through the UI in real headless Chromium, against the app under waitress.

Search for "export controls", find the IBM story, open "More like this", see related stories.
Screenshots go to test-artifacts/. Skipped where Debian's chromium is absent, except in CI.
"""

from __future__ import annotations

import importlib.util
import os
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from webutil import IBM_TITLE, REPO

pytestmark = pytest.mark.browser

CHROMIUM = Path("/usr/bin/chromium")
CHROMEDRIVER = Path("/usr/bin/chromedriver")
ARTIFACTS = REPO / "test-artifacts"
FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--disable-dev-shm-usage",
]
WAIT = 15


def _require_browser() -> None:
    """Skip where the browser is not installed; in CI (CI=true) that is a failure instead."""
    missing = [str(p) for p in (CHROMIUM, CHROMEDRIVER) if not p.exists()]
    if importlib.util.find_spec("selenium") is None:
        missing.append("the selenium package")
    if missing:
        message = f"{', '.join(missing)} missing - run `make browser` and pip install -e '.[dev]'"
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(message)
        pytest.skip(message)


@pytest.fixture(scope="module")
def base_url(web_settings, web_service) -> Iterator[str]:
    """The real app under waitress on a free loopback port, in a background thread."""
    from waitress import create_server, wasyncore

    from web.app import create_app

    server = create_server(create_app(web_settings, web_service), host="127.0.0.1", port=0, threads=2)
    stop = threading.Event()

    def serve() -> None:
        while not stop.is_set():
            wasyncore.loop(timeout=0.05, map=server._map, count=1)
        server.task_dispatcher.shutdown()
        wasyncore.close_all(server._map)  # closed by the thread that polls them

    thread = threading.Thread(target=serve, name="waitress-test", daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.effective_port}"
    stop.set()
    thread.join(timeout=10)


@pytest.fixture(scope="module")
def browser(tmp_path_factory: pytest.TempPathFactory):
    _require_browser()
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = str(CHROMIUM)
    for flag in [*FLAGS, f"--user-data-dir={tmp_path_factory.mktemp('chromium-profile')}", "--window-size=1280,900"]:
        options.add_argument(flag)
    driver = webdriver.Chrome(options=options, service=Service(executable_path=str(CHROMEDRIVER)))
    yield driver
    driver.quit()


def screenshot(driver, name: str, width: int) -> Path:
    """The whole page at ``width`` CSS pixels (a phone's when narrow), via Chrome's device emulation."""
    ARTIFACTS.mkdir(exist_ok=True)
    metrics = {"width": width, "height": 900, "deviceScaleFactor": 1, "mobile": width < 600}
    driver.execute_cdp_cmd("Emulation.setDeviceMetricsOverride", metrics)
    height = driver.execute_script("return document.documentElement.scrollHeight")
    driver.execute_cdp_cmd("Emulation.setDeviceMetricsOverride", dict(metrics, height=min(height, 6000)))
    path = ARTIFACTS / name
    driver.save_screenshot(str(path))
    driver.execute_cdp_cmd("Emulation.clearDeviceMetricsOverride", {})
    return path


def test_search_then_more_like_this(browser, base_url: str) -> None:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions as ec
    from selenium.webdriver.support.ui import WebDriverWait

    wait = WebDriverWait(browser, WAIT)
    browser.get(base_url + "/")
    box = wait.until(ec.presence_of_element_located((By.NAME, "q")))
    box.send_keys("export controls")
    browser.find_element(By.CSS_SELECTOR, "form.searchbox button[type=submit]").click()

    wait.until(ec.presence_of_element_located((By.CSS_SELECTOR, "li.hit")))
    hits = browser.find_elements(By.CSS_SELECTOR, "li.hit")
    ibm = next((h for h in hits if h.find_element(By.TAG_NAME, "h2").text == IBM_TITLE), None)
    assert ibm is not None, [h.find_element(By.TAG_NAME, "h2").text for h in hits]
    marked = {m.text.lower() for m in ibm.find_elements(By.TAG_NAME, "mark")}
    assert any("export" in m for m in marked) and any("control" in m for m in marked)
    assert browser.find_elements(By.CSS_SELECTOR, ".filters .facet li .count")
    assert screenshot(browser, "search-results.png", 1280).stat().st_size > 10_000
    assert screenshot(browser, "search-results-phone.png", 375).stat().st_size > 10_000

    ibm = next(
        h
        for h in browser.find_elements(By.CSS_SELECTOR, "li.hit")
        if h.find_element(By.TAG_NAME, "h2").text == IBM_TITLE
    )
    ibm.find_element(By.LINK_TEXT, "More like this").click()
    wait.until(ec.presence_of_element_located((By.ID, "related-heading")))
    assert browser.find_element(By.TAG_NAME, "h1").text == IBM_TITLE
    related = browser.find_elements(By.CSS_SELECTOR, "section.related:not(.listed) ul.stories li")
    assert len(related) >= 1
    assert screenshot(browser, "article.png", 1280).stat().st_size > 10_000
    assert screenshot(browser, "article-phone.png", 375).stat().st_size > 10_000


def set_width(driver, width: int) -> None:
    """Emulate a screen ``width`` CSS pixels wide (a phone's when narrow) and let the page lay out again."""
    metrics = {"width": width, "height": 800, "deviceScaleFactor": 1, "mobile": width < 600}
    driver.execute_cdp_cmd("Emulation.setDeviceMetricsOverride", metrics)


def visible(driver, selector: str) -> bool:
    """Whether the first element matching ``selector`` is rendered and has a size. (Selenium's own
    is_displayed() calls anything inside a closed <details> hidden, whatever the style sheet does.)"""
    return driver.execute_script(
        "const e = document.querySelector(arguments[0]); const r = e.getBoundingClientRect();"
        "return e.checkVisibility() && r.width > 0 && r.height > 0;",
        selector,
    )


def box(driver, selector: str) -> dict:
    return driver.execute_script(
        "const r = document.querySelector(arguments[0]).getBoundingClientRect();"
        "return {left: r.left, right: r.right, top: r.top, bottom: r.bottom, height: r.height};",
        selector,
    )


PHONE = 375
PHONE_PAGES = [
    "/",
    "/search?q=export+controls",
    "/search?q=recognition&mode=keyword&limit=2&page=2&provider=Reuters",
    "/search?mode=keyword&q=" + "x" * 300,  # no results: a long unbroken word in the heading
    "/search?q=robots&provider=" + "y" * 200,  # a long word in a filter chip and in the facet list
    "/search?q=control+panels&mode=keyword",  # the hostile article
    "/articles/AAAAAAAAAAA",
]


@pytest.mark.parametrize("path", PHONE_PAGES)
def test_no_horizontal_scroll_at_phone_width(browser, base_url: str, path: str) -> None:
    set_width(browser, PHONE)
    try:
        browser.get(base_url + path)
        width = browser.execute_script("return document.documentElement.scrollWidth")
        assert width <= PHONE, f"{path} scrolls sideways: {width} px wide at {PHONE}"
    finally:
        browser.execute_cdp_cmd("Emulation.clearDeviceMetricsOverride", {})


def test_filters_come_first_and_fold_on_a_phone(browser, base_url: str) -> None:
    from selenium.webdriver.common.by import By

    set_width(browser, PHONE)
    try:
        browser.get(base_url + "/search?q=facial+recognition")
        summary = browser.find_element(By.CSS_SELECTOR, "details.filters > summary")
        assert box(browser, "details.filters")["bottom"] <= box(browser, "section.results")["top"]
        assert visible(browser, "details.filters > summary") and not visible(browser, ".facet .count")
        summary.click()
        assert visible(browser, ".facet .count") and visible(browser, "form.dates")
        browser.get(base_url + "/search?q=facial+recognition&topic=Policy")  # an active filter: open
        assert visible(browser, ".facet .count")
    finally:
        browser.execute_cdp_cmd("Emulation.clearDeviceMetricsOverride", {})


def test_filters_are_an_open_column_on_a_wide_screen(browser, base_url: str) -> None:
    set_width(browser, 1280)
    try:
        browser.get(base_url + "/search?q=facial+recognition")
        assert box(browser, "details.filters")["left"] >= box(browser, "section.results")["right"]
        assert box(browser, "details.filters")["top"] <= box(browser, "section.results")["top"] + 1
        assert visible(browser, ".facet .count") and visible(browser, "form.dates")  # no click needed
        assert not visible(browser, "details.filters > summary")
    finally:
        browser.execute_cdp_cmd("Emulation.clearDeviceMetricsOverride", {})
