"""The warmer (``ui.warm``): views in use are written down, a new process computes them before anyone
asks, and an import makes it recompute exactly the stale ones, with the numbers a user would get."""

from __future__ import annotations

import sqlite3

import pytest
from sqlalchemy import select

from ccm_core.engine.filters import Filters
from ccm_core.kpis import program as kpis
from ccm_core.storage import db
from ccm_core.storage import stored as pm_store
from ui import cache as data
from ui import warm


@pytest.fixture
def app_db(_demo_engines, tmp_path, monkeypatch):
    eng, report = _demo_engines("sqlite")
    path = tmp_path / "demo.db"
    with sqlite3.connect(eng.url.database) as src, sqlite3.connect(path) as dst:
        src.backup(dst)
    url = f"sqlite:///{path}"
    monkeypatch.setenv("CCM_DATABASE_URL", url)
    monkeypatch.setenv("CCM_WARM_FILE", str(tmp_path / "warm.json"))
    monkeypatch.setattr(warm, "_calls", type(warm._calls)())
    data.clear_cache()
    yield url, report
    data.clear_cache()


def test_a_new_process_warms_the_views_the_last_one_used(app_db):
    url, report = app_db
    f = Filters.for_month(db.add_months(report.end_month, -1))
    first = data.cached(kpis.minutes_per_enrolled_patient, f)
    data.cached(kpis.billable_rate, f)
    warm.save(url)

    # a "new process": nothing remembered, nothing cached
    warm._calls.clear()
    data.clear_cache()
    assert warm.load(url, lambda fn, a, k: data.call_key(fn, a, k, url)) == 2
    versions = data.read_versions(url)
    key = data.call_key(kpis.minutes_per_enrolled_patient, (f,), {}, url)
    assert not data.is_cached(key, versions)
    assert warm.warm_pass(url, versions) == 2
    assert data.is_cached(key, versions)
    assert warm.warm_pass(url, versions) == 0  # nothing stale: nothing recomputed
    assert data.cached(kpis.minutes_per_enrolled_patient, f) == first


def test_an_import_makes_the_warmer_recompute_what_it_changed(app_db):
    url, report = app_db
    f = Filters.for_month(db.add_months(report.end_month, -1))
    before = data.cached(kpis.minutes_per_enrolled_patient, f)
    data.cached(kpis.enrollment_rate, f)
    engine = db.make_engine(url)
    with engine.begin() as conn:  # double every time entry of the month (a second import of the same work)
        te = db_table_rows(conn, f.month_to)
        conn.execute(te[0].insert(), te[1])
        pm_store.record_write(
            conn,
            pm_store.Scope(
                (f.month_to, f.month_to), enrollment=False, claims=False, eligibility=False, tables=("time_entry",)
            ),
        )
    versions = data.read_versions(url)
    minutes_key = data.call_key(kpis.minutes_per_enrolled_patient, (f,), {}, url)
    enroll_key = data.call_key(kpis.enrollment_rate, (f,), {}, url)
    assert not data.is_cached(minutes_key, versions) and data.is_cached(enroll_key, versions)
    assert warm.warm_pass(url, versions) == 1  # only what read time entries
    after = data.cached(kpis.minutes_per_enrolled_patient, f)
    with engine.connect() as conn:
        assert after == kpis.minutes_per_enrolled_patient(conn, f)  # the number a user computing it gets
    assert after != before


def db_table_rows(conn, month: int):
    from ccm_core.storage import schema as s

    te = s.time_entry
    cols = [c for c in te.c if c.name not in ("id", "external_id", "import_batch_id")]
    rows = [dict(r._mapping) for r in conn.execute(select(*cols).where(te.c.service_month == month))]
    for i, r in enumerate(rows):
        r["external_id"] = f"dup-{i}"
    return te, rows


def test_the_warm_file_names_views_only_and_calls_only_ccm_core(app_db, tmp_path):
    url, _ = app_db
    (tmp_path / "warm.json").write_text('[{"fn": "os:system", "args": {"__tuple__": ["true"]}, "kwargs": {}}]')
    assert warm.load(url, lambda fn, a, k: data.call_key(fn, a, k, url)) == 0
    with pytest.raises(ValueError):
        warm._resolve("subprocess:run")


def test_sessions_asking_for_the_same_result_at_once_share_one_computation(app_db):
    """Single flight: the first caller computes, the others wait for its value."""
    import threading
    import time

    url, report = app_db
    f = Filters.for_month(db.add_months(report.end_month, -1))
    calls = []

    def slow_kpi(conn, filters):
        calls.append(1)
        time.sleep(0.5)
        return kpis.minutes_per_enrolled_patient(conn, filters)

    results = []
    threads = [threading.Thread(target=lambda: results.append(data.cached(slow_kpi, f))) for _ in range(5)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(calls) == 1 and len(results) == 5
    assert all(r == results[0] for r in results)


def test_a_new_deployment_warms_the_default_overview_before_the_first_user(app_db, monkeypatch):
    """No view remembered yet (no file): the warmer starts with the Overview's default view, so the first
    program lead's Overview after a deployment computes nothing (and the seed list cannot drift from the page)."""
    from apptest_utils import app_env, ensure_role_users, login_as

    url, _ = app_db
    engine = db.make_engine(url)
    ensure_role_users(engine)
    engine.dispose()
    app_env(monkeypatch, url)
    assert warm.seed_default_views(url) >= 14  # options, data date, lag, 12 months of headlines, forecast, attention
    assert warm.warm_pass(url, data.read_versions(url)) >= 12
    computed: list[str] = []
    real = data.compute_into_cache

    def counting(key, *args, **kwargs):
        computed.append(key[0])
        return real(key, *args, **kwargs)

    monkeypatch.setattr(data, "compute_into_cache", counting)
    at = login_as("program_lead")
    assert any("Overview" in t.value for t in at.title), [t.value for t in at.title]
    assert computed == []
    assert warm.seed_default_views(url) == 0  # views are known now: nothing seeded again
