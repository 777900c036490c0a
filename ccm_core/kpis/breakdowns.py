"""KPIs and lists the Enrollment, Minutes, Billing and Revenue pages need beyond ``ccm_core.kpis.program``.

Same contract as ``ccm_core.kpis.program``: aggregation in SQL over the engine's
patient-month (minutes are never recounted here), one function per number or
list, each returning a small DataFrame with ``attrs["definition"]`` (or a
``KpiResult``).  Denial logic (what counts as a denial, the CARC 18 rule) comes from
``ccm_core.engine.sql`` and the claim filters from ``ccm_core.kpis.program``, so a cut table can never
disagree with the headline rate about what a denial is.
"""

from __future__ import annotations

import pandas as pd
from sqlalchemy import (
    Date,
    Float,
    Integer,
    and_,
    case,
    cast,
    column,
    distinct,
    func,
    literal,
    or_,
    select,
    union_all,
    values,
)
from sqlalchemy.engine import Connection

from ccm_core import rules as rules_mod
from ccm_core.audit import checklist as audit
from ccm_core.engine import compliance
from ccm_core.engine import patient_month as eng
from ccm_core.engine.filters import Filters
from ccm_core.engine.sql import NOT_DENIAL_CARCS, date_of, days_between, is_denial, is_duplicate
from ccm_core.kpis import program as kpis
from ccm_core.kpis.definitions import Definitions
from ccm_core.kpis.definitions import rate as _rate
from ccm_core.storage import schema as s
from ccm_core.storage import stored as pm_store
from ccm_core.storage.db import add_months, month_bounds
from ccm_core.storage.db import month_end as _month_end

D = Definitions()
_def = D.define  # the shared implementation (definitions.Definitions), short for the table below
_frame = D.frame


_def(
    "billable_rate_trend",
    "Billable rate by month",
    "Active enrolled patients at each month end whose counted minutes supported a CCM code that month",
    "Active enrolled patients at that month end",
    "Minutes that do not count (non-clinical, inpatient, pre-consent, other program)",
    "docs/reference/kpi-definitions.md §3.2 CureMD [S50]; ccm_core.kpis.program.billable_rate per month",
    "rate",
)
_def(
    "eligible_not_enrolled",
    "Eligible but not enrolled (outreach list)",
    "Patients in the eligible population at month end whose latest enrollment event is not 'enrolled' "
    "(or who have none), with their latest status, next step, chronic conditions and last visit",
    "n/a (a list)",
    "Enrolled patients; patients outside the eligible population (payer, no visit in 12 months, "
    "fewer than 2 chronic conditions, deceased)",
    "docs/reference/kpi-definitions.md §3.2 eligible population [C1][C2][O1]",
)
_def(
    "supported_vs_billed",
    "Supported vs billed units by code",
    "Units billed per code (claim lines by date-of-service month, replaced claims excluded)",
    "Units the counted minutes support per code (the engine's recommended track per patient-month)",
    "Codes of families outside the program filter",
    "docs/reference/ccm-rules.md §1-2; ccm_core.engine.read.patient_months",
    "count",
)
_def(
    "billing_findings",
    "Billing findings by month",
    "Patient-months with each finding: under-billed (dollars = supported minus billed-and-supported value), "
    "over-billed (dollars = fee value of CCM units billed beyond what the minutes support), and same-month "
    "conflicts (duplicate CCM, CCM with PCM/APCM by the same practitioner, add-on without base, units over cap, "
    "mixed CCM tracks; dollars = fee value billed in those months, at risk of denial or recoupment)",
    "n/a (counts and dollars)",
    "Months with no CCM/PCM/APCM claim lines for conflicts",
    "docs/reference/ccm-rules.md §5 (same-month matrix); OIG A-07-17-05101 [C4][C5]",
    "dollars",
)
_def(
    "denials_by_dimension",
    "Initial denials by payer, code or practitioner",
    "Claims whose first adjudication (received in the period) was a denial; charges of those claims",
    "Claims with a first adjudication received in the period (same-period adjudications, not the lagged HFMA "
    "denominator, so small cuts stay comparable)",
    "CARC 18 exact duplicates (kept out of the numerator, as in "
    "the headline rate); claims without codes of the selected programs",
    "HFMA Claim Integrity Task Force [K5][K6] applied per cut",
    "rate",
)
_def(
    "claim_lines",
    "Claim lines (drill-down)",
    "Claim lines with a date of service in the period, with the claim's first adjudication, total paid and "
    "its denial reason codes (CARC/RARC)",
    "n/a (a list)",
    "Lines of codes outside the program filter",
    "claim, claim_line, remittance, remittance_adjustment, remittance_remark tables",
)
_def(
    "revenue_projection",
    "Revenue projection at the current enrollment pace",
    "Projected month k: enrolled = last enrolled + k x trailing average monthly net change; billable "
    "patient-months = enrolled x trailing billable rate; expected = billable x trailing expected per billable "
    "patient-month; collected = expected x trailing collection ratio (paid / expected). Actual months show "
    "collected = paid only once they are 2+ months old",
    "Trailing window = the last up to 6 months of the filter range (collection ratio: those at least 2 months "
    "old, so unpaid recent claims do not drag it down)",
    "Growth is not allowed to drive enrolment below zero; no seasonality, no fee-schedule change",
    "Our design (PRODUCT.md capability 3); inputs ccm_core.kpis.program.revenue_by_month",
    "dollars",
)

FINDINGS = (
    ("under_billed", "Under-billed"),
    ("over_billed", "Over-billed"),
    ("duplicate_ccm", "Duplicate CCM"),
    ("ccm_with_pcm_same_practitioner", "CCM + PCM same practitioner"),
    ("ccm_with_apcm_same_practitioner", "CCM + APCM same practitioner"),
    ("addon_without_base", "Add-on without base"),
    ("units_over_cap", "Units over cap"),
    ("ccm_tracks_mixed", "Mixed CCM tracks"),
)
CONFLICTS = tuple(k for k, _ in FINDINGS if k not in ("under_billed", "over_billed"))
NEXT_STEP = {
    "consented": (1, "enroll: consent on file"),
    "reached": (2, "ask for consent"),
    "outreached": (3, "try to reach again"),
    "identified": (4, "first outreach"),
    None: (4, "first outreach"),
    "declined": (6, "re-offer only if circumstances changed"),
    "disenrolled": (7, "re-offer if the patient asks"),
    "ineligible": (8, "review eligibility"),
}


def _full_name(first, last):
    return func.coalesce(first, "") + literal(" ") + func.coalesce(last, "")


# --------------------------------------------------------------------------- minutes
def billable_rate_trend(conn: Connection, f: Filters) -> pd.DataFrame:
    """One row per month of the range: enrolled, billable, rate (``kpis.billable_rate`` for each month)."""
    rows = []
    for m in f.months():
        r = kpis.billable_rate(conn, f.with_months(m))
        rows.append(
            {"month": m, "enrolled": int(r.denominator or 0), "billable": int(r.numerator or 0), "rate": r.value}
        )
    return _frame(pd.DataFrame(rows, columns=["month", "enrolled", "billable", "rate"]), "billable_rate_trend")


# --------------------------------------------------------------------------- enrollment
def eligible_not_enrolled(conn: Connection, f: Filters) -> pd.DataFrame:
    """Eligible patients at the end of ``f.month_to`` not currently enrolled: the outreach list, best bets first."""
    rs = rules_mod.load(conn)
    as_of = _month_end(f.month_to)
    ee, p, v, pr, st, cl = s.enrollment_event, s.patient, s.visit, s.practitioner, s.staff, s.clinic
    elig = kpis.eligible_patients_select(conn, f, rs, as_of).cte("elig")
    spans = compliance.enrollment_spans(f.programs, ee.c.event_date <= as_of, "outreach_spans")
    # One span per patient and program holds at ``as_of``; the GROUP BY (exact: one row per group) makes
    # SQLite materialise it and join by an index instead of scanning every span per patient (50k: 9 min -> s).
    latest = (
        select(
            spans.c.patient_id,
            func.max(spans.c.status).label("status"),
            func.max(spans.c.reason).label("reason"),
            func.max(spans.c.start_date).label("event_date"),
        )
        .where(compliance.in_span(spans, as_of))
        .group_by(spans.c.patient_id, spans.c.program)
        .subquery("latest")
    )
    last_visit = (
        select(v.c.patient_id, func.max(v.c.visit_date).label("last_visit"))
        .where(v.c.visit_date <= as_of)
        .group_by(v.c.patient_id)
    ).subquery("last_visit")
    points = select(
        elig.c.patient_id, literal(as_of, Date).label("start_date"), literal(as_of, Date).label("end_date")
    ).cte("outreach_points")
    conds = compliance.eligibility_select(
        conn, rs, points, [], outreach=False, patient_key="patient_id", patients=select(elig.c.patient_id)
    ).subquery("conds")
    n_conditions = func.coalesce(conds.c.n_conditions, 0)
    frm = (
        elig.join(p, p.c.id == elig.c.patient_id)
        .outerjoin(latest, latest.c.patient_id == p.c.id)
        .outerjoin(last_visit, last_visit.c.patient_id == p.c.id)
        .outerjoin(pr, pr.c.id == p.c.billing_practitioner_id)
        .outerjoin(st, st.c.id == p.c.care_manager_id)
        .outerjoin(cl, cl.c.id == p.c.clinic_id)
    )
    frm = frm.outerjoin(conds, conds.c.patient_id == p.c.id)
    q = (
        select(
            p.c.id.label("patient_id"),
            p.c.mrn,
            _full_name(p.c.first_name, p.c.last_name).label("patient_name"),
            p.c.phone,
            cl.c.name.label("clinic"),
            _full_name(pr.c.first_name, pr.c.last_name).label("practitioner"),
            _full_name(st.c.first_name, st.c.last_name).label("care_manager"),
            p.c.payer,
            n_conditions.label("chronic_conditions"),
            latest.c.status.label("latest_status"),
            latest.c.event_date.label("status_date"),
            latest.c.reason,
            last_visit.c.last_visit,
        )
        .select_from(frm)
        .where(or_(latest.c.status.is_(None), latest.c.status != "enrolled"))
    )
    cols = [
        "patient_id",
        "mrn",
        "patient_name",
        "phone",
        "clinic",
        "practitioner",
        "care_manager",
        "payer",
        "chronic_conditions",
        "latest_status",
        "status_date",
        "reason",
        "last_visit",
    ]
    df = pd.DataFrame(conn.execute(q).mappings().all(), columns=cols)
    df["latest_status"] = df["latest_status"].where(df["latest_status"].notna(), None)
    df["next_step"] = [NEXT_STEP.get(x, NEXT_STEP[None])[1] for x in df["latest_status"]]
    df["_order"] = [NEXT_STEP.get(x, NEXT_STEP[None])[0] for x in df["latest_status"]]
    df["latest_status"] = df["latest_status"].fillna("no outreach yet")
    df["reason"] = df["reason"].fillna("")
    df = (
        df.sort_values(["_order", "chronic_conditions", "patient_id"], ascending=[True, False, True])
        .drop(columns="_order")
        .reset_index(drop=True)
    )
    df["chronic_conditions"] = df["chronic_conditions"].astype(int)
    df.attrs["as_of"] = as_of
    return _frame(df, "eligible_not_enrolled")


# --------------------------------------------------------------------------- billing
def _priced_codes(rs: rules_mod.RuleSet, f: Filters) -> list[str]:
    """Time-based codes the engine prices (CCM, PCM), limited to the program filter."""
    return [c for fam in ("CCM", "PCM") if fam in f.programs for c in rs.codes_of(family=fam)]


def supported_vs_billed(conn: Connection, f: Filters) -> pd.DataFrame:
    """Long frame: month, code, supported units, billed units, and their fee-schedule values."""
    rs = rules_mod.load(conn)
    codes = _priced_codes(rs, f)
    cols = [
        "month",
        "code",
        "description",
        "supported_units",
        "billed_units",
        "supported_value",
        "billed_value",
        "gap_units",
        "gap_value",
    ]
    if not codes:
        return _frame(pd.DataFrame(columns=cols), "supported_vs_billed")
    pm = pm_store.patient_month_source(conn, f, rs).subquery("pm")
    aggs = []
    for code in codes:
        aggs.append(func.coalesce(func.sum(pm.c[f"supported_{code}"]), 0).label(f"s_{code}"))
        aggs.append(func.coalesce(func.sum(pm.c[f"billed_{code}"]), 0).label(f"b_{code}"))
    got = {
        int(r.service_month): r._mapping
        for r in conn.execute(select(pm.c.service_month, *aggs).group_by(pm.c.service_month))
    }
    rows = []
    for m in f.months():
        r = got.get(m)
        for code in codes:
            su = int(r[f"s_{code}"]) if r else 0
            bu = int(r[f"b_{code}"]) if r else 0
            fee = float(rs.fee(code, m) or 0.0)
            rows.append(
                {
                    "month": m,
                    "code": code,
                    "description": rs.code(code).description,
                    "supported_units": su,
                    "billed_units": bu,
                    "supported_value": round(su * fee, 2),
                    "billed_value": round(bu * fee, 2),
                    "gap_units": su - bu,
                    "gap_value": round((su - bu) * fee, 2),
                }
            )
    df = pd.DataFrame(rows, columns=cols)
    # keep codes that appear at all in the range: a wall of zero rows helps nobody
    used = df.groupby("code")[["supported_units", "billed_units"]].sum().sum(axis=1)
    df = df[df["code"].isin(used[used > 0].index)].reset_index(drop=True)
    return _frame(df, "supported_vs_billed")


def _ccm_billed_fee_value(rs: rules_mod.RuleSet, pm):
    total = literal(0.0, Float)
    for code in rs.codes_of(family="CCM"):
        total = total + eng.fee_expr(rs, code, pm.c.service_month) * pm.c[f"billed_{code}"]
    return total


def billing_findings_by_month(conn: Connection, f: Filters) -> pd.DataFrame:
    """Long frame: month, finding key, label, patient-months with it, dollars (see the definition)."""
    rs = rules_mod.load(conn)
    pm = pm_store.patient_month_source(conn, f, rs).subquery("pm")
    under = pm.c.expected_ccm - pm.c.billed_supported_value
    over = _ccm_billed_fee_value(rs, pm) - pm.c.billed_supported_value
    aggs = []
    for key, _ in FINDINGS:
        flag = pm.c[key] == 1
        amount = under if key == "under_billed" else over if key == "over_billed" else pm.c.billed_fee_value
        aggs.append(func.coalesce(func.sum(case((flag, 1), else_=0)), 0).label(f"n_{key}"))
        aggs.append(func.coalesce(func.sum(case((flag, amount), else_=0.0)), 0.0).label(f"d_{key}"))
    got = {
        int(r.service_month): r._mapping
        for r in conn.execute(select(pm.c.service_month, *aggs).group_by(pm.c.service_month))
    }
    rows = []
    for m in f.months():
        r = got.get(m)
        for key, label in FINDINGS:
            rows.append(
                {
                    "month": m,
                    "finding": key,
                    "label": label,
                    "kind": "conflict" if key in CONFLICTS else key,
                    "patient_months": int(r[f"n_{key}"]) if r else 0,
                    "dollars": round(max(float(r[f"d_{key}"]), 0.0), 2) if r else 0.0,
                }
            )
    df = pd.DataFrame(rows, columns=["month", "finding", "label", "kind", "patient_months", "dollars"])
    # range totals by kind (under_billed / over_billed / conflict); a month with two conflicts counts twice
    totals = df.groupby("kind")[["patient_months", "dollars"]].sum()
    df.attrs["totals"] = {
        k: {
            "patient_months": int(totals.loc[k, "patient_months"]),
            "dollars": round(float(totals.loc[k, "dollars"]), 2),
        }
        for k in ("under_billed", "over_billed", "conflict")
    }
    return _frame(df, "billing_findings")


def billing_findings_list(conn: Connection, f: Filters) -> pd.DataFrame:
    """Patient-level: every patient-month in range with at least one billing finding (filtered in SQL)."""
    rs = rules_mod.load(conn)
    pm = pm_store.patient_month_source(conn, f, rs).subquery("pm")
    p, pr = s.patient, s.practitioner
    any_flag = or_(*[pm.c[k] == 1 for k, _ in FINDINGS])
    codes = _priced_codes(rs, f) + [c for c in rs.codes_of(family="APCM") if "APCM" in f.programs]
    q = (
        select(
            pm.c.patient_id,
            p.c.mrn,
            _full_name(p.c.first_name, p.c.last_name).label("patient_name"),
            pm.c.service_month,
            _full_name(pr.c.first_name, pr.c.last_name).label("practitioner"),
            pm.c.payer,
            pm.c.counted_minutes,
            pm.c.expected_amount,
            pm.c.billed_charge,
            pm.c.paid_amount,
            *[pm.c[k] for k, _ in FINDINGS],
            *[pm.c[f"supported_{c}"] for c in codes if f"supported_{c}" in pm.c],
            *[pm.c[f"billed_{c}"] for c in codes],
        )
        .select_from(pm.join(p, p.c.id == pm.c.patient_id).outerjoin(pr, pr.c.id == pm.c.billing_practitioner_id))
        .where(any_flag)
        .order_by(pm.c.service_month.desc(), pm.c.patient_id)
    )
    res = conn.execute(q)
    df = pd.DataFrame(res.mappings().all(), columns=list(res.keys()))
    out_cols = [
        "patient_id",
        "mrn",
        "patient_name",
        "month",
        "practitioner",
        "payer",
        "counted_minutes",
        "supported_codes",
        "billed_codes",
        "expected",
        "billed_charge",
        "paid",
        "findings",
    ]
    if df.empty:
        return _frame(pd.DataFrame(columns=out_cols), "billing_findings")

    def codes_text(prefix):
        # column-wise (zip of the code columns' lists): iterrows built a Series per row, 0.1 s at 50k patients
        have = [c for c in codes if prefix + c in df.columns]
        if not have:
            return [""] * len(df)
        cols = zip(*(df[prefix + c].tolist() for c in have))
        return [", ".join(f"{c} x{int(v)}" for c, v in zip(have, vals) if int(v or 0) > 0) for vals in cols]

    labels = dict(FINDINGS)
    df["supported_codes"] = codes_text("supported_")
    df["billed_codes"] = codes_text("billed_")
    flags = zip(*(df[k].tolist() for k, _ in FINDINGS))
    df["findings"] = ["; ".join(labels[k] for (k, _), v in zip(FINDINGS, vals) if int(v)) for vals in flags]
    df = df.rename(columns={"service_month": "month", "expected_amount": "expected", "paid_amount": "paid"})
    for col in ("expected", "billed_charge", "paid"):
        df[col] = df[col].astype(float).round(2)
    return _frame(df[out_cols].reset_index(drop=True), "billing_findings")


# --------------------------------------------------------------------------- denials
DIMENSIONS = ("payer", "code", "practitioner")


def denials_by_dimension(conn: Connection, f: Filters, by: str = "payer") -> pd.DataFrame:
    """Claims first adjudicated in the period, initially denied, by payer, CPT code or billing practitioner."""
    if by not in DIMENSIONS:
        raise ValueError(f"by must be one of {', '.join(DIMENSIONS)}")
    rs = rules_mod.load(conn)
    r, cl, pr = s.remittance, s.claim_line, s.practitioner
    frm, where, c = kpis.claims_filtered(conn, f, rs)
    denied = and_(is_denial(r), ~is_duplicate(r))
    first = (
        select(r.c.claim_id, func.max(case((denied, 1), else_=0)).label("denied"))
        .where(
            r.c.adjudication_seq == 1, r.c.claim_id.isnot(None), r.c.received_month.between(f.month_from, f.month_to)
        )
        .group_by(r.c.claim_id)
    ).subquery("first_adj")
    charge = c.total_charge
    frm = frm.join(first, first.c.claim_id == c.id)
    if by == "payer":
        key = c.payer
        label = c.payer
    elif by == "practitioner":
        frm = frm.outerjoin(pr, pr.c.id == c.practitioner_id)
        key = c.practitioner_id
        label = _full_name(pr.c.first_name, pr.c.last_name)
    else:
        codes = kpis.program_codes(rs, f)
        claim_codes = (select(cl.c.claim_id, cl.c.cpt_code).where(cl.c.cpt_code.in_(codes)).distinct()).subquery(
            "claim_codes"
        )
        frm = frm.join(claim_codes, claim_codes.c.claim_id == c.id)
        key = claim_codes.c.cpt_code
        label = claim_codes.c.cpt_code
    q = (
        select(
            key.label("key"),
            func.min(label).label("label"),
            func.count().label("adjudicated"),
            func.coalesce(func.sum(first.c.denied), 0).label("initial_denials"),
            func.coalesce(func.sum(charge), 0.0).label("adjudicated_charges"),
            func.coalesce(func.sum(case((first.c.denied == 1, charge), else_=0.0)), 0.0).label("denied_charges"),
        )
        .select_from(frm)
        .where(where)
        .group_by(key)
    )
    cols = ["key", "label", "adjudicated", "initial_denials", "adjudicated_charges", "denied_charges"]
    with pm_store.index_lookups(conn):
        rows = conn.execute(q).mappings().all()
    df = pd.DataFrame(rows, columns=cols)
    df["rate_by_count"] = [_rate(a, b) for a, b in zip(df["initial_denials"], df["adjudicated"])]
    df["rate_by_dollars"] = [_rate(a, b) for a, b in zip(df["denied_charges"], df["adjudicated_charges"])]
    for col in ("adjudicated_charges", "denied_charges"):
        df[col] = df[col].astype(float).round(2)
    df = df.sort_values(["initial_denials", "label"], ascending=[False, True]).reset_index(drop=True)
    df.attrs["by"] = by
    return _frame(df, "denials_by_dimension")


def claim_lines(
    conn: Connection,
    f: Filters,
    denied_only: bool = False,
    carc: str | None = None,
    cpt_code: str | None = None,
    limit: int = 5000,
) -> pd.DataFrame:
    """Patient-level drill-down: claim lines in the period with status, paid amount and reason codes.

    ``attrs["total"]`` is the number of matching lines; at most ``limit`` (newest first) are returned.
    """
    rs = rules_mod.load(conn)
    # an alias: the claim filter's EXISTS over claim_line must not correlate with the lines listed here
    c, cl, p, pr = s.claim, s.claim_line.alias("line"), s.patient, s.practitioner
    r, ra, rr = s.remittance, s.remittance_adjustment, s.remittance_remark
    stored = pm_store.claim_source(conn, f, rs)
    if stored is not None:
        q = _claim_lines_stored(f, rs, stored, denied_only, carc, cpt_code, max(limit, 1))
        with pm_store.index_lookups(conn):
            df = _claim_lines_frame(conn, q, None, rs)
        return df if limit >= 1 else df.head(0)
    frm, where = kpis.claims_base(f, rs)
    # remittance aggregates only for claims with lines listed here (not every remittance ever received)
    line_all = s.claim_line
    in_range = select(line_all.c.claim_id).where(
        line_all.c.dos_month.between(f.month_from, f.month_to), line_all.c.cpt_code.in_(kpis.program_codes(rs, f))
    )
    first_id = (
        select(r.c.claim_id, func.min(r.c.id).label("remit_id"))
        .where(r.c.adjudication_seq == 1, r.c.claim_id.in_(in_range))
        .group_by(r.c.claim_id)
    ).subquery("fid")
    first = r.alias("first_remit")
    denied_first = and_(is_denial(first), ~is_duplicate(first))
    paid = (
        select(r.c.claim_id, func.sum(cast(r.c.paid_amount, Float)).label("paid"), func.count().label("adjudications"))
        .where(r.c.claim_id.in_(in_range))
        .group_by(r.c.claim_id)
    ).subquery("claim_paid")
    carc_pairs = (
        select(r.c.claim_id, ra.c.carc)
        .join(ra, ra.c.remittance_id == r.c.id)
        .where(ra.c.carc.not_in(NOT_DENIAL_CARCS), r.c.claim_id.in_(in_range))
        .distinct()
    ).subquery("carc_pairs")
    status = case(
        (first.c.id.is_(None), "pending"),
        (and_(denied_first, func.coalesce(paid.c.paid, 0.0) > 0), "denied, later paid"),
        (denied_first, "denied"),
        (is_duplicate(first), "duplicate (CARC 18)"),
        else_="paid",
    ).label("status")
    codes = kpis.program_codes(rs, f)
    conds = [where, cl.c.dos_month.between(f.month_from, f.month_to), cl.c.cpt_code.in_(codes)]
    if denied_only:
        conds.append(denied_first)
    if cpt_code:
        conds.append(cl.c.cpt_code == cpt_code)
    if carc:
        conds.append(c.c.id.in_(select(carc_pairs.c.claim_id).where(carc_pairs.c.carc == carc)))
    joined = (
        frm.join(cl, cl.c.claim_id == c.c.id)
        .outerjoin(first_id, first_id.c.claim_id == c.c.id)
        .outerjoin(first, first.c.id == first_id.c.remit_id)
    )
    total = int(conn.execute(select(func.count()).select_from(joined).where(*conds)).scalar() or 0)
    # The page of lines first (newest first, at most ``limit``), then names and reason codes for those
    # claims only: the reason-code lists of every claim in range are not needed to show 5,000 lines.
    page = (
        select(
            c.c.id.label("claim_id"),
            c.c.claim_number,
            c.c.patient_id,
            c.c.payer,
            c.c.practitioner_id,
            c.c.submitted_date,
            cl.c.service_date,
            cl.c.cpt_code,
            cl.c.units,
            cast(cl.c.charge, Float).label("charge"),
            cl.c.line_number,
            status,
            first.c.received_date.label("first_adjudicated"),
            func.coalesce(paid.c.paid, 0.0).label("claim_paid"),
        )
        .select_from(joined.outerjoin(paid, paid.c.claim_id == c.c.id))
        .where(*conds)
        .order_by(cl.c.service_date.desc(), c.c.claim_number, cl.c.line_number)
        .limit(limit)
    ).cte("line_page")
    page_claims = select(page.c.claim_id)
    pc = (
        select(r.c.claim_id, ra.c.carc)
        .join(ra, ra.c.remittance_id == r.c.id)
        .where(ra.c.carc.not_in(NOT_DENIAL_CARCS), r.c.claim_id.in_(page_claims))
        .distinct()
    ).subquery("page_carc_pairs")
    carcs = (
        select(pc.c.claim_id, func.aggregate_strings(pc.c.carc, ", ").label("carcs")).group_by(pc.c.claim_id)
    ).subquery("carcs")
    pr_pairs = (
        select(r.c.claim_id, rr.c.rarc)
        .join(rr, rr.c.remittance_id == r.c.id)
        .where(r.c.claim_id.in_(page_claims))
        .distinct()
    ).subquery("page_rarc_pairs")
    rarcs = (
        select(pr_pairs.c.claim_id, func.aggregate_strings(pr_pairs.c.rarc, ", ").label("rarcs")).group_by(
            pr_pairs.c.claim_id
        )
    ).subquery("rarcs")
    q = (
        select(
            page.c.claim_number,
            page.c.patient_id,
            p.c.mrn,
            _full_name(p.c.first_name, p.c.last_name).label("patient_name"),
            page.c.payer,
            _full_name(pr.c.first_name, pr.c.last_name).label("practitioner"),
            page.c.service_date,
            page.c.cpt_code,
            page.c.units,
            page.c.charge,
            page.c.submitted_date,
            page.c.status,
            page.c.first_adjudicated,
            page.c.claim_paid,
            carcs.c.carcs,
            rarcs.c.rarcs,
        )
        .select_from(
            page.join(p, p.c.id == page.c.patient_id)
            .outerjoin(pr, pr.c.id == page.c.practitioner_id)
            .outerjoin(carcs, carcs.c.claim_id == page.c.claim_id)
            .outerjoin(rarcs, rarcs.c.claim_id == page.c.claim_id)
        )
        .order_by(page.c.service_date.desc(), page.c.claim_number, page.c.line_number)
    )
    return _claim_lines_frame(conn, q, total, rs)


def _claim_lines_stored(f: Filters, rs, stored, denied_only: bool, carc: str | None, cpt_code: str | None, limit: int):
    """The page of ``claim_lines`` from the claim store, with the number of matching lines in every row
    (``total_lines``): each line's claim carries its number, status, first adjudication, paid amount and
    reason codes (``pm_store.claim_table``), so one statement reads the lines and their claims."""
    t, where = stored
    cl, p, pr = s.claim_line, s.patient, s.practitioner
    conds = [where, cl.c.dos_month.between(f.month_from, f.month_to), cl.c.cpt_code.in_(kpis.program_codes(rs, f))]
    if denied_only:
        conds.append(t.c.first_denied == 1)
    if cpt_code:
        conds.append(cl.c.cpt_code == cpt_code)
    if carc:  # the list is "a, b, c": look for ", code, " in ", a, b, c, "
        conds.append((literal(", ") + t.c.carcs + literal(", ")).contains(f", {carc}, ", autoescape=True))
    joined = cl.join(t, t.c.claim_id == cl.c.claim_id)
    q = (
        select(
            t.c.claim_number,
            t.c.patient_id,
            p.c.mrn,
            _full_name(p.c.first_name, p.c.last_name).label("patient_name"),
            t.c.payer,
            _full_name(pr.c.first_name, pr.c.last_name).label("practitioner"),
            cl.c.service_date,
            cl.c.cpt_code,
            cl.c.units,
            cast(cl.c.charge, Float).label("charge"),
            t.c.submitted_date,
            t.c.status,
            t.c.first_adjudicated,
            t.c.paid.label("claim_paid"),
            t.c.carcs,
            t.c.rarcs,
            func.count().over().label("total_lines"),  # every matching line, before the LIMIT
        )
        .select_from(joined.join(p, p.c.id == t.c.patient_id).outerjoin(pr, pr.c.id == t.c.practitioner_id))
        .where(*conds)
        .order_by(cl.c.service_date.desc(), t.c.claim_number, cl.c.line_number)
        .limit(limit)
    )
    return q


def _claim_lines_frame(conn: Connection, q, total: int | None, rs) -> pd.DataFrame:
    """``total`` None: ``q`` carries it as a last column ``total_lines`` (0 when no line matches)."""
    cols = [
        "claim_number",
        "patient_id",
        "mrn",
        "patient_name",
        "payer",
        "practitioner",
        "service_date",
        "cpt_code",
        "units",
        "charge",
        "submitted_date",
        "status",
        "first_adjudicated",
        "claim_paid",
        "carcs",
        "rarcs",
    ]
    rows = conn.execute(q).all()
    columns = list(zip(*rows))  # column-wise (zip in C): 5,000 dicts or Row lookups cost as much as the query
    if total is None:
        total = int(columns.pop()[0]) if rows else 0
    df = pd.DataFrame(dict(zip(cols, map(list, columns))) if rows else None, columns=cols)

    def tidy(x):  # aggregate order differs by database; sort for a stable display
        return ", ".join(sorted(str(x).split(", "))) if isinstance(x, str) and x else ""

    # over lists: mapping an Arrow-backed string column costs ~4 us per value (5,000 lines: 0.04 s)
    df["carcs"] = [tidy(x) for x in df["carcs"].tolist()]
    df["rarcs"] = [tidy(x) for x in df["rarcs"].tolist()]
    df["reason"] = [
        "; ".join(f"{code}: {rs.carc_text(code)}" for code in x.split(", ")) if x else "" for x in df["carcs"].tolist()
    ]
    for col in ("charge", "claim_paid"):
        df[col] = df[col].astype(float).round(2)
    df.attrs["total"] = total
    return _frame(df, "claim_lines")


# --------------------------------------------------------------------------- revenue
def revenue_projection(conn: Connection, f: Filters, months_ahead: int = 6, window: int = 6) -> pd.DataFrame:
    """Actual months of the range plus ``months_ahead`` projected months (``kind`` = actual / projected).

    ``attrs``: growth (enrolled per month), billable_rate, expected_per_billable, collection_ratio.
    """
    actual = kpis.revenue_by_month(conn, f)
    cols = ["month", "kind", "enrolled", "billable_patient_months", "expected", "billed", "paid", "collected"]
    out = actual[["month", "enrolled", "billable_patient_months", "expected", "billed", "paid"]]
    # "collected" of an actual month = paid, once the month is old enough for its claims to have been paid
    aged_cutoff = add_months(f.month_to, -2)
    out = out.assign(
        kind="actual", collected=[p if m <= aged_cutoff else None for m, p in zip(out["month"], out["paid"])]
    )[cols]
    trail = actual.tail(min(window, len(actual)))
    enrolled = trail["enrolled"].astype(float)
    growth = (enrolled.iloc[-1] - enrolled.iloc[0]) / (len(trail) - 1) if len(trail) > 1 else 0.0
    billable_rate = _rate(trail["billable_patient_months"].sum(), enrolled.sum())
    per_billable = _rate(trail["expected"].sum(), trail["billable_patient_months"].sum())
    aged = trail[trail["month"] <= aged_cutoff]
    collection = _rate(aged["paid"].sum(), aged["expected"].sum()) if len(aged) else None
    last_enrolled = float(enrolled.iloc[-1]) if len(trail) else 0.0
    rows = []
    for k in range(1, months_ahead + 1):
        e = max(last_enrolled + growth * k, 0.0)
        b = e * (billable_rate or 0.0)
        x = b * (per_billable or 0.0)
        rows.append(
            {
                "month": add_months(f.month_to, k),
                "kind": "projected",
                "enrolled": round(e, 1),
                "billable_patient_months": round(b, 1),
                "expected": round(x, 2),
                "billed": None,
                "paid": None,
                "collected": round(x * collection, 2) if collection is not None else None,
            }
        )
    df = pd.concat([out, pd.DataFrame(rows, columns=cols)], ignore_index=True) if rows else out
    projected = pd.DataFrame(rows, columns=cols)
    df.attrs.update(
        {
            "growth": growth,
            "billable_rate": billable_rate,
            "expected_per_billable": per_billable,
            "collection_ratio": collection,
            "window": len(trail),
            "months_ahead": months_ahead,
            "projected_expected_total": round(float(projected["expected"].sum()), 2),
            "projected_collected_total": (
                round(float(projected["collected"].sum()), 2) if collection is not None else None
            ),
            "projected_enrolled_end": float(projected["enrolled"].iloc[-1]) if rows else None,
        }
    )
    return _frame(df, "revenue_projection")


# --------------------------------------------------------------------------- suspicious time
# What counts as vague, round, back-dated or implausible is the audit checklist's own data (ccm_core.audit.checklist),
# so the Minutes page and the audit's documentation item flag the same entries; only the "repeated identical
# durations" check (one staff member, one day) is this page's own.
VAGUE_PHRASES = audit.VAGUE_NOTE_PHRASES
MIN_NOTE_CHARS = audit.MIN_NOTE_CHARS
ROUND_MINUTES = audit.ROUND_MINUTES
BACKDATE_DAYS = audit.BACKDATE_DAYS
MONTH_END_DAYS = audit.MONTH_END_DAYS
DAILY_LIMIT_MINUTES = audit.MAX_STAFF_DAY_MINUTES
REPEAT_MIN_ENTRIES = 5  # the same duration this many times by one staff member on one day

TIME_FLAGS = {
    "round_durations": "Round durations",
    "repeated_durations": "Repeated durations",
    "backdated_batch": "Back-dated batches",
    "implausible_daily_total": "Over 8 h in a day",
    "vague_note": "Vague notes",
}
STAFF_LEVEL_FLAGS = ("repeated_durations", "implausible_daily_total")

_def(
    "time_flags",
    "Suspicious time flags",
    f"Time entries matching a pattern: round durations (a patient-month of 2+ entries, every one a multiple of "
    f"{ROUND_MINUTES} min and entered in a batch or {BACKDATE_DAYS}+ days after the fact); back-dated batch (2+ "
    f"entries, at least half of the patient-month's, entered in the last {MONTH_END_DAYS} days of the month or "
    f"later for dates {BACKDATE_DAYS}+ days earlier); repeated durations (one staff member logging the same "
    f"duration {REPEAT_MIN_ENTRIES}+ times in a day); over {DAILY_LIMIT_MINUTES // 60} hours of program time by "
    f"one staff member in a day; vague or missing notes (generic phrases such as 'CCM call completed', or under "
    f"{MIN_NOTE_CHARS} characters)",
    "n/a (counts of entries, patients and staff)",
    "Programs outside the filter; entries without entered_at "
    "cannot be checked for back-dating; with clinic / practitioner / care-manager / payer filters the per-day "
    "checks see only the filtered patients' entries",
    "ccm_core.audit.checklist documentation thresholds; docs/reference/ccm-rules.md §6 "
    "(time-log requirements); OIG and MAC findings on reconstructed time [C4][C5]; docs/reference/kpi-definitions.md §3.3 item 4",
)


def _flagged_entries(f: Filters):
    """(entry_id, kind) for every flagged time entry in range: a UNION of set-based checks."""
    te = s.time_entry
    base = [te.c.service_month.between(f.month_from, f.month_to), te.c.program.in_(f.programs)]
    pids = eng.patient_subquery(f)
    if pids is not None:
        base.append(te.c.patient_id.in_(pids))

    note = func.lower(func.trim(func.coalesce(te.c.note, "")))
    phrases = list(VAGUE_PHRASES) + [x + "." for x in VAGUE_PHRASES]
    vague = or_(note.in_(phrases), func.length(note) < MIN_NOTE_CHARS)  # an empty note is the vaguest
    q_vague = select(te.c.id.label("entry_id"), literal("vague_note").label("kind")).where(*base, vague)

    # month ends of the range as a tiny VALUES table: "entered at month end" without dialect date functions
    cal = (
        values(column("service_month", Integer), column("month_end", Date), name="flag_months")
        .data([(m, month_bounds(m)[1]) for m in f.months()])
        .cte("flag_months")
    )
    entered = date_of(te.c.entered_at)
    backdated = and_(te.c.entered_at.isnot(None), days_between(te.c.service_date, entered) >= BACKDATE_DAYS)
    after_fact = or_(te.c.entry_method == "batch", backdated)
    late_at_month_end = and_(backdated, days_between(cal.c.month_end, entered) >= -(MONTH_END_DAYS - 1))
    is_round = and_(te.c.minutes > 0, te.c.minutes % ROUND_MINUTES == 0)
    per_month = (
        select(
            te.c.patient_id,
            te.c.service_month,
            func.count().label("n"),
            func.sum(case((and_(is_round, after_fact), 1), else_=0)).label("n_round_after"),
            func.sum(case((late_at_month_end, 1), else_=0)).label("n_late"),
        )
        .select_from(te.join(cal, cal.c.service_month == te.c.service_month))
        .where(*base)
        .group_by(te.c.patient_id, te.c.service_month)
    ).subquery("pm_time")
    same_pm = and_(per_month.c.patient_id == te.c.patient_id, per_month.c.service_month == te.c.service_month)
    q_round = (
        select(te.c.id, literal("round_durations"))
        .join(per_month, same_pm)
        .where(*base, per_month.c.n >= 2, per_month.c.n_round_after == per_month.c.n)
    )
    q_batch = (
        select(te.c.id, literal("backdated_batch"))
        .select_from(te.join(per_month, same_pm).join(cal, cal.c.service_month == te.c.service_month))
        .where(*base, late_at_month_end, per_month.c.n_late >= 2, per_month.c.n_late * 2 >= per_month.c.n)
    )

    repeats = (
        select(te.c.staff_id, te.c.service_date, te.c.minutes)
        .where(*base)
        .group_by(te.c.staff_id, te.c.service_date, te.c.minutes)
        .having(func.count() >= REPEAT_MIN_ENTRIES)
    ).subquery("rep")
    q_repeat = (
        select(te.c.id, literal("repeated_durations"))
        .join(
            repeats,
            and_(
                repeats.c.staff_id == te.c.staff_id,
                repeats.c.service_date == te.c.service_date,
                repeats.c.minutes == te.c.minutes,
            ),
        )
        .where(*base)
    )

    heavy = (
        select(te.c.staff_id, te.c.service_date)
        .where(*base)
        .group_by(te.c.staff_id, te.c.service_date)
        .having(func.sum(te.c.minutes) > DAILY_LIMIT_MINUTES)
    ).subquery("heavy")
    q_heavy = (
        select(te.c.id, literal("implausible_daily_total"))
        .join(heavy, and_(heavy.c.staff_id == te.c.staff_id, heavy.c.service_date == te.c.service_date))
        .where(*base)
    )
    return union_all(q_vague, q_round, q_repeat, q_batch, q_heavy).subquery("flagged")


def time_flag_summary(conn: Connection, f: Filters) -> pd.DataFrame:
    """Per kind of flag: time entries, patients, staff members and minutes involved."""
    te = s.time_entry
    fl = _flagged_entries(f)
    q = (
        select(
            fl.c.kind,
            func.count(distinct(te.c.id)).label("entries"),
            func.count(distinct(te.c.patient_id)).label("patients"),
            func.count(distinct(te.c.staff_id)).label("staff"),
            func.coalesce(func.sum(te.c.minutes), 0).label("minutes"),
        )
        .join(te, te.c.id == fl.c.entry_id)
        .group_by(fl.c.kind)
    )
    got = {r.kind: r for r in conn.execute(q)}
    rows = [
        {
            "kind": k,
            "label": label,
            "entries": int(got[k].entries) if k in got else 0,
            "patients": int(got[k].patients) if k in got else 0,
            "staff": int(got[k].staff) if k in got else 0,
            "minutes": int(got[k].minutes) if k in got else 0,
        }
        for k, label in TIME_FLAGS.items()
    ]
    return _frame(
        pd.DataFrame(rows, columns=["kind", "label", "entries", "patients", "staff", "minutes"]), "time_flags"
    )


def time_flags(conn: Connection, f: Filters, limit: int = 3000) -> pd.DataFrame:
    """The flags with their evidence: per patient-month for round durations, back-dated batches and vague notes;
    per staff member and day for repeated durations and daily totals.

    ``attrs["total"]`` = number of flag rows before ``limit``.
    """
    te, p, st = s.time_entry, s.patient, s.staff
    fl = _flagged_entries(f)
    staff_name = _full_name(st.c.first_name, st.c.last_name)
    patient_level = fl.c.kind.not_in(STAFF_LEVEL_FLAGS)
    entered = date_of(te.c.entered_at)
    common = [
        func.count(distinct(te.c.id)).label("entries"),
        func.coalesce(func.sum(te.c.minutes), 0).label("minutes"),
        func.min(te.c.service_date).label("first_date"),
        func.max(te.c.service_date).label("last_date"),
        func.min(te.c.minutes).label("min_minutes"),
        func.max(te.c.minutes).label("max_minutes"),
        func.count(distinct(te.c.patient_id)).label("patients"),
        func.min(te.c.note).label("example_note"),
        func.count(distinct(te.c.staff_id)).label("n_staff"),
        func.max(entered).label("entered_on"),
    ]
    frm = fl.join(te, te.c.id == fl.c.entry_id).join(st, st.c.id == te.c.staff_id)
    q_patient = (
        select(
            fl.c.kind,
            te.c.service_month.label("month"),
            func.min(staff_name).label("staff"),
            te.c.patient_id,
            func.min(p.c.mrn).label("mrn"),
            func.min(_full_name(p.c.first_name, p.c.last_name)).label("patient_name"),
            literal(None).label("day"),
            *common,
        )
        .select_from(frm.join(p, p.c.id == te.c.patient_id))
        .where(patient_level)
        .group_by(fl.c.kind, te.c.service_month, te.c.patient_id)
    )
    q_staff = (
        select(
            fl.c.kind,
            te.c.service_month.label("month"),
            func.min(staff_name).label("staff"),
            literal(None).label("patient_id"),
            literal(None).label("mrn"),
            literal(None).label("patient_name"),
            te.c.service_date.label("day"),
            *common,
        )
        .select_from(frm)
        .where(~patient_level)
        .group_by(fl.c.kind, te.c.service_month, te.c.staff_id, te.c.service_date)
    )
    cols = [
        "kind",
        "month",
        "staff",
        "patient_id",
        "mrn",
        "patient_name",
        "day",
        "entries",
        "minutes",
        "first_date",
        "last_date",
        "min_minutes",
        "max_minutes",
        "patients",
        "example_note",
        "n_staff",
        "entered_on",
    ]
    raw = pd.DataFrame(
        [*conn.execute(q_patient).mappings().all(), *conn.execute(q_staff).mappings().all()], columns=cols
    )
    out_cols = [
        "flag",
        "kind",
        "service_date",
        "staff",
        "patient_id",
        "mrn",
        "patient_name",
        "entries",
        "minutes",
        "evidence",
    ]
    if raw.empty:
        df = pd.DataFrame(columns=out_cols)
        df.attrs["total"] = 0
        return _frame(df, "time_flags")
    for col in ("day", "first_date", "last_date", "entered_on"):
        raw[col] = pd.to_datetime(raw[col]).dt.date
    raw["staff"] = [name if n == 1 else f"{n} staff members" for name, n in zip(raw["staff"], raw["n_staff"])]
    raw["flag"] = raw["kind"].map(TIME_FLAGS)
    raw["service_date"] = [
        d if k in STAFF_LEVEL_FLAGS else last for k, d, last in zip(raw["kind"], raw["day"], raw["last_date"])
    ]
    raw["evidence"] = [_evidence(r) for r in raw.itertuples()]
    order = {k: i for i, k in enumerate(TIME_FLAGS)}
    raw["_o"] = raw["kind"].map(order)
    raw = raw.sort_values(
        ["_o", "service_date", "staff", "patient_id"], ascending=[True, False, True, True], na_position="last"
    )
    df = raw[out_cols].reset_index(drop=True)
    total = len(df)
    df = df.head(limit).copy()
    df["patient_id"] = df["patient_id"].astype("Int64")
    df.attrs["total"] = total
    return _frame(df, "time_flags")


def _evidence(r) -> str:
    span = f"{r.first_date:%b %d}" if r.first_date == r.last_date else f"{r.first_date:%b %d} to {r.last_date:%b %d}"
    if r.kind == "vague_note":
        note = (r.example_note or "").strip()
        return (
            f'{r.entries} entr{"y" if r.entries == 1 else "ies"} ({r.minutes} min, {span}) with notes like "{note}"'
            if note
            else f"{r.entries} entries ({r.minutes} min, {span}) with no note"
        )
    if r.kind == "round_durations":
        return (
            f"all {r.entries} entries are multiples of {ROUND_MINUTES} min, entered in a batch or after the fact "
            f"({r.min_minutes}-{r.max_minutes} min each, {r.minutes} min total, {span})"
        )
    if r.kind == "repeated_durations":
        return f"{r.entries} entries of exactly {r.min_minutes} min on {r.day:%b %d} for {r.patients} patients"
    if r.kind == "backdated_batch":
        return (
            f"{r.entries} entries for {span} entered at month end ({r.entered_on:%b %d}), {BACKDATE_DAYS}+ days "
            "after the service date"
        )
    return f"{r.minutes} min ({r.minutes / 60:.1f} h) logged on {r.day:%b %d} across {r.patients} patients"
