"""The app's result cache (ui.cache.cached): served from cache until the data changes, never stale after.

Why it matters: at 50,000 patients a KPI costs seconds, so pages must not recompute on every rerun;
but a cache that outlives an import would show the program lead last week's numbers.  A result is
kept per (function, arguments, database URL) while no table it read has been written: every import /
revert records the tables it changed in the same transaction that writes the rows.

Hand-worked cohort (month 2025-03): patients A, B, C enrolled on 2025-01-02 with 25, 10 and 0
counted CCM minutes; patient D only consented.  So enrolled = 3, mean minutes = 35 / 3.
"""

from __future__ import annotations

import datetime as dt

import pytest

from ccm_core.engine.filters import Filters
from ccm_core.io import imports
from ccm_core.kpis import program as kpis
from ccm_core.storage import db
from ui.cache import clear_cache

from builders import Builder

MARCH = Filters.for_month(202503)
CALLS: list[str] = []


def counted_enrolled(conn, f):
    """kpis.enrolled_patients, counting how often the cache let it run."""
    CALLS.append("enrolled")
    return kpis.enrolled_patients(conn, f)


def counted_minutes(conn, f):
    CALLS.append("minutes")
    return kpis.minutes_per_enrolled_patient(conn, f)


@pytest.fixture
def app_db(engine, monkeypatch):
    """The hand-worked cohort; the in-process ui.cache pointed at it with an empty cache."""
    with engine.begin() as conn:
        b = Builder(conn)
        a, b_, c = (b.enrolled_patient(mrn=m) for m in ("MRN-A", "MRN-B", "MRN-C"))
        d = b.patient(mrn="MRN-D")
        b.funnel(d, "consented", dt.date(2025, 1, 2))
        b.time(a, 25, dt.date(2025, 3, 4))
        b.time(b_, 10, dt.date(2025, 3, 5))
        staff_ext = conn.exec_driver_sql("SELECT external_id FROM staff WHERE role = 'care_manager'").scalar()
        db.bump_data_version(conn)
    monkeypatch.setenv("CCM_DATABASE_URL", engine.url.render_as_string(hide_password=False))
    clear_cache()
    CALLS.clear()
    yield engine, staff_ext
    clear_cache()


def _csv(name: str, text: str) -> imports.Source:
    return imports.Source(name, text.encode())


def test_served_from_cache_until_an_import_then_recomputed(app_db):
    from ui.cache import cached

    engine, _ = app_db
    first = cached(counted_enrolled, MARCH)
    again = cached(counted_enrolled, MARCH)
    assert (first.value, again.value) == (3, 3)
    assert CALLS == ["enrolled"]  # the second call never reached the database

    run = imports.import_files(
        engine, [_csv("enrollment_events.csv", "external_id,mrn,status,event_date\nEV-D,MRN-D,enrolled,2025-03-10\n")]
    )
    assert [r.status for r in run.files] == ["imported"], run.files[0].problems
    after = cached(counted_enrolled, MARCH)
    assert after.value == 4  # D is enrolled now: nothing stale
    assert CALLS == ["enrolled", "enrolled"]
    assert cached(counted_enrolled, MARCH).value == 4
    assert CALLS == ["enrolled", "enrolled"]  # and cached again at the new version


def test_cache_is_per_filter_set(app_db):
    from ui.cache import cached

    cached(counted_enrolled, MARCH)
    feb = cached(counted_enrolled, Filters.for_month(202502))
    assert feb.value == 3
    assert CALLS == ["enrolled", "enrolled"]
    assert cached(counted_enrolled, MARCH).value == 3
    assert (
        cached(
            counted_enrolled,
            Filters.for_month(202502),
        ).value
        == 3
    )
    assert len(CALLS) == 2
    nobody = cached(counted_enrolled, Filters.for_month(202503, payers=("Medicare Advantage",)))
    assert nobody.value == 0 and len(CALLS) == 3


def test_time_import_changes_minutes_kpi_and_rejected_import_keeps_cache(app_db):
    from ui.cache import cached

    engine, staff_ext = app_db
    before = cached(counted_minutes, MARCH)
    assert before.numerator == 35 and before.denominator == 3
    assert before.value == pytest.approx(35 / 3)

    # A file that is rejected writes nothing, so the cached value is still right and still served.
    bad = imports.import_files(
        engine,
        [
            _csv(
                "time_entries.csv",
                "external_id,mrn,staff_external_id,service_date,minutes,activity\n"
                f"T-X,NO-SUCH-MRN,{staff_ext},2025-03-10,20,phone call\n",
            )
        ],
    )
    assert bad.files[0].status == "rejected"
    assert cached(counted_minutes, MARCH).numerator == 35
    assert CALLS == ["minutes"]

    good = imports.import_files(
        engine,
        [
            _csv(
                "time_entries.csv",
                "external_id,mrn,staff_external_id,service_date,started_at,minutes,"
                f"activity\nT-C,MRN-C,{staff_ext},2025-03-10,2025-03-10 09:00,20,phone call\n",
            )
        ],
    )
    assert good.files[0].status == "imported", good.files[0].problems
    after = cached(counted_minutes, MARCH)
    assert (after.numerator, after.denominator) == (55, 3)  # C's 20 minutes count
    assert after.value == pytest.approx(55 / 3)
    assert CALLS == ["minutes", "minutes"]

    # Reverting the batch bumps the version too: back to the pre-import figure, recomputed.
    imports.revert_batch(engine, good.files[0].batch_id, user="tester")
    reverted = cached(counted_minutes, MARCH)
    assert reverted.numerator == 35
    assert CALLS == ["minutes", "minutes", "minutes"]


def test_an_import_recomputes_only_what_read_the_tables_it_wrote(app_db):
    """Time entries change the minutes, not who is enrolled: the enrolled count stays cached, the
    minutes recompute; an enrollment import then recomputes both (minutes per enrolled patient reads
    enrollment too).  Whatever is served equals a fresh computation."""
    from ui.cache import cached

    engine, staff_ext = app_db
    assert cached(counted_enrolled, MARCH).value == 3
    assert cached(counted_minutes, MARCH).numerator == 35
    assert sorted(CALLS) == ["enrolled", "minutes"]

    good = imports.import_files(
        engine,
        [
            _csv(
                "time_entries.csv",
                "external_id,mrn,staff_external_id,service_date,started_at,minutes,"
                f"activity\nT-C2,MRN-C,{staff_ext},2025-03-11,2025-03-11 09:00,20,phone call\n",
            )
        ],
    )
    assert good.files[0].status == "imported", good.files[0].problems
    assert cached(counted_enrolled, MARCH).value == 3
    assert cached(counted_minutes, MARCH).numerator == 55
    assert sorted(CALLS) == ["enrolled", "minutes", "minutes"]  # the enrolled count was served from cache

    run = imports.import_files(
        engine, [_csv("enrollment_events.csv", "external_id,mrn,status,event_date\nEV-D3,MRN-D,enrolled,2025-03-12\n")]
    )
    assert [r.status for r in run.files] == ["imported"], run.files[0].problems
    assert cached(counted_enrolled, MARCH).value == 4
    assert cached(counted_minutes, MARCH).denominator == 4
    assert sorted(CALLS) == ["enrolled", "enrolled", "minutes", "minutes", "minutes"]
    with engine.connect() as conn:  # and what the cache serves is what a fresh computation gives
        assert kpis.enrolled_patients(conn, MARCH).value == cached(counted_enrolled, MARCH).value
        fresh = kpis.minutes_per_enrolled_patient(conn, MARCH)
    assert (fresh.numerator, fresh.denominator) == (55, 4)


def test_a_cached_frame_changed_by_its_caller_does_not_change_the_cache(app_db):
    import pandas as pd

    from ui.cache import cached

    frame = cached(kpis.funnel_counts, MARCH)
    before = frame.copy()
    assert len(before) > 0
    frame.columns = [f"renamed_{i}" for i in range(len(frame.columns))]  # a page changing what it was given
    frame["added"] = 1
    pd.testing.assert_frame_equal(cached(kpis.funnel_counts, MARCH), before)


def test_data_version_bumps_once_per_import_transaction(app_db):
    engine, _ = app_db
    with engine.connect() as conn:
        v0 = db.get_data_version(conn)
    imports.import_files(
        engine, [_csv("enrollment_events.csv", "external_id,mrn,status,event_date\nEV-D2,MRN-D,enrolled,2025-03-11\n")]
    )
    with engine.connect() as conn:
        assert db.get_data_version(conn) == v0 + 1


def test_one_engine_per_process(app_db):
    from ui import cache as data

    e1, e2 = data.get_engine(), data.get_engine()
    assert e1 is e2
    assert e1.pool is e2.pool


def test_cached_results_are_small(app_db):
    """Only aggregates are cached: a month-level KPI is one KpiResult, not a frame of rows."""
    from ui.cache import cached

    result = cached(counted_minutes, MARCH)
    assert set(result.extra) >= {"median", "bands"}
    assert result.extra["median"] == 10.0  # of 0, 10, 25
    assert sum(result.extra["bands"].values()) == 3
