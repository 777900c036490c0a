"""Work queues in a real browser, one journey per role (issue 15): the care manager lands on her month and
works her list; the biller lands on the denials and marks one appealed, which persists and is logged.
Screenshots at 1366x768 and 1920x1080 (artifacts/screenshots/queues_*.png) for a person to look at.
"""

from __future__ import annotations

import pytest
from sqlalchemy import select

from ccm_core.security import auth
from ccm_core.storage import db
from ccm_core.storage import schema as s

from browser_utils import browser_available, chromium_page, error_boxes, goto, login, shot, streamlit_server, wait_idle

pytestmark = pytest.mark.browser

_skip = browser_available()
if _skip:
    pytest.skip(_skip, allow_module_level=True)

SIZES = ({"width": 1366, "height": 768}, {"width": 1920, "height": 1080})


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    from ccm_core.io import demo

    url = f"sqlite:///{tmp_path_factory.mktemp('browser_queues') / 'demo.db'}"
    engine = db.make_engine(url)
    db.upgrade(engine)
    demo.generate(engine, patients=400, months=9, seed=5)
    auth.create_demo_users(engine)
    log = tmp_path_factory.mktemp("queues_log") / "server.log"
    with streamlit_server(url, log) as base:
        yield base, engine
    engine.dispose()


def _text(page) -> str:
    return page.locator('[data-testid="stMain"]').inner_text()


def test_care_manager_lands_on_her_month_and_works_the_list(site):
    base, engine = site
    with engine.connect() as conn:
        me = conn.execute(
            select(s.app_user.c.staff_id, s.app_user.c.display_name).where(s.app_user.c.username == "care")
        ).one()
    with chromium_page() as page:
        for size in SIZES:
            page.set_viewport_size(size)
            if size == SIZES[0]:
                login(page, base, "care", "care-demo")
            wait_idle(page, ready='h1:has-text("My month")')  # her landing page, no navigation needed
            text = _text(page)
            assert "Still to finish in" in text and "At 0 minutes" in text and "Not contacted this month" in text
            assert "your patients only" in text
            assert me.display_name in page.locator('[data-testid="stSidebar"]').inner_text()
            assert "Caseload and minutes capacity" in text
            assert not error_boxes(page)
            grid = page.locator('[data-testid="stDataFrame"]').first
            assert grid.is_visible()
            shot(page, f"queues_care_manager_{size['width']}")
        # click-through: the "0" bar lists the patients at 0 minutes, as many as the tile says
        at_zero = page.locator('[data-testid="stMetric"]').filter(has_text="At 0 minutes").inner_text().split()[-1]
        chart = page.locator('[data-testid="stVegaLiteChart"]').first
        chart.scroll_into_view_if_needed()
        chart.locator("svg path[role='graphics-symbol']").first.click(force=True)
        wait_idle(page)
        assert f"{at_zero} patients at 0 minutes (chart selection" in _text(page)
        shot(page, "queues_care_manager_clicked_1366")


def test_biller_works_a_denial_it_persists_and_is_logged(site):
    base, engine = site
    with chromium_page() as page:
        page.set_viewport_size(SIZES[0])
        login(page, base, "biller", "biller-demo")
        wait_idle(page, ready='h1:has-text("Denials to work")')
        text = _text(page)
        assert "Denied and underpaid lines" in text and "Open lines" in text and "Likely fix" in text
        assert not error_boxes(page)
        shot(page, "queues_biller_1366")
        picker = page.get_by_role("combobox", name="Claim line")
        picked = picker.input_value()
        claim_number = picked.split("·")[0].strip()
        assert claim_number and "Open" in picked
        page.locator('[data-testid="stRadio"] label').filter(has_text="Appealed").click()
        wait_idle(page)
        page.get_by_role("button", name="Save status").click()
        wait_idle(page)
        assert f"Saved: {claim_number}" in _text(page)
        # away and back: what she sees comes from the database, not from the form she just used
        goto(page, base, "overview", title="Overview")
        # the biller's landing page sits at the site root: back through its link in the top navigation
        page.locator('[data-testid="stTopNavLink"]').filter(has_text="Denials to work").click()
        wait_idle(page, ready='h1:has-text("Denials to work")')
        appealed = page.locator('[data-testid="stMetric"]').filter(has_text="Appealed").inner_text()
        assert appealed.split() == ["Appealed", "1"]  # the line is now counted as appealed
        # worked lines drop below the open ones: the picker opens on the next open line
        assert page.get_by_role("combobox", name="Claim line").input_value().endswith("Open")
        page.set_viewport_size(SIZES[1])
        wait_idle(page)
        shot(page, "queues_biller_1920")
        # A/R aging: a bar opens the unpaid claims behind it
        page.get_by_role("tab", name="A/R aging").click()
        wait_idle(page)
        chart = page.locator('[data-testid="stVegaLiteChart"]').first
        chart.scroll_into_view_if_needed()
        chart.locator("svg path[role='graphics-symbol']").first.click(force=True)
        wait_idle(page)
        assert "unpaid claims," in _text(page) and "days" in _text(page)
        shot(page, "queues_biller_aging_1920")
    with engine.connect() as conn:
        rows = conn.execute(select(s.denial_work.c.status, s.denial_work.c.updated_by)).all()
        log = (
            conn.execute(select(s.access_log.c.detail).where(s.access_log.c.action == "denial_status")).scalars().all()
        )
    assert ("appealed", "biller") in [tuple(r) for r in rows]
    assert any(claim_number in d and "open -> appealed" in d for d in log)


def test_auditor_reviews_a_sample_end_to_end(site):
    """Pull, agree, see it saved and moved on, keyboard next, Esc keeps the sample, evidence in full,
    sample list and trend, and the month checklist's Excel right after its CSV."""
    base, engine = site
    with chromium_page() as page:
        page.set_viewport_size(SIZES[0])
        login(page, base, "auditor", "auditor-demo")
        wait_idle(page, ready='h1:has-text("Audit")')  # the auditor lands on the audit
        page.get_by_role("spinbutton", name="Sample size").fill("3")
        page.get_by_role("button", name="Pull and save sample").click()
        wait_idle(page, ready="text=Reviewed")
        picker = page.get_by_role("combobox", name="Patient-month (failed first)")
        first = picker.input_value()
        assert "to review" in first and first.startswith(first.split(".")[0] + ".")
        page.get_by_role("button", name="Agree with all unanswered").click()
        wait_idle(page)
        text = _text(page)
        assert "Reviewed 1 / 3" in " ".join(text.split())
        moved = page.get_by_role("combobox", name="Patient-month (failed first)").input_value()
        assert moved != first and "to review" in moved  # saving moved on to the next item
        page.get_by_role("button", name="Previous").click()
        wait_idle(page)
        back = page.get_by_role("combobox", name="Patient-month (failed first)").input_value()
        assert back.split(" · ")[0] == first.split(" · ")[0] and back.endswith("✔ reviewed")
        checked = page.locator('[data-testid="stRadio"] input[type="radio"]:checked')
        assert checked.count() >= 10  # every item shows its saved answer
        shot(page, "queues_auditor_review_1366")
        # keyboard: N goes to the next patient-month
        page.evaluate("document.activeElement && document.activeElement.blur()")
        page.keyboard.press("n")
        wait_idle(page)
        assert page.get_by_role("combobox", name="Patient-month (failed first)").input_value() != back
        # Esc in the sample picker keeps the open sample
        sample_box = page.get_by_role("combobox", name="Sample")
        opened = sample_box.input_value()
        sample_box.click()
        page.keyboard.press("Escape")
        wait_idle(page)
        assert page.get_by_role("combobox", name="Sample").input_value() == opened
        assert page.get_by_role("combobox", name="Patient-month (failed first)").count() == 1
        page.get_by_text("Evidence", exact=True).scroll_into_view_if_needed()
        page.get_by_role("tab", name="Time log").click()
        wait_idle(page)
        shot(page, "queues_auditor_evidence_1366")
        page.set_viewport_size(SIZES[1])
        wait_idle(page)
        shot(page, "queues_auditor_evidence_1920")
        page.set_viewport_size(SIZES[0])
        page.get_by_role("tab", name="Samples & trend").click()
        wait_idle(page)
        text = _text(page)
        assert "One sample reviewed so far" in text and "A trend needs two or more reviewed samples" in text
        shot(page, "queues_auditor_samples_1366")
        # the month checklist: Excel right after CSV both arrive
        page.get_by_role("tab", name="Month checklist").click()
        wait_idle(page)
        shot(page, "queues_auditor_month_1366")
        with page.expect_download(timeout=60_000) as csv_dl:
            page.locator('[data-testid="stDownloadButton"] button').filter(has_text="CSV").first.click()
        with page.expect_download(timeout=60_000) as xlsx_dl:
            page.locator('[data-testid="stDownloadButton"] button').filter(has_text="Excel").first.click()
        assert csv_dl.value.suggested_filename.endswith(".csv")
        assert xlsx_dl.value.suggested_filename.endswith(".xlsx")
        assert not error_boxes(page)
    with engine.connect() as conn:
        n = conn.execute(select(s.audit_finding.c.id)).all()
    assert len(n) >= 10
