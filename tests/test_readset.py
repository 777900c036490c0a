"""ccm_core.storage.readset: the tables a computation read, which the app's cache keys on.

The cache keeps a result until a write touches one of the tables it read; that is only sound if the read
set is complete, so these tests compare it with what the statements name, and stored tables must stand
for every table they are built from.
"""

from __future__ import annotations

import re

from ccm_core import rules
from ccm_core.engine.filters import Filters
from ccm_core.kpis import program as kpis
from ccm_core.storage import db, readset
from ccm_core.storage import schema as s
from ccm_core.storage import stored as pm_store


def test_reads_are_recorded_per_block_and_stored_tables_stand_for_their_sources(demo_engine, demo_report):
    readset.watch(demo_engine)
    readset.watch(demo_engine)  # once per engine, however often it is asked
    f = Filters.for_month(db.add_months(demo_report.end_month, -1))
    with demo_engine.connect() as conn:
        with readset.reading() as enrolled:
            kpis.enrolled_patients(conn, f)
        with readset.reading() as denials:
            kpis.carc_pareto(conn, f)
        with readset.reading() as nothing:
            pass
    assert "remittance_adjustment" in denials and "remittance_adjustment" not in enrolled
    assert nothing == set()
    deps = readset.depends_on(enrolled)
    if pm_store.ENROLLED_TABLE in enrolled:  # the stored month ends stand for the events they come from
        assert "enrollment_event" in deps
    assert "time_entry" not in readset.depends_on({pm_store.ENROLLED_TABLE})
    assert {"time_entry", "consent", "remittance"} <= readset.depends_on({pm_store.TABLE_NAME})


def test_each_stored_table_names_every_table_its_statement_reads(demo_engine):
    """If a stored table's statement read a table missing from its sources, a write there would leave
    cached results built on the store stale."""
    names = re.compile(r"\b(" + "|".join(sorted(s.metadata.tables, key=len, reverse=True)) + r")\b")
    sources = pm_store.source_tables()
    with demo_engine.connect() as conn:
        rs = rules.load(conn)
        statements = {
            pm_store.TABLE_NAME: pm_store._store_select(202501, 202502, rs),
            pm_store.CLAIM_TABLE: pm_store._claim_store_select(rs),
            pm_store.ELIGIBLE_TABLE: pm_store._eligible_select_all(conn, rs, 202501, 202502),
            pm_store.ENROLLED_TABLE: pm_store._enrolled_select_all(202501, 202502),
        }
        for table, stmt in statements.items():
            read = set(names.findall(str(stmt.compile(dialect=conn.dialect))))
            assert read and read <= sources[table], (table, read - sources[table])


def test_writes_record_their_tables_and_unknown_writes_count_for_everything(engine):
    with engine.begin() as conn:
        v1 = db.bump_data_version(conn)  # anything may have changed
        v2 = db.bump_data_version(conn, ["time_entry"])
        versions = db.table_versions(conn)
    assert versions == {"*": v1, "time_entry": v2}
    assert db.version_of({"time_entry", "patient"}, versions) == v2
    assert db.version_of({"enrollment_event"}, versions) == v1
    with engine.begin() as conn:
        v3 = db.bump_data_version(conn)
        assert db.version_of({"enrollment_event"}, db.table_versions(conn)) == v3
