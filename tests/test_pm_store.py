"""The stored patient-month (``ccm_core.storage.stored``) must give exactly the numbers of the live engine
statement, for every filter set, and must never be read when it is not current."""

from __future__ import annotations

import dataclasses
import datetime as dt
from pathlib import Path

import pandas as pd
import pytest
from sqlalchemy import func, select

from bench import harness as bench
from ccm_core import rules
from ccm_core.engine import patient_month as eng
from ccm_core.engine import read
from ccm_core.engine.filters import Filters
from ccm_core.io.imports.runner import Source, import_files
from ccm_core.io.imports.store import revert_batch
from ccm_core.storage import db
from ccm_core.storage import schema as s
from ccm_core.storage import stored as pm_store

EXAMPLES = Path(__file__).resolve().parent.parent / "data" / "examples"


def _live_rows(conn, f: Filters) -> pd.DataFrame:
    rs = rules.load(conn)
    eng.prepare(conn)
    q = eng.patient_month_select(f, rs).order_by("service_month", "patient_id")
    return pd.DataFrame(conn.execute(q).mappings().all())


def _stored_rows(conn, f: Filters) -> pd.DataFrame:
    rs = rules.load(conn)
    q = pm_store.select_for(conn, f, rs)
    assert q is not None, "the store should be current here"
    return pd.DataFrame(conn.execute(q.order_by("service_month", "patient_id")).mappings().all())


def _same(a: pd.DataFrame, b: pd.DataFrame) -> None:
    assert list(a.columns) == list(b.columns)
    assert len(a) == len(b)
    if a.empty:
        return
    a, b = a.reset_index(drop=True), b.reset_index(drop=True)
    for col in a.columns:
        x, y = a[col], b[col]
        if col.startswith(("expected_", "billed_charge", "paid_amount", "billed_fee", "billed_supported")):
            assert (x.astype(float) - y.astype(float)).abs().max() < 0.005, col
        elif col in ("threshold_date", "last_contact_date"):
            assert list(pd.to_datetime(x)) == list(pd.to_datetime(y)), col
        else:
            assert list(x) == list(y), col


def _filter_sets(conn) -> list[Filters]:
    lo, hi = pm_store._data_months(conn)
    clinic = conn.execute(select(func.min(s.clinic.c.id))).scalar()
    prac = conn.execute(select(func.max(s.practitioner.c.id))).scalar()
    cm = conn.execute(select(func.min(s.patient.c.care_manager_id))).scalar()
    return [
        Filters(lo, hi),
        Filters.for_month(hi),
        Filters(lo, hi, programs=("PCM",)),
        Filters(lo, hi, programs=("CCM", "PCM", "APCM")),
        Filters(lo, hi, programs=("BHI",)),
        Filters(lo, hi, clinic_ids=(clinic,), payers=("Medicare Part B",)),
        Filters(lo, hi, practitioner_ids=(prac,), care_manager_ids=(cm,)),
    ]


# --------------------------------------------------------------------------- the demo database
def test_demo_generation_leaves_a_current_store(demo_engine):
    with demo_engine.connect() as conn:
        assert pm_store.is_fresh(conn, rules.load(conn))
        st = pm_store.read_state(conn)
        assert (st.month_from, st.month_to) == pm_store._data_months(conn)


def test_stored_eligibility_matches_the_live_rule_every_month(demo_engine):
    with demo_engine.connect() as conn:
        _same_eligible(conn, clinic=conn.execute(select(func.min(s.clinic.c.id))).scalar())


def test_stored_enrolled_month_ends_match_the_event_history(demo_engine):
    with demo_engine.connect() as conn:
        _same_enrolled(conn)
        clinic = conn.execute(select(func.min(s.clinic.c.id))).scalar()
        st = pm_store.read_state(conn)
        f = Filters.for_month(st.enrolled_to, clinic_ids=(clinic,))
        stored = set(conn.execute(pm_store.enrolled_select(conn, f, db.month_bounds(st.enrolled_to)[1])).scalars())
        everyone = set(
            conn.execute(
                pm_store.enrolled_select(conn, Filters.for_month(st.enrolled_to), db.month_bounds(st.enrolled_to)[1])
            ).scalars()
        )
        assert stored and stored < everyone
        # before the stored months: the caller ranks the history live
        assert pm_store.enrolled_select(conn, f, db.month_bounds(db.add_months(st.enrolled_from, -1))[1]) is None
        # every day of the last two months (mid-month = stored month end + the events since) agrees with live
        from ccm_core.kpis import program as kpis

        day = db.month_bounds(db.add_months(st.enrolled_to, -1))[0]
        while day <= db.month_bounds(db.add_months(st.enrolled_to, 2))[1]:
            for g in (
                Filters.for_month(db.month_int(day)),
                Filters.for_month(db.month_int(day), clinic_ids=(clinic,), programs=("CCM", "PCM")),
            ):
                q = pm_store.enrolled_select(conn, g, day)
                assert q is not None, day
                ls = kpis._latest_status(g, day)
                live = set(conn.execute(select(ls.c.patient_id).where(ls.c.status == "enrolled")).scalars())
                assert set(conn.execute(q).scalars()) == live, day
            day += dt.timedelta(days=3)


def test_stored_rows_equal_live_rows_for_every_filter_set(demo_engine):
    with demo_engine.connect() as conn:
        for f in _filter_sets(conn):
            _same(_stored_rows(conn, f), _live_rows(conn, f))
            _same_denials(conn, f)
        from ccm_core.kpis import program as kpis

        lo, hi = pm_store._data_months(conn)
        trend = kpis.denial_trend(conn, Filters(lo, hi))
        assert trend["initial_denials"].sum() > 20 and trend["lagged_avg_submitted"].sum() > 100


def _same_denials(conn, f: Filters) -> None:
    """The claim store gives the HFMA numerators and lagged denominators of the live joins."""
    from unittest import mock

    from ccm_core.kpis import breakdowns
    from ccm_core.kpis import program as kpis

    assert pm_store.claim_source(conn, f, rules.load(conn)) is not None
    calls = {
        "denial_trend": lambda: kpis.denial_trend(conn, f),
        # first adjudication, paid amount, first paid date and the CARC/RARC lists of the claim store
        "days_to_payment": lambda: kpis.days_to_payment(conn, f),
        "first_pass_resolution_rate": lambda: kpis.first_pass_resolution_rate(conn, f),
        "carc_pareto": lambda: kpis.carc_pareto(conn, f),
        "claim_lines": lambda: breakdowns.claim_lines(conn, f),
        "claim_lines denied": lambda: breakdowns.claim_lines(conn, f, denied_only=True, limit=50),
    }
    stored = {k: fn() for k, fn in calls.items()}
    carcs = list(stored["carc_pareto"]["code"][:2])
    for code in carcs:  # the stored CARC list filters the lines as the live (claim, CARC) pairs do
        stored[f"claim_lines {code}"] = breakdowns.claim_lines(conn, f, carc=code)
    with mock.patch.object(pm_store, "claim_source", lambda *a, **k: None):
        live = {k: fn() for k, fn in calls.items()}
        for code in carcs:
            live[f"claim_lines {code}"] = breakdowns.claim_lines(conn, f, carc=code)
    for k, a in stored.items():
        b = live[k]
        if isinstance(a, pd.DataFrame):
            assert a.attrs.get("total") == b.attrs.get("total"), (k, f)
            pd.testing.assert_frame_equal(a, b, check_dtype=False, obj=f"{k} {f!r}")
        else:
            assert a == b, (k, f)


def test_every_page_kpi_is_the_same_from_the_store_and_live(demo_engine, demo_report, monkeypatch):
    month = db.add_months(demo_report.end_month, -1)
    calls = bench.page_calls(month, demo_report.as_of)
    with demo_engine.connect() as conn:
        stored = [fn(conn, *args, **kw) for _, _, _, fn, args, kw in calls]
    monkeypatch.setattr(pm_store, "select_for", lambda *a, **k: None)  # force the live statements
    monkeypatch.setattr(pm_store, "enrolled_select", lambda *a, **k: None)
    monkeypatch.setattr(pm_store, "claim_source", lambda *a, **k: None)
    monkeypatch.setattr(pm_store, "eligible_select", lambda *a, **k: None)
    with demo_engine.connect() as conn:
        live = [fn(conn, *args, **kw) for _, _, _, fn, args, kw in calls]
    for (page, label, *_), a, b in zip(calls, stored, live):
        av, bv = getattr(a, "value", a), getattr(b, "value", b)
        if isinstance(av, pd.DataFrame):
            pd.testing.assert_frame_equal(
                av.reset_index(drop=True), bv.reset_index(drop=True), check_dtype=False, obj=f"{page}/{label}"
            )
        else:
            assert av == pytest.approx(bv), f"{page}/{label}"
            if hasattr(a, "frame") and isinstance(a.frame, pd.DataFrame):
                pd.testing.assert_frame_equal(a.frame, b.frame, check_dtype=False, obj=f"{page}/{label} frame")


def test_the_ready_to_bill_list_reads_the_store(demo_engine, demo_report, monkeypatch):
    month = db.add_months(demo_report.end_month, -1)
    with demo_engine.connect() as conn:
        stored = read.patient_months(conn, Filters.for_month(month))
    monkeypatch.setattr(pm_store, "select_for", lambda *a, **k: None)
    with demo_engine.connect() as conn:
        live = read.patient_months(conn, Filters.for_month(month))
    assert len(stored) > 50
    pd.testing.assert_frame_equal(stored, live, check_dtype=False)


# --------------------------------------------------------------------------- never stale
def test_a_write_that_bumps_the_version_without_refreshing_makes_readers_go_live(engine):
    with engine.begin() as conn:
        pm_store.refresh(conn)
        rs = rules.load(conn)
        assert pm_store.select_for(conn, Filters.for_month(202510), rs) is not None
        db.bump_data_version(conn)
        assert pm_store.select_for(conn, Filters.for_month(202510), rs) is None
        assert pm_store.patient_month_source(conn, Filters.for_month(202510), rs) is not None  # live


def test_changed_rules_make_the_store_stale(engine, monkeypatch):
    with engine.begin() as conn:
        pm_store.refresh(conn)
        rs = rules.load(conn)
        assert pm_store.is_fresh(conn, rs)
        other = dataclasses.replace(rs, fees={**rs.fees, "99490": rs.fees["99490"][:-1]})  # a different fee table
        assert pm_store.fingerprint(other) != pm_store.fingerprint(rs)
        assert not pm_store.is_fresh(conn, other)


def _import(engine, *paths, **kw):
    run = import_files(
        engine, [Source.from_path(p) if isinstance(p, Path) else p for p in paths], today=dt.date(2026, 11, 23), **kw
    )
    assert run.ok, run.problems
    return run


def _patient_id(engine, rows: pd.DataFrame) -> int:
    with engine.connect() as conn:
        return conn.execute(select(s.patient.c.id).where(s.patient.c.mrn == rows["mrn"].iloc[0])).scalar_one()


def _eligible_at(conn, month: int) -> set[int]:
    e = pm_store.eligible_store
    return set(conn.execute(select(e.c.patient_id).where(e.c.month == month)).scalars())


def test_a_diagnosis_import_rebuilds_only_its_patients_eligibility(engine):
    """Eligibility is decided per patient, so a diagnosis import recomputes only the patients its rows
    name, including the patient an updated row moved away from (who may lose eligibility)."""
    _import(engine, *sorted(p for p in EXAMPLES.iterdir() if p.suffix in (".csv", ".835")))
    diag = pd.read_csv(EXAMPLES / "diagnoses.csv", dtype=str)
    losing = diag[diag["mrn"] == "P1001"]
    assert sorted(losing["icd10"]) == ["E11.9", "I10"]  # two chronic conditions: eligible
    p1001 = _patient_id(engine, losing)
    with engine.begin() as conn:
        month = pm_store.read_state(conn).eligible_to
        assert p1001 in _eligible_at(conn, month)
        # a sentinel row for a patient the batch does not name: a scoped rebuild leaves it alone
        conn.execute(pm_store.eligible_store.insert().values(month=month, patient_id=999_999))
        pm_store._write_state(conn, dataclasses.replace(pm_store.read_state(conn)))

    moved = losing[losing["icd10"] == "I10"].copy()
    moved["mrn"] = "P1003"  # the hypertension row was charted on the wrong patient
    run = _import(engine, Source("diagnoses_fix.csv", moved.to_csv(index=False).encode()))
    with engine.begin() as conn:
        assert p1001 not in _eligible_at(conn, month)  # one chronic condition left
        assert 999_999 in _eligible_at(conn, month)  # untouched: only the batch's patients were rebuilt
        conn.execute(pm_store.eligible_store.delete().where(pm_store.eligible_store.c.patient_id == 999_999))
    _all_equal(engine)
    with engine.connect() as conn:
        scope = pm_store.batch_scope(conn, [run.files[0].batch_id])
        assert scope.eligible_also == (p1001,) and scope.eligible_batches == (run.files[0].batch_id,)


def _all_equal(engine) -> None:
    with engine.connect() as conn:
        assert pm_store.is_fresh(conn, rules.load(conn))
        lo, hi = pm_store._data_months(conn)
        _same(
            _stored_rows(conn, Filters(lo, hi, programs=("CCM", "PCM", "APCM"))),
            _live_rows(conn, Filters(lo, hi, programs=("CCM", "PCM", "APCM"))),
        )
        assert len(_stored_rows(conn, Filters(lo, hi))) > 0
        _same_enrolled(conn)
        _same_denials(conn, Filters(lo, hi))
        _same_eligible(conn)


def _same_eligible(conn, clinic: int | None = None) -> None:
    """Stored eligibility at each month end equals ``eligible_patients_select`` computed live."""
    from unittest import mock

    from ccm_core.kpis import program as kpis

    rs = rules.load(conn)
    st = pm_store.read_state(conn)
    assert st.eligible_from is not None
    m, total = st.eligible_from, 0
    while m <= st.eligible_to:
        end = db.month_bounds(m)[1]
        for f in (Filters.for_month(m),) + ((Filters.for_month(m, clinic_ids=(clinic,)),) if clinic else ()):
            q = pm_store.eligible_select(conn, f, rs, end)
            assert q is not None
            stored = set(conn.execute(q).scalars())
            with mock.patch.object(pm_store, "eligible_select", lambda *a, **k: None):
                live = set(conn.execute(kpis.eligible_patients_select(conn, f, rs, end)).scalars())
            assert stored == live, (m, f)
            total += len(stored)
        m = db.add_months(m, 1)
    assert total > 0


def _same_enrolled(conn) -> None:
    """The stored month ends agree with ranking the event history, for every month and program filter."""
    from ccm_core.kpis import program as kpis

    st = pm_store.read_state(conn)
    assert st.enrolled_from is not None
    m = st.enrolled_from
    while m <= st.enrolled_to:
        end = db.month_bounds(m)[1]
        for programs in (("CCM",), ("CCM", "PCM")):
            f = Filters.for_month(m, programs=programs)
            stored = set(conn.execute(pm_store.enrolled_select(conn, f, end)).scalars())
            ls = kpis._latest_status(f, end)
            live = set(conn.execute(select(ls.c.patient_id).where(ls.c.status == "enrolled")).scalars())
            assert stored == live, (m, programs)
        m = db.add_months(m, 1)


def test_imports_and_reverts_keep_the_store_current_and_scoped(engine, tmp_path, monkeypatch):
    examples = sorted(p for p in EXAMPLES.iterdir() if p.suffix in (".csv", ".835"))
    _import(engine, *examples)
    _all_equal(engine)

    scopes = []
    real_refresh = pm_store.refresh
    refreshes = []

    def spy(conn, rs=None, scope=pm_store.EVERYTHING, **kw):
        scopes.append(scope)
        refreshes.append(real_refresh(conn, rs, scope, **kw))
        return refreshes[-1]

    monkeypatch.setattr(pm_store, "refresh", spy)

    # More time in one month: only that month is rebuilt, and it equals the live statement.
    src = pd.read_csv(EXAMPLES / "time_entries.csv", dtype=str)
    extra = src[src["service_date"].str.startswith("2026-10")].head(3).copy()
    extra["external_id"] = extra["external_id"] + "-extra"
    extra["started_at"] = "18:00"
    extra["service_date"] = "2026-10-28"
    extra["entered_at"] = "2026-10-28 18:30"
    run = _import(engine, Source("time_entries_late.csv", extra.to_csv(index=False).encode()))
    assert scopes[-1] == pm_store.Scope(
        (202610, 202610),
        enrollment=False,
        claims=False,
        eligibility=False,
        tables=("import_batch", "import_change", "time_entry"),
    )
    _all_equal(engine)

    # Diagnoses are not read by the patient-month: only eligibility is rebuilt, and only for the
    # patients the batch names (an updated row's new and former patient).
    diag = pd.read_csv(EXAMPLES / "diagnoses.csv", dtype=str).head(1)
    diag["icd10"] = "E785"
    diag_run = _import(engine, Source("diagnoses_more.csv", diag.to_csv(index=False).encode()))
    assert scopes[-1] == pm_store.Scope(
        False,
        enrollment=False,
        claims=False,
        eligibility=True,
        eligible_batches=(diag_run.files[0].batch_id,),
        eligible_also=(_patient_id(engine, diag),),
        tables=("diagnosis", "import_batch", "import_change"),
    )
    assert refreshes[-1]["eligible_rebuilt"] == "patients"
    _all_equal(engine)

    # A disenrollment at the end of October: only the enrolled month ends are rebuilt.
    ev = pd.read_csv(EXAMPLES / "enrollment_events.csv", dtype=str)
    enrolled_row = ev[ev["status"] == "enrolled"].head(1).copy()
    enrolled_row["external_id"] = enrolled_row["external_id"] + "-dis"
    enrolled_row["status"] = "disenrolled"
    enrolled_row["event_date"] = "2026-10-30"
    enrolled_row["reason"] = "patient request"
    _import(engine, Source("enrollment_events_more.csv", enrolled_row.to_csv(index=False).encode()))
    assert scopes[-1] == pm_store.Scope(
        False,
        enrollment=True,
        claims=False,
        eligibility=False,
        tables=("enrollment_event", "import_batch", "import_change"),
    )
    _all_equal(engine)

    # Reverting the late time entries rebuilds everything and drops their minutes again.
    batch = run.files[0].batch_id
    with engine.connect() as conn:
        before = conn.execute(select(func.sum(s.time_entry.c.minutes))).scalar()
    revert_batch(engine, batch, user="tester")
    assert scopes[-1] == pm_store.EVERYTHING
    _all_equal(engine)
    with engine.connect() as conn:
        assert conn.execute(select(func.sum(s.time_entry.c.minutes))).scalar() < before


def test_a_failed_refresh_keeps_the_write_and_falls_back_to_live(engine, monkeypatch):
    def boom(*a, **k):
        raise RuntimeError("disk full")

    monkeypatch.setattr(pm_store, "refresh", boom)
    run = import_files(engine, [Source.from_path(EXAMPLES / "clinics.csv")], today=dt.date(2026, 11, 23))
    assert run.committed
    with engine.connect() as conn:
        assert conn.execute(select(func.count()).select_from(s.clinic)).scalar() > 0
        assert not pm_store.is_fresh(conn, rules.load(conn))


def test_the_fingerprint_is_the_same_in_every_process():
    import os
    import subprocess
    import sys

    here = pm_store.fingerprint(rules.load())
    for seed in ("1", "2"):
        out = subprocess.run(
            [
                sys.executable,
                "-c",
                "from ccm_core import rules; from ccm_core.storage import stored as pm_store; print(pm_store.fingerprint(rules.load()))",
            ],
            capture_output=True,
            text=True,
            check=True,
            env={**os.environ, "PYTHONHASHSEED": seed},
        )
        assert out.stdout.strip() == here


def test_readers_are_not_locked_out_during_a_full_rebuild(engine):
    """A rebuild empties the stored tables with DELETE (not DROP), so on PostgreSQL readers keep reading
    the committed rows while an import's transaction is still rebuilding them."""
    with engine.begin() as conn:
        pm_store.refresh(conn)
    rs = rules.load()
    with engine.connect() as writer:
        tr = writer.begin()
        prior = db.get_data_version(writer)
        db.bump_data_version(writer)
        pm_store.refresh(writer, rs, prior_version=prior)  # everything
        if engine.dialect.name == "postgresql":
            with engine.connect() as reader:
                reader.exec_driver_sql("SET lock_timeout = '2s'")
                for name in (
                    pm_store.TABLE_NAME,
                    pm_store.ENROLLED_TABLE,
                    pm_store.CLAIM_TABLE,
                    pm_store.ELIGIBLE_TABLE,
                ):
                    assert reader.exec_driver_sql(f"SELECT count(*) FROM {name}").scalar() == 0
                reader.rollback()
        tr.rollback()


def test_an_import_vacuums_the_stored_tables_on_postgresql(engine):
    """A rebuild DELETEs (so readers are never locked out); the import then VACUUMs the stored tables, so
    reads do not slow down over replaced rows when autovacuum is off or late."""
    if engine.dialect.name != "postgresql":
        pytest.skip("dead rows and VACUUM are PostgreSQL's")
    examples = sorted(p for p in EXAMPLES.iterdir() if p.suffix in (".csv", ".835"))
    _import(engine, *examples)
    with engine.connect() as conn:
        vacuumed = dict(
            conn.exec_driver_sql(
                "SELECT relname, last_vacuum IS NOT NULL FROM pg_stat_user_tables WHERE relname IN "
                "('patient_month_store', 'enrolled_month_store', 'claim_store', 'eligible_month_store')"
            ).all()
        )
    assert vacuumed == {
        "patient_month_store": True,
        "enrolled_month_store": True,
        "claim_store": True,
        "eligible_month_store": True,
    }
