"""Enrollment & consent: who is eligible, how they move to enrolled, why they leave, and who to call next.

Every number comes from ``ccm_core.kpis.program`` / ``ccm_core.kpis.breakdowns`` (definitions one click away); this
file only lays them out.  The outreach list is patient-level: it goes through ``ui.meeting.present``
(pseudonyms, hidden in meeting mode unless revealed, access-logged) and ``ui.exports``.
"""

from __future__ import annotations

import streamlit as st

from ui.session import require_page

user = require_page("enrollment")  # before any data is read

import pandas as pd  # noqa: E402

from ccm_core.kpis import breakdowns as kpis_extra  # noqa: E402
from ccm_core.kpis import program as kpis  # noqa: E402
from ccm_core.storage.db import format_month  # noqa: E402
from ui import charts, layout  # noqa: E402
from ui.cache import cached  # noqa: E402
from ui.components import empty_state, friendly_errors  # noqa: E402
from ui.exports import download_buttons  # noqa: E402
from ui.filters import sidebar_filters  # noqa: E402
from ui.layout import Tile  # noqa: E402
from ui.meeting import count_pair, hides_rate, masks_identifiers, meeting_mode, present, suppress_small  # noqa: E402

PAGE = "enrollment"
STAGE_LABELS = {
    "eligible": "Eligible",
    "outreached": "Outreached",
    "reached": "Reached",
    "consented": "Consented",
    "enrolled": "Enrolled",
    "first billable month": "First billable month",
}


def draw_tiles(f) -> None:
    prev = f.month_before()
    eligible, eligible_prev = cached(kpis.eligible_population, f), cached(kpis.eligible_population, prev)
    enrolled = cached(kpis.enrolled_patients, f)
    rate, rate_prev = cached(kpis.enrollment_rate, f), cached(kpis.enrollment_rate, prev)
    consent, consent_prev = cached(kpis.consent_rate, f), cached(kpis.consent_rate, prev)
    layout.tile_row(
        PAGE,
        f,
        [
            Tile(
                "eligible",
                "Eligible patients",
                eligible,
                eligible_prev.value,
                "count",
                help="Medicare Part B patients with 2+ chronic conditions and a visit in the last 12 months, "
                f"as of {format_month(f.month_to)} month end.",
            ),
            Tile("enrolled", "Enrolled patients", enrolled, enrolled.extra.get("previous_month"), "count"),
            Tile(
                "enrollment_rate",
                "Enrollment rate",
                rate,
                rate_prev.value,
                "rate",
                help=f"{suppress_small(rate.extra.get('enrolled_not_eligible', 0))} enrolled patients are outside the eligible "
                "population (not counted).",
            ),
            Tile(
                "consent_rate",
                "Consent rate",
                consent,
                consent_prev.value,
                "rate",
                help="{} consented of {} offered in the period.".format(
                    *count_pair(consent.numerator, consent.denominator)
                ),
            ),
        ],
    )


def draw_funnel(tf) -> None:
    df = cached(kpis.funnel_counts, tf)
    conversion = cached(kpis.consent_conversion, tf)
    if df.empty or int(df["patients"].sum()) == 0:
        empty_state(
            "No one in the funnel for these filters",
            "Widen the month range or clear the clinic / practitioner filters.",
        )
        return
    left, right = st.columns([3, 2], gap="large")
    shown = df.assign(stage=df["stage"].map(STAGE_LABELS).fillna(df["stage"]))
    with left:
        layout.section(
            "Enrollment funnel",
            f"Eligible as of {format_month(tf.month_to)} month end; other stages are patients with that "
            "event in the period; the share is of eligible.",
            df.attrs.get("definition"),
        )
        charts.show(
            charts.funnel(shown, count_text=lambda n: f"{suppress_small(int(n))}"),
            "Enrollment funnel from eligible to first billable month",
        )
    with right:
        layout.section("Consent conversion", None, conversion.definition)
        st.metric(
            "Consented of reached",
            "<11"
            if hides_rate(conversion.numerator, conversion.denominator)
            else _rate_text(conversion.value),  # 43% of 14 reached gives back 6
            help="{} consented of {} reached in the period.".format(
                *count_pair(conversion.numerator, conversion.denominator)
            ),
        )
        table = present(shown, user, PAGE, count_cols=("patients",))
        layout.table(
            table,
            column_config={
                "stage": st.column_config.TextColumn("Stage"),
                "patients": st.column_config.NumberColumn("Patients", format="%d")
                if not meeting_mode()
                else st.column_config.TextColumn("Patients"),
            },
        )


def _rate_text(v) -> str:
    return "n/a" if v is None or pd.isna(v) else f"{v * 100:.1f}%"


def draw_reasons(tf) -> None:
    left, right = st.columns(2, gap="large")
    for col, fn, title, hint in (
        (
            left,
            kpis.decline_mix,
            "Decline reasons by month",
            "Patients who declined (or were found ineligible) in each month, by the reason recorded.",
        ),
        (
            right,
            kpis.disenrollment_mix,
            "Disenrollment reasons by month",
            "Patients who left the program in each month, by the reason recorded.",
        ),
    ):
        with col:
            df = cached(fn, tf)
            layout.section(title, hint, df.attrs.get("definition"))
            if df.empty:
                empty_state("None in this period")
            else:
                charts.show(
                    charts.stacked_month_bars(
                        df,
                        "reason",
                        "patients",
                        month_col="month",
                        y_title="Patients",
                        category_title=None,
                        months=tf.months(),
                    ),
                    title,
                    legend_columns=2,
                )


def draw_consent(tf) -> None:
    by_element = cached(kpis.consent_completeness, tf)
    by_staff = cached(kpis.consent_completeness_by_staff, tf)
    total = int(by_element["total"].iloc[0]) if not by_element.empty else 0
    if total == 0:
        empty_state(
            "No accepted consents for these filters",
            "Consent completeness covers consents dated in the period and those of enrolled patients.",
        )
        return
    left, right = st.columns(2, gap="large")
    with left:
        layout.section(
            "Completeness by element",
            f"Share of {suppress_small(total)} accepted consents documenting each element; required elements in blue.",
            by_element.attrs.get("definition"),
        )
        data = by_element.assign(required_label=by_element["required"].map({True: "Required", False: "Also asked"}))
        charts.show(
            charts.horizontal_bars(
                data,
                "element",
                "rate",
                x_title="Documented",
                fmt=".0%",
                sort_desc=False,
                color_col="required_label",
                color_domain=["Required", "Also asked"],
                color_range=[charts.PRIMARY, charts.MUTED],
                tooltip_cols=[("documented:Q", "Documented", ",d"), ("total:Q", "Consents", ",d")],
            ),
            "Consent completeness by element",
        )
    with right:
        layout.section(
            "Complete consents by staff",
            "Every required element documented, tied to the current billing practitioner.",
            by_staff.attrs.get("definition"),
        )
        table = by_staff[["staff_name", "consents", "complete", "rate"]].assign(rate=by_staff["rate"] * 100)
        table = present(table, user, PAGE, count_cols=("consents", "complete"), rate_cols={"rate": ("consents", 100)})
        layout.table(
            table,
            column_config={
                "staff_name": st.column_config.TextColumn("Staff member"),
                "consents": st.column_config.TextColumn("Consents"),
                "complete": st.column_config.TextColumn("Complete"),
                "rate": st.column_config.ProgressColumn("Share", format="%.0f%%", min_value=0, max_value=100),
            },
        )


def draw_retention(f) -> None:
    tf, note = charts.trend_window(f, 12)
    df = cached(kpis.retention_by_cohort, tf)
    layout.section(
        "Retention by enrollment cohort",
        f"Cohorts enrolled {format_month(tf.month_from)} to {format_month(tf.month_to)}: share still "
        "enrolled 1, 3, 6 and 12 months later (a dash until a cohort is old enough).",
        df.attrs.get("definition"),
    )
    horizons = [c for c in df.columns if c.startswith("retained_")]
    long = df.melt(
        id_vars=["cohort", "enrolled"], value_vars=horizons, var_name="horizon", value_name="retained_share"
    ).dropna(subset=["retained_share"])
    if long.empty:
        empty_state(
            "No cohort is old enough yet",
            "Retention shows once a cohort has been enrolled for at least a month; widen the range.",
        )
        return
    long["months_since"] = long["horizon"].str.extract(r"(\d+)").astype(int)
    left, right = st.columns([3, 2], gap="large")
    with left:
        charts.show(charts.retention_curves(long), "Share of each enrollment cohort still enrolled", legend_columns=4)
    with right:
        table = df.assign(cohort=df["cohort"].map(charts.month_label))
        for h in horizons:  # whole percentages; a dash until the cohort is old enough
            table[h] = ["—" if pd.isna(v) else f"{v * 100:.0f}%" for v in table[h]]
        table = present(table, user, PAGE, count_cols=("enrolled",))
        config = {
            "cohort": st.column_config.TextColumn("Enrolled in"),
            "enrolled": st.column_config.TextColumn("Patients"),
        }
        for h in horizons:
            config[h] = st.column_config.TextColumn(f"After {h.split('_')[1][:-1]} mo")
        layout.table(table, column_config=config)


OUTREACH_COLUMNS = {
    "patient_name": st.column_config.TextColumn("Patient"),
    "mrn": st.column_config.TextColumn("MRN"),
    "phone": st.column_config.TextColumn("Phone"),
    "next_step": st.column_config.TextColumn("Next step"),
    "latest_status": st.column_config.TextColumn("Status"),
    "status_date": st.column_config.DateColumn("Since", format="MMM D, YYYY"),
    "chronic_conditions": st.column_config.NumberColumn(
        "Conditions", format="%d", help="Active chronic conditions (CCW / AHRQ list)"
    ),
    "last_visit": st.column_config.DateColumn("Last visit", format="MMM D, YYYY"),
    "practitioner": st.column_config.TextColumn("Practitioner"),
    "care_manager": st.column_config.TextColumn("Care manager"),
    "reason": st.column_config.TextColumn("Reason"),
    "clinic": st.column_config.TextColumn("Clinic"),
    "payer": st.column_config.TextColumn("Payer"),
}
ID_COLS = ("patient_id", "mrn", "phone")
NAME_COLS = ("patient_name",)


def draw_outreach(f) -> None:
    df = cached(kpis_extra.eligible_not_enrolled, f)
    layout.section(
        "Eligible but not enrolled: outreach list",
        f"{suppress_small(len(df))} eligible patients are not enrolled as of "
        f"{format_month(f.month_to)} month end, best prospects first (consent on file, then reached, "
        "then never contacted).",
        df.attrs.get("definition"),
    )
    if df.empty:
        empty_state("Everyone eligible is enrolled", "Nobody to call for these filters.")
        return
    shown = present(df, user, PAGE, id_cols=ID_COLS, name_cols=NAME_COLS, table_key="outreach")
    if shown is None:
        return  # hidden in meeting mode until revealed
    order = [c for c in OUTREACH_COLUMNS if not (masks_identifiers(user) and c in ("mrn", "phone"))]
    layout.table(shown, height=400, column_order=order, column_config=OUTREACH_COLUMNS)
    download_buttons(df, "outreach_list", user, PAGE, id_cols=ID_COLS, name_cols=NAME_COLS)


with friendly_errors("the enrollment page"):
    f = sidebar_filters()
    layout.page_start("Enrollment & consent", f)
    with friendly_errors("the enrollment tiles"):
        draw_tiles(f)
    tf, note = charts.trend_window(f)
    st.caption(
        f"Tiles, funnel, consents and the outreach list cover {layout.window_words(f)}; charts by month "
        f"show {layout.window_words(tf)}" + (" (the trend window)." if note else ".")
    )
    layout.lazy_tabs(
        [
            ("Funnel", lambda: draw_funnel(f)),
            ("Declines & disenrollments", lambda: draw_reasons(tf)),
            ("Consent completeness", lambda: draw_consent(f)),
            ("Retention", lambda: draw_retention(f)),
            ("Outreach list", lambda: draw_outreach(f)),
        ],
        key="enrollment_tab",
    )
