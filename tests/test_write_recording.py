"""One cache story: every write records what it changed (``pm_store.record_write``); a cached result is kept
while no table it read has been recorded since.

The guard in tests/write_guard.py enforces the first half on every test that uses the ``engine`` fixture;
these tests check the guard itself, the write paths that used to skip the recorder, and the read side.
"""

from __future__ import annotations

import ast
import datetime as dt
from pathlib import Path

import pytest
from sqlalchemy import select
from write_guard import WriteGuard

from ccm_core.audit import sampling
from ccm_core.io import meetings
from ccm_core.rules.fees import set_fee_schedule_year
from ccm_core.storage import db
from ccm_core.storage import schema as s
from ccm_core.storage import stored as pm_store

ROOT = Path(__file__).resolve().parent.parent
DAY = dt.date(2025, 10, 6)


def _fresh(tmp_path, name="guarded.db"):
    eng = db.make_engine(f"sqlite:///{tmp_path / name}")
    s.metadata.create_all(eng)
    with eng.begin() as c:
        c.execute(s.data_version.insert().values(id=1, version=0))
    return eng


def test_the_guard_flags_a_write_that_skips_the_recorder(tmp_path, monkeypatch):
    eng = _fresh(tmp_path)
    guard = WriteGuard()
    guard.attach(eng)
    monkeypatch.setattr(pm_store, "record_write", lambda *a, **k: 0)  # a write path that forgot to record
    meetings.record_meeting(eng, DAY, "lead")
    assert len(guard.violations) == 1 and "'meeting'" in guard.violations[0]
    assert "ccm_core/io/meetings.py" in guard.violations[0]


def test_the_guard_accepts_recorded_writes_and_ignores_test_setup(tmp_path):
    eng = _fresh(tmp_path)
    guard = WriteGuard()
    guard.attach(eng)
    with eng.begin() as c:  # a test builder's row: setup, not a write path
        c.execute(s.meeting.insert().values(held_on=DAY - dt.timedelta(days=7), recorded_by="setup"))
    assert meetings.record_meeting(eng, DAY, "lead") is True
    meetings.save_meeting_snapshot(eng, DAY, "overview", {"enrolled": 12.0})
    set_fee_schedule_year(eng, 2025, "admin")
    assert guard.violations == []


def test_meeting_writes_move_the_versions_of_what_they_changed(engine):
    with engine.connect() as c:
        before = db.table_versions(c)
    meetings.record_meeting(engine, DAY, "lead")
    with engine.connect() as c:
        after = db.table_versions(c)
    assert after["meeting"] > before.get("meeting", 0)
    assert after.get("time_entry", 0) == before.get("time_entry", 0)  # nothing else went stale

    meetings.save_meeting_snapshot(engine, DAY, "overview", {"enrolled": 12.0})
    with engine.connect() as c:
        snap = db.table_versions(c)
    assert snap["setting"] > after.get("setting", 0)
    meetings.save_meeting_snapshot(engine, DAY, "overview", {"enrolled": 12.0})  # same numbers: no write at all
    with engine.connect() as c:
        assert db.table_versions(c) == snap
    assert meetings.meeting_snapshot(engine, DAY, "overview") == {"enrolled": 12.0}


def test_an_auditors_finding_is_recorded_and_keeps_the_stored_tables_current(engine):
    from builders import Builder

    with engine.begin() as c:
        b = Builder(c)
        p = b.enrolled_patient(consent_on=dt.date(2025, 1, 5))
        b.time(p, minutes=25, on=dt.date(2025, 3, 10))
        b.paid(b.claim(p, [("99490", 1)], dos=dt.date(2025, 3, 31)))
    with engine.begin() as c:
        pm_store.refresh(c)
    with engine.begin() as c:
        sid = c.execute(
            s.audit_sample.insert()
            .values(
                name="t",
                created_by="auditor",
                created_at=dt.datetime(2025, 4, 1),
                month_from=202503,
                month_to=202503,
                size=1,
                seed=1,
                strata="{}",
                status="open",
            )
            .returning(s.audit_sample.c.id)
        ).scalar_one()
        item = c.execute(
            s.audit_sample_item.insert()
            .values(sample_id=sid, position=1, patient_id=p, service_month=202503, stratum="all")
            .returning(s.audit_sample_item.c.id)
        ).scalar_one()
        before = db.table_versions(c).get("audit_finding", 0)
    with engine.begin() as c:
        sampling.record_finding(c, item, "consent", "agree", "auditor", engine_result="pass")
        sampling.set_status(c, sid, "closed")
    with engine.connect() as c:
        versions = db.table_versions(c)
        assert versions["audit_finding"] > before and versions["audit_sample"] > versions["audit_finding"]
        assert pm_store.is_fresh(c, pm_store.rules_mod.load(c))  # recorded writes keep the store usable
        assert c.execute(select(s.audit_finding.c.verdict)).scalar() == "agree"


def test_only_the_recorder_moves_versions():
    """``db.bump_data_version`` is the recorder's primitive: runtime code calls ``pm_store.record_write``.
    The one other caller is the demo loader's bulk load, which records everything and then rebuilds the
    stored tables after ANALYZE (a separate transaction by design)."""
    callers = set()
    for path in (ROOT / "ccm_core").rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Attribute) and node.attr == "bump_data_version":
                callers.add(path.relative_to(ROOT).as_posix())
    assert callers == {"ccm_core/storage/stored.py", "ccm_core/io/demo/__init__.py"}


@pytest.mark.parametrize("table", sorted(db.UNCACHED_TABLES))
def test_the_app_cache_never_keeps_a_result_that_read_an_uncached_table(engine, monkeypatch, table):
    from ui import cache as data

    monkeypatch.setattr(data, "database_url", lambda: engine.url.render_as_string(hide_password=False))
    monkeypatch.setattr(data, "_engine_for", lambda url: engine)
    from ccm_core.storage import readset

    readset.watch(engine)
    data.clear_cache()
    calls = []

    def reads_it(conn):
        calls.append(1)
        return conn.exec_driver_sql(f"SELECT count(*) FROM {table}").scalar()

    assert data.cached(reads_it) == data.cached(reads_it) == 0
    assert len(calls) == 2  # computed each time: its rows change without a version

    def reads_meetings(conn):
        calls.append(1)
        return conn.exec_driver_sql("SELECT count(*) FROM meeting").scalar()

    data.cached(reads_meetings), data.cached(reads_meetings)
    assert len(calls) == 3  # a versioned table's result is kept
    data.clear_cache()
