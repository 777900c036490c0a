"""The month's ready-to-bill list and holds queue (Billing page; a care manager's own holds on the Minutes page).

Statuses, reasons and dollars come from ``ccm_core.engine.read`` (over ``ccm_core.engine.compliance``: the rules the
audit checklist uses).  Both
lists are patient-level: shown through ``ui.meeting.present`` (masked for the viewer and in meeting mode) and
downloaded through ``ui.exports`` (logged).  A care manager's lists are narrowed to their own panel here, on
the server, whatever the filters say.  Exporting the ready list for the billing system records the month, who
exported it, when, how many months and how much (``billing_export`` table).
"""

from __future__ import annotations

import datetime as dt
from dataclasses import replace

import pandas as pd
import streamlit as st

from ccm_core.engine import read
from ui import charts, layout
from ui.cache import cached, get_engine
from ui.components import empty_state, format_value
from ui.exports import deferred_download, download_buttons, to_csv_bytes
from ui.meeting import masks_identifiers, meeting_mode, present, suppress_small
from ui.session import CurrentUser, can

IDS = ("patient_id", "mrn")
NAMES = ("patient_name",)
# What the billing system needs per ready month (one row per patient-month).
READY_EXPORT_COLUMNS = [
    "patient_id",
    "mrn",
    "patient_name",
    "service_month",
    "billing_practitioner_id",
    "payer",
    "threshold_date",
    "supported_codes",
    "expected_amount",
    "counted_minutes",
]
LIST_COLUMNS = {
    "patient_name": st.column_config.TextColumn("Patient"),
    "mrn": st.column_config.TextColumn("MRN"),
    "counted_minutes": st.column_config.NumberColumn("Minutes", format="%d"),
    "supported_codes": st.column_config.TextColumn("Codes"),
    "expected_amount": st.column_config.NumberColumn("Expected", format="dollar"),
    "threshold_date": st.column_config.DateColumn("Date of service (threshold)", format="MMM D"),
    "hold_reasons": st.column_config.TextColumn("Why on hold, and the fix", width="large"),
    "payer": st.column_config.TextColumn("Payer"),
}


def scope(f, user: CurrentUser):
    """The month of the filter (its last month), narrowed to a care manager's own panel."""
    fm = f.with_months(f.month_to)
    if user.role == "care_manager":
        fm = replace(fm, care_manager_ids=(user.staff_id if user.staff_id is not None else -1,))
    return fm


def _order(user: CurrentUser, cols) -> list[str]:
    return [c for c in cols if not (masks_identifiers(user) and c == "mrn")]


def draw_holds(f, user: CurrentUser, page: str) -> None:
    """Count and dollars on hold by reason, then the list with each reason and its fix, and downloads."""
    fm = scope(f, user)
    df = cached(read.billing_status, fm)  # the list below reads it too: the status statement runs once
    by_reason = read.holds_from_status(df)
    total = by_reason.attrs.get("total", {"patient_months": 0, "dollars": 0.0})
    mine = " of your patients" if user.role == "care_manager" else ""
    layout.section(
        f"Holds, {charts.month_label(fm.month_to)}",
        f"Patient-months{mine} whose minutes support a code but a prerequisite fails: fix the record "
        "before month end and the month moves to the ready list. A month can be held for several "
        "reasons.",
    )
    c1, c2 = st.columns(2)
    c1.metric("Patient-months on hold", suppress_small(total["patient_months"]), border=True)
    c2.metric(
        "Dollars on hold",
        format_value(total["dollars"], "dollars"),
        border=True,
        help="Expected payment (fee schedule) of the held months: what fixing them brings.",
    )
    if by_reason.empty:
        empty_state(
            "Nothing on hold",
            "Every month whose minutes support a code meets every prerequisite.",
            icon=":material/task_alt:",
        )
        return
    # the chart names the problem (before the colon); the table beside it says the fix too
    by_reason = by_reason.assign(
        problem_label=[r.split(":")[0] for r in by_reason["reason"]],
        fix=[r.split(": ", 1)[-1] for r in by_reason["reason"]],
    )
    left, right = st.columns([1, 1], gap="large")
    with left:
        charts.show(
            charts.horizontal_bars(
                by_reason,
                "problem_label",
                "dollars",
                x_title="Dollars on hold",
                fmt="$,.0f",
                color=charts.WARN,
                tooltip_cols=[("patient_months:Q", "Patient-months", ",d"), ("fix:N", "Fix", None)],
            ),
            "Dollars on hold by reason",
        )
    with right:
        table = present(
            by_reason[["problem_label", "fix", "patient_months", "dollars"]], user, page, count_cols=("patient_months",)
        )
        layout.table(
            table,
            column_config={
                "problem_label": st.column_config.TextColumn("Reason", width="medium"),
                "fix": st.column_config.TextColumn("Fix", width="medium"),
                "patient_months": st.column_config.TextColumn("Months"),
                "dollars": st.column_config.NumberColumn("Dollars", format="dollar"),
            },
        )
    held = df[df["billing_status"] == "hold"].sort_values(["expected_amount", "patient_id"], ascending=[False, True])
    held = held[
        [
            c
            for c in (
                "patient_id",
                "mrn",
                "patient_name",
                "service_month",
                "counted_minutes",
                "supported_codes",
                "expected_amount",
                "hold_reasons",
                "failed_prerequisites",
                "payer",
            )
            if c in held.columns
        ]
    ].reset_index(drop=True)
    shown = present(held, user, page, id_cols=IDS, name_cols=NAMES, table_key="holds")
    if shown is None:
        return
    layout.table(
        shown,
        height=min(420, 38 + 35 * len(shown)),
        column_order=_order(
            user,
            ["patient_name", "mrn", "counted_minutes", "supported_codes", "expected_amount", "hold_reasons", "payer"],
        ),
        column_config=LIST_COLUMNS,
    )
    download_buttons(held, f"holds_{fm.month_to}", user, page, id_cols=IDS, name_cols=NAMES)


def _export_builder(export: pd.DataFrame, username: str, month: int, file_name: str):
    """Build the billing-system file on click (after ``ui.exports`` has checked the session is live) and record
    the export: which month, by whom, when, how many months and dollars."""
    engine = get_engine()

    def build() -> bytes:
        data = to_csv_bytes(export)
        with engine.begin() as conn:
            read.record_export(conn, month, username, len(export), float(export["expected_amount"].sum()), file_name)
        return data

    return build


def draw_ready(f, user: CurrentUser, page: str) -> None:
    """The month's ready-to-bill list, the billing-system file, and which months were exported by whom."""
    fm = scope(f, user)
    df = cached(read.billing_status, fm)
    ready = df[df["billing_status"] == "ready"].sort_values(["patient_id"]).reset_index(drop=True)
    counts = df["billing_status"].value_counts().to_dict() if not df.empty else {}
    layout.section(
        f"Ready to bill, {charts.month_label(fm.month_to)}",
        "Not billed yet, counted minutes support a code, and every prerequisite holds (eligibility, "
        "initiating visit, consent in force, care plan, no conflicting claim).",
    )
    c1, c2, c3, c4 = st.columns(4)
    c1.metric("Ready", suppress_small(counts.get("ready", 0)), border=True)
    c2.metric("Expected payment", format_value(float(ready["expected_amount"].sum()), "dollars"), border=True)
    c3.metric("On hold", suppress_small(counts.get("hold", 0)), border=True, help="See the Holds tab.")
    c4.metric("Already billed", suppress_small(counts.get("billed", 0)), border=True)
    exported = cached(read.exports, fm.month_to, fm.month_to)
    if not exported.empty:
        last = exported.iloc[0]
        st.caption(
            f":material/task_alt: Exported for the billing system {len(exported)} time"
            f"{'s' if len(exported) != 1 else ''}; last by {last['exported_by']} on "
            f"{pd.Timestamp(last['exported_at']):%b %d %Y %H:%M} ({int(last['patient_months'])} patient-months, "
            f"{format_value(float(last['expected_amount']), 'dollars')})."
        )
    else:
        st.caption("Not exported for the billing system yet.")
    if ready.empty:
        empty_state("Nothing ready to bill", "No unbilled month supports a code and meets every prerequisite.")
        return
    export = ready[[c for c in READY_EXPORT_COLUMNS if c in ready.columns]]
    if can(user, "export") and user.role in ("admin", "program_lead", "biller"):
        if meeting_mode():
            st.caption("The billing-system file carries identifiers: switch meeting mode off to export it.")
        else:
            name = f"ready_to_bill_{fm.month_to}_{dt.date.today():%Y%m%d}.csv"
            deferred_download(
                "Export for the billing system (CSV)",
                _export_builder(export, user.username, fm.month_to, name),
                user=user,
                page=page,
                file_name=name,
                mime="text/csv",
                detail=f"ready-to-bill list for the billing system, {len(export)} patient-months, identified",
                patients=int(export["patient_id"].nunique()),
                key=f"ready_export_{page}",
                icon=":material/send:",
            )
            st.caption("The export is recorded (month, you, now) so the team sees which months went out.")
    shown = present(ready, user, page, id_cols=IDS, name_cols=NAMES, table_key="ready")
    if shown is None:
        return
    layout.table(
        shown,
        height=min(420, 38 + 35 * len(shown)),
        column_order=_order(
            user,
            ["patient_name", "mrn", "counted_minutes", "supported_codes", "expected_amount", "threshold_date", "payer"],
        ),
        column_config=LIST_COLUMNS,
    )
    if not exported.empty:
        with st.expander("Export history for this month"):
            layout.table(
                exported.assign(service_month=exported["service_month"].map(charts.month_label)),
                column_config={
                    "service_month": st.column_config.TextColumn("Month"),
                    "exported_by": st.column_config.TextColumn("By"),
                    "exported_at": st.column_config.DatetimeColumn("When", format="MMM D, YYYY HH:mm"),
                    "patient_months": st.column_config.NumberColumn("Patient-months", format="%d"),
                    "expected_amount": st.column_config.NumberColumn("Expected", format="dollar"),
                    "file_name": st.column_config.TextColumn("File"),
                },
            )


def hold_markers(f, user: CurrentUser, patient_ids) -> pd.Series:
    """For the Minutes worklist: per patient of the month, the prerequisites that will hold the month once its
    minutes support a code ('' = none)."""
    df = cached(read.billing_status, scope(f, user))
    if df.empty:
        return pd.Series("", index=list(patient_ids), dtype=object)
    s = df.set_index("patient_id")["problems"].fillna("")
    return s.reindex(list(patient_ids)).fillna("")
