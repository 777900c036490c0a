"""Results shared between app processes through the database (ccm_core.storage.shared_results).

Why it matters: behind a proxy with several processes, each filter set was computed once per process,
and a new replica met every view cold.  A shared row must never be stale (an import through any replica
makes it so), never be read when the app did not write it (rows are pickled, so they are signed), and
never be shared between different code.

Hand-worked cohort (month 2025-03): patients A, B, C enrolled on 2025-01-02; D only consented, so
enrolled = 3; D's enrollment event makes it 4.
"""

from __future__ import annotations

import datetime as dt
import pickle

import pytest
from sqlalchemy import select, update

from ccm_core.engine.filters import Filters
from ccm_core.io import imports
from ccm_core.kpis import program as kpis
from ccm_core.storage import db, schema, shared_results
from ui import cache

from builders import Builder

MARCH = Filters.for_month(202503)
KEY = shared_results.signing_key("a test secret that is long enough for the signature")
CALLS: list[str] = []


def counted_enrolled(conn, f):
    """kpis.enrolled_patients, counting how often the caches let it run."""
    CALLS.append("enrolled")
    return kpis.enrolled_patients(conn, f)


@pytest.fixture
def cohort(engine):
    with engine.begin() as conn:
        b = Builder(conn)
        for mrn in ("MRN-A", "MRN-B", "MRN-C"):
            b.enrolled_patient(mrn=mrn)
        b.funnel(b.patient(mrn="MRN-D"), "consented", dt.date(2025, 1, 2))
        db.bump_data_version(conn)
    return engine


def test_a_row_round_trips_while_what_it_read_is_unchanged(cohort):
    digest = shared_results.digest("kpis.enrolled_patients", ["202503"])
    versions = {db.ALL_TABLES: 4, "enrollment_event": 7, "time_entry": 9}
    value = {"enrolled": 3, "months": [dt.date(2025, 3, 1)]}
    assert shared_results.store(cohort, KEY, digest, value, frozenset({"enrollment_event"}), 7, ttl=60)
    assert shared_results.fetch(cohort, KEY, digest, versions, ttl=60) == (value, frozenset({"enrollment_event"}))
    # a write to a table it did not read keeps it; a write to the one it read makes it stale
    assert shared_results.fetch(cohort, KEY, digest, {**versions, "time_entry": 10}, ttl=60) is not None
    assert shared_results.fetch(cohort, KEY, digest, {**versions, "enrollment_event": 8}, ttl=60) is None
    # a write that named no tables (ALL_TABLES moves past the row's version) makes everything stale
    assert shared_results.fetch(cohort, KEY, digest, {**versions, db.ALL_TABLES: 8}, ttl=60) is None


def test_a_row_the_app_did_not_sign_is_never_unpickled(cohort):
    digest = shared_results.digest("f", [])
    versions = {db.ALL_TABLES: 1}
    assert shared_results.store(cohort, KEY, digest, 42, frozenset({"patient"}), 1, ttl=60)
    other_key = shared_results.signing_key("another deployment's secret, also long enough")
    assert shared_results.fetch(cohort, other_key, digest, versions, ttl=60) is None
    t = schema.result_cache
    with cohort.begin() as conn:  # someone with write access to the database swaps the payload
        conn.execute(update(t).values(payload=pickle.dumps(43)))
    assert shared_results.fetch(cohort, KEY, digest, versions, ttl=60) is None
    with cohort.begin() as conn:  # ... or the version, to make a stale row look current
        conn.execute(update(t).values(payload=pickle.dumps(42), version=2))
    assert shared_results.fetch(cohort, KEY, digest, {db.ALL_TABLES: 2}, ttl=60) is None


def test_old_rows_expire_and_are_deleted_by_the_next_write(cohort):
    old, new = shared_results.digest("f", [1]), shared_results.digest("f", [2])
    assert shared_results.store(cohort, KEY, old, 1, frozenset(), 0, ttl=60)
    t = schema.result_cache
    with cohort.begin() as conn:
        conn.execute(update(t).values(created_at=dt.datetime(2020, 1, 1)))
    assert shared_results.fetch(cohort, KEY, old, {}, ttl=60) is None
    assert shared_results.store(cohort, KEY, new, 2, frozenset(), 0, ttl=60)
    with cohort.connect() as conn:
        assert conn.execute(select(t.c.call_digest)).scalars().all() == [new]


def test_too_large_results_stay_in_their_process(cohort, monkeypatch):
    monkeypatch.setattr(shared_results, "MAX_BYTES", 100)
    assert not shared_results.store(cohort, KEY, shared_results.digest("f", []), "x" * 1000, frozenset(), 0, ttl=60)
    with cohort.connect() as conn:
        assert conn.execute(select(schema.result_cache)).first() is None


def test_the_key_names_the_code_the_function_and_the_arguments():
    a = shared_results.digest("ccm_core.kpis.program.enrolled_patients", [{"m": 202503}])
    assert a == shared_results.digest("ccm_core.kpis.program.enrolled_patients", [{"m": 202503}])
    assert a != shared_results.digest("ccm_core.kpis.program.enrolled_patients", [{"m": 202504}])
    assert a != shared_results.digest("ccm_core.kpis.program.consent_rate", [{"m": 202503}])
    assert len(shared_results.code_fingerprint()) == 64


@pytest.fixture
def shared_app(cohort, monkeypatch):
    """ui.cache pointed at the cohort with shared results on (whatever the database) and a secret set."""
    monkeypatch.setenv("CCM_DATABASE_URL", cohort.url.render_as_string(hide_password=False))
    monkeypatch.setenv("CCM_SHARED_RESULTS", "1")
    monkeypatch.setattr(cache, "_signing_key", lambda: KEY)
    cache.clear_cache()
    CALLS.clear()
    yield cohort
    cache.clear_cache()


def _new_process() -> None:
    """What another process has: an empty memory cache (the database is the same)."""
    cache._RESULTS.clear()


def test_another_process_is_served_what_one_computed_until_an_import_changes_it(shared_app):
    engine = shared_app
    assert cache.cached(counted_enrolled, MARCH).value == 3
    _new_process()
    assert cache.cached(counted_enrolled, MARCH).value == 3
    assert CALLS == ["enrolled"]  # computed once for both processes

    run = imports.import_files(
        engine,
        [
            imports.Source(
                "enrollment_events.csv", b"external_id,mrn,status,event_date\nEV-D,MRN-D,enrolled,2025-03-10\n"
            )
        ],
    )
    assert [r.status for r in run.files] == ["imported"], run.files[0].problems
    _new_process()
    assert cache.cached(counted_enrolled, MARCH).value == 4  # the import made the shared row stale
    assert CALLS == ["enrolled", "enrolled"]
    _new_process()
    assert cache.cached(counted_enrolled, MARCH).value == 4
    assert CALLS == ["enrolled", "enrolled"]


def test_shared_results_are_off_without_a_secret_or_when_turned_off(shared_app, monkeypatch):
    monkeypatch.setattr(cache, "_signing_key", lambda: None)
    cache.cached(counted_enrolled, MARCH)
    _new_process()
    cache.cached(counted_enrolled, MARCH)
    assert CALLS == ["enrolled", "enrolled"]
    monkeypatch.setattr(cache, "_signing_key", lambda: KEY)
    monkeypatch.setenv("CCM_SHARED_RESULTS", "0")
    _new_process()
    cache.cached(counted_enrolled, MARCH)
    _new_process()
    cache.cached(counted_enrolled, MARCH)
    assert CALLS == ["enrolled"] * 4
    with shared_app.connect() as conn:
        assert conn.execute(select(schema.result_cache)).first() is None


def test_on_by_default_on_postgresql_only(engine, monkeypatch):
    monkeypatch.delenv("CCM_SHARED_RESULTS", raising=False)
    assert shared_results.enabled(engine) == (engine.dialect.name == "postgresql")
