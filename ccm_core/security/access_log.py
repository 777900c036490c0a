"""The access log: every view of patient-level data, every export and sample pull.

Written in its own short transaction so a failed page still leaves the record; read back, filtered in
SQL, by the Admin page (``access_log_frame``).
"""

from __future__ import annotations

import datetime as dt

import pandas as pd
from sqlalchemy import Engine, select

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


def log_admin_change(engine: Engine, username: str, detail: str) -> None:
    """One row for a change an admin made on the Admin page (a setting, a fee, a target, a user)."""
    log_access(engine, username=username, role="admin", action="admin", page="admin", detail=detail)


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


def access_log_frame(
    engine: Engine,
    start: dt.date | None = None,
    end: dt.date | None = None,
    usernames: tuple[str, ...] = (),
    actions: tuple[str, ...] = (),
    page: str | None = None,
    limit: int = 1000,
) -> pd.DataFrame:
    """Access-log rows newest first, filtered in SQL (the log grows without bound)."""
    q = select(access_log).order_by(access_log.c.at.desc(), access_log.c.id.desc()).limit(max(1, min(limit, 50_000)))
    if start:
        q = q.where(access_log.c.at >= dt.datetime.combine(start, dt.time.min))
    if end:
        q = q.where(access_log.c.at < dt.datetime.combine(end + dt.timedelta(days=1), dt.time.min))
    if usernames:
        q = q.where(access_log.c.username.in_(usernames))
    if actions:
        q = q.where(access_log.c.action.in_(actions))
    if page:
        q = q.where(access_log.c.page == page)
    with engine.connect() as conn:
        rows = conn.execute(q).mappings().all()
    return pd.DataFrame(rows, columns=[c.name for c in access_log.c])


def access_log_usernames(engine: Engine) -> list[str]:
    with engine.connect() as conn:
        return list(conn.execute(select(access_log.c.username).distinct().order_by(access_log.c.username)).scalars())
