"""The audit checklist: each billed patient-month against the CMS / MAC review items, with evidence.

Why set-based: an auditor runs the checklist over a whole month (thousands of
patient-months) as often as over one sampled patient-month, so every item is
computed by a handful of SQL statements over *all* requested patient-months at
once (CTEs, GROUP BY, correlated sub-selects) that run on SQLite and
PostgreSQL alike.  Python only turns the small per-patient-month result into
pass / fail / na and an evidence sentence.

Minutes, supported codes, thresholds and billing findings come from the engine's
patient-month rows (what ``ccm_core.engine.read.patient_months`` reads, stored when
current): the checklist never recounts minutes.  The
raw-table items (eligibility, initiating visit, consent, care plan, time log,
documentation quality) read the tables themselves because they judge the
*record*, not the count.

Sources: ``docs/reference/ccm-rules.md`` §3, 4, 6, 10 and
``docs/reference/kpi-definitions.md`` §3.3.  Thresholds that are judgement calls
(what is a vague note, what looks reconstructed) are module-level data below
so a compliance lead can read and tune them.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np
import pandas as pd
from sqlalchemy import (
    Date,
    Float,
    Integer,
    String,
    and_,
    case,
    cast,
    column,
    distinct,
    false,
    func,
    literal,
    not_,
    or_,
    select,
    true,
    values,
)
from sqlalchemy.engine import Connection

from ccm_core import rules as rules_mod
from ccm_core.engine import compliance, read
from ccm_core.engine.filters import Filters
from ccm_core.engine.patient_month import prepare
from ccm_core.engine.sql import days_from, replaced_claims
from ccm_core.io.labels import activity_words
from ccm_core.storage import schema as s
from ccm_core.storage.db import month_bounds

# --------------------------------------------------------------------------- rule data (tunable)
# A note that says only one of these (case and trailing punctuation ignored) documents nothing specific.
VAGUE_NOTE_PHRASES = (
    "ccm call completed",
    "call completed",
    "ccm call",
    "ccm time",
    "ccm",
    "followed up with patient",
    "follow up with patient",
    "followed up",
    "follow up",
    "spoke with patient",
    "spoke to patient",
    "spoke with pt",
    "lvm",
    "left voicemail",
    "left vm",
    "left message",
    "phone call",
    "called patient",
    "called pt",
    "chart review",
    "reviewed chart",
    "care coordination",
    "time spent",
)
MIN_NOTE_CHARS = 20  # shorter notes cannot say what was done and why
ROUND_MINUTES = 10  # 20 / 30 / 60-minute entries are "round"
BACKDATE_DAYS = 3  # entered this many days or more after the service date = after the fact
MONTH_END_DAYS = 3  # entered in the last three days of the month (or later) = a month-end batch
MAX_STAFF_DAY_MINUTES = 480  # more than 8 h of CCM by one staff member on one day is implausible

# Initiating visit, care plan and consent rules live in ``ccm_core.engine.compliance`` (re-exported here for readers).
from ccm_core.engine.compliance import (  # noqa: E402,F401 - the one place these rules live
    AWV_CODES,
    CARE_PLAN_REVIEW_DAYS,
    INITIATING_LOOKBACK_DAYS,
    INITIATING_VISIT_CODES,
    IPPE_CODES,
    QUALIFYING_EM_CODES,
    TCM_CODES,
)
from ccm_core.engine.compliance import CONSENT_DISCLOSURES as DISCLOSURES  # noqa: E402

G0511_LAST_DOS = dt.date(2025, 9, 30)  # RHC/FQHC G0511 not payable from 1 Oct 2025 (docs/reference/ccm-rules.md §1)

RESULTS = ("pass", "fail", "na")


@dataclass(frozen=True)
class ChecklistItem:
    key: str
    title: str
    rule: str
    source: str


ITEMS: tuple[ChecklistItem, ...] = (
    ChecklistItem(
        "eligibility",
        "Eligibility",
        ">= 2 chronic conditions active in the month (CCW condition or AHRQ chronic ICD-10 category), "
        "or a practitioner's eligibility decision (the newest one wins).",
        "docs/reference/ccm-rules.md §3.1, 10.1; docs/reference/kpi-definitions.md §3.3 item 2",
    ),
    ChecklistItem(
        "initiating_visit",
        "Initiating visit",
        "A face-to-face E/M level 2-5 (not 99211), AWV, IPPE or TCM by the initiating billing "
        "practitioner in the 12 months before CCM started, when the patient was new or not seen by "
        "that practitioner in those 12 months (otherwise not applicable).",
        "docs/reference/ccm-rules.md §3.3, 10.2; docs/reference/kpi-definitions.md §3.3 item 5",
    ),
    ChecklistItem(
        "consent",
        "Consent",
        "An accepted CCM consent, dated on or before the month's first CCM minute, documenting "
        "cost-sharing, one practitioner per month and the right to stop, tied to the month's billing "
        "practitioner (a new consent after a practitioner change), not revoked before the month.",
        "docs/reference/ccm-rules.md §4, 10.3; docs/reference/kpi-definitions.md §3.3 item 6",
    ),
    ChecklistItem(
        "care_plan",
        "Care plan",
        "A care-plan version established on or before month end, signed, covering all conditions with "
        "measurable goals, established or reviewed within the last 12 months, a copy given to the patient "
        "and available electronically.",
        "docs/reference/ccm-rules.md §3.4, 10.4; docs/reference/kpi-definitions.md §3.3 item 3",
    ),
    ChecklistItem(
        "time_log",
        "Time log",
        "Every CCM entry names a clinical staff member (or the practitioner) with a credential, the date, "
        "start time, minutes, activity and a note.",
        "docs/reference/ccm-rules.md §6, 10.5; docs/reference/kpi-definitions.md §3.3 items 4, 9",
    ),
    ChecklistItem(
        "minutes_support",
        "Minutes support the billed units",
        "Counted minutes (engine) support every billed CCM code and unit (99490 >= 20, each 99439 a full "
        "extra 20, 99487 >= 60 with MDM, 99491 >= 30 practitioner minutes...).",
        "docs/reference/ccm-rules.md §1, 2, 10.5",
    ),
    ChecklistItem(
        "no_double_counting",
        "No minute counted twice",
        "No CCM minute overlaps time logged under another program (RPM, TCM, BHI, PCM, APCM...).",
        "docs/reference/ccm-rules.md §2, 10.6",
    ),
    ChecklistItem(
        "no_conflicting_claim",
        "No conflicting claim",
        "No CCM by a second practitioner, no second paid CCM claim, no PCM or APCM by the same "
        "practitioner in the month.",
        "docs/reference/ccm-rules.md §5, 10.7; docs/reference/kpi-definitions.md §3.3 item 8 (OIG)",
    ),
    ChecklistItem(
        "inpatient_days",
        "No minutes on inpatient/SNF days",
        "No CCM minutes logged on days the patient was a hospital or SNF inpatient.",
        "docs/reference/ccm-rules.md §2, 10.8",
    ),
    ChecklistItem(
        "claim_fields",
        "Claim fields",
        "Date of service on or after the day counted minutes reached the threshold, units within caps, "
        "add-ons with their base code, one code track (complex only with an MDM assessment), place of "
        "service matches the clinic, no G0511 after 30 Sep 2025.",
        "docs/reference/ccm-rules.md §1, 2 (date of service), 10.10",
    ),
    ChecklistItem(
        "documentation",
        "Documentation quality",
        "Notes say what was done (no 'CCM call completed', 'LVM' or very short notes) and the time does "
        "not look reconstructed (round durations entered in a batch, many entries entered at month end "
        "for earlier dates, > 8 h of CCM by one staff member in a day).",
        "docs/reference/ccm-rules.md §6; OIG / TPE findings (S6, S9)",
    ),
)
ITEM_BY_KEY = {i.key: i for i in ITEMS}
ITEM_KEYS = tuple(i.key for i in ITEMS)

# Planted demo failure kind -> the checklist item that must fail for it.  ``under_billed`` is revenue
# left on the table, not a compliance failure, so no item fails for it.
PLANTED_ITEM = {
    "missing_consent": "consent",
    "late_consent": "consent",
    "undated_consent": "consent",
    "incomplete_consent": "consent",
    "practitioner_change_no_reconsent": "consent",
    "no_initiating_visit": "initiating_visit",
    "no_care_plan": "care_plan",
    "care_plan_not_shared": "care_plan",
    "inpatient_minutes": "inpatient_days",
    "nonclinical_minutes": "time_log",
    "vague_notes": "documentation",
    "backdated_batch": "documentation",
    "other_program_overlap": "no_double_counting",
    "duplicate_ccm_other_practitioner": "no_conflicting_claim",
    "ccm_with_pcm_same_practitioner": "no_conflicting_claim",
    "addon_over_cap": "claim_fields",
    "addon_without_base": "claim_fields",
    "over_billed": "minutes_support",
}


@dataclass(frozen=True)
class CheckResult:
    item_key: str
    title: str
    result: str  # pass, fail, na
    evidence: str


# --------------------------------------------------------------------------- portable SQL helpers
def _date_text(col):
    """A date as 'YYYY-MM-DD' text on both databases (for evidence strings built in SQL)."""
    return cast(col, String(10))


def _flag(cond):
    return case((cond, 1), else_=0)


def _sum_flag(cond):
    return func.coalesce(func.sum(_flag(cond)), 0)


# --------------------------------------------------------------------------- population
def billed_patient_months_select(f: Filters, rs: rules_mod.RuleSet | None = None):
    """SELECT (patient_id, service_month) of every patient-month with a CCM claim line (replaced claims excluded)."""
    rs = rs or rules_mod.load()
    cl, p = s.claim_line, s.patient
    return (
        select(cl.c.patient_id.label("patient_id"), cl.c.dos_month.label("service_month"))
        .select_from(cl.join(p, p.c.id == cl.c.patient_id))
        .where(
            cl.c.dos_month.between(f.month_from, f.month_to),
            cl.c.cpt_code.in_(rs.codes_of(family="CCM")),
            cl.c.claim_id.not_in(replaced_claims()),
            f.patient_clause(p),
        )
        .group_by(cl.c.patient_id, cl.c.dos_month)
    )


def unbilled_patient_months_select(conn: Connection, f: Filters, rs: rules_mod.RuleSet | None = None):
    """SELECT (patient_id, service_month) of every patient-month whose counted CCM minutes support a code and no
    CCM code is billed yet: the months about to be billed, the pre-bill (prospective) audit population."""
    from ccm_core.storage import stored as pm_store

    rs = rs or rules_mod.load(conn)
    pm = pm_store.patient_month_source(conn, f, rs).subquery("prebill_pm")
    billed = sum((pm.c[f"billed_{c}"] for c in rs.codes_of(family="CCM") if f"billed_{c}" in pm.c), literal(0, Integer))
    return select(pm.c.patient_id, pm.c.service_month).where(pm.c.supported_track.isnot(None), billed == 0)


POPULATIONS = ("billed", "prebill")


def billed_patient_months(conn: Connection, f: Filters) -> pd.DataFrame:
    """The audit population: billed CCM patient-months in the filter range, sorted by (month, patient)."""
    q = billed_patient_months_select(f, rules_mod.load(conn)).order_by("service_month", "patient_id")
    return pd.DataFrame(conn.execute(q).all(), columns=["patient_id", "service_month"])


def _pairs_cte(pairs: list[tuple[int, int]]):
    return (
        values(column("patient_id", Integer), column("service_month", Integer), name="audit_pairs")
        .data(pairs)
        .cte("audit_pairs")
    )


def _calendar_cte(months: Iterable[int]):
    rows = []
    for m in sorted(set(int(x) for x in months)):
        first, last = month_bounds(m)
        rows.append((m, first, last))
    return (
        values(
            column("service_month", Integer),
            column("month_start", Date),
            column("month_end", Date),
            name="audit_calendar",
        )
        .data(rows)
        .cte("audit_calendar")
    )


class _Scope:
    """The patient-months being audited, as SQL (``base`` CTE) plus their ids for narrowing the engine."""

    def __init__(self, conn: Connection, target, rs: rules_mod.RuleSet, population: str = "billed"):
        self.rs = rs
        self.ccm_codes = rs.codes_of(family="CCM")
        if isinstance(target, Filters):
            self.filters = target
            pm = (
                billed_patient_months_select(target, rs)
                if population == "billed"
                else unbilled_patient_months_select(conn, target, rs)
            ).cte("audit_pm")
            months = target.months()
        else:
            pairs = sorted({(int(p), int(m)) for p, m in target})
            if not pairs:
                raise ValueError("No patient-months to audit.")
            self.filters = None
            pm = _pairs_cte(pairs)
            months = [m for _, m in pairs]
        self.months = sorted(set(months))
        cal = _calendar_cte(self.months)
        p = s.patient
        self.base = (
            select(
                pm.c.patient_id,
                pm.c.service_month,
                cal.c.month_start,
                cal.c.month_end,
                compliance.month_practitioner(
                    pm.c.patient_id, pm.c.service_month, p.c.billing_practitioner_id, rs
                ).label("practitioner_id"),
            ).select_from(pm.join(cal, cal.c.service_month == pm.c.service_month).join(p, p.c.id == pm.c.patient_id))
        ).cte("audit_base")
        self.patients = select(distinct(self.base.c.patient_id).label("patient_id")).cte("audit_patients")

    def keys(self):
        b = self.base.c
        return [b.patient_id, b.service_month]


KEY = ["patient_id", "service_month"]


def _frame(conn: Connection, q, columns: list[str] | None = None) -> pd.DataFrame:
    res = conn.execute(q)
    cols = columns or list(res.keys())
    # plain tuples: pandas probes each Row object for attributes, which costs more than the fetch
    return pd.DataFrame([tuple(r) for r in res], columns=cols)


def _sort_lists(df: pd.DataFrame, col: str, sep: str) -> pd.DataFrame:
    """SQL string aggregation has no portable ORDER BY: sort each (short) list so evidence is deterministic."""
    if not df.empty and col in df.columns:
        df[col] = [sep.join(sorted(v.split(sep))) if isinstance(v, str) else v for v in df[col]]
    return df


# --------------------------------------------------------------------------- raw-table evidence queries
def _q_prerequisites(conn: Connection, sc: _Scope) -> pd.DataFrame:
    """Every prerequisite (eligibility, initiating visit, consent, care plan, program conflicts) for each
    audited patient-month: ``compliance.prerequisites_select``, the rules the billing status uses."""
    return _frame(conn, select(*compliance.prerequisites_select(conn, sc.base, sc.rs).subquery("prereq").c))


def _q_conditions(conn: Connection, sc: _Scope) -> pd.DataFrame:
    """The chronic conditions active in each patient-month, as evidence text (the count that decides is
    ``compliance.eligibility_select``'s; the same map and the same ``condition_active`` rule)."""
    dg, b = s.diagnosis, sc.base.c
    cmap = compliance.condition_map(
        conn, patients=select(sc.patients.c.patient_id), name="audit_condition_map", labels=True
    )
    if cmap is None:
        return pd.DataFrame(columns=KEY + ["conditions"])
    active = (
        select(b.patient_id, b.service_month, cmap.c.label)
        .select_from(sc.base.join(dg, dg.c.patient_id == b.patient_id).join(cmap, cmap.c.icd10 == dg.c.icd10))
        .where(compliance.condition_active(dg, b.month_start, b.month_end))
        .distinct()
    ).subquery("active_conditions")
    q = select(
        active.c.patient_id, active.c.service_month, func.aggregate_strings(active.c.label, "; ").label("conditions")
    ).group_by(active.c.patient_id, active.c.service_month)
    return _sort_lists(_frame(conn, q), "conditions", "; ")


def _q_time(conn: Connection, sc: _Scope) -> pd.DataFrame:
    """Per patient-month aggregates over the CCM time log: completeness, notes, and reconstruction signals."""
    te, st, b = s.time_entry, s.staff, sc.base.c
    months = sc.months
    # staff-days with more than 8 h of CCM (all patients), limited to the audited months
    staff_day = (
        select(te.c.staff_id, te.c.service_date)
        .where(te.c.program == "CCM", te.c.service_month.in_(months))
        .group_by(te.c.staff_id, te.c.service_date)
        .having(func.sum(te.c.minutes) > MAX_STAFF_DAY_MINUTES)
    ).subquery("busy_staff_day")
    note = func.lower(func.trim(func.coalesce(te.c.note, "")))
    phrases = list(VAGUE_NOTE_PHRASES) + [p + "." for p in VAGUE_NOTE_PHRASES]
    no_note = func.length(note) == 0
    vague = and_(not_(no_note), or_(note.in_(phrases), func.length(note) < MIN_NOTE_CHARS))
    clinical = or_(st.c.is_clinical == true(), st.c.practitioner_id.isnot(None))
    no_credential = or_(st.c.credential.is_(None), func.lower(func.trim(st.c.credential)).in_(("", "none", "n/a")))
    late = days_from(te.c.service_date, te.c.entered_at)
    at_month_end = days_from(b.month_end, te.c.entered_at) >= -(MONTH_END_DAYS - 1)
    backdated = and_(te.c.entered_at.isnot(None), late >= BACKDATE_DAYS)
    after_fact = or_(te.c.entry_method == "batch", backdated)
    is_round = and_(te.c.minutes > 0, (te.c.minutes % ROUND_MINUTES) == 0)
    busy = staff_day.c.staff_id.isnot(None)
    q = (
        select(
            b.patient_id,
            b.service_month,
            func.count(te.c.id).label("n_entries"),
            func.coalesce(func.sum(te.c.minutes), 0).label("logged_minutes"),
            func.min(te.c.service_date).label("first_minute_date"),
            _sum_flag(not_(clinical)).label("n_nonclinical"),
            func.coalesce(func.sum(case((not_(clinical), te.c.minutes), else_=0)), 0).label("nonclinical_minutes"),
            func.max(case((not_(clinical), st.c.last_name))).label("nonclinical_staff"),
            _sum_flag(no_credential).label("n_no_credential"),
            _sum_flag(te.c.started_at.is_(None)).label("n_no_start"),
            _sum_flag(te.c.minutes <= 0).label("n_no_minutes"),
            _sum_flag(func.length(func.trim(func.coalesce(te.c.activity, ""))) == 0).label("n_no_activity"),
            _sum_flag(no_note).label("n_no_note"),
            _sum_flag(vague).label("n_vague"),
            func.max(case((vague, te.c.note))).label("vague_example"),
            _sum_flag(is_round).label("n_round"),
            _sum_flag(and_(is_round, after_fact)).label("n_round_after_fact"),
            _sum_flag(te.c.entry_method == "batch").label("n_batch"),
            _sum_flag(and_(backdated, at_month_end)).label("n_backdated_month_end"),
            _sum_flag(busy).label("n_busy_day"),
            func.max(case((busy, _date_text(te.c.service_date)))).label("busy_day"),
        )
        .select_from(
            sc.base.join(
                te, and_(te.c.patient_id == b.patient_id, te.c.service_month == b.service_month, te.c.program == "CCM")
            )
            .join(st, st.c.id == te.c.staff_id)
            .outerjoin(
                staff_day, and_(staff_day.c.staff_id == te.c.staff_id, staff_day.c.service_date == te.c.service_date)
            )
        )
        .group_by(b.patient_id, b.service_month)
    )
    return _frame(conn, q)


def _q_other_programs(conn: Connection, sc: _Scope) -> pd.DataFrame:
    """Which other programs' entries overlap CCM minutes in the month (evidence for the engine's number)."""
    te, b = s.time_entry, sc.base.c
    other = te.alias("other_program_entry")
    pairs = (
        select(b.patient_id, b.service_month, other.c.program)
        .select_from(
            sc.base.join(
                te, and_(te.c.patient_id == b.patient_id, te.c.service_month == b.service_month, te.c.program == "CCM")
            ).join(
                other,
                and_(
                    other.c.patient_id == te.c.patient_id,
                    other.c.service_date == te.c.service_date,
                    other.c.program != "CCM",
                    other.c.started_at < te.c.ended_at,
                    other.c.ended_at > te.c.started_at,
                ),
            )
        )
        .distinct()
    ).subquery()
    return _sort_lists(
        _frame(
            conn,
            select(
                pairs.c.patient_id,
                pairs.c.service_month,
                func.aggregate_strings(pairs.c.program, ", ").label("overlap_programs"),
            ).group_by(pairs.c.patient_id, pairs.c.service_month),
        ),
        "overlap_programs",
        ", ",
    )


def _q_other_programs_indexed(conn: Connection, sc: _Scope) -> pd.DataFrame:
    """``_q_other_programs`` with nested loops allowed on PostgreSQL (a whole month turns them off, see
    ``checklist_for_months``): each audited month's entries are a few index probes (50k: 0.4 -> 0.09 s)."""
    if conn.dialect.name != "postgresql" or sc.filters is None:
        return _q_other_programs(conn, sc)
    conn.exec_driver_sql("SET LOCAL enable_nestloop = on")
    try:
        return _q_other_programs(conn, sc)
    finally:
        conn.exec_driver_sql("SET LOCAL enable_nestloop = off")


def _q_stays(conn: Connection, sc: _Scope) -> pd.DataFrame:
    fs, b = s.facility_stay, sc.base.c
    label = (
        fs.c.kind
        + literal(" ")
        + _date_text(fs.c.admit_date)
        + literal(" to ")
        + func.coalesce(_date_text(fs.c.discharge_date), literal("(still in)"))
    )
    q = (
        select(
            b.patient_id,
            b.service_month,
            func.count(fs.c.id).label("n_stays"),
            func.aggregate_strings(label, "; ").label("stays"),
        )
        .select_from(sc.base.join(fs, fs.c.patient_id == b.patient_id))
        .where(fs.c.admit_date <= b.month_end, or_(fs.c.discharge_date.is_(None), fs.c.discharge_date >= b.month_start))
        .group_by(b.patient_id, b.service_month)
    )
    return _sort_lists(_frame(conn, q), "stays", "; ")


def _q_claims(conn: Connection, sc: _Scope) -> pd.DataFrame:
    """Per patient-month and CCM claim: lines as text, first date of service, place of service, money received."""
    cl, c, cli, r, b = s.claim_line, s.claim, s.clinic, s.remittance, sc.base.c
    paid = (
        select(func.coalesce(func.sum(cast(r.c.paid_amount, Float)), 0.0))
        .where(r.c.claim_id == c.c.id)
        .scalar_subquery()
    )
    first_status = (
        select(func.min(r.c.status_code)).where(r.c.claim_id == c.c.id, r.c.adjudication_seq == 1).scalar_subquery()
    )
    line_text = cl.c.cpt_code + literal(" x") + cast(cl.c.units, String)
    g0511_late = and_(cl.c.cpt_code == "G0511", cl.c.service_date > G0511_LAST_DOS)
    q = (
        select(
            b.patient_id,
            b.service_month,
            c.c.id.label("claim_id"),
            c.c.claim_number,
            c.c.practitioner_id.label("claim_practitioner_id"),
            c.c.place_of_service,
            cli.c.place_of_service.label("clinic_pos"),
            func.min(cl.c.service_date).label("dos"),
            func.aggregate_strings(line_text, ", ").label("lines"),
            func.max(_flag(cl.c.cpt_code.in_(sc.ccm_codes))).label("has_ccm"),
            func.max(_flag(g0511_late)).label("g0511_late"),
            paid.label("paid"),
            first_status.label("first_status"),
        )
        .select_from(
            sc.base.join(cl, and_(cl.c.patient_id == b.patient_id, cl.c.dos_month == b.service_month))
            .join(c, c.c.id == cl.c.claim_id)
            .outerjoin(cli, cli.c.id == c.c.clinic_id)
        )
        .where(
            cl.c.claim_id.not_in(replaced_claims()),
            or_(cl.c.cpt_code.in_(sc.ccm_codes), cl.c.cpt_code == "G0511"),
        )
        .group_by(
            b.patient_id,
            b.service_month,
            c.c.id,
            c.c.claim_number,
            c.c.practitioner_id,
            c.c.place_of_service,
            cli.c.place_of_service,
        )
    )
    return _sort_lists(_frame(conn, q), "lines", ", ")


# The engine's columns the items read (plus ``supported_codes`` / ``billed_codes``, worded as
# ``engine.patient_months`` words them from the ``supported_<code>`` / ``billed_<code>`` units).
ENGINE_COLUMNS = (
    "counted_minutes",
    "logged_minutes",
    "practitioner_minutes",
    "excluded_non_clinical",
    "excluded_inpatient",
    "excluded_pre_consent",
    "excluded_other_program",
    "billed_ccm_units",
    "over_billed",
    "supported_track",
    "threshold_date",
    "units_over_cap",
    "addon_without_base",
    "ccm_tracks_mixed",
    "has_complexity",
    "complex_care_plan",
    "ccm_practitioners",
    "ccm_with_pcm_same_practitioner",
    "ccm_with_apcm_same_practitioner",
)


def _engine_frame(conn: Connection, sc: _Scope, base: pd.DataFrame) -> pd.DataFrame:
    """The engine's patient-months (``engine.patient_months``' rows: stored when current, else the live
    statement) for exactly the audited patient-months (narrowed by their own attributes): only the columns
    the items read (all 70 of a month's ~10,000 rows through ``patient_months``' frame cost 1.4 s at 50,000
    patients)."""
    from ccm_core.storage import stored as pm_store

    if sc.filters is not None:
        f = sc.filters
    else:
        p = s.patient
        ids = sorted(base["patient_id"].unique().tolist())
        attrs = pd.DataFrame(
            conn.execute(
                select(p.c.clinic_id, p.c.billing_practitioner_id, p.c.care_manager_id).where(p.c.id.in_(ids))
            ).all(),
            columns=["clinic", "practitioner", "care_manager"],
        )
        narrow = {}
        for key, col in (
            ("clinic_ids", "clinic"),
            ("practitioner_ids", "practitioner"),
            ("care_manager_ids", "care_manager"),
        ):
            vals = attrs[col].dropna()
            if len(vals) == len(attrs):  # only narrow when every audited patient has the attribute
                narrow[key] = tuple(sorted(int(x) for x in vals.unique()))
        f = Filters(month_from=min(sc.months), month_to=max(sc.months), **narrow)
    prepare(conn)  # as ``engine.patient_months``
    pm = pm_store.patient_month_source(conn, f, sc.rs).subquery("audit_engine_pm")
    supported = [c for c in sc.rs.codes if f"supported_{c}" in pm.c]
    billed = [c for c in sc.rs.codes if f"billed_{c}" in pm.c]
    names = dict.fromkeys(
        KEY
        + [c for c in ENGINE_COLUMNS if c in pm.c]
        + [f"supported_{c}" for c in supported]
        + [f"billed_{c}" for c in billed]
    )
    em = _frame(conn, select(*[pm.c[n] for n in names]), list(names))
    if em.empty:
        return em
    em = em.merge(base[KEY], on=KEY, how="inner")
    em["supported_codes"] = read.codes_text(em, "supported_", supported)
    em["billed_codes"] = read.codes_text(em, "billed_", billed)
    return em


# --------------------------------------------------------------------------- the checklist
def checklist_for_months(
    conn: Connection, target, rs: rules_mod.RuleSet | None = None, population: str = "billed"
) -> pd.DataFrame:
    """The checklist for many patient-months at once.

    ``target`` is a ``Filters`` (every billed CCM patient-month in its range, or with ``population="prebill"``
    every patient-month with CCM time not billed yet: the prospective audit) or an iterable of
    ``(patient_id, service_month)`` pairs (a sample).  Returns one row per patient-month and item:
    patient_id, service_month, item_key, item, result (pass / fail / na), evidence.
    """
    rs = rs or rules_mod.load(conn)
    out_cols = KEY + ["item_key", "item", "result", "evidence"]
    if not isinstance(target, Filters):
        target = list(target)
        if not target:
            return pd.DataFrame(columns=out_cols)
    if population not in POPULATIONS:
        raise ValueError(f"Unknown audit population {population!r}; choose one of {', '.join(POPULATIONS)}")
    if isinstance(target, Filters):
        # A whole month (thousands of patient-months): the engine's PostgreSQL settings, as the billing status
        # uses for the same prerequisites (nested loops rescan the grouped CTEs per row: 35 s instead of 1.6 s
        # for the prerequisites at 50,000 patients).  A sample's few pairs keep the index lookups.
        prepare(conn)
    sc = _Scope(conn, target, rs, population)
    base = _frame(conn, select(*sc.base.c))
    if base.empty:
        return pd.DataFrame(columns=out_cols)
    base = base.sort_values(KEY).reset_index(drop=True)

    pre = _left(base[KEY], _q_prerequisites(conn, sc))
    parts = [
        _eligibility(base, pre, _q_conditions(conn, sc)),
        _initiating(base, pre),
    ]
    time = _q_time(conn, sc)
    parts.append(_consent(base, pre))
    parts.append(_care_plan(base, pre))
    parts.append(_time_log(base, time))
    em = _engine_frame(conn, sc, base)
    claims = _claims_by_pm(_q_claims(conn, sc))
    parts.append(_minutes_support(base, em))
    parts.append(_double_counting(base, em, _q_other_programs_indexed(conn, sc)))
    parts.append(_conflicts(base, em, claims, pre))
    parts.append(_inpatient(base, em, _q_stays(conn, sc)))
    parts.append(_claim_fields(base, em, claims))
    parts.append(_documentation(base, time))
    df = pd.concat(parts, ignore_index=True)
    df["item"] = df["item_key"].map(lambda k: ITEM_BY_KEY[k].title)
    order = {k: i for i, k in enumerate(ITEM_KEYS)}
    df["_o"] = df["item_key"].map(order)
    df = df.sort_values(["service_month", "patient_id", "_o"]).drop(columns="_o").reset_index(drop=True)
    df["patient_id"] = df["patient_id"].astype(int)
    df["service_month"] = df["service_month"].astype(int)
    return df[out_cols]


def checklist(
    conn: Connection, patient_id: int, service_month: int, rs: rules_mod.RuleSet | None = None
) -> list[CheckResult]:
    """The checklist for one patient-month, in checklist order."""
    df = checklist_for_months(conn, [(patient_id, service_month)], rs)
    return [CheckResult(r.item_key, r.item, r.result, r.evidence) for r in df.itertuples(index=False)]


def summarize(df: pd.DataFrame) -> pd.DataFrame:
    """One row per patient-month: counts of pass / fail / na and the failed items (for lists and pass rates)."""
    if df.empty:
        return pd.DataFrame(columns=KEY + ["passed", "failed", "na", "failed_items", "all_pass"])
    counts = pd.crosstab([df["patient_id"], df["service_month"]], df["result"])
    for r in RESULTS:
        if r not in counts.columns:
            counts[r] = 0
    failed = df[df["result"] == "fail"].groupby(KEY)["item_key"].agg(", ".join)
    out = counts.rename(columns={"pass": "passed", "fail": "failed"})[["passed", "failed", "na"]].reset_index()
    out = out.merge(failed.rename("failed_items").reset_index(), on=KEY, how="left")
    out["failed_items"] = out["failed_items"].fillna("")
    out["all_pass"] = out["failed"] == 0
    return out.sort_values(["service_month", "patient_id"]).reset_index(drop=True)


# --------------------------------------------------------------------------- item builders
def _rows(base: pd.DataFrame, key: str, result, evidence) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "patient_id": base["patient_id"].to_numpy(),
            "service_month": base["service_month"].to_numpy(),
            "item_key": key,
            "result": np.asarray(result, dtype=object),
            "evidence": np.asarray(evidence, dtype=object),
        }
    )


def _left(base: pd.DataFrame, other: pd.DataFrame, on=KEY) -> pd.DataFrame:
    keys = list(on) if isinstance(on, list) else [on]
    if other is None:
        other = pd.DataFrame(columns=keys)
    if other.empty:  # an empty frame's key columns are object dtype: merge refuses int vs object
        other = other.astype({k: "int64" for k in keys})
    return base.merge(other, on=on, how="left", suffixes=("", "_r"))


def _d(v) -> str:
    """A date (or NaN/None) as text."""
    if v is None or (isinstance(v, float) and np.isnan(v)) or v is pd.NaT:
        return "none"
    if isinstance(v, (dt.datetime, pd.Timestamp)):
        return v.date().isoformat()
    if isinstance(v, dt.date):
        return v.isoformat()
    return str(v)[:10]


def _as_date(v) -> dt.date | None:
    if v is None or v is pd.NaT or (isinstance(v, float) and np.isnan(v)):
        return None
    if isinstance(v, (dt.datetime, pd.Timestamp)):
        return v.date()
    if isinstance(v, dt.date):
        return v
    try:
        return dt.date.fromisoformat(str(v)[:10])
    except ValueError:
        return None


def _sentence(text: str) -> str:
    """Upper-case the first letter only (str.capitalize would lower-case 'CCM' and 'PCM')."""
    return text[:1].upper() + text[1:]


def _n(v) -> int:
    return 0 if v is None or pd.isna(v) else int(v)


def _each(df: pd.DataFrame, cols):
    """Rows of ``df`` as named tuples of only ``cols`` (the prerequisites frame has ~50 columns: building
    every field of every row cost more than the wording)."""
    return df[list(cols)].itertuples(index=False)


# The four prerequisite items below only word the evidence: pass / fail comes from the ``<item>_result``
# columns of ``compliance.prerequisites_select`` (the rule, written once, that the billing status uses).
def _eligibility(base, pre, conds) -> pd.DataFrame:
    m = _left(pre, conds)
    res, ev = [], []
    cols = ("conditions", "eligibility_result", "n_conditions", "override_date", "override_eligible", "override_found")
    for r in _each(m, cols + ("override_reason",)):
        n = _n(r.n_conditions)
        listed = r.conditions if isinstance(r.conditions, str) and r.conditions else "none on file"
        if _n(r.override_found):
            ok = bool(r.override_eligible)
            text = (
                f"Practitioner decision {_d(r.override_date)}: {'eligible' if ok else 'not eligible'} "
                f"({r.override_reason}). Conditions coded: {listed}."
            )
        else:
            text = f"{n} chronic condition{'s' if n != 1 else ''} active in the month: {listed}."
        res.append(r.eligibility_result)
        ev.append(text)
    return _rows(base, "eligibility", res, ev)


def _initiating(base, pre) -> pd.DataFrame:
    res, ev = [], []
    cols = ("ccm_start", "first_seen_date", "initiating_visit_result", "initiator_id", "new_patient", "other_visit")
    for r in _each(pre, cols + ("qual_visit", "seen_date")):
        start_d = _as_date(r.ccm_start)
        res.append(r.initiating_visit_result)
        if start_d is None:
            ev.append("No CCM start on record (no CCM time, dated consent or enrollment).")
            continue
        prac = f"practitioner #{_n(r.initiator_id)}"
        if r.initiating_visit_result == "pass":
            ev.append(f"CCM started {start_d}; qualifying face-to-face visit {r.qual_visit} by the initiating {prac}.")
            continue
        fs = _as_date(r.first_seen_date)
        other_txt = (
            f" A qualifying visit by another practitioner ({r.other_visit}) does not count."
            if isinstance(r.other_visit, str) and r.other_visit
            else ""
        )
        if r.initiating_visit_result == "fail":
            why = (
                f"patient new to the practice (first seen {_d(fs)})"
                if _n(r.new_patient)
                else f"not seen by {prac} in the 12 months before"
            )
            ev.append(
                f"CCM started {start_d}; {why}, and no qualifying visit (E/M 2-5, AWV, IPPE, TCM) by the "
                f"initiating {prac} in those 12 months.{other_txt}"
            )
        else:
            ev.append(
                f"CCM started {start_d}; established patient (first seen {fs}) seen by {prac} on "
                f"{_d(r.seen_date)}: no separate initiating visit required."
            )
    return _rows(base, "initiating_visit", res, ev)


def _consent(base, pre) -> pd.DataFrame:
    res, ev = [], []
    cols = ("consent_date", "consent_id", "consent_practitioner_id", "consent_problem", "consent_result", "decision")
    cols += ("first_minute_date", "method", "practitioner_id", "revoked_date") + tuple(k for k, _ in DISCLOSURES)
    for r in _each(pre, cols):
        res.append(r.consent_result)
        if pd.isna(r.consent_id):
            ev.append("No CCM consent on file.")
            continue
        what = (
            f"consent #{_n(r.consent_id)} {r.decision}, dated {_d(r.consent_date)} ({r.method or 'method ?'}), "
            f"tied to practitioner #{_n(r.consent_practitioner_id)}"
        )
        prob = r.consent_problem if isinstance(r.consent_problem, str) else None
        if prob is None:
            ev.append(f"Valid: {what}; all disclosures documented; first CCM minute {_d(r.first_minute_date)}.")
            continue
        if prob == "declined":
            why = "no accepted consent (patient declined)"
        elif prob == "practitioner":
            why = (
                f"billing practitioner this month is #{_n(r.practitioner_id)}: a new consent is needed after "
                f"the practitioner change"
            )
        elif prob == "undated":
            why = "the consent is undated"
        elif prob == "late":
            why = (
                f"dated after the month's first CCM minute ({_d(r.first_minute_date)})"
                if _as_date(r.first_minute_date)
                else "dated after the month"
            )
        elif prob == "revoked":
            why = f"revoked {_d(r.revoked_date)}, before the month"
        else:
            missing = [label for k, label in DISCLOSURES if not (getattr(r, k) is True or _n(getattr(r, k)))]
            why = "disclosures not documented: " + ", ".join(missing)
        ev.append(f"{why[0].upper()}{why[1:]}; best on file: {what}.")
    return _rows(base, "consent", res, ev)


_PLAN_PROBLEM_TEXT = {
    "unsigned": "not signed by a practitioner",
    "incomplete": "does not cover all conditions or has no measurable goals",
    "not_shared": "no copy given to the patient",
    "no_electronic": "not available electronically to the care team",
}


def _care_plan(base, pre) -> pd.DataFrame:
    res, ev = [], []
    cols = ("care_plan_established", "care_plan_latest", "care_plan_problem", "care_plan_result", "care_plan_reviewed")
    for r in _each(pre, cols + ("care_plan_shared", "care_plan_signed_by", "care_plan_version", "month_end")):
        res.append(r.care_plan_result)
        if pd.isna(r.care_plan_version):
            ev.append(f"No care plan established on or before {_d(r.month_end)}.")
            continue
        est, rev, shared = (
            _as_date(r.care_plan_established),
            _as_date(r.care_plan_reviewed),
            _as_date(r.care_plan_shared),
        )
        what = (
            f"version {int(r.care_plan_version)} established {est}, reviewed {_d(rev)}, shared with patient "
            f"{_d(shared)}, signed by practitioner #{_n(r.care_plan_signed_by)}"
        )
        prob = r.care_plan_problem if isinstance(r.care_plan_problem, str) else None
        if prob is None:
            ev.append(f"In force: {what}.")
        else:
            text = (
                f"not established or reviewed since {_d(r.care_plan_latest)}"
                if prob == "stale"
                else _PLAN_PROBLEM_TEXT[prob]
            )
            ev.append(_sentence(text) + f": {what}.")
    return _rows(base, "care_plan", res, ev)


_TIME_LOG_GAPS = (
    ("n_no_credential", "no staff credential"),
    ("n_no_start", "no start time"),
    ("n_no_minutes", "no minutes"),
    ("n_no_activity", "no activity"),
    ("n_no_note", "no note"),
)


def _time_log(base, time) -> pd.DataFrame:
    m = _left(base, time)
    res, ev = [], []
    cols = ("logged_minutes", "n_entries", "n_nonclinical", "nonclinical_minutes", "nonclinical_staff")
    for r in _each(m, cols + tuple(c for c, _ in _TIME_LOG_GAPS)):
        n = _n(r.n_entries)
        if n == 0:
            res.append("na")
            ev.append("No CCM time logged in the month.")
            continue
        problems = []
        if _n(r.n_nonclinical):
            problems.append(
                f"{_n(r.n_nonclinical)} entr{'y' if _n(r.n_nonclinical) == 1 else 'ies'} "
                f"({_n(r.nonclinical_minutes)} min) by non-clinical staff ({r.nonclinical_staff})"
            )
        for col, label in _TIME_LOG_GAPS:
            k = _n(getattr(r, col))
            if k:
                problems.append(f"{k} with {label}")
        summary = f"{n} entries, {_n(r.logged_minutes)} min logged"
        res.append("fail" if problems else "pass")
        ev.append(
            f"{summary}: " + "; ".join(problems) + "."
            if problems
            else f"{summary}; every entry has clinical staff with credential, date, start, minutes, activity and note."
        )
    return _rows(base, "time_log", res, ev)


def _engine_cols(base, em, cols: list[str]) -> pd.DataFrame:
    if em is None or em.empty:
        return base.assign(**{c: np.nan for c in cols}, in_engine=False)
    present = [c for c in cols if c in em.columns]
    out = base.merge(em[KEY + present].assign(in_engine=True), on=KEY, how="left")
    for c in cols:
        if c not in out.columns:
            out[c] = np.nan
    out["in_engine"] = out["in_engine"].fillna(False).astype(bool)
    return out


def _minutes_support(base, em) -> pd.DataFrame:
    cols = [
        "counted_minutes",
        "logged_minutes",
        "practitioner_minutes",
        "excluded_non_clinical",
        "excluded_inpatient",
        "excluded_pre_consent",
        "excluded_other_program",
        "billed_ccm_units",
        "over_billed",
        "supported_codes",
        "billed_codes",
        "supported_track",
        "threshold_date",
    ]
    m = _engine_cols(base, em, cols)
    res, ev = [], []
    for r in m.itertuples():
        if not r.in_engine or _n(r.billed_ccm_units) == 0:
            res.append("na")
            ev.append("No CCM code billed in the month.")
            continue
        excl = [
            f"{label} {_n(v)}"
            for label, v in (
                ("non-clinical", r.excluded_non_clinical),
                ("inpatient", r.excluded_inpatient),
                ("pre-consent", r.excluded_pre_consent),
                ("other program", r.excluded_other_program),
            )
            if _n(v)
        ]
        counted = (
            f"Counted {_n(r.counted_minutes)} min (practitioner {_n(r.practitioner_minutes)}; logged "
            f"{_n(r.logged_minutes)}" + (f"; excluded: {', '.join(excl)}" if excl else "") + ")"
        )
        supported = r.supported_codes or "nothing"
        if bool(r.over_billed):
            res.append("fail")
            ev.append(f"{counted} support {supported}, but billed {r.billed_codes}.")
        else:
            res.append("pass")
            ev.append(f"{counted} support the billed {r.billed_codes} (supported: {supported}).")
    return _rows(base, "minutes_support", res, ev)


def _double_counting(base, em, other) -> pd.DataFrame:
    m = _left(_engine_cols(base, em, ["excluded_other_program", "logged_minutes"]), other)
    res, ev = [], []
    for r in m.itertuples():
        if not r.in_engine or _n(r.logged_minutes) == 0:
            res.append("na")
            ev.append("No CCM time logged in the month.")
        elif _n(r.excluded_other_program) > 0:
            res.append("fail")
            ev.append(
                f"{_n(r.excluded_other_program)} CCM min overlap time logged under "
                f"{r.overlap_programs if isinstance(r.overlap_programs, str) else 'another program'} "
                f"(the engine did not count them)."
            )
        else:
            res.append("pass")
            ev.append("No CCM minute overlaps time logged under another program.")
    return _rows(base, "no_double_counting", res, ev)


def _claims_by_pm(claims: pd.DataFrame) -> pd.DataFrame:
    cols = KEY + [
        "n_ccm_claims",
        "n_ccm_paid",
        "n_ccm_practitioners",
        "first_dos",
        "pos_mismatch",
        "g0511_late",
        "claims_text",
    ]
    if claims.empty:
        return pd.DataFrame(columns=cols)
    c = claims.sort_values(KEY + ["claim_id"]).copy()
    c["is_ccm"] = c["has_ccm"].astype(int) == 1
    c["paid"] = c["paid"].astype(float)
    c["paid_ccm"] = c["is_ccm"] & (c["paid"] > 0.005)
    c["pos_bad"] = c["place_of_service"].notna() & c["clinic_pos"].notna() & (c["place_of_service"] != c["clinic_pos"])
    status = c["first_status"].map({"1": "paid", "2": "paid", "4": "denied", "22": "reversed"}).fillna("no remittance")
    c["text"] = (
        c["claim_number"]
        + " (practitioner #"
        + c["claim_practitioner_id"].astype(str)
        + ", DOS "
        + c["dos"].map(_d)
        + ": "
        + c["lines"]
        + "; first adjudication "
        + status
        + ", paid $"
        + c["paid"].map("{:.2f}".format)
        + ")"
    )
    ccm = c[c["is_ccm"]]
    g = c.groupby(KEY)
    # Most months have one claim: take its text as is and join strings only where there are several.
    text = g["text"].first()
    several = g["text"].size() > 1
    if several.any():
        multi = c.set_index(KEY).loc[several[several].index, "text"]
        text.loc[several[several].index] = multi.groupby(level=[0, 1]).agg("; ".join)
    out = pd.DataFrame(
        {
            "n_ccm_claims": g["is_ccm"].sum(),
            "n_ccm_paid": g["paid_ccm"].sum(),
            "pos_mismatch": g["pos_bad"].any(),
            "g0511_late": g["g0511_late"].max().astype(int) == 1,
            "claims_text": text,
        }
    )
    if not ccm.empty:
        gc = ccm.groupby(KEY)
        first_dos = ccm.sort_values(KEY + ["dos"]).groupby(KEY)["dos"].first()  # dates are objects: no cython min
        out = out.join(
            pd.DataFrame({"n_ccm_practitioners": gc["claim_practitioner_id"].nunique(), "first_dos": first_dos})
        )
    else:
        out["n_ccm_practitioners"] = 0
        out["first_dos"] = None
    return out.reset_index()[cols]


def _conflicts(base, em, claims, pre) -> pd.DataFrame:
    cols = [
        "ccm_practitioners",
        "ccm_with_pcm_same_practitioner",
        "ccm_with_apcm_same_practitioner",
        "billed_ccm_units",
    ]
    m = _left(
        _left(_engine_cols(base, em, cols), claims),
        pre[KEY + ["no_conflicting_claim_problem", "no_conflicting_claim_result"]],
    )
    res, ev = [], []
    for r in m.itertuples():
        prob = r.no_conflicting_claim_problem if isinstance(r.no_conflicting_claim_problem, str) else None
        if _n(r.n_ccm_claims) == 0:
            # not billed yet: the pre-bill rule (compliance) decides
            res.append("fail" if prob else "pass")
            ev.append(
                _sentence(compliance.HOLD_REASONS[("no_conflicting_claim", prob)]) + "."
                if prob
                else "No CCM claim yet; no PCM/APCM by this practitioner and no CCM by another this month."
            )
            continue
        problems = []
        if prob == "pcm_apcm":
            problems.append("PCM or APCM billed by the month's practitioner")
        n_prac = max(_n(r.ccm_practitioners), _n(r.n_ccm_practitioners))
        if n_prac > 1:
            problems.append(f"CCM billed by {n_prac} practitioners (only one may be paid per month)")
        elif _n(r.n_ccm_paid) > 1:
            problems.append(f"{_n(r.n_ccm_paid)} CCM claims paid in the month")
        if r.ccm_with_pcm_same_practitioner is True or _n(r.ccm_with_pcm_same_practitioner):
            problems.append("PCM billed by the same practitioner")
        if r.ccm_with_apcm_same_practitioner is True or _n(r.ccm_with_apcm_same_practitioner):
            problems.append("APCM billed by the same practitioner")
        claims_txt = r.claims_text if isinstance(r.claims_text, str) else ""
        if problems:
            res.append("fail")
            ev.append(_sentence("; ".join(problems)) + f". Claims: {claims_txt}.")
        else:
            note = " (a duplicate resubmission was not paid)" if _n(r.n_ccm_claims) > 1 else ""
            res.append("pass")
            ev.append(f"One CCM practitioner, no same-practitioner PCM/APCM{note}. Claims: {claims_txt}.")
    return _rows(base, "no_conflicting_claim", res, ev)


def _inpatient(base, em, stays) -> pd.DataFrame:
    m = _left(_engine_cols(base, em, ["excluded_inpatient", "logged_minutes"]), stays)
    res, ev = [], []
    for r in m.itertuples():
        stays_txt = r.stays if isinstance(r.stays, str) and r.stays else ""
        if _n(r.excluded_inpatient) > 0:
            res.append("fail")
            ev.append(
                f"{_n(r.excluded_inpatient)} CCM min logged on inpatient/SNF days ({stays_txt}); "
                f"the engine did not count them."
            )
        elif not r.in_engine or _n(r.logged_minutes) == 0:
            res.append("na")
            ev.append("No CCM time logged in the month." + (f" Stays: {stays_txt}." if stays_txt else ""))
        elif stays_txt:
            res.append("pass")
            ev.append(f"Stay in the month ({stays_txt}); no CCM minutes on those days.")
        else:
            res.append("pass")
            ev.append("No inpatient or SNF stay in the month.")
    return _rows(base, "inpatient_days", res, ev)


def _claim_fields(base, em, claims) -> pd.DataFrame:
    cols = [
        "threshold_date",
        "units_over_cap",
        "addon_without_base",
        "ccm_tracks_mixed",
        "has_complexity",
        "complex_care_plan",
        "billed_99487",
        "billed_99489",
        "billed_codes",
    ]
    m = _left(_engine_cols(base, em, cols), claims)
    res, ev = [], []
    for r in m.itertuples():
        if _n(r.n_ccm_claims) == 0:
            res.append("na")
            ev.append("No CCM claim in the month.")
            continue
        problems = []
        dos, thr = _as_date(r.first_dos), _as_date(r.threshold_date)
        if thr is None:
            problems.append("counted minutes never reached the 20-minute threshold")
        elif dos is not None and dos < thr:
            problems.append(f"date of service {dos} is before the threshold was reached on {thr}")
        if bool(r.units_over_cap) if not pd.isna(r.units_over_cap) else False:
            problems.append("units over the monthly cap")
        if bool(r.addon_without_base) if not pd.isna(r.addon_without_base) else False:
            problems.append("add-on code without its base code")
        if bool(r.ccm_tracks_mixed) if not pd.isna(r.ccm_tracks_mixed) else False:
            problems.append("codes from more than one CCM track")
        complex_billed = _n(r.billed_99487) + _n(r.billed_99489) > 0
        if complex_billed and not (bool(r.has_complexity) if not pd.isna(r.has_complexity) else False):
            problems.append("complex CCM billed without a moderate/high MDM assessment")
        elif complex_billed and not _n(r.complex_care_plan):
            problems.append("complex CCM billed without a care plan established or substantially revised in the month")
        if bool(r.pos_mismatch) if not pd.isna(r.pos_mismatch) else False:
            problems.append("place of service differs from the clinic's")
        if bool(r.g0511_late) if not pd.isna(r.g0511_late) else False:
            problems.append("G0511 billed after 30 Sep 2025")
        what = f"DOS {_d(dos)}, threshold reached {_d(thr)}, billed {r.billed_codes or 'n/a'}"
        res.append("fail" if problems else "pass")
        ev.append((_sentence("; ".join(problems)) + f" ({what}).") if problems else f"Consistent: {what}.")
    return _rows(base, "claim_fields", res, ev)


def _documentation(base, time) -> pd.DataFrame:
    m = _left(base, time)
    res, ev = [], []
    cols = ("busy_day", "n_backdated_month_end", "n_busy_day", "n_entries", "n_round_after_fact", "n_vague")
    for r in _each(m, cols + ("vague_example",)):
        n = _n(r.n_entries)
        if n == 0:
            res.append("na")
            ev.append("No CCM time logged in the month.")
            continue
        problems = []
        if _n(r.n_vague):
            problems.append(f'{_n(r.n_vague)} of {n} notes vague or too short (e.g. "{r.vague_example}")')
        round_after = _n(r.n_round_after_fact)
        if n >= 2 and round_after == n:
            problems.append(
                f"all {n} entries are round durations (multiples of {ROUND_MINUTES} min) entered in a "
                f"batch or after the fact"
            )
        late = _n(r.n_backdated_month_end)
        if late >= 2 and late * 2 >= n:
            problems.append(f"{late} of {n} entries entered at month end for dates {BACKDATE_DAYS}+ days earlier")
        if _n(r.n_busy_day):
            problems.append(f"a staff member logged more than {MAX_STAFF_DAY_MINUTES // 60} h of CCM on {r.busy_day}")
        res.append("fail" if problems else "pass")
        ev.append(
            _sentence("; ".join(problems)) + "."
            if problems
            else f"{n} entries with specific notes, entered in real time."
        )
    return _rows(base, "documentation", res, ev)


# --------------------------------------------------------------------------- evidence (what an auditor reads)
def _pairs_filter(df: pd.DataFrame, pairs: list[tuple[int, int]]) -> pd.DataFrame:
    if df.empty:
        return df
    keys = pd.DataFrame(pairs, columns=KEY).drop_duplicates()
    return df.merge(keys, on=KEY, how="inner")


def patient_headers(conn: Connection, patient_ids: Iterable[int]) -> pd.DataFrame:
    """Who each patient is (identifiers: callers mask them for roles and meeting mode)."""
    p, pr, st, cli = s.patient, s.practitioner, s.staff, s.clinic
    ids = sorted({int(x) for x in patient_ids})
    q = (
        select(
            p.c.id.label("patient_id"),
            p.c.mrn,
            p.c.mbi,
            p.c.first_name,
            p.c.last_name,
            p.c.birth_date,
            p.c.payer,
            p.c.is_qmb,
            p.c.first_seen_date,
            cli.c.name.label("clinic"),
            (pr.c.last_name + literal(", ") + pr.c.first_name + literal(" ") + pr.c.credential).label(
                "billing_practitioner"
            ),
            (st.c.last_name + literal(", ") + st.c.first_name + literal(" ") + st.c.credential).label("care_manager"),
        )
        .select_from(
            p.outerjoin(pr, pr.c.id == p.c.billing_practitioner_id)
            .outerjoin(st, st.c.id == p.c.care_manager_id)
            .outerjoin(cli, cli.c.id == p.c.clinic_id)
        )
        .where(p.c.id.in_(ids))
        .order_by(p.c.id)
    )
    df = _frame(conn, q)
    df["patient_name"] = df["last_name"] + ", " + df["first_name"]
    return df


def evidence(conn: Connection, pairs: Iterable[tuple[int, int]]) -> dict[str, pd.DataFrame]:
    """The records behind the checklist for a few patient-months (a sample), one query per record type.

    Keys: patients, conditions, consents, care_plans, visits (patient-level); time_log, stays, claims,
    remittances (per patient-month: ``service_month`` column).
    """
    pairs = sorted({(int(p), int(m)) for p, m in pairs})
    ids = sorted({p for p, _ in pairs})
    months = sorted({m for _, m in pairs})
    last_day = month_bounds(max(months))[1] if months else dt.date.today()
    dg, cn, cp, v, te, st, fs = (s.diagnosis, s.consent, s.care_plan, s.visit, s.time_entry, s.staff, s.facility_stay)
    cl, c, r, ra, rr, pr = (
        s.claim_line,
        s.claim,
        s.remittance,
        s.remittance_adjustment,
        s.remittance_remark,
        s.practitioner,
    )
    out: dict[str, pd.DataFrame] = {"patients": patient_headers(conn, ids)}

    cond = _frame(
        conn,
        select(dg.c.patient_id, dg.c.icd10, dg.c.onset_date, dg.c.resolved_date, dg.c.on_problem_list)
        .where(dg.c.patient_id.in_(ids))
        .order_by(dg.c.patient_id, dg.c.icd10),
    )
    ccw = rules_mod.ccw_conditions()
    keys = {code: rules_mod.condition_key(code) for code in cond["icd10"].unique()}
    cond["chronic_condition"] = cond["icd10"].map(
        lambda code: (ccw.get(keys[code]) or f"chronic {keys[code].removeprefix('CCI:')}") if keys[code] else ""
    )
    out["conditions"] = cond

    out["consents"] = _frame(
        conn,
        select(
            cn.c.patient_id,
            cn.c.id.label("consent_id"),
            cn.c.program,
            cn.c.decision,
            cn.c.consent_date,
            cn.c.method,
            cn.c.staff_id,
            cn.c.practitioner_id,
            cn.c.disclosed_cost_sharing,
            cn.c.disclosed_one_practitioner,
            cn.c.disclosed_right_to_stop,
            cn.c.disclosed_info_sharing,
            cn.c.revoked_date,
            cn.c.document_ref,
        )
        .where(cn.c.patient_id.in_(ids))
        .order_by(cn.c.patient_id, cn.c.consent_date, cn.c.id),
    )
    out["care_plans"] = _frame(
        conn,
        select(
            cp.c.patient_id,
            cp.c.version,
            cp.c.established_date,
            cp.c.reviewed_date,
            cp.c.shared_with_patient_date,
            cp.c.signed_by_practitioner_id,
            cp.c.covers_all_conditions,
            cp.c.has_measurable_goals,
            cp.c.electronic_access,
            cp.c.substantially_revised,
        )
        .where(cp.c.patient_id.in_(ids))
        .order_by(cp.c.patient_id, cp.c.version),
    )
    out["visits"] = _frame(
        conn,
        select(v.c.patient_id, v.c.visit_date, v.c.cpt_code, v.c.visit_type, v.c.practitioner_id, v.c.face_to_face)
        .where(v.c.patient_id.in_(ids), v.c.visit_date <= last_day)
        .order_by(v.c.patient_id, v.c.visit_date),
    )

    tl = _frame(
        conn,
        select(
            te.c.patient_id,
            te.c.service_month,
            te.c.service_date,
            te.c.started_at,
            te.c.ended_at,
            te.c.minutes,
            te.c.program,
            te.c.activity,
            te.c.note,
            te.c.entry_method,
            te.c.entered_at,
            (st.c.last_name + literal(", ") + st.c.first_name).label("staff"),
            st.c.credential,
            st.c.is_clinical,
        )
        .select_from(te.join(st, st.c.id == te.c.staff_id))
        .where(te.c.patient_id.in_(ids), te.c.service_month.in_(months))
        .order_by(te.c.patient_id, te.c.service_date, te.c.started_at, te.c.id),
    )
    if not tl.empty:  # activities in words ("Phone call"), as a person reads the evidence
        tl["activity"] = tl["activity"].map(activity_words)
    out["time_log"] = _pairs_filter(tl, pairs)

    cal = _calendar_cte(months)
    stays = _frame(
        conn,
        select(
            fs.c.patient_id, cal.c.service_month, fs.c.kind, fs.c.admit_date, fs.c.discharge_date, fs.c.facility_name
        )
        .select_from(
            fs.join(
                cal,
                and_(
                    fs.c.admit_date <= cal.c.month_end,
                    or_(fs.c.discharge_date.is_(None), fs.c.discharge_date >= cal.c.month_start),
                ),
            )
        )
        .where(fs.c.patient_id.in_(ids))
        .order_by(fs.c.patient_id, fs.c.admit_date),
    )
    out["stays"] = _pairs_filter(stays, pairs)

    lines = _frame(
        conn,
        select(
            cl.c.patient_id,
            cl.c.dos_month.label("service_month"),
            c.c.id.label("claim_id"),
            c.c.claim_number,
            c.c.frequency_code,
            (pr.c.last_name + literal(" (NPI ") + pr.c.npi + literal(")")).label("practitioner"),
            c.c.payer,
            c.c.submitted_date,
            cl.c.line_number,
            cl.c.cpt_code,
            cl.c.units,
            cast(cl.c.charge, Float).label("charge"),
            cl.c.service_date,
            cl.c.icd10_codes,
            _flag(cl.c.claim_id.in_(replaced_claims())).label("replaced"),
        )
        .select_from(cl.join(c, c.c.id == cl.c.claim_id).join(pr, pr.c.id == c.c.practitioner_id))
        .where(cl.c.patient_id.in_(ids), cl.c.dos_month.in_(months))
        .order_by(cl.c.patient_id, c.c.submitted_date, c.c.id, cl.c.line_number),
    )
    out["claims"] = _pairs_filter(lines, pairs)

    claim_ids = sorted(set(out["claims"]["claim_id"].astype(int))) if not out["claims"].empty else []
    adj_codes = (
        select(ra.c.remittance_id, (ra.c.group_code + literal("-") + ra.c.carc).label("code"))
        .distinct()
        .subquery("adj_codes")
    )
    adj = (
        select(adj_codes.c.remittance_id, func.aggregate_strings(adj_codes.c.code, ", ").label("adjustments")).group_by(
            adj_codes.c.remittance_id
        )
    ).subquery("adj")
    rem_codes = select(rr.c.remittance_id, rr.c.rarc).distinct().subquery("rem_codes")
    rem = (
        select(rem_codes.c.remittance_id, func.aggregate_strings(rem_codes.c.rarc, ", ").label("remarks")).group_by(
            rem_codes.c.remittance_id
        )
    ).subquery("rem")
    remits = _frame(
        conn,
        select(
            r.c.claim_id,
            r.c.claim_number,
            r.c.received_date,
            r.c.status_code,
            r.c.adjudication_seq,
            cast(r.c.paid_amount, Float).label("paid"),
            cast(r.c.patient_responsibility, Float).label("patient_resp"),
            adj.c.adjustments,
            rem.c.remarks,
        )
        .select_from(r.outerjoin(adj, adj.c.remittance_id == r.c.id).outerjoin(rem, rem.c.remittance_id == r.c.id))
        .where(r.c.claim_id.in_(claim_ids) if claim_ids else false())
        .order_by(r.c.claim_id, r.c.adjudication_seq, r.c.received_date),
    )
    remits = _sort_lists(_sort_lists(remits, "adjustments", ", "), "remarks", ", ")
    if not remits.empty:
        claim_pm = out["claims"][["claim_id", "patient_id", "service_month"]].drop_duplicates()
        remits = remits.merge(claim_pm, on="claim_id", how="inner")
        remits["reason_texts"] = [_reason_texts(a, b) for a, b in zip(remits["adjustments"], remits["remarks"])]
    out["remittances"] = remits
    return out


def _reason_texts(adjustments, remarks) -> str:
    """'CO-97: The benefit for this service is included...' for every CARC/RARC on a remittance."""
    texts = []
    if isinstance(adjustments, str):
        for part in sorted(set(x.strip() for x in adjustments.split(",") if x.strip())):
            carc = part.split("-", 1)[-1]
            texts.append(f"{part}: {rules_mod.carc_text(carc)}")
    if isinstance(remarks, str):
        for rarc in sorted(set(x.strip() for x in remarks.split(",") if x.strip())):
            texts.append(f"{rarc}: {rules_mod.rarc_text(rarc)}")
    return " | ".join(texts)


def evidence_for(ev: dict[str, pd.DataFrame], patient_id: int, service_month: int) -> dict[str, pd.DataFrame]:
    """One patient-month's slice of ``evidence()`` output."""
    out = {}
    for key, df in ev.items():
        if df.empty or "patient_id" not in df.columns:
            out[key] = df
            continue
        part = df[df["patient_id"] == patient_id]
        if "service_month" in part.columns and key not in ("patients",):
            part = part[part["service_month"] == service_month]
        out[key] = part.reset_index(drop=True)
    return out
