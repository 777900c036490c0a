"""Work queues: what each role does today.

* ``my_month``: the care manager's month: every enrolled patient whose month is not complete, with minutes
  so far, minutes to the next billable step, days left, last and next contact, phone and holds.
* ``caseload_capacity``: per care manager, the caseload against the minutes their FTE can give.
* ``denials_to_work``: each denied or underpaid claim line with its reason texts, likely fix, dollars and
  appeal deadline (``ccm_core.rules.appeals``), and the biller's status (``denial_work`` table).
* ``ar_aging``: submitted claims not paid yet, by age 0-30 / 31-60 / 61-90 / 90+ days.

Minutes come from the patient-month (``ccm_core.engine.patient_month`` via ``kpis.enrolled_month``); nothing here
recounts a time entry.  Aggregation runs in SQL on SQLite and PostgreSQL; Python only adds the dates and
texts to the (small) lists.
"""

from __future__ import annotations

import datetime as dt

import pandas as pd
from sqlalchemy import Float, Integer, and_, case, cast, exists, func, literal, not_, null, or_, select
from sqlalchemy.engine import Connection, Engine

from ccm_core import rules as rules_mod
from ccm_core.engine import compliance
from ccm_core.engine import patient_month as eng
from ccm_core.engine import sql as sqlparts
from ccm_core.engine.filters import Filters
from ccm_core.kpis import program as kpis
from ccm_core.kpis.definitions import define
from ccm_core.rules import appeals
from ccm_core.storage import db
from ccm_core.storage import schema as s
from ccm_core.storage import stored as pm_store

# Countable care-management minutes one full-time care manager can give in a month.  A practice setting
# (``setting`` row ``queues.minutes_per_fte``); the default (100 hours of a ~173-hour month) is our
# assumption, not a rule: the rest of the month goes to non-countable work (scheduling, charting, meetings).
MINUTES_PER_FTE_KEY = "queues.minutes_per_fte"
DEFAULT_MINUTES_PER_FTE = 6000
AGING_BUCKETS = ((0, 30, "0-30"), (31, 60, "31-60"), (61, 90, "61-90"), (91, None, "90+"))
DENIAL_STATUSES = s.DENIAL_WORK_STATUSES  # worked, appealed, written_off (no row = open)
DENIAL_ROLES = ("admin", "program_lead", "biller")  # who may change a denial's status

D = {
    "my_month": define(
        "my_month",
        "My month (care manager's list)",
        "Active enrolled patients (latest enrollment event on or before the as-of day is 'enrolled') whose month "
        "is not complete: counted minutes below the last billable step of their track (non-complex 20/40/60 from "
        "99490 + 99439 x2; complex 60/90 from 99487 + 99489 when a moderate/high complexity assessment is "
        "recorded for the month). Minutes to next step = next step - counted minutes; last contact = latest "
        "interactive CCM time entry on or before the as-of day; holds = the billing prerequisites that fail for "
        "the month (eligibility, initiating visit, consent, care plan, conflicting claim: ccm_core.engine.compliance, "
        "the rules the billing status and the audit use), with their fixes",
        "n/a (a list)",
        "Patients whose month is complete; patients not enrolled on the as-of day",
        "docs/reference/ccm-rules.md §1-4; thresholds and caps from ccm_core/rules/codes.csv",
        "minutes",
    ),
    "caseload_capacity": define(
        "caseload_capacity",
        "Caseload and minutes capacity per care manager",
        "Per care manager: enrolled patients (caseload), counted minutes so far this month, minutes still needed "
        "to bring every patient to 20 (sum of 20 - minutes for patients under 20), expected monthly minutes "
        "(caseload x 20, the first billable step) and capacity (FTE x minutes per FTE, setting "
        "queues.minutes_per_fte, default 6000 = 100 countable hours)",
        "Capacity (FTE x minutes per FTE) for the load; FTE for patients per FTE",
        "Care managers without an FTE on record get no capacity (shown as n/a)",
        "Our design (practice setting); thresholds docs/reference/ccm-rules.md §1",
        "minutes",
    ),
    "denials_to_work": define(
        "denials_to_work",
        "Denials to work",
        "Claim lines whose latest adjudication (highest adjudication sequence, then newest remittance) paid "
        "nothing with a denial adjustment or claim status 4 (denied), or paid part with a denial adjustment "
        "(underpaid). Denied $ = the line's adjustments with CARCs other than 1, 2, 3, 45, 253 (patient share, "
        "contractual, sequestration); fee value = national fee x units. Deadline: redetermination 120 days "
        "after presumed receipt (notice date + 5 days) of the remittance (42 CFR 405.942); reconsideration 180 "
        "days after the redetermination notice + 5 when an appeal was upheld (405.962); a new claim within 1 "
        "calendar year of the date of service when the claim was unprocessable, RARC MA130 (424.44)",
        "n/a (a list)",
        "Exact duplicates (CARC 18 only), lines of claims replaced by a frequency-7 claim, lines paid in full later",
        "docs/reference/ccm-rules.md §7; ccm_core/rules/appeal_deadlines.csv, denial_fixes.csv",
        "dollars",
    ),
    "ar_aging": define(
        "ar_aging",
        "A/R aging of unpaid claims",
        "Submitted claims (on or before the as-of day) with no payment received: their total charge, by days "
        "from submission to the as-of day (0-30, 31-60, 61-90, 90+), split into awaiting the payer (no "
        "remittance yet) and denied (adjudicated, nothing paid)",
        "n/a (counts and dollars per bucket)",
        "Claims with any payment; claims replaced by a frequency-7 claim; claims whose lines were all written "
        "off in the denial queue",
        "docs/reference/kpi-definitions.md (A/R days, HFMA); our buckets",
        "dollars",
    ),
}


def _frame(df: pd.DataFrame, key: str) -> pd.DataFrame:
    df.attrs["definition"] = D[key]
    return df


def _date(v) -> dt.date | None:
    if v is None or (isinstance(v, float) and pd.isna(v)) or v is pd.NaT:
        return None
    if isinstance(v, dt.datetime):
        return v.date()
    if isinstance(v, str):
        return dt.date.fromisoformat(v[:10])
    return v


def _full_name(first, last):
    return func.coalesce(first, "") + literal(" ") + func.coalesce(last, "")


# --------------------------------------------------------------------------- steps
def billable_steps(rs: rules_mod.RuleSet, track: str) -> list[int]:
    """Minutes at which a track earns its next unit: 20/40/60 for non-complex CCM, 60/90 for complex.

    Base threshold, then one step per add-on unit up to the cap; with no known cap (99489), one add-on step.
    """
    base_code, addon_code = rs.track_codes(track)
    base = rs.code(base_code)
    steps = [int(base.threshold_minutes)]
    if addon_code:
        add = rs.code(addon_code)
        n = add.unit_cap if add.unit_cap is not None else 1
        steps += [int(base.threshold_minutes) + k * int(add.increment_minutes) for k in range(1, n + 1)]
    return steps


def _next_step(minutes, complex_, rs: rules_mod.RuleSet):
    whens = []
    for step in billable_steps(rs, "complex"):
        whens.append((and_(complex_, minutes < step), literal(step, Integer)))
    for step in billable_steps(rs, "non_complex"):
        whens.append((and_(not_(complex_), minutes < step), literal(step, Integer)))
    return case(*whens, else_=null())


# --------------------------------------------------------------------------- my month
MY_MONTH_COLUMNS = [
    "patient_id",
    "mrn",
    "patient_name",
    "phone",
    "care_manager_id",
    "care_manager",
    "counted_minutes",
    "complex",
    "next_step",
    "minutes_to_next",
    "days_left",
    "last_contact_date",
    "days_since_contact",
    "contacted_this_month",
    "next_contact_date",
    "consent_hold",
    "care_plan_hold",
    "hold_items",
    "holds",
]


def my_month(conn: Connection, f: Filters, as_of: dt.date) -> pd.DataFrame:
    """The care manager's list for the month of ``as_of`` (scope ``f`` to one care manager for "mine").

    Sorted longest without contact first (never contacted at the top), then fewest minutes to the next step.
    ``attrs``: ``at_zero`` (patients at 0 minutes), ``enrolled`` (all enrolled, complete months included),
    ``month``, ``days_left``.
    """
    rs = kpis.rules_in_force(conn)
    month = db.month_int(as_of)
    fm = f.with_months(month)
    em = kpis.enrolled_month(conn, fm, rs, month, as_of)
    p, st, te, ca = s.patient, s.staff, s.time_entry, s.complexity_assessment
    last = (
        select(te.c.patient_id, func.max(te.c.service_date).label("last_contact_date"))
        .where(
            te.c.program == "CCM",
            te.c.interactive.is_(True),
            te.c.service_date <= as_of,
            te.c.patient_id.in_(select(em.c.patient_id)),
        )
        .group_by(te.c.patient_id)
    ).subquery("last_contact")
    complex_ = exists().where(ca.c.patient_id == em.c.patient_id, ca.c.service_month == month)
    minutes = cast(em.c.counted_minutes, Integer)
    nxt = _next_step(minutes, complex_, rs)
    # Holds: the billing prerequisites of the compliance rules (the same ones the billing status and the
    # audit apply), for every patient on the list, those at 0 minutes included.
    cal = compliance.calendar_cte([month], "my_month_calendar")
    base = (
        select(
            em.c.patient_id,
            cal.c.service_month,
            cal.c.month_start,
            cal.c.month_end,
            compliance.month_practitioner(em.c.patient_id, cal.c.service_month, p.c.billing_practitioner_id, rs).label(
                "practitioner_id"
            ),
        ).select_from(em.join(p, p.c.id == em.c.patient_id).join(cal, cal.c.service_month == month))
    ).cte("my_month_base")
    pre = compliance.prerequisites_select(conn, base, rs).subquery("my_month_prereq")
    first_day, month_end = db.month_bounds(month)
    q = select(
        em.c.patient_id,
        p.c.mrn,
        _full_name(p.c.first_name, p.c.last_name).label("patient_name"),
        p.c.phone,
        p.c.care_manager_id,
        func.coalesce(_full_name(st.c.first_name, st.c.last_name), "unassigned").label("care_manager"),
        minutes.label("counted_minutes"),
        case((complex_, 1), else_=0).label("complex"),
        nxt.label("next_step"),
        (nxt - minutes).label("minutes_to_next"),
        last.c.last_contact_date,
        p.c.next_contact_date,
        *[pre.c[f"{k}_{x}"] for k in compliance.PREREQUISITES for x in ("result", "problem")],
    ).select_from(
        em.join(p, p.c.id == em.c.patient_id)
        .outerjoin(st, st.c.id == p.c.care_manager_id)
        .outerjoin(last, last.c.patient_id == em.c.patient_id)
        .outerjoin(pre, pre.c.patient_id == em.c.patient_id)
    )
    rows = conn.execute(q).mappings().all()
    enrolled = len(rows)
    pre_cols = [f"{k}_{x}" for k in compliance.PREREQUISITES for x in ("result", "problem")]
    df = pd.DataFrame(
        rows,
        columns=[
            c
            for c in MY_MONTH_COLUMNS
            if c
            not in (
                "days_left",
                "days_since_contact",
                "contacted_this_month",
                "holds",
                "consent_hold",
                "care_plan_hold",
                "hold_items",
            )
        ]
        + pre_cols,
    )
    df["consent_hold"] = (df["consent_result"] == "fail").astype(int)
    df["care_plan_hold"] = (df["care_plan_result"] == "fail").astype(int)
    df["hold_items"] = compliance.failed_prerequisites(df) if len(df) else []
    df["holds"] = compliance.hold_reasons(df) if len(df) else []
    at_zero = int((df["counted_minutes"] == 0).sum()) if enrolled else 0
    df = df[df["next_step"].notna()].copy()
    for col in ("last_contact_date", "next_contact_date"):
        df[col] = [_date(v) for v in df[col]]
    df["days_left"] = (month_end - as_of).days
    df["days_since_contact"] = pd.array(
        [(as_of - d).days if d else None for d in df["last_contact_date"]], dtype="Int64"
    )
    df["contacted_this_month"] = [bool(d and d >= first_day) for d in df["last_contact_date"]]
    for col in ("counted_minutes", "next_step", "minutes_to_next", "complex", "consent_hold", "care_plan_hold"):
        df[col] = df[col].astype(int)
    df["_never"] = df["days_since_contact"].isna()
    df = (
        df.sort_values(
            ["_never", "days_since_contact", "minutes_to_next", "patient_id"],
            ascending=[False, False, True, True],
            na_position="first",
        )
        .drop(columns="_never")
        .reset_index(drop=True)
    )[MY_MONTH_COLUMNS]
    df.attrs.update(at_zero=at_zero, enrolled=enrolled, month=month, days_left=(month_end - as_of).days, as_of=as_of)
    return _frame(df, "my_month")


def minutes_per_fte(conn: Connection) -> int:
    """Counted minutes one full-time care manager can give a month (Admin setting), for caseload capacity."""
    row = conn.execute(select(s.setting.c.value).where(s.setting.c.key == MINUTES_PER_FTE_KEY)).scalar()
    try:
        return int(float(row)) if row is not None else DEFAULT_MINUTES_PER_FTE
    except ValueError:
        return DEFAULT_MINUTES_PER_FTE


def caseload_capacity(conn: Connection, f: Filters, as_of: dt.date) -> pd.DataFrame:
    """One row per care manager with an enrolled caseload on ``as_of`` (see ``D["caseload_capacity"]``)."""
    rs = kpis.rules_in_force(conn)
    month = db.month_int(as_of)
    em = kpis.enrolled_month(conn, f.with_months(month), rs, month, as_of)
    p, st, te = s.patient, s.staff, s.time_entry
    first = rs.code(rs.track_codes("non_complex")[0]).threshold_minutes
    mins = cast(em.c.counted_minutes, Integer)
    contacted = exists().where(
        te.c.patient_id == em.c.patient_id,
        te.c.program == "CCM",
        te.c.interactive.is_(True),
        te.c.service_date.between(db.month_bounds(month)[0], as_of),
    )
    q = (
        select(
            p.c.care_manager_id,
            func.coalesce(func.max(_full_name(st.c.first_name, st.c.last_name)), "unassigned").label("care_manager"),
            func.max(cast(st.c.fte, Float)).label("fte"),
            func.count().label("caseload"),
            func.coalesce(func.sum(mins), 0).label("minutes_so_far"),
            func.coalesce(func.sum(case((mins < first, first - mins), else_=0)), 0).label("minutes_to_first_step"),
            func.coalesce(func.sum(case((mins == 0, 1), else_=0)), 0).label("at_zero"),
            func.coalesce(func.sum(case((contacted, 0), else_=1)), 0).label("not_contacted"),
        )
        .select_from(em.join(p, p.c.id == em.c.patient_id).outerjoin(st, st.c.id == p.c.care_manager_id))
        .group_by(p.c.care_manager_id)
        .order_by(p.c.care_manager_id)
    )
    df = pd.DataFrame(
        conn.execute(q).mappings().all(),
        columns=[
            "care_manager_id",
            "care_manager",
            "fte",
            "caseload",
            "minutes_so_far",
            "minutes_to_first_step",
            "at_zero",
            "not_contacted",
        ],
    )
    per_fte = minutes_per_fte(conn)
    df["expected_minutes"] = df["caseload"].astype(int) * first
    df["capacity_minutes"] = df["fte"].astype(float) * per_fte
    df["patients_per_fte"] = df["caseload"].astype(float) / df["fte"].astype(float).where(df["fte"] > 0)
    df["load"] = df["expected_minutes"] / df["capacity_minutes"].where(df["capacity_minutes"] > 0)
    df.attrs.update(minutes_per_fte=per_fte, first_step=first, as_of=as_of)
    return _frame(df, "caseload_capacity")


# --------------------------------------------------------------------------- denials
DENIAL_COLUMNS = [
    "claim_line_id",
    "claim_id",
    "claim_number",
    "patient_id",
    "mrn",
    "patient_name",
    "payer",
    "service_date",
    "cpt_code",
    "units",
    "charge",
    "paid",
    "kind",
    "denied_amount",
    "fee_value",
    "carcs",
    "rarcs",
    "reason",
    "remark",
    "fix",
    "route",
    "notice_date",
    "deadline_kind",
    "deadline",
    "days_to_deadline",
    "appeal_level",
    "appeal_filed",
    "appeal_outcome",
    "status",
    "status_by",
    "status_at",
    "note",
]


def _latest_line_adjudication():
    """Per claim line its latest adjudication (highest adjudication sequence, newest remittance).

    From the remittance's own line for it (SVC), or, for a remittance without service lines, from the claim
    payment spread over the claim's lines by their share of the charge.
    """
    r, rl, cl, c = s.remittance, s.remittance_line, s.claim_line, s.claim
    share = cast(cl.c.charge, Float) / func.nullif(cast(c.c.total_charge, Float), 0.0)
    with_lines = (
        select(
            rl.c.claim_line_id,
            rl.c.id.label("remit_line_id"),
            r.c.id.label("remit_id"),
            r.c.status_code,
            r.c.received_date,
            r.c.adjudication_seq,
            cast(rl.c.paid, Float).label("paid"),
            literal(1.0, Float).label("share"),
        )
        .join(r, r.c.id == rl.c.remittance_id)
        .where(rl.c.claim_line_id.isnot(None))
    )
    claim_only = (
        select(
            cl.c.id.label("claim_line_id"),
            cast(null(), Integer).label("remit_line_id"),
            r.c.id.label("remit_id"),
            r.c.status_code,
            r.c.received_date,
            r.c.adjudication_seq,
            (cast(r.c.paid_amount, Float) * func.coalesce(share, 0.0)).label("paid"),
            func.coalesce(share, 0.0).label("share"),
        )
        .select_from(r.join(c, c.c.id == r.c.claim_id).join(cl, cl.c.claim_id == c.c.id))
        .where(~exists().where(rl.c.remittance_id == r.c.id))
    )
    both = with_lines.union_all(claim_only).subquery("line_adjudications")
    rn = (
        func.row_number()
        .over(
            partition_by=both.c.claim_line_id,
            order_by=[both.c.adjudication_seq.desc(), both.c.received_date.desc(), both.c.remit_id.desc()],
        )
        .label("rn")
    )
    ranked = select(both, rn).subquery("ranked")
    return select(ranked).where(ranked.c.rn == 1).subquery("latest_line")


def _line_adjustments(latest, ra):
    """Join condition: the adjustments of a line's latest adjudication, its own and the claim-level ones."""
    return and_(
        ra.c.remittance_id == latest.c.remit_id,
        or_(ra.c.remittance_line_id.is_(None), ra.c.remittance_line_id == latest.c.remit_line_id),
    )


def _adjusted(latest, ra):
    """A claim-level adjustment counts for a line by its share of the charge."""
    return case(
        (ra.c.remittance_line_id.is_(None), cast(ra.c.amount, Float) * latest.c.share), else_=cast(ra.c.amount, Float)
    )


def denials_to_work(conn: Connection, f: Filters, as_of: dt.date, include_closed: bool = True) -> pd.DataFrame:
    """Denied and underpaid claim lines of claims with a date of service in ``f``'s months.

    Most urgent first: open lines by deadline (still fileable before passed ones), then worked / appealed,
    written off last.
    ``include_closed=False`` leaves out written-off lines.
    """
    rs = kpis.rules_in_force(conn)
    # the line as an alias: the claim filter's EXISTS over claim_line must not correlate with the lines listed
    c, cl, p, ra, rr = s.claim, s.claim_line.alias("line"), s.patient, s.remittance_adjustment, s.remittance_remark
    ap, dw = s.appeal, s.denial_work
    latest = _latest_line_adjudication()
    denial_carc = and_(ra.c.carc.not_in(sqlparts.NOT_DENIAL_CARCS), ra.c.carc != sqlparts.DUPLICATE_CARC)
    adj = (
        select(latest.c.claim_line_id, func.sum(_adjusted(latest, ra)).label("denied_amount"))
        .join(ra, _line_adjustments(latest, ra))
        .where(denial_carc)
        .group_by(latest.c.claim_line_id)
    ).subquery("line_denial_adj")
    dup_only = and_(
        exists().where(ra.c.remittance_id == latest.c.remit_id, ra.c.carc == sqlparts.DUPLICATE_CARC),
        not_(exists().where(ra.c.remittance_id == latest.c.remit_id, denial_carc)),
    )
    denied_amt = func.coalesce(adj.c.denied_amount, 0.0)
    is_denied = and_(latest.c.paid <= 0, or_(denied_amt > 0, latest.c.status_code == sqlparts.DENIAL_STATUS))
    is_under = and_(latest.c.paid > 0, denied_amt > 0)
    codes = kpis.program_codes(rs, f)
    fee = (
        case(
            *[(cl.c.cpt_code == code, eng.fee_expr(rs, code, cl.c.dos_month)) for code in codes],
            else_=literal(0.0, Float),
        )
        if codes
        else literal(0.0, Float)
    )
    last_appeal_rn = (
        func.row_number()
        .over(partition_by=ap.c.claim_id, order_by=[ap.c.filed_date.desc(), ap.c.id.desc()])
        .label("rn")
    )
    appeals_ranked = select(
        ap.c.claim_id, ap.c.level, ap.c.filed_date, ap.c.outcome, ap.c.outcome_date, last_appeal_rn
    ).subquery("appeals_ranked")
    last_appeal = select(appeals_ranked).where(appeals_ranked.c.rn == 1).subquery("last_appeal")
    q = (
        select(
            cl.c.id.label("claim_line_id"),
            c.c.id.label("claim_id"),
            c.c.claim_number,
            c.c.patient_id,
            p.c.mrn,
            _full_name(p.c.first_name, p.c.last_name).label("patient_name"),
            c.c.payer,
            cl.c.service_date,
            cl.c.cpt_code,
            cl.c.units,
            cast(cl.c.charge, Float).label("charge"),
            latest.c.paid,
            case((is_denied, "denied"), else_="underpaid").label("kind"),
            case((denied_amt > 0, denied_amt), else_=cast(cl.c.charge, Float)).label("denied_amount"),
            (fee * cl.c.units).label("fee_value"),
            latest.c.remit_id,
            latest.c.remit_line_id,
            latest.c.share,
            latest.c.received_date.label("notice_date"),
            last_appeal.c.level.label("appeal_level"),
            last_appeal.c.filed_date.label("appeal_filed"),
            last_appeal.c.outcome.label("appeal_outcome"),
            last_appeal.c.outcome_date.label("appeal_outcome_date"),
            dw.c.status,
            dw.c.updated_by.label("status_by"),
            dw.c.updated_at.label("status_at"),
            dw.c.note,
        )
        .select_from(
            cl.join(c, c.c.id == cl.c.claim_id)
            .join(p, p.c.id == c.c.patient_id)
            .join(latest, latest.c.claim_line_id == cl.c.id)
            .outerjoin(adj, adj.c.claim_line_id == cl.c.id)
            .outerjoin(last_appeal, last_appeal.c.claim_id == c.c.id)
            .outerjoin(dw, dw.c.claim_line_id == cl.c.id)
        )
        .where(
            kpis.claim_where(f, rs),
            cl.c.dos_month.between(f.month_from, f.month_to),
            cl.c.cpt_code.in_(codes or ["-"]),
            c.c.id.not_in(sqlparts.replaced_claims()),
            or_(is_denied, is_under),
            not_(dup_only),
            latest.c.received_date <= as_of,
        )
    )
    if not include_closed:
        q = q.where(or_(dw.c.status.is_(None), dw.c.status != "written_off"))
    lines = q.cte("denied_lines")
    # reason codes of those lines: the line's adjustments, and the remarks on the line or the whole claim
    carc_rows = conn.execute(
        select(lines.c.claim_line_id, ra.c.carc, func.sum(_adjusted(lines, ra)).label("amount"))
        .join(ra, _line_adjustments(lines, ra))
        .where(denial_carc)
        .group_by(lines.c.claim_line_id, ra.c.carc)
    ).all()
    rarc_rows = conn.execute(
        select(lines.c.claim_line_id, rr.c.rarc)
        .join(rr, rr.c.remittance_id == lines.c.remit_id)
        .where(or_(rr.c.remittance_line_id.is_(None), rr.c.remittance_line_id == lines.c.remit_line_id))
        .distinct()
    ).all()
    df = pd.DataFrame(conn.execute(select(lines)).mappings().all())
    if df.empty:
        return _frame(pd.DataFrame(columns=DENIAL_COLUMNS), "denials_to_work")
    carcs = (
        pd.DataFrame(carc_rows, columns=["claim_line_id", "carc", "amount"])
        .sort_values(["claim_line_id", "amount", "carc"], ascending=[True, False, True])
        .groupby("claim_line_id")["carc"]
        .agg(list)
    )
    rarcs = (
        pd.DataFrame(rarc_rows, columns=["claim_line_id", "rarc"])
        .sort_values(["claim_line_id", "rarc"])
        .groupby("claim_line_id")["rarc"]
        .agg(list)
    )
    df["carc_list"] = df["claim_line_id"].map(carcs).map(lambda v: v if isinstance(v, list) else [])
    df["rarc_list"] = df["claim_line_id"].map(rarcs).map(lambda v: v if isinstance(v, list) else [])
    df["carcs"] = df["carc_list"].map(", ".join)
    df["rarcs"] = df["rarc_list"].map(", ".join)
    df["reason"] = df["carc_list"].map(lambda cs: "; ".join(f"CARC {x}: {rs.carc_text(x)}" for x in cs))
    df["remark"] = df["rarc_list"].map(lambda cs: "; ".join(f"{x}: {rs.rarc_text(x)}" for x in cs))
    found = [appeals.likely_fix(cs, rs_) for cs, rs_ in zip(df["carc_list"], df["rarc_list"])]
    df["fix"] = [x.fix if x else "Read the reason codes; check the claim against the month's checklist." for x in found]
    df["route"] = [x.route if x else "recheck" for x in found]
    for col in ("service_date", "notice_date", "appeal_filed", "appeal_outcome_date"):
        df[col] = [_date(v) for v in df[col]]
    _add_deadlines(df, as_of)
    for col in ("charge", "paid", "denied_amount", "fee_value"):
        df[col] = df[col].astype(float).round(2)
    order = {None: 0, "worked": 1, "appealed": 2, "written_off": 3}
    df["_rank"] = df["status"].map(lambda v: order.get(v if isinstance(v, str) else None, 0))
    df["_passed"] = (df["days_to_deadline"].fillna(0) < 0).astype(int)  # still fileable first
    df["_dl"] = pd.to_datetime(df["deadline"])
    df = df.sort_values(["_rank", "_passed", "_dl", "claim_number", "claim_line_id"], na_position="last").reset_index(
        drop=True
    )
    df["status"] = df["status"].where(df["status"].notna(), "open")
    return _frame(df[DENIAL_COLUMNS], "denials_to_work")


def _add_deadlines(df: pd.DataFrame, as_of: dt.date) -> None:
    """The deadline each line faces, from ``appeals.deadline_rules()`` (vectorised over the list).

    Unprocessable (MA130): a new claim within a year of the date of service.  An appeal on file that was
    upheld: reconsideration from its decision date.  A pending appeal: no filing deadline.  Else:
    redetermination from the remittance date.
    """
    rules = appeals.deadline_rules()
    unprocessable = df["rarc_list"].map(lambda rs_: appeals.UNPROCESSABLE_RARC in rs_)
    outcome = df["appeal_outcome"].fillna("")
    upheld = (outcome == "upheld") & df["appeal_outcome_date"].notna()
    pending = df["appeal_filed"].notna() & (outcome == "pending")
    kind = pd.Series("redetermination", index=df.index, dtype=object)
    kind[upheld] = "reconsideration"
    kind[unprocessable] = "corrected_claim"
    kind[pending & ~unprocessable] = None
    start = df["notice_date"].where(kind == "redetermination")
    start = start.where(kind != "reconsideration", df["appeal_outcome_date"])
    start = start.where(kind != "corrected_claim", df["service_date"])
    deadline = pd.Series(pd.NaT, index=df.index, dtype="datetime64[ns]")
    for key, rule in rules.items():
        mask = (kind == key) & start.notna()
        if mask.any():
            deadline[mask] = rule.deadline_series(pd.to_datetime(start[mask]))
    df["deadline_kind"] = kind
    df["deadline"] = [d.date() if not pd.isna(d) else None for d in deadline]
    df["days_to_deadline"] = pd.array([(d - as_of).days if d else None for d in df["deadline"]], dtype="Int64")


def set_denial_status(
    engine: Engine,
    claim_line_id: int,
    status: str | None,
    *,
    username: str,
    role: str,
    note: str | None = None,
    page: str = "denials",
) -> None:
    """Record the biller's status of a denied line (None = back to open), and write it to the access log.

    Refuses roles outside ``DENIAL_ROLES`` (checked here, on the server side, whatever the page showed).
    """
    if role not in DENIAL_ROLES:
        raise PermissionError(f"The {role} role cannot change the status of a denial.")
    if status is not None and status not in DENIAL_STATUSES:
        raise ValueError(f"Unknown denial status {status!r}; known: {', '.join(DENIAL_STATUSES)}")
    dw, cl, c = s.denial_work, s.claim_line, s.claim
    now = dt.datetime.now()
    with engine.begin() as conn:
        line = conn.execute(
            select(cl.c.id, c.c.claim_number, cl.c.patient_id, cl.c.line_number)
            .join(c, c.c.id == cl.c.claim_id)
            .where(cl.c.id == int(claim_line_id))
        ).first()
        if line is None:
            raise ValueError(f"No claim line {claim_line_id}")
        before = conn.execute(select(dw.c.status).where(dw.c.claim_line_id == line.id)).scalar()
        conn.execute(dw.delete().where(dw.c.claim_line_id == line.id))
        if status is not None:
            conn.execute(
                dw.insert().values(
                    claim_line_id=line.id, status=status, note=(note or None), updated_by=username, updated_at=now
                )
            )
        conn.execute(
            s.access_log.insert().values(
                at=now,
                username=username,
                role=role,
                action="denial_status",
                page=page,
                patient_count=1,
                detail=(
                    f"claim {line.claim_number} line {line.line_number} (claim_line_id {line.id}): "
                    f"{before or 'open'} -> {status or 'open'}" + (f"; note: {note}" if note else "")
                )[:2000],
            )
        )
        pm_store.record_write(conn, pm_store.Scope.for_tables({"denial_work"}))


# --------------------------------------------------------------------------- A/R aging
def _unpaid_claims(f: Filters, rs: rules_mod.RuleSet, as_of: dt.date):
    """Submitted, unpaid claims with their age in days and whether the payer has answered (a subquery)."""
    c, p, r, cl, dw = s.claim, s.patient, s.remittance, s.claim_line, s.denial_work
    paid = exists().where(r.c.claim_id == c.c.id, r.c.paid_amount > 0, r.c.received_date <= as_of)
    answered = exists().where(r.c.claim_id == c.c.id, r.c.received_date <= as_of)
    open_line = exists().where(
        cl.c.claim_id == c.c.id, not_(exists().where(dw.c.claim_line_id == cl.c.id, dw.c.status == "written_off"))
    )
    age = kpis.days_between(c.c.submitted_date, literal(as_of)).label("age_days")
    bucket = case(
        *[((age <= hi) if hi is not None else (age >= lo), label) for lo, hi, label in AGING_BUCKETS[:-1]],
        else_=AGING_BUCKETS[-1][2],
    ).label("bucket")
    return (
        select(
            c.c.id.label("claim_id"),
            c.c.claim_number,
            c.c.patient_id,
            p.c.mrn,
            _full_name(p.c.first_name, p.c.last_name).label("patient_name"),
            c.c.payer,
            c.c.submitted_date,
            cast(c.c.total_charge, Float).label("charge"),
            age,
            bucket,
            case((answered, "denied"), else_="awaiting payer").label("state"),
        )
        .select_from(c.join(p, p.c.id == c.c.patient_id))
        .where(
            kpis.claim_where(f, rs),
            c.c.submitted_date <= as_of,
            not_(paid),
            open_line,
            c.c.id.not_in(sqlparts.replaced_claims()),
        )
    ).subquery("unpaid")


def ar_aging(conn: Connection, f: Filters, as_of: dt.date) -> pd.DataFrame:
    """Rows (bucket, state, claims, dollars) for every bucket and state, zeros included, in bucket order."""
    rs = kpis.rules_in_force(conn)
    u = _unpaid_claims(f, rs, as_of)
    got = conn.execute(
        select(
            u.c.bucket,
            u.c.state,
            func.count().label("claims"),
            func.coalesce(func.sum(u.c.charge), 0.0).label("dollars"),
        ).group_by(u.c.bucket, u.c.state)
    ).all()
    have = {(b, st_): (int(n), float(d)) for b, st_, n, d in got}
    rows = [
        {
            "bucket": label,
            "state": st_,
            "claims": have.get((label, st_), (0, 0.0))[0],
            "dollars": round(have.get((label, st_), (0, 0.0))[1], 2),
        }
        for _, _, label in AGING_BUCKETS
        for st_ in ("awaiting payer", "denied")
    ]
    df = pd.DataFrame(rows)
    df.attrs["as_of"] = as_of
    return _frame(df, "ar_aging")


def ar_claims(
    conn: Connection, f: Filters, as_of: dt.date, bucket: str | None = None, state: str | None = None
) -> pd.DataFrame:
    """The claims behind one bar of ``ar_aging`` (oldest first)."""
    rs = kpis.rules_in_force(conn)
    u = _unpaid_claims(f, rs, as_of)
    q = select(u)
    if bucket:
        q = q.where(u.c.bucket == bucket)
    if state:
        q = q.where(u.c.state == state)
    q = q.order_by(u.c.age_days.desc(), u.c.claim_number)
    cols = [
        "claim_id",
        "claim_number",
        "patient_id",
        "mrn",
        "patient_name",
        "payer",
        "submitted_date",
        "charge",
        "age_days",
        "bucket",
        "state",
    ]
    df = pd.DataFrame(conn.execute(q).mappings().all(), columns=cols)
    df["submitted_date"] = [_date(v) for v in df["submitted_date"]]
    df["charge"] = df["charge"].astype(float).round(2)
    return _frame(df, "ar_aging")
