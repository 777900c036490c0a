"""The access log: every view of patient-level data, every export and sample pull.

Written in its own short transaction so a failed page still leaves the record.
"""

from __future__ import annotations

import datetime as dt

from sqlalchemy import Engine, desc, select

from ccm_core.storage.schema import access_log

ACTIONS = (
    "login",
    "login_failed",
    "logout",
    "view",
    "reveal",
    "export",
    "sample_pull",
    "import",
    "revert",
    "admin",
    "denial_status",
)


def log_access(
    engine: Engine,
    *,
    username: str,
    role: str | None,
    action: str,
    page: str | None = None,
    detail: str = "",
    patient_count: int | None = None,
) -> None:
    if action not in ACTIONS:
        raise ValueError(f"Unknown access-log action {action!r}")
    with engine.begin() as conn:
        conn.execute(
            access_log.insert().values(
                at=dt.datetime.now(),
                username=username,
                role=role,
                action=action,
                page=page,
                detail=detail[:2000],
                patient_count=patient_count,
            )
        )


def recent_access(engine: Engine, limit: int = 500, username: str | None = None, action: str | None = None):
    """Newest first, for the admin view."""
    import pandas as pd

    q = select(access_log).order_by(desc(access_log.c.at), desc(access_log.c.id)).limit(limit)
    if username:
        q = q.where(access_log.c.username == username)
    if action:
        q = q.where(access_log.c.action == action)
    with engine.connect() as conn:
        return pd.DataFrame(conn.execute(q).mappings().all(), columns=[c.name for c in access_log.c])


def cli_user(explicit: str | None = None) -> str:
    """Who runs a command-line tool: ``--user`` when given, else the operating-system login name."""
    if explicit and explicit.strip():
        return explicit.strip()
    import getpass

    try:
        return getpass.getuser()
    except Exception:  # noqa: BLE001 - no login name (some containers): still write a row
        return "unknown"


def log_cli_output(engine: Engine, *, user: str | None, command: str, detail: str, patient_count: int | None) -> None:
    """The access-log row for patient-level command-line output, written before the output is printed."""
    log_access(
        engine,
        username=cli_user(user),
        role=None,
        action="export",
        page="cli",
        detail=f"{command}: {detail}",
        patient_count=patient_count,
    )
