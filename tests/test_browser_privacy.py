"""Issue 13 in a real browser (privacy part): downloads and text from data.

- Item 2: a download is built when clicked and written to the access log first; the /media URL the
  browser fetched it from returns nothing afterwards (no cookie, a second fetch, after sign-out).
- Item 5: a patient named ``[click](https://x)`` with a note ``![](http://x/b.png)`` shows as text on the
  Audit page: no link, no image, and no request leaves for another host.

Screenshots: artifacts/screenshots/privacy_*.png.
"""

from __future__ import annotations

import datetime as dt
import urllib.error
import urllib.request
from urllib.parse import urlparse

import pytest
from sqlalchemy import select

from ccm_core.audit import sampling
from ccm_core.security import auth
from ccm_core.storage import db
from ccm_core.storage import schema as s

from browser_utils import (
    browser_available,
    chromium_page,
    click_tab,
    error_boxes,
    goto,
    login,
    shot,
    streamlit_server,
    wait_idle,
)

pytestmark = pytest.mark.browser

_skip = browser_available()
if _skip:
    pytest.skip(_skip, allow_module_level=True)

HOSTILE_FIRST = "[click](https://x)"
HOSTILE_LAST = "Hostile"
HOSTILE_NOTE = "![](http://x/b.png)"  # under 20 characters: a vague note, quoted as audit evidence


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    """A small demo practice plus one patient whose name and note are markdown, alone in a saved sample."""
    from ccm_core.io import demo

    from builders import Builder

    url = f"sqlite:///{tmp_path_factory.mktemp('browser_privacy') / 'demo.db'}"
    engine = db.make_engine(url)
    db.upgrade(engine)
    demo.generate(engine, patients=150, months=4, seed=13)
    auth.create_demo_users(engine)
    month_day = dt.date(2023, 3, 1)  # before the demo's months: the sample holds this patient only
    with engine.begin() as conn:
        b = Builder(conn)
        p = b.enrolled_patient(
            consent_on=dt.date(2023, 1, 5), first_name=HOSTILE_FIRST, last_name=HOSTILE_LAST, mrn="HOSTILE-1"
        )
        b.visit(p, on=dt.date(2022, 12, 1))
        b.times(p, [12, 13], on=month_day, note=HOSTILE_NOTE)
        b.claim(p, [("99490", 1)], dos=dt.date(2023, 3, 31))
        smp = sampling.pull_sample(conn, sampling.SampleRequest(202303, 202303, size=1, seed=1))
        sid = sampling.save_sample(conn, smp, "auditor", name="hostile text")
        db.bump_data_version(conn)
    log = tmp_path_factory.mktemp("browser_privacy_log") / "streamlit.log"
    with streamlit_server(url, log_path=log) as base:
        yield base, engine, sid, log
    engine.dispose()


def _export_rows(engine):
    with engine.connect() as conn:
        return conn.execute(
            select(s.access_log.c.username, s.access_log.c.detail, s.access_log.c.patient_count)
            .where(s.access_log.c.action == "export")
            .order_by(s.access_log.c.id)
        ).all()


def _fetch(url: str) -> tuple[int, bytes]:
    try:
        with urllib.request.urlopen(url, timeout=10) as r:  # no cookie: a copied link
            return r.status, r.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read()


def test_download_is_built_on_click_logged_first_and_its_url_serves_nothing_after(site):
    base, engine, _, _ = site
    with chromium_page() as page:
        login(page, base, "lead", "lead-demo")
        goto(page, base, "enrollment", "Enrollment & consent")
        click_tab(page, "Outreach list")
        assert not error_boxes(page)
        assert _export_rows(engine) == []  # drawing the buttons logs nothing and builds nothing
        button = page.locator('[data-testid="stDownloadButton"] button', has_text="CSV").first
        button.scroll_into_view_if_needed()
        shot(page, "privacy_download_buttons")
        with page.expect_download() as info:
            button.click()
        download = info.value
        body = open(download.path(), "rb").read().decode("utf-8-sig")
        lines = [ln for ln in body.splitlines() if ln]
        assert lines[0].startswith("Patient ID,") and len(lines) > 11  # the outreach rows, identified
        rows = _export_rows(engine)
        assert len(rows) == 1 and rows[0].username == "lead" and rows[0].detail.startswith("outreach_list_")
        assert rows[0].patient_count == len(lines) - 1 and "identified" in rows[0].detail
        media = download.url
        assert "/media/" in media
        status, data = _fetch(base + urlparse(media).path)  # the same URL, without the session's cookie
        assert status == 404 and b"patient_id" not in data
        # signing out and fetching again: still nothing
        page.get_by_role("button", name="Sign out").click()
        wait_idle(page, ready='input[aria-label="Username"]')
        status, data = _fetch(base + urlparse(media).path)
        assert status == 404 and b"patient_id" not in data


def test_names_and_notes_from_data_render_as_text_on_the_audit_page(site):
    base, engine, sid, _ = site
    outside: list[str] = []
    with chromium_page() as page:
        host = urlparse(base).netloc

        def guard(route):
            if urlparse(route.request.url).netloc != host:
                outside.append(route.request.url)
                route.abort()
            else:
                route.continue_()

        page.route("**/*", guard)
        login(page, base, "auditor", "auditor-demo")
        goto(page, base, "audit", "Audit")
        page.get_by_role("combobox", name="Sample").click()
        page.get_by_role("option", name=f"#{sid} hostile text").click()
        wait_idle(page)
        app = page.locator('[data-testid="stMain"]')
        text = app.inner_text()
        assert HOSTILE_FIRST in text  # the name reads literally
        assert HOSTILE_NOTE in text  # the note is quoted in the evidence, literally
        assert (
            page.locator(
                '[data-testid="stMain"] a[href^="https://x"], [data-testid="stMain"] a[href^="http://x"]'
            ).count()
            == 0
        )
        assert page.locator('[data-testid="stMain"] img[src*="//x"]').count() == 0
        shot(page, "privacy_audit_text_from_data")
        assert not error_boxes(page)
    # Streamlit itself may fetch icon glyphs from fonts.gstatic.com; nothing may go to a host named in the data
    assert [u for u in outside if urlparse(u).hostname == "x"] == []
    assert {urlparse(u).hostname for u in outside} <= {"fonts.gstatic.com"}, outside


def test_meeting_mode_pages_in_a_browser(site):
    """Meeting mode on the shared screen: suppressed cells read "<11", no identifier is drawn; screenshots
    privacy_meeting_*.png for a person to look at."""
    base, engine, _, _ = site
    with engine.connect() as conn:
        people = conn.execute(select(s.patient.c.mrn, s.patient.c.first_name, s.patient.c.last_name)).all()
    ids = {r.mrn for r in people} | {f"{r.first_name} {r.last_name}" for r in people}
    with chromium_page() as page:
        login(page, base, "lead", "lead-demo", path="?meeting=1")
        for path, title, tab in (
            ("", "Overview", None),
            ("enrollment", "Enrollment & consent", "Funnel"),
            ("minutes", "Minutes & worklist", "Distribution & trend"),
            ("billing", "Billing & denials", "Denial reasons"),
        ):
            if path:
                goto(page, base, path, title)
            if tab:
                click_tab(page, tab)
            assert not error_boxes(page)
            text = page.locator('[data-testid="stApp"]').inner_text()
            assert "meeting mode" in text.lower()
            assert not [i for i in ids if i in text]
            shot(page, f"privacy_meeting_{path or 'overview'}")


def test_meeting_pack_is_built_on_click_and_logged(site):
    base, engine, _, _ = site
    before = len(_export_rows(engine))
    with chromium_page() as page:
        login(page, base, "lead", "lead-demo")
        button = page.locator('[data-testid="stDownloadButton"] button', has_text="Meeting pack").first
        button.scroll_into_view_if_needed()
        with page.expect_download() as info:
            button.click()
        data = open(info.value.path(), "rb").read()
        assert data.startswith(b"%PDF")
        status, _ = _fetch(base + urlparse(info.value.url).path)
        assert status == 404
    rows = [r for r in _export_rows(engine)[before:] if r.detail.startswith("ccm_meeting_pack_")]
    assert len(rows) == 1 and rows[0].username == "lead"  # (the pack builder writes its own row as well)
