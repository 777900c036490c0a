"""Real-browser helpers: a fresh ``streamlit run app.py`` server and Debian's Chromium via Playwright.

Used by the browser tests (marker ``browser``) to prove what a person actually sees: pages render without
an error box, charts draw, meeting mode hides identifiers, and screenshots for a human to look at.
Skips cleanly when Chromium or Playwright is missing.
"""

from __future__ import annotations

import contextlib
import os
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--disable-dev-shm-usage",
]
SCREENSHOTS = ROOT / "artifacts" / "screenshots"
VIEWPORT = {"width": 1280, "height": 720}
COOKIE_KEY = "yJ0w4IVWdahNjJdgk2qHjyClG0uaZ7tfXkKXEqCeHydj"


def browser_available() -> str | None:
    """None when a browser test can run, else the reason to skip."""
    if not Path(CHROMIUM).exists():
        return f"{CHROMIUM} is not installed (apt-get install chromium)"
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        return "the playwright package is not installed (requirements-dev.txt)"
    return None


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextlib.contextmanager
def streamlit_server(db_url: str, log_path: Path | None = None, timeout: float = 90) -> Iterator[str]:
    """``streamlit run app.py`` on a free port against ``db_url``; yields the base URL; stops it afterwards."""
    port = free_port()
    env = dict(os.environ, CCM_DATABASE_URL=db_url, CCM_DEMO_MODE="1", CCM_COOKIE_KEY=COOKIE_KEY, PYTHONUNBUFFERED="1")
    log = open(log_path, "w") if log_path else subprocess.DEVNULL  # noqa: SIM115 - closed below
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "streamlit",
            "run",
            str(ROOT / "app.py"),
            "--server.headless",
            "true",
            "--server.port",
            str(port),
            "--server.address",
            "127.0.0.1",
            "--browser.gatherUsageStats",
            "false",
            "--server.fileWatcherType",
            "none",
        ],
        cwd=ROOT,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.time() + timeout
        while True:
            try:
                with urllib.request.urlopen(f"{base}/_stcore/health", timeout=2) as r:
                    if r.read().strip() == b"ok":
                        break
            except OSError:
                pass
            if proc.poll() is not None or time.time() > deadline:
                raise RuntimeError(f"streamlit did not start (exit code {proc.poll()}); see {log_path}")
            time.sleep(0.5)
        yield base
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
        if log_path:
            log.close()


@contextlib.contextmanager
def chromium_page() -> Iterator[object]:
    """A Playwright page in headless Chromium at 1280x720."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
        try:
            context = browser.new_context(viewport=VIEWPORT, device_scale_factor=1)
            page = context.new_page()
            page.set_default_timeout(60_000)
            yield page
        finally:
            browser.close()


def wait_idle(page, settle_ms: int = 1000, timeout_ms: int = 60_000, ready: str | None = None) -> None:
    """Wait until Streamlit is connected, the script has finished and no skeleton or spinner is left.

    ``ready`` is a selector that must be present first (e.g. the page title), because right after a
    navigation the old page can look idle for a moment.
    """
    page.wait_for_selector('[data-testid="stApp"]', timeout=timeout_ms)
    if ready:
        page.wait_for_selector(ready, timeout=timeout_ms)
    else:
        page.wait_for_selector(
            '[data-testid="stMainBlockContainer"] [data-testid="stElementContainer"]',
            timeout=timeout_ms,
            state="attached",
        )
    deadline = time.time() + timeout_ms / 1000
    quiet_since = None
    while time.time() < deadline:
        busy = page.evaluate("""() => {
            const st = document.querySelector('[data-testid="stStatusWidget"]');
            const running = st && /running|connecting/i.test(st.innerText || '');
            const skeleton = document.querySelector('[data-testid="stSkeleton"]');
            const spinner = document.querySelector('[data-testid="stSpinner"]');
            const stale = document.querySelector('[data-stale="true"]');
            return Boolean(running || skeleton || spinner || stale);
        }""")
        if busy:
            quiet_since = None
        elif quiet_since is None:
            quiet_since = time.time()
        elif (time.time() - quiet_since) * 1000 >= settle_ms:
            return
        time.sleep(0.15)
    raise TimeoutError("the app did not finish rendering in time")


def login(page, base_url: str, username: str, password: str, path: str = "") -> None:
    """Open ``base_url/path`` and sign in through the form."""
    page.goto(f"{base_url}/{path}")
    wait_idle(page)
    page.get_by_role("textbox", name="Username").fill(username)
    page.get_by_role("textbox", name="Password").fill(password)
    page.get_by_role("button", name="Sign in").click()
    page.wait_for_selector('[data-testid="stSidebar"] >> text=Sign out', timeout=60_000)
    wait_idle(page)
    wait_for_session_cookie(page)


def wait_for_session_cookie(page, timeout_s: float = 30.0) -> None:
    """The sign-in cookie is written by a browser-side component after the page shows the user; a full page
    load (``page.goto``) before it lands is a new visit without a session, so wait for it first."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if any(c["name"] == "ccm_dashboard_auth" for c in page.context.cookies()):
            return
        page.wait_for_timeout(100)
    raise AssertionError("the sign-in cookie was never written")


def goto(page, base_url: str, path: str, title: str | None = None, query: str = "") -> None:
    """Open a page in the signed-in session: through the top navigation when it offers the page (keeps the
    session, like a person clicking), else by URL.  ``title`` = the page's h1 to wait for."""
    link = page.locator(f'[data-testid="stTopNavLink"][href$="/{path}"], a[href$="/{path}"]').first
    if not query and not link.count():  # a role's landing page sits at the site root: find its link by title
        from ccm_core.security import auth

        if path in auth.PAGES:
            link = page.locator('[data-testid="stTopNavLink"]').filter(has_text=auth.PAGES[path][0]).first
    if not query and link.count():
        link.click()
    else:
        page.goto(f"{base_url}/{path}" + (f"?{query}" if query else ""))
    ready = f'h1:has-text("{title}")' if title else None
    wait_idle(page, ready=ready)


def click_tab(page, label: str, scroll: bool = True) -> None:
    """Open a tab; ``scroll`` brings the tab bar to the top of the viewport so the screenshot shows its body."""
    tab = page.get_by_role("tab", name=label)
    tab.click()
    wait_idle(page)
    if scroll:
        tab.evaluate("""el => { const tabs = el.closest('[data-testid="stTabs"]');
                                 tabs.style.scrollMarginTop = '64px';  /* below the sticky top navigation */
                                 tabs.scrollIntoView({block: 'start'}); }""")
        page.wait_for_timeout(300)


def error_boxes(page) -> list[str]:
    """Texts of st.error / exception boxes on screen (a page that shows any has failed)."""
    return page.evaluate("""() => Array.from(document.querySelectorAll(
        '[data-testid="stException"], [data-testid="stAlertContentError"]')).map(e => e.innerText)""")


def shot(page, name: str) -> Path:
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    path = SCREENSHOTS / f"{name}.png"
    page.screenshot(path=str(path), full_page=False)
    return path
