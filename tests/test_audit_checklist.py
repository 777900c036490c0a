"""The audit checklist, item by item, on hand-built patient-months (both backends).

Every case is a worked example: a patient-month in March 2025 that satisfies every item
(``clean``), then one change that should fail (or make n/a) exactly the item under test.
"""

from __future__ import annotations

import datetime as dt

import pytest
from sqlalchemy import update

from ccm_core.audit import checklist as audit
from ccm_core.engine.filters import Filters
from ccm_core.storage import schema as s

from builders import Builder

MONTH = 202503
D = dt.date


# --------------------------------------------------------------------------- builders for this module
def setup_patient(b: Builder, *, diagnoses=("E119", "I10"), consent=True, care_plan=True, visit=True, **kw) -> int:
    """Enrolled Jan 2025: two chronic conditions, complete consent, shared care plan, a 99214 in Dec 2024."""
    p = b.patient(**kw)
    b.diagnoses(p, diagnoses)
    b.funnel(p, "enrolled", D(2025, 1, 2))
    if consent:
        b.consent(p, on=D(2025, 1, 2))
    if care_plan:
        b.care_plan(p, established=D(2025, 1, 2))
    if visit:
        b.visit(p, on=D(2024, 12, 15), cpt="99214")
    return p


def bill_month(
    b: Builder,
    p: int,
    minutes=(12, 13),
    on=D(2025, 3, 4),
    codes=(("99490", 1),),
    dos=D(2025, 3, 31),
    pay=True,
    **time_kw,
) -> int | None:
    """Time entries one per day from ``on``, then one claim with ``codes`` on ``dos`` (paid in full)."""
    if minutes:
        b.times(p, list(minutes), on=on, **time_kw)
    if not codes:
        return None
    cid = b.claim(p, list(codes), dos=dos)
    if pay:
        b.paid(cid)
    return cid


def clean(b: Builder, **kw) -> int:
    p = setup_patient(b, **kw)
    bill_month(b, p)
    return p


def run(engine, pids, month=MONTH):
    with engine.connect() as conn:
        df = audit.checklist_for_months(conn, [(p, month) for p in pids])
    return {(r.patient_id, r.item_key): (r.result, r.evidence) for r in df.itertuples()}


def result(res, p, item):
    return res[(p, item)][0]


# --------------------------------------------------------------------------- the clean month and the frame's shape
def test_clean_month_passes_every_item(engine):
    with engine.begin() as conn:
        p = clean(Builder(conn))
    res = run(engine, [p])
    assert {k: v[0] for k, v in res.items()} == {(p, key): "pass" for key in audit.ITEM_KEYS}
    assert "2 chronic conditions" in res[(p, "eligibility")][1]
    assert "Counted 25 min" in res[(p, "minutes_support")][1]


def test_one_row_per_item_and_single_checklist_matches(engine):
    with engine.begin() as conn:
        b = Builder(conn)
        p, q = clean(b), clean(b)
    with engine.connect() as conn:
        df = audit.checklist_for_months(conn, Filters.for_month(MONTH))
        one = audit.checklist(conn, q, MONTH)
    assert len(df) == 2 * len(audit.ITEMS)
    assert list(df[df.patient_id == p]["item_key"]) == list(audit.ITEM_KEYS)
    assert set(df["result"]) <= set(audit.RESULTS)
    assert [c.item_key for c in one] == list(audit.ITEM_KEYS)
    same = df[df.patient_id == q]
    assert [(c.result, c.evidence) for c in one] == list(zip(same["result"], same["evidence"]))


def test_month_population_is_billed_ccm_months_only(engine):
    with engine.begin() as conn:
        b = Builder(conn)
        billed = clean(b)
        unbilled = setup_patient(b)
        bill_month(b, unbilled, codes=())  # time but no claim
        other = setup_patient(b)
        bill_month(b, other, on=D(2025, 4, 2), dos=D(2025, 4, 30))  # billed, but in April
    with engine.connect() as conn:
        df = audit.checklist_for_months(conn, Filters.for_month(MONTH))
        pop = audit.billed_patient_months(conn, Filters(month_from=MONTH, month_to=202504))
    assert set(df["patient_id"]) == {billed}
    assert list(map(tuple, pop.to_numpy())) == [(billed, MONTH), (other, 202504)]


# --------------------------------------------------------------------------- 1 eligibility
def test_eligibility(engine):
    with engine.begin() as conn:
        b = Builder(conn)
        ok = clean(b)
        one_condition = clean(b, diagnoses=("E119", "E1165"))  # both diabetes: one condition
        resolved = setup_patient(b, diagnoses=("E119",))
        b.diagnosis(resolved, "I10", resolved_date=D(2025, 2, 20))  # resolved before March
        bill_month(b, resolved)
        ov_yes = clean(b, diagnoses=("E119",))
        b.eligibility_override(ov_yes, True, decided_on=D(2025, 1, 1), reason="severe frailty")
        ov_no = clean(b)
        b.eligibility_override(ov_no, False, decided_on=D(2025, 2, 1), reason="conditions controlled")
        ov_later = clean(b, diagnoses=("E119",))  # a decision made after the month does not count yet
        b.eligibility_override(ov_later, True, decided_on=D(2025, 4, 10))
    res = run(engine, [ok, one_condition, resolved, ov_yes, ov_no, ov_later])
    assert result(res, ok, "eligibility") == "pass"
    assert result(res, one_condition, "eligibility") == "fail"
    assert "1 chronic condition " in res[(one_condition, "eligibility")][1]
    assert result(res, resolved, "eligibility") == "fail"
    assert result(res, ov_yes, "eligibility") == "pass"
    assert "severe frailty" in res[(ov_yes, "eligibility")][1]
    assert result(res, ov_no, "eligibility") == "fail"
    assert result(res, ov_later, "eligibility") == "fail"


# --------------------------------------------------------------------------- 2 initiating visit
def test_initiating_visit(engine):
    with engine.begin() as conn:
        b = Builder(conn)
        ok = clean(b)
        only_99211 = clean(b, visit=False)  # new patient (no first_seen_date): 99211 is not level 2-5
        b.visit(only_99211, on=D(2024, 12, 15), cpt="99211")
        other_doc = clean(b, visit=False, first_seen_date=D(2019, 5, 1))
        b.visit(other_doc, on=D(2024, 11, 3), cpt="99214", practitioner_id=b.practitioner())
        too_old = clean(b, visit=False, first_seen_date=D(2019, 5, 1))
        b.visit(too_old, on=D(2023, 12, 20), cpt="99214")  # 379 days before CCM start
        established = clean(b, visit=False, first_seen_date=D(2019, 5, 1))
        b.visit(established, on=D(2024, 10, 1), cpt="99211")  # seen in the year: no initiating visit needed
        awv = clean(b, visit=False)
        b.visit(awv, on=D(2024, 6, 1), cpt="G0439", visit_type="AWV")
    res = run(engine, [ok, only_99211, other_doc, too_old, established, awv])
    assert result(res, ok, "initiating_visit") == "pass"
    assert result(res, only_99211, "initiating_visit") == "fail"
    assert result(res, other_doc, "initiating_visit") == "fail"
    assert "another practitioner" in res[(other_doc, "initiating_visit")][1]
    assert result(res, too_old, "initiating_visit") == "fail"
    assert result(res, established, "initiating_visit") == "na"
    assert result(res, awv, "initiating_visit") == "pass"


# --------------------------------------------------------------------------- 3 consent
def test_consent(engine):
    with engine.begin() as conn:
        b = Builder(conn)
        ok = clean(b)
        missing = clean(b, consent=False)
        undated = clean(b, consent=False)
        b.consent(undated, on=None)
        late = setup_patient(b, consent=False)
        b.consent(late, on=D(2025, 3, 10))
        bill_month(b, late)  # minutes on 4 and 5 March, before the consent
        incomplete = clean(b, consent=False)
        b.consent(incomplete, on=D(2025, 1, 2), disclosed_right_to_stop=False)
        declined = clean(b, consent=False)
        b.consent(declined, on=D(2025, 1, 2), decision="declined")
        revoked = clean(b, consent=False)
        b.consent(revoked, on=D(2025, 1, 2), revoked_date=D(2025, 2, 28))

        first_doc = b.default_practitioner()
        changed = setup_patient(b)  # consent tied to the first practitioner
        new_doc = b.practitioner()
        conn.execute(update(s.patient).where(s.patient.c.id == changed).values(billing_practitioner_id=new_doc))
        bill_month(b, changed)
        reconsented = setup_patient(b)
        conn.execute(update(s.patient).where(s.patient.c.id == reconsented).values(billing_practitioner_id=new_doc))
        b.consent(reconsented, on=D(2025, 2, 20), practitioner_id=new_doc)
        bill_month(b, reconsented)
    res = run(engine, [ok, missing, undated, late, incomplete, declined, revoked, changed, reconsented])
    assert result(res, ok, "consent") == "pass"
    for p, words in (
        (missing, "No CCM consent"),
        (undated, "undated"),
        (late, "first CCM minute (2025-03-04)"),
        (incomplete, "right to stop"),
        (declined, "declined"),
        (revoked, "Revoked 2025-02-28"),
        (changed, f"#{new_doc}: a new consent"),
    ):
        assert result(res, p, "consent") == "fail", p
        assert words in res[(p, "consent")][1], res[(p, "consent")][1]
    assert f"tied to practitioner #{first_doc}" in res[(changed, "consent")][1]
    assert result(res, reconsented, "consent") == "pass"


# --------------------------------------------------------------------------- 4 care plan
def test_care_plan(engine):
    with engine.begin() as conn:
        b = Builder(conn)
        ok = clean(b)
        none = clean(b, care_plan=False)
        not_shared = clean(b, care_plan=False)
        b.care_plan(not_shared, established=D(2025, 1, 2), shared_with_patient_date=None)
        after_month = clean(b, care_plan=False)
        b.care_plan(after_month, established=D(2025, 4, 2))
        no_portal = clean(b, care_plan=False)
        b.care_plan(no_portal, established=D(2025, 1, 2), electronic_access=False)
        stale = clean(b, care_plan=False)
        b.care_plan(stale, established=D(2023, 11, 1))
        reviewed = clean(b, care_plan=False)
        b.care_plan(reviewed, established=D(2023, 11, 1), reviewed_date=D(2024, 12, 1))
        newer_unshared = clean(b)  # v1 shared; v2 in force from February was never given to the patient
        b.care_plan(newer_unshared, established=D(2025, 2, 10), shared_with_patient_date=None)
    res = run(engine, [ok, none, not_shared, after_month, no_portal, stale, reviewed, newer_unshared])
    assert result(res, ok, "care_plan") == "pass"
    for p in (none, not_shared, after_month, no_portal, stale, newer_unshared):
        assert result(res, p, "care_plan") == "fail", res[(p, "care_plan")]
    assert "No copy given" in res[(not_shared, "care_plan")][1]
    assert "version 2" in res[(newer_unshared, "care_plan")][1]
    assert "not established or reviewed since 2023-11-01" in res[(stale, "care_plan")][1].lower()
    assert result(res, reviewed, "care_plan") == "pass"


# --------------------------------------------------------------------------- 5 time log
def test_time_log(engine):
    with engine.begin() as conn:
        b = Builder(conn)
        ok = clean(b)
        nonclinical = clean(b)
        b.time(
            nonclinical,
            10,
            on=D(2025, 3, 12),
            staff_id=b.nonclinical_staff(last_name="Scheduler"),
            note="Scheduled cardiology follow-up and mailed the reminder letter",
        )
        no_note = setup_patient(b)
        bill_month(b, no_note)
        b.time(no_note, 6, on=D(2025, 3, 20), note=None)
        no_start = setup_patient(b)
        bill_month(b, no_start)
        tid = b.time(no_start, 6, on=D(2025, 3, 21))
        conn.execute(update(s.time_entry).where(s.time_entry.c.id == tid).values(started_at=None, ended_at=None))
        claim_only = setup_patient(b)
        bill_month(b, claim_only, minutes=())
    res = run(engine, [ok, nonclinical, no_note, no_start, claim_only])
    assert result(res, ok, "time_log") == "pass"
    assert result(res, nonclinical, "time_log") == "fail"
    assert "(10 min) by non-clinical staff (Scheduler)" in res[(nonclinical, "time_log")][1]
    assert result(res, no_note, "time_log") == "fail" and "1 with no note" in res[(no_note, "time_log")][1]
    assert result(res, no_start, "time_log") == "fail" and "no start time" in res[(no_start, "time_log")][1]
    assert result(res, claim_only, "time_log") == "na"


# --------------------------------------------------------------------------- 6 minutes support
def test_minutes_support(engine):
    with engine.begin() as conn:
        b = Builder(conn)
        ok = clean(b)
        nineteen = setup_patient(b)
        bill_month(b, nineteen, minutes=(10, 9))
        thirty_nine = setup_patient(b)
        bill_month(b, thirty_nine, minutes=(20, 19), codes=(("99490", 1), ("99439", 1)))
        forty = setup_patient(b)
        bill_month(b, forty, minutes=(20, 20), codes=(("99490", 1), ("99439", 1)))
        nonclinical = setup_patient(b)  # 15 clinical + 10 non-clinical = 15 counted: 99490 not supported
        bill_month(b, nonclinical, minutes=(15,))
        b.time(nonclinical, 10, on=D(2025, 3, 9), staff_id=b.nonclinical_staff())
        unbilled = setup_patient(b)
        bill_month(b, unbilled, minutes=(25,), codes=())
    res = run(engine, [ok, nineteen, thirty_nine, forty, nonclinical, unbilled])
    assert result(res, ok, "minutes_support") == "pass"
    assert result(res, nineteen, "minutes_support") == "fail"
    assert "Counted 19 min" in res[(nineteen, "minutes_support")][1]
    assert result(res, thirty_nine, "minutes_support") == "fail"
    assert result(res, forty, "minutes_support") == "pass"
    assert result(res, nonclinical, "minutes_support") == "fail"
    assert "non-clinical 10" in res[(nonclinical, "minutes_support")][1]
    assert result(res, unbilled, "minutes_support") == "na"


# --------------------------------------------------------------------------- 7 no double counting
def test_no_double_counting(engine):
    with engine.begin() as conn:
        b = Builder(conn)
        ok = clean(b)
        b.time(ok, 15, on=D(2025, 3, 6), program="RPM", start=dt.time(15, 0))  # RPM at another time: fine
        overlap = setup_patient(b)
        bill_month(b, overlap, minutes=(25,))
        b.time(overlap, 15, on=D(2025, 3, 6), start=dt.time(10, 0))
        b.time(overlap, 15, on=D(2025, 3, 6), program="RPM", start=dt.time(10, 5))  # 10 minutes shared
        claim_only = setup_patient(b)
        bill_month(b, claim_only, minutes=())
    res = run(engine, [ok, overlap, claim_only])
    assert result(res, ok, "no_double_counting") == "pass"
    assert result(res, overlap, "no_double_counting") == "fail"
    assert res[(overlap, "no_double_counting")][1].startswith("10 CCM min overlap time logged under RPM")
    assert result(res, claim_only, "no_double_counting") == "na"


# --------------------------------------------------------------------------- 8 no conflicting claim
def test_no_conflicting_claim(engine):
    with engine.begin() as conn:
        b = Builder(conn)
        ok = clean(b)
        other_doc = clean(b)
        b.paid(b.claim(other_doc, [("99490", 1)], dos=D(2025, 3, 31), practitioner_id=b.practitioner()))
        pcm_same = clean(b)
        b.claim(pcm_same, [("99424", 1)], dos=D(2025, 3, 31))
        pcm_other = clean(b)
        b.claim(pcm_other, [("99424", 1)], dos=D(2025, 3, 31), practitioner_id=b.practitioner())
        paid_twice = clean(b)
        b.paid(b.claim(paid_twice, [("99490", 1)], dos=D(2025, 3, 31)))
        dup_denied = clean(b)
        b.denied(b.claim(dup_denied, [("99490", 1)], dos=D(2025, 3, 31)), carc="18", group="OA")
        unbilled = setup_patient(b)
        bill_month(b, unbilled, codes=())
    res = run(engine, [ok, other_doc, pcm_same, pcm_other, paid_twice, dup_denied, unbilled])
    assert result(res, ok, "no_conflicting_claim") == "pass"
    assert result(res, other_doc, "no_conflicting_claim") == "fail"
    assert "CCM billed by 2 practitioners" in res[(other_doc, "no_conflicting_claim")][1]
    assert result(res, pcm_same, "no_conflicting_claim") == "fail"
    assert "PCM billed by the same practitioner" in res[(pcm_same, "no_conflicting_claim")][1]
    assert result(res, pcm_other, "no_conflicting_claim") == "pass"
    assert result(res, paid_twice, "no_conflicting_claim") == "fail"
    assert "2 CCM claims paid" in res[(paid_twice, "no_conflicting_claim")][1]
    assert result(res, dup_denied, "no_conflicting_claim") == "pass"
    assert "duplicate resubmission was not paid" in res[(dup_denied, "no_conflicting_claim")][1]
    # not billed yet: judged before the claim (pre-bill): nothing conflicts
    assert result(res, unbilled, "no_conflicting_claim") == "pass"


# --------------------------------------------------------------------------- 9 inpatient days
def test_inpatient_days(engine):
    with engine.begin() as conn:
        b = Builder(conn)
        ok = clean(b)
        in_stay = clean(b)
        b.stay(in_stay, D(2025, 3, 14), D(2025, 3, 18), facility_name="Mercy General")
        b.time(in_stay, 12, on=D(2025, 3, 16))
        around = clean(b)  # minutes on 4-5 March, stay 14-18 March
        b.stay(around, D(2025, 3, 14), D(2025, 3, 18), kind="SNF")
        still_in = setup_patient(b)
        b.stay(still_in, D(2025, 3, 20), None)
        bill_month(b, still_in, minutes=(12, 13), on=D(2025, 3, 3))
        b.time(still_in, 5, on=D(2025, 3, 29))
        claim_only = setup_patient(b)
        bill_month(b, claim_only, minutes=())
    res = run(engine, [ok, in_stay, around, still_in, claim_only])
    assert result(res, ok, "inpatient_days") == "pass"
    assert result(res, in_stay, "inpatient_days") == "fail"
    assert (
        "12 CCM min logged on inpatient/SNF days (inpatient 2025-03-14 to 2025-03-18)"
        in res[(in_stay, "inpatient_days")][1]
    )
    assert result(res, around, "inpatient_days") == "pass"
    assert "SNF 2025-03-14 to 2025-03-18" in res[(around, "inpatient_days")][1]
    assert result(res, still_in, "inpatient_days") == "fail"
    assert "(still in)" in res[(still_in, "inpatient_days")][1]
    assert result(res, claim_only, "inpatient_days") == "na"


# --------------------------------------------------------------------------- 10 claim fields
def test_claim_fields(engine):
    with engine.begin() as conn:
        b = Builder(conn)
        ok = clean(b)
        at_threshold = setup_patient(b)  # 12 on 3 March, 13 on 10 March: threshold reached 10 March
        b.time(at_threshold, 12, on=D(2025, 3, 3))
        b.time(at_threshold, 13, on=D(2025, 3, 10))
        b.paid(b.claim(at_threshold, [("99490", 1)], dos=D(2025, 3, 10)))
        early = setup_patient(b)
        b.time(early, 12, on=D(2025, 3, 3))
        b.time(early, 13, on=D(2025, 3, 10))
        b.paid(b.claim(early, [("99490", 1)], dos=D(2025, 3, 5)))
        over_cap = setup_patient(b)
        bill_month(b, over_cap, minutes=(30, 30, 25), codes=(("99490", 1), ("99439", 3)))
        no_base = setup_patient(b)
        bill_month(b, no_base, minutes=(20, 20), codes=(("99439", 1),))
        complex_no_mdm = setup_patient(b)
        bill_month(b, complex_no_mdm, minutes=(30, 35), codes=(("99487", 1),))
        complex_mdm = setup_patient(b)
        b.complexity(complex_mdm, MONTH)
        b.care_plan(complex_mdm, established=D(2025, 3, 3), substantially_revised=True)
        bill_month(b, complex_mdm, minutes=(30, 35), codes=(("99487", 1),))
        complex_no_revision = setup_patient(b)  # MDM recorded, but the care plan was not revised this month
        b.complexity(complex_no_revision, MONTH)
        bill_month(b, complex_no_revision, minutes=(30, 35), codes=(("99487", 1),))
        wrong_pos = setup_patient(b)
        b.times(wrong_pos, [12, 13], on=D(2025, 3, 4))
        b.paid(b.claim(wrong_pos, [("99490", 1)], dos=D(2025, 3, 31), place_of_service="02"))
        unbilled = setup_patient(b)
        bill_month(b, unbilled, codes=())
    res = run(
        engine,
        [
            ok,
            at_threshold,
            early,
            over_cap,
            no_base,
            complex_no_mdm,
            complex_mdm,
            complex_no_revision,
            wrong_pos,
            unbilled,
        ],
    )
    assert result(res, ok, "claim_fields") == "pass"
    assert result(res, at_threshold, "claim_fields") == "pass"
    assert result(res, early, "claim_fields") == "fail"
    assert (
        "date of service 2025-03-05 is before the threshold was reached on 2025-03-10"
        in res[(early, "claim_fields")][1].lower()
    )
    assert result(res, over_cap, "claim_fields") == "fail" and "cap" in res[(over_cap, "claim_fields")][1]
    assert result(res, no_base, "claim_fields") == "fail" and "without its base" in res[(no_base, "claim_fields")][1]
    assert result(res, complex_no_mdm, "claim_fields") == "fail"
    assert "MDM" in res[(complex_no_mdm, "claim_fields")][1]
    assert result(res, complex_mdm, "claim_fields") == "pass", res[(complex_mdm, "claim_fields")]
    assert result(res, complex_no_revision, "claim_fields") == "fail"
    assert "care plan established or substantially revised" in res[(complex_no_revision, "claim_fields")][1]
    assert (
        result(res, wrong_pos, "claim_fields") == "fail"
        and "place of service" in res[(wrong_pos, "claim_fields")][1].lower()
    )
    assert result(res, unbilled, "claim_fields") == "na"


# --------------------------------------------------------------------------- 11 documentation quality
def test_documentation(engine):
    month_end_batch = dt.datetime(2025, 3, 31, 17, 0)
    with engine.begin() as conn:
        b = Builder(conn)
        ok = clean(b)
        round_realtime = setup_patient(b)  # round numbers entered as they happen are fine
        bill_month(b, round_realtime, minutes=(20, 30, 10))
        vague = setup_patient(b)
        bill_month(b, vague, minutes=(12,))
        b.time(vague, 13, on=D(2025, 3, 11), note="LVM.")
        short = setup_patient(b)
        bill_month(b, short, minutes=(25,), note="pt doing ok")
        batch = setup_patient(b)
        for day, m in ((3, 20), (10, 10), (17, 30)):
            b.time(batch, m, on=D(2025, 3, day), entry_method="batch", entered_at=month_end_batch)
        b.paid(b.claim(batch, [("99490", 1), ("99439", 1)], dos=D(2025, 3, 31)))
        backdated = setup_patient(b)
        for day, m in ((3, 13), (10, 17), (17, 11)):
            b.time(backdated, m, on=D(2025, 3, day), entry_method="manual", entered_at=month_end_batch)
        b.paid(b.claim(backdated, [("99490", 1), ("99439", 1)], dos=D(2025, 3, 31)))
        busy = setup_patient(b)  # one nurse logs 300 + 200 = 500 min of CCM on 4 March
        nurse = b.staff(last_name="Overtime")
        b.time(busy, 300, on=D(2025, 3, 4), staff_id=nurse)
        other = setup_patient(b)
        b.time(other, 200, on=D(2025, 3, 4), staff_id=nurse)
        b.paid(b.claim(busy, [("99490", 1), ("99439", 2)], dos=D(2025, 3, 31)))
        claim_only = setup_patient(b)
        bill_month(b, claim_only, minutes=())
    res = run(engine, [ok, round_realtime, vague, short, batch, backdated, busy, claim_only])
    assert result(res, ok, "documentation") == "pass"
    assert result(res, round_realtime, "documentation") == "pass"
    assert result(res, vague, "documentation") == "fail" and '"LVM."' in res[(vague, "documentation")][1]
    assert result(res, short, "documentation") == "fail"
    assert result(res, batch, "documentation") == "fail"
    assert "round durations" in res[(batch, "documentation")][1]
    assert result(res, backdated, "documentation") == "fail"
    assert "3 of 3 entries entered at month end" in res[(backdated, "documentation")][1]
    assert "round" not in res[(backdated, "documentation")][1]
    assert result(res, busy, "documentation") == "fail" and "8 h" in res[(busy, "documentation")][1]
    assert result(res, claim_only, "documentation") == "na"


def test_vague_phrases_are_data_and_matched_without_case_or_full_stop():
    assert "ccm call completed" in audit.VAGUE_NOTE_PHRASES
    assert {"lvm", "spoke with patient", "followed up with patient"} <= set(audit.VAGUE_NOTE_PHRASES)
    assert audit.MIN_NOTE_CHARS >= 15


def test_empty_input_and_unknown_pairs(engine):
    with engine.connect() as conn:
        assert audit.checklist_for_months(conn, []).empty
        assert audit.checklist_for_months(conn, Filters.for_month(MONTH)).empty


@pytest.mark.parametrize("kind", sorted(audit.PLANTED_ITEM))
def test_every_mapped_planted_kind_names_a_real_item(kind):
    assert audit.PLANTED_ITEM[kind] in audit.ITEM_KEYS
