"""Managing logins from the Admin page: the users table, the care managers a login can be tied to, and one
guarded action at a time (deactivate, reactivate, change role, unlock, reset password), each written to the
access log.  The rows and passwords themselves are kept by ``security.auth``; the command line
(``python -m ccm_core users ...``, ``ccm_core.cli.users``) calls the same functions.
"""

from __future__ import annotations

import datetime as dt

import pandas as pd
from sqlalchemy import Engine, func, select

from ccm_core.security import auth
from ccm_core.security.access_log import log_admin_change
from ccm_core.storage.schema import app_user, staff


def users_frame(engine: Engine, now: dt.datetime | None = None) -> pd.DataFrame:
    """Users without their password hashes, for the Admin page."""
    now = now or dt.datetime.now()
    rows = [
        {
            "username": u.username,
            "name": u.display_name,
            "role": u.role,
            "active": u.active,
            "locked": u.is_locked(now),
            "failed_logins": u.failed_logins,
            "locked_until": u.locked_until,
            "last_login_at": u.last_login_at,
            "staff_id": u.staff_id,
            "email": u.email,
        }
        for u in auth.list_users(engine)
    ]
    return pd.DataFrame(
        rows,
        columns=[
            "username",
            "name",
            "role",
            "active",
            "locked",
            "failed_logins",
            "locked_until",
            "last_login_at",
            "staff_id",
            "email",
        ],
    )


def care_manager_choices(engine: Engine) -> list[tuple[int, str]]:
    with engine.connect() as conn:
        rows = conn.execute(
            select(staff.c.id, staff.c.first_name, staff.c.last_name, staff.c.credential)
            .where(staff.c.role == "care_manager")
            .order_by(staff.c.last_name, staff.c.first_name)
        ).all()
    return [(r.id, f"{r.last_name}, {r.first_name} {r.credential}") for r in rows]


def active_admin_count(engine: Engine) -> int:
    with engine.connect() as conn:
        return int(
            conn.execute(
                select(func.count())
                .select_from(app_user)
                .where(app_user.c.role == "admin", app_user.c.active.is_(True))
            ).scalar()
            or 0
        )


def manage_user(
    engine: Engine, actor: str, action: str, username: str, *, role: str | None = None, password: str | None = None
) -> str:
    """One admin action on a user, with the guard rails and the audit record; returns a confirmation.

    Guard rails: nobody deactivates or demotes themselves, and the last active
    admin cannot be removed (the app would have no one left to manage it).
    """
    target = auth.get_user(engine, username)
    if target is None:
        raise ValueError(f"No user named {username!r}.")
    removing_admin = (
        target.role == "admin"
        and target.active
        and (action == "deactivate" or (action == "set_role" and role != "admin"))
    )
    if removing_admin and target.username == auth.normalize_username(actor):
        raise ValueError("You cannot remove your own admin access; ask another admin.")
    if removing_admin and active_admin_count(engine) <= 1:
        raise ValueError("This is the last active admin; make another user admin first.")
    if action == "deactivate":
        auth.deactivate(engine, username)
        msg = f"{target.username} deactivated"
    elif action == "reactivate":
        auth.set_active(engine, username, True)
        msg = f"{target.username} reactivated"
    elif action == "set_role":
        auth.set_role(engine, username, role or "")
        msg = f"role of {target.username} set to {role}"
    elif action == "unlock":
        auth.unlock(engine, username)
        msg = f"{target.username} unlocked"
    elif action == "set_password":
        auth.set_password(engine, username, password or "")
        msg = f"password of {target.username} reset"
    else:
        raise ValueError(f"Unknown user action {action!r}")
    log_admin_change(engine, actor, msg)
    return msg
