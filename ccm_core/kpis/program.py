"""Every KPI the dashboard shows: one function each, each with its written definition.

Formulas follow ``docs/reference/kpi-definitions.md`` (HFMA MAP Keys and
Claim Integrity Task Force for denials, CureMD / CircleLink / ThoroughCare for
the CCM program measures).  Aggregation happens in SQL; a function returns a
``KpiResult`` (one number) or a small DataFrame whose ``attrs["definition"]``
is its ``KpiDefinition``.  Month-level KPIs report on ``filters.month_to``;
trend functions return one row per month of ``filters.months()``.

Minutes and codes always come from ``ccm_core.engine.patient_month`` (the patient-month);
nothing here recounts a time entry.
"""

from __future__ import annotations

import datetime as dt
import math
from dataclasses import dataclass

import pandas as pd
from sqlalchemy import (
    Date,
    Float,
    Integer,
    and_,
    case,
    cast,
    distinct,
    exists,
    extract,
    func,
    literal,
    null,
    or_,
    select,
    true,
    type_coerce,
    union,
    union_all,
)
from sqlalchemy.engine import Connection
from sqlalchemy.sql.elements import ColumnElement

from ccm_core import rules as rules_mod
from ccm_core.engine import compliance, read
from ccm_core.engine import patient_month as eng
from ccm_core.engine.filters import Filters
from ccm_core.engine.sql import NOT_DENIAL_CARCS, days_between, is_denial, is_duplicate
from ccm_core.kpis.definitions import Definitions, KpiResult
from ccm_core.kpis.definitions import rate as _rate
from ccm_core.storage import schema as s
from ccm_core.storage import stored as pm_store
from ccm_core.storage.db import add_months, month_bounds, month_int
from ccm_core.storage.db import month_end as _month_end

MINUTE_BANDS = (
    (0, 0, "0"),
    (1, 9, "1-9"),
    (10, 14, "10-14"),
    (15, 19, "15-19"),
    (20, 39, "20-39"),
    (40, 59, "40-59"),
    (60, None, "60+"),
)


# --------------------------------------------------------------------------- definitions
D = Definitions()
_def = D.define  # the shared implementation (definitions.Definitions), short for the table below
_frame = D.frame


_def(
    "eligible_population",
    "Eligible population",
    "Patients with 2+ distinct chronic conditions (CCW condition, else AHRQ-chronic ICD-10 category) on active "
    "diagnoses, a payer in the eligible-payer list and a visit in the 12 months before month end; a practitioner's "
    "eligibility override replaces the condition test",
    "n/a (a count as of the last day of the month)",
    "Resolved diagnoses; payers outside rules.eligible_payers (default Medicare Part B and Medicare Advantage); patients with no visit "
    "in 12 months (they need an initiating visit first)",
    "docs/reference/kpi-definitions.md §3.2 [C1][C2][C8][O1]; docs/reference/ccm-rules.md §3.1",
)
_def(
    "dollars_on_hold",
    "Dollars on hold",
    "Expected payment (fee schedule value of the codes the counted minutes support) of the month's patient-months "
    "on hold: not billed yet, minutes support a code, and a prerequisite fails (eligibility, initiating visit, "
    "consent in force, care plan, conflicting claim; engine.read.billing_status_select)",
    "n/a (dollars in the last month of the range; the numerator, extra.patient_months, counts the months on hold)",
    "Months already billed, months whose minutes support no code, months ready to bill",
    "docs/reference/ccm-rules.md §3, §4, §5, §10; docs/rules-and-tests.md (billing status)",
    "dollars",
)
_def(
    "enrolled_patients",
    "Enrolled patients",
    "Patients whose latest enrollment event on or before month end is 'enrolled'",
    "n/a (count)",
    "Declined, disenrolled and ineligible patients",
    "docs/reference/kpi-definitions.md §3.2 [S50]",
)
_def(
    "enrollment_rate",
    "Enrollment rate",
    "Active enrolled patients who are in the eligible population",
    "Eligible population as of month end",
    "Enrolled patients outside the eligible population are reported separately (extra.enrolled_not_eligible)",
    "docs/reference/kpi-definitions.md §3.2 [S50]",
    "rate",
)
_def(
    "consent_rate",
    "Consent rate",
    "Patients with an accepted, dated consent in the period",
    "Patients offered CCM in the period (a consent decision dated in the period, or a consented/declined "
    "enrollment event in the period)",
    "Undated consents count as offered but not consented",
    "docs/reference/ccm-rules.md §4 (dashboard note)",
    "rate",
)
_def(
    "consent_conversion",
    "Consent conversion",
    "Patients with an accepted, dated consent in the period",
    "Unique patients reached in the period (reached, consented or declined event, or a consent in the period)",
    "Patients only outreached (never reached)",
    "docs/reference/kpi-definitions.md §3.2 CircleLink [O1]",
    "rate",
)
_def(
    "consent_completeness",
    "Consent completeness by element",
    "Accepted consents with the element documented",
    "Accepted consents dated in the period or belonging to patients enrolled at month end",
    "Declined consents",
    "docs/reference/ccm-rules.md §4; docs/reference/kpi-definitions.md §3.3 item 6",
    "rate",
)
_def(
    "consent_completeness_by_staff",
    "Consent completeness by staff member",
    "Accepted consents taken by the staff member with every required element (date, method, cost-sharing, "
    "one practitioner, right to stop, tied to the current billing practitioner)",
    "Accepted consents taken by the staff member (same population as by element)",
    "Declined consents",
    "docs/reference/ccm-rules.md §4",
    "rate",
)
_def(
    "decline_mix",
    "Decline mix",
    "Patients declining (or found ineligible) in the month with this reason",
    "All patients declining or found ineligible in the month",
    "Events of other programs",
    "docs/reference/kpi-definitions.md §3.2 ThoroughCare [S5]",
    "rate",
)
_def(
    "disenrollment_mix",
    "Disenrollment mix",
    "Patients disenrolled in the month with this reason",
    "All patients disenrolled in the month",
    "Events of other programs",
    "docs/reference/kpi-definitions.md §3.2 [S5]",
    "rate",
)
_def(
    "retention",
    "Retention by enrollment cohort",
    "Patients of the cohort with no disenrollment within N months of their first enrollment month",
    "Patients whose first enrollment event falls in the cohort month (horizons not yet observable are blank)",
    "Re-enrollment after a disenrollment is not counted back",
    "docs/reference/kpi-definitions.md §3.2 [S5][S84]",
    "rate",
)
_def(
    "funnel",
    "Enrollment funnel",
    "Distinct patients reaching each stage in the period (eligible = as of month end; outreached = an "
    "outreach event or reached; reached and consented = consent conversion's denominator and numerator; "
    "enrolled = an enrolled event; first billable = patients enrolled in the period whose minutes supported a "
    "code in a month of the period)",
    "n/a (counts)",
    "Events of other programs",
    "docs/reference/kpi-definitions.md §3.2; PRODUCT.md capability 1",
)
_def(
    "billable_rate",
    "Billable (completion) rate",
    "Active enrolled patients whose counted minutes supported a CCM code this month (any track)",
    "Active enrolled patients at month end",
    "Minutes that do not count (non-clinical, inpatient, pre-consent, other program)",
    "docs/reference/kpi-definitions.md §3.2 CureMD [S50]",
    "rate",
)
_def(
    "minutes_per_enrolled",
    "Minutes per enrolled patient",
    "Counted CCM minutes of active enrolled patients this month (mean; median and bands 0/1-9/10-14/15-19/"
    "20-39/40-59/60+ alongside)",
    "Active enrolled patients at month end (0 minutes included)",
    "Minutes that do not count",
    "docs/reference/kpi-definitions.md §3.2 [C8][C7]",
    "minutes",
)
_def(
    "addon_capture",
    "Add-on capture",
    "Billable enrolled patients with 40+ counted minutes (99439 x1); extra.ge60 = 60+ (x2)",
    "Billable enrolled patients this month",
    "Non-billable patients",
    "docs/reference/kpi-definitions.md §3.2 [C7]; 99439 cap docs/reference/ccm-rules.md §1",
    "rate",
)
_def(
    "near_threshold",
    "Near-threshold worklist",
    "Active enrolled patients at 15-19 counted minutes (tier 1) or 10-14 (tier 2) in the month of the as-of "
    "date, with minutes needed, days left, expected dollars at stake (99490 fee) and last contact",
    "n/a (a list)",
    "Patients already at 20+ minutes",
    "docs/reference/kpi-definitions.md §3.2 CureMD 'Days Left' [S50]",
)
_def(
    "pacing_forecast",
    "Month-end forecast of billable patient-months",
    "Billable so far (minutes reached the threshold by the data date) + patients who can still bill (enrolled "
    "that day, not yet billable) x the share of them the 3 months before converted by month end from the same "
    "day; range from the lowest and highest share; whole patients, never above so far + can still bill",
    "n/a (projection; the cap is so far + can still bill)",
    "Patients who enroll after the data date; months with no data yet (straight line by days, capped)",
    "Our design; thresholds docs/reference/ccm-rules.md §2; backtest in docs/weekly-read.md",
)
_def(
    "billable_patient_months",
    "Billable patient-months",
    "Patient-months whose counted minutes support a CCM code (any track), including patients who left the "
    "program later that month",
    "n/a (count)",
    "Patient-months with no supported code",
    "docs/reference/ccm-rules.md §2; the same count on Overview, Minutes and Revenue",
)
_def(
    "minutes_per_care_manager",
    "Minutes per care manager",
    "Counted CCM minutes of the care manager's assigned active enrolled patients this month",
    "The care manager's active enrolled panel",
    "Unassigned patients are grouped as 'unassigned'",
    "docs/reference/kpi-definitions.md §3.2; PRODUCT.md capability 2",
    "minutes",
)
_def(
    "revenue",
    "Revenue expected / billed / paid",
    "Expected = national fee of the service year x units the minutes support (best track); billed = charges "
    "on CCM/PCM/APCM claim lines; paid = remittance paid amounts of those claims",
    "Per enrolled patient: active enrolled patients at month end",
    "Claims replaced by a frequency-7 claim (their payments and reversals still count as paid)",
    "docs/reference/kpi-definitions.md §3.2 CureMD [S50]",
    "dollars",
)
_def(
    "revenue_leakage",
    "Revenue leakage by cause",
    "Under-billing (supported minus billed value), not billed (closed months with supported codes and no CCM "
    "claim), denials not recovered (fee value of initially denied, never-paid patient-months), near misses "
    "(15-19 minutes, value of 99490), conflicts (billed fee value on months with a same-month conflict)",
    "n/a (dollars)",
    "The current month for 'not billed' (claims go out after month end)",
    "Our design from PRODUCT.md; fees docs/reference/ccm-rules.md §1",
    "dollars",
)
_def(
    "initial_denial_rate",
    "Initial denial rate",
    "Claims whose first adjudication (adjudication_seq 1), received in the month, was a denial (status 4, or "
    "zero paid with a non-contractual adjustment); by dollars: their gross charges",
    "Average monthly claims (or gross charges) submitted in the 3 months before the month",
    "CARC 18 (exact duplicate) denials; later adjudications; claims without codes of the selected programs",
    "HFMA Claim Integrity Task Force [K5][K6]; Epic CARC 18 convention [K15]",
    "rate",
)
_def(
    "first_pass_resolution",
    "First-pass resolution rate",
    "Claims whose first adjudication in the month paid or moved to patient responsibility",
    "Claims with a first adjudication in the month (adjudicated, so pending claims do not lower it)",
    "Later adjudications",
    "docs/reference/kpi-definitions.md §3.1 OpsDog [K10]",
    "rate",
)
_def(
    "carc_pareto",
    "Denial reasons (CARC) Pareto",
    "Denied remittances carrying the CARC in the period",
    "All denied remittances in the period",
    "Contractual (45), sequestration (253) and patient-share (1, 2, 3) adjustments, which are not denial reasons",
    "X12 CARC list; docs/reference/ccm-rules.md §7.2",
    "rate",
)
_def(
    "rarc_pareto",
    "Remark codes (RARC) Pareto",
    "Denied remittances carrying the RARC in the period",
    "All denied remittances in the period",
    "Paid remittances",
    "WPC RARC list; docs/reference/ccm-rules.md §7.3",
    "rate",
)
_def(
    "overturn_rate",
    "Denial overturn rate",
    "Initial denials overturned (appeal outcome overturned/partial, or paid on a later adjudication)",
    "Initial denials appealed; extra.of_all_denials uses all initial denials",
    "CARC 18 duplicates",
    "HFMA Claim Integrity Task Force [K5] (exact formula UNVERIFIED; both versions shown)",
    "rate",
)
_def(
    "days_to_payment",
    "Days to payment",
    "Median days from claim submission to the first paid remittance",
    "Claims whose first payment was received in the period",
    "Denied-and-never-paid claims",
    "docs/reference/kpi-definitions.md §3.1 (time to resolution) [K5]",
    "days",
)
_def(
    "denial_trend",
    "Denial trend by month",
    "Initial denials per month (count and charges)",
    "Average of the 3 months of submissions before each month",
    "CARC 18 duplicates",
    "HFMA Claim Integrity Task Force [K5][K6]",
    "rate",
)


def _opt(x) -> float | None:
    return None if x is None or pd.isna(x) else float(x)


# --------------------------------------------------------------------------- month arithmetic in SQL
def _month_index(date_col):
    """year * 12 + month - 1 of a date column: month arithmetic in SQL without dialect functions."""
    return cast(extract("year", date_col), Integer) * 12 + cast(extract("month", date_col), Integer) - 1


def _index_of(month: int) -> int:
    return (month // 100) * 12 + month % 100 - 1


# --------------------------------------------------------------------------- shared building blocks
def rules_in_force(conn: Connection) -> rules_mod.RuleSet:
    """The rules in force for this database, and the connection tuned for the engine's statement."""
    eng.prepare(conn)
    return rules_mod.load(conn)


def _pm(conn: Connection, f: Filters, rs: rules_mod.RuleSet):
    """The patient-month for ``f``: the stored rows when current (``pm_store``), else the engine's statement.

    A MATERIALIZED CTE, not a subquery: PostgreSQL otherwise re-runs the whole patient-month
    statement per outer row when a KPI joins or IN-filters it (near-threshold list: 36 s -> <2 s at 50k).
    """
    return pm_store.patient_month_source(conn, f, rs).cte("pm").prefix_with("MATERIALIZED", dialect="postgresql")


def _latest_status(f: Filters, as_of: dt.date, tag: str = ""):
    """Each filtered patient's latest enrollment event on or before ``as_of`` (programs of the filter);
    ``tag`` suffixes its CTE's name (several in one statement)."""
    ee, p = s.enrollment_event, s.patient
    spans = compliance.enrollment_spans(f.programs, ee.c.event_date <= as_of, f"enrollment_spans{tag}")
    return (
        select(spans.c.patient_id, spans.c.program, spans.c.status, spans.c.reason)
        .select_from(spans.join(p, p.c.id == spans.c.patient_id))
        .where(compliance.in_span(spans, as_of), f.patient_clause(p))
        .subquery()
    )


def _enrolled(conn: Connection, f: Filters, as_of: dt.date, tag: str = ""):
    """Distinct patient ids active (latest status 'enrolled') as of a date (the stored month ends when current).
    ``tag`` suffixes the names of the CTEs and subqueries inside, so several fit in one statement."""
    stored = pm_store.enrolled_select(conn, f, as_of, tag)
    if stored is not None:
        return stored.subquery(f"enrolled{tag}")
    ls = _latest_status(f, as_of, tag)
    return select(ls.c.patient_id).where(ls.c.status == "enrolled").distinct().subquery(f"enrolled{tag}")


def program_codes(rs: rules_mod.RuleSet, f: Filters) -> list[str]:
    """The billing codes of the filter's programs (CCM, PCM, ...), per the shipped codes table."""
    return [c.code for c in rs.codes.values() if c.family in f.programs]


def claim_where(f: Filters, rs: rules_mod.RuleSet, c=s.claim, p=s.patient):
    """Claim-level filters: clinic, billing NPI on the claim, care manager, payer on the claim, program codes."""
    codes = program_codes(rs, f)
    cl = s.claim_line
    return and_(
        f.clause(func.coalesce(c.c.clinic_id, p.c.clinic_id), c.c.practitioner_id, p.c.care_manager_id, c.c.payer),
        exists().where(cl.c.claim_id == c.c.id, cl.c.cpt_code.in_(codes)),
    )


# --------------------------------------------------------------------------- eligibility
def eligible_patients_select(
    conn: Connection, f: Filters, rs: rules_mod.RuleSet | None = None, as_of: dt.date | None = None
):
    """SELECT of eligible patient ids as of ``as_of`` (default: end of ``f.month_to``): the stored month end
    when current, else ``compliance.eligibility_select`` (outreach) at that date."""
    rs = rs or rules_mod.load(conn)
    as_of = as_of or _month_end(f.month_to)
    stored = pm_store.eligible_select(conn, f, rs, as_of)
    if stored is not None:
        return stored
    p = s.patient
    patients = (
        select(p.c.id).where(f.patient_clause(p))
        if (f.clinic_ids or f.practitioner_ids or f.care_manager_ids or f.payers)
        else None
    )
    return compliance.eligibility_select(conn, rs, compliance.point_cte(as_of), [], outreach=True, patients=patients)


def eligible_population(conn: Connection, f: Filters) -> KpiResult:
    """Patients eligible for CCM at the end of ``f.month_to`` (definition ``D["eligible_population"]``)."""
    rs = rules_in_force(conn)
    q = eligible_patients_select(conn, f, rs).subquery()
    n = int(conn.execute(select(func.count()).select_from(q)).scalar() or 0)
    return KpiResult(
        D["eligible_population"],
        n,
        n,
        None,
        {"as_of": _month_end(f.month_to), "eligible_payers": list(rs.eligible_payers)},
    )


# --------------------------------------------------------------------------- enrollment and consent
def enrolled_patients(conn: Connection, f: Filters) -> KpiResult:
    """Patients enrolled at the end of ``f.month_to``, with the month before in ``extra`` (``D["enrolled_patients"]``)."""
    as_of = _month_end(f.month_to)
    n = int(conn.execute(select(func.count()).select_from(_enrolled(conn, f, as_of))).scalar() or 0)
    prev_as_of = _month_end(add_months(f.month_to, -1))
    prev = int(conn.execute(select(func.count()).select_from(_enrolled(conn, f, prev_as_of))).scalar() or 0)
    return KpiResult(D["enrolled_patients"], n, n, None, {"as_of": as_of, "previous_month": prev})


def enrollment_rate(conn: Connection, f: Filters) -> KpiResult:
    """Enrolled ÷ eligible at the end of ``f.month_to`` (``D["enrollment_rate"]``)."""
    rs = rules_in_force(conn)
    as_of = _month_end(f.month_to)
    elig = eligible_patients_select(conn, f, rs).subquery("elig")
    enr = _enrolled(conn, f, as_of)
    den = int(conn.execute(select(func.count()).select_from(elig)).scalar() or 0)
    num = int(
        conn.execute(select(func.count()).select_from(enr.join(elig, elig.c.patient_id == enr.c.patient_id))).scalar()
        or 0
    )
    total = int(conn.execute(select(func.count()).select_from(enr)).scalar() or 0)
    return KpiResult(D["enrollment_rate"], _rate(num, den), num, den, {"enrolled_not_eligible": total - num})


def _period(f: Filters) -> tuple[dt.date, dt.date]:
    return month_bounds(f.month_from)[0], month_bounds(f.month_to)[1]


def _consented_in_period(f: Filters):
    cn, p = s.consent, s.patient
    start, end = _period(f)
    return (
        select(cn.c.patient_id)
        .join(p, p.c.id == cn.c.patient_id)
        .where(
            cn.c.decision == "accepted",
            cn.c.consent_date.between(start, end),
            cn.c.program.in_(f.programs),
            f.patient_clause(p),
        )
    )


def consent_rate(conn: Connection, f: Filters) -> KpiResult:
    """Accepted, dated consents ÷ patients offered CCM in the period (``D["consent_rate"]``)."""
    cn, ee, p = s.consent, s.enrollment_event, s.patient
    start, end = _period(f)
    consented = _consented_in_period(f)
    offered = consented.union(
        select(cn.c.patient_id)
        .join(p, p.c.id == cn.c.patient_id)
        .where(cn.c.consent_date.between(start, end), cn.c.program.in_(f.programs), f.patient_clause(p)),
        select(ee.c.patient_id)
        .join(p, p.c.id == ee.c.patient_id)
        .where(
            ee.c.status.in_(("consented", "declined")),
            ee.c.event_date.between(start, end),
            ee.c.program.in_(f.programs),
            f.patient_clause(p),
        ),
    ).subquery()
    num = int(conn.execute(select(func.count(distinct(consented.subquery().c.patient_id)))).scalar() or 0)
    den = int(conn.execute(select(func.count()).select_from(offered)).scalar() or 0)
    return KpiResult(D["consent_rate"], _rate(num, den), num, den)


def _reached_in_period(f: Filters):
    """Patients reached in the period: a reached, consented or declined event, or an accepted consent, dated in it.

    The funnel's 'reached' stage and consent conversion's denominator are this one population."""
    return union(*_reached_parts(f))


def _reached_parts(f: Filters, statuses: tuple[str, ...] = ("reached", "consented", "declined")) -> list:
    ee, p = s.enrollment_event, s.patient
    start, end = _period(f)
    return [
        _consented_in_period(f),
        select(ee.c.patient_id)
        .join(p, p.c.id == ee.c.patient_id)
        .where(
            ee.c.status.in_(statuses),
            ee.c.event_date.between(start, end),
            ee.c.program.in_(f.programs),
            f.patient_clause(p),
        ),
    ]


def consent_conversion(conn: Connection, f: Filters) -> KpiResult:
    """Consented ÷ patients reached by outreach in the filter's months (``D["consent_conversion"]``)."""
    consented = _consented_in_period(f)
    reached = _reached_in_period(f).subquery()
    num = int(conn.execute(select(func.count(distinct(consented.subquery().c.patient_id)))).scalar() or 0)
    den = int(conn.execute(select(func.count()).select_from(reached)).scalar() or 0)
    return KpiResult(D["consent_conversion"], _rate(num, den), num, den)


CONSENT_ELEMENTS = {
    "dated": lambda cn, p: cn.c.consent_date.isnot(None),
    "method recorded": lambda cn, p: cn.c.method.isnot(None),
    "staff recorded": lambda cn, p: cn.c.staff_id.isnot(None),
    "cost-sharing explained": lambda cn, p: cn.c.disclosed_cost_sharing == true(),
    "one practitioner explained": lambda cn, p: cn.c.disclosed_one_practitioner == true(),
    "right to stop explained": lambda cn, p: cn.c.disclosed_right_to_stop == true(),
    "information sharing explained": lambda cn, p: cn.c.disclosed_info_sharing == true(),
    "tied to current billing practitioner": lambda cn, p: cn.c.practitioner_id == p.c.billing_practitioner_id,
}
REQUIRED_CONSENT_ELEMENTS = (
    "dated",
    "method recorded",
    "cost-sharing explained",
    "one practitioner explained",
    "right to stop explained",
    "tied to current billing practitioner",
)


def _consent_population(conn: Connection, f: Filters):
    cn, p = s.consent, s.patient
    start, end = _period(f)
    enr = _enrolled(conn, f, end)
    return (
        cn.join(p, p.c.id == cn.c.patient_id),
        and_(
            cn.c.decision == "accepted",
            cn.c.program.in_(f.programs),
            f.patient_clause(p),
            or_(cn.c.consent_date.between(start, end), cn.c.patient_id.in_(select(enr.c.patient_id))),
        ),
    )


def _flag(cond):
    return func.coalesce(func.sum(case((cond, 1), else_=0)), 0)


def consent_completeness(conn: Connection, f: Filters) -> pd.DataFrame:
    """One row per consent element: documented, total, rate."""
    cn, p = s.consent, s.patient
    frm, where = _consent_population(conn, f)
    cols = [_flag(fn(cn, p)).label(f"e{i}") for i, fn in enumerate(CONSENT_ELEMENTS.values())]
    row = conn.execute(select(func.count().label("total"), *cols).select_from(frm).where(where)).one()
    total = int(row.total)
    out = pd.DataFrame(
        {"element": list(CONSENT_ELEMENTS), "documented": [int(row[i + 1]) for i in range(len(CONSENT_ELEMENTS))]}
    )
    out["total"] = total
    out["rate"] = [(_rate(d, total)) for d in out["documented"]]
    out["required"] = out["element"].isin(REQUIRED_CONSENT_ELEMENTS)
    return _frame(out, "consent_completeness")


def consent_completeness_by_staff(conn: Connection, f: Filters) -> pd.DataFrame:
    """Per staff member: accepted consents taken and the share with every required element (``D["consent_completeness_by_staff"]``)."""
    cn, p, st = s.consent, s.patient, s.staff
    frm, where = _consent_population(conn, f)
    complete = and_(*[CONSENT_ELEMENTS[k](cn, p) for k in REQUIRED_CONSENT_ELEMENTS])
    name = func.coalesce(st.c.first_name, "") + literal(" ") + func.coalesce(st.c.last_name, "(not recorded)")
    q = (
        select(
            cn.c.staff_id, name.label("staff_name"), func.count().label("consents"), _flag(complete).label("complete")
        )
        .select_from(frm.outerjoin(st, st.c.id == cn.c.staff_id))
        .where(where)
        .group_by(cn.c.staff_id, st.c.first_name, st.c.last_name)
        .order_by(cn.c.staff_id)
    )
    df = pd.DataFrame(conn.execute(q).mappings().all(), columns=["staff_id", "staff_name", "consents", "complete"])
    df["rate"] = [(_rate(a, b)) for a, b in zip(df["complete"], df["consents"])]
    return _frame(df, "consent_completeness_by_staff")


def _reason_mix(conn: Connection, f: Filters, statuses: tuple[str, ...], key: str) -> pd.DataFrame:
    ee, p = s.enrollment_event, s.patient
    start, end = _period(f)
    month = (
        cast(extract("year", ee.c.event_date), Integer) * 100 + cast(extract("month", ee.c.event_date), Integer)
    ).label("month")
    reason = func.coalesce(ee.c.reason, "(no reason recorded)").label("reason")
    q = (
        select(month, reason, func.count(distinct(ee.c.patient_id)).label("patients"))
        .join(p, p.c.id == ee.c.patient_id)
        .where(
            ee.c.status.in_(statuses),
            ee.c.event_date.between(start, end),
            ee.c.program.in_(f.programs),
            f.patient_clause(p),
        )
        .group_by(month, reason)
        .order_by(month, reason)
    )
    df = pd.DataFrame(conn.execute(q).mappings().all(), columns=["month", "reason", "patients"])
    if not df.empty:
        df["month"] = df["month"].astype(int)
        df["share"] = df["patients"] / df.groupby("month")["patients"].transform("sum")
    else:
        df["share"] = pd.Series(dtype=float)
    return _frame(df, key)


def decline_mix(conn: Connection, f: Filters) -> pd.DataFrame:
    """Per month and reason: patients who declined or were found ineligible, and their share of the month."""
    return _reason_mix(conn, f, ("declined", "ineligible"), "decline_mix")


def disenrollment_mix(conn: Connection, f: Filters) -> pd.DataFrame:
    """Patients disenrolled in the month, by reason (``D["disenrollment_mix"]``)."""
    return _reason_mix(conn, f, ("disenrolled",), "disenrollment_mix")


def retention_by_cohort(conn: Connection, f: Filters, horizons: tuple[int, ...] = (1, 3, 6, 12)) -> pd.DataFrame:
    """Cohort = month of the first 'enrolled' event (within the filter range); share still enrolled after N months."""
    ee, p = s.enrollment_event, s.patient
    first = (
        select(ee.c.patient_id, func.min(ee.c.event_date).label("enrolled_on"))
        .join(p, p.c.id == ee.c.patient_id)
        .where(ee.c.status == "enrolled", ee.c.program.in_(f.programs), f.patient_clause(p))
        .group_by(ee.c.patient_id)
    ).subquery("first_enrolled")
    left = (
        select(ee.c.patient_id, func.min(ee.c.event_date).label("left_on"))
        .join(first, first.c.patient_id == ee.c.patient_id)
        .where(ee.c.status.in_(("disenrolled",)), ee.c.event_date >= first.c.enrolled_on, ee.c.program.in_(f.programs))
        .group_by(ee.c.patient_id)
    ).subquery("first_left")
    cohort_idx = _month_index(first.c.enrolled_on)
    left_idx = _month_index(left.c.left_on)
    cols = [(cohort_idx).label("cohort_idx"), func.count().label("enrolled")]
    for h in horizons:
        cols.append(_flag(or_(left.c.left_on.is_(None), left_idx - cohort_idx > h)).label(f"active_{h}"))
    lo, hi = _index_of(f.month_from), _index_of(f.month_to)
    q = (
        select(*cols)
        .select_from(first.outerjoin(left, left.c.patient_id == first.c.patient_id))
        .where(cohort_idx.between(lo, hi))
        .group_by(cohort_idx)
        .order_by(cohort_idx)
    )
    rows = conn.execute(q).mappings().all()
    out = []
    for r in rows:
        idx = int(r["cohort_idx"])
        rec = {"cohort": (idx // 12) * 100 + idx % 12 + 1, "enrolled": int(r["enrolled"])}
        for h in horizons:
            observable = idx + h <= _index_of(f.month_to)
            rec[f"retained_{h}m"] = _rate(r[f"active_{h}"], r["enrolled"]) if observable else None
        out.append(rec)
    df = pd.DataFrame(out, columns=["cohort", "enrolled"] + [f"retained_{h}m" for h in horizons])
    return _frame(df, "retention")


def funnel_counts(conn: Connection, f: Filters) -> pd.DataFrame:
    """Distinct patients at each stage (eligible, outreached, reached, consented, enrolled, ...) in the period (``D["funnel"]``)."""
    ee, p = s.enrollment_event, s.patient
    rs = rules_in_force(conn)
    start, end = _period(f)
    eligible = int(
        conn.execute(select(func.count()).select_from(eligible_patients_select(conn, f, rs).subquery())).scalar() or 0
    )
    q = (
        select(ee.c.status, func.count(distinct(ee.c.patient_id)).label("patients"))
        .join(p, p.c.id == ee.c.patient_id)
        .where(ee.c.event_date.between(start, end), ee.c.program.in_(f.programs), f.patient_clause(p))
        .group_by(ee.c.status)
    )
    by_status = {r.status: int(r.patients) for r in conn.execute(q)}
    # reached and consented are consent conversion's own populations, so "Consented of reached" beside the
    # funnel is exactly consented / reached; outreached includes everyone reached (a funnel never widens)
    reached_q = _reached_in_period(f)
    outreached_q = union(*_reached_parts(f, ("outreached", "reached", "consented", "declined")))
    for key, sel in (
        ("reached", reached_q),
        ("outreached", outreached_q),
        ("consented", _consented_in_period(f).distinct()),
    ):
        by_status[key] = int(conn.execute(select(func.count()).select_from(sel.subquery())).scalar() or 0)
    pm = _pm(conn, f, rs)
    enrolled_by_then = exists().where(
        ee.c.patient_id == pm.c.patient_id,
        ee.c.status == "enrolled",
        ee.c.event_date.between(start, end),
        ee.c.program.in_(f.programs),
        cast(extract("year", ee.c.event_date), Integer) * 100 + cast(extract("month", ee.c.event_date), Integer)
        <= pm.c.service_month,
    )
    fb = conn.execute(
        select(func.count(distinct(pm.c.patient_id))).where(pm.c.supported_track.isnot(None), enrolled_by_then)
    ).scalar()
    stages = [
        ("eligible", eligible),
        ("outreached", by_status.get("outreached", 0)),
        ("reached", by_status.get("reached", 0)),
        ("consented", by_status.get("consented", 0)),
        ("enrolled", by_status.get("enrolled", 0)),
        ("first billable month", int(fb or 0)),
    ]
    return _frame(pd.DataFrame(stages, columns=["stage", "patients"]), "funnel")


# --------------------------------------------------------------------------- minutes and billing
def enrolled_month(conn: Connection, f: Filters, rs: rules_mod.RuleSet, month: int, as_of: dt.date | None = None):
    """One row per patient active (enrolled) at ``as_of`` (default month end) with that month's minutes.

    Patients with no patient-month get 0 minutes.  Built as UNION ALL + GROUP BY with an IN filter
    rather than a join of two derived tables, which SQLite could only do by nested scans.
    """
    fm = f.with_months(month)
    pm = _pm(conn, fm, rs)
    enr = _enrolled(conn, fm, as_of or _month_end(month))
    zeros = select(
        enr.c.patient_id,
        literal(0, Integer).label("counted_minutes"),
        literal(0, Integer).label("billable"),
        cast(null(), Date).label("threshold_date"),
        cast(null(), Date).label("last_contact_date"),
    )
    months = select(
        pm.c.patient_id,
        cast(pm.c.counted_minutes, Integer).label("counted_minutes"),
        case((pm.c.supported_track.isnot(None), 1), else_=0).label("billable"),
        type_coerce(pm.c.threshold_date, Date).label("threshold_date"),
        type_coerce(pm.c.last_contact_date, Date).label("last_contact_date"),
    ).where(pm.c.patient_id.in_(select(enr.c.patient_id)))
    u = union_all(zeros, months).subquery("enrolled_union")
    return (
        select(
            u.c.patient_id,
            func.max(u.c.counted_minutes).label("counted_minutes"),
            func.max(u.c.billable).label("billable"),
            func.max(u.c.threshold_date).label("threshold_date"),
            func.max(u.c.last_contact_date).label("last_contact_date"),
        ).group_by(u.c.patient_id)
    ).subquery("enrolled_month")


def billable_rate(conn: Connection, f: Filters) -> KpiResult:
    """Enrolled patients whose counted minutes supported a code in ``f.month_to`` ÷ enrolled (``D["billable_rate"]``)."""
    rs = rules_in_force(conn)
    em = enrolled_month(conn, f, rs, f.month_to)
    row = conn.execute(select(func.count().label("den"), _flag(em.c.billable == 1).label("num")).select_from(em)).one()
    return KpiResult(D["billable_rate"], _rate(row.num, row.den), int(row.num), int(row.den))


def minutes_per_enrolled_patient(conn: Connection, f: Filters) -> KpiResult:
    """value = mean counted minutes; extra: median, bands {label: patients}, distribution."""
    rs = rules_in_force(conn)
    em = enrolled_month(conn, f, rs, f.month_to)
    mins = em.c.counted_minutes.label("minutes")
    hist = conn.execute(select(mins, func.count().label("n")).group_by(mins).order_by(mins)).all()
    values_ = {int(m): int(n) for m, n in hist}
    total_patients = sum(values_.values())
    bands = {}
    for lo, hi, label in MINUTE_BANDS:
        bands[label] = sum(n for m, n in values_.items() if m >= lo and (hi is None or m <= hi))
    if not total_patients:
        return KpiResult(D["minutes_per_enrolled"], None, 0, 0, {"median": None, "bands": bands})
    total_minutes = sum(m * n for m, n in values_.items())
    # median from the histogram (no per-patient rows leave the database)
    expanded_mid = _hist_median(values_)
    return KpiResult(
        D["minutes_per_enrolled"],
        total_minutes / total_patients,
        total_minutes,
        total_patients,
        {"median": expanded_mid, "bands": bands},
    )


def _hist_median(hist: dict[int, int]) -> float | None:
    n = sum(hist.values())
    if not n:
        return None
    keys = sorted(hist)

    def kth(k):  # 0-based
        acc = 0
        for v in keys:
            acc += hist[v]
            if acc > k:
                return v
        return keys[-1]

    if n % 2:
        return float(kth(n // 2))
    return (kth(n // 2 - 1) + kth(n // 2)) / 2.0


def addon_capture(conn: Connection, f: Filters) -> KpiResult:
    """Billable patients reaching one and two 99439 add-on units in ``f.month_to`` (``D["addon_capture"]``)."""
    rs = rules_in_force(conn)
    em = enrolled_month(conn, f, rs, f.month_to)
    billable = em.c.billable == 1
    row = conn.execute(
        select(
            _flag(billable).label("billable"),
            _flag(and_(billable, em.c.counted_minutes >= 40)).label("ge40"),
            _flag(and_(billable, em.c.counted_minutes >= 60)).label("ge60"),
        ).select_from(em)
    ).one()
    return KpiResult(
        D["addon_capture"],
        _rate(row.ge40, row.billable),
        int(row.ge40),
        int(row.billable),
        {"ge40": _rate(row.ge40, row.billable), "ge60": _rate(row.ge60, row.billable), "ge60_patients": int(row.ge60)},
    )


def near_threshold_worklist(conn: Connection, f: Filters, as_of: dt.date) -> pd.DataFrame:
    """Enrolled patients 1-10 minutes short of 20 in the as-of month, tier 1 (15-19) first."""
    rs = rules_in_force(conn)
    month = month_int(as_of)
    fm = f.with_months(month)
    pm = _pm(conn, fm, rs)
    enr = _enrolled(conn, fm, as_of)
    p, st = s.patient, s.staff
    threshold = rs.code("99490").threshold_minutes
    cm_name = func.coalesce(st.c.first_name, "") + literal(" ") + func.coalesce(st.c.last_name, "")
    q = (
        select(
            pm.c.patient_id,
            p.c.mrn,
            (p.c.first_name + literal(" ") + p.c.last_name).label("patient_name"),
            pm.c.clinic_id,
            pm.c.billing_practitioner_id,
            pm.c.care_manager_id,
            cm_name.label("care_manager"),
            pm.c.payer,
            pm.c.counted_minutes,
            pm.c.last_contact_date,
        )
        .select_from(pm.join(p, p.c.id == pm.c.patient_id).outerjoin(st, st.c.id == pm.c.care_manager_id))
        .where(
            pm.c.counted_minutes.between(threshold - 10, threshold - 1),
            pm.c.supported_track.is_(None),
            pm.c.patient_id.in_(select(enr.c.patient_id)),
        )
    )
    df = pd.DataFrame(
        conn.execute(q).mappings().all(),
        columns=[
            "patient_id",
            "mrn",
            "patient_name",
            "clinic_id",
            "billing_practitioner_id",
            "care_manager_id",
            "care_manager",
            "payer",
            "counted_minutes",
            "last_contact_date",
        ],
    )
    days_left = (_month_end(month) - as_of).days
    df["minutes_needed"] = threshold - df["counted_minutes"].astype(int)
    df["tier"] = [1 if m >= threshold - 5 else 2 for m in df["counted_minutes"]]
    df["days_left"] = days_left
    df["expected_at_stake"] = float(rs.fee("99490", month) or 0.0)
    if not df.empty:
        df["last_contact_date"] = pd.to_datetime(df["last_contact_date"]).dt.date
        df["days_since_contact"] = [
            (as_of - d).days if isinstance(d, dt.date) else None for d in df["last_contact_date"]
        ]
    else:
        df["days_since_contact"] = pd.Series(dtype=float)
    df = df.sort_values(["tier", "counted_minutes", "patient_id"], ascending=[True, False, True]).reset_index(drop=True)
    df.attrs["as_of"] = as_of
    return _frame(df, "near_threshold")


def billable_condition(pm, cutoff: dt.date | None = None):
    """A patient-month counts as billable when its minutes support a code (any track); by ``cutoff`` when given,
    also the day its counted minutes reached the threshold is on or before it.  The one definition behind
    Revenue's billable patient-months, the forecast's 'so far' and its history."""
    cond = pm.c.supported_track.isnot(None)
    if cutoff is not None:
        cond = and_(cond, pm.c.threshold_date.isnot(None), type_coerce(pm.c.threshold_date, Date) <= cutoff)
    return cond


def _cutoff(month: int, day: int | None) -> dt.date:
    first, last = month_bounds(month)
    return last if day is None else min(first + dt.timedelta(days=day - 1), last)


def _reached_and_open(conn, f: Filters, rs, month: int, day: int | None) -> tuple[int, int]:
    """(billable patient-months of ``month`` by ``day``, enrolled patients on that day not yet billable).

    ``day`` None = month end.  The second number is who can still reach the threshold this month."""
    fm = f.with_months(month)
    cutoff = _cutoff(month, day)
    pm = _pm(conn, fm, rs)
    reached_ids = select(pm.c.patient_id).where(billable_condition(pm, None if day is None else cutoff))
    reached = int(conn.execute(select(func.count()).select_from(reached_ids.subquery())).scalar() or 0)
    enr = _enrolled(conn, fm, cutoff)
    pm2 = _pm(conn, fm, rs)
    still = int(
        conn.execute(
            select(func.count())
            .select_from(enr)
            .where(
                enr.c.patient_id.not_in(
                    select(pm2.c.patient_id).where(billable_condition(pm2, None if day is None else cutoff))
                )
            )
        ).scalar()
        or 0
    )
    return reached, still


def billable_patient_months(conn: Connection, f: Filters, month: int | None = None, day: int | None = None) -> int:
    """Billable patient-months of ``month`` (default ``f.month_to``), by ``day`` of the month when given."""
    rs = rules_in_force(conn)
    return _reached_and_open(conn, f, rs, month or f.month_to, day)[0]


def _pacing_counts(conn, f: Filters, rs, months: list[int], day: int) -> dict[int, tuple[int, int, int, int]]:
    """Per month of ``months``, in one statement: (billable patient-months by ``day``, enrolled patients on
    that day not yet billable, billable patient-months by month end, enrolled patients on that day): the
    numbers ``_reached_and_open`` gives month by month, for the forecast and its history at once.

    The months' billable patient-months are read once (a CTE, each flagged whether billable by its month's
    cutoff day); each month's enrolled patients are counted, and those among them billable by then looked
    up in that CTE (not yet billable = enrolled - those; no grouping of every enrolled patient)."""
    pm = pm_store.patient_month_source(conn, f.with_months(min(months), max(months)), rs).subquery("pm")
    by_cutoff = or_(*[and_(pm.c.service_month == m, billable_condition(pm, _cutoff(m, day))) for m in months])
    billable = (
        select(
            cast(pm.c.service_month, Integer).label("month"),
            pm.c.patient_id,
            case((by_cutoff, 1), else_=0).label("reached"),
        )
        .where(billable_condition(pm))
        .cte("pacing_billable")
        .prefix_with("MATERIALIZED")
    )
    zero = literal(0, Integer)
    parts = [
        select(
            billable.c.month,
            func.sum(billable.c.reached).label("reached"),
            func.count().label("billable"),
            zero.label("enrolled"),
            zero.label("enrolled_reached"),
        ).group_by(billable.c.month)
    ]
    for m in months:
        enr = _enrolled(conn, f.with_months(m), _cutoff(m, day), f"_{m}")
        reached_ids = select(billable.c.patient_id).where(billable.c.month == m, billable.c.reached == 1)
        parts.append(
            select(
                literal(m, Integer),
                zero,
                zero,
                func.count(),
                func.coalesce(func.sum(case((enr.c.patient_id.in_(reached_ids), 1), else_=0)), 0),
            ).select_from(enr)
        )
    u = union_all(*parts).subquery("pacing_union")
    rows = conn.execute(
        select(
            u.c.month,
            func.sum(u.c.reached),
            func.sum(u.c.enrolled) - func.sum(u.c.enrolled_reached),
            func.sum(u.c.billable),
            func.sum(u.c.enrolled),
        ).group_by(u.c.month)
    ).all()
    got = {int(r[0]): (int(r[1] or 0), int(r[2] or 0), int(r[3] or 0), int(r[4] or 0)) for r in rows}
    return {m: got.get(m, (0, 0, 0, 0)) for m in months}


FORECAST_HISTORY_MONTHS = 3


def pacing_forecast(conn: Connection, f: Filters, as_of: dt.date, history: int = FORECAST_HISTORY_MONTHS) -> KpiResult:
    """Month-end billable patient-months for the month of ``as_of``: whole patients, a range, and a cap.

    so far = billable patient-months whose minutes reached the threshold by ``as_of``; can still bill =
    enrolled patients on ``as_of`` not yet billable.  Each of the ``history`` months before converted a share
    p of its own 'can still bill' on the same day of the month into billable months by its end; the forecast
    is so far + can still bill x mean(p), the range uses the lowest and highest p (months with no billable
    patient-month are skipped: no data to learn from).  p is at most 1, so the
    forecast never exceeds so far + can still bill (the cap).  With no usable history: a straight line by days,
    capped the same way.
    """
    rs = rules_in_force(conn)
    month = month_int(as_of)
    day = as_of.day
    days_in_month = month_bounds(month)[1].day
    counts = _pacing_counts(conn, f, rs, [add_months(month, -k) for k in range(history + 1)], day)
    so_far, still, _, enr = counts[month]
    cap = so_far + still
    shares, used = [], []
    for k in range(1, history + 1):
        m = add_months(month, -k)
        r_day, open_day, final, _ = counts[m]
        if open_day > 0 and final > 0:  # a month with no billable patient-month has no data to learn from
            shares.append(min(1.0, max(0.0, (final - r_day) / open_day)))
            used.append(m)
    if shares:
        mean = sum(shares) / len(shares)
        point = so_far + round(still * mean)
        low = so_far + math.floor(still * min(shares))
        high = so_far + math.ceil(still * max(shares))
        method = f"share of 'can still bill' converted on the same day in the {len(shares)} months before"
    else:
        straight = so_far * days_in_month / day if day else so_far
        point = low = high = min(cap, round(straight))
        mean = None
        method = "straight line by days (no earlier month to learn from)"
    point, low, high = (min(cap, max(so_far, v)) for v in (point, low, high))
    return KpiResult(
        D["pacing_forecast"],
        int(point),
        so_far,
        None,
        {
            "so_far": so_far,
            "can_still_bill": still,
            "cap": cap,
            "low": int(low),
            "high": int(high),
            "conversion": mean,
            "conversions": dict(zip(used, shares)),
            "day": day,
            "days_in_month": days_in_month,
            "method": method,
            "enrolled": enr,
            "as_of": as_of,
        },
    )


def forecast_backtest(
    conn: Connection, f: Filters, days: tuple[int, ...] = (7, 14, 21), history: int = FORECAST_HISTORY_MONTHS
) -> pd.DataFrame:
    """The forecast made on day ``d`` of each past month of ``f`` (with ``history`` months before it) against the
    billable patient-months that month actually reached: error, absolute error and whether the range held it."""
    rs = rules_in_force(conn)
    rows = []
    for m in f.months():
        actual = _reached_and_open(conn, f, rs, m, None)[0]
        for d in days:
            as_of = _cutoff(m, d)
            fc = pacing_forecast(conn, f, as_of, history)
            rows.append(
                {
                    "month": m,
                    "day": d,
                    "so_far": fc.extra["so_far"],
                    "forecast": fc.value,
                    "low": fc.extra["low"],
                    "high": fc.extra["high"],
                    "cap": fc.extra["cap"],
                    "actual": actual,
                    "error": fc.value - actual,
                    "abs_pct_error": _rate(abs(fc.value - actual), actual),
                    "in_range": fc.extra["low"] <= actual <= fc.extra["high"],
                }
            )
    return _frame(
        pd.DataFrame(
            rows,
            columns=[
                "month",
                "day",
                "so_far",
                "forecast",
                "low",
                "high",
                "cap",
                "actual",
                "error",
                "abs_pct_error",
                "in_range",
            ],
        ),
        "pacing_forecast",
    )


def minutes_per_care_manager(conn: Connection, f: Filters) -> pd.DataFrame:
    """Per care manager: counted minutes of their active enrolled panel in ``f.month_to`` (``D["minutes_per_care_manager"]``)."""
    rs = rules_in_force(conn)
    em = enrolled_month(conn, f, rs, f.month_to)
    p, st = s.patient, s.staff
    name = func.coalesce(st.c.first_name + literal(" ") + st.c.last_name, "unassigned")
    q = (
        select(
            p.c.care_manager_id,
            name.label("care_manager"),
            func.count().label("panel"),
            func.coalesce(func.sum(em.c.counted_minutes), 0).label("counted_minutes"),
            _flag(em.c.counted_minutes > 0).label("patients_with_minutes"),
            _flag(em.c.billable == 1).label("billable"),
        )
        .select_from(em.join(p, p.c.id == em.c.patient_id).outerjoin(st, st.c.id == p.c.care_manager_id))
        .group_by(p.c.care_manager_id, st.c.first_name, st.c.last_name)
        .order_by(p.c.care_manager_id)
    )
    df = pd.DataFrame(
        conn.execute(q).mappings().all(),
        columns=["care_manager_id", "care_manager", "panel", "counted_minutes", "patients_with_minutes", "billable"],
    )
    df["minutes_per_patient"] = [(_rate(a, b)) for a, b in zip(df["counted_minutes"], df["panel"])]
    df["billable_rate"] = [(_rate(a, b)) for a, b in zip(df["billable"], df["panel"])]
    return _frame(df, "minutes_per_care_manager")


# --------------------------------------------------------------------------- revenue
def revenue_by_month(conn: Connection, f: Filters) -> pd.DataFrame:
    """One row per month of the range: expected, billed, paid, enrolled, per enrolled patient."""
    rs = rules_in_force(conn)
    pm = _pm(conn, f, rs)
    q = select(
        pm.c.service_month,
        func.coalesce(func.sum(pm.c.expected_amount), 0.0).label("expected"),
        func.coalesce(func.sum(pm.c.billed_charge), 0.0).label("billed"),
        func.coalesce(func.sum(pm.c.paid_amount), 0.0).label("paid"),
        _flag(billable_condition(pm)).label("billable_patient_months"),
    ).group_by(pm.c.service_month)
    got = {int(r.service_month): r for r in conn.execute(q)}
    rows = []
    for m in f.months():
        r = got.get(m)
        enrolled = int(conn.execute(select(func.count()).select_from(_enrolled(conn, f, _month_end(m)))).scalar() or 0)
        exp, bil, pd_ = (float(r.expected), float(r.billed), float(r.paid)) if r else (0.0, 0.0, 0.0)
        rows.append(
            {
                "month": m,
                "expected": round(exp, 2),
                "billed": round(bil, 2),
                "paid": round(pd_, 2),
                "billable_patient_months": int(r.billable_patient_months) if r else 0,
                "enrolled": enrolled,
                "expected_per_enrolled": _rate(exp, enrolled),
                "billed_per_enrolled": _rate(bil, enrolled),
                "paid_per_enrolled": _rate(pd_, enrolled),
            }
        )
    return _frame(pd.DataFrame(rows), "revenue")


def revenue_summary(conn: Connection, f: Filters) -> KpiResult:
    """value = expected for month_to; extra: expected, billed, paid, per_enrolled (expected), by_month frame."""
    by_month = revenue_by_month(conn, f)
    last = by_month.iloc[-1]
    return KpiResult(
        D["revenue"],
        float(last["expected"]),
        None,
        int(last["enrolled"]),
        {
            "expected": float(last["expected"]),
            "billed": float(last["billed"]),
            "paid": float(last["paid"]),
            "per_enrolled": _opt(last["expected_per_enrolled"]),
            "billed_per_enrolled": _opt(last["billed_per_enrolled"]),
            "paid_per_enrolled": _opt(last["paid_per_enrolled"]),
            "range_expected": float(by_month["expected"].sum()),
            "range_billed": float(by_month["billed"].sum()),
            "range_paid": float(by_month["paid"].sum()),
            "by_month": by_month,
        },
    )


def dollars_on_hold(conn: Connection, f: Filters) -> KpiResult:
    """Dollars the month's held patient-months would bring once their prerequisites are fixed (see definition)."""
    rs = rules_in_force(conn)
    row = conn.execute(read.dollars_on_hold_select(conn, f.with_months(f.month_to), rs)).one()
    return KpiResult(
        D["dollars_on_hold"],
        round(float(row.dollars), 2),
        int(row.n),
        None,
        {"patient_months": int(row.n), "month": f.month_to},
    )


def revenue_leakage(conn: Connection, f: Filters, as_of: dt.date | None = None) -> pd.DataFrame:
    """Dollars by cause over the filter range (see the definition for each cause)."""
    rs = rules_in_force(conn)
    as_of = as_of or dt.date.today()
    # a month is closed for 'not billed' once its claims should have gone out (15 days after month end)
    closed_before = month_int(as_of - dt.timedelta(days=15))
    pm = _pm(conn, f, rs)
    conflict = or_(
        pm.c.duplicate_ccm == 1,
        pm.c.ccm_with_pcm_same_practitioner == 1,
        pm.c.ccm_with_apcm_same_practitioner == 1,
        pm.c.addon_without_base == 1,
        pm.c.units_over_cap == 1,
        pm.c.ccm_tracks_mixed == 1,
    )
    near = and_(pm.c.counted_minutes.between(15, 19), pm.c.supported_track.is_(None))
    not_billed = and_(pm.c.not_billed == 1, pm.c.service_month < closed_before)
    denied = and_(pm.c.initially_denied == 1, pm.c.paid_amount <= 0)

    def dollars(cond, amount):
        return func.coalesce(func.sum(case((cond, amount), else_=0.0)), 0.0)

    row = (
        conn.execute(
            select(
                _flag(pm.c.under_billed == 1).label("n_under"),
                dollars(pm.c.under_billed == 1, pm.c.expected_ccm - pm.c.billed_supported_value).label("d_under"),
                _flag(not_billed).label("n_not_billed"),
                dollars(not_billed, pm.c.expected_amount).label("d_not_billed"),
                _flag(denied).label("n_denied"),
                dollars(denied, pm.c.billed_fee_value).label("d_denied"),
                _flag(near).label("n_near"),
                dollars(near, eng.fee_expr(rs, "99490", pm.c.service_month)).label("d_near"),
                _flag(conflict).label("n_conflict"),
                dollars(conflict, pm.c.billed_fee_value).label("d_conflict"),
            )
        )
        .one()
        ._mapping
    )
    causes = [
        ("under-billing", "under"),
        ("not billed", "not_billed"),
        ("denials not recovered", "denied"),
        ("near misses (15-19 min)", "near"),
        ("conflicts", "conflict"),
    ]
    df = pd.DataFrame(
        [
            {"cause": label, "patient_months": int(row[f"n_{k}"]), "dollars": round(float(row[f"d_{k}"]), 2)}
            for label, k in causes
        ]
    )
    return _frame(df, "revenue_leakage")


# --------------------------------------------------------------------------- denials
def claims_base(f: Filters, rs):
    """(FROM claim JOIN patient, WHERE of the filters): the claims every denial and revenue KPI counts."""
    c, p = s.claim, s.patient
    return c.join(p, p.c.id == c.c.patient_id), claim_where(f, rs)


@dataclass(frozen=True)
class ClaimColumns:
    """The claim columns the claim KPIs count and cut by, from the claim table or the claim store."""

    id: ColumnElement
    total_charge: ColumnElement  # as a float
    payer: ColumnElement
    practitioner_id: ColumnElement


def claims_filtered(conn: Connection, f: Filters, rs):
    """(FROM, WHERE, ``ClaimColumns``) of the claims ``f`` selects: ``claims_base`` over the claim table, or,
    when the claim store is current, the store alone (its filter columns, code-family flags, charge,
    payer and practitioner): no scan of every claim line for the program codes, nor of every claim."""
    stored = pm_store.claim_source(conn, f, rs)
    if stored is None:
        c = s.claim
        frm, where = claims_base(f, rs)
        return frm, where, ClaimColumns(c.c.id, cast(c.c.total_charge, Float), c.c.payer, c.c.practitioner_id)
    t, where = stored
    return t, where, ClaimColumns(t.c.claim_id, t.c.total_charge, t.c.payer, t.c.practitioner_id)


def _denial_numerators(conn, f: Filters, rs, month_from: int, month_to: int) -> dict[int, tuple[int, float]]:
    """received_month -> (claims, gross charges) initially denied, CARC 18 excluded."""
    stored = pm_store.claim_source(conn, f, rs)
    if stored is not None:
        t, where = stored
        q = (
            select(
                t.c.initial_denial_month.label("month"),
                func.count().label("n"),
                func.coalesce(func.sum(t.c.total_charge), 0.0).label("dollars"),
            )
            .where(where, t.c.initial_denial_month.between(month_from, month_to))
            .group_by(t.c.initial_denial_month)
        )
        return {int(x.month): (int(x.n), float(x.dollars)) for x in conn.execute(q)}
    c, r = s.claim, s.remittance
    frm, where = claims_base(f, rs)
    first = (
        select(r.c.claim_id, r.c.received_month, r.c.id.label("remit_id")).where(
            r.c.adjudication_seq == 1,
            r.c.claim_id.isnot(None),
            is_denial(r),
            ~is_duplicate(r),
            r.c.received_month.between(month_from, month_to),
        )
    ).subquery()
    per_claim = (
        select(first.c.claim_id, func.min(first.c.received_month).label("month")).group_by(first.c.claim_id)
    ).subquery()
    q = (
        select(
            per_claim.c.month,
            func.count().label("n"),
            func.coalesce(func.sum(cast(c.c.total_charge, Float)), 0.0).label("dollars"),
        )
        .select_from(frm.join(per_claim, per_claim.c.claim_id == c.c.id))
        .where(where)
        .group_by(per_claim.c.month)
    )
    return {int(x.month): (int(x.n), float(x.dollars)) for x in conn.execute(q)}


def _submissions(conn, f: Filters, rs, month_from: int, month_to: int) -> dict[int, tuple[int, float]]:
    stored = pm_store.claim_source(conn, f, rs)
    if stored is not None:
        t, where = stored
        q = (
            select(
                t.c.submitted_month,
                func.count().label("n"),
                func.coalesce(func.sum(t.c.total_charge), 0.0).label("dollars"),
            )
            .where(where, t.c.submitted_month.between(month_from, month_to))
            .group_by(t.c.submitted_month)
        )
        return {int(x.submitted_month): (int(x.n), float(x.dollars)) for x in conn.execute(q)}
    c = s.claim
    frm, where = claims_base(f, rs)
    q = (
        select(
            c.c.submitted_month,
            func.count().label("n"),
            func.coalesce(func.sum(cast(c.c.total_charge, Float)), 0.0).label("dollars"),
        )
        .select_from(frm)
        .where(where, c.c.submitted_month.between(month_from, month_to))
        .group_by(c.c.submitted_month)
    )
    return {int(x.submitted_month): (int(x.n), float(x.dollars)) for x in conn.execute(q)}


def denial_trend(conn: Connection, f: Filters) -> pd.DataFrame:
    """Per month: initial denials (count, charges), lagged 3-month average submissions, both rates."""
    rs = rules_in_force(conn)
    months = f.months()
    num = _denial_numerators(conn, f, rs, months[0], months[-1])
    subs = _submissions(conn, f, rs, add_months(months[0], -3), months[-1])
    rows = []
    for m in months:
        lag = [add_months(m, -k) for k in (1, 2, 3)]
        den_n = sum(subs.get(x, (0, 0.0))[0] for x in lag) / 3.0
        den_d = sum(subs.get(x, (0, 0.0))[1] for x in lag) / 3.0
        n, d = num.get(m, (0, 0.0))
        rows.append(
            {
                "month": m,
                "initial_denials": n,
                "denied_charges": round(d, 2),
                "lagged_avg_submitted": den_n,
                "lagged_avg_charges": round(den_d, 2),
                "rate_by_count": _rate(n, den_n),
                "rate_by_dollars": _rate(d, den_d),
            }
        )
    return _frame(pd.DataFrame(rows), "denial_trend")


def initial_denial_rate(conn: Connection, f: Filters, by: str = "count") -> KpiResult:
    """HFMA initial denial rate for ``f.month_to`` with the 3-month lagged denominator."""
    if by not in ("count", "dollars"):
        raise ValueError("by must be 'count' or 'dollars'")
    return initial_denial_rates(conn, f)[by]


def initial_denial_rates(conn: Connection, f: Filters) -> dict[str, KpiResult]:
    """The initial denial rate by count and by dollars from one pass over the month's remittances
    (the Overview shows both; computing them apart would read the same claims twice)."""
    row = denial_trend(conn, f.with_months(f.month_to)).iloc[0]
    out = {}
    for by, (num, den) in {
        "count": (row["initial_denials"], row["lagged_avg_submitted"]),
        "dollars": (row["denied_charges"], row["lagged_avg_charges"]),
    }.items():
        num, den = float(num), float(den)
        out[by] = KpiResult(D["initial_denial_rate"], _rate(num, den), num, den, {"by": by, "month": int(row["month"])})
    return out


def first_pass_resolution_rate(conn: Connection, f: Filters) -> KpiResult:
    """Claims resolved on first submission ÷ claims adjudicated (``D["first_pass_resolution"]``)."""
    rs = rules_in_force(conn)
    r = s.remittance
    frm, where, c = claims_filtered(conn, f, rs)
    first = (
        select(r.c.claim_id, func.max(case((is_denial(r), 1), else_=0)).label("denied"))
        .where(r.c.adjudication_seq == 1, r.c.claim_id.isnot(None), r.c.received_month == f.month_to)
        .group_by(r.c.claim_id)
    ).subquery()
    with pm_store.index_lookups(conn):
        row = conn.execute(
            select(func.count().label("den"), _flag(first.c.denied == 0).label("num"))
            .select_from(frm.join(first, first.c.claim_id == c.id))
            .where(where)
        ).one()
    return KpiResult(D["first_pass_resolution"], _rate(row.num, row.den), int(row.num), int(row.den))


def _denied_remits(conn: Connection, f: Filters, rs, cpt_codes=None):
    """Denied remittances received in the range, for claims passing the filters (and optional CPT codes)."""
    r, cl = s.remittance, s.claim_line
    frm, where, c = claims_filtered(conn, f, rs)
    conds = [where, r.c.received_month.between(f.month_from, f.month_to), is_denial(r)]
    if cpt_codes:
        conds.append(exists().where(cl.c.claim_id == c.id, cl.c.cpt_code.in_(tuple(cpt_codes))))
    return (
        select(r.c.id.label("remit_id"), c.total_charge.label("charge"))
        .select_from(frm.join(r, r.c.claim_id == c.id))
        .where(*conds)
    ).subquery("denied")


def _pareto(df: pd.DataFrame, total: int) -> pd.DataFrame:
    df = df.sort_values(["remittances", "code"], ascending=[False, True]).reset_index(drop=True)
    df["share"] = [(_rate(n, total)) for n in df["remittances"]]
    df["cumulative_share"] = df["remittances"].cumsum() / total if total else None
    return df


def carc_pareto(conn: Connection, f: Filters, cpt_codes: tuple[str, ...] | None = None) -> pd.DataFrame:
    """CARC by number of denied remittances carrying it, with the official X12 text and dollars adjusted."""
    rs = rules_in_force(conn)
    ra = s.remittance_adjustment
    den = _denied_remits(conn, f, rs, cpt_codes)
    q = (
        select(
            ra.c.carc.label("code"),
            func.min(ra.c.group_code).label("group_code"),
            func.count(distinct(ra.c.remittance_id)).label("remittances"),
            func.coalesce(func.sum(cast(ra.c.amount, Float)), 0.0).label("dollars"),
        )
        .join(den, den.c.remit_id == ra.c.remittance_id)
        .where(ra.c.carc.not_in(NOT_DENIAL_CARCS))
        .group_by(ra.c.carc)
    )
    with pm_store.index_lookups(conn):
        total = int(conn.execute(select(func.count()).select_from(den)).scalar() or 0)
        rows = conn.execute(q).mappings().all()
    df = pd.DataFrame(rows, columns=["code", "group_code", "remittances", "dollars"])
    df["text"] = [rs.carc_text(x) for x in df["code"]]
    return _frame(_pareto(df, total), "carc_pareto")


def rarc_pareto(conn: Connection, f: Filters, cpt_codes: tuple[str, ...] | None = None) -> pd.DataFrame:
    """Denied remittances per remark code (RARC) in the period, most frequent first; ``cpt_codes`` narrows them (``D["rarc_pareto"]``)."""
    rs = rules_in_force(conn)
    rr = s.remittance_remark
    den = _denied_remits(conn, f, rs, cpt_codes)
    q = (
        select(rr.c.rarc.label("code"), func.count(distinct(rr.c.remittance_id)).label("remittances"))
        .join(den, den.c.remit_id == rr.c.remittance_id)
        .group_by(rr.c.rarc)
    )
    with pm_store.index_lookups(conn):
        total = int(conn.execute(select(func.count()).select_from(den)).scalar() or 0)
        rows = conn.execute(q).mappings().all()
    df = pd.DataFrame(rows, columns=["code", "remittances"])
    df["text"] = [rs.rarc_text(x) for x in df["code"]]
    return _frame(_pareto(df, total), "rarc_pareto")


def overturn_rate(conn: Connection, f: Filters) -> KpiResult:
    """Initial denials (first adjudication in range, CARC 18 excluded) overturned: / appealed and / all."""
    rs = rules_in_force(conn)
    r, ap = s.remittance, s.appeal
    frm, where, c = claims_filtered(conn, f, rs)
    r2 = r.alias("later")
    denials = (
        select(r.c.claim_id)
        .where(
            r.c.adjudication_seq == 1,
            r.c.claim_id.isnot(None),
            is_denial(r),
            ~is_duplicate(r),
            r.c.received_month.between(f.month_from, f.month_to),
        )
        .distinct()
    ).subquery()
    appealed = exists().where(ap.c.claim_id == c.id)
    overturned = or_(
        exists().where(ap.c.claim_id == c.id, ap.c.outcome.in_(("overturned", "partial"))),
        exists().where(r2.c.claim_id == c.id, r2.c.adjudication_seq > 1, r2.c.paid_amount > 0),
    )
    with pm_store.index_lookups(conn):
        row = conn.execute(
            select(
                func.count().label("denials"),
                _flag(appealed).label("appealed"),
                _flag(overturned).label("overturned"),
                func.coalesce(func.sum(case((overturned, c.total_charge), else_=0.0)), 0.0).label("overturned_charges"),
                func.coalesce(func.sum(case((appealed, c.total_charge), else_=0.0)), 0.0).label("appealed_charges"),
            )
            .select_from(frm.join(denials, denials.c.claim_id == c.id))
            .where(where)
        ).one()
    return KpiResult(
        D["overturn_rate"],
        _rate(row.overturned, row.appealed),
        int(row.overturned),
        int(row.appealed),
        {
            "of_all_denials": _rate(row.overturned, row.denials),
            "initial_denials": int(row.denials),
            "by_charges": _rate(row.overturned_charges, row.appealed_charges),
        },
    )


def days_to_payment(conn: Connection, f: Filters) -> KpiResult:
    """Median days from submission to first payment for claims paid in the period (``D["days_to_payment"]``)."""
    rs = rules_in_force(conn)
    start, end = _period(f)
    stored = pm_store.claim_source(conn, f, rs)
    if stored is not None:  # each claim's first paid date and its days from submission, stored
        t, where = stored
        hist = conn.execute(
            select(t.c.days_to_paid, func.count().label("n"))
            .where(where, t.c.first_paid_date.between(start, end))
            .group_by(t.c.days_to_paid)
        ).all()
        return _days_result(hist)
    c, r = s.claim, s.remittance
    frm, where = claims_base(f, rs)
    r2 = r.alias("paid_in_period")  # only claims with a payment in the period can have their first one there
    paid_now = select(r2.c.claim_id).where(r2.c.received_date.between(start, end), r2.c.paid_amount > 0)
    first_paid = (
        select(r.c.claim_id, func.min(r.c.received_date).label("paid_on"))
        .where(r.c.paid_amount > 0, r.c.claim_id.in_(paid_now))
        .group_by(r.c.claim_id)
    ).subquery()
    days = days_between(c.c.submitted_date, first_paid.c.paid_on).label("days")
    hist = conn.execute(
        select(days, func.count().label("n"))
        .select_from(frm.join(first_paid, first_paid.c.claim_id == c.c.id))
        .where(where, first_paid.c.paid_on.between(start, end))
        .group_by(days)
    ).all()
    return _days_result(hist)


def _days_result(hist) -> KpiResult:
    """The median and mean of a (days, claims) histogram."""
    h = {int(d): int(n) for d, n in hist}
    n = sum(h.values())
    mean = (sum(d * k for d, k in h.items()) / n) if n else None
    return KpiResult(D["days_to_payment"], _hist_median(h), None, n, {"mean": mean, "claims": n})


# --------------------------------------------------------------------------- one call for the CLI / overview
def headline(conn: Connection, f: Filters, as_of: dt.date | None = None) -> dict[str, KpiResult]:
    """The Overview's numbers, by key (what ``python -m ccm_core kpis`` prints)."""
    as_of = as_of or _month_end(f.month_to)
    return {
        "eligible_population": eligible_population(conn, f),
        "enrolled_patients": enrolled_patients(conn, f),
        "enrollment_rate": enrollment_rate(conn, f),
        "consent_rate": consent_rate(conn, f),
        "consent_conversion": consent_conversion(conn, f),
        "billable_rate": billable_rate(conn, f),
        "minutes_per_enrolled": minutes_per_enrolled_patient(conn, f),
        "addon_capture": addon_capture(conn, f),
        "pacing_forecast": pacing_forecast(conn, f, as_of),
        "revenue": revenue_summary(conn, f),
        "initial_denial_rate_count": initial_denial_rate(conn, f, "count"),
        "initial_denial_rate_dollars": initial_denial_rate(conn, f, "dollars"),
        "first_pass_resolution": first_pass_resolution_rate(conn, f),
        "overturn_rate": overturn_rate(conn, f),
        "days_to_payment": days_to_payment(conn, f),
    }
