"""Denials to work: each denied or underpaid claim line with its reasons, likely fix, dollars and appeal
deadline; the biller's status (worked / appealed / written off) kept in the database and the access log;
A/R aging of submitted claims not paid yet, a click on a bar lists its claims.

Numbers come from ``ccm_core.kpis.queues``; deadlines from ``ccm_core/rules/appeal_deadlines.csv``.  The status
change is checked again on the server side (``queues.set_denial_status`` refuses other roles).
"""

from __future__ import annotations

import streamlit as st

from ui.session import require_page

user = require_page("denials")  # before any data is read

import datetime as dt  # noqa: E402

import altair as alt  # noqa: E402
import pandas as pd  # noqa: E402

from ccm_core.engine.filters import data_as_of  # noqa: E402
from ccm_core.kpis import queues  # noqa: E402
from ccm_core.storage.db import add_months  # noqa: E402
from ui import charts, layout  # noqa: E402
from ui.cache import cached, get_engine  # noqa: E402
from ui.clickthrough import clickable  # noqa: E402
from ui.components import empty_state, format_value, friendly_errors  # noqa: E402
from ui.exports import download_buttons  # noqa: E402
from ui.filters import sidebar_filters  # noqa: E402
from ui.meeting import masks_identifiers, meeting_mode, present, pseudonym, suppress_small  # noqa: E402

PAGE = "denials"
LOOKBACK_MONTHS = 15  # dates of service: a redetermination can run ~4 months after a notice, a new claim 12
STATUS_LABELS = {"open": "Open", "worked": "Worked", "appealed": "Appealed", "written_off": "Written off"}
AGING_COLORS = {"awaiting payer": "#2f6db5", "denied": "#c0504d"}

LINE_COLUMNS = {  # what the biller acts on first, so it fits at 1366 px
    "status": st.column_config.TextColumn("Status"),
    "days_to_deadline": st.column_config.NumberColumn(
        "Days left", format="%d", help="Days to the filing deadline; negative = passed"
    ),
    "claim_number": st.column_config.TextColumn("Claim"),
    "patient_name": st.column_config.TextColumn("Patient"),
    "cpt_code": st.column_config.TextColumn("Code"),
    "denied_amount": st.column_config.NumberColumn("Denied $", format="dollar"),
    "carcs": st.column_config.TextColumn("CARC"),
    "fix": st.column_config.TextColumn("Likely fix", width="large"),
    "deadline": st.column_config.DateColumn("Deadline", format="MMM D, YYYY"),
    "deadline_kind": st.column_config.TextColumn("Deadline for"),
    "rarcs": st.column_config.TextColumn("RARC"),
    "kind": st.column_config.TextColumn("Denied / underpaid"),
    "fee_value": st.column_config.NumberColumn("Fee value $", format="dollar"),
    "service_date": st.column_config.DateColumn("Date of service", format="MMM D, YYYY"),
    "mrn": st.column_config.TextColumn("MRN"),
    "reason": st.column_config.TextColumn("Reason (CARC text)", width="large"),
    "remark": st.column_config.TextColumn("Remark (RARC text)", width="large"),
    "payer": st.column_config.TextColumn("Payer"),
}


def work_filters(f):
    """The sidebar's clinics, practitioners and payers over the last 15 months of dates of service."""
    return f.with_months(add_months(f.month_to, -(LOOKBACK_MONTHS - 1)), f.month_to)


def line_label(r) -> str:
    who = pseudonym(r.patient_id) if masks_identifiers(user) else r.patient_name
    return (
        f"{r.claim_number} · {r.cpt_code} · {who} · {format_value(r.denied_amount, 'dollars')} · "
        f"{STATUS_LABELS.get(r.status, r.status)}"
    )


def draw_status_form(df: pd.DataFrame) -> None:
    """Pick a line, set its status; saved with who and when, and written to the access log."""
    if df.empty or user.role not in queues.DENIAL_ROLES:
        return
    with st.container(border=True):
        st.markdown("**Work a denial**")
        labels = {int(r.claim_line_id): line_label(r) for r in df.itertuples()}
        c1, c2 = st.columns([3, 2], vertical_alignment="bottom")
        line_id = c1.selectbox("Claim line", list(labels), format_func=labels.get, key="denial_pick")
        row = df[df["claim_line_id"] == line_id].iloc[0]
        options = ["open", *queues.DENIAL_STATUSES]
        status = c2.radio(
            "Status",
            options,
            index=options.index(row["status"]),
            horizontal=True,
            format_func=STATUS_LABELS.get,
            key=f"denial_status_{line_id}",
        )
        st.caption(
            f"**Likely fix:** {row['fix']}  \n**Reason:** {row['reason'] or 'n/a'}"
            + (f"  \n**Remark:** {row['remark']}" if row["remark"] else "")
            + (
                f"  \n**Deadline:** {row['deadline']:%b %d, %Y} ({row['deadline_kind']})"
                if row["deadline"]
                else "  \n**Deadline:** none while an appeal is pending"
            )
        )
        note = st.text_input("Note (optional)", value=row["note"] or "", key=f"denial_note_{line_id}", max_chars=500)
        if st.button("Save status", type="primary", key="denial_save"):
            try:
                queues.set_denial_status(
                    get_engine(),
                    int(line_id),
                    None if status == "open" else status,
                    username=user.username,
                    role=user.role,
                    note=note.strip() or None,
                )
            except PermissionError as exc:
                st.error(str(exc))
                return
            st.session_state["_denial_saved"] = f"{row['claim_number']} {row['cpt_code']}: {STATUS_LABELS[status]}"
            st.rerun()


def draw_lines(f, as_of: dt.date) -> None:
    show_closed = st.toggle("Show written-off lines", value=False, key="denials_show_closed")
    df = cached(queues.denials_to_work, work_filters(f), as_of, True)
    if not show_closed:
        df = df[df["status"] != "written_off"]
    layout.section(
        "Denied and underpaid lines",
        f"Dates of service {charts.month_label(work_filters(f).month_from)} to "
        f"{charts.month_label(f.month_to)}; open lines first, soonest deadline first "
        f"(as of {as_of:%b %d, %Y}).",
        df.attrs.get("definition"),
    )
    saved = st.session_state.pop("_denial_saved", None)
    if saved:
        st.success(f"Saved: {saved}", icon=":material/check_circle:")
    open_ = df[df["status"] == "open"]
    soon = open_[open_["days_to_deadline"].notna() & (open_["days_to_deadline"] <= 30)]
    c1, c2, c3, c4 = st.columns(4)
    c1.metric("Open lines", f"{suppress_small(len(open_))}", border=True)
    c2.metric("Open denied $", format_value(float(open_["denied_amount"].sum()), "dollars"), border=True)
    c3.metric("Deadline within 30 days", f"{suppress_small(len(soon))}", border=True)
    c4.metric("Appealed", f"{suppress_small(int((df['status'] == 'appealed').sum()))}", border=True)
    if df.empty:
        empty_state("No denials to work", "No denied or underpaid lines for these filters.", icon=":material/task_alt:")
        return
    by_carc = (
        df.assign(carc=df["carcs"].str.split(", ").str[0].fillna(""))
        .groupby("carc")
        .agg(lines=("claim_line_id", "size"), dollars=("denied_amount", "sum"))
        .reset_index()
        .sort_values("dollars", ascending=False)
    )
    left, right = st.columns([1, 3], gap="medium")
    with left:
        st.caption("Denied dollars by main CARC: click a bar to list its lines (double-click clears).")
        chart = (
            alt.Chart(by_carc)
            .mark_bar(color="#c0504d")
            .encode(
                y=alt.Y("carc:N", sort="-x", title="CARC"),
                x=alt.X("dollars:Q", title="Denied $", axis=alt.Axis(format="$,.0f")),
                tooltip=[
                    alt.Tooltip("carc:N", title="CARC"),
                    alt.Tooltip("lines:Q", title="Lines"),
                    alt.Tooltip("dollars:Q", title="Denied $", format="$,.2f"),
                ],
            )
            .properties(height=max(120, 28 * len(by_carc)))
        )
        picked = clickable(chart, "denials_carc", "carc", "Denied dollars by CARC")
    with right:
        sub = df[df["carcs"].str.split(", ").str[0].isin(picked)] if picked else df
        if picked:
            st.markdown(f"**{len(sub)} lines with CARC {', '.join(picked)}** (chart selection)")
        shown = present(
            sub, user, PAGE, id_cols=("patient_id", "mrn"), name_cols=("patient_name",), table_key="denial_lines"
        )
        if shown is None:
            return
        shown = shown.assign(status=shown["status"].map(STATUS_LABELS))
        order = [c for c in LINE_COLUMNS if not (c == "mrn" and masks_identifiers(user))]
        layout.table(shown, height=min(520, 38 + 35 * len(shown)), column_order=order, column_config=LINE_COLUMNS)
    if not meeting_mode():
        draw_status_form(sub)
    download_buttons(df, "denials_to_work", user, PAGE, id_cols=("patient_id", "mrn"), name_cols=("patient_name",))


def draw_aging(f, as_of: dt.date) -> None:
    df = cached(queues.ar_aging, f.with_months(add_months(f.month_to, -23), f.month_to), as_of)
    layout.section(
        "A/R aging: submitted claims not paid yet",
        f"Days from submission to {as_of:%b %d, %Y}. Click a bar to list its claims.",
        df.attrs.get("definition"),
    )
    total = int(df["claims"].sum())
    c1, c2 = st.columns(2)
    c1.metric("Unpaid claims", f"{suppress_small(total)}", border=True)
    c2.metric("Unpaid charges", format_value(float(df["dollars"].sum()), "dollars"), border=True)
    if total == 0:
        empty_state("Every submitted claim has been paid", icon=":material/task_alt:")
        return
    order = [b[2] for b in queues.AGING_BUCKETS]
    chart = (
        alt.Chart(df)
        .mark_bar()
        .encode(
            x=alt.X("bucket:N", sort=order, title="Days since submission", axis=alt.Axis(labelAngle=0)),
            y=alt.Y("dollars:Q", title="Charges", axis=alt.Axis(format="$,.0f")),
            color=alt.Color(
                "state:N", title=None, scale=alt.Scale(domain=list(AGING_COLORS), range=list(AGING_COLORS.values()))
            ),
            tooltip=[
                alt.Tooltip("bucket:N", title="Days"),
                alt.Tooltip("state:N", title="State"),
                alt.Tooltip("claims:Q", title="Claims"),
                alt.Tooltip("dollars:Q", title="Charges", format="$,.2f"),
            ],
        )
        .properties(height=260)
    )
    left, right = st.columns([1, 2], gap="large")
    with left:
        picked = clickable(chart, "ar_aging", "bucket", "Unpaid claims by days since submission")
    with right:
        if not picked:
            st.caption("Select a bar to see the claims behind it.")
            return
        claims = cached(
            queues.ar_claims, f.with_months(add_months(f.month_to, -23), f.month_to), as_of, picked[0], None
        )
        st.markdown(f"**{len(claims)} unpaid claims, {picked[0]} days**")
        shown = present(
            claims, user, PAGE, id_cols=("patient_id", "mrn"), name_cols=("patient_name",), table_key="ar_claims"
        )
        if shown is None:
            return
        layout.table(
            shown,
            height=min(420, 38 + 35 * len(shown)),
            column_order=["claim_number", "patient_name", "payer", "submitted_date", "age_days", "state", "charge"],
            column_config={
                "claim_number": st.column_config.TextColumn("Claim"),
                "patient_name": st.column_config.TextColumn("Patient"),
                "payer": st.column_config.TextColumn("Payer"),
                "submitted_date": st.column_config.DateColumn("Submitted", format="MMM D, YYYY"),
                "age_days": st.column_config.NumberColumn("Days", format="%d"),
                "state": st.column_config.TextColumn("State"),
                "charge": st.column_config.NumberColumn("Charge", format="dollar"),
            },
        )


with friendly_errors("Denials to work"):
    f = sidebar_filters()
    as_of = cached(data_as_of, dt.date.today()) or dt.date.today()
    st.title("Denials to work", anchor=False)
    st.caption(
        f"Data through {as_of:%b %d, %Y} · the sidebar's clinics, practitioners and payers apply"
        + (" · meeting mode" if meeting_mode() else "")
    )
    layout.lazy_tabs(
        [("Denials", lambda: draw_lines(f, as_of)), ("A/R aging", lambda: draw_aging(f, as_of))],
        key="denials_tab",
        default="Denials",
    )
