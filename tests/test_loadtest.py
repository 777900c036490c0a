"""The load test against the real server (``bench/loadtest.py``) in its smoke size, and two server
processes on one database agreeing after an import: what ``make loadtest`` relies on cannot rot."""

from __future__ import annotations

import asyncio
import json
import secrets
import sqlite3

import pandas as pd
import pytest
from sqlalchemy import text

from bench import loadtest
from bench.st_client import StreamlitClient, click, text_value
from ccm_core.io.imports.runner import Source, import_files
from ccm_core.storage import db

from conftest import BACKENDS, DEMO_KW


@pytest.fixture
def demo_copy(_demo_engines, tmp_path) -> str:
    """A writable copy of the small SQLite demo database (sign-ins write sessions and the access log)."""
    eng, _ = _demo_engines("sqlite")
    path = tmp_path / "demo.db"
    with sqlite3.connect(eng.url.database) as src, sqlite3.connect(path) as dst:
        src.backup(dst)  # the committed content, write-ahead log included
    return f"sqlite:///{path}"


def test_the_smoke_load_test_signs_in_and_moves_between_pages(demo_copy, tmp_path):
    rc = loadtest.main(["--db", demo_copy, "--smoke", "--out", str(tmp_path)])
    out = json.loads((tmp_path / "loadtest.json").read_text())
    assert rc == 0
    (res,) = out["results"]
    s = res["summary"]
    assert res["config"] == "1 process" and res["users"] == 2
    assert (s["open"]["ok"], s["sign_in"]["ok"]) == (2, 2)  # each user loaded the page and signed in
    assert s["page"]["ok"] + s["filter"]["ok"] == 6 and s["filter"]["ok"] == 2  # 3 clicks each, one a filter
    assert s["all"]["errors"] == 0 and s["cpu_s"] > 0
    assert "| 1 process | 2 | page |" in (tmp_path / "loadtest.md").read_text()


def _metrics(result) -> dict[str, str]:
    return {e.proto.label: e.proto.body for e in result.elements if e.kind == "metric"}


async def _signed_in(url: str, user: str) -> tuple[StreamlitClient, dict]:
    c = StreamlitClient(url, timeout=90)
    r = await c.open("/")
    r = await c.rerun(
        widgets=[
            text_value(r.find("text_input", "Username"), user),
            text_value(r.find("text_input", "Password"), loadtest.PASSWORD),
            click(r.find("button", "Sign in")),
        ]
    )
    assert "overview" in c.pages, r.texts()[:5]
    return c, _metrics(r)


def _more_minutes(url: str) -> Source:
    """Every time entry of the last month again (new ids, same days): minutes and billable counts change."""
    engine = db.make_engine(url)
    with engine.connect() as conn:
        frame = pd.read_sql(
            text(
                "SELECT 'X-' || te.id AS external_id, p.mrn, st.external_id AS staff_external_id, te.program, "
                "te.service_date, te.minutes, 'call' AS activity FROM time_entry te JOIN patient p ON p.id = te.patient_id "
                "JOIN staff st ON st.id = te.staff_id WHERE te.service_month = (SELECT max(service_month) FROM time_entry)"
            ),
            conn,
        )
    engine.dispose()
    assert len(frame) > 0
    return Source("time_entries.csv", frame.to_csv(index=False).encode())


@pytest.fixture(params=BACKENDS)
def replica_db(request, tmp_path, pg_databases) -> str:
    """The small demo on SQLite (a copy) or on a fresh PostgreSQL database, where the processes also share
    results through the ``result_cache`` table (ccm_core/storage/shared_results.py)."""
    if request.param == "sqlite":
        return request.getfixturevalue("demo_copy")
    from ccm_core.io import demo

    url = pg_databases.create("replicas")
    engine = db.make_engine(url)
    db.upgrade(engine)
    demo.generate(engine, **DEMO_KW)
    engine.dispose()
    return url


def test_two_processes_agree_after_an_import(replica_db, tmp_path):
    """Each process caches results in its own memory (and, on PostgreSQL, shares them through the database),
    keyed on the last write to what they read: an import (here through the core, as the Import page does it,
    from a third process's point of view) is seen by both on their next click, and both show the same numbers."""
    demo_copy = replica_db
    (user,) = loadtest.ensure_users(demo_copy, 1)
    key = secrets.token_urlsafe(48)
    servers = [loadtest.start_server(demo_copy, key, tmp_path) for _ in range(2)]
    try:

        async def scenario():
            (a, before_a), (b, before_b) = await asyncio.gather(
                _signed_in(servers[0].url, user), _signed_in(servers[1].url, user)
            )
            assert before_a == before_b and len(before_a) >= 4
            run = import_files(db.make_engine(demo_copy), [_more_minutes(demo_copy)], user="test")
            assert run.ok, run.problems
            after_a, after_b = [_metrics(await c.rerun(page="overview")) for c in (a, b)]
            await asyncio.gather(a.close(), b.close())
            return before_a, after_a, after_b

        before, after_a, after_b = asyncio.run(scenario())
    finally:
        for s in servers:
            loadtest.stop(s.proc)
    assert after_a == after_b  # the replicas agree
    assert after_a != before  # and both saw the import
    assert after_a["Minutes per patient"] != before["Minutes per patient"]
    if demo_copy.startswith("postgresql"):  # what one computed was kept for the other
        engine = db.make_engine(demo_copy)
        with engine.connect() as conn:
            assert conn.execute(text("SELECT count(*) FROM result_cache")).scalar() > 0
        engine.dispose()
