"""The benchmark harness itself, on the small demo database (the 50k run is ``make bench``).

Why test a bench: its figures go into docs/performance.md; a floor that silently read nothing or a
KPI error swallowed as "fast" would make those figures lies.
"""

from __future__ import annotations

import datetime as dt

import pytest
from sqlalchemy import text

from bench import harness as bench
from bench import peer
from ccm_core.engine import read
from ccm_core.engine.filters import Filters
from ccm_core.storage import db

MONTH = 202509  # the demo set ends 2025-10; September is the last complete month


def test_floor_queries_read_the_months_rows(demo_engine):
    floors = bench.floor_queries(MONTH)
    assert set(floors) >= {"time", "claim_lines", "enrollment", "denials"}
    with demo_engine.connect() as conn:
        for sql in floors.values():
            conn.exec_driver_sql(sql).fetchall()  # every floor runs on this dialect
        per_patient = conn.exec_driver_sql(floors["time"]).fetchall()
        expected = conn.execute(
            text("SELECT count(DISTINCT patient_id), sum(minutes) FROM time_entry WHERE service_month = :m"),
            {"m": MONTH},
        ).one()
    assert len(per_patient) == expected[0] > 0
    assert sum(m for _, m in per_patient) == expected[1]


def test_core_stage_times_every_page_kpi_without_errors(demo_engine):
    url = demo_engine.url.render_as_string(hide_password=False)
    as_of = dt.date(2025, 10, 20)
    res = bench.stage_core(url, MONTH, as_of, repeat=1)
    labels = [(k["page"], k["kpi"]) for k in res["kpis"]]
    assert len(labels) == len(bench.page_calls(MONTH, as_of))
    assert {p for p, _ in labels} == {"overview", "enrollment", "minutes", "billing", "revenue"}
    for k in res["kpis"]:
        assert k["error"] is None, k
        assert k["seconds"] >= 0 and k["floor"] >= 0
        assert k["ratio"] is None or k["ratio"] > 0  # rounded figures (a 0.1 ms floor shows as 0.0)
    with demo_engine.connect() as conn:
        df = read.patient_months(conn, Filters.for_month(MONTH))
        status = read.billing_status(conn, Filters.for_month(MONTH))
    ready = int((status["billing_status"] == "ready").sum())
    assert res["billing"]["patient_months"] == len(df) == len(status)
    assert res["billing"]["ready_to_bill"] == ready  # the ready list: supported AND every prerequisite holds
    assert res["audit_sample"]["population"] > 0
    assert res["peak_mb"] > 0
    assert "peer_error" not in res and [r["kpi"] for r in res["peer"]] == list(peer.PEERS)  # bench/peer.py


def test_markdown_flags_targets():
    result = {
        "backend": "sqlite",
        "patients": 10,
        "months": 2,
        "generate": {"seconds": 1.0, "peak_mb": 100.0, "rows": {"time_entry": 5, "claim_line": 2, "patient": 10}},
        "core": {
            "month": 202509,
            "peak_mb": 200.0,
            "floors": {},
            "kpis": [
                {"page": "overview", "kpi": "fast", "seconds": 0.2, "floor": 0.1, "ratio": 2.0, "error": None},
                {"page": "overview", "kpi": "slow", "seconds": 0.4, "floor": 0.1, "ratio": 4.0, "error": None},
                # a fast floor: 50 ms is the target, not 2 x 10 ms
                {"page": "billing", "kpi": "tiny", "seconds": 0.045, "floor": 0.01, "ratio": 4.5, "error": None},
                {"page": "billing", "kpi": "over", "seconds": 0.055, "floor": 0.01, "ratio": 5.5, "error": None},
            ],
            "billing": {"seconds": 6.0, "floor": 1.0, "ratio": 6.0, "patient_months": 3, "ready_to_bill": 2},
            "audit_sample": {"seconds": 1.0, "floor": 1.0, "ratio": 1.0, "population": 3},
        },
    }
    md = bench.render_markdown([result])
    assert "| overview | fast | 0.200 | 0.100 | 2.0 | yes |" in md
    assert "| overview | slow | 0.400 | 0.100 | 4.0 | no |" in md
    assert "| billing | tiny | 0.045 | 0.010 | 4.5 | yes |" in md
    assert "| billing | over | 0.055 | 0.010 | 5.5 | no |" in md
    assert "KPIs within target: 2 of 4" in md
    assert "| 6.000 | 1.000 | 6.0 | no (<5 s) |" in md


def test_postgres_skip_reason_when_nothing_answers():
    why = bench.pg_server_up("postgresql+psycopg://postgres@127.0.0.1:1/postgres")
    assert why  # a reason to print on the skip line, not an exception


def test_version_key_of_generated_marker_is_per_database(tmp_path):
    a = bench.generated_marker(f"sqlite:///{tmp_path}/bench_sqlite_10x2.db")
    b = bench.generated_marker("postgresql+psycopg://postgres@127.0.0.1:5432/ccm_bench_10x2")
    assert a != b and a.parent == b.parent == bench.OUT
    assert db.add_months(202501, -1) == 202412  # the bench reports on the month before the partial one


def test_app_stage_renders_every_page_and_tab_in_its_own_process(demo_engine, tmp_path):
    """The app stage (``bench.app_stage``: it drives Streamlit) runs as the bench runs it, in a
    child process, on a copy of the demo database (it adds a bench login)."""
    import sqlite3

    from bench import app_stage as bench_app

    if demo_engine.dialect.name != "sqlite":
        pytest.skip("one backend is enough for the harness; the copy is an SQLite backup")
    copy = tmp_path / "bench_copy.db"
    with sqlite3.connect(demo_engine.url.database) as src, sqlite3.connect(copy) as dst:
        src.backup(dst)  # the WAL's pages included
    res = bench.run_child("app", module="bench.app_stage", url=f"sqlite:///{copy}", sessions=2)
    assert "error" not in res, res
    expected = set(bench_app.APP_PAGES) | {
        f"{page}: {tab.lower()} tab" for page, (_, tabs) in bench_app.PAGE_TABS.items() for tab in tabs
    }
    assert set(res["pages"]) == expected
    assert [k for k, v in res["pages"].items() if v["error"]] == []
    assert res["overview"]["error"] is None and res["concurrency"]["ok"] == 2 and res["peak_mb"] > 0
