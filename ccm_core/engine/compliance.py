"""The compliance core: every rule that decides whether a patient-month may be billed, written once.

Each rule is a SQLAlchemy Core expression or select that works set-based (over every patient, or every
patient-month of a range, in one statement) on SQLite and PostgreSQL.  The engine (minute counting, the
complex track), the stored tables (``storage.stored``: eligible and enrolled month ends), the KPIs (eligible
population, outreach list, enrolled patients), the billing status (ready / hold / short / billed,
``engine.read``) and the audit checklist all call these functions; none of them restates a rule.  This
module builds statements only: it imports the schema, the rules, the filters and ``engine.sql``, never
the stored tables or the readers above them.

Where each rule lives (``docs/rules-and-tests.md`` has the same table):

* ICD-10 -> chronic condition map as SQL ............ ``sqlparts.condition_map`` (re-exported here)
* condition active in a period ...................... ``condition_active``
* chronic conditions / override / eligibility ....... ``eligibility_select`` (``clinically_eligible``,
  ``payer_eligible``, ``MIN_CONDITIONS``)
* enrolled at a date (latest enrollment event) ...... ``enrollment_spans`` + ``in_span``
* consent covering a minute (engine counting) ....... ``consent_covers``
* consent in force for a month (complete, tied to the month's billing practitioner, dated before the
  first minute, not revoked) ........................ ``prerequisites_select`` (the ``consent_*`` columns)
* the month's billing practitioner .................. ``month_practitioner``
* initiating visit .................................. ``initiating_select``
* care plan in force (established, signed, shared, reviewed) ... ``prerequisites_select`` (``care_plan_*``)
* care plan established or substantially revised in the month (complex CCM) ... ``care_plan_revised_in_month``
* program conflicts (PCM/APCM by the same practitioner, CCM by another) ... ``prerequisites_select``
  (``conflict_*``)
* minutes and codes ................................. ``engine.patient_month_select`` (counting rules)
* billing status ready / hold / short / billed ...... ``engine.read.billing_status_select`` (over the
  patient-month rows, stored when current); reasons and fixes ``HOLD_REASONS``
"""

from __future__ import annotations

import datetime as dt

import pandas as pd
from sqlalchemy import (
    Date,
    Integer,
    String,
    and_,
    case,
    cast,
    column,
    distinct,
    exists,
    extract,
    func,
    literal,
    not_,
    null,
    or_,
    select,
    true,
    union_all,
    values,
)
from sqlalchemy.engine import Connection

from ccm_core import rules as rules_mod
from ccm_core.engine.sql import (
    condition_map,  # noqa: F401 - the ICD-10 map as SQL (re-exported)
    days_from,
    replaced_claims,
)
from ccm_core.storage import schema as s
from ccm_core.storage.db import month_bounds

# --------------------------------------------------------------------------- rule data
MIN_CONDITIONS = 2  # CCM: two or more chronic conditions (docs/reference/ccm-rules.md §3.1)
SEEN_WITHIN_DAYS = 365  # outreach eligibility: a visit in the 12 months before
# Initiating visit (docs/reference/ccm-rules.md §3.3): face-to-face E/M level 2-5 (not 99211), AWV, IPPE, TCM.
QUALIFYING_EM_CODES = (
    "99202",
    "99203",
    "99204",
    "99205",
    "99212",
    "99213",
    "99214",
    "99215",  # office / outpatient
    "99341",
    "99342",
    "99344",
    "99345",
    "99347",
    "99348",
    "99349",
    "99350",  # home or residence
)
AWV_CODES = ("G0438", "G0439")
IPPE_CODES = ("G0402",)
TCM_CODES = ("99495", "99496")
INITIATING_VISIT_CODES = QUALIFYING_EM_CODES + AWV_CODES + IPPE_CODES + TCM_CODES
INITIATING_VISIT_TYPES = ("AWV", "IPPE", "TCM")
INITIATING_LOOKBACK_DAYS = 365
CARE_PLAN_REVIEW_DAYS = 365  # a plan neither established nor reviewed in a year is not being monitored
# Consent elements a month's consent must document (docs/reference/ccm-rules.md §4): column, label.
CONSENT_DISCLOSURES = (
    ("disclosed_cost_sharing", "cost-sharing"),
    ("disclosed_one_practitioner", "one practitioner"),
    ("disclosed_right_to_stop", "right to stop"),
)

# The prerequisites a billable patient-month must meet, in checklist order: key = the audit checklist item.
PREREQUISITES = ("eligibility", "initiating_visit", "consent", "care_plan", "no_conflicting_claim")
# Each prerequisite's title in the holds by reason (``engine.read.holds_by_reason``, the Billing page).
PREREQUISITE_TITLES = {
    "eligibility": "Eligibility",
    "initiating_visit": "Initiating visit",
    "consent": "Consent",
    "care_plan": "Care plan",
    "no_conflicting_claim": "Conflicting claim",
}
STATUSES = ("ready", "hold", "short", "billed")

# Why a month is on hold, and what fixes it: (prerequisite, problem code) -> text.
HOLD_REASONS: dict[tuple[str, str], str] = {
    ("eligibility", "conditions"): "fewer than two chronic conditions active in the month: code the second "
    "chronic condition (or record a practitioner's eligibility decision)",
    ("eligibility", "override"): "a practitioner decided the patient is not eligible: record a new eligibility "
    "decision if that has changed",
    ("initiating_visit", "missing"): "no initiating visit by the billing practitioner in the 12 months before CCM "
    "started (new patient): record the qualifying visit (E/M 2-5, AWV, IPPE, TCM)",
    ("consent", "none"): "no accepted CCM consent on file: record the patient's consent",
    ("consent", "declined"): "the patient declined CCM: record a new accepted consent before billing",
    ("consent", "practitioner"): "the billing practitioner changed after the consent: record a new consent "
    "tied to this month's billing practitioner",
    ("consent", "undated"): "the consent is undated: record the consent date",
    ("consent", "late"): "the consent is dated after the month's first CCM minute: record when consent was "
    "actually given (minutes before it do not count)",
    ("consent", "revoked"): "the consent was revoked before the month: record a new consent",
    ("consent", "disclosed_cost_sharing"): "consent lacks the cost-sharing disclosure: record a new consent",
    ("consent", "disclosed_one_practitioner"): "consent lacks the one-practitioner-per-month disclosure: record a "
    "new consent",
    ("consent", "disclosed_right_to_stop"): "consent lacks the right-to-stop disclosure: record a new consent",
    ("care_plan", "none"): "no care plan established by month end: establish and record the care plan",
    ("care_plan", "unsigned"): "the care plan is not signed by a practitioner: have it signed",
    ("care_plan", "incomplete"): "the care plan does not cover all conditions or has no measurable goals: "
    "revise the care plan",
    ("care_plan", "stale"): "the care plan was neither established nor reviewed in the last 12 months: "
    "review the care plan",
    ("care_plan", "not_shared"): "no copy of the care plan was given to the patient: share it and record the date",
    ("care_plan", "no_electronic"): "the care plan is not available electronically to the care team: record "
    "electronic access",
    ("no_conflicting_claim", "pcm_apcm"): "PCM or APCM billed by the same practitioner this month: bill one "
    "program (void the other claim) before billing CCM",
    ("no_conflicting_claim", "other_ccm"): "CCM already billed by another practitioner this month: only one "
    "practitioner may be paid; do not bill",
}


# --------------------------------------------------------------------------- portable SQL helpers
def month_of(date_col):
    """YYYYMM of a date column, in SQL."""
    return cast(extract("year", date_col) * 100 + extract("month", date_col), Integer)


def calendar_cte(months, name: str = "compliance_calendar"):
    """(service_month, month_start, month_end) for each month, as a VALUES CTE."""
    rows = [(m, *month_bounds(m)) for m in sorted({int(x) for x in months})]
    return (
        values(column("service_month", Integer), column("month_start", Date), column("month_end", Date), name=name)
        .data(rows)
        .cte(name)
    )


def _flag(cond):
    return case((cond, 1), else_=0)


# --------------------------------------------------------------------------- chronic conditions
def condition_active(dg, start, end):
    """A diagnosis is active in the period ``start``..``end`` (a date: start = end): begun by its end (or
    undated onset) and not resolved by its start."""
    return and_(
        or_(dg.c.onset_date.is_(None), dg.c.onset_date <= end),
        or_(dg.c.resolved_date.is_(None), dg.c.resolved_date > start),
    )


def clinically_eligible(n_conditions, override_found, override_eligible):
    """The newest practitioner decision wins; without one, two or more chronic conditions."""
    return or_(
        and_(override_found, override_eligible == true()),
        and_(not_(override_found), func.coalesce(n_conditions, 0) >= MIN_CONDITIONS),
    )


def payer_eligible(payer_col, rs: rules_mod.RuleSet):
    """The patient's payer is one of the rules' eligible payers (``rules.eligible_payers``), in any spelling the
    payer vocabulary maps to one (``rules.payer_aliases``, case-insensitive)."""
    return func.lower(payer_col).in_(rs.eligible_payer_spellings())


def alive_at(patient, date):
    return or_(patient.c.deceased_date.is_(None), patient.c.deceased_date > date)


def _conditions_at(cmap, points, keys, start, end, patient_key=None, patients=None, name="conditions_at"):
    dg = s.diagnosis
    on = condition_active(dg, points.c[start], points.c[end])
    if patient_key:
        on = and_(on, dg.c.patient_id == points.c[patient_key])
    q = (
        select(
            *[points.c[k] for k in keys], dg.c.patient_id, func.count(distinct(cmap.c.condition)).label("n_conditions")
        )
        .select_from(dg.join(cmap, cmap.c.icd10 == dg.c.icd10).join(points, on))
        .group_by(*[points.c[k] for k in keys], dg.c.patient_id)
    )
    if patients is not None:
        q = q.where(dg.c.patient_id.in_(patients))
    return q.cte(name)


def _override_at(points, keys, end, patient_key=None, patients=None, name="override_at"):
    """The newest CCM eligibility decision on or before ``end``, per patient and point."""
    eo = s.eligibility_override
    on = eo.c.decided_on <= points.c[end]
    if patient_key:
        on = and_(on, eo.c.patient_id == points.c[patient_key])
    rn = (
        func.row_number()
        .over(
            partition_by=[eo.c.patient_id, *[points.c[k] for k in keys]],
            order_by=[eo.c.decided_on.desc(), eo.c.id.desc()],
        )
        .label("rn")
    )
    q = (
        select(
            *[points.c[k] for k in keys],
            eo.c.patient_id,
            eo.c.eligible.label("override_eligible"),
            eo.c.decided_on.label("override_date"),
            eo.c.reason.label("override_reason"),
            rn,
        )
        .select_from(eo.join(points, on))
        .where(eo.c.program == "CCM")
    )
    if patients is not None:
        q = q.where(eo.c.patient_id.in_(patients))
    sub = q.subquery(name + "_ranked")
    return select(*[c for c in sub.c if c.name != "rn"]).where(sub.c.rn == 1).cte(name)


def eligibility_select(
    conn: Connection,
    rs: rules_mod.RuleSet,
    points,
    keys: list[str],
    *,
    outreach: bool,
    patients=None,
    start: str = "start_date",
    end: str = "end_date",
    patient_key=None,
    carry: tuple[str, ...] = (),
):
    """Eligibility of patients at ``points`` (a CTE with ``keys`` columns and a ``start``..``end`` period).

    ``outreach=True`` (the eligible population, the outreach list, the stored eligible month ends): the
    patients eligible to be offered CCM: clinically eligible, eligible payer, alive at ``end``, and seen
    (any visit) in the 12 months before ``end``; ``points`` needs a ``year_before`` column; returns
    (keys..., patient_id).  ``outreach=False`` (billing and audit): one row per point (``patient_key``
    names its patient) with ``n_conditions``, the override found, ``payer_eligible``, ``clinically_eligible``
    (what billing and the audit require) and ``eligible`` (clinically eligible and an eligible payer), and
    the ``carry`` columns of ``points`` as they are.
    """
    p, v = s.patient, s.visit
    cmap = condition_map(conn, patients=patients, name=f"{points.name}_condition_map")
    conds = (
        _conditions_at(cmap, points, keys, start, end, patient_key, patients, f"{points.name}_conditions")
        if cmap is not None
        else None
    )
    ov = _override_at(points, keys, end, patient_key, patients, f"{points.name}_override")
    if outreach:
        extra = [] if end in keys else [points.c[end]]
        seen_q = (
            select(*[points.c[k] for k in keys], *extra, v.c.patient_id)
            .select_from(
                v.join(points, and_(v.c.visit_date <= points.c[end], v.c.visit_date > points.c["year_before"]))
            )
            .distinct()
        )
        if patients is not None:
            seen_q = seen_q.where(v.c.patient_id.in_(patients))
        seen = seen_q.cte(f"{points.name}_seen")
        driver_pid = seen.c.patient_id

        def seen_match(t):
            return and_(*[t.c[k] == seen.c[k] for k in keys], t.c.patient_id == driver_pid)

        frm = seen.join(p, p.c.id == driver_pid).outerjoin(ov, seen_match(ov))
        if conds is not None:
            frm = frm.outerjoin(conds, seen_match(conds))
        clinical = clinically_eligible(
            conds.c.n_conditions if conds is not None else literal(0),
            ov.c.patient_id.isnot(None),
            ov.c.override_eligible,
        )
        return (
            select(*[seen.c[k] for k in keys], driver_pid.label("patient_id"))
            .select_from(frm)
            .where(payer_eligible(p.c.payer, rs), alive_at(p, seen.c[end]), clinical)
        )
    pid = points.c[patient_key]

    def key_match(t):
        return and_(*[t.c[k] == points.c[k] for k in keys], t.c.patient_id == pid)

    frm = points.join(p, p.c.id == pid).outerjoin(ov, key_match(ov))
    if conds is not None:
        frm = frm.outerjoin(conds, key_match(conds))
    n = func.coalesce(conds.c.n_conditions, 0) if conds is not None else literal(0, Integer)
    found = ov.c.patient_id.isnot(None)
    clinical = clinically_eligible(n, found, ov.c.override_eligible)
    return select(
        *[points.c[k] for k in keys],
        pid.label("patient_id"),
        *[points.c[k] for k in carry],
        n.label("n_conditions"),
        _flag(found).label("override_found"),
        ov.c.override_eligible,
        ov.c.override_date,
        ov.c.override_reason,
        p.c.payer,
        _flag(payer_eligible(p.c.payer, rs)).label("payer_eligible"),
        _flag(clinical).label("clinically_eligible"),
        _flag(and_(clinical, payer_eligible(p.c.payer, rs))).label("eligible"),
    ).select_from(frm)


def point_cte(as_of: dt.date, name: str = "as_of_point"):
    """One point in time (start = end = ``as_of``) for ``eligibility_select``."""
    return select(
        literal(as_of, Date).label("start_date"),
        literal(as_of, Date).label("end_date"),
        literal(as_of - dt.timedelta(days=SEEN_WITHIN_DAYS), Date).label("year_before"),
    ).cte(name)


# --------------------------------------------------------------------------- enrollment
def enrollment_spans(programs=None, where=None, name: str = "enrollment_spans"):
    """Each enrollment event with the date of the next event of the same patient and program: the event's
    status holds from its date until then.  Enrolled (or any status) at a date ``d`` = the span with
    ``in_span(spans, d)``: the latest event on or before ``d`` (by date, then id)."""
    ee = s.enrollment_event
    nxt = func.lead(ee.c.event_date).over(
        partition_by=[ee.c.patient_id, ee.c.program], order_by=[ee.c.event_date, ee.c.id]
    )
    q = select(
        ee.c.patient_id,
        ee.c.program,
        ee.c.status,
        ee.c.reason,
        ee.c.event_date.label("start_date"),
        nxt.label("next_date"),
    )
    if programs is not None:
        q = q.where(ee.c.program.in_(programs))
    if where is not None:
        q = q.where(where)
    return q.cte(name)


def in_span(spans, date):
    """The span's event is the latest one on or before ``date``."""
    return and_(spans.c.start_date <= date, or_(spans.c.next_date.is_(None), spans.c.next_date > date))


# --------------------------------------------------------------------------- consent (per minute)
def consent_covers(cn, patient_id, program, at):
    """A consent row counts for a minute of ``program`` on date ``at``: accepted, dated on or before it, not
    revoked before it (the engine's pre-consent exclusion)."""
    return and_(
        cn.c.patient_id == patient_id,
        cn.c.program == program,
        cn.c.decision == "accepted",
        cn.c.consent_date.isnot(None),
        cn.c.consent_date <= at,
        or_(cn.c.revoked_date.is_(None), cn.c.revoked_date >= at),
    )


# --------------------------------------------------------------------------- care plan (complex track)
def care_plan_revised_in_month(patient_id, service_month):
    """Complex CCM needs a care plan established (first version) or substantially revised in the month."""
    cp = s.care_plan
    return exists().where(
        cp.c.patient_id == patient_id,
        month_of(cp.c.established_date) == service_month,
        or_(cp.c.version == 1, cp.c.substantially_revised == true()),
    )


# --------------------------------------------------------------------------- the month's practitioner
def month_practitioner(patient_id, service_month, patient_practitioner, rs: rules_mod.RuleSet):
    """Whose month it is: the practitioner the CCM time was logged for, else who billed CCM, else the patient's
    current billing practitioner."""
    te, cl = s.time_entry, s.claim_line

    te_prac = (
        select(func.min(te.c.practitioner_id))
        .where(te.c.service_month == service_month, te.c.patient_id == patient_id, te.c.program == "CCM")
        .scalar_subquery()
    )
    cl_prac = (
        select(func.min(cl.c.practitioner_id))
        .where(
            cl.c.dos_month == service_month,
            cl.c.patient_id == patient_id,
            cl.c.cpt_code.in_(rs.codes_of(family="CCM")),
            cl.c.claim_id.not_in(replaced_claims()),
        )
        .scalar_subquery()
    )
    return func.coalesce(te_prac, cl_prac, patient_practitioner)


# --------------------------------------------------------------------------- initiating visit
def initiating_select(patients):
    """Per patient (``patients``: a CTE/subquery with ``patient_id``): when CCM started (first CCM minute, dated
    consent or enrollment), who initiated it (the first accepted consent's practitioner, else the current
    one), the qualifying visit by that practitioner in the 12 months before, and ``initiating_result``:
    pass (a qualifying visit), fail (new patient or not seen by the initiator in the year, and no qualifying
    visit) or na (no CCM start, or an established patient seen by the initiator)."""
    te, cn, ev, v, p = s.time_entry, s.consent, s.enrollment_event, s.visit, s.patient
    pid = patients.c.patient_id
    firsts = [
        select(te.c.service_date)
        .where(te.c.patient_id == pid, te.c.program == "CCM")
        .order_by(te.c.service_date)
        .limit(1),  # walks the (patient, date) index to the first CCM entry
        select(func.min(cn.c.consent_date)).where(
            cn.c.patient_id == pid, cn.c.program == "CCM", cn.c.decision == "accepted", cn.c.consent_date.isnot(None)
        ),
        select(func.min(ev.c.event_date)).where(
            ev.c.patient_id == pid, ev.c.program == "CCM", ev.c.status == "enrolled"
        ),
    ]
    starts = union_all(*[select(pid.label("patient_id"), q.scalar_subquery().label("d")) for q in firsts]).subquery(
        "ccm_starts"
    )
    first_consent_prac = (
        select(cn.c.practitioner_id)
        .where(cn.c.patient_id == starts.c.patient_id, cn.c.program == "CCM", cn.c.decision == "accepted")
        .order_by(case((cn.c.consent_date.is_(None), 1), else_=0), cn.c.consent_date, cn.c.id)
        .limit(1)
        .scalar_subquery()
    )
    start = (
        select(
            starts.c.patient_id,
            func.min(starts.c.d).label("ccm_start"),
            first_consent_prac.label("consent_practitioner_id"),
        )
        .where(starts.c.d.isnot(None))
        .group_by(starts.c.patient_id)
    ).subquery("ccm_start")
    pat = (
        select(
            p.c.id.label("patient_id"),
            start.c.ccm_start,
            p.c.first_seen_date,
            func.coalesce(start.c.consent_practitioner_id, p.c.billing_practitioner_id).label("initiator_id"),
        ).select_from(p.join(start, start.c.patient_id == p.c.id))
    ).cte("ccm_initiation")
    gap = days_from(v.c.visit_date, pat.c.ccm_start)
    in_window = and_(gap >= 0, gap <= INITIATING_LOOKBACK_DAYS, v.c.face_to_face == true())
    by_initiator = v.c.practitioner_id == pat.c.initiator_id
    qualifying = or_(v.c.cpt_code.in_(INITIATING_VISIT_CODES), v.c.visit_type.in_(INITIATING_VISIT_TYPES))
    qual_label = cast(v.c.visit_date, String(10)) + literal(" ") + v.c.cpt_code
    per = (
        select(
            pat.c.patient_id,
            pat.c.ccm_start,
            pat.c.first_seen_date,
            pat.c.initiator_id,
            func.max(case((and_(in_window, by_initiator, qualifying), v.c.visit_date))).label("qual_visit_date"),
            func.max(case((and_(in_window, by_initiator, qualifying), qual_label))).label("qual_visit"),
            func.max(case((and_(in_window, by_initiator), v.c.visit_date))).label("seen_date"),
            func.max(case((and_(in_window, not_(by_initiator), qualifying), qual_label))).label("other_visit"),
        )
        .select_from(pat.outerjoin(v, v.c.patient_id == pat.c.patient_id))
        .group_by(pat.c.patient_id, pat.c.ccm_start, pat.c.first_seen_date, pat.c.initiator_id)
    ).subquery("initiating_visits")
    new_patient = or_(
        per.c.first_seen_date.is_(None), days_from(per.c.first_seen_date, per.c.ccm_start) <= INITIATING_LOOKBACK_DAYS
    )
    result = case(
        (per.c.ccm_start.is_(None), "na"),
        (per.c.qual_visit.isnot(None), "pass"),
        (or_(new_patient, per.c.seen_date.is_(None)), "fail"),
        else_="na",
    )
    return select(*per.c, _flag(new_patient).label("new_patient"), result.label("initiating_result"))


# --------------------------------------------------------------------------- all prerequisites
def prerequisites_select(conn: Connection, base, rs: rules_mod.RuleSet):
    """Every prerequisite for each patient-month of ``base`` (a CTE: patient_id, service_month, month_start,
    month_end, practitioner_id), with ``<item>_result`` (pass / fail / na) and ``<item>_problem`` (the first
    problem code of ``HOLD_REASONS``) for each of ``PREREQUISITES``, plus the evidence columns the audit
    quotes."""
    b = base.c
    te, cn, cp, cl = s.time_entry, s.consent, s.care_plan, s.claim_line

    patients = select(distinct(b.patient_id).label("patient_id")).cte(f"{base.name}_patients")
    pids = select(patients.c.patient_id)

    # ---- eligibility
    elig = eligibility_select(
        conn,
        rs,
        base,
        ["service_month"],
        outreach=False,
        patients=pids,
        start="month_start",
        end="month_end",
        patient_key="patient_id",
        carry=("month_start", "month_end", "practitioner_id"),
    ).subquery(f"{base.name}_elig")
    # ``elig`` has one row per base row, with the base's columns: the problems below are driven by it and never
    # join the base again (SQLite joined the base to itself by scanning it once per row: 4,600 x 4,600 at 50,000
    # patients, 3 s of the audit month checklist)
    e = elig.c
    # billing eligibility is clinical (the payer decides who is offered CCM, not whether a month's care is
    # compliant; the audit's eligibility item is the same rule)
    elig_problem = case(
        (and_(elig.c.override_found == 1, elig.c.override_eligible != true()), "override"),
        (elig.c.clinically_eligible == 0, "conditions"),
        else_=null(),
    )

    # ---- initiating visit (per patient)
    ini = initiating_select(patients).subquery("pm_initiating")

    # ---- consent: every CCM consent judged against the month, the best one kept
    first_minute = (
        select(func.min(te.c.service_date))
        .where(te.c.service_month == b.service_month, te.c.patient_id == b.patient_id, te.c.program == "CCM")
        .scalar_subquery()
    )
    withfirst = select(*b, first_minute.label("first_minute_date")).cte(f"{base.name}_first_minute")
    w = withfirst.c
    limit = func.coalesce(w.first_minute_date, w.month_end)
    accepted = cn.c.decision == "accepted"
    tied = cn.c.practitioner_id == w.practitioner_id
    dated = cn.c.consent_date.isnot(None)
    in_time = and_(dated, cn.c.consent_date <= limit)
    not_revoked = or_(cn.c.revoked_date.is_(None), cn.c.revoked_date >= w.month_start)
    complete = and_(*[cn.c[k] == true() for k, _ in CONSENT_DISCLOSURES])
    checks = [accepted, tied, dated, in_time, not_revoked, complete]
    score = sum((_flag(c) * (2 ** (len(checks) - i)) for i, c in enumerate(checks)), literal(0, Integer))
    rn = (
        func.row_number()
        .over(partition_by=[w.patient_id, w.service_month], order_by=[score.desc(), cn.c.id])
        .label("rn")
    )
    problem = case(
        (not_(accepted), "declined"),
        (not_(tied), "practitioner"),
        (not_(dated), "undated"),
        (not_(in_time), "late"),
        (not_(not_revoked), "revoked"),
        *[(not_(cn.c[k] == true()), k) for k, _ in CONSENT_DISCLOSURES],
        else_=null(),
    )
    ranked = (
        select(
            w.patient_id,
            w.service_month,
            cn.c.id.label("consent_id"),
            cn.c.decision,
            cn.c.consent_date,
            cn.c.method,
            cn.c.practitioner_id.label("consent_practitioner_id"),
            cn.c.revoked_date,
            *[cn.c[k] for k, _ in CONSENT_DISCLOSURES],
            problem.label("consent_problem"),
            rn,
        ).select_from(withfirst.join(cn, and_(cn.c.patient_id == w.patient_id, cn.c.program == "CCM")))
    ).subquery("consent_ranked")
    best = select(*[c for c in ranked.c if c.name != "rn"]).where(ranked.c.rn == 1).subquery("consent_best")

    # ---- care plan in force at month end (newest established on or before it)
    rn2 = (
        func.row_number()
        .over(
            partition_by=[b.patient_id, b.service_month], order_by=[cp.c.established_date.desc(), cp.c.version.desc()]
        )
        .label("rn")
    )
    plans = (
        select(
            b.patient_id,
            b.service_month,
            cp.c.version.label("care_plan_version"),
            cp.c.established_date.label("care_plan_established"),
            cp.c.reviewed_date.label("care_plan_reviewed"),
            cp.c.shared_with_patient_date.label("care_plan_shared"),
            cp.c.signed_by_practitioner_id.label("care_plan_signed_by"),
            cp.c.covers_all_conditions,
            cp.c.has_measurable_goals,
            cp.c.electronic_access,
            case(
                (
                    and_(
                        cp.c.reviewed_date.isnot(None),
                        cp.c.reviewed_date <= b.month_end,
                        cp.c.reviewed_date > cp.c.established_date,
                    ),
                    cp.c.reviewed_date,
                ),
                else_=cp.c.established_date,
            ).label("care_plan_latest"),
            rn2,
        )
        .select_from(base.join(cp, cp.c.patient_id == b.patient_id))
        .where(cp.c.established_date <= b.month_end)
    ).subquery("care_plan_ranked")
    plan = select(*[c for c in plans.c if c.name != "rn"]).where(plans.c.rn == 1).subquery("care_plan_in_force")
    plan_flags = {
        "unsigned": plan.c.care_plan_signed_by.is_(None),
        "incomplete": or_(plan.c.covers_all_conditions != true(), plan.c.has_measurable_goals != true()),
        "stale": days_from(plan.c.care_plan_latest, e.month_end) > CARE_PLAN_REVIEW_DAYS,
        "not_shared": plan.c.care_plan_shared.is_(None),
        "no_electronic": plan.c.electronic_access != true(),
    }
    plan_problem = case(
        (plan.c.care_plan_version.is_(None), "none"), *[(cond, key) for key, cond in plan_flags.items()], else_=null()
    )

    # ---- program conflicts from the month's claims (replaced claims excluded)
    pcm_apcm = rs.codes_of(family="PCM") + rs.codes_of(family="APCM")
    live = cl.c.claim_id.not_in(replaced_claims())
    conflict_pcm = exists().where(
        cl.c.dos_month == e.service_month,
        cl.c.patient_id == e.patient_id,
        cl.c.cpt_code.in_(pcm_apcm or ["-"]),
        cl.c.practitioner_id == e.practitioner_id,
        live,
    )
    conflict_ccm = exists().where(
        cl.c.dos_month == e.service_month,
        cl.c.patient_id == e.patient_id,
        cl.c.cpt_code.in_(rs.codes_of(family="CCM")),
        cl.c.practitioner_id != e.practitioner_id,
        live,
    )
    conflict_problem = case((conflict_pcm, "pcm_apcm"), (conflict_ccm, "other_ccm"), else_=null())

    consent_problem = func.coalesce(best.c.consent_problem, case((best.c.consent_id.is_(None), "none"), else_=null()))
    # Stage 1 computes each problem once (MATERIALIZED: neither database re-evaluates the EXISTS and CASE
    # expressions for every column that reads them); stage 2 derives the pass / fail results from them.
    problems = (
        select(
            e.patient_id,
            e.service_month,
            e.month_start,
            e.month_end,
            e.practitioner_id,
            elig.c.n_conditions,
            elig.c.override_found,
            elig.c.override_eligible,
            elig.c.override_date,
            elig.c.override_reason,
            elig.c.payer,
            elig.c.payer_eligible,
            elig_problem.label("eligibility_problem"),
            ini.c.ccm_start,
            ini.c.first_seen_date,
            ini.c.initiator_id,
            ini.c.qual_visit,
            ini.c.qual_visit_date,
            ini.c.seen_date,
            ini.c.other_visit,
            ini.c.new_patient,
            case((ini.c.initiating_result == "fail", "missing"), else_=null()).label("initiating_visit_problem"),
            func.coalesce(ini.c.initiating_result, "na").label("initiating_visit_result"),
            select(func.min(te.c.service_date))
            .where(te.c.service_month == e.service_month, te.c.patient_id == e.patient_id, te.c.program == "CCM")
            .scalar_subquery()
            .label("first_minute_date"),
            *[c for c in best.c if c.name not in ("patient_id", "service_month", "consent_problem")],
            consent_problem.label("consent_problem"),
            *[c for c in plan.c if c.name not in ("patient_id", "service_month")],
            plan_problem.label("care_plan_problem"),
            conflict_problem.label("no_conflicting_claim_problem"),
        )
        .select_from(
            elig.outerjoin(ini, ini.c.patient_id == e.patient_id)
            .outerjoin(best, and_(best.c.patient_id == e.patient_id, best.c.service_month == e.service_month))
            .outerjoin(plan, and_(plan.c.patient_id == e.patient_id, plan.c.service_month == e.service_month))
        )
        .cte(f"{base.name}_problems")
        .prefix_with("MATERIALIZED")
    )
    pr = problems.c

    def result(key):
        return case((pr[f"{key}_problem"].is_(None), "pass"), else_="fail").label(f"{key}_result")

    return select(*pr, *[result(k) for k in PREREQUISITES if k != "initiating_visit"])


def hold_reasons(df: pd.DataFrame, only_failed_status: bool = False) -> list[str]:
    """Per row, the '; '-joined hold reasons (with their fixes) from the ``<item>_problem`` columns."""
    out: list[list[str]] = [[] for _ in range(len(df))]
    for key in PREREQUISITES:
        col = df[f"{key}_problem"].to_numpy() if f"{key}_problem" in df.columns else [None] * len(df)
        for i, prob in enumerate(col):
            if isinstance(prob, str) and prob:
                out[i].append(HOLD_REASONS[(key, prob)])
    return ["; ".join(x) for x in out]


def failed_prerequisites(df: pd.DataFrame) -> list[str]:
    """Per row, the comma-joined prerequisite keys that fail (the audit checklist items they answer)."""
    parts = [df[f"{k}_result"].to_numpy() == "fail" for k in PREREQUISITES]
    return [", ".join(k for k, flags in zip(PREREQUISITES, row) if flags) for row in zip(*parts)] if len(df) else []
