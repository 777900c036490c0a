"""Administration: database setup, user management, settings, meetings and filter choices.

The CLI commands here (``init-db``, ``users ...``) and the Admin page call the
same functions, so a user created from the shell and one created on screen
are the same row with the same bcrypt hash and the same audit trail.
"""

from __future__ import annotations

import argparse
import datetime as dt
import getpass
import json
import sys

import pandas as pd
from sqlalchemy import Engine, delete, func, select
from sqlalchemy.engine import Connection

from ccm_core.security import auth
from ccm_core.security.access_log import log_access
from ccm_core.storage import db
from ccm_core.storage import stored as pm_store
from ccm_core.storage.schema import (
    PROGRAMS,
    ROLES,
    access_log,
    app_user,
    clinic,
    import_batch,
    meeting,
    patient,
    practitioner,
    setting,
    staff,
    time_entry,
)

DEMO_FLAG_KEY = "app.demo_database"
FEE_YEAR_KEY = "app.fee_schedule_year"
SNAPSHOT_PREFIX = "meeting_snapshot:"


# --------------------------------------------------------------------------- settings
def get_setting(conn: Connection, key: str, default: str | None = None) -> str | None:
    value = conn.execute(select(setting.c.value).where(setting.c.key == key)).scalar()
    return default if value is None else value


def put_setting(conn: Connection, key: str, value: str) -> None:
    """Upsert without dialect-specific SQL: delete then insert in the caller's transaction, recorded (every
    computation reads settings through the rules, so a changed setting makes every cached result stale)."""
    conn.execute(delete(setting).where(setting.c.key == key))
    conn.execute(setting.insert().values(key=key, value=value))
    pm_store.record_write(conn, pm_store.Scope.for_tables({"setting"}))


MEETING_STAFF_KEY = "app.meeting_staff_display"
MEETING_STAFF_CHOICES = ("names", "pseudonyms")  # how staff read in meeting mode


def meeting_staff_display(engine: Engine) -> str:
    """ "names" (default) or "pseudonyms": what meeting mode shows for care managers, practitioners, staff."""
    with engine.connect() as conn:
        value = get_setting(conn, MEETING_STAFF_KEY, "names")
    return value if value in MEETING_STAFF_CHOICES else "names"


def set_meeting_staff_display(engine: Engine, value: str, username: str) -> None:
    if value not in MEETING_STAFF_CHOICES:
        raise ValueError(f"Staff display must be one of {', '.join(MEETING_STAFF_CHOICES)}")
    with engine.begin() as conn:
        put_setting(conn, MEETING_STAFF_KEY, value)
    log_access(
        engine,
        username=username,
        role="admin",
        action="admin",
        page="admin",
        detail=f"meeting mode shows staff as {value}",
    )


def fee_schedule_year(engine: Engine, today: dt.date | None = None) -> int:
    """The fee-schedule year the Admin page shows and edits (defaults to this calendar year)."""
    with engine.connect() as conn:
        value = get_setting(conn, FEE_YEAR_KEY)
    try:
        return int(value) if value else (today or dt.date.today()).year
    except ValueError:
        return (today or dt.date.today()).year


def set_fee_schedule_year(engine: Engine, year: int, username: str) -> None:
    if not 2000 <= int(year) <= 2100:
        raise ValueError(f"Fee schedule year {year} is out of range.")
    with engine.begin() as conn:
        put_setting(conn, FEE_YEAR_KEY, str(int(year)))
    log_access(
        engine, username=username, role="admin", action="admin", page="admin", detail=f"fee schedule year set to {year}"
    )


def fee_schedule(engine: Engine, year: int) -> pd.DataFrame:
    """Each billing code's fee for ``year`` with its status, including database overrides."""
    from ccm_core import rules

    with engine.connect() as conn:
        rs = rules.load(conn)
    out = []
    for code in rs.codes.values():
        entry = rs.fee_entry(code.code, year)
        out.append(
            {
                "code": code.code,
                "program": code.family,
                "description": code.description,
                "amount": entry.amount if entry else None,
                "status": entry.status if entry else "no fee row",
                "note": entry.note if entry else "",
            }
        )
    return pd.DataFrame(out)


def set_fee_override(engine: Engine, code: str, year: int, amount: float, username: str) -> None:
    """A practice confirms or corrects an UNVERIFIED amount; caches go stale via the data version."""
    from ccm_core import rules

    rs = rules.load()
    if code not in rs.codes:
        raise ValueError(f"Unknown billing code {code!r}.")
    if not 0 <= float(amount) < 10_000:
        raise ValueError("Fee amount must be between 0 and 10,000 dollars.")
    with engine.begin() as conn:
        put_setting(conn, f"{rules.SETTING_PREFIX}fee.{code}.{int(year)}", f"{float(amount):.2f}")
        pm_store.record_write(conn)  # expected amounts change with the fee
    pm_store.vacuum(engine)
    log_access(
        engine,
        username=username,
        role="admin",
        action="admin",
        page="admin",
        detail=f"fee override {code} {year} = {float(amount):.2f}",
    )


# --------------------------------------------------------------------------- meetings
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


# --------------------------------------------------------------------------- filter choices and data dates
def filter_options(conn: Connection) -> dict[str, list]:
    """The choices the sidebar filters offer (small lists, one query each)."""
    clinics = conn.execute(select(clinic.c.id, clinic.c.name).order_by(clinic.c.name)).all()
    practs = conn.execute(
        select(
            practitioner.c.id, practitioner.c.last_name, practitioner.c.first_name, practitioner.c.credential
        ).order_by(practitioner.c.last_name, practitioner.c.first_name)
    ).all()
    cms = conn.execute(
        select(staff.c.id, staff.c.last_name, staff.c.first_name, staff.c.credential)
        .where(staff.c.role == "care_manager")
        .order_by(staff.c.last_name, staff.c.first_name)
    ).all()
    payers = conn.execute(select(patient.c.payer).distinct().order_by(patient.c.payer)).scalars().all()
    months = (
        conn.execute(select(time_entry.c.service_month).distinct().order_by(time_entry.c.service_month)).scalars().all()
    )
    return {
        "clinics": [(r.id, r.name) for r in clinics],
        "practitioners": [(r.id, f"{r.last_name}, {r.first_name} {r.credential}") for r in practs],
        "care_managers": [(r.id, f"{r.last_name}, {r.first_name} {r.credential}") for r in cms],
        "payers": list(payers),
        "programs": list(PROGRAMS),
        "months": [int(m) for m in months],
    }


def data_as_of(conn: Connection, today: dt.date | None = None) -> dt.date | None:
    """The last day with recorded time, never after today: the "month to date" reference day."""
    today = today or dt.date.today()
    latest = conn.execute(
        select(func.max(time_entry.c.service_date)).where(time_entry.c.service_date <= today)
    ).scalar()
    if isinstance(latest, str):  # SQLite without type info in an aggregate
        latest = dt.date.fromisoformat(latest[:10])
    return latest


def default_report_month(available_months: list[int], today: dt.date | None = None) -> int:
    """The last complete calendar month, or the newest month with data if the data ends earlier."""
    today = today or dt.date.today()
    last_complete = db.add_months(db.month_int(today), -1)
    if not available_months:
        return last_complete
    older = [m for m in available_months if m <= last_complete]
    return max(older) if older else min(available_months)


# --------------------------------------------------------------------------- access log and import history
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


def import_history(engine: Engine, limit: int = 200) -> pd.DataFrame:
    """Recent import batches, newest first."""
    q = select(import_batch).order_by(import_batch.c.imported_at.desc(), import_batch.c.id.desc()).limit(limit)
    with engine.connect() as conn:
        rows = conn.execute(q).mappings().all()
    return pd.DataFrame(rows, columns=[c.name for c in import_batch.c])


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
    log_access(engine, username=actor, role="admin", action="admin", page="admin", detail=msg)
    return msg


# --------------------------------------------------------------------------- CLI
def _engine(args) -> Engine:
    return db.make_engine(args.db)


def _cli_actor() -> str:
    try:
        return "cli:" + getpass.getuser()
    except Exception:  # noqa: BLE001 - no login name in some containers
        return "cli"


def _read_password(args, prompt: str = "Password: ") -> str:
    """From standard input (--password-stdin: one line, for scripts), else a hidden prompt asked twice.

    Never from the command line itself: arguments end up in shell history and in every user's process
    list (``ps``)."""
    if getattr(args, "password", None) is not None:
        raise ValueError(
            "Passwords are not taken on the command line (shell history and the process list would "
            "show them). Use the prompt, or pipe it in with --password-stdin."
        )
    if getattr(args, "password_stdin", False):
        line = sys.stdin.readline()
        return line[:-1] if line.endswith("\n") else line
    if not sys.stdin or not sys.stdin.isatty():
        raise ValueError("No terminal to prompt on: pipe the password in with --password-stdin.")
    first = getpass.getpass(prompt)
    second = getpass.getpass("Repeat password: ")
    if first != second:
        raise ValueError("The two passwords differ.")
    return first


def _patient_count(engine: Engine) -> int:
    with engine.connect() as conn:
        return int(conn.execute(select(func.count()).select_from(patient)).scalar() or 0)


def is_demo_database(engine: Engine) -> bool:
    """Demo logins (with published passwords) may only ever go into a demo database.

    Recognised by the flag init-db writes, or by the demo generator's own practice
    (``python -m ccm_core demo`` fills a database without going through init-db).
    """
    from ccm_core.storage.schema import practice

    with engine.connect() as conn:
        if get_setting(conn, DEMO_FLAG_KEY) == "true":
            return True
        names = conn.execute(select(practice.c.name)).scalars().all()
    try:
        from ccm_core.io.demo.vocab import PRACTICE_NAME
    except ImportError:
        return False
    return names == [PRACTICE_NAME]


def cmd_init_db(args) -> int:
    engine = _engine(args)
    try:
        db.upgrade(engine)
        print(f"Schema is up to date ({engine.url.render_as_string(hide_password=True)}).")
        if pm_store.ensure_current(engine) is not None:  # an older database, or new rules or engine code
            print("Stored patient-month rebuilt.")
        if not args.demo_if_empty:
            return 0
        if _patient_count(engine) == 0:
            try:
                from ccm_core.io import demo
            except ModuleNotFoundError as exc:
                if exc.name != "ccm_core.io.demo":
                    raise
                raise ValueError(
                    "The demo data generator (ccm_core.io.demo) is not installed in this checkout."
                ) from None
            print("Empty database: generating demo data (1,500 patients, 18 months)...", flush=True)
            report = demo.generate(engine)
            with engine.begin() as conn:
                put_setting(conn, DEMO_FLAG_KEY, "true")
            summary = getattr(report, "to_dict", lambda: {})()
            if summary:
                counts = {k: v for k, v in summary.items() if isinstance(v, (int, float))}
                print("Demo data: " + ", ".join(f"{k}={v}" for k, v in counts.items()))
        if is_demo_database(engine):
            created = auth.create_demo_users(engine)
            if created:
                print("Demo logins created: " + ", ".join(f"{u}/{p}" for u, p, _, _ in auth.DEMO_USERS if u in created))
        else:
            print("Database already holds data that is not demo data: no demo logins created.")
        return 0
    finally:
        engine.dispose()


def cmd_users(args) -> int:
    engine = _engine(args)
    actor = _cli_actor()
    try:
        if args.users_command == "list":
            users = auth.list_users(engine)
            if not users:
                print("No users. Add one with: python -m ccm_core users add NAME --role admin")
                return 0
            now = dt.datetime.now()
            print(f"{'username':<20} {'role':<13} {'active':<6} {'locked':<6} {'failed':<6} name")
            for u in users:
                print(
                    f"{u.username:<20} {u.role:<13} {'yes' if u.active else 'no':<6} "
                    f"{'yes' if u.is_locked(now) else 'no':<6} {u.failed_logins:<6} {u.display_name}"
                )
            return 0
        if args.users_command == "add":
            password = _read_password(args)
            auth.add_user(
                engine,
                args.username,
                password,
                args.role,
                display_name=args.name,
                email=args.email,
                staff_id=args.staff_id,
            )
            detail = f"user {auth.normalize_username(args.username)} added with role {args.role}"
        elif args.users_command == "set-password":
            if auth.get_user(engine, args.username) is None:
                raise ValueError(f"No user named {args.username!r}.")
            auth.set_password(engine, args.username, _read_password(args, "New password: "))
            detail = f"password reset for {auth.normalize_username(args.username)}"
        elif args.users_command == "set-role":
            auth.set_role(engine, args.username, args.role)
            detail = f"role of {auth.normalize_username(args.username)} set to {args.role}"
        elif args.users_command == "deactivate":
            auth.deactivate(engine, args.username)
            detail = f"user {auth.normalize_username(args.username)} deactivated"
        elif args.users_command == "unlock":
            auth.unlock(engine, args.username)
            detail = f"user {auth.normalize_username(args.username)} unlocked"
        else:  # pragma: no cover - argparse guards this
            raise ValueError(f"Unknown users command {args.users_command!r}")
        log_access(engine, username=actor, role=None, action="admin", page="cli", detail=detail)
        print(detail[0].upper() + detail[1:] + ".")
        return 0
    finally:
        engine.dispose()


def add_cli(subparsers) -> None:
    from ccm_core.cli import add_db_argument

    p = subparsers.add_parser(
        "init-db", help="create or upgrade the schema (optionally fill an empty DB with demo data)"
    )
    add_db_argument(p)
    p.add_argument(
        "--demo-if-empty",
        action="store_true",
        help="when the database has no patients, generate demo data and the demo logins",
    )
    p.set_defaults(func=cmd_init_db)

    u = subparsers.add_parser("users", help="manage dashboard logins")
    us = u.add_subparsers(dest="users_command", required=True)
    for name, helptext in (
        ("list", "list users"),
        ("add", "add a user"),
        ("set-password", "reset a password (also clears a lockout)"),
        ("set-role", "change a user's role"),
        ("deactivate", "stop a user from logging in"),
        ("unlock", "clear a lockout after failed logins"),
    ):
        sp = us.add_parser(name, help=helptext)
        add_db_argument(sp)
        if name != "list":
            sp.add_argument("username")
        if name in ("add", "set-password"):
            sp.add_argument(
                "--password-stdin",
                action="store_true",
                help="read the password from standard input (one line); otherwise it is prompted for without echo",
            )
            sp.add_argument("--password", help=argparse.SUPPRESS)  # refused with an explanation
        if name == "add":
            sp.add_argument("--role", required=True, choices=ROLES)
            sp.add_argument("--name", help="display name")
            sp.add_argument("--email")
            sp.add_argument("--staff-id", type=int, help="staff.id of a care manager (their own worklist)")
        if name == "set-role":
            sp.add_argument("role", choices=ROLES)
        sp.set_defaults(func=cmd_users)


if __name__ == "__main__":  # pragma: no cover
    parser = argparse.ArgumentParser()
    add_cli(parser.add_subparsers(dest="command", required=True))
    ns = parser.parse_args()
    sys.exit(ns.func(ns))
