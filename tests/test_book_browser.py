"""The smoke book in a real browser: headless Debian Chromium driven by Selenium, over 127.0.0.1 only.

Every page of the built book loads without a console error; the plotly figures of chapters 04 and 05 render and a
frame slider changes the picture; code cells have no horizontal scroll bar. A screenshot of each page goes to
``_build/screenshots/`` of the checkout. Needs Debian's ``chromium`` and ``chromium-driver`` (``make install``
installs them as root); nothing is installed or downloaded here.
"""

from __future__ import annotations

import functools
import http.server
import shutil
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
SCREENSHOTS = ROOT / "_build" / "screenshots"
INTERACTIVE = ("04_gsm_gates", "05_lsta_attention")  # chapters whose plotly figures must render and respond

pytestmark = [pytest.mark.slow, pytest.mark.browser]


def _pages(toc_path: Path) -> list[str]:
    """Every document of the built table of contents, in reading order (``book/00_intro``, ``runs/book/...``)."""
    toc = yaml.safe_load(toc_path.read_text())
    docs = [toc["root"]]

    def walk(entries: list[dict]) -> None:
        for entry in entries:
            if "file" in entry:
                docs.append(entry["file"])
            walk(entry.get("sections", []))

    for part in toc["parts"]:
        walk(part["chapters"])
    return docs


@pytest.fixture(scope="module")
def site(smoke_book: Path) -> Iterator[str]:
    """The smoke book's HTML served on 127.0.0.1 (a free port); yields its base URL."""
    handler = functools.partial(_QuietHandler, directory=str(smoke_book / "_build" / "html"))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: object) -> None:  # noqa: A002 - the base class's name
        pass


@pytest.fixture(scope="module")
def browser(tmp_path_factory: pytest.TempPathFactory) -> Iterator[object]:
    chromium, chromedriver = shutil.which("chromium"), shutil.which("chromedriver")
    if not (chromium and chromedriver):
        pytest.fail("the browser test needs Debian's chromium and chromium-driver: run `make install` as root, or "
                    "`apt-get install -y chromium chromium-driver`")
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = chromium
    for arg in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                "--disable-background-networking", "--disable-component-update", "--disable-sync",
                "--no-first-run", "--window-size=1280,1400",
                f"--user-data-dir={tmp_path_factory.mktemp('chromium-profile')}"):
        options.add_argument(arg)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(options=options, service=Service(executable_path=chromedriver))
    driver.set_page_load_timeout(60)
    yield driver
    driver.quit()


def _open(browser, url: str) -> list[dict]:
    """Load ``url``, wait until the page and its scripts are done; returns the console entries of level SEVERE."""
    from selenium.webdriver.support.ui import WebDriverWait

    browser.get_log("browser")  # drop what an earlier page left
    browser.get(url)
    WebDriverWait(browser, 30).until(lambda d: d.execute_script("return document.readyState") == "complete")
    browser.execute_script("return new Promise(r => setTimeout(r, 500))")  # plotly draws after load
    return [e for e in browser.get_log("browser") if e["level"] == "SEVERE"]


def _shot_name(doc: str) -> str:
    return doc.replace("/", "__") + ".png"


def test_every_page_loads_without_console_errors(smoke_book, site, browser):
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    docs = _pages(smoke_book / "_build" / "toc.yml")
    assert "runs/book/results" in docs and "runs/book/appendix_runs" in docs and "book/references" in docs
    problems = {}
    for doc in docs:
        errors = _open(browser, f"{site}/{doc}.html")
        title = browser.title
        browser.save_screenshot(str(SCREENSHOTS / _shot_name(doc)))
        if errors or "404" in title:
            problems[doc] = [e["message"] for e in errors] or [f"title {title!r}"]
    assert not problems, f"console errors: {problems}"


def test_results_page_lists_every_claim_with_the_reports_number(smoke_book, site, browser):
    from selenium.webdriver.common.by import By

    assert not _open(browser, f"{site}/runs/book/results.html")
    rows = browser.find_elements(By.CSS_SELECTOR, "table tbody tr")
    text = browser.find_element(By.TAG_NAME, "main").text
    assert len(rows) >= 6 + 6  # six claims, then Table 2's six (setting, ensemble) rows
    assert "40.00" in text and "25.71" in text and "37.32" in text  # the report's numbers, from egolib.paper
    assert "Sudhakaran" in text  # the citation resolved to the bibliography


def test_code_cells_do_not_scroll_sideways(smoke_book, site, browser):
    docs = _pages(smoke_book / "_build" / "toc.yml")
    wide = {}
    for doc in docs:
        _open(browser, f"{site}/{doc}.html")
        over = browser.execute_script(
            "return [...document.querySelectorAll('article.bd-article pre')]"
            ".filter(e => e.offsetParent !== null && e.scrollWidth > e.clientWidth + 1).length")
        if over:
            wide[doc] = over
    assert not wide, f"code with a horizontal scroll bar: {wide}"


@pytest.mark.parametrize("stem", INTERACTIVE)
def test_plotly_figures_render_and_a_frame_slider_changes_the_picture(smoke_book, site, browser, stem):
    from selenium.webdriver.common.action_chains import ActionChains
    from selenium.webdriver.common.by import By

    assert not _open(browser, f"{site}/runs/book/{stem}.html")
    figures = browser.find_elements(By.CSS_SELECTOR, "div.plotly-graph-div")
    assert figures, f"{stem}: no plotly figure on the page"
    for fig in figures:
        assert fig.find_elements(By.CSS_SELECTOR, "svg.main-svg"), f"{stem}: a plotly figure did not render"
    with_slider = [f for f in figures if f.find_elements(By.CSS_SELECTOR, "g.slider-container")]
    assert with_slider, f"{stem}: no plotly figure with a frame slider"
    fig = with_slider[0]
    browser.execute_script("arguments[0].scrollIntoView({block: 'center'})", fig)
    before = fig.screenshot_as_png
    active = "return arguments[0].layout.sliders[0].active || 0"
    start = browser.execute_script(active, fig)
    rail = fig.find_element(By.CSS_SELECTOR, "rect.slider-rail-touch-rect")
    width = rail.size["width"]
    ActionChains(browser).move_to_element_with_offset(rail, int(width * 0.45), 0).click().perform()  # far right
    browser.execute_script("return new Promise(r => setTimeout(r, 1500))")  # frame transitions
    after = fig.screenshot_as_png
    (SCREENSHOTS / f"{stem}__slider_before.png").write_bytes(before)
    (SCREENSHOTS / f"{stem}__slider_after.png").write_bytes(after)
    assert browser.execute_script(active, fig) != start, f"{stem}: the slider did not move"
    assert after != before, f"{stem}: moving the slider did not change the picture"
