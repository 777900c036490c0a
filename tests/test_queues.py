"""Work queues (``ccm_core.kpis.queues``) and the appeal-deadline rule (``ccm_core.rules.appeals``).

Every expected date is counted by hand from the regulation text quoted in ``rules/appeal_deadlines.csv``:
42 CFR 405.942(a) redetermination within 120 calendar days of *receipt* of the initial determination,
receipt presumed 5 calendar days after the notice date; 405.962(a) reconsideration within 180 days of
receipt of the redetermination (same presumption); 424.44(a)(1) a claim within 1 calendar year of the
date of service.
"""

from __future__ import annotations

import datetime as dt

import pandas as pd
import pytest
from sqlalchemy import select

from ccm_core.engine.filters import Filters
from ccm_core.kpis import queues
from ccm_core.rules import appeals
from ccm_core.storage import db
from ccm_core.storage import schema as s

from builders import Builder

D = dt.date


# --------------------------------------------------------------------------- the deadline rule, from its source
def test_deadline_rules_are_data_with_their_source():
    rules = appeals.deadline_rules()
    red = rules["redetermination"]
    assert (red.period, red.unit, red.receipt_days, red.status) == (120, "days", 5, "V")
    assert "405.942(a)" in red.source and "120 calendar days" in red.source and "5 calendar days" in red.source
    rec = rules["reconsideration"]
    assert (rec.period, rec.unit, rec.receipt_days) == (180, "days", 5) and "405.962(a)" in rec.source
    new = rules["corrected_claim"]
    assert (new.period, new.unit, new.receipt_days) == (1, "years", 0) and "424.44(a)(1)" in new.source


@pytest.mark.parametrize(
    "key, start, expected",
    [
        # notice Jun 28 -> received Jul 3 (+5); +120: Jul 31 = 28, Aug 31 = 59, Sep 30 = 89, Oct 31 = 120
        ("redetermination", D(2025, 6, 28), D(2025, 10, 31)),
        # notice Apr 17 -> received Apr 22; Apr 30 = 8, May 31 = 39, Jun 30 = 69, Jul 31 = 100, Aug 20 = 120
        ("redetermination", D(2025, 4, 17), D(2025, 8, 20)),
        # across a leap day: notice Jan 1 2024 -> received Jan 6; Jan 31 = 25, Feb 29 = 54, Mar 31 = 85, May 5 = 120
        ("redetermination", D(2024, 1, 1), D(2024, 5, 5)),
        # redetermination notice Jun 10 -> received Jun 15; +180: Jun 30 = 15, Jul 31 = 46, Aug 31 = 77,
        # Sep 30 = 107, Oct 31 = 138, Nov 30 = 168, Dec 12 = 180
        ("reconsideration", D(2025, 6, 10), D(2025, 12, 12)),
        # 1 calendar year after the date of service; 29 Feb has no anniversary, so 28 Feb
        ("corrected_claim", D(2025, 2, 28), D(2026, 2, 28)),
        ("corrected_claim", D(2024, 2, 29), D(2025, 2, 28)),
    ],
)
def test_appeal_deadline_worked_from_the_regulation(key, start, expected):
    assert appeals.appeal_deadline(key, start) == expected
    # the vectorised form the queue uses gives the same day
    got = appeals.deadline_rules()[key].deadline_series(pd.to_datetime(pd.Series([start])))
    assert got.iloc[0].date() == expected


def test_likely_fix_unprocessable_first_then_the_largest_carc():
    assert appeals.likely_fix(["16"], ["MA130"]).route == "correct"
    assert "no appeal rights" in appeals.likely_fix(["16"], ["MA130"]).fix
    assert appeals.likely_fix(["97", "16"], []).code == "97"
    assert appeals.likely_fix(["999"], []) is None
    assert {f.route for f in appeals.fixes().values()} <= set(appeals.ROUTES)


# --------------------------------------------------------------------------- my month
def _month_cohort(b: Builder):
    """As of Mar 20 2025 (11 days left): see the assertions for each patient's worked numbers."""
    cm = b.staff(first_name="Ann", last_name="Lee", fte=0.5)
    other_cm = b.staff(first_name="Bo", last_name="Kim", fte=1.0)
    pts = {}
    pts["zero"] = b.enrolled_patient(care_manager_id=cm, phone="555-000-0001", next_contact_date=D(2025, 3, 24))
    pts["fifteen"] = b.enrolled_patient(care_manager_id=cm)
    b.time(pts["fifteen"], 15, D(2025, 3, 3), interactive=True)
    pts["forty_five"] = b.enrolled_patient(care_manager_id=cm)
    b.time(pts["forty_five"], 25, D(2025, 2, 27), interactive=True)  # February: last contact, no March minutes
    b.time(pts["forty_five"], 45, D(2025, 3, 10))  # not interactive: minutes, not a contact
    pts["complex"] = b.enrolled_patient(care_manager_id=cm)
    b.complexity(pts["complex"], 202503)
    b.time(pts["complex"], 70, D(2025, 3, 18), interactive=True)
    pts["done"] = b.enrolled_patient(care_manager_id=cm)
    b.time(pts["done"], 60, D(2025, 3, 5), interactive=True)
    pts["no_plan"] = b.patient(care_manager_id=cm)
    b.diagnoses(pts["no_plan"], ["E119", "I10"])
    b.funnel(pts["no_plan"], "enrolled", D(2025, 1, 2))
    b.consent(pts["no_plan"], on=D(2025, 1, 2))
    pts["other"] = b.enrolled_patient(care_manager_id=other_cm)
    for p in pts.values():  # the initiating visit, so that only the planted hold holds a month
        b.visit(p, on=D(2024, 12, 1))
    return cm, other_cm, pts


def test_my_month_lists_unfinished_months_with_next_step_contact_and_holds(engine):
    with engine.begin() as conn:
        b = Builder(conn)
        cm, other_cm, pts = _month_cohort(b)
    as_of = D(2025, 3, 20)
    with engine.connect() as conn:
        df = queues.my_month(conn, Filters(202503, 202503, care_manager_ids=(cm,)), as_of)
    rows = df.set_index("patient_id")
    assert pts["done"] not in rows.index and pts["other"] not in rows.index  # complete; someone else's
    assert df.attrs["enrolled"] == 6 and df.attrs["at_zero"] == 2 and df.attrs["days_left"] == 11
    z = rows.loc[pts["zero"]]
    assert (z.counted_minutes, z.next_step, z.minutes_to_next, z.phone) == (0, 20, 20, "555-000-0001")
    assert z.last_contact_date is None and pd.isna(z.days_since_contact) and z.next_contact_date == D(2025, 3, 24)
    f = rows.loc[pts["fifteen"]]
    assert (f.next_step, f.minutes_to_next, f.days_since_contact, f.contacted_this_month) == (20, 5, 17, True)
    ff = rows.loc[pts["forty_five"]]
    # 45 min: 99490 + 99439 x1 earned, next 60; last contact Feb 27 = 21 days, none this month
    assert (ff.next_step, ff.minutes_to_next, ff.last_contact_date, ff.days_since_contact) == (
        60,
        15,
        D(2025, 2, 27),
        21,
    )
    assert not ff.contacted_this_month
    cx = rows.loc[pts["complex"]]
    assert (cx.complex, cx.next_step, cx.minutes_to_next) == (1, 90, 20)  # 99487 at 60, 99489 at 90
    np_ = rows.loc[pts["no_plan"]]
    assert (np_.care_plan_hold, np_.consent_hold, np_.hold_items) == (1, 0, "care_plan")
    assert "care plan" in np_.holds  # the compliance rules' reason, with its fix
    assert (df[df.patient_id != pts["no_plan"]]["hold_items"] == "").all()
    # never contacted first, then longest since contact
    assert list(df["patient_id"])[:2] == sorted([pts["zero"], pts["no_plan"]])
    assert list(df["patient_id"])[2:] == [pts["forty_five"], pts["fifteen"], pts["complex"]]


def test_caseload_capacity_per_fte(engine):
    with engine.begin() as conn:
        b = Builder(conn)
        cm, other_cm, pts = _month_cohort(b)
    as_of = D(2025, 3, 20)
    with engine.connect() as conn:
        df = queues.caseload_capacity(conn, Filters(202503, 202503), as_of).set_index("care_manager_id")
    a = df.loc[cm]
    # 6 patients: 0 + 15 + 45 + 70 + 60 + 0 = 190 minutes; to 20: 20 + 5 + 20 = 45; 2 at zero
    assert (a.caseload, a.minutes_so_far, a.minutes_to_first_step, a.at_zero) == (6, 190, 45, 2)
    # contacted in March: fifteen, complex, done; not: zero, forty_five, no_plan
    assert a.not_contacted == 3
    assert a.expected_minutes == 120 and a.capacity_minutes == 3000.0 and a.patients_per_fte == 12.0
    assert a.load == pytest.approx(120 / 3000)
    o = df.loc[other_cm]
    assert (o.caseload, o.capacity_minutes) == (1, 6000.0)
    with engine.begin() as conn:
        Builder(conn).setting(queues.MINUTES_PER_FTE_KEY, "4000")
    with engine.connect() as conn:
        df = queues.caseload_capacity(conn, Filters(202503, 202503), as_of).set_index("care_manager_id")
    assert df.loc[cm].capacity_minutes == 2000.0


# --------------------------------------------------------------------------- denials
def _denial_cohort(b: Builder) -> dict:
    out = {}
    p = b.enrolled_patient()
    # 1: CO-97 + M15 for the whole claim, no service lines: each line its share
    out["bundled"] = b.claim(p, [("99490", 1), ("99439", 1)], D(2025, 3, 31), submitted=D(2025, 4, 3))
    out["bundled_lines"] = list(b.last_claim_line_ids)
    b.denied(out["bundled"], carc="97", rarc="M15", on=D(2025, 4, 17))
    # 2: unprocessable (CO-16 + MA130): a new claim within a year of the date of service
    out["ma130"] = b.claim(p, [("99490", 1)], D(2025, 2, 28), submitted=D(2025, 3, 4))
    b.denied(out["ma130"], carc="16", rarc=["MA130", "M51"], on=D(2025, 3, 18))
    # 3: exact duplicate only: not worked
    dup = b.claim(p, [("99490", 1)], D(2025, 1, 31), submitted=D(2025, 2, 3))
    b.denied(dup, carc="18", group="OA", on=D(2025, 2, 17))
    # 4: denied, then paid on reprocessing: done
    fixed = b.claim(p, [("99490", 1)], D(2025, 1, 30), submitted=D(2025, 2, 4))
    b.denied(fixed, carc="4", on=D(2025, 2, 18))
    b.paid(fixed, 60.0, on=D(2025, 3, 20), seq=2)
    # 5: appealed and upheld on Jun 10: reconsideration next
    out["upheld"] = b.claim(p, [("99490", 1)], D(2025, 3, 30), submitted=D(2025, 4, 2), payer="Medicare Part B")
    b.denied(out["upheld"], carc="50", on=D(2025, 4, 16))
    b.appeal(out["upheld"], filed=D(2025, 5, 1), outcome="upheld", outcome_date=D(2025, 6, 10))
    # 6: underpaid: half paid on the service line, CO-151 for the rest
    out["under"] = b.claim(p, [("99490", 1)], D(2025, 3, 29), submitted=D(2025, 4, 2))
    out["under_line"] = b.last_claim_line_ids[0]
    b.remittance(out["under"], "1", 50.0, D(2025, 4, 20), adjustments=[("CO", "151", 50.0)], with_lines=True)
    # 7: pending appeal: no filing deadline while it runs
    out["pending"] = b.claim(p, [("99490", 1)], D(2025, 3, 28), submitted=D(2025, 4, 2))
    b.denied(out["pending"], carc="97", on=D(2025, 4, 16))
    b.appeal(out["pending"], filed=D(2025, 5, 2))
    return out


def test_denials_to_work_lines_reasons_dollars_and_deadlines(engine):
    with engine.begin() as conn:
        c = _denial_cohort(Builder(conn))
    as_of = D(2025, 6, 30)
    with engine.connect() as conn:
        df = queues.denials_to_work(conn, Filters(202501, 202506), as_of)
    by = df.set_index("claim_line_id")
    assert set(df["claim_id"]) == {c["bundled"], c["ma130"], c["upheld"], c["under"], c["pending"]}
    l1, l2 = (by.loc[i] for i in c["bundled_lines"])
    assert (l1.cpt_code, l1.kind, l1.denied_amount, l1.fee_value) == ("99490", "denied", 100.0, 60.49)
    assert (l2.cpt_code, l2.denied_amount, l2.fee_value) == ("99439", 100.0, 45.93)  # 2025 national fees
    assert l1.carcs == "97" and l1.rarcs == "M15" and l1.reason.startswith("CARC 97: The benefit for this service")
    assert l1.route == "appeal" and l1.deadline_kind == "redetermination"
    assert l1.deadline == D(2025, 8, 20) and l1.days_to_deadline == 51  # Jun 30 -> Aug 20
    m = df[df.claim_id == c["ma130"]].iloc[0]
    assert (m.deadline_kind, m.deadline, m.route) == ("corrected_claim", D(2026, 2, 28), "correct")
    assert m.rarcs == "M51, MA130"
    u = df[df.claim_id == c["upheld"]].iloc[0]
    assert (u.deadline_kind, u.deadline, u.appeal_outcome) == ("reconsideration", D(2025, 12, 12), "upheld")
    under = by.loc[c["under_line"]]
    assert (under.kind, under.paid, under.denied_amount, under.carcs) == ("underpaid", 50.0, 50.0, "151")
    pend = df[df.claim_id == c["pending"]].iloc[0]
    assert pend.deadline_kind is None and pend.deadline is None
    assert set(df["status"]) == {"open"}
    # most urgent first among open lines (pending appeal, no deadline, last)
    assert list(df["deadline"])[:1] == [D(2025, 8, 20)] and df["deadline"].iloc[-1] is None


def test_denial_status_persists_is_logged_and_is_refused_to_other_roles(engine):
    with engine.begin() as conn:
        c = _denial_cohort(Builder(conn))
    line = c["bundled_lines"][0]
    with engine.connect() as conn:
        v0 = db.get_data_version(conn)
    queues.set_denial_status(engine, line, "appealed", username="bill", role="biller", note="sent records")
    with engine.connect() as conn:
        df = queues.denials_to_work(conn, Filters(202501, 202506), D(2025, 6, 30)).set_index("claim_line_id")
        log = conn.execute(select(s.access_log.c.username, s.access_log.c.action, s.access_log.c.detail)).all()
        assert db.get_data_version(conn) == v0 + 1
    assert (df.loc[line].status, df.loc[line].status_by, df.loc[line].note) == ("appealed", "bill", "sent records")
    assert log[-1].username == "bill" and log[-1].action == "denial_status"
    assert "open -> appealed" in log[-1].detail and "line 1" in log[-1].detail
    with pytest.raises(PermissionError):
        queues.set_denial_status(engine, line, "worked", username="cm", role="care_manager")
    with pytest.raises(ValueError):
        queues.set_denial_status(engine, line, "lost", username="bill", role="biller")
    # written off: out of the open list and, once every line is, out of the A/R
    for ln in c["bundled_lines"]:
        queues.set_denial_status(engine, ln, "written_off", username="bill", role="biller")
    with engine.connect() as conn:
        open_only = queues.denials_to_work(conn, Filters(202501, 202506), D(2025, 6, 30), include_closed=False)
        assert c["bundled"] not in set(open_only["claim_id"])
        assert c["bundled"] not in set(queues.ar_claims(conn, Filters(202501, 202506), D(2025, 6, 30))["claim_id"])
    queues.set_denial_status(engine, line, None, username="bill", role="biller")  # reopened
    with engine.connect() as conn:
        assert conn.execute(select(s.denial_work.c.status).where(s.denial_work.c.claim_line_id == line)).first() is None


def test_ar_aging_buckets_unpaid_claims_by_days_since_submission(engine):
    as_of = D(2025, 5, 10)
    with engine.begin() as conn:
        b = Builder(conn)
        p = b.enrolled_patient()
        b.claim(p, [("99490", 1)], D(2025, 4, 9), submitted=D(2025, 4, 10))  # 30 days: 0-30
        b.claim(p, [("99490", 1)], D(2025, 4, 8), submitted=D(2025, 4, 9))  # 31 days: 31-60
        b.claim(p, [("99490", 1), ("99439", 1)], D(2025, 2, 3), submitted=D(2025, 2, 8))  # 91 days: 90+
        den = b.claim(p, [("99490", 1)], D(2025, 3, 1), submitted=D(2025, 3, 11))  # 60 days, denied
        b.denied(den, on=D(2025, 3, 25))
        paid = b.claim(p, [("99490", 1)], D(2025, 1, 30), submitted=D(2025, 2, 1))  # paid: not A/R
        b.paid(paid, 50.0, on=D(2025, 2, 20))
        b.claim(p, [("99490", 1)], D(2025, 5, 20), submitted=D(2025, 5, 21))  # after as_of: not yet
    with engine.connect() as conn:
        df = queues.ar_aging(conn, Filters(202501, 202506), as_of)
        got = {(r.bucket, r.state): (r.claims, r.dollars) for r in df.itertuples()}
        claims = queues.ar_claims(conn, Filters(202501, 202506), as_of, bucket="90+")
    assert list(df["bucket"].unique()) == ["0-30", "31-60", "61-90", "90+"]
    assert got[("0-30", "awaiting payer")] == (1, 100.0)
    assert got[("31-60", "awaiting payer")] == (1, 100.0)
    assert got[("31-60", "denied")] == (1, 100.0)
    assert got[("90+", "awaiting payer")] == (1, 200.0)
    assert got[("61-90", "awaiting payer")] == (0, 0.0)
    assert sum(n for n, _ in got.values()) == 4
    assert list(claims["age_days"]) == [91] and claims["charge"].iloc[0] == 200.0
