"""The patient-month: minutes that count, codes they support, codes billed, and what is wrong.

Every page, KPI, audit check and the billing CLI reads minutes and codes from
this statement so that a minute is counted by one set of rules only.  The whole
computation is one SQL statement (``patient_month_select``: CTEs, GROUP BY, a
window SUM) that runs on SQLite and PostgreSQL alike.  ``storage.stored`` keeps
its rows; ``engine.read.patient_months`` reads them (stored when current, else
this statement) as a DataFrame and writes the findings text on that (small)
per-patient-month result.

Counting rules (``docs/reference/ccm-rules.md`` §2, 4, 5), applied per time entry in
this order, each excluded minute booked to the first cause that applies:

1. ``non_clinical``: logged by staff who are neither clinical nor a practitioner.
2. ``inpatient``: service date inside an inpatient/SNF stay (admit..discharge
   inclusive; no discharge yet = still in).
3. ``pre_consent``: no accepted, dated consent for the entry's program on or
   before the service date (or the consent was revoked before that date).
4. ``other_program``: the minutes of the entry that overlap (same patient,
   same day, started_at..ended_at) an entry of another program (RPM, TCM,
   BHI, PCM, APCM...) are subtracted; a minute may support only one service.
"""

from __future__ import annotations

from sqlalchemy import (
    Float,
    Integer,
    and_,
    case,
    cast,
    exists,
    func,
    literal,
    not_,
    null,
    or_,
    select,
)
from sqlalchemy.engine import Connection
from sqlalchemy.sql import ColumnElement, Select

from ccm_core import rules as rules_mod
from ccm_core.engine import compliance
from ccm_core.engine.filters import Filters
from ccm_core.engine.sql import minutes_between, replaced_claims
from ccm_core.storage import schema as s

COUNTED_PROGRAMS = ("CCM", "PCM")
# Time-based tracks the engine prices, in tie-break order (first wins a tie).
CCM_TRACKS = ("non_complex", "complex", "practitioner")
PCM_TRACKS = ("pcm_practitioner", "pcm_staff")
FLAG_COLUMNS = (
    "under_billed",
    "over_billed",
    "duplicate_ccm",
    "ccm_with_pcm_same_practitioner",
    "ccm_with_apcm_same_practitioner",
    "addon_without_base",
    "units_over_cap",
    "ccm_tracks_mixed",
)
FLAG_TEXT = {
    "under_billed": "under-billed: the minutes support more than was billed",
    "over_billed": "over-billed: billed beyond what the minutes support",
    "duplicate_ccm": "duplicate CCM: more than one CCM claim this month",
    "ccm_with_pcm_same_practitioner": "CCM and PCM billed by the same practitioner",
    "ccm_with_apcm_same_practitioner": "CCM and APCM billed by the same practitioner",
    "addon_without_base": "add-on code billed without its base code",
    "units_over_cap": "units over the monthly cap on a claim",
    "ccm_tracks_mixed": "codes from more than one CCM track billed",
}


# --------------------------------------------------------------------------- portable SQL helpers
# PostgreSQL inlines single-use CTEs and then re-evaluates their wide CASE columns at every
# reference; MATERIALIZED (PostgreSQL only) computes each stage once.


def _least(a, b):
    return case((a <= b, a), else_=b)


def _greatest(a, b):
    return case((a >= b, a), else_=b)


def _num(x) -> ColumnElement:
    """Money as float on both databases (SQLite would otherwise do integer arithmetic on 100 * 60 / 100)."""
    return cast(x, Float)


def fee_expr(rs: rules_mod.RuleSet, code: str, month_col) -> ColumnElement:
    """The national fee of ``code`` for the YYYYMM in ``month_col``, from the versioned fee rows."""
    periods = rs.fee_periods(code)
    if not periods:
        return literal(0.0, Float)
    whens = [(month_col.between(a, b), literal(amount, Float)) for a, b, amount in periods]
    whens.append((month_col < periods[0][0], literal(periods[0][2], Float)))
    return case(*whens, else_=literal(periods[-1][2], Float))


def patient_subquery(f: Filters):
    """Patient ids matching the clinic / practitioner / care-manager / payer filters (None = all)."""
    if not (f.clinic_ids or f.practitioner_ids or f.care_manager_ids or f.payers):
        return None
    return select(s.patient.c.id).where(f.patient_clause(s.patient))


def _units(minutes, threshold: int, increment: int | None, cap: int | None, base_ok=None):
    """(base units, add-on units) supported by ``minutes`` on one track."""
    ok = minutes >= threshold if base_ok is None else and_(minutes >= threshold, base_ok)
    base = case((ok, 1), else_=0)
    if not increment:
        return base, literal(0, Integer)
    # integer operands on both sides: integer division on SQLite and PostgreSQL alike (no FLOOR needed)
    extra = cast(cast(minutes - threshold, Integer) // literal(increment, Integer), Integer)
    if cap is not None:
        extra = _least(extra, literal(cap, Integer))
    return base, case((and_(ok, minutes >= threshold + increment), extra), else_=0)


# --------------------------------------------------------------------------- the statement
STORE_PROGRAMS = ("CCM", "PCM", "APCM")  # programs with counted time or tracked codes: one act_<P> flag each


def patient_month_select(
    f: Filters, rs: rules_mod.RuleSet | None = None, *, for_store: bool = False, patients: Select | None = None
) -> Select:
    """The patient-month as one SELECT (use ``.subquery()`` to aggregate over it in SQL).

    ``for_store`` (see ``storage.stored``) keeps every patient-month with activity in any program, ignores
    the patient filters and adds ``act_<program>`` flags, so the stored rows answer any filter set.
    ``patients`` (a select of patient ids) limits the rows to those patients: a patient's rows read
    only that patient's entries, stays, consents and claims, so ``storage.stored`` rebuilds an import's
    patients alone with it.
    """
    rs = rs or rules_mod.load()
    if for_store:
        f = Filters(f.month_from, f.month_to, programs=STORE_PROGRAMS)
    te, st, p, fs, cn = s.time_entry, s.staff, s.patient, s.facility_stay, s.consent
    mf, mt = f.month_from, f.month_to
    pids = patients if patients is not None else patient_subquery(f)

    # ---- per-entry overlap with entries of another program (same patient, same day)
    other = te.alias("other_entry")
    ov_start = _greatest(te.c.started_at, other.c.started_at)
    ov_end = _least(te.c.ended_at, other.c.ended_at)
    overlap_q = (
        select(te.c.id.label("entry_id"), func.sum(minutes_between(ov_start, ov_end)).label("overlap"))
        .select_from(
            te.join(
                other,
                and_(
                    other.c.patient_id == te.c.patient_id,
                    other.c.service_date == te.c.service_date,
                    other.c.program != te.c.program,
                    other.c.started_at < te.c.ended_at,
                    other.c.ended_at > te.c.started_at,
                ),
            )
        )
        .where(te.c.service_month.between(mf, mt), te.c.program.in_(COUNTED_PROGRAMS))
        .group_by(te.c.id)
    )
    if pids is not None:
        overlap_q = overlap_q.where(te.c.patient_id.in_(pids))
    overlap = overlap_q.cte("entry_overlap")

    # ---- per-entry classification
    nonclinical = not_(or_(st.c.is_clinical, st.c.practitioner_id.isnot(None)))
    in_stay = exists().where(
        fs.c.patient_id == te.c.patient_id,
        fs.c.admit_date <= te.c.service_date,
        or_(fs.c.discharge_date.is_(None), fs.c.discharge_date >= te.c.service_date),
    )
    consented = exists().where(compliance.consent_covers(cn, te.c.patient_id, te.c.program, te.c.service_date))
    own_practitioner = and_(
        st.c.practitioner_id.isnot(None),
        st.c.practitioner_id == func.coalesce(te.c.practitioner_id, p.c.billing_practitioner_id),
    )
    ov = func.coalesce(overlap.c.overlap, 0)
    entries_q = (
        select(
            te.c.id,
            te.c.patient_id,
            te.c.service_month,
            te.c.service_date,
            te.c.started_at,
            te.c.program,
            te.c.minutes,
            case((own_practitioner, 1), else_=0).label("is_practitioner"),
            case(
                (nonclinical, "non_clinical"), (in_stay, "inpatient"), (not_(consented), "pre_consent"), else_=null()
            ).label("cause"),
            case((ov > te.c.minutes, te.c.minutes), (ov < 0, 0), else_=ov).label("overlap"),
        )
        .select_from(
            te.join(st, st.c.id == te.c.staff_id)
            .join(p, p.c.id == te.c.patient_id)
            .outerjoin(overlap, overlap.c.entry_id == te.c.id)
        )
        .where(te.c.service_month.between(mf, mt), te.c.program.in_(COUNTED_PROGRAMS))
    )
    if pids is not None:
        entries_q = entries_q.where(te.c.patient_id.in_(pids))
    e1 = entries_q.cte("entry_class").prefix_with("MATERIALIZED", dialect="postgresql")

    counted = case((e1.c.cause.is_(None), e1.c.minutes - e1.c.overlap), else_=0)
    e2 = (
        select(
            e1,
            counted.label("counted"),
            case((e1.c.cause.is_(None), e1.c.overlap), else_=0).label("other_program"),
            func.sum(counted)
            .over(
                partition_by=[e1.c.patient_id, e1.c.service_month, e1.c.program],
                order_by=[e1.c.service_date, e1.c.started_at, e1.c.id],
                rows=(None, 0),
            )
            .label("cumulative"),
        )
        .cte("entry_counted")
        .prefix_with("MATERIALIZED", dialect="postgresql")
    )

    is_ccm = e2.c.program == "CCM"
    is_pcm = e2.c.program == "PCM"
    threshold = rs.code("99490").threshold_minutes

    def msum(cond, col):
        return func.coalesce(func.sum(case((cond, col), else_=0)), 0)

    minutes = (
        select(
            e2.c.patient_id,
            e2.c.service_month,
            msum(is_ccm, e2.c.minutes).label("logged_minutes"),
            msum(is_ccm, e2.c.counted).label("counted_minutes"),
            msum(and_(is_ccm, e2.c.is_practitioner == 1), e2.c.counted).label("practitioner_minutes"),
            msum(and_(is_ccm, e2.c.cause == "non_clinical"), e2.c.minutes).label("excluded_non_clinical"),
            msum(and_(is_ccm, e2.c.cause == "inpatient"), e2.c.minutes).label("excluded_inpatient"),
            msum(and_(is_ccm, e2.c.cause == "pre_consent"), e2.c.minutes).label("excluded_pre_consent"),
            msum(is_ccm, e2.c.other_program).label("excluded_other_program"),
            msum(is_pcm, e2.c.counted).label("pcm_minutes"),
            msum(and_(is_pcm, e2.c.is_practitioner == 1), e2.c.counted).label("pcm_practitioner_minutes"),
            func.min(case((and_(is_ccm, e2.c.cumulative >= threshold), e2.c.service_date))).label("threshold_date"),
            func.max(case((and_(is_ccm, e2.c.counted > 0), e2.c.service_date))).label("last_contact_date"),
            func.max(case((e2.c.program.in_(f.programs), 1), else_=0)).label("in_programs"),
            *[
                func.max(case((e2.c.program == prog, 1), else_=0)).label(f"act_{prog}")
                for prog in STORE_PROGRAMS
                if for_store and prog in COUNTED_PROGRAMS
            ],
        )
        .group_by(e2.c.patient_id, e2.c.service_month)
        .cte("pm_minutes")
    )

    # ---- claims: billed lines per patient-month (replaced claims excluded)
    cl, c, r = s.claim_line, s.claim, s.remittance
    ccm_codes = rs.codes_of(family="CCM")
    pcm_codes = rs.codes_of(family="PCM")
    apcm_codes = rs.codes_of(family="APCM")
    priced_codes = ccm_codes + pcm_codes
    tracked = ccm_codes + pcm_codes + apcm_codes
    family_programs = [fam for fam in ("CCM", "PCM", "APCM") if fam in f.programs]
    program_codes = [code for code in tracked if rs.family_of(code) in family_programs]

    lines_q = (
        select(
            cl.c.patient_id,
            cl.c.dos_month.label("service_month"),
            cl.c.claim_id,
            cl.c.practitioner_id,
            cl.c.cpt_code,
            func.sum(cl.c.units).label("units"),
            func.sum(_num(cl.c.charge)).label("charge"),
        )
        .where(cl.c.dos_month.between(mf, mt), cl.c.cpt_code.in_(tracked), cl.c.claim_id.not_in(replaced_claims()))
        .group_by(cl.c.patient_id, cl.c.dos_month, cl.c.claim_id, cl.c.practitioner_id, cl.c.cpt_code)
    )
    if pids is not None:
        lines_q = lines_q.where(cl.c.patient_id.in_(pids))
    cc = lines_q.cte("claim_codes")

    over_cap_terms = []
    for code in tracked:
        cap = rs.code(code).unit_cap
        if cap is not None:
            over_cap_terms.append(and_(cc.c.cpt_code == code, cc.c.units > cap))
    billed_cols = [
        func.coalesce(func.sum(case((cc.c.cpt_code == code, cc.c.units), else_=0)), 0).label(f"billed_{code}")
        for code in tracked
    ]
    billed = (
        select(
            cc.c.patient_id,
            cc.c.service_month,
            *billed_cols,
            func.coalesce(func.sum(cc.c.charge), 0.0).label("billed_charge"),
            func.count(func.distinct(case((cc.c.cpt_code.in_(ccm_codes), cc.c.claim_id)))).label("ccm_claims"),
            func.count(func.distinct(case((cc.c.cpt_code.in_(ccm_codes), cc.c.practitioner_id)))).label(
                "ccm_practitioners"
            ),
            func.max(case((or_(*over_cap_terms), 1), else_=0) if over_cap_terms else literal(0)).label(
                "units_over_cap"
            ),
            func.max(case((cc.c.cpt_code.in_(program_codes), 1), else_=0)).label("in_programs"),
            *[
                func.max(case((cc.c.cpt_code.in_(rs.codes_of(family=prog) or ["-"]), 1), else_=0)).label(f"act_{prog}")
                for prog in STORE_PROGRAMS
                if for_store
            ],
        )
        .group_by(cc.c.patient_id, cc.c.service_month)
        .cte("pm_billed")
    )

    by_prac = (
        select(
            cc.c.patient_id,
            cc.c.service_month,
            cc.c.practitioner_id,
            func.max(case((cc.c.cpt_code.in_(ccm_codes), 1), else_=0)).label("has_ccm"),
            func.max(case((cc.c.cpt_code.in_(pcm_codes), 1), else_=0)).label("has_pcm"),
            func.max(case((cc.c.cpt_code.in_(apcm_codes), 1), else_=0)).label("has_apcm"),
        )
        .group_by(cc.c.patient_id, cc.c.service_month, cc.c.practitioner_id)
        .cte("pm_by_practitioner")
    )
    same_prac = (
        select(
            by_prac.c.patient_id,
            by_prac.c.service_month,
            func.max(by_prac.c.has_ccm * by_prac.c.has_pcm).label("ccm_with_pcm_same_practitioner"),
            func.max(by_prac.c.has_ccm * by_prac.c.has_apcm).label("ccm_with_apcm_same_practitioner"),
        )
        .group_by(by_prac.c.patient_id, by_prac.c.service_month)
        .cte("pm_same_practitioner")
    )

    # ---- money received: every adjudication of every claim (replaced ones too: their reversals
    # and payments are real money), spread over months by the share of the claim's charge.
    month_charge_q = (
        select(
            cl.c.claim_id,
            cl.c.patient_id,
            cl.c.dos_month.label("service_month"),
            func.sum(_num(cl.c.charge)).label("month_charge"),
        )
        .where(cl.c.dos_month.between(mf, mt), cl.c.cpt_code.in_(tracked))
        .group_by(cl.c.claim_id, cl.c.patient_id, cl.c.dos_month)
    )
    if pids is not None:
        month_charge_q = month_charge_q.where(cl.c.patient_id.in_(pids))
    month_charge = month_charge_q.cte("claim_month_charge")
    claim_paid = select(
        r.c.claim_id,
        func.sum(_num(r.c.paid_amount)).label("paid"),
        func.max(case((and_(r.c.adjudication_seq == 1, r.c.status_code == "4"), 1), else_=0)).label("initially_denied"),
        func.count().label("adjudications"),
    ).where(r.c.claim_id.isnot(None))
    if patients is not None:  # only the claims of those patients' lines (month_charge reads no others)
        claim_paid = claim_paid.where(r.c.claim_id.in_(select(cl.c.claim_id).where(cl.c.patient_id.in_(pids))))
    claim_paid = claim_paid.group_by(r.c.claim_id).cte("claim_paid")
    share = month_charge.c.month_charge / func.nullif(_num(c.c.total_charge), 0.0)
    paid = (
        select(
            month_charge.c.patient_id,
            month_charge.c.service_month,
            func.coalesce(func.sum(func.coalesce(claim_paid.c.paid, 0.0) * share), 0.0).label("paid_amount"),
            func.coalesce(func.max(claim_paid.c.initially_denied), 0).label("initially_denied"),
            func.coalesce(func.max(case((claim_paid.c.adjudications > 0, 1), else_=0)), 0).label("adjudicated"),
        )
        .select_from(
            month_charge.join(c, c.c.id == month_charge.c.claim_id).outerjoin(
                claim_paid, claim_paid.c.claim_id == month_charge.c.claim_id
            )
        )
        .group_by(month_charge.c.patient_id, month_charge.c.service_month)
    ).cte("pm_paid")

    # ---- one row per patient-month: UNION ALL of the four sources then GROUP BY (a full outer join
    # that needs no index on the CTEs, so SQLite stays linear), kept when any time or claim line
    # belongs to the filter's programs.
    from sqlalchemy import Date, type_coerce, union_all

    src_cols: list[tuple[str, object, object]] = [  # name, type, default when absent
        ("logged_minutes", Integer, 0),
        ("counted_minutes", Integer, 0),
        ("practitioner_minutes", Integer, 0),
        ("excluded_non_clinical", Integer, 0),
        ("excluded_inpatient", Integer, 0),
        ("excluded_pre_consent", Integer, 0),
        ("excluded_other_program", Integer, 0),
        ("pcm_minutes", Integer, 0),
        ("pcm_practitioner_minutes", Integer, 0),
        ("threshold_date", Date, None),
        ("last_contact_date", Date, None),
        *[(f"billed_{code}", Integer, 0) for code in tracked],
        ("billed_charge", Float, 0.0),
        ("ccm_claims", Integer, 0),
        ("ccm_practitioners", Integer, 0),
        ("units_over_cap", Integer, 0),
        ("ccm_with_pcm_same_practitioner", Integer, 0),
        ("ccm_with_apcm_same_practitioner", Integer, 0),
        ("paid_amount", Float, 0.0),
        ("initially_denied", Integer, 0),
        ("adjudicated", Integer, 0),
        ("in_programs", Integer, 0),
        *[(f"act_{prog}", Integer, 0) for prog in STORE_PROGRAMS if for_store],
    ]

    def branch(src):
        cols = [
            cast(src.c.patient_id, Integer).label("patient_id"),
            cast(src.c.service_month, Integer).label("service_month"),
        ]
        for name, typ, _ in src_cols:
            if name not in src.c:
                cols.append(cast(null(), typ).label(name))
            elif typ is Date:  # SQLite would turn CAST('2025-03-05' AS DATE) into 2025
                cols.append(type_coerce(src.c[name], Date).label(name))
            else:
                cols.append(cast(src.c[name], typ).label(name))
        return select(*cols)

    stacked = union_all(branch(minutes), branch(billed), branch(same_prac), branch(paid)).subquery("pm_stacked")
    agg_cols = []
    for name, _typ, default in src_cols:
        col = func.max(stacked.c[name])
        agg_cols.append((func.coalesce(col, default) if default is not None else col).label(name))
    combined = (
        select(stacked.c.patient_id, stacked.c.service_month, *agg_cols).group_by(
            stacked.c.patient_id, stacked.c.service_month
        )
    ).cte("pm_combined")

    ca = s.complexity_assessment
    joined = (
        (
            select(
                combined.c.patient_id,
                combined.c.service_month,
                p.c.clinic_id,
                p.c.billing_practitioner_id,
                p.c.care_manager_id,
                p.c.payer,
                *[combined.c[name] for name, _, _ in src_cols if name != "in_programs"],
                case((ca.c.id.isnot(None), 1), else_=0).label("has_complexity"),
                case(
                    (compliance.care_plan_revised_in_month(combined.c.patient_id, combined.c.service_month), 1), else_=0
                ).label("complex_care_plan"),
            )
            .select_from(
                combined.join(p, p.c.id == combined.c.patient_id).outerjoin(
                    ca, and_(ca.c.patient_id == combined.c.patient_id, ca.c.service_month == combined.c.service_month)
                )
            )
            .where(combined.c.in_programs == 1, f.patient_clause(p))
        )
        .cte("pm_joined")
        .prefix_with("MATERIALIZED", dialect="postgresql")
    )

    # ---- supported units per track
    j = joined.c
    track_minutes = {
        "non_complex": (j.counted_minutes, None),
        # complex CCM: moderate/high MDM and a care plan established or substantially revised
        # (docs/reference/ccm-rules.md §1)
        "complex": (j.counted_minutes, and_(j.has_complexity == 1, j.complex_care_plan == 1)),
        "practitioner": (j.practitioner_minutes, None),
        "pcm_practitioner": (j.pcm_practitioner_minutes, None),
        "pcm_staff": (j.pcm_minutes, None),
    }
    unit_cols = []
    track_code = {}
    for track, (mins, extra) in track_minutes.items():
        base_code, addon_code = rs.track_codes(track)
        track_code[track] = (base_code, addon_code)
        bc = rs.code(base_code)
        ac = rs.code(addon_code) if addon_code else None
        b_units, a_units = _units(
            mins, bc.threshold_minutes, ac.increment_minutes if ac else None, ac.unit_cap if ac else None, extra
        )
        unit_cols.append(b_units.label(f"tu_{base_code}"))
        if addon_code:
            unit_cols.append(a_units.label(f"tu_{addon_code}"))
    units = select(joined, *unit_cols).cte("pm_units").prefix_with("MATERIALIZED", dialect="postgresql")

    u = units.c

    def track_value(track):
        base_code, addon_code = track_code[track]
        v = fee_expr(rs, base_code, u.service_month) * u[f"tu_{base_code}"]
        if addon_code:
            v = v + fee_expr(rs, addon_code, u.service_month) * u[f"tu_{addon_code}"]
        return v

    def billed_supported_value(codes):
        total = literal(0.0, Float)
        for code in codes:
            total = total + fee_expr(rs, code, u.service_month) * _least(u[f"billed_{code}"], u[f"tu_{code}"])
        return total

    def billed_value(codes):
        total = literal(0.0, Float)
        for code in codes:
            total = total + fee_expr(rs, code, u.service_month) * u[f"billed_{code}"]
        return total

    ccm_tracks_billed = sum(
        (case((or_(*[u[f"billed_{code}"] > 0 for code in track_code[t] if code]), 1), else_=0) for t in CCM_TRACKS),
        literal(0, Integer),
    )
    valued = (
        select(
            units,
            *[track_value(t).label(f"expected_{t}") for t in CCM_TRACKS + PCM_TRACKS],
            billed_supported_value(ccm_codes).label("billed_supported_value"),
            billed_value(priced_codes).label("billed_fee_value"),
            sum((u[f"billed_{code}"] for code in ccm_codes), literal(0, Integer)).label("billed_ccm_units"),
            case((ccm_tracks_billed > 1, 1), else_=0).label("ccm_tracks_mixed"),
            case((or_(*[u[f"billed_{code}"] > u[f"tu_{code}"] for code in priced_codes]), 1), else_=0).label(
                "over_billed"
            ),
            case(
                (
                    or_(
                        *[
                            and_(u[f"billed_{code}"] > 0, u[f"billed_{rs.code(code).base_code}"] == 0)
                            for code in priced_codes
                            if rs.code(code).is_addon
                        ]
                    ),
                    1,
                ),
                else_=0,
            ).label("addon_without_base"),
        )
        .cte("pm_valued")
        .prefix_with("MATERIALIZED", dialect="postgresql")
    )

    v = valued.c
    nc, cx, pr = v.expected_non_complex, v.expected_complex, v.expected_practitioner
    track = case(
        (and_(nc > 0, nc >= cx, nc >= pr), "non_complex"),
        (and_(cx > 0, cx >= pr), "complex"),
        (pr > 0, "practitioner"),
        else_=null(),
    )
    pp, ps = v.expected_pcm_practitioner, v.expected_pcm_staff
    pcm_track = case((and_(pp > 0, pp >= ps), "pcm_practitioner"), (ps > 0, "pcm_staff"), else_=null())
    expected_ccm = _greatest(_greatest(nc, cx), pr)
    expected_pcm = _greatest(pp, ps)
    final_cols = [v[col.name] for col in valued.c if not col.name.startswith("tu_")]
    supported_cols = []
    for t in CCM_TRACKS:
        for code in track_code[t]:
            if code:
                supported_cols.append(case((track == t, v[f"tu_{code}"]), else_=0).label(f"supported_{code}"))
    for t in PCM_TRACKS:
        for code in track_code[t]:
            if code:
                supported_cols.append(case((pcm_track == t, v[f"tu_{code}"]), else_=0).label(f"supported_{code}"))
    return select(
        *final_cols,
        track.label("supported_track"),
        pcm_track.label("supported_pcm_track"),
        *supported_cols,
        expected_ccm.label("expected_ccm"),
        expected_pcm.label("expected_pcm"),
        (expected_ccm + expected_pcm).label("expected_amount"),
        case((and_(v.billed_ccm_units > 0, expected_ccm - v.billed_supported_value > 0.005), 1), else_=0).label(
            "under_billed"
        ),
        case((v.ccm_claims > 1, 1), else_=0).label("duplicate_ccm"),
        case((and_(v.billed_ccm_units == 0, expected_ccm > 0), 1), else_=0).label("not_billed"),
    )


# --------------------------------------------------------------------------- session settings
def prepare(conn: Connection) -> None:
    """Per-transaction tuning: PostgreSQL's JIT spends ~25 s compiling this wide CASE-heavy statement
    on a 20k-patient month while running it takes ~1 s, so it is switched off (SET LOCAL: this
    transaction only).  SQLite needs nothing."""
    if conn.dialect.name == "postgresql":
        conn.exec_driver_sql("SET LOCAL jit = off")
        # The planner estimates a handful of rows for the grouped patient-month CTEs (there are ~10k a
        # month at 50k patients) and then picks nested loops that rescan them per row: 6 s instead
        # of 1.3 s for billable rate, minutes instead of seconds for the pacing forecast.  Hash and
        # merge joins are right for every statement built on the patient-month.
        conn.exec_driver_sql("SET LOCAL enable_nestloop = off")


def expected_for(rs: rules_mod.RuleSet, month: int, codes: dict[str, int]) -> float:
    """Fee schedule value of ``{code: units}`` in ``month``: the same arithmetic the SQL does, for tests and CLI."""
    return round(sum((rs.fee(code, month) or 0.0) * units for code, units in codes.items()), 2)
