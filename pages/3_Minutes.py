"""Minutes & worklist: how much counted time patients get, who is close to a billing threshold, and time
that looks reconstructed.

Numbers come from ``ccm_core.kpis.program`` / ``ccm_core.kpis.breakdowns`` (minutes are counted once, by the engine).
A care manager sees only their own patients: the filters are narrowed to their staff id here, server-side,
in addition to the sidebar's own restriction.
"""

from __future__ import annotations

import streamlit as st

from ui.session import require_page

user = require_page("minutes")  # before any data is read

import datetime as dt  # noqa: E402
from dataclasses import replace  # noqa: E402

import pandas as pd  # noqa: E402

from ccm_core.engine.filters import data_as_of  # noqa: E402
from ccm_core.kpis import breakdowns as kpis_extra  # noqa: E402
from ccm_core.kpis import program as kpis  # noqa: E402
from ccm_core.storage.db import month_bounds, month_int  # noqa: E402
from ui import charts, layout  # noqa: E402
from ui.cache import cached  # noqa: E402
from ui.components import empty_state, format_value, friendly_errors  # noqa: E402
from ui.exports import download_buttons  # noqa: E402
from ui.filters import sidebar_filters  # noqa: E402
from ui.holds import draw_holds, hold_markers  # noqa: E402
from ui.layout import Tile  # noqa: E402
from ui.meeting import count_pair, masks_identifiers, present, suppress_small  # noqa: E402

PAGE = "minutes"
IS_CARE_MANAGER = user.role == "care_manager"


def scoped(f):
    """A care manager's view is always their own panel, whatever the sidebar or URL says."""
    if IS_CARE_MANAGER:
        return replace(f, care_manager_ids=(user.staff_id if user.staff_id is not None else -1,))
    return f


def draw_tiles(f, as_of) -> None:
    prev = f.month_before()
    minutes, minutes_prev = (
        cached(kpis.minutes_per_enrolled_patient, f),
        cached(kpis.minutes_per_enrolled_patient, prev),
    )
    billable, billable_prev = cached(kpis.billable_rate, f), cached(kpis.billable_rate, prev)
    addon, addon_prev = cached(kpis.addon_capture, f), cached(kpis.addon_capture, prev)
    median = minutes.extra.get("median")
    tiles = [
        Tile(
            "minutes_mean",
            "Minutes per patient",
            minutes,
            minutes_prev.value,
            "minutes",
            help=(
                "Mean counted minutes per enrolled patient"
                + (f"; median {median:.0f} min." if median is not None else ".")
            ),
        ),
        Tile(
            "billable_rate",
            "Billable rate",
            billable,
            billable_prev.value,
            "rate",
            help="{} of {} patients enrolled at month end reached ".format(
                *count_pair(billable.numerator, billable.denominator)
            )
            + "20+ counted minutes (a billable code). Billable patient-months this month: "
            f"{_count(cached(kpis.billable_patient_months, f))} (Revenue's count; it also includes patients who "
            "left the program during the month).",
        ),
        Tile(
            "addon_capture",
            "Add-on capture",
            addon,
            addon_prev.value,
            "rate",
            help=f"Billable patients at 40+ min (99439); at 60+ min (99439 x2): {_pct(addon.extra.get('ge60'))}.",
        ),
    ]
    if as_of is not None:
        pacing = cached(kpis.pacing_forecast, f.with_months(month_int(as_of)), as_of)
        e = pacing.extra  # the Overview's forecast: same function, same value
        tiles.append(
            Tile(
                "pacing",
                f"Projected billable, {as_of:%b}",
                pacing.value,
                None,
                "count",
                definition=pacing.definition,
                help=f"Billable patient-months forecast for the end of {as_of:%B}: likely {_count(e['low'])} "
                f"to {_count(e['high'])}; {_count(e['so_far'])} already there on {as_of:%b %-d} and "
                f"{_count(e['can_still_bill'])} enrolled patients can still reach 20 minutes (the cap is "
                f"{_count(e['cap'])}).",
            )
        )
    layout.tile_row(PAGE, f, tiles)


def _count(v) -> str:
    """A count for text: "<11" in meeting mode when it is 1-10."""
    if v is None:
        return "n/a"
    return "<11" if suppress_small(v) == "<11" else f"{v:,}"


def _pct(v) -> str:
    return "n/a" if v is None or pd.isna(v) else f"{v * 100:.0f}%"


WORKLIST_COLUMNS = {
    "patient_name": st.column_config.TextColumn("Patient"),
    "mrn": st.column_config.TextColumn("MRN"),
    "counted_minutes": st.column_config.ProgressColumn("Minutes so far", format="%d min", min_value=0, max_value=20),
    "minutes_needed": st.column_config.NumberColumn("Needed", format="%d min"),
    "days_left": st.column_config.NumberColumn("Days left", format="%d"),
    "last_contact_date": st.column_config.DateColumn("Last contact", format="MMM D"),
    "days_since_contact": st.column_config.NumberColumn("Days since", format="%d"),
    "care_manager": st.column_config.TextColumn("Care manager"),
    "expected_at_stake": st.column_config.NumberColumn("Expected $", format="dollar"),
    "payer": st.column_config.TextColumn("Payer"),
}
# right after how many minutes are needed: reaching 20 does not bill a month a prerequisite holds back
WORKLIST_COLUMNS = dict(
    list(WORKLIST_COLUMNS.items())[:4]
    + [("on_hold", st.column_config.TextColumn("On hold even at 20 min? (fix)", width="large"))]
    + list(WORKLIST_COLUMNS.items())[4:]
)


def draw_worklist(f, as_of) -> None:
    if as_of is None:
        empty_state("No time recorded yet", "The worklist fills in as care managers log time this month.")
        return
    df = cached(kpis.near_threshold_worklist, f, as_of)
    month_end = month_bounds(month_int(as_of))[1]
    who = "Your patients" if IS_CARE_MANAGER else "Enrolled patients"
    layout.section(
        f"Near-threshold worklist, {as_of:%B %Y}",
        f"{who} 1-10 minutes short of 20 as of {as_of:%b %d} ({(month_end - as_of).days} days left in "
        "the month): 15-19 minutes first. Expected $ is the 99490 fee each would bring.",
        df.attrs.get("definition"),
    )
    if df.empty:
        empty_state(
            "Nobody is close to the threshold",
            "No enrolled patient is at 10-19 counted minutes this month for these filters.",
            icon=":material/task_alt:",
        )
        return
    # the month would be held even at 20 minutes when a prerequisite fails: say so, with the fix
    df = df.assign(on_hold=hold_markers(f.with_months(month_int(as_of)), user, df["patient_id"]).to_numpy())
    tier1 = df[df["tier"] == 1]
    c1, c2, c3 = st.columns(3)
    c1.metric("Patients at 15-19 min", f"{suppress_small(len(tier1))}", border=True)
    c2.metric("Patients at 10-14 min", f"{suppress_small(len(df) - len(tier1))}", border=True)
    c3.metric(
        "Dollars at stake (15-19 min)", format_value(float(tier1["expected_at_stake"].sum()), "dollars"), border=True
    )
    shown = present(df, user, PAGE, id_cols=("patient_id", "mrn"), name_cols=("patient_name",), table_key="worklist")
    if shown is None:
        return
    order = [c for c in WORKLIST_COLUMNS if not (masks_identifiers(user) and c == "mrn")]
    layout.table(shown, height=min(420, 38 + 35 * len(shown)), column_order=order, column_config=WORKLIST_COLUMNS)
    download_buttons(
        df, "near_threshold_worklist", user, PAGE, id_cols=("patient_id", "mrn"), name_cols=("patient_name",)
    )


def draw_distribution(f) -> None:
    minutes = cached(kpis.minutes_per_enrolled_patient, f)
    bands = minutes.extra.get("bands") or {}
    tf, note = charts.trend_window(f)
    trend = cached(kpis_extra.billable_rate_trend, tf)
    left, right = st.columns(2, gap="large")
    with left:
        layout.section(
            f"Minutes per patient, {charts.month_label(f.month_to)}",
            "Patients in each band: 20+ minutes supports 99490, 40+ adds 99439, 60+ a second 99439.",
            minutes.definition,
        )
        if not bands or sum(bands.values()) == 0:
            empty_state("No enrolled patients this month")
        else:
            band_df = pd.DataFrame({"band": list(bands), "patients": list(bands.values())})
            charts.show(
                charts.band_distribution(band_df, count_text=lambda n: f"{suppress_small(int(n))}"),
                "Enrolled patients by counted-minutes band",
            )
    with right:
        layout.section(
            "Billable rate by month",
            f"Enrolled patients at 20+ counted minutes, {charts.month_label(tf.month_from)} to "
            f"{charts.month_label(tf.month_to)}.",
            trend.attrs.get("definition"),
        )
        if trend.empty or int(trend["enrolled"].sum()) == 0:
            empty_state("No enrolled patients in these months")
        else:
            charts.show(
                charts.trend_lines(
                    trend, {"rate": "Billable rate"}, month_col="month", y_title="Billable rate", y_domain=(0, 1)
                ),
                "Billable rate by month",
            )


def draw_care_managers(f) -> None:
    df = cached(kpis.minutes_per_care_manager, f)
    layout.section(
        f"Minutes per care manager, {charts.month_label(f.month_to)}",
        "Counted minutes per patient on each care manager's active enrolled panel.",
        df.attrs.get("definition"),
    )
    if df.empty:
        empty_state("No enrolled panels for these filters")
        return
    left, right = st.columns(2, gap="large")
    with left:
        charts.show(
            charts.horizontal_bars(
                df,
                "care_manager",
                "minutes_per_patient",
                x_title="Minutes per patient",
                fmt=".1f",
                axis_fmt=",.0f",
                tooltip_cols=[("panel:Q", "Panel", ",d"), ("billable_rate:Q", "Billable", ".0%")],
            ),
            "Counted minutes per patient by care manager",
        )
    with right:
        table = (
            df[["care_manager", "panel", "minutes_per_patient", "billable_rate"]]
            .assign(billable_rate=df["billable_rate"] * 100)  # a whole percentage
            .sort_values("minutes_per_patient", ascending=False)
        )  # same order as the chart
        table = present(table, user, PAGE, count_cols=("panel",), rate_cols={"billable_rate": ("panel", 100)})
        layout.table(
            table,
            column_config={
                "care_manager": st.column_config.TextColumn("Care manager"),
                "panel": st.column_config.TextColumn("Panel"),
                "minutes_per_patient": st.column_config.NumberColumn("Min / patient", format="%.1f"),
                "billable_rate": st.column_config.NumberColumn("Billable", format="%.0f%%"),
            },
        )


SHORT_FLAG_LABELS = {
    "round_durations": "Round times",
    "repeated_durations": "Repeated",
    "backdated_batch": "Back-dated",
    "implausible_daily_total": "Over 8 h/day",
    "vague_note": "Vague notes",
}
FLAG_COLUMNS = {
    "flag": st.column_config.TextColumn("Flag"),
    "service_date": st.column_config.DateColumn("Date", format="MMM D"),
    "staff": st.column_config.TextColumn("Staff member"),
    "patient_name": st.column_config.TextColumn("Patient"),
    "evidence": st.column_config.TextColumn("Evidence", width="large"),
    "mrn": st.column_config.TextColumn("MRN"),
    "minutes": st.column_config.NumberColumn("Minutes", format="%d"),
}


def draw_time_flags(f) -> None:
    summary = cached(kpis_extra.time_flag_summary, f)
    flags = cached(kpis_extra.time_flags, f)
    layout.section(
        f"Time that looks reconstructed or vague, {charts.month_label(f.month_from)}"
        + ("" if f.month_from == f.month_to else f" to {charts.month_label(f.month_to)}"),
        "Patterns auditors look for in time logs (time entries flagged). A flag is a reason to look, "
        "not proof of an error.",
        flags.attrs.get("definition"),
    )
    for col, row in zip(st.columns(len(summary)), summary.itertuples()):
        col.metric(
            SHORT_FLAG_LABELS.get(row.kind, row.label),
            f"{suppress_small(row.entries)}",
            border=True,
            help=f"{row.label}: {suppress_small(row.entries)} time entries, {suppress_small(row.patients)} "
            f"patients, {suppress_small(row.staff)} staff members, {row.minutes:,} minutes.",
        )
    if flags.empty:
        empty_state("No suspicious time for these filters", icon=":material/verified:")
        return
    total = flags.attrs.get("total", len(flags))
    st.caption(
        "Flagged time with the evidence: one row per patient-month (round durations, back-dated batches, "
        "vague notes) or per staff member and day (repeated durations, long days)"
        + (f"; showing the first {len(flags):,} of {total:,}" if total > len(flags) else "")
        + "."
    )
    shown = present(
        flags, user, PAGE, id_cols=("patient_id", "mrn"), name_cols=("patient_name",), table_key="time_flags"
    )
    if shown is None:
        return
    order = [c for c in FLAG_COLUMNS if not (masks_identifiers(user) and c == "mrn")]
    layout.table(shown, height=360, column_order=order, column_config=FLAG_COLUMNS)
    download_buttons(flags, "time_flags", user, PAGE, id_cols=("patient_id", "mrn"), name_cols=("patient_name",))


with friendly_errors("the minutes page"):
    f = scoped(sidebar_filters())
    layout.page_start("Minutes & worklist", f, "your patients only" if IS_CARE_MANAGER else "")
    as_of = cached(data_as_of, dt.date.today())
    with friendly_errors("the minutes tiles"):
        draw_tiles(f, as_of)
    layout.lazy_tabs(
        [
            ("Worklist", lambda: draw_worklist(f, as_of)),
            ("Distribution & trend", lambda: draw_distribution(f)),
            ("Holds", lambda: draw_holds(f, user, PAGE)),  # a care manager sees their own
            ("Care managers", lambda: draw_care_managers(f)),
            ("Time flags", lambda: draw_time_flags(f)),
        ],  # the chosen months: flags are per month
        key="minutes_tab",
        default="Worklist" if IS_CARE_MANAGER else "Distribution & trend",
    )
