"""The holds queue and the ready list in a real browser, as a biller, a program lead, a care manager and in
meeting mode; screenshots (artifacts/screenshots/holds_*.png) for a person to look at.

A fresh ``streamlit run app.py`` serves a small demo practice that ends today, so the open month has months on
hold (the demo plants missing consents, care plans and initiating visits) and months ready to bill.
"""

from __future__ import annotations

import pytest
from sqlalchemy import select

from ccm_core.engine import read
from ccm_core.engine.filters import Filters
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


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    """(base URL, server log, MRNs, this month's held MRNs, the care manager's held MRNs)."""
    import datetime as dt

    from ccm_core.io import demo

    url = f"sqlite:///{tmp_path_factory.mktemp('browser_holds') / 'demo.db'}"
    engine = db.make_engine(url)
    db.upgrade(engine)
    demo.generate(engine, patients=400, months=6, seed=11)
    auth.create_demo_users(engine)
    care = auth.get_user(engine, "care")
    month = dt.date.today().year * 100 + dt.date.today().month
    before = db.add_months(month, -1)  # the pages open on the last full month or the open one
    with engine.connect() as conn:
        mrns = set(conn.execute(select(patient.c.mrn)).scalars())
        st = read.billing_status(conn, Filters(before, month))
    held = st[st["billing_status"] == "hold"]
    by_month = {}  # "Nov 2026" -> (held MRNs, the care manager's held MRNs)
    for m in (before, month):
        h = held[held["service_month"] == m]
        label = dt.date(m // 100, m % 100, 1).strftime("%b %Y")
        by_month[label] = (set(h["mrn"]), set(h[h["care_manager_id"] == care.staff_id]["mrn"]))
    engine.dispose()
    log = tmp_path_factory.mktemp("browser_holds_log") / "streamlit.log"
    with streamlit_server(url, log_path=log) as base:
        yield base, log, mrns, set(held["mrn"]), by_month


def _text(page) -> str:
    return page.locator('[data-testid="stMain"]').inner_text()


@pytest.mark.parametrize("who", [("biller", "biller-demo"), ("lead", "lead-demo")])
def test_holds_queue_and_ready_list_on_the_billing_page(site, who):
    base, log, _mrns, held, _by_month = site
    assert held, "the demo's last months have months on hold"
    with chromium_page() as page:
        login(page, base, *who)
        goto(page, base, "billing", "Billing & denials")
        click_tab(page, "Holds")
        page.wait_for_selector('[data-testid="stDataFrame"]')
        assert not error_boxes(page), error_boxes(page)
        text = _text(page)
        assert "Dollars on hold" in text and "Patient-months on hold" in text
        assert page.locator('[data-testid="stVegaLiteChart"]').count() >= 1  # dollars by reason
        shot(page, f"holds_billing_{who[0]}")
        click_tab(page, "Ready to bill")
        assert not error_boxes(page), error_boxes(page)
        text = _text(page)
        assert "Ready to bill" in text and "Expected payment" in text
        assert page.get_by_role("button", name="Export for the billing system (CSV)").count() == 1
        shot(page, f"ready_billing_{who[0]}")
    assert "Traceback" not in log.read_text(), log.read_text()[-3000:]


def test_care_manager_sees_their_own_holds(site):
    import re

    base, log, _mrns, _held, by_month = site
    with chromium_page() as page:
        login(page, base, "care", "care-demo")
        goto(page, base, "minutes", "Minutes & worklist")
        click_tab(page, "Holds")
        assert not error_boxes(page), error_boxes(page)
        text = _text(page)
        assert "of your patients" in text
        held, mine = by_month[re.search(r"Holds, (\w{3} \d{4})", text).group(1)]
        others = held - mine
        # the server narrowed the list: no other care manager's held patient is on the page
        grid = page.locator('[data-testid="stDataFrame"]')
        shot(page, "holds_minutes_care_manager")
        page_text = text + "\n" + "\n".join(grid.nth(i).inner_text() for i in range(grid.count()))
        assert not [m for m in others if m in page_text]
        # exactly their own: every one of their held months is listed (or, with none, the page says so)
        assert all(m in page_text for m in mine) if mine else "Nothing on hold" in text
        # and the Billing page itself stays closed to the role (server-side check)
        page.goto(f"{base}/billing")
        wait_idle(page)
        assert "cannot open the Billing page" in _text(page)
    assert "Traceback" not in log.read_text(), log.read_text()[-3000:]


def test_holds_queue_in_meeting_mode_shows_totals_not_patients(site):
    base, log, mrns, _held, _by_month = site
    with chromium_page() as page:
        login(page, base, "lead", "lead-demo")
        goto(page, base, "billing", "Billing & denials")
        page.locator('[data-testid="stSidebar"] [data-testid="stCheckbox"]', has_text="Meeting mode").click()
        wait_idle(page)
        click_tab(page, "Holds")
        assert not error_boxes(page), error_boxes(page)
        text = _text(page)
        assert "Dollars on hold" in text and "hidden in meeting mode" in text
        assert page.locator('[data-testid="stDataFrame"]:visible').count() <= 1  # the by-reason table only
        assert not [m for m in mrns if m in text]
        shot(page, "holds_billing_meeting_mode")
        click_tab(page, "Ready to bill")
        text = _text(page)
        assert "switch meeting mode off to export" in text and not [m for m in mrns if m in text]
        shot(page, "ready_billing_meeting_mode")
    assert "Traceback" not in log.read_text(), log.read_text()[-3000:]


def test_minutes_worklist_marks_months_a_prerequisite_would_hold(site):
    base, log, mrns, _held, _by_month = site
    with chromium_page() as page:
        login(page, base, "lead", "lead-demo")
        goto(page, base, "minutes", "Minutes & worklist")
        click_tab(page, "Worklist")
        assert not error_boxes(page), error_boxes(page)
        shot(page, "holds_minutes_worklist_marker")  # the grid is a canvas: the column is checked by eye
    assert "Traceback" not in log.read_text(), log.read_text()[-3000:]
