"""The program-lead pages in a real browser: every page and tab renders without an error box, meeting
mode keeps identifiers off the screen, and screenshots (artifacts/screenshots/pages_*.png, 1280x720) for a
person to look at.

A fresh ``streamlit run app.py`` serves a small demo practice that ends today, so the month-to-date
worklist is live; the demo logins (lead/lead-demo, care/care-demo) sign in through the real form.
"""

from __future__ import annotations

import re

import pytest
from sqlalchemy import select

from ccm_core.security import auth
from ccm_core.storage import db
from ccm_core.storage.schema import patient

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

PAGES = {  # url path -> (h1, tabs)
    "enrollment": (
        "Enrollment & consent",
        ["Funnel", "Declines & disenrollments", "Consent completeness", "Retention", "Outreach list"],
    ),
    "minutes": ("Minutes & worklist", ["Worklist", "Distribution & trend", "Care managers", "Time flags"]),
    "billing": (
        "Billing & denials",
        ["Supported vs billed", "Findings & conflicts", "Denial trend", "Denial reasons", "Claim lines"],
    ),
    "revenue": ("Revenue", ["By month", "Leakage", "Projection"]),
}
PATIENT_TABS = {"enrollment": "Outreach list", "minutes": "Worklist", "billing": "Claim lines"}


def _slug(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", "_", text.lower()).strip("_")


@pytest.fixture(scope="module")
def demo_site(tmp_path_factory):
    """(base URL, server log, MRNs, patient names) of a server over a fresh 400-patient demo practice."""
    from ccm_core.io import demo

    url = f"sqlite:///{tmp_path_factory.mktemp('browser_pages') / 'demo.db'}"
    engine = db.make_engine(url)
    db.upgrade(engine)
    demo.generate(engine, patients=400, months=9, seed=5)
    auth.create_demo_users(engine)
    with engine.connect() as conn:
        rows = conn.execute(select(patient.c.mrn, patient.c.first_name, patient.c.last_name)).all()
    engine.dispose()
    log = tmp_path_factory.mktemp("browser_pages_log") / "streamlit.log"
    with streamlit_server(url, log_path=log) as base:
        yield base, log, {r.mrn for r in rows}, {f"{r.first_name} {r.last_name}" for r in rows}


def _visible_text(page) -> str:
    """The main area's text, including what input boxes show (a select box's chosen label is an input value)."""
    inputs = page.eval_on_selector_all('[data-testid="stMain"] input', "els => els.map(e => e.value).join('\\n')")
    return page.locator('[data-testid="stMain"]').inner_text() + "\n" + inputs


def test_every_page_and_tab_renders_and_is_photographed(demo_site):
    base, log, mrns, names = demo_site
    with chromium_page() as page:
        login(page, base, "lead", "lead-demo")
        for path, (title, tabs) in PAGES.items():
            goto(page, base, path, title)
            page.wait_for_selector('[data-testid="stMetric"]')
            assert not error_boxes(page), (path, error_boxes(page))
            shot(page, f"pages_{path}")
            for tab in tabs:
                click_tab(page, tab)
                assert not error_boxes(page), (path, tab, error_boxes(page))
                assert (
                    page.locator(
                        '[data-testid="stVegaLiteChart"], [data-testid="stDataFrame"], [data-testid="stMetric"]'
                    ).count()
                    > 0
                )
                shot(page, f"pages_{path}_{_slug(tab)}")
    assert "Traceback" not in log.read_text(), log.read_text()[-3000:]


def test_meeting_mode_pages_show_no_identifiers(demo_site):
    base, log, mrns, names = demo_site
    with chromium_page() as page:
        login(page, base, "lead", "lead-demo")
        goto(page, base, "enrollment", PAGES["enrollment"][0])
        page.locator('[data-testid="stSidebar"] [data-testid="stCheckbox"]', has_text="Meeting mode").click()
        wait_idle(page)
        assert "meeting=1" in page.url
        for path, (title, _tabs) in PAGES.items():
            goto(page, base, path, title)
            assert not error_boxes(page), (path, error_boxes(page))
            shot(page, f"pages_{path}_meeting")
            if path in PATIENT_TABS:
                click_tab(page, PATIENT_TABS[path])
                assert "hidden in meeting mode" in _visible_text(page), path
                assert page.locator('[data-testid="stDataFrame"]:visible').count() == 0, path
                shot(page, f"pages_{path}_{_slug(PATIENT_TABS[path])}_meeting")
            text = _visible_text(page)
            leaked = [m for m in mrns if m in text] + [n for n in names if n in text]
            assert not leaked, (path, leaked[:5])
    assert "Traceback" not in log.read_text(), log.read_text()[-3000:]


def test_care_manager_lands_on_their_worklist(demo_site):
    base, log, _mrns, _names = demo_site
    with chromium_page() as page:
        login(page, base, "care", "care-demo")
        goto(page, base, "minutes", PAGES["minutes"][0])
        assert not error_boxes(page)
        assert "your patients only" in _visible_text(page)
        assert page.get_by_role("tab", name="Worklist").get_attribute("aria-selected") == "true"
        click_tab(page, "Worklist")
        shot(page, "pages_minutes_care_manager_worklist")


AUDIT_TABS = ["Samples & trend", "Month checklist", "Export", "Review"]


def test_auditor_pulls_reviews_and_exports_a_sample(demo_site):
    """The auditor's journey in a browser: pull a sample, walk it item by item, see every tab; then in
    meeting mode no MRN or name is on the review screen."""
    base, log, mrns, names = demo_site
    with chromium_page() as page:
        login(page, base, "auditor", "auditor-demo")
        goto(page, base, "audit", "Audit")
        assert not error_boxes(page)
        shot(page, "pages_audit_pull")
        form = page.locator('[data-testid="stForm"]')
        size = form.get_by_label("Sample size")
        size.fill("12")
        size.press("Tab")
        form.get_by_role("button", name="Pull and save sample").click()
        wait_idle(page)
        page.wait_for_selector("text=/Sample #\\d+|#\\d+ /", timeout=60_000)
        wait_idle(page)
        assert not error_boxes(page), error_boxes(page)
        text = _visible_text(page)
        assert "Checklist" in text or "checklist" in text
        shot(page, "pages_audit_review")
        for tab in AUDIT_TABS:
            click_tab(page, tab)
            assert not error_boxes(page), (tab, error_boxes(page))
            shot(page, f"pages_audit_{_slug(tab)}")
        page.locator('[data-testid="stSidebar"] [data-testid="stCheckbox"]', has_text="Meeting mode").click()
        wait_idle(page)
        click_tab(page, "Review")
        shot(page, "pages_audit_review_meeting")
        text = _visible_text(page) + "\n" + "\n".join(page.locator('[data-testid="stSelectbox"]').all_inner_texts())
        assert "Patient " in text  # the picker now names pseudonyms
        leaked = [m for m in mrns if m in text] + [n for n in names if n in text]
        leaked += [n for n in names if ", ".join(reversed(n.split(" ", 1))) in text]  # "Last, First"
        assert not leaked, leaked[:5]
    assert "Traceback" not in log.read_text(), log.read_text()[-3000:]


def test_admin_checks_files_on_the_import_page(demo_site):
    """Upload the example practice's files: the check runs before anything is written and shows per file."""
    from pathlib import Path

    base, log, _mrns, _names = demo_site
    examples = Path(__file__).resolve().parent.parent / "data" / "examples"
    with chromium_page() as page:
        login(page, base, "admin", "admin-demo")
        goto(page, base, "import", "Import data")
        assert not error_boxes(page)
        shot(page, "pages_import_empty")
        page.locator('[data-testid="stFileUploaderDropzoneInput"]').set_input_files(
            [
                str(examples / "clinics.csv"),
                str(examples / "practitioners.csv"),
                str(examples / "staff.csv"),
                str(examples / "patients.csv"),
                str(examples / "time_entries.csv"),
            ]
        )
        page.wait_for_selector('h3:has-text("Check")', timeout=60_000)
        wait_idle(page)
        assert not error_boxes(page), error_boxes(page)
        assert page.get_by_role("button", name=re.compile(r"Import 5 file")).count() == 1
        shot(page, "pages_import_check")
    assert "Traceback" not in log.read_text(), log.read_text()[-3000:]
