"""Billing & denials: what the minutes support against what was billed, same-month conflicts, and why claims
are denied, down to the claim lines.

Every number comes from ``ccm_core.kpis.program`` / ``ccm_core.kpis.breakdowns``; the claim lines and flagged
patient-months are patient-level and go through ``ui.meeting.present`` and ``ui.exports``.
"""

from __future__ import annotations

import streamlit as st

from ui.session import require_page

user = require_page("billing")  # before any data is read

import pandas as pd  # noqa: E402

from ccm_core import rules as rules_mod  # noqa: E402
from ccm_core.kpis import breakdowns as kpis_extra  # noqa: E402
from ccm_core.kpis import program as kpis  # noqa: E402
from ui import charts, layout  # noqa: E402
from ui.cache import cached  # noqa: E402
from ui.components import empty_state, format_value, friendly_errors  # noqa: E402
from ui.exports import download_buttons  # noqa: E402
from ui.filters import sidebar_filters  # noqa: E402
from ui.holds import draw_holds, draw_ready  # noqa: E402
from ui.layout import Tile  # noqa: E402
from ui.meeting import count_pair, hides_rate, masks_identifiers, present, suppress_small  # noqa: E402

PAGE = "billing"
ALL = "All codes"


def draw_tiles(f) -> None:
    prev = f.month_before()
    rates, rates_prev = cached(kpis.initial_denial_rates, f), cached(kpis.initial_denial_rates, prev)  # one pass each
    by_count, by_count_prev = rates["count"], rates_prev["count"]
    by_dollars, by_dollars_prev = rates["dollars"], rates_prev["dollars"]
    fpr, fpr_prev = cached(kpis.first_pass_resolution_rate, f), cached(kpis.first_pass_resolution_rate, prev)
    overturn, overturn_prev = cached(kpis.overturn_rate, f), cached(kpis.overturn_rate, prev)
    layout.tile_row(
        PAGE,
        f,
        [
            Tile(
                "denial_count",
                "Denial rate (claims)",
                by_count,
                by_count_prev.value,
                "rate",
                "lower",
                help=f"{_count(by_count.numerator)} initial denials over an average of {_num(by_count.denominator)} "
                "claims submitted in the 3 months before.",
            ),
            Tile(
                "denial_dollars",
                "Denial rate (dollars)",
                by_dollars,
                by_dollars_prev.value,
                "rate",
                "lower",
                help="Gross charges of initially denied claims over the average charges submitted in the 3 months "
                "before.",
            ),
            Tile(
                "first_pass",
                "First-pass resolution",
                fpr,
                fpr_prev.value,
                "rate",
                help="{} of {} claims adjudicated this month.".format(*count_pair(fpr.numerator, fpr.denominator)),
            ),
            Tile(
                "overturn",
                "Appeals overturned",
                overturn,
                overturn_prev.value,
                "rate",
                help="Initial denials overturned, of those appealed; of all initial denials: "
                + _pct(overturn.extra.get("of_all_denials"))
                + ".",
            ),
        ],
    )


def _num(v) -> str:
    return "n/a" if v is None else f"{float(v):,.1f}".removesuffix(".0")


def _count(v) -> str:
    """A count for text: "<11" in meeting mode when it is 1-10."""
    return "<11" if v is not None and suppress_small(v) == "<11" else _num(v)


def _pct(v) -> str:
    return "n/a" if v is None or pd.isna(v) else f"{v * 100:.1f}%"


def draw_supported(tf) -> None:
    df = cached(kpis_extra.supported_vs_billed, tf)
    layout.section(
        "Units the minutes support vs units billed",
        "Supported = the engine's best track for each patient-month; billed = claim lines by date of "
        "service. A negative gap is billing beyond the minutes.",
        df.attrs.get("definition"),
    )
    if df.empty:
        empty_state(
            "No supported or billed units in these months",
            "Widen the month range, or check that claims and time were imported.",
        )
        return
    codes = list(dict.fromkeys(df["code"]))
    code = st.segmented_control("Code", codes, default=codes[0], key="billing_code") or codes[0]
    one = df[df["code"] == code]
    charts.show(
        charts.grouped_month_bars(
            one,
            {"supported_units": "Supported", "billed_units": "Billed"},
            month_col="month",
            y_title=f"{code} units",
            fmt=",d",
            colors=[charts.MUTED, charts.PRIMARY],
        ),
        f"Supported vs billed units of {code} by month",
    )
    table = df.assign(month=df["month"].map(charts.month_label))
    table = present(
        table, user, PAGE, count_cols=("supported_units", "billed_units", "gap_units"), share_cols=("gap_value",)
    )
    layout.table(
        table,
        height=260,
        column_order=["month", "code", "supported_units", "billed_units", "gap_units", "gap_value", "description"],
        column_config={
            "month": st.column_config.TextColumn("Month"),
            "code": st.column_config.TextColumn("Code"),
            "supported_units": st.column_config.TextColumn("Supported"),
            "billed_units": st.column_config.TextColumn("Billed"),
            "gap_units": st.column_config.NumberColumn("Gap (units)", format="%d"),
            "gap_value": st.column_config.NumberColumn("Gap ($, fee schedule)", format="dollar"),
            "description": st.column_config.TextColumn("Code description"),
        },
    )


# under-billing is money left on the table (amber), over-billing and conflicts are compliance risk (reds, purples)
FINDING_COLORS = dict(
    zip(
        [label for _, label in kpis_extra.FINDINGS],
        [charts.WARN, charts.BAD, "#7a5bb5", "#b5677a", "#8c4f9f", "#4aa3a2", "#5b6b7f", "#9aa5b1"],
    )
)
FINDING_COLUMNS = {
    "patient_name": st.column_config.TextColumn("Patient"),
    "mrn": st.column_config.TextColumn("MRN"),
    "month": st.column_config.TextColumn("Month"),
    "findings": st.column_config.TextColumn("Findings", width="medium"),
    "counted_minutes": st.column_config.NumberColumn("Minutes", format="%d"),
    "supported_codes": st.column_config.TextColumn("Supported"),
    "billed_codes": st.column_config.TextColumn("Billed"),
    "expected": st.column_config.NumberColumn("Expected", format="dollar"),
    "billed_charge": st.column_config.NumberColumn("Charged", format="dollar"),
    "paid": st.column_config.NumberColumn("Paid", format="dollar"),
    "practitioner": st.column_config.TextColumn("Practitioner"),
    "payer": st.column_config.TextColumn("Payer"),
}


def draw_findings(tf, f) -> None:
    df = cached(kpis_extra.billing_findings_by_month, tf)
    totals = df.attrs.get("totals", {})
    c1, c2, c3 = st.columns(3)
    for col, key, label, hint in (
        (c1, "under_billed", "Under-billed", "minutes support more than was billed"),
        (c2, "over_billed", "Over-billed", "billed beyond what the minutes support"),
        (c3, "conflict", "Same-month conflicts", "fee value billed in conflicting months (at risk)"),
    ):
        t = totals.get(key, {"patient_months": 0, "dollars": 0.0})
        col.metric(
            label,
            format_value(t["dollars"], "dollars"),
            help=f"{suppress_small(t['patient_months'])} patient-months: {hint}.",
            border=True,
        )
    chart_data = df[df["patient_months"] > 0]
    layout.section(
        "Patient-months with each finding",
        "Under- and over-billing against the minutes, and same-month conflicts (docs/reference/ccm-rules.md §5).",
        df.attrs.get("definition"),
    )
    if chart_data.empty:
        empty_state("No billing findings in these months", icon=":material/verified:")
        return
    present_labels = [label for _, label in kpis_extra.FINDINGS if label in set(chart_data["label"])]
    charts.show(
        charts.stacked_month_bars(
            chart_data,
            "label",
            "patient_months",
            month_col="month",
            y_title="Patient-months",
            category_title=None,
            category_order=present_labels,
            colors=[FINDING_COLORS[x] for x in present_labels],
            months=tf.months(),
        ),
        "Billing findings by month",
        legend_columns=4,
    )
    lst = cached(kpis_extra.billing_findings_list, tf)
    layout.section(
        "Flagged patient-months",
        f"{suppress_small(len(lst))} patient-months with at least one finding in "
        f"{layout.window_words(tf)}, newest first.",
    )
    shown = present(
        lst.assign(month=lst["month"].map(charts.month_label)),
        user,
        PAGE,
        id_cols=("patient_id", "mrn"),
        name_cols=("patient_name",),
        table_key="findings",
    )
    if shown is None:
        return
    order = [c for c in FINDING_COLUMNS if not (masks_identifiers(user) and c == "mrn")]
    layout.table(shown, height=360, column_order=order, column_config=FINDING_COLUMNS)
    download_buttons(lst, "billing_findings", user, PAGE, id_cols=("patient_id", "mrn"), name_cols=("patient_name",))


def draw_denials(tf, f) -> None:
    trend = cached(kpis.denial_trend, tf)
    days = cached(kpis.days_to_payment, f)
    overturn = cached(kpis.overturn_rate, f)  # the tile's own call: one value for "Appeals overturned"
    layout.section(
        "Initial denial rate by month",
        "Denials in the month over the average claims (or charges) submitted in the 3 months before; "
        "CARC 18 duplicates left out.",
        trend.attrs.get("definition"),
    )
    left, right = st.columns([3, 1], gap="medium")
    with left:
        if trend.empty or (trend["rate_by_count"].isna().all() and trend["initial_denials"].sum() == 0):
            empty_state("No adjudicated claims in these months")
        else:
            charts.show(
                charts.trend_lines(
                    trend,
                    {"rate_by_count": "By claims", "rate_by_dollars": "By dollars"},
                    month_col="month",
                    y_title="Initial denial rate",
                    colors=[charts.BAD, charts.WARN],
                ),
                "Initial denial rate by claims and by dollars",
            )
    with right:
        st.metric(
            "Days to payment",
            "n/a" if days.value is None else f"{days.value:.0f} days",
            border=True,
            help=f"Median days from submission to first payment, {suppress_small(days.extra.get('claims', 0))} claims "
            "first paid in the period. " + days.definition.numerator,
        )
        st.metric(
            "Appeals overturned",
            "<11" if hides_rate(overturn.numerator, overturn.denominator) else _pct(overturn.value),
            border=True,
            help="{} of {} appealed initial denials in ".format(*count_pair(overturn.numerator, overturn.denominator))
            + f"{layout.window_words(f)}; of all {_count(overturn.extra.get('initial_denials', 0))} initial "
            "denials: "
            + (
                "<11"
                if hides_rate(overturn.numerator, overturn.extra.get("initial_denials"))
                else _pct(overturn.extra.get("of_all_denials"))
            )
            + ".",
        )
    table = trend.assign(month=trend["month"].map(charts.month_label))
    table = present(table, user, PAGE, count_cols=("initial_denials",))
    layout.table(
        table,
        column_order=[
            "month",
            "initial_denials",
            "denied_charges",
            "lagged_avg_submitted",
            "rate_by_count",
            "rate_by_dollars",
        ],
        column_config={
            "month": st.column_config.TextColumn("Month"),
            "initial_denials": st.column_config.TextColumn("Initial denials"),
            "denied_charges": st.column_config.NumberColumn("Denied charges", format="dollar"),
            "lagged_avg_submitted": st.column_config.NumberColumn("Avg submitted (3 mo before)", format="%.1f"),
            "rate_by_count": st.column_config.NumberColumn("Rate (claims)", format="percent"),
            "rate_by_dollars": st.column_config.NumberColumn("Rate ($)", format="percent"),
        },
    )


def _code_choices() -> list[str]:
    return [ALL] + rules_mod.load().codes_of(family="CCM")


def draw_reasons(tf) -> None:
    code = st.selectbox(
        "Claims with code",
        _code_choices(),
        key="billing_pareto_code",
        width=260,
        help="Limit the reasons to denied claims carrying this code.",
    )
    codes = None if code == ALL else (code,)
    carc = cached(kpis.carc_pareto, tf, codes)
    rarc = cached(kpis.rarc_pareto, tf, codes)
    left, right = st.columns(2, gap="large")
    for col, df, title in ((left, carc, "Denial reasons (CARC)"), (right, rarc, "Remark codes (RARC)")):
        with col:
            layout.section(
                title,
                "Denied remittances carrying each code; hover a bar for the official X12 text.",
                df.attrs.get("definition"),
            )
            if df.empty:
                empty_state("No denials for these filters", icon=":material/verified:")
            else:
                charts.show(
                    charts.pareto(df.head(12), "code", "remittances", "text", value_title="Denied remits"),
                    f"{title}, most frequent first",
                )
                st.caption(charts.code_key(df))
    cut_title = "Initial denials by payer, code or practitioner"
    st.space("small")
    by = (
        st.segmented_control(
            "Cut by", ["payer", "code", "practitioner"], default="payer", key="billing_cut", format_func=str.capitalize
        )
        or "payer"
    )
    cut = cached(kpis_extra.denials_by_dimension, tf, by)
    layout.section(
        cut_title,
        "Claims first adjudicated in the period that were denied, of all first adjudications in the cut.",
        cut.attrs.get("definition"),
    )
    if cut.empty:
        empty_state("No adjudicated claims in these months")
    else:
        left, right = st.columns([3, 2], gap="large")
        with left:
            charts.show(
                charts.horizontal_bars(
                    cut,
                    "label",
                    "rate_by_count",
                    x_title="Initial denial rate",
                    fmt=".0%",
                    color=charts.BAD,
                    tooltip_cols=[
                        ("initial_denials:Q", "Denials", ",d"),
                        ("adjudicated:Q", "Adjudicated", ",d"),
                        ("rate_by_dollars:Q", "Rate ($)", ".1%"),
                    ],
                ),
                f"Initial denial rate by {by}",
            )
        with right:
            table = present(
                cut[["label", "adjudicated", "initial_denials", "rate_by_count", "rate_by_dollars"]],
                user,
                PAGE,
                count_cols=("adjudicated", "initial_denials"),
                share_cols=("rate_by_count", "rate_by_dollars"),
            )
            layout.table(
                table,
                column_config={
                    "label": st.column_config.TextColumn(by.capitalize()),
                    "adjudicated": st.column_config.TextColumn("Adjudicated"),
                    "initial_denials": st.column_config.TextColumn("Denied"),
                    "rate_by_count": st.column_config.NumberColumn("Rate", format="percent"),
                    "rate_by_dollars": st.column_config.NumberColumn("Rate ($)", format="percent"),
                },
            )


LINE_COLUMNS = {
    "claim_number": st.column_config.TextColumn("Claim"),
    "patient_name": st.column_config.TextColumn("Patient"),
    "service_date": st.column_config.DateColumn("DOS", format="MMM D, YYYY"),
    "cpt_code": st.column_config.TextColumn("Code"),
    "units": st.column_config.NumberColumn("Units", format="%d"),
    "charge": st.column_config.NumberColumn("Charge", format="dollar"),
    "status": st.column_config.TextColumn("Status"),
    "carcs": st.column_config.TextColumn("CARC"),
    "reason": st.column_config.TextColumn("Reason (official text)", width="large"),
    "rarcs": st.column_config.TextColumn("RARC"),
    "claim_paid": st.column_config.NumberColumn("Claim paid", format="dollar"),
    "mrn": st.column_config.TextColumn("MRN"),
    "payer": st.column_config.TextColumn("Payer"),
    "practitioner": st.column_config.TextColumn("Practitioner"),
    "submitted_date": st.column_config.DateColumn("Submitted", format="MMM D"),
    "first_adjudicated": st.column_config.DateColumn("Adjudicated", format="MMM D"),
}
LINE_IDS = ("patient_id", "mrn", "claim_number")


def draw_claim_lines(tf) -> None:
    carc = cached(kpis.carc_pareto, tf, None)
    reasons = ["Any"] + list(carc["code"])
    texts = dict(zip(carc["code"], carc["text"]))
    c1, c2, c3 = st.columns([1, 2, 1], vertical_alignment="bottom")
    denied_only = c1.toggle("Denied only", value=True, key="billing_denied_only")
    reason = c2.selectbox(
        "Denial reason (CARC)",
        reasons,
        key="billing_carc",
        format_func=lambda c: c if c == "Any" else f"{c}: {texts.get(c, '')[:70]}",
    )
    code = c3.selectbox("Code", _code_choices(), key="billing_line_code")
    lines = cached(
        kpis_extra.claim_lines, tf, denied_only, None if reason == "Any" else reason, None if code == ALL else code
    )
    total = lines.attrs.get("total", len(lines))
    layout.section(
        "Claim lines",
        f"{suppress_small(total)} claim lines with a date of service in "
        f"{layout.window_words(tf)}" + (f"; showing the newest {len(lines):,}" if total > len(lines) else "") + ".",
        lines.attrs.get("definition"),
    )
    if lines.empty:
        empty_state("No claim lines match", "Switch off 'Denied only' or choose another reason or code.")
        return
    shown = present(lines, user, PAGE, id_cols=LINE_IDS, name_cols=("patient_name",), table_key="claim_lines")
    if shown is None:
        return
    order = [c for c in LINE_COLUMNS if not (masks_identifiers(user) and c in ("mrn", "claim_number"))]
    layout.table(shown, height=400, column_order=order, column_config=LINE_COLUMNS)
    download_buttons(lines, "claim_lines", user, PAGE, id_cols=LINE_IDS, name_cols=("patient_name",))


with friendly_errors("the billing page"):
    f = sidebar_filters()
    layout.page_start("Billing & denials", f, open_months=True)
    with friendly_errors("the billing tiles"):
        draw_tiles(f)
    tf, note = charts.trend_window(f)
    st.caption(
        f"Tiles, denial reasons and the denial cards cover {layout.window_words(f)}; charts by month, "
        f"findings and claim lines show {layout.window_words(tf)}"
        + (" (the trend window: a month's claims are paid over the next ones)." if note else ".")
    )
    layout.lazy_tabs(
        [
            ("Supported vs billed", lambda: draw_supported(tf)),
            ("Ready to bill", lambda: draw_ready(f, user, PAGE)),  # the month: f.month_to
            ("Holds", lambda: draw_holds(f, user, PAGE)),
            ("Findings & conflicts", lambda: draw_findings(tf, f)),
            ("Denial trend", lambda: draw_denials(tf, f)),
            ("Denial reasons", lambda: draw_reasons(f)),
            ("Claim lines", lambda: draw_claim_lines(tf)),
        ],
        key="billing_tab",
    )
