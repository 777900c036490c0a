"""The Overview's meeting view fits a shared screen: measured in a real browser at 1366x768 and 1920x1080,
normal and meeting mode, the main area's content is no taller than the window (no scrolling), and the tiles,
forecast and attention list are all on screen.  Screenshots: artifacts/screenshots/weekly_overview_*.png.
"""

from __future__ import annotations

import pytest

from browser_utils import browser_available, shot, streamlit_server, wait_idle

pytestmark = pytest.mark.browser

_skip = browser_available()
if _skip:
    pytest.skip(_skip, allow_module_level=True)

from playwright.sync_api import sync_playwright  # noqa: E402
from test_browser import _build_demo_db  # noqa: E402

from browser_utils import CHROMIUM, CHROMIUM_ARGS, login  # noqa: E402

SIZES = [(1366, 768), (1920, 1080)]


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    url = f"sqlite:///{tmp_path_factory.mktemp('weekly') / 'demo.db'}"
    _build_demo_db(url)
    with streamlit_server(url, log_path=tmp_path_factory.mktemp("weekly_log") / "streamlit.log") as base:
        yield base


@pytest.mark.parametrize("meeting", [False, True], ids=["normal", "meeting"])
def test_overview_fits_the_screen_without_scrolling(server, meeting):
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
        try:
            for width, height in SIZES:
                page = browser.new_context(viewport={"width": width, "height": height}).new_page()
                page.set_default_timeout(90_000)
                login(page, server, "lead", "lead-demo")
                if meeting:
                    page.goto(f"{server}/?meeting=1")
                wait_idle(page, ready='h1:has-text("Overview")', settle_ms=1500)
                content = page.evaluate("""() => {
                    const b = document.querySelector('[data-testid="stMainBlockContainer"]');
                    return Math.round(b.getBoundingClientRect().height); }""")
                shot(page, f"weekly_overview_{width}x{height}_{'meeting' if meeting else 'normal'}")
                assert content <= height, (width, height, content)
                text = page.locator('[data-testid="stMain"]').inner_text()
                for words in (
                    "Enrolled patients",
                    "Billable (20+ min)",
                    "Denial rate (claims)",
                    "month-end forecast",
                    "Needs attention",
                    "data through",
                ):
                    assert words in text, words
                assert page.locator('[data-testid="stMetric"]').count() == 6
                page.context.close()
        finally:
            browser.close()
