"""Team meetings: the days a meeting looked at the dashboard, and the numbers each meeting saw.

"Since last meeting" compares a view's numbers with what the last meeting saw of the same view (its
snapshot), not with today's data recomputed for that day: the late remittances and corrections in
between are exactly what the team wants to see.  The meeting pack (``io.meeting_pack``), the KPI tile
rows (``ui.layout.tile_row``) and the Overview read and write them.
"""

from __future__ import annotations

import datetime as dt
import json

from sqlalchemy import Engine, func, select

from ccm_core.storage import stored as pm_store
from ccm_core.storage.schema import meeting
from ccm_core.storage.settings import get_setting, put_setting

SNAPSHOT_PREFIX = "meeting_snapshot:"


def record_meeting(engine: Engine, held_on: dt.date, username: str) -> bool:
    """Remember that a team meeting looked at the dashboard today; True if newly recorded."""
    with engine.begin() as conn:
        if conn.execute(select(meeting.c.id).where(meeting.c.held_on == held_on)).first():
            return False
        conn.execute(meeting.insert().values(held_on=held_on, recorded_by=username))
        pm_store.record_write(conn, pm_store.Scope.for_tables({"meeting"}))
    return True


def last_meeting(engine: Engine, before: dt.date) -> dt.date | None:
    """The most recent meeting strictly before ``before``: what "since last meeting" compares with."""
    with engine.connect() as conn:
        return conn.execute(select(func.max(meeting.c.held_on)).where(meeting.c.held_on < before)).scalar()


def save_meeting_snapshot(engine: Engine, held_on: dt.date, view_key: str, values: dict[str, float | None]) -> None:
    """Keep the numbers a meeting saw, so the next meeting can show what changed since.

    Recomputing "the value at the last meeting" from today's data would hide the
    late remittances and corrections that are exactly what the team wants to see.
    """
    key, text = f"{SNAPSHOT_PREFIX}{held_on.isoformat()}:{view_key}", json.dumps(values, sort_keys=True)
    with engine.begin() as conn:
        if get_setting(conn, key) != text:  # every render in meeting mode asks; write (and record) changes only
            put_setting(conn, key, text)


def meeting_snapshot(engine: Engine, held_on: dt.date, view_key: str) -> dict[str, float | None] | None:
    with engine.connect() as conn:
        raw = get_setting(conn, f"{SNAPSHOT_PREFIX}{held_on.isoformat()}:{view_key}")
    if raw is None:
        return None
    try:
        return json.loads(raw)
    except json.JSONDecodeError:
        return None
