"""Issue 13 (part 1) in a real browser: what a copied or forged login cookie and a hostile link can do.

One fresh ``streamlit run app.py`` on a small hand-built practice with the demo logins:

* a login cookie copied into another browser stops working at sign-out and at a password reset
  (it does work while the session is live: that is what makes the test able to fail);
* a cookie whose header says ``alg: none`` or ``HS512`` shows the sign-in form, never an error;
* URL values are not rendered as markdown: ``?to=![x](http://beacon.invalid/b.png)`` makes the browser
  request nothing outside the app; bad months, a superscript clinic id and a 1901-2999 range are replaced
  by defaults with a plain notice;
* a broken or uninitialised database: the first request to a page URL shows the app's own message.

Screenshots: artifacts/screenshots/security_*.png.
"""

from __future__ import annotations

import base64
import datetime as dt
import json
import time
import urllib.parse

import pytest

from ccm_core.security import auth
from ccm_core.storage import db

from browser_utils import COOKIE_KEY, browser_available, shot, streamlit_server, wait_idle

pytestmark = pytest.mark.browser

_skip = browser_available()
if _skip:
    pytest.skip(_skip, allow_module_level=True)

from playwright.sync_api import sync_playwright  # noqa: E402

from browser_utils import CHROMIUM, CHROMIUM_ARGS, VIEWPORT  # noqa: E402
from builders import Builder  # noqa: E402

COOKIE = "ccm_dashboard_auth"


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    url = f"sqlite:///{tmp_path_factory.mktemp('browser_security') / 'small.db'}"
    engine = db.make_engine(url)
    db.upgrade(engine)
    today = dt.date.today()
    first = today.replace(day=1)
    with engine.begin() as conn:
        b = Builder(conn)
        for i in range(12):
            p = b.enrolled_patient(consent_on=first - dt.timedelta(days=90), first_name="Alma", last_name=f"Example{i}")
            b.time(p, minutes=10 + i, on=first - dt.timedelta(days=20))
            b.time(p, minutes=5 + i, on=first - dt.timedelta(days=50))
        db.bump_data_version(conn)
    auth.create_demo_users(engine)
    log = tmp_path_factory.mktemp("browser_security_log") / "streamlit.log"
    with streamlit_server(url, log_path=log) as base:
        yield base, engine, log
    engine.dispose()


@pytest.fixture(scope="module")
def browser():
    with sync_playwright() as pw:
        b = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
        yield b
        b.close()


def _page(browser, cookies: list[dict] | None = None):
    context = browser.new_context(viewport=VIEWPORT, device_scale_factor=1)
    if cookies:
        context.add_cookies(cookies)
    page = context.new_page()
    page.set_default_timeout(60_000)
    return page


def _sign_in_form_only(page) -> None:
    wait_idle(page, settle_ms=800, ready='input[aria-label="Username"]')
    for selector in (
        '[data-testid="stMetric"]',
        '[data-testid="stDataFrame"]',
        '[data-testid="stVegaLiteChart"]',
        '[data-testid="stSidebar"] >> text=Sign out',
        '[data-testid="stException"]',
        '[data-testid="stAlertContentError"]',
        '[role="dialog"]',
    ):
        assert page.locator(selector).count() == 0, selector
    text = page.locator('[data-testid="stApp"]').inner_text()
    assert "Example" not in text and "Page not found" not in text and "Something went wrong" not in text


def _signed_in(page) -> bool:
    page.wait_for_selector('[data-testid="stApp"]')
    deadline = time.time() + 40
    while time.time() < deadline:
        if page.locator('[data-testid="stSidebar"] >> text=Sign out').count():
            return True
        if page.locator('input[aria-label="Username"]').count():
            wait_idle(page, settle_ms=800)
            return page.locator('[data-testid="stSidebar"] >> text=Sign out').count() > 0
        time.sleep(0.3)
    return False


def _sign_in(page, base, username, password, path=""):
    page.goto(f"{base}/{path}")
    wait_idle(page, ready='input[aria-label="Username"]')
    page.get_by_role("textbox", name="Username").fill(username)
    page.get_by_role("textbox", name="Password").fill(password)
    page.get_by_role("button", name="Sign in").click()
    page.wait_for_selector('[data-testid="stSidebar"] >> text=Sign out')
    wait_idle(page)


def _login_cookie(page, timeout_s: float = 30) -> dict:
    """The login cookie once the app has written it (the run after a password sign-in)."""
    deadline = time.time() + timeout_s
    while time.time() < deadline:
        found = [c for c in page.context.cookies() if c["name"] == COOKIE]
        if found:
            return found[0]
        page.wait_for_timeout(300)
    raise AssertionError("the app never wrote its login cookie")


def _copy(cookie: dict, value: str | None = None) -> list[dict]:
    c = {k: cookie[k] for k in ("name", "value", "domain", "path", "expires", "httpOnly", "secure", "sameSite")}
    if value is not None:
        c["value"] = value
    return [c]


def test_a_copied_cookie_stops_working_at_sign_out(server, browser):
    base, engine, log = server
    page = _page(browser)
    _sign_in(page, base, "lead", "lead-demo")
    cookie = _login_cookie(page)
    assert cookie["sameSite"] == "Strict"
    # While the session is live the copy works (the cookie is a real login: this test can fail).
    live_copy = _page(browser, _copy(cookie))
    live_copy.goto(f"{base}/")
    assert _signed_in(live_copy)
    live_copy.context.close()
    # Sign out in the first browser: the copy now shows the sign-in form and no data.
    page.get_by_role("button", name="Sign out").click()
    _sign_in_form_only(page)
    page.context.close()
    stale_copy = _page(browser, _copy(cookie))
    stale_copy.goto(f"{base}/")
    _sign_in_form_only(stale_copy)
    shot(stale_copy, "security_02_copied_cookie_after_sign_out")
    stale_copy.goto(f"{base}/revenue")
    _sign_in_form_only(stale_copy)
    stale_copy.context.close()
    assert "Traceback" not in log.read_text()


def test_a_copied_cookie_and_the_open_session_end_at_a_password_reset(server, browser):
    base, engine, _ = server
    page = _page(browser)
    _sign_in(page, base, "biller", "biller-demo")
    cookie = _login_cookie(page)
    auth.set_password(engine, "biller", "biller-demo-2")
    try:
        copy = _page(browser, _copy(cookie))
        copy.goto(f"{base}/")
        _sign_in_form_only(copy)
        copy.context.close()
        # The open session ends at its next run (a click, not a reload: same browser session).
        page.locator('[data-testid="stTopNavLink"]', has_text="Revenue").click()
        _sign_in_form_only(page)
        assert "You have been signed out" in page.locator('[data-testid="stApp"]').inner_text()
        shot(page, "security_03_signed_out_after_password_reset")
    finally:
        auth.set_password(engine, "biller", "biller-demo")
        page.context.close()


def _b64(obj) -> str:
    return base64.urlsafe_b64encode(json.dumps(obj).encode()).rstrip(b"=").decode()


@pytest.mark.parametrize("alg", ["none", "HS512"])
def test_a_cookie_with_another_algorithm_is_no_cookie(server, browser, alg):
    import jwt

    base, engine, log = server
    # A live session and a cookie that would sign in, if only its algorithm were accepted.
    sid, ends = auth.create_session(engine, "admin")
    claims = {"username": "admin", "sid": sid, "exp_date": ends.timestamp()}
    good = auth.encode_session_cookie(COOKIE_KEY, "admin", sid, ends)
    if alg == "none":
        forged = f"{_b64({'alg': 'none', 'typ': 'JWT'})}.{_b64(claims)}."
    else:
        forged = jwt.encode(claims, COOKIE_KEY, algorithm="HS512")
    host = urllib.parse.urlparse(base).hostname
    template = {
        "name": COOKIE,
        "domain": host,
        "path": "/",
        "expires": -1,
        "httpOnly": False,
        "secure": False,
        "sameSite": "Strict",
    }
    control = _page(browser, [dict(template, value=good)])
    control.goto(f"{base}/")
    assert _signed_in(control)  # the same claims in HS256 do sign in
    control.context.close()
    page = _page(browser, [dict(template, value=forged)])
    page.goto(f"{base}/")
    _sign_in_form_only(page)
    shot(page, f"security_04_cookie_alg_{alg.lower()}")
    page.context.close()
    assert "Traceback" not in log.read_text()


def test_url_values_are_never_rendered_as_markdown(server, browser):
    base, _, log = server
    page = _page(browser)
    _sign_in(page, base, "lead", "lead-demo")
    outside: list[str] = []
    page.on("request", lambda r: None if r.url.startswith(base) or r.url.startswith("data:") else outside.append(r.url))
    hostile = "![x](http://beacon.invalid/beacon.png) [click](http://beacon.invalid/)"
    page.goto(f"{base}/?to={urllib.parse.quote(hostile)}")
    wait_idle(page, ready='h1:has-text("Overview")')
    wait_idle(page, settle_ms=1500)
    assert [u for u in outside if "beacon" in u] == []
    # Nothing else leaves either, apart from Streamlit's own favicon (the page icon, from Google's icon CDN).
    assert all(u.startswith("https://fonts.gstatic.com/") for u in outside), outside
    text = page.locator('[data-testid="stApp"]').inner_text()
    assert "beacon" not in text and "click" not in text  # not echoed at all
    assert "The link's months were not understood" in text
    assert page.locator('[data-testid="stMain"] img, [data-testid="stSidebar"] img').count() == 0
    assert page.locator('a[href*="beacon"]').count() == 0
    shot(page, "security_05_hostile_month_in_link")
    page.context.close()


def test_bad_filter_values_in_a_link_become_defaults_with_a_notice(server, browser):
    base, _, log = server
    page = _page(browser)
    _sign_in(page, base, "lead", "lead-demo")
    start = time.time()
    page.goto(f"{base}/revenue?from=1901-01&to=2999-12&clinic=%C2%B2")
    wait_idle(page, ready='h1:has-text("Revenue")')
    wait_idle(page, settle_ms=1000)
    assert time.time() - start < 60
    text = page.locator('[data-testid="stApp"]').inner_text()
    assert "invalid literal" not in text and "Something went wrong" not in text
    assert page.locator('[data-testid="stException"]').count() == 0
    assert "outside the data" in text or "longer than" in text
    assert "clinic" in text.lower()
    assert "1901" not in page.url and "2999" not in page.url and "%C2%B2" not in page.url
    shot(page, "security_06_bad_filters_in_link")
    page.context.close()
    assert "Traceback" not in log.read_text()


@pytest.mark.parametrize("kind", ["broken", "missing"])
def test_a_bad_database_shows_the_apps_message_at_a_page_url_on_a_fresh_server(tmp_path, browser, kind):
    """Item 9: the first request to a page URL (Streamlit runs the page file itself) shows the app's own
    database message, as the root URL does, and no Streamlit error box."""
    path = tmp_path / ("broken.db" if kind == "broken" else "not-yet/initialised.db")
    if kind == "broken":
        path.write_bytes(b"this is not an SQLite database" * 100)
    with streamlit_server(f"sqlite:///{path}", log_path=tmp_path / "streamlit.log") as base:
        page = _page(browser)
        page.goto(f"{base}/Billing?to=2025-10")
        wait_idle(page, ready='[data-testid="stAlertContentError"]')
        errors = page.locator('[data-testid="stAlertContentError"]').all_inner_texts()
        assert len(errors) == 1 and ("database" in errors[0].lower()), errors
        assert page.locator('[data-testid="stException"]').count() == 0
        assert page.locator('input[aria-label="Username"]').count() == 0
        shot(page, f"security_08_{kind}_database_page_url")
        page.context.close()
