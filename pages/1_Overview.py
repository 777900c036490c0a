"""Overview: the ten-second read of the program for the chosen month.

Top to bottom: the month and the date the data runs through; six headline KPIs (``ccm_core.kpis.weekly.HEADLINES``),
each with its 12-month sparkline, the change from the month before, the change since the last team meeting
and its target in green / amber / red (targets: Admin page, defaults in docs/weekly-read.md); this month so
far with the month-end forecast; and what needs attention, each line linking to the page that works it.  The
meeting pack button makes the same view as a PDF.  Every number is the ``ccm_core`` function the other pages
call for the same filters, read through the shared result cache (``ui.cache.cached``).
"""

from __future__ import annotations

import datetime as dt

import streamlit as st

from ui.session import require_page

user = require_page("overview")  # before any data is read

from ccm_core.engine.filters import filter_options  # noqa: E402
from ccm_core.io import meeting_pack  # noqa: E402
from ccm_core.kpis import program as kpis  # noqa: E402
from ccm_core.kpis import weekly  # noqa: E402
from ccm_core.storage.db import add_months, month_bounds, month_int  # noqa: E402
from ui import charts  # noqa: E402
from ui.cache import cached, get_engine  # noqa: E402
from ui.charts import month_label  # noqa: E402
from ui.components import empty_state, friendly_errors  # noqa: E402
from ui.exports import deferred_download  # noqa: E402
from ui.filters import filter_query_params, sidebar_filters  # noqa: E402
from ui.layout import since_last_meeting  # noqa: E402
from ui.meeting import hides_rate, meeting_mode, suppress_small  # noqa: E402
from ui.run_scope import run_scope  # noqa: E402

PAGE = "overview"
BADGE = {
    "green": ("green", "On target"),
    "amber": ("orange", "Watch"),
    "red": ("red", "Off target"),
    None: ("gray", "No target data"),
}
_CSS = """
<style>
.st-key-ov_tiles div[data-testid="stMetricValue"] { font-size: 1.75rem; }
.st-key-ov_tiles [data-testid="stMetricLabel"] p { font-size: 0.9rem; line-height: 1.2; }
.st-key-ov_tiles [data-testid="stMetricLabel"] * { white-space: normal !important; overflow: visible !important;
  text-overflow: clip !important; }
.st-key-ov_tiles div[data-testid="stMetricDelta"] { font-size: 0.85rem; }
.st-key-ov_tiles div[data-testid="stCaptionContainer"] p { margin-bottom: 0; font-size: 0.8rem; }
.st-key-ov_tiles div[data-testid="stVerticalBlockBorderWrapper"] { padding: 0.6rem 0.7rem; }
@media (max-width: 1500px) {
  .st-key-ov_tiles div[data-testid="stMetricValue"] { font-size: 1.4rem !important; }
}
h1 { padding-top: 0.2rem; padding-bottom: 0.2rem; }
</style>
"""
_MEETING_CSS = """
<style>
.st-key-ov_tiles div[data-testid="stMetricValue"] { font-size: 2.1rem; }
</style>
"""


def _rate_hidden(unit: str, value) -> bool:
    """A rate over counts whose numerator, denominator or complement is 1-10 is not shown in meeting mode."""
    return (
        unit == "rate"
        and getattr(value, "extra", {}).get("by") != "dollars"
        and hides_rate(getattr(value, "numerator", None), getattr(value, "denominator", None))
    )


def shown_value(key: str, value) -> str:
    h = weekly.HEADLINE_BY_KEY[key]
    if _rate_hidden(h.unit, value):
        return "<11"
    if h.unit == "count" and meeting_mode():
        n = weekly.number(value)
        if n is not None and 0 < n < 11:
            return "<11"
    return weekly.fmt(value, h.unit)


def shown_delta(key: str, now, then) -> str | None:
    h = weekly.HEADLINE_BY_KEY[key]
    if _rate_hidden(h.unit, now) or _rate_hidden(h.unit, then):
        return None
    if h.unit == "count" and meeting_mode():
        a, b = weekly.number(now), weekly.number(then)
        if (a is not None and 0 < a < 11) or (b is not None and 0 < b < 11):
            return None  # the difference of two small cells would reveal them
    return weekly.fmt_delta(now, then, h.unit)


def series_for(f, months: int = 12) -> dict[str, list[tuple[int, float | None]]]:
    """The sparklines: each month is the same cached call the tile (and every other page) makes."""
    out: dict[str, list] = {h.key: [] for h in weekly.HEADLINES}
    for m in weekly.trend_months(f.month_to, months):
        values = cached(weekly.headline_values, f.with_months(m))
        for h in weekly.HEADLINES:
            out[h.key].append((m, weekly.number(values[h.key])))
    return out


def draw_tiles(f, engine, as_of, lag_days) -> dict:
    now = cached(weekly.headline_values, f)
    before = cached(weekly.headline_values, f.with_months(add_months(f.month_to, -1)))
    series = series_for(f)
    with engine.connect() as conn:  # read fresh: an admin's new targets show at once (one small query)
        targets = weekly.targets(conn)
    values = {h.key: weekly.number(now[h.key]) for h in weekly.HEADLINES}
    last, snapshot = since_last_meeting(weekly.view_key(f), values)
    month_open = weekly.is_open(f.month_to, as_of, lag_days)
    with st.container(key="ov_tiles"):
        cols = st.columns(len(weekly.HEADLINES), gap="small")
        for col, h in zip(cols, weekly.HEADLINES):
            result = now[h.key]
            color, word = BADGE[weekly.status(h.key, result, before[h.key], targets[h.key])[0]]
            target_words = weekly.status(h.key, result, before[h.key], targets[h.key])[1]
            spark = [v for _, v in series[h.key] if v is not None]
            if _rate_hidden(h.unit, result):  # a hidden rate shows no trend either (it could give the count back)
                spark = []
            open_note = h.lag_sensitive and month_open
            delta = None if open_note else shown_delta(h.key, result, before[h.key])
            since = shown_delta(h.key, result, snapshot.get(h.key)) if h.key in snapshot else None
            definition = getattr(result, "definition", None)
            help_text = (
                f"{definition.name}: {definition.numerator}. Denominator: {definition.denominator}."
                if definition
                else None
            )
            help_text = (
                help_text or ""
            ) + f" Target: {target_words}. Sparkline: the 12 months to {month_label(f.month_to)}."
            with col, st.container(border=True):
                st.metric(
                    h.label,
                    shown_value(h.key, result),
                    delta=delta,
                    delta_color="normal" if h.better == "higher" else "inverse",
                    chart_data=spark or None,
                    chart_type="line",
                    help=help_text,
                )
                st.markdown(
                    f":{color}-badge[{word}]" + (" :gray-badge[open month]" if open_note else ""),
                    help=f"Target: {target_words}",
                )
                st.caption(f"Since meeting: {since or '—'}")
    return {"last": last, "snapshot": bool(snapshot)}


def meeting_note(info: dict) -> str:
    last = info["last"]
    if last is None:
        return (
            "first recorded meeting: next time shows what changed since today"
            if meeting_mode()
            else "no team meeting recorded yet (switch on Meeting mode during the meeting)"
        )
    if not info["snapshot"]:
        return f"the last meeting ({last:%b %-d}) did not look at these filters"
    return f"since last meeting = since {last:%b %-d, %Y}"


def draw_month_so_far(f, as_of) -> None:
    if as_of is None:
        return
    month = month_int(as_of)
    fc = cached(kpis.pacing_forecast, f.with_months(month), as_of)
    days_left = (month_bounds(month)[1] - as_of).days
    e = fc.extra
    rng = "" if e["low"] == e["high"] else f" (likely {suppress_small(e['low'])}–{suppress_small(e['high'])})"
    st.markdown(
        f"**{as_of:%B %Y} so far** · {weekly.plural(days_left, 'day')} left · "
        f"{weekly.plural(suppress_small(e['so_far']), 'billable patient-month')} · month-end forecast "
        f"**{suppress_small(fc.value)}**{rng} of {weekly.plural(suppress_small(e['enrolled']), 'enrolled patient')}",
        help=f"{kpis.D['pacing_forecast'].numerator}. {weekly.plural(suppress_small(e['can_still_bill']), 'enrolled patient')} "
        f"can still reach 20 minutes (the cap is {suppress_small(e['cap'])}). Backtest: docs/weekly-read.md.",
    )


ATTENTION_ICONS = {
    "holds": ":material/pause_circle:",
    "near_threshold": ":material/timer:",
    "denials": ":material/receipt_long:",
    "consent_gaps": ":material/how_to_reg:",
}


def draw_attention(f, as_of) -> None:
    items = cached(weekly.attention_items, f, as_of)
    pages = run_scope().get("pages") or {}
    query = filter_query_params() or None
    st.markdown("**Needs attention**")
    with st.container(key="ov_attention", gap="small"):
        for item in items:
            count = item["count"]
            if count in (None, 0) and not item.get("dollars"):
                continue
            shown = suppress_small(count) if count is not None else ""
            money = f" · {weekly.fmt(item['dollars'], 'dollars')}" if item.get("dollars") else ""
            label = f"{shown} · {item['label']}{money}" if count is not None else f"{item['label']}{money}"
            target = pages.get(item["page"])
            if target is not None:
                st.page_link(target, label=label, icon=ATTENTION_ICONS.get(item["kind"]), query_params=query)
            else:
                st.markdown(f"{ATTENTION_ICONS.get(item['kind'], '')} {label}")
        if all((i["count"] in (None, 0)) and not i.get("dollars") for i in items):
            st.caption("Nothing waiting: no holds, near misses, unworked denials or consent gaps.")


def draw_trend(f) -> None:
    """The month's one chart: the billable rate over the sparkline's 12 months, months in calendar order."""
    import pandas as pd

    trend = series_for(f)["billable_rate"]
    df = pd.DataFrame({"month": [m for m, _ in trend], "rate": [v for _, v in trend]})
    st.markdown("**Billable rate, 12 months**")
    charts.show(
        charts.trend_lines(df, {"rate": "Billable rate"}, month_col="month", y_title=None, y_domain=(0, 1)).properties(
            height=130
        ),
        "Billable rate over the 12 months to the report month",
    )


def draw_pack_button(f, as_of) -> None:
    week, pack_engine = dt.date.today(), get_engine()

    def build() -> bytes:  # runs in Streamlit's worker thread on click: no st.* calls in here
        return meeting_pack.build_pdf(pack_engine, f, week=week, as_of=as_of)  # deferred_download logs it

    # built on click for a live session and logged, like every download (ui.exports.deferred_download);
    # aggregate only, so any role that may open the Overview may have it
    deferred_download(
        "Meeting pack (PDF)",
        build,
        user=user,
        page="overview",
        file_name=f"ccm_meeting_pack_{week:%Y%m%d}.pdf",
        mime="application/pdf",
        detail="meeting pack (aggregate, counts under 11 suppressed)",
        patients=None,
        key="ov_pack",
        icon=":material/picture_as_pdf:",
        action=None,
        help="This view as a PDF for the weekly meeting: tiles with 12-month trends and "
        "since-last-meeting changes, what needs attention and the month's charts; counts "
        "under 11 suppressed as in meeting mode.",
    )


with friendly_errors("the overview"):
    engine = get_engine()
    f = sidebar_filters()
    st.html(_CSS + (_MEETING_CSS if meeting_mode() else ""))
    if not cached(filter_options)["months"]:
        st.title("Overview", anchor=False)
        empty_state(
            "No data yet",
            "Import the practice's files on the Import page, or run "
            "`python -m ccm_core init-db --demo-if-empty` for demo data.",
        )
    else:
        through = cached(weekly.data_through, dt.date.today())
        as_of = through["overall"]
        lag_days = cached(weekly.open_month_lag_days)
        head, button = st.columns([4, 1], vertical_alignment="bottom")
        with head:
            st.title(f"Overview · {month_label(f.month_to)}", anchor=False)
        with button:
            draw_pack_button(f, as_of)
        bits = [
            weekly.scope_words(f)
            + ("" if f.month_from == f.month_to else f" (tiles report on {month_label(f.month_to)})"),
            f"data through {as_of:%b %-d, %Y}" if as_of else "no data date",
        ]
        if weekly.is_open(f.month_to, as_of, lag_days):
            bits.append(
                f"{month_label(f.month_to)} is still open: claims go out and are paid up to {lag_days} "
                "days after month end"
            )
        st.caption(" · ".join(bits) + (" · meeting mode" if meeting_mode() else ""))
        info = draw_tiles(f, engine, as_of, lag_days)
        st.caption(
            f"Arrows: change vs the month before · {meeting_note(info)} · sparklines: 12 months to "
            f"{month_label(f.month_to)}"
        )
        left, right = st.columns([3, 2], gap="medium")
        with left:
            draw_month_so_far(f, as_of)
            draw_attention(f, as_of)
        with right:
            draw_trend(f)
