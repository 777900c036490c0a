"""Revenue: expected vs billed vs paid by month and per enrolled patient, where money leaks, and where the
program is heading at its current enrollment pace.

Every number comes from ``ccm_core.kpis.program`` / ``ccm_core.kpis.breakdowns`` (expected = fee schedule of the
service year x the units the counted minutes support).  This page shows no patient-level data.
"""

from __future__ import annotations

import streamlit as st

from ui.session import require_page

user = require_page("revenue")  # before any data is read

import datetime as dt  # noqa: E402

from ccm_core.engine.filters import data_as_of  # noqa: E402
from ccm_core.kpis import breakdowns as kpis_extra  # noqa: E402
from ccm_core.kpis import program as kpis  # noqa: E402
from ui import charts, layout  # noqa: E402
from ui.cache import cached  # noqa: E402
from ui.components import empty_state, format_value, friendly_errors  # noqa: E402
from ui.filters import sidebar_filters  # noqa: E402
from ui.layout import Tile  # noqa: E402
from ui.meeting import present, suppress_small  # noqa: E402
from ui.run_scope import run_scope  # noqa: E402

PAGE = "revenue"
MONEY = {"expected": "Expected", "billed": "Billed", "paid": "Paid"}
COLORS = [charts.MUTED, charts.PRIMARY, charts.GOOD]


def draw_tiles(f) -> None:
    now, before = cached(kpis.revenue_summary, f), cached(kpis.revenue_summary, f.month_before())
    e, b = now.extra, dict(before.extra)
    if f.month_to in run_scope().get("open_months", ()):  # an open month is not compared as if closed
        b["billed"] = b["paid"] = None
    layout.tile_row(
        PAGE,
        f,
        [
            Tile(
                "expected",
                "Expected revenue",
                e.get("expected"),
                b.get("expected"),
                "dollars",
                definition=now.definition,
                help="Fee schedule x the units the counted minutes support.",
            ),
            Tile(
                "billed",
                "Billed (charges)",
                e.get("billed"),
                b.get("billed"),
                "dollars",
                definition=now.definition,
                help="Charges on CCM claim lines with a date of service in the month." + _open_help(f),
            ),
            Tile(
                "paid",
                "Paid",
                e.get("paid"),
                b.get("paid"),
                "dollars",
                definition=now.definition,
                help="Remittances received so far for those claims." + _open_help(f),
            ),
            Tile(
                "per_enrolled",
                "Per enrolled patient",
                e.get("per_enrolled"),
                b.get("per_enrolled"),
                "dollars",
                definition=now.definition,
                help="Expected revenue per enrolled patient; paid per enrolled patient: "
                f"{format_value(e.get('paid_per_enrolled'), 'dollars')}.",
            ),
        ],
    )


def _open(f) -> str:
    return " (open month)" if f.month_to in run_scope().get("open_months", ()) else ""


def _open_help(f) -> str:
    return (
        " The month is still open: claims are still going out and being paid, so this is not compared with last month."
        if _open(f)
        else ""
    )


def draw_by_month(tf) -> None:
    df = cached(kpis.revenue_by_month, tf)
    if df.empty or float(df[list(MONEY)].to_numpy().sum()) == 0:
        layout.section("Expected, billed and paid by month", None, df.attrs.get("definition"))
        empty_state("No revenue in these months", "Widen the month range or clear filters.")
        return
    left, right = st.columns(2, gap="large")
    with left:
        layout.section(
            "Expected, billed, paid",
            "By month of service; paid fills in as remittances arrive.",
            df.attrs.get("definition"),
        )
        charts.show(
            charts.grouped_month_bars(df, MONEY, month_col="month", y_title="Dollars", fmt="$,.2f", colors=COLORS),
            "Expected, billed and paid revenue by month",
        )
    with right:
        layout.section("Per enrolled patient", "Each month's dollars over patients enrolled at that month's end.")
        charts.show(
            charts.trend_lines(
                df,
                {"expected_per_enrolled": "Expected", "billed_per_enrolled": "Billed", "paid_per_enrolled": "Paid"},
                month_col="month",
                y_title="Dollars per enrolled patient",
                fmt="$,.2f",
                colors=COLORS,
            ),
            "Revenue per enrolled patient by month",
        )
    table = df.assign(month=df["month"].map(charts.month_label))
    table = present(table, user, PAGE, count_cols=("enrolled", "billable_patient_months"))
    layout.table(
        table,
        column_order=[
            "month",
            "enrolled",
            "billable_patient_months",
            "expected",
            "billed",
            "paid",
            "expected_per_enrolled",
            "paid_per_enrolled",
        ],
        column_config={
            "month": st.column_config.TextColumn("Month"),
            "enrolled": st.column_config.TextColumn("Enrolled"),
            "billable_patient_months": st.column_config.TextColumn("Billable"),
            "expected": st.column_config.NumberColumn("Expected", format="dollar"),
            "billed": st.column_config.NumberColumn("Billed", format="dollar"),
            "paid": st.column_config.NumberColumn("Paid", format="dollar"),
            "expected_per_enrolled": st.column_config.NumberColumn("Expected / patient", format="dollar"),
            "paid_per_enrolled": st.column_config.NumberColumn("Paid / patient", format="dollar"),
        },
    )


def draw_leakage(tf, as_of) -> None:
    df = cached(kpis.revenue_leakage, tf, as_of)
    layout.section(
        "Revenue leakage by cause",
        f"{charts.month_label(tf.month_from)} to {charts.month_label(tf.month_to)}: dollars the program "
        "did not collect, or put at risk, by cause.",
        df.attrs.get("definition"),
    )
    if df.empty or float(df["dollars"].sum()) == 0:
        empty_state("No leakage found in these months", icon=":material/verified:")
        return
    left, right = st.columns(2, gap="large")
    with left:
        charts.show(
            charts.horizontal_bars(
                df,
                "cause",
                "dollars",
                x_title="Dollars",
                fmt="$,.0f",
                color=charts.BAD,
                tooltip_cols=[("patient_months:Q", "Patient-months", ",d")],
            ),
            "Revenue leakage in dollars by cause",
        )
    with right:
        table = present(df, user, PAGE, count_cols=("patient_months",))
        layout.table(
            table,
            column_config={
                "cause": st.column_config.TextColumn("Cause"),
                "patient_months": st.column_config.TextColumn("Patient-months"),
                "dollars": st.column_config.NumberColumn("Dollars", format="dollar"),
            },
        )
        st.caption("Near misses are valued at 99490; conflicts at the fee value billed in those months.")


def draw_projection(tf) -> None:
    df = cached(kpis_extra.revenue_projection, tf, 6)
    a = df.attrs
    layout.section(
        "Where the program is heading",
        "The next 6 months at the trailing enrollment pace, billable rate and collection ratio.",
        a.get("definition"),
    )
    c1, c2, c3 = st.columns(3)
    c1.metric(
        "Projected expected, next 6 months", format_value(a.get("projected_expected_total"), "dollars"), border=True
    )
    c2.metric(
        "Projected collected, next 6 months",
        format_value(a.get("projected_collected_total"), "dollars"),
        border=True,
        help="Expected x the paid-to-expected ratio of months at least 2 months old.",
    )
    end = a.get("projected_enrolled_end")
    c3.metric(
        "Enrolled in 6 months",
        "n/a" if end is None else f"{suppress_small(round(end))}",
        border=True,
        help=f"Net change {a.get('growth', 0):+.1f} enrolled patients a month (trailing {a.get('window')} months).",
    )
    if float(df["expected"].fillna(0).sum()) == 0:
        empty_state("Nothing to project yet", "The projection needs months with enrolled, billable patients.")
        return
    charts.show(
        charts.projection(
            df, {"expected": "Expected", "collected": "Paid / collected"}, month_col="month", y_title="Dollars"
        ),
        "Expected and collected revenue: actual months solid, projected months dashed",
    )
    rate, per, coll = a.get("billable_rate"), a.get("expected_per_billable"), a.get("collection_ratio")
    st.caption(
        "Assumptions from the trailing months: "
        f"enrollment {a.get('growth', 0):+.1f} patients a month; billable rate "
        f"{'n/a' if rate is None else f'{rate:.0%}'}; "
        f"{format_value(per, 'dollars')} expected per billable patient-month; "
        f"collected {'n/a' if coll is None else f'{coll:.0%}'} of expected. "
        "No seasonality or fee-schedule change. Solid lines are actual months, dashed lines projected."
    )


with friendly_errors("the revenue page"):
    f = sidebar_filters()
    layout.page_start("Revenue", f, open_months=True)
    with friendly_errors("the revenue tiles"):
        draw_tiles(f)
    tf, note = charts.trend_window(f)
    st.caption(
        f"Tiles and leakage cover {layout.window_words(f)}; charts by month show {layout.window_words(tf)}"
        + (" (the trend window)." if note else ".")
    )
    as_of = cached(data_as_of, dt.date.today()) or dt.date.today()
    layout.lazy_tabs(
        [
            ("By month", lambda: draw_by_month(tf)),
            ("Leakage", lambda: draw_leakage(f, as_of)),
            ("Projection", lambda: draw_projection(tf)),
        ],
        key="revenue_tab",
    )
