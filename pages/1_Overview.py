"""Overview: the program's headline numbers for the chosen month, and the month so far.

Every tile is one ``ccm_core.kpis`` function (definition one click away),
compared with the month before and with what the last team meeting saw.
"""
from __future__ import annotations

import datetime as dt
import hashlib

import streamlit as st

from ui.session import require_page

user = require_page("overview")  # before any data is read

from ccm_core import admin, auth, kpis  # noqa: E402
from ccm_core.db import add_months, format_month, month_bounds, month_int  # noqa: E402
from ui._run import run_scope  # noqa: E402
from ui.components import empty_state, format_value, friendly_errors, kpi_tile  # noqa: E402
from ui.data import cached, get_engine  # noqa: E402
from ui.filters import filter_query_params, sidebar_filters  # noqa: E402
from ui.meeting import meeting_mode, suppress_small  # noqa: E402

PAGE = "overview"

# Tile key -> (label, how to read the value from the KPI results, unit, which direction is good)
TILES = (
    ("enrolled", "Enrolled patients", "count", "higher"),
    ("consent_rate", "Consent rate", "rate", "higher"),
    ("minutes_per_enrolled", "Minutes per patient", "minutes", "higher"),
    ("billable_rate", "Billable (20+ min)", "rate", "higher"),
    ("expected_revenue", "Expected revenue", "dollars", "higher"),
    ("paid_revenue", "Paid revenue", "dollars", "higher"),
    ("denial_rate_count", "Denial rate (claims)", "rate", "lower"),
    ("denial_rate_dollars", "Denial rate (dollars)", "rate", "lower"),
)


def headline_results(f) -> dict:
    """The KPI results behind the tiles for one filter set (each cached until what it reads is written)."""
    revenue = cached(kpis.revenue_summary, f)
    denial = cached(kpis.initial_denial_rates, f)
    return {
        "enrolled": cached(kpis.enrolled_patients, f),
        "consent_rate": cached(kpis.consent_rate, f),
        "minutes_per_enrolled": cached(kpis.minutes_per_enrolled_patient, f),
        "billable_rate": cached(kpis.billable_rate, f),
        "expected_revenue": revenue,
        "paid_revenue": revenue,
        "denial_rate_count": denial["count"],
        "denial_rate_dollars": denial["dollars"],
    }


def tile_value(key: str, result):
    if key == "expected_revenue":
        return result.extra.get("expected")
    if key == "paid_revenue":
        return result.extra.get("paid")
    return result.value


def view_key(f) -> str:
    """Snapshots are per view: the same filters compare with the same filters."""
    return hashlib.sha1(repr(f).encode()).hexdigest()[:12]


def shifted_back(f):
    """The same range one month earlier: 'vs last month'."""
    return f.with_months(add_months(f.month_from, -1), add_months(f.month_to, -1))


def draw_tiles(f, engine) -> None:
    now = headline_results(f)
    before = headline_results(shifted_back(f))
    values = {key: tile_value(key, now[key]) for key, *_ in TILES}
    today = dt.date.today()
    if meeting_mode():
        admin.save_meeting_snapshot(engine, today, view_key(f), values)
    last = admin.last_meeting(engine, today)
    snapshot = admin.meeting_snapshot(engine, last, view_key(f)) if last else None

    for row in (TILES[:4], TILES[4:]):
        cols = st.columns(len(row))
        for col, (key, label, unit, better) in zip(cols, row):
            with col:
                result = now[key]
                help_text = None
                if key == "minutes_per_enrolled" and result.extra.get("median") is not None:
                    help_text = (f"Mean counted CCM minutes per enrolled patient; median "
                                 f"{result.extra['median']:.0f} min")
                if key.startswith("denial_rate"):
                    help_text = "Initial denials ÷ average claims submitted in the 3 months before (HFMA)."
                if key == "paid_revenue":
                    billed = result.extra.get("billed")
                    help_text = f"Billed {format_value(billed, 'dollars')}" if billed is not None else None
                kpi_tile(label, values[key], unit, previous=tile_value(key, before[key]),
                         last_meeting=(snapshot or {}).get(key), definition=result.definition, better=better,
                         help=help_text)
    arrows = "Arrows: change vs the month before, same filters."
    if last is None:
        note = ("This is the first recorded meeting: the next one will show what changed since today."
                if meeting_mode() else
                "No team meeting recorded yet: switch on Meeting mode during the meeting and the next one "
                "shows what changed since.")
    elif snapshot is None:
        note = (f"The last meeting ({last:%b %d, %Y}) did not look at this view (these filters), so there is "
                "no 'since last meeting' change to show.")
    else:
        note = f"'Since last meeting' compares with what the meeting of {last:%b %d, %Y} saw for this view."
    st.caption(f"{arrows} {note}")


def draw_pacing(f, engine) -> None:
    """Month to date: days left, patients 1-5 minutes short of 20, and the dollars that would bring."""
    as_of = cached(admin.data_as_of, dt.date.today())
    if as_of is None:
        return
    month = month_int(as_of)
    fm = f.with_months(month)
    worklist = cached(kpis.near_threshold_worklist, fm, as_of)
    pacing = cached(kpis.pacing_forecast, fm, as_of)
    month_end = month_bounds(month)[1]
    days_left = (month_end - as_of).days
    near = worklist[worklist["tier"] == 1] if not worklist.empty else worklist
    at_stake = float(near["expected_at_stake"].sum()) if not near.empty else 0.0
    st.subheader(f"Month to date: {as_of:%B %Y}", anchor=False)
    with st.container(border=True):
        c1, c2, c3, c4, c5 = st.columns(5)
        c1.metric("Days left", f"{days_left}", help=f"Data through {as_of:%b %d}; month ends {month_end:%b %d}.")
        c2.metric("Patients at 15-19 min", f"{suppress_small(len(near))}",
                  help="Enrolled patients 1-5 minutes short of the 20-minute threshold (99490).")
        c3.metric("Dollars at stake", format_value(at_stake, "dollars"),
                  help="99490 fee for each of those patients if they reach 20 minutes this month.")
        c4.metric("At 20+ min so far", f"{suppress_small(int(pacing.extra.get('so_far', 0)))}",
                  help="Enrolled patients whose counted minutes already reached 20 this month.")
        projected = pacing.value
        c5.metric("Month-end forecast", format_value(projected, "count") if projected is not None else "n/a",
                  help=f"Pacing forecast ({pacing.extra.get('method', '')}).")
        st.caption(kpis.D["pacing_forecast"].numerator)


def draw_links(user) -> None:
    pages = run_scope().get("pages") or {}
    keys = [k for k in auth.ROLE_PAGES[user.role] if k != PAGE and k in pages]
    if not keys:
        return
    st.subheader("Go to", anchor=False)
    query = filter_query_params()
    with st.container(horizontal=True, gap="medium"):
        for key in keys:
            st.page_link(pages[key], label=auth.PAGES[key][0], query_params=query or None)


with friendly_errors("the overview"):
    engine = get_engine()
    f = sidebar_filters()
    st.title("Overview", anchor=False)
    st.caption(f"{f.describe()} · month-level tiles report on {format_month(f.month_to)}"
               + (" · meeting mode" if meeting_mode() else ""))
    if not cached(admin.filter_options)["months"]:
        empty_state("No data yet", "Import the practice's files on the Import page, or run "
                    "`python -m ccm_core init-db --demo-if-empty` for demo data.")
    else:
        draw_tiles(f, engine)
        draw_pacing(f, engine)
        draw_links(user)
