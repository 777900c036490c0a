"""The Overview page on the demo database: every number on screen is the named
ccm_core.kpis.program function's number for the chosen month (and the month before),
on SQLite and PostgreSQL; a care manager's tiles are their own panel's.
"""

from __future__ import annotations

import datetime as dt

import pytest

pytest.importorskip("ccm_core.io.demo", reason="the demo generator is not in this checkout yet")

from ccm_core.engine.filters import Filters, default_report_month, filter_options  # noqa: E402
from ccm_core.io import meetings  # noqa: E402
from ccm_core.kpis import program as kpis  # noqa: E402
from ccm_core.kpis import weekly  # noqa: E402
from ccm_core.security import auth  # noqa: E402
from ccm_core.storage.db import add_months, month_bounds, month_int  # noqa: E402

from apptest_utils import ROLE_USERS, app_env, ensure_role_users, login_as, metrics, open_page  # noqa: E402


@pytest.fixture
def app(demo_engine, demo_url, monkeypatch):
    ensure_role_users(demo_engine)
    app_env(monkeypatch, demo_url)
    return demo_engine


def _pct(v):
    return "n/a" if v is None else f"{v * 100:.1f}%"


def _money(v):
    return f"${v:,.0f}" if abs(v) >= 100 else f"${v:,.2f}"


def _pp(a, b):
    return f"{(a - b) * 100:+.1f} pp"


def _expected_tiles(conn, f):
    """What each tile must read, computed straight from ccm_core.kpis.program (the functions the other pages call)."""
    revenue = kpis.revenue_summary(conn, f)
    minutes = kpis.minutes_per_enrolled_patient(conn, f)
    return {
        "Enrolled patients": f"{kpis.enrolled_patients(conn, f).value:,}",
        "Consent rate": _pct(kpis.consent_rate(conn, f).value),
        "Minutes per patient": "n/a" if minutes.value is None else f"{minutes.value:,.1f}",
        "Billable (20+ min)": _pct(kpis.billable_rate(conn, f).value),
        "Expected revenue": _money(revenue.extra["expected"]),
        "Denial rate (claims)": _pct(kpis.initial_denial_rate(conn, f, by="count").value),
    }


def _report_month(conn) -> int:
    return default_report_month(filter_options(conn)["months"], dt.date.today())


def test_overview_tiles_equal_the_kpi_functions(app):
    with app.connect() as conn:
        month = _report_month(conn)
        f = Filters.for_month(month)
        expected = _expected_tiles(conn, f)
        prev = Filters.for_month(add_months(month, -1))
        enrolled_now = kpis.enrolled_patients(conn, f).value
        enrolled_before = kpis.enrolled_patients(conn, prev).value
        billable_now = kpis.billable_rate(conn, f).value
        billable_before = kpis.billable_rate(conn, prev).value
    at = login_as("program_lead")
    assert not at.exception
    shown = metrics(at)
    for label, value in expected.items():
        assert shown[label] == value, label
    assert enrolled_now > 0 and expected["Billable (20+ min)"] != "n/a"  # the demo month is not empty
    deltas = {m.label: m.delta for m in at.metric}
    assert deltas["Enrolled patients"] == f"{enrolled_now - enrolled_before:+,}"
    assert deltas["Billable (20+ min)"] == _pp(billable_now, billable_before)
    # Every tile carries its written definition (in its help), a target badge and a 12-point sparkline.
    helps = {m.label: m.help for m in at.metric}
    assert kpis.D["billable_rate"].numerator in helps["Billable (20+ min)"]
    assert any("badge[" in m.value for m in at.markdown)


def test_month_so_far_and_attention_match_the_worklist_and_forecast(app):
    today = dt.date.today()
    with app.connect() as conn:
        as_of = weekly.data_through(conn, today)["overall"]
        fm = Filters.for_month(month_int(as_of))
        worklist = kpis.near_threshold_worklist(conn, fm, as_of)
        pacing = kpis.pacing_forecast(conn, fm, as_of)
    near = worklist[worklist["tier"] == 1]
    at = login_as("program_lead")
    text = "\n".join(m.value for m in at.markdown)
    days_left = (month_bounds(month_int(as_of))[1] - as_of).days
    assert f"**{as_of:%B %Y} so far** · {days_left} day" in text
    assert f"month-end forecast **{pacing.value}**" in text
    assert pacing.value <= pacing.extra["cap"]
    links = [p.label for p in at.get("page_link")]
    assert any(label.startswith(f"{len(near)} · Patients 1-5 minutes short of 20") for label in links), links


def test_a_link_with_a_month_shows_that_month(app):
    with app.connect() as conn:
        month = add_months(_report_month(conn), -2)
        expected = _expected_tiles(conn, Filters.for_month(month))
    at = login_as("admin", query={"to": f"{month // 100}-{month % 100:02d}"})
    assert metrics(at)["Enrolled patients"] == expected["Enrolled patients"]
    assert metrics(at)["Expected revenue"] == expected["Expected revenue"]


def test_care_manager_sees_only_their_panel(app):
    care = auth.get_user(app, ROLE_USERS["care_manager"][0])
    assert care.staff_id is not None
    with app.connect() as conn:
        month = _report_month(conn)
        everyone = kpis.enrolled_patients(conn, Filters.for_month(month)).value
        mine = _expected_tiles(conn, Filters.for_month(month, care_manager_ids=(care.staff_id,)))
    at = open_page(login_as("care_manager"), "overview")  # she lands on My month; the Overview is one click away
    shown = metrics(at)
    assert shown["Enrolled patients"] == mine["Enrolled patients"]
    assert int(shown["Enrolled patients"].replace(",", "")) < everyone
    assert shown["Billable (20+ min)"] == mine["Billable (20+ min)"]


def test_meeting_mode_suppresses_small_counts_and_records_the_meeting(app):
    today = dt.date.today()
    at = login_as("program_lead")
    at.toggle[0].set_value(True).run()
    assert at.query_params["meeting"] == "1"
    assert not at.exception
    assert meetings.last_meeting(app, today + dt.timedelta(days=1)) == today


def test_since_last_meeting_uses_the_snapshot_of_that_meeting(app):
    """A snapshot saved at an earlier meeting drives the 'since meeting' line."""
    with app.connect() as conn:
        month = _report_month(conn)
        f = Filters.for_month(month)
        enrolled = kpis.enrolled_patients(conn, f).value
    earlier = dt.date.today() - dt.timedelta(days=7)
    meetings.record_meeting(app, earlier, "t_lead")
    meetings.save_meeting_snapshot(app, earlier, weekly.view_key(f), {"enrolled": enrolled - 4, "billable_rate": None})
    at = login_as("program_lead")
    captions = [c.value for c in at.caption]
    assert "Since meeting: +4" in captions
    assert any(earlier.strftime("%b %-d, %Y") in c for c in captions)
