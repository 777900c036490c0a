"""The demo generator: deterministic, believable, and every planted failure really in the tables.

Most checks read the shared session demo database (conftest ``DEMO_KW``: 300
patients x 6 months, seed 7, ending 2025-10) so they cost nothing extra; the
few that must write use the empty ``engine`` fixture with tiny sizes.  Each
planted kind is checked with its own plain SQL over the raw tables, not with
the engine, so a generator bug and an engine bug cannot cancel out.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import re
from pathlib import Path

import pytest
from sqlalchemy import Date, DateTime, and_, exists, func, not_, or_, select

from ccm_core import cli
from ccm_core.io import demo
from ccm_core.io.demo import vocab
from ccm_core.storage import db
from ccm_core.storage import schema as s

CCW_CODES = Path(__file__).resolve().parent.parent / "ccm_core" / "rules" / "ccw_codes.csv"  # CMS CCW, 30 conditions
CLINICAL = or_(s.staff.c.is_clinical.is_(True), s.staff.c.practitioner_id.isnot(None))
QUALIFYING_VISITS = ("99212", "99213", "99214", "99215", "G0438", "G0439", "G0402", "99495", "99496")


def rows(conn, stmt) -> set[tuple]:
    return {tuple(r) for r in conn.execute(stmt).all()}


def table_digest(conn, table) -> str:
    """A digest of every row of ``table`` in id order (what "byte-identical data" means across runs)."""
    h = hashlib.sha256()
    for r in conn.execute(select(table).order_by(*table.primary_key.columns)).all():
        h.update(repr(tuple(r)).encode())
    return h.hexdigest()


def all_digests(engine) -> dict[str, str]:
    with engine.connect() as conn:
        return {t: table_digest(conn, s.metadata.tables[t]) for t in demo.DemoData.TABLE_ORDER}


# --------------------------------------------------------------------------- helpers shared by tests
def ccm_minutes_by_month():
    """Minutes of CCM time by clinical staff or practitioners, per patient-month (raw tables, no engine)."""
    te = s.time_entry
    return (
        select(te.c.patient_id, te.c.service_month, func.sum(te.c.minutes).label("minutes"))
        .join(s.staff, s.staff.c.id == te.c.staff_id)
        .where(te.c.program == "CCM", CLINICAL)
        .group_by(te.c.patient_id, te.c.service_month)
    )


def billed_units():
    """Units billed per patient-month and code, leaving out exact duplicate resubmissions (claim number + R)."""
    cl, c = s.claim_line, s.claim
    return (
        select(cl.c.patient_id, cl.c.dos_month, cl.c.cpt_code, func.sum(cl.c.units).label("units"))
        .join(c, c.c.id == cl.c.claim_id)
        .where(not_(c.c.claim_number.like("%R")))
        .group_by(cl.c.patient_id, cl.c.dos_month, cl.c.cpt_code)
    )


def planted_patients(report, kinds=demo.PATIENT_KINDS) -> set[int]:
    return {p for k in kinds for p, _ in report.planted[k]}


def planted_months(report, kinds=demo.MONTH_KINDS) -> set[tuple[int, int]]:
    return {tuple(t) for k in kinds for t in report.planted[k]}


# --------------------------------------------------------------------------- API and refusals
def test_npi_check_digit_matches_the_cms_example():
    assert demo.npi_check_digit("123456789") == "3"  # CMS: 1234567893 is a valid NPI
    assert demo.npi_is_valid("1234567893")
    assert not demo.npi_is_valid("1234567890")


def test_refuses_a_database_that_already_holds_patients(engine):
    demo.generate(engine, patients=20, months=2, seed=1, end_month=202510)
    with engine.connect() as conn:
        before = conn.execute(select(func.count()).select_from(s.time_entry)).scalar()
    with pytest.raises(ValueError, match="already holds 20 patients"):
        demo.generate(engine, patients=20, months=2, seed=2, end_month=202510)
    with engine.connect() as conn:
        assert conn.execute(select(func.count()).select_from(s.time_entry)).scalar() == before


@pytest.mark.parametrize(
    "kw, message",
    [
        (dict(patients=0), "patients"),
        (dict(months=0), "months"),
        (dict(seed=-1), "seed"),
        (dict(end_month=202513), "end_month"),
        (dict(end_month=202510, as_of=dt.date(2025, 9, 30)), "before the end month"),
    ],
)
def test_bad_arguments_are_refused_clearly(engine, kw, message):
    args = dict(patients=10, months=2, seed=1, end_month=202510) | kw
    with pytest.raises(ValueError, match=message):
        demo.generate(engine, **args)


def test_same_arguments_give_identical_rows_and_another_seed_differs(engine):
    """Generate, regenerate over it with replace=True (same seed), then with another seed."""
    kw = dict(patients=120, months=4, end_month=202603)
    r1 = demo.generate(engine, seed=11, **kw)
    first = all_digests(engine)
    r2 = demo.generate(engine, seed=11, replace=True, **kw)
    assert all_digests(engine) == first
    assert r1.planted == r2.planted and r1.rows == r2.rows
    demo.generate(engine, seed=12, replace=True, **kw)
    other = all_digests(engine)
    assert other["time_entry"] != first["time_entry"] and other["patient"] != first["patient"]


def test_ids_continue_after_the_demo_rows(engine):
    """Explicit ids must not break later inserts (PostgreSQL sequences are moved past them)."""
    demo.generate(engine, patients=30, months=2, seed=3, end_month=202510)
    with engine.begin() as conn:
        top = conn.execute(select(func.max(s.visit.c.id))).scalar()
        new_id = conn.execute(
            s.visit.insert()
            .values(patient_id=1, visit_date=dt.date(2025, 10, 1), cpt_code="99213", visit_type="EM")
            .returning(s.visit.c.id)
        ).scalar()
        assert new_id == top + 1
        assert db.get_data_version(conn) == 1


def test_replace_keeps_logins_and_settings(engine):
    with engine.begin() as conn:
        conn.execute(s.setting.insert().values(key="practice.name", value="Kept"))
        conn.execute(s.app_user.insert().values(username="kept", display_name="Kept", password_hash="x", role="admin"))
    demo.generate(engine, patients=20, months=2, seed=1, end_month=202510)
    demo.generate(engine, patients=25, months=2, seed=1, end_month=202510, replace=True)
    with engine.connect() as conn:
        assert conn.execute(select(func.count()).select_from(s.patient)).scalar() == 25
        assert conn.execute(select(s.setting.c.value)).scalar() == "Kept"
        assert conn.execute(select(s.app_user.c.username)).scalars().all() == ["kept"]


def test_current_month_is_partial_and_nothing_is_dated_after_as_of(engine):
    as_of = dt.date(2026, 3, 12)
    report = demo.generate(engine, patients=250, months=3, seed=5, end_month=202603, as_of=as_of)
    assert report.as_of == as_of and report.month_from == 202601
    with engine.connect() as conn:
        _assert_nothing_after(conn, as_of)
        te, cl = s.time_entry, s.claim_line
        assert conn.execute(select(func.max(te.c.service_date))).scalar() <= as_of
        # March is still being worked: time logged, nothing billed yet, and some patients close to 20 minutes
        assert conn.execute(select(func.count()).where(cl.c.dos_month == 202603)).scalar() == 0
        march = conn.execute(ccm_minutes_by_month().where(te.c.service_month == 202603)).all()
        assert march and any(15 <= m <= 19 for _, _, m in march)
        # February was billed in early March (submitted 2-10 days after month end, on or before as_of)
        feb = conn.execute(
            select(func.min(s.claim.c.submitted_date), func.max(s.claim.c.submitted_date)).where(
                s.claim.c.submitted_month == 202603
            )
        ).one()
        assert feb[0] >= dt.date(2026, 3, 2) and feb[1] <= as_of


# Tables written by people using the app (logins, audit work, imports), stamped with the real clock, not the demo's.
_OPERATIONAL_TABLES = {
    "data_version",
    "access_log",
    "app_user",
    "user_session",
    "audit_sample",
    "audit_sample_item",
    "audit_finding",
    "import_batch",
    "import_change",
    "setting",
    "meeting",
    "denial_work",
}
# Dates that are scheduled, so they lie after as_of by design: each must be in the 14 days after it.
_SCHEDULED_COLUMNS = {("patient", "next_contact_date")}


def _assert_nothing_after(conn, as_of: dt.date) -> None:
    for table in s.metadata.sorted_tables:
        for col in table.c:
            if (table.name, col.name) in _SCHEDULED_COLUMNS:
                first, last = conn.execute(select(func.min(col), func.max(col))).one()
                assert first is None or (as_of < first and last <= as_of + dt.timedelta(days=14)), col
                continue
            if isinstance(col.type, (Date, DateTime)) and table.name not in _OPERATIONAL_TABLES:
                latest = conn.execute(select(func.max(col))).scalar()
                if latest is None:
                    continue
                day = latest.date() if isinstance(latest, dt.datetime) else latest
                assert day <= as_of, f"{table.name}.{col.name} = {latest} is after {as_of}"


def test_cli_writes_json_refuses_twice_and_replaces(tmp_path, capsys):
    url = f"sqlite:///{tmp_path / 'cli.db'}"
    argv = ["demo", "--db", url, "--patients", "40", "--months", "2", "--seed", "4", "--end-month", "2025-10"]
    assert cli.main(argv) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["patients"] == 40 and out["as_of"] == "2025-10-31" and set(out["planted"]) == set(demo.PLANTED_KINDS)
    assert cli.main(argv) == 2
    assert "already holds 40 patients" in capsys.readouterr().err
    assert cli.main(argv + ["--replace"]) == 0
    assert cli.main(argv[:-2] + ["--end-month", "2025-13"]) == 2
    assert "YYYY-MM" in capsys.readouterr().err


# --------------------------------------------------------------------------- the demo database looks like a practice
def test_nothing_after_as_of_in_the_demo_db(demo_engine, demo_report):
    assert demo_report.as_of == dt.date(2025, 10, 31)
    with demo_engine.connect() as conn:
        _assert_nothing_after(conn, demo_report.as_of)
        months = conn.execute(
            select(func.min(s.time_entry.c.service_month), func.max(s.time_entry.c.service_month))
        ).one()
        assert tuple(months) == (202505, 202510)


def test_report_counts_match_the_tables(demo_engine, demo_report):
    with demo_engine.connect() as conn:
        for name, n in demo_report.rows.items():
            assert conn.execute(select(func.count()).select_from(s.metadata.tables[name])).scalar() == n, name
        assert demo_report.patients == 300
        assert demo_report.claims == demo_report.rows["claim"]
        assert demo_report.time_entries == demo_report.rows["time_entry"]
        assert db.get_data_version(conn) >= 1


def test_organisation(demo_engine):
    with demo_engine.connect() as conn:
        pr = conn.execute(select(s.practitioner)).all()
        assert len(pr) == 7 and all(demo.npi_is_valid(p.npi) for p in pr)
        assert {p.credential for p in pr} >= {"MD", "DO", "NP", "PA"}
        staff = conn.execute(select(s.staff)).all()
        prac_rows = [x for x in staff if x.role == "practitioner"]
        assert sorted(x.practitioner_id for x in prac_rows) == sorted(p.id for p in pr)
        assert all(x.is_clinical for x in prac_rows)
        cms = [x for x in staff if x.role == "care_manager"]
        assert len(cms) == 8 and {x.credential for x in cms} == {"RN", "LPN", "MA"} and all(x.is_clinical for x in cms)
        assert 1 <= sum(not x.is_clinical for x in staff) <= 2
        assert conn.execute(select(func.count()).select_from(s.clinic)).scalar() == 3
        assert conn.execute(select(func.count()).select_from(s.practice)).scalar() == 1


def test_patients_payers_and_ages(demo_engine, demo_report):
    with demo_engine.connect() as conn:
        pts = conn.execute(select(s.patient)).all()
    payers = [p.payer for p in pts]
    assert set(payers) <= set(vocab.PAYERS) and payers.count("Medicare Part B") / len(pts) > 0.5
    ages = [(demo_report.as_of - p.birth_date).days / 365.25 for p in pts]
    assert sum(65 <= a < 96 for a in ages) / len(ages) > 0.8
    assert 0.04 < sum(p.is_qmb for p in pts) / len(pts) < 0.2
    assert len({p.mrn for p in pts}) == len(pts) and len({p.mbi for p in pts}) == len(pts)
    assert all(
        re.fullmatch(
            r"[1-9][AC-HJKMNP-RT-Y][AC-HJKMNP-RT-Y0-9]\d[AC-HJKMNP-RT-Y][AC-HJKMNP-RT-Y0-9]\d"
            r"[AC-HJKMNP-RT-Y]{2}\d\d",
            p.mbi,
        )
        for p in pts
    )
    assert all(p.billing_practitioner_id and p.care_manager_id and p.first_seen_date for p in pts)


def test_diagnoses_are_real_chronic_codes_and_most_patients_are_eligible(demo_engine, demo_report):
    ccw = {}
    for line in CCW_CODES.read_text().splitlines()[1:]:
        cond, code = line.split(",")
        ccw.setdefault(code.strip(), cond)
    with demo_engine.connect() as conn:
        dx = conn.execute(select(s.diagnosis.c.patient_id, s.diagnosis.c.icd10, s.diagnosis.c.resolved_date)).all()
    assert not set(vocab.ACUTE_CODES) & set(ccw)
    assert all(c in ccw or c in vocab.ACUTE_CODES for _, c, _r in dx), "real codes: CCW chronic or listed acute"
    assert all(resolved is None for _, c, resolved in dx if c in ccw), "chronic conditions are not resolved"
    active = [(p, c) for p, c, resolved in dx if resolved is None and c in ccw]
    conditions: dict[int, set[str]] = {}
    for p, c in active:
        conditions.setdefault(p, set()).add(ccw[c])
    eligible = sum(len(v) >= 2 for v in conditions.values())
    assert eligible == demo_report.eligible
    assert 0.6 <= eligible / demo_report.patients <= 0.8
    assert any(resolved is not None for _, _, resolved in dx)


def test_enrollment_funnel(demo_engine, demo_report):
    ev = s.enrollment_event
    with demo_engine.connect() as conn:
        by_status = dict(
            conn.execute(
                select(ev.c.status, func.count(func.distinct(ev.c.patient_id)))
                .where(ev.c.program == "CCM")
                .group_by(ev.c.status)
            ).all()
        )
        reasons = set(conn.execute(select(ev.c.reason).where(ev.c.status.in_(["declined", "disenrolled"]))).scalars())
        latest = conn.execute(
            select(ev.c.patient_id, ev.c.status, ev.c.event_date)
            .where(ev.c.program == "CCM")
            .order_by(ev.c.patient_id, ev.c.event_date, ev.c.id)
        ).all()
    assert by_status["identified"] >= by_status["outreached"] >= by_status["reached"] >= by_status["consented"]
    assert by_status["consented"] >= by_status["enrolled"] > 0 and by_status.get("declined", 0) > 0
    assert {"unreachable", "not interested"} <= reasons
    last = {}
    for p, status, _ in latest:
        last[p] = status
    currently = sum(st == "enrolled" for st in last.values())
    assert currently == demo_report.enrolled
    assert 0.35 <= demo_report.enrolled / demo_report.eligible <= 0.5


def test_consents_precede_minutes_for_clean_patients(demo_engine, demo_report):
    """Outside the planted consent failures, every CCM minute is on or after a dated, complete consent."""
    te, cn = s.time_entry, s.consent
    ok_consent = exists().where(
        cn.c.patient_id == te.c.patient_id,
        cn.c.program == te.c.program,
        cn.c.decision == "accepted",
        cn.c.consent_date <= te.c.service_date,
        cn.c.disclosed_cost_sharing.is_(True),
        cn.c.disclosed_one_practitioner.is_(True),
        cn.c.disclosed_right_to_stop.is_(True),
        or_(cn.c.revoked_date.is_(None), cn.c.revoked_date > te.c.service_date),
    )
    with demo_engine.connect() as conn:
        bad = {
            r[0]
            for r in conn.execute(select(te.c.patient_id).where(te.c.program.in_(["CCM", "PCM"]), not_(ok_consent)))
        }
    assert bad == planted_patients(
        demo_report, ["missing_consent", "late_consent", "undated_consent", "incomplete_consent"]
    )


def test_time_entries_look_real(demo_engine):
    te = s.time_entry
    with demo_engine.connect() as conn:
        entries = conn.execute(
            select(
                te.c.started_at,
                te.c.ended_at,
                te.c.minutes,
                te.c.entered_at,
                te.c.service_date,
                te.c.activity,
                te.c.note,
                te.c.program,
            )
        ).all()
        per_month = conn.execute(
            select(te.c.patient_id, te.c.service_month, func.count())
            .where(te.c.program == "CCM")
            .group_by(te.c.patient_id, te.c.service_month)
        ).all()
    assert all(e.ended_at - e.started_at == dt.timedelta(minutes=e.minutes) for e in entries)
    assert all(e.started_at.date() == e.service_date and 8 <= e.started_at.hour <= 18 for e in entries)
    assert all(e.entered_at >= e.ended_at for e in entries)
    ccm = [e for e in entries if e.program == "CCM"]
    assert {e.activity for e in ccm} >= set(vocab.ACTIVITIES)
    assert sum(e.service_date.weekday() < 5 for e in ccm) / len(ccm) > 0.9
    specific = [e for e in ccm if e.note not in vocab.VAGUE_NOTES]
    assert len(specific) / len(ccm) > 0.95 and all(len(e.note) >= 30 for e in specific)
    counts = [n for _, _, n in per_month]
    assert max(counts) <= 8 and sum(2 <= n <= 6 for n in counts) / len(counts) > 0.6
    assert any(e.program == "RPM" for e in entries) and any(e.program == "PCM" for e in entries)


def test_minutes_cluster_near_the_billing_thresholds(demo_engine, demo_report):
    """Enrolled patient-months: some 0, near misses at 15-19, most 20-39, a fifth 40-59, a few 60+."""
    clean = planted_patients(demo_report)
    with demo_engine.connect() as conn:
        logged = {(p, m): n for p, m, n in conn.execute(ccm_minutes_by_month())}
        ev = s.enrollment_event
        left = ev.alias("left_program")
        active = conn.execute(
            select(ev.c.patient_id, ev.c.event_date, left.c.event_date)
            .outerjoin(
                left,
                and_(left.c.patient_id == ev.c.patient_id, left.c.program == "CCM", left.c.status == "disenrolled"),
            )
            .where(ev.c.program == "CCM", ev.c.status == "enrolled")
        ).all()
    minutes = []
    for pid, start, stop in active:
        if pid in clean:
            continue
        for month in range(202505, 202511):
            first, last = db.month_bounds(month)
            if start <= first and (stop is None or stop > last):  # enrolled the whole month
                minutes.append(logged.get((pid, month), 0))
    n = len(minutes)
    share = lambda lo, hi: sum(lo <= m <= hi for m in minutes) / n  # noqa: E731
    assert n > 200
    assert 0.05 <= share(0, 0) <= 0.2
    assert 0.03 <= share(15, 19) <= 0.15
    assert 0.35 <= share(20, 39) <= 0.6
    assert 0.12 <= share(40, 59) <= 0.3
    assert 0.03 <= share(60, 10_000) <= 0.15
    assert share(20, 24) > share(35, 39) and share(40, 44) > share(55, 59)


def test_clean_months_are_billed_exactly_as_the_rules_say(demo_engine, demo_report):
    """99490 at >= 20 minutes, 99439 per further full 20 (at most 2), or 99487 + 99489 on the complex track."""
    skip_months = planted_months(demo_report)
    skip_patients = planted_patients(demo_report)
    with demo_engine.connect() as conn:
        minutes = {(p, m): n for p, m, n in conn.execute(ccm_minutes_by_month())}
        billed: dict[tuple[int, int], dict[str, int]] = {}
        for p, m, code, units in conn.execute(billed_units()):
            billed.setdefault((p, m), {})[code] = units
        complex_months = rows(
            conn, select(s.complexity_assessment.c.patient_id, s.complexity_assessment.c.service_month)
        )
    checked = 0
    for (p, m), codes in billed.items():
        ccm = {k: v for k, v in codes.items() if k in ("99490", "99439", "99487", "99489")}
        if not ccm or (p, m) in skip_months or p in skip_patients:
            continue
        mins = minutes[(p, m)]
        if "99487" in ccm:
            assert (p, m) in complex_months and mins >= 90 and ccm == {"99487": 1, "99489": (mins - 60) // 30}
        else:
            expected = {"99490": 1} | ({"99439": min(2, (mins - 20) // 20)} if mins >= 40 else {})
            assert mins >= 20 and ccm == expected, (p, m, mins, ccm)
        checked += 1
    assert checked > 100
    # and every complete month with 20+ minutes was billed (as_of is the end of October: October not yet)
    for (p, m), mins in minutes.items():
        if mins >= 20 and m < 202510 and (p, m) not in skip_months and p not in skip_patients:
            assert (p, m) in billed, (p, m, mins)


def test_claims_and_remittances(demo_engine, demo_report):
    c, r = s.claim, s.remittance
    with demo_engine.connect() as conn:
        claims = conn.execute(select(c)).all()
        lines = conn.execute(select(s.claim_line)).all()
        first = conn.execute(
            select(r.c.claim_id, r.c.status_code, r.c.received_date).where(r.c.adjudication_seq == 1)
        ).all()
        dup18 = {
            row[0]
            for row in conn.execute(
                select(r.c.claim_id)
                .join(s.remittance_adjustment, s.remittance_adjustment.c.remittance_id == r.c.id)
                .where(s.remittance_adjustment.c.carc == "18")
            )
        }
        carcs = set(
            conn.execute(select(s.remittance_adjustment.c.group_code + "-" + s.remittance_adjustment.c.carc)).scalars()
        )
        appeals = conn.execute(select(s.appeal)).all()
        second = conn.execute(select(r.c.claim_id, r.c.status_code).where(r.c.adjudication_seq == 2)).all()
    by_id = {x.id: x for x in claims}
    dos_month = {ln.claim_id: ln.dos_month for ln in lines}
    assert len({x.claim_number for x in claims}) == len(claims)
    for x in claims:  # submitted 2-10 days after the month of service (resubmitted duplicates later)
        month_end = db.month_bounds(dos_month[x.id])[1]
        assert (x.submitted_date - month_end).days >= 2
    total = {}
    for ln in lines:
        total[ln.claim_id] = total.get(ln.claim_id, 0) + ln.charge
        assert ln.charge == vocab.CHARGE_MASTER[ln.cpt_code] * ln.units
        assert ln.dos_month == db.month_int(ln.service_date)
    assert all(abs(total[x.id] - x.total_charge) < 0.005 for x in claims)
    for claim_id, _status, received in first:
        assert 14 <= (received - by_id[claim_id].submitted_date).days <= 30
    rated = [st for cid, st, _ in first if cid not in dup18]
    rate = sum(st == "4" for st in rated) / len(rated)
    assert 0.10 <= rate <= 0.18
    assert rate == pytest.approx(demo_report.denial_rate, abs=1e-4)
    assert {"CO-45", "PR-2", "CO-253", "OA-18", "CO-16"} <= carcs
    assert len(carcs & {"CO-50", "CO-29", "CO-22", "CO-27", "CO-4", "CO-97"}) >= 4
    overturned = {a.claim_id for a in appeals if a.outcome == "overturned"}
    assert appeals and {cid for cid, st in second} == overturned and all(st == "1" for _, st in second)
    assert all(a.filed_date >= [rc for cid, _s, rc in first if cid == a.claim_id][0] for a in appeals)


def test_duplicate_resubmissions_are_denied_oa18(demo_engine, demo_report):
    c, r, ra, cl = s.claim, s.remittance, s.remittance_adjustment, s.claim_line
    with demo_engine.connect() as conn:
        dups = conn.execute(
            select(c.c.patient_id, cl.c.dos_month, c.c.claim_number, c.c.practitioner_id)
            .join(cl, cl.c.claim_id == c.c.id)
            .where(c.c.claim_number.like("%R"))
            .distinct()
        ).all()
        originals = {row.claim_number: row.practitioner_id for row in conn.execute(select(c))}
        oa18 = set(
            conn.execute(
                select(c.c.claim_number)
                .join(r, r.c.claim_id == c.c.id)
                .join(ra, ra.c.remittance_id == r.c.id)
                .where(ra.c.carc == "18")
            ).scalars()
        )
    assert len(dups) >= 3
    assert sorted((d.patient_id, d.dos_month) for d in dups) == demo_report.duplicate_resubmissions
    assert {d.claim_number for d in dups} == oa18
    assert all(originals[d.claim_number[:-1]] == d.practitioner_id for d in dups)


def test_paid_lines_balance_and_follow_the_fee_schedule(demo_engine):
    """charge - adjustments = paid on every line; allowed = national fee (Part B), 20% coinsurance, 2% sequestration."""
    rl, ra, r, c = s.remittance_line, s.remittance_adjustment, s.remittance, s.claim
    with demo_engine.connect() as conn:
        adj = {}
        for line_id, group, carc, amount in conn.execute(
            select(ra.c.remittance_line_id, ra.c.group_code, ra.c.carc, ra.c.amount)
        ):
            adj.setdefault(line_id, {})[f"{group}-{carc}"] = amount
        lines = conn.execute(
            select(rl, c.c.payer).join(r, r.c.id == rl.c.remittance_id).join(c, c.c.id == r.c.claim_id)
        ).all()
    part_b = 0
    for ln in lines:
        a = adj.get(ln.id, {})
        assert abs(ln.charge - sum(a.values()) - ln.paid) < 0.011, ln
        if ln.payer == "Medicare Part B" and ln.paid > 0:
            fee = vocab.national_fee(ln.cpt_code, ln.service_date.year) * ln.units
            assert ln.allowed == pytest.approx(fee, abs=0.01)
            assert a["PR-2"] == pytest.approx(round(fee * 0.2, 2), abs=0.01)
            assert a["CO-253"] == pytest.approx(round((fee - a["PR-2"]) * 0.02, 2), abs=0.01)
            part_b += 1
    assert part_b > 100


# --------------------------------------------------------------------------- planted failures, checked one by one
def _month_kind_queries(as_of: dt.date) -> dict:
    te, st, cl, fs, c = s.time_entry, s.staff, s.claim_line, s.facility_stay, s.claim
    other = te.alias("other_entry")
    pcm_line = cl.alias("pcm_line")
    ccm = te.c.program == "CCM"
    units = billed_units().subquery()

    def code_units(code):
        return select(units.c.patient_id, units.c.dos_month, units.c.units).where(units.c.cpt_code == code).subquery()

    base, addon, pcm = code_units("99490"), code_units("99439"), code_units("99424")
    mins = ccm_minutes_by_month().subquery()
    return {
        "inpatient_minutes": select(te.c.patient_id, te.c.service_month)
        .join(
            fs,
            and_(
                fs.c.patient_id == te.c.patient_id,
                fs.c.admit_date <= te.c.service_date,
                func.coalesce(fs.c.discharge_date, as_of) >= te.c.service_date,
            ),
        )
        .where(ccm),
        "nonclinical_minutes": select(te.c.patient_id, te.c.service_month)
        .join(st, st.c.id == te.c.staff_id)
        .where(ccm, not_(CLINICAL)),
        "vague_notes": select(te.c.patient_id, te.c.service_month).where(ccm, te.c.note.in_(vocab.VAGUE_NOTES)),
        "backdated_batch": select(te.c.patient_id, te.c.service_month).where(
            ccm, te.c.entry_method == "batch", te.c.minutes % 10 == 0
        ),
        "other_program_overlap": select(te.c.patient_id, te.c.service_month)
        .join(
            other,
            and_(
                other.c.patient_id == te.c.patient_id,
                other.c.service_date == te.c.service_date,
                other.c.program != "CCM",
                other.c.started_at < te.c.ended_at,
                te.c.started_at < other.c.ended_at,
            ),
        )
        .where(ccm),
        "duplicate_ccm_other_practitioner": select(cl.c.patient_id, cl.c.dos_month)
        .where(cl.c.cpt_code == "99490")
        .group_by(cl.c.patient_id, cl.c.dos_month)
        .having(func.count(func.distinct(cl.c.practitioner_id)) > 1),
        "ccm_with_pcm_same_practitioner": select(cl.c.patient_id, cl.c.dos_month)
        .join(
            pcm_line,
            and_(
                pcm_line.c.patient_id == cl.c.patient_id,
                pcm_line.c.dos_month == cl.c.dos_month,
                pcm_line.c.practitioner_id == cl.c.practitioner_id,
                pcm_line.c.cpt_code == "99424",
            ),
        )
        .where(cl.c.cpt_code == "99490"),
        "addon_over_cap": select(addon.c.patient_id, addon.c.dos_month).where(addon.c.units > 2),
        "addon_without_base": select(addon.c.patient_id, addon.c.dos_month).where(
            ~exists().where(base.c.patient_id == addon.c.patient_id, base.c.dos_month == addon.c.dos_month)
        ),
        "under_billed": select(base.c.patient_id, base.c.dos_month)
        .join(mins, and_(mins.c.patient_id == base.c.patient_id, mins.c.service_month == base.c.dos_month))
        .outerjoin(addon, and_(addon.c.patient_id == base.c.patient_id, addon.c.dos_month == base.c.dos_month))
        .where(mins.c.minutes >= 40, func.coalesce(addon.c.units, 0) == 0),
        "over_billed": select(addon.c.patient_id, addon.c.dos_month)
        .join(mins, and_(mins.c.patient_id == addon.c.patient_id, mins.c.service_month == addon.c.dos_month))
        .where(mins.c.minutes < 40),
        "_pcm_months": select(pcm.c.patient_id, pcm.c.dos_month),
        "_claim_months": select(c.c.patient_id, cl.c.dos_month).join(cl, cl.c.claim_id == c.c.id),
    }


def _patient_kind_queries() -> dict:
    cn, cp, _v, te, cl = s.consent, s.care_plan, s.visit, s.time_entry, s.claim_line
    accepted = and_(cn.c.program == "CCM", cn.c.decision == "accepted")
    first_consent = (
        select(cn.c.patient_id, func.min(cn.c.consent_date).label("day"))
        .where(accepted)
        .group_by(cn.c.patient_id)
        .subquery()
    )
    earlier = s.claim_line.alias("earlier")
    return {
        "missing_consent": select(cl.c.patient_id).where(~exists().where(cn.c.patient_id == cl.c.patient_id, accepted)),
        "undated_consent": select(cn.c.patient_id).where(accepted, cn.c.consent_date.is_(None)),
        "incomplete_consent": select(cn.c.patient_id).where(
            accepted,
            or_(
                cn.c.disclosed_cost_sharing.is_(False),
                cn.c.disclosed_one_practitioner.is_(False),
                cn.c.disclosed_right_to_stop.is_(False),
            ),
        ),
        "late_consent": select(te.c.patient_id)
        .join(first_consent, first_consent.c.patient_id == te.c.patient_id)
        .where(te.c.program == "CCM", te.c.service_date < first_consent.c.day),
        "practitioner_change_no_reconsent": select(cl.c.patient_id)
        .join(
            s.patient,
            and_(s.patient.c.id == cl.c.patient_id, s.patient.c.billing_practitioner_id == cl.c.practitioner_id),
        )
        .join(
            earlier,
            and_(
                earlier.c.patient_id == cl.c.patient_id,
                earlier.c.dos_month < cl.c.dos_month,
                earlier.c.cpt_code == "99490",
                earlier.c.practitioner_id != cl.c.practitioner_id,
            ),
        )
        .where(
            cl.c.cpt_code == "99490",
            ~exists().where(cn.c.patient_id == cl.c.patient_id, accepted, cn.c.practitioner_id == cl.c.practitioner_id),
        ),
        "no_care_plan": select(cl.c.patient_id).where(~exists().where(cp.c.patient_id == cl.c.patient_id)),
        "care_plan_not_shared": select(cp.c.patient_id)
        .group_by(cp.c.patient_id)
        .having(func.count(cp.c.shared_with_patient_date) == 0),
    }


def _no_initiating_visit(conn) -> set[int]:
    """Patients with no face-to-face qualifying visit in the 12 months up to their CCM consent (Python: date math)."""
    cn, v = s.consent, s.visit
    consented = dict(
        conn.execute(
            select(cn.c.patient_id, func.min(cn.c.consent_date))
            .where(cn.c.program == "CCM", cn.c.decision == "accepted")
            .group_by(cn.c.patient_id)
        ).all()
    )
    seen: dict[int, list[dt.date]] = {}
    for pid, day in conn.execute(
        select(v.c.patient_id, v.c.visit_date).where(v.c.face_to_face.is_(True), v.c.cpt_code.in_(QUALIFYING_VISITS))
    ):
        seen.setdefault(pid, []).append(day)
    return {
        pid
        for pid, start in consented.items()
        if start is not None and not any(start - dt.timedelta(days=365) <= d <= start for d in seen.get(pid, []))
    }


def test_every_planted_kind_is_present(demo_report):
    assert set(demo_report.planted) == set(demo.PLANTED_KINDS)
    for kind, items in demo_report.planted.items():
        assert len(items) >= 3, kind
        assert all(month is not None and 202505 <= month <= 202510 for _, month in items), kind


def test_planted_rates_are_low(demo_report):
    billed = demo_report.billable_patient_months
    for kind in demo.MONTH_KINDS:
        assert len(demo_report.planted[kind]) <= max(3, 0.02 * billed), kind
    assert len(planted_patients(demo_report)) <= 0.35 * demo_report.ever_enrolled


@pytest.mark.parametrize("kind", demo.MONTH_KINDS)
def test_planted_month_failure_is_in_the_raw_tables(demo_engine, demo_report, kind):
    """Each planted patient-month satisfies its failure's SQL; where the data is otherwise clean, nothing else does."""
    queries = _month_kind_queries(demo_report.as_of)
    planted = {tuple(t) for t in demo_report.planted[kind]}
    with demo_engine.connect() as conn:
        found = rows(conn, queries[kind])
        billed = rows(conn, queries["_claim_months"])
    assert planted and planted <= found
    assert planted <= billed, "planted months are billed months, so an audit sample can draw them"
    # other planted failures add minutes that do not count, which can look like a billing error too
    flawed = planted_patients(demo_report)
    elsewhere = planted_months(demo_report, [k for k in demo.MONTH_KINDS if k != kind])
    assert {pm for pm in found if pm[0] not in flawed and pm not in elsewhere} == planted


def test_planted_patient_failure_is_in_the_raw_tables(demo_engine, demo_report):
    queries = _patient_kind_queries()
    with demo_engine.connect() as conn:
        billed = rows(conn, select(s.claim_line.c.patient_id, s.claim_line.c.dos_month))
        for kind in demo.PATIENT_KINDS:
            planted = {p for p, _ in demo_report.planted[kind]}
            found = {r[0] for r in conn.execute(queries[kind])} if kind in queries else _no_initiating_visit(conn)
            assert planted and found == planted, kind
            assert {tuple(t) for t in demo_report.planted[kind]} <= billed, kind


def test_backdated_batches_are_entered_at_month_end_for_earlier_days(demo_engine, demo_report):
    te = s.time_entry
    with demo_engine.connect() as conn:
        for pid, month in demo_report.planted["backdated_batch"]:
            entries = conn.execute(
                select(te.c.service_date, te.c.entered_at, te.c.minutes, te.c.entry_method).where(
                    te.c.patient_id == pid, te.c.service_month == month, te.c.program == "CCM"
                )
            ).all()
            assert entries and all(e.entry_method == "batch" and e.minutes % 10 == 0 for e in entries)
            entered_days = {e.entered_at.date() for e in entries}
            assert len(entered_days) == 1 and (db.month_bounds(month)[1] - entered_days.pop()).days <= 2
            assert any(e.entered_at.date() > e.service_date for e in entries)


def test_report_to_dict_is_json(demo_report):
    d = json.loads(json.dumps(demo_report.to_dict()))
    assert d["patients"] == 300 and d["end_month"] == 202510 and d["month_from"] == 202505
    assert d["planted"]["over_billed"] == [list(t) for t in demo_report.planted["over_billed"]]
