"""My month: the care manager's list for today (the program lead sees every care manager's).

Every enrolled patient whose month is not complete, with minutes to the next billable step, last and next
contact, phone and holds; the caseload against each care manager's minutes capacity.  Numbers come from
``ccm_core.kpis.queues``.  A care manager sees only their own patients: the filters are narrowed to their staff
id here, server-side, whatever the sidebar or URL says.
"""

from __future__ import annotations

import streamlit as st

from ui.session import require_page

user = require_page("my_month")  # before any data is read

import datetime as dt  # noqa: E402
from dataclasses import replace  # noqa: E402

import altair as alt  # noqa: E402
import pandas as pd  # noqa: E402

from ccm_core.engine.filters import data_as_of  # noqa: E402
from ccm_core.kpis import queues  # noqa: E402
from ui import charts, layout  # noqa: E402
from ui.cache import cached  # noqa: E402
from ui.clickthrough import clickable  # noqa: E402
from ui.components import empty_state, friendly_errors  # noqa: E402
from ui.exports import download_buttons  # noqa: E402
from ui.filters import sidebar_filters  # noqa: E402
from ui.meeting import masks_identifiers, meeting_mode, present, suppress_small  # noqa: E402

PAGE = "my_month"
IS_CARE_MANAGER = user.role == "care_manager"
BANDS = ((0, 0, "0"), (1, 9, "1-9"), (10, 19, "10-19"), (20, 39, "20-39"), (40, 59, "40-59"), (60, None, "60+"))


def scoped(f):
    """A care manager's month is always their own panel."""
    if IS_CARE_MANAGER:
        return replace(f, care_manager_ids=(user.staff_id if user.staff_id is not None else -1,))
    return f


def band_of(minutes: pd.Series) -> pd.Series:
    out = pd.Series("", index=minutes.index, dtype=object)
    for lo, hi, label in BANDS:
        out[(minutes >= lo) & ((minutes <= hi) if hi is not None else True)] = label
    return out


LIST_COLUMNS = {  # what she acts on first, so it fits at 1366 px
    "patient_name": st.column_config.TextColumn("Patient"),
    "days_since_contact": st.column_config.NumberColumn(
        "Days since contact", format="%d", help="Blank: no patient contact on record"
    ),
    "counted_minutes": st.column_config.ProgressColumn("Minutes so far", format="%d min", min_value=0, max_value=60),
    "minutes_to_next": st.column_config.NumberColumn("To next step", format="%d min"),
    "phone": st.column_config.TextColumn("Phone"),
    "next_contact_date": st.column_config.DateColumn("Next contact", format="MMM D"),
    "holds": st.column_config.TextColumn(
        "Holds", width="medium", help="Billing prerequisites that fail this month, with the fix"
    ),
    "last_contact_date": st.column_config.DateColumn("Last contact", format="MMM D"),
    "next_step": st.column_config.NumberColumn(
        "Next step", format="%d min", help="20 / 40 / 60 minutes (complex CCM: 60 / 90)"
    ),
    "mrn": st.column_config.TextColumn("MRN"),
    "care_manager": st.column_config.TextColumn("Care manager"),
}


def draw_list(f, as_of: dt.date) -> None:
    df = cached(queues.my_month, f, as_of)
    days_left = df.attrs.get("days_left", 0)
    who = "Your patients" if IS_CARE_MANAGER else "Enrolled patients"
    layout.section(
        f"Still to finish in {as_of:%B}",
        f"{who} whose month is not complete, as of {as_of:%b %d} ({days_left} days left). Longest "
        "without contact first; click a column header to sort.",
        df.attrs.get("definition"),
    )
    c1, c2, c3, c4 = st.columns(4)
    c1.metric(
        "Still to finish",
        f"{suppress_small(len(df))}",
        border=True,
        help=f"Of {df.attrs.get('enrolled', 0)} enrolled patients.",
    )
    c2.metric("At 0 minutes", f"{suppress_small(df.attrs.get('at_zero', 0))}", border=True)
    c3.metric("Not contacted this month", f"{suppress_small(int((~df['contacted_this_month']).sum()))}", border=True)
    c4.metric(
        "On hold",
        f"{suppress_small(int((df['holds'] != '').sum()))}",
        border=True,
        help="Consent or care plan missing: the month cannot be billed until it is fixed.",
    )
    if df.empty:
        empty_state(
            "Every month is complete",
            "All enrolled patients reached their last billable step.",
            icon=":material/task_alt:",
        )
        return
    df = df.assign(band=band_of(df["counted_minutes"]))
    counts = (
        df.groupby("band").size().reindex([b[2] for b in BANDS[:-1]], fill_value=0).rename("patients").reset_index()
    )
    left, right = st.columns([1, 3], gap="medium")
    with left:
        st.caption("Patients by minutes so far: click a bar to list them (double-click clears).")
        chart = (
            alt.Chart(counts)
            .mark_bar(color=charts.PRIMARY, cornerRadiusTopRight=2, cornerRadiusBottomRight=2)
            .encode(
                y=alt.Y("band:N", sort=[b[2] for b in BANDS[:-1]], title="Minutes so far"),
                x=alt.X("patients:Q", title="Patients", axis=alt.Axis(format=",d", tickMinStep=1)),
                tooltip=[alt.Tooltip("band:N", title="Minutes"), alt.Tooltip("patients:Q", title="Patients")],
            )
            .properties(height=220)
        )
        picked = clickable(chart, "my_month_bands", "band", "Patients still to finish by minutes so far")
    with right:
        shown_df = df[df["band"].isin(picked)] if picked else df
        if picked:
            st.markdown(
                f"**{len(shown_df)} patients at {', '.join(picked)} minutes** (chart selection; "
                "double-click the chart to clear)"
            )
        shown = present(
            shown_df, user, PAGE, id_cols=("patient_id", "mrn"), name_cols=("patient_name",), table_key="my_month"
        )
        if shown is None:
            return
        order = [
            c
            for c in LIST_COLUMNS
            if not (c == "mrn" and masks_identifiers(user))
            and not (c == "phone" and masks_identifiers(user))
            and not (c == "care_manager" and IS_CARE_MANAGER)
        ]
        layout.table(shown, height=min(560, 38 + 35 * len(shown)), column_order=order, column_config=LIST_COLUMNS)
    download_buttons(
        df.drop(columns=["band"]), "my_month", user, PAGE, id_cols=("patient_id", "mrn"), name_cols=("patient_name",)
    )


def draw_caseload(f, as_of: dt.date) -> None:
    df = cached(queues.caseload_capacity, f, as_of)
    layout.section(
        "Caseload and minutes capacity",
        f"Enrolled patients per care manager against what their FTE can give "
        f"({df.attrs.get('minutes_per_fte', 0):,} countable minutes per FTE a month). Expected minutes = "
        f"caseload x {df.attrs.get('first_step', 20)} (the first billable step).",
        df.attrs.get("definition"),
    )
    if df.empty:
        empty_state("No enrolled caseloads for these filters")
        return
    table = df.assign(load=df["load"] * 100)
    table = present(table, user, PAGE, count_cols=("caseload", "at_zero", "not_contacted"))
    layout.table(
        table,
        column_order=[
            "care_manager",
            "fte",
            "caseload",
            "patients_per_fte",
            "minutes_so_far",
            "minutes_to_first_step",
            "expected_minutes",
            "capacity_minutes",
            "load",
            "at_zero",
            "not_contacted",
        ],
        column_config={
            "care_manager": st.column_config.TextColumn("Care manager"),
            "fte": st.column_config.NumberColumn("FTE", format="%.1f"),
            "caseload": st.column_config.TextColumn("Caseload"),
            "patients_per_fte": st.column_config.NumberColumn("Patients / FTE", format="%.0f"),
            "minutes_so_far": st.column_config.NumberColumn("Minutes so far", format="%d"),
            "minutes_to_first_step": st.column_config.NumberColumn("Minutes to bring all to 20", format="%d"),
            "expected_minutes": st.column_config.NumberColumn("Expected minutes", format="%d"),
            "capacity_minutes": st.column_config.NumberColumn("Capacity (min)", format="%d"),
            "load": st.column_config.NumberColumn("Load", format="%.0f%%", help="Expected minutes / capacity"),
            "at_zero": st.column_config.TextColumn("At 0 min"),
            "not_contacted": st.column_config.TextColumn("Not contacted"),
        },
    )


with friendly_errors("My month"):
    f = scoped(sidebar_filters())
    as_of = cached(data_as_of, dt.date.today())
    st.title("My month", anchor=False)
    if as_of is not None:
        st.caption(
            f"{as_of:%B %Y} to date (data through {as_of:%b %d})"
            + (" · your patients only" if IS_CARE_MANAGER else " · every care manager in the filters")
            + (" · meeting mode" if meeting_mode() else "")
        )
    if as_of is None:
        empty_state("No time recorded yet", "The list fills in as care managers log time.")
    else:
        with friendly_errors("the month list"):
            draw_list(f, as_of)
        if not IS_CARE_MANAGER or not meeting_mode():
            with friendly_errors("the caseload table"):
                draw_caseload(f, as_of)
