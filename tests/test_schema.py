"""The Alembic migrations build exactly the schema the code is written against, on both databases.

``ccm_core.storage.schema.metadata`` is what every query is built from, while real
databases are created by ``db.upgrade`` (Alembic).  If the two drift, code
passes its tests on ``create_all`` databases and fails on a real install.
"""

from __future__ import annotations

import datetime as dt
import os

import pytest
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import inspect, select, text
from sqlalchemy.exc import IntegrityError

from ccm_core.storage import db, schema

# The indexes the aggregations rely on (month filters and patient-month joins); name -> (table, columns).
KEY_INDEXES = {
    "ix_time_entry_month_patient": ("time_entry", ["service_month", "patient_id"]),
    "ix_time_entry_patient_date": ("time_entry", ["patient_id", "service_date"]),
    "ix_time_entry_month_staff": ("time_entry", ["service_month", "staff_id"]),
    "ix_claim_line_month_patient": ("claim_line", ["dos_month", "patient_id"]),
    "ix_claim_line_month_code": ("claim_line", ["dos_month", "cpt_code"]),
    "ix_claim_submitted_month": ("claim", ["submitted_month"]),
    "ix_claim_patient": ("claim", ["patient_id"]),
    "ix_remittance_received_month": ("remittance", ["received_month"]),
    "ix_remittance_claim_id": ("remittance", ["claim_id"]),
    "ix_enrollment_event_patient_date": ("enrollment_event", ["patient_id", "event_date"]),
    "ix_enrollment_event_status_date": ("enrollment_event", ["status", "event_date"]),
    "ix_visit_patient_date": ("visit", ["patient_id", "visit_date"]),
    "ix_facility_stay_patient_dates": ("facility_stay", ["patient_id", "admit_date", "discharge_date"]),
    "ix_patient_clinic_practitioner": ("patient", ["clinic_id", "billing_practitioner_id"]),
}
# Natural keys that make re-imports idempotent: (table, column) must be unique in the database.
UNIQUE_KEYS = [
    ("claim", "claim_number"),
    ("patient", "mrn"),
    ("practitioner", "npi"),
    ("time_entry", "external_id"),
    ("consent", "external_id"),
    ("visit", "external_id"),
    ("app_user", "username"),
]


BACKENDS = ["sqlite"] + (["postgresql"] if os.environ.get("CCM_TEST_PG_URL") else [])


@pytest.fixture(scope="module", params=BACKENDS)
def migrated(request, tmp_path_factory, pg_databases):
    """A brand-new database brought to the head revision by ``db.upgrade`` (one per backend, shared by this module)."""
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path_factory.mktemp('schema') / 'empty.db'}"
    else:
        url = pg_databases.create("schema")
    engine = db.make_engine(url)
    db.upgrade(engine)
    yield engine
    engine.dispose()


def _diffs(engine) -> list:
    with engine.connect() as conn:
        ctx = MigrationContext.configure(conn, opts={"compare_type": True, "compare_server_default": True})
        return compare_metadata(ctx, schema.metadata)


def test_upgrade_creates_exactly_the_metadata_schema(migrated):
    assert _diffs(migrated) == []
    tables = set(inspect(migrated).get_table_names()) - {"alembic_version"}
    assert tables == set(schema.metadata.tables)


def test_upgrade_stamps_head_and_seeds_the_data_version(migrated):
    head = ScriptDirectory.from_config(db.alembic_config("sqlite://")).get_current_head()
    with migrated.connect() as conn:
        assert MigrationContext.configure(conn).get_current_revision() == head
        assert conn.execute(select(schema.data_version.c.version)).scalars().all() == [0]


def test_upgrade_twice_is_a_no_op(migrated):
    db.upgrade(migrated)
    assert _diffs(migrated) == []
    with migrated.connect() as conn:
        assert conn.execute(text("SELECT count(*) FROM data_version")).scalar() == 1


def test_key_indexes_exist_with_their_columns(migrated):
    insp = inspect(migrated)
    found = {}
    for table in {t for t, _ in KEY_INDEXES.values()}:
        for ix in insp.get_indexes(table):
            found[ix["name"]] = (table, ix["column_names"])
    for name, expected in KEY_INDEXES.items():
        assert found.get(name) == expected, name


def test_every_index_declared_in_metadata_exists(migrated):
    insp = inspect(migrated)
    for table in schema.metadata.sorted_tables:
        in_db = {ix["name"]: ix["column_names"] for ix in insp.get_indexes(table.name)}
        for ix in table.indexes:
            assert in_db.get(ix.name) == [c.name for c in ix.columns], f"{table.name}.{ix.name}"


def test_natural_keys_are_unique_in_the_database(migrated):
    insp = inspect(migrated)
    for table, column in UNIQUE_KEYS:
        uniques = [u["column_names"] for u in insp.get_unique_constraints(table)]
        uniques += [ix["column_names"] for ix in insp.get_indexes(table) if ix.get("unique")]
        assert [column] in uniques, f"{table}.{column}"


def test_foreign_keys_are_enforced(migrated):
    """A time entry for a patient who does not exist is refused on both databases."""
    with pytest.raises(IntegrityError):
        with migrated.begin() as conn:
            conn.execute(
                schema.time_entry.insert().values(
                    patient_id=999,
                    staff_id=999,
                    service_date=dt.date(2025, 1, 2),
                    service_month=202501,
                    minutes=5,
                    activity="phone_call",
                )
            )


def test_downgrade_to_base_and_back(migrated):
    """Every revision can be undone, so a failed deploy can be rolled back."""
    url = migrated.url.render_as_string(hide_password=False)
    cfg = db.alembic_config(url)
    with migrated.begin() as conn:
        cfg.attributes["connection"] = conn
        command.downgrade(cfg, "base")
    assert set(inspect(migrated).get_table_names()) <= {"alembic_version"}
    db.upgrade(migrated)
    assert _diffs(migrated) == []
