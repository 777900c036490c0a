"""The ``setting`` table: key/value pairs the app keeps in the database (fee overrides, the fee-schedule
year, weekly targets, meeting snapshots, the demo flag, the staff display in meeting mode).

Every write goes through ``put_setting``, which records it (``storage.stored.record_write``): every
computation reads settings through the rules, so a changed setting makes every cached result stale.
"""

from __future__ import annotations

from sqlalchemy import delete, select
from sqlalchemy.engine import Connection

from ccm_core.storage import stored as pm_store
from ccm_core.storage.schema import setting


def get_setting(conn: Connection, key: str, default: str | None = None) -> str | None:
    value = conn.execute(select(setting.c.value).where(setting.c.key == key)).scalar()
    return default if value is None else value


def put_setting(conn: Connection, key: str, value: str) -> None:
    """Upsert without dialect-specific SQL: delete then insert in the caller's transaction, recorded (every
    computation reads settings through the rules, so a changed setting makes every cached result stale)."""
    conn.execute(delete(setting).where(setting.c.key == key))
    conn.execute(setting.insert().values(key=key, value=value))
    pm_store.record_write(conn, pm_store.Scope.for_tables({"setting"}))
