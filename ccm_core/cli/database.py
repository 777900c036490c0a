"""``python -m ccm_core init-db [--demo-if-empty]``: create or upgrade the schema, bring the stored tables
up to date, and optionally fill an empty database with demo data and the demo logins (which only ever go
into a demo database, ``security.auth.is_demo_database``)."""

from __future__ import annotations

from sqlalchemy import func, select

from ccm_core.cli import add_db_argument
from ccm_core.security import auth
from ccm_core.storage import db
from ccm_core.storage import stored as pm_store
from ccm_core.storage.schema import patient
from ccm_core.storage.settings import put_setting


def patient_count(engine) -> int:
    with engine.connect() as conn:
        return int(conn.execute(select(func.count()).select_from(patient)).scalar() or 0)


def cmd_init_db(args) -> int:
    engine = db.make_engine(args.db)
    try:
        db.upgrade(engine)
        print(f"Schema is up to date ({engine.url.render_as_string(hide_password=True)}).")
        if pm_store.ensure_current(engine) is not None:  # an older database, or new rules or engine code
            print("Stored patient-month rebuilt.")
        if not args.demo_if_empty:
            return 0
        if patient_count(engine) == 0:
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
                put_setting(conn, auth.DEMO_FLAG_KEY, "true")
            summary: dict = getattr(report, "to_dict", lambda: {})()
            if summary:
                counts = {k: v for k, v in summary.items() if isinstance(v, (int, float))}
                print("Demo data: " + ", ".join(f"{k}={v}" for k, v in counts.items()))
        if auth.is_demo_database(engine):
            created = auth.create_demo_users(engine)
            if created:
                print("Demo logins created: " + ", ".join(f"{u}/{p}" for u, p, _, _ in auth.DEMO_USERS if u in created))
        else:
            print("Database already holds data that is not demo data: no demo logins created.")
        return 0
    finally:
        engine.dispose()


def add_cli(subparsers) -> None:
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
