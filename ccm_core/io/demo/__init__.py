"""Deterministic demo data: a believable CCM practice with deliberately planted failures.

``generate(engine, patients=1500, months=18, seed=42, end_month=None, as_of=None)``
fills an empty database (schema already there) and returns a ``DemoReport``:
summary counts plus ``planted`` = failure kind -> [(patient_id, service_month)]
for every failure planted on purpose, so tests, the audit checklist and the
engine can check that they find exactly what is there.

For patient-level failures (consent, initiating visit, care plan, practitioner
change) ``service_month`` is the first billed month where the failure shows
(the month of the pre-consent minutes for ``late_consent``, the first month
under the new practitioner for ``practitioner_change_no_reconsent``); the
failure applies to every later month of that patient too.

Same arguments give byte-identical rows.  Nothing is dated after ``as_of``:
the current month is partial, which is what makes the near-threshold
worklist and "days left" meaningful.

CLI: ``python -m ccm_core demo --db URL --patients N --months M --seed S
[--end-month YYYY-MM] [--as-of YYYY-MM-DD] [--replace]``.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
import sys
import time
from collections.abc import Callable

from sqlalchemy import Engine, func, select, update
from sqlalchemy.engine import Connection

from ccm_core.io.demo import bulk
from ccm_core.io.demo.generator import (
    MONTH_KINDS,
    PATIENT_KINDS,
    PLANTED_KINDS,
    DemoData,
    npi_check_digit,
    npi_is_valid,
)
from ccm_core.storage import db, schema
from ccm_core.storage import stored as pm_store

__all__ = [
    "generate",
    "DemoReport",
    "PLANTED_KINDS",
    "PATIENT_KINDS",
    "MONTH_KINDS",
    "add_cli",
    "npi_check_digit",
    "npi_is_valid",
    "wipe_data_tables",
]

# Tables --replace leaves alone: logins and their sessions, the access log, settings, meetings and the data version are not demo data.
KEEP_TABLES = ("app_user", "user_session", "access_log", "setting", "meeting", "data_version")


@dataclasses.dataclass
class DemoReport:
    """What the generator wrote and which failures it planted."""

    seed: int
    end_month: int
    as_of: dt.date
    months: int
    patients: int = 0
    eligible: int = 0
    enrolled: int = 0
    ever_enrolled: int = 0
    consented: int = 0
    declined: int = 0
    disenrolled: int = 0
    enrolled_patient_months: int = 0
    billable_patient_months: int = 0
    rpm_patients: int = 0
    time_entries: int = 0
    claims: int = 0
    claim_lines: int = 0
    remittances: int = 0
    first_adjudications: int = 0
    denied_claims: int = 0
    duplicate_denials: int = 0
    denial_rate: float = 0.0
    appeals: int = 0
    overturned: int = 0
    billed_amount: float = 0.0
    paid_amount: float = 0.0
    rows: dict[str, int] = dataclasses.field(default_factory=dict)
    planted: dict[str, list[tuple[int, int | None]]] = dataclasses.field(default_factory=dict)
    # Exact resubmissions of a claim (claim number + "R", denied OA-18): real-world noise, not a planted kind,
    # but the engine rightly sees two CCM claims in those patient-months.
    duplicate_resubmissions: list[tuple[int, int]] = dataclasses.field(default_factory=list)
    seconds: dict[str, float] = dataclasses.field(default_factory=dict)

    @property
    def month_from(self) -> int:
        return db.add_months(self.end_month, -(self.months - 1))

    def to_dict(self) -> dict:
        """JSON-ready: dates as ISO text, planted tuples as lists."""
        out = dataclasses.asdict(self)
        out["as_of"] = self.as_of.isoformat()
        out["month_from"] = self.month_from
        out["planted"] = {k: [list(t) for t in v] for k, v in self.planted.items()}
        out["duplicate_resubmissions"] = [list(t) for t in self.duplicate_resubmissions]
        return out


def _resolve_dates(end_month: int | None, as_of: dt.date | None) -> tuple[int, dt.date]:
    if end_month is None:
        as_of = as_of or dt.date.today()
        return db.month_int(as_of), as_of
    end_month = int(end_month)
    y, m = divmod(end_month, 100)
    if not (1 <= m <= 12 and 1900 < y < 3000):
        raise ValueError(f"end_month must be YYYYMM, got {end_month!r}")
    first, last = db.month_bounds(end_month)
    if as_of is None:
        as_of = last
    if as_of < first:
        raise ValueError(
            f"as_of {as_of.isoformat()} is before the end month {db.format_month(end_month)}: "
            "the last generated month cannot lie in the future"
        )
    return end_month, as_of


def _validate(patients, months, seed) -> None:
    if not isinstance(patients, int) or not 1 <= patients <= 2_000_000:
        raise ValueError(f"patients must be a whole number from 1 to 2,000,000, got {patients!r}")
    if not isinstance(months, int) or not 1 <= months <= 120:
        raise ValueError(f"months must be a whole number from 1 to 120, got {months!r}")
    if not isinstance(seed, int) or seed < 0:
        raise ValueError(f"seed must be a non-negative whole number, got {seed!r}")


def wipe_data_tables(conn: Connection) -> None:
    """Delete every domain row (patients, claims, imports, audit samples...) but keep logins and settings."""
    conn.execute(update(schema.app_user).values(staff_id=None))
    for table in reversed(schema.metadata.sorted_tables):
        if table.name not in KEEP_TABLES:
            conn.execute(table.delete())


def generate(
    engine: Engine,
    patients: int = 1500,
    months: int = 18,
    seed: int = 42,
    end_month: int | None = None,
    as_of: dt.date | None = None,
    *,
    replace: bool = False,
    progress: Callable[[str], None] | None = None,
) -> DemoReport:
    """Fill an empty database with demo data in one transaction; refuse one that already holds patients.

    ``replace=True`` first wipes the data tables (inside the same transaction, so
    a failure loses nothing).  The schema must exist (``ccm_core.storage.db.upgrade``).
    """
    _validate(patients, months, seed)
    end_month, as_of = _resolve_dates(end_month, as_of)
    say = progress or (lambda _msg: None)
    t0 = time.perf_counter()
    with engine.begin() as conn:
        existing = conn.execute(select(func.count()).select_from(schema.patient)).scalar() or 0
        if existing and not replace:
            raise ValueError(
                f"The database already holds {existing} patients; demo data is only written into an "
                "empty database (use --replace to wipe the data tables first)."
            )
        if replace:
            say("wiping data tables")
            wipe_data_tables(conn)
        data = DemoData(patients, months, seed, end_month, as_of, progress=lambda s: say(f"generating {s}")).build()
        t1 = time.perf_counter()
        rows: dict[str, int] = {}
        names = [n for n in DemoData.TABLE_ORDER if n in data.tables]
        written = [schema.metadata.tables[n] for n in names]
        saved_keys = bulk.suspend_foreign_keys(conn, written)
        for name in names:
            say(f"writing {name}")
            rows[name] = bulk.insert_columns(conn, schema.metadata.tables[name], data.tables.pop(name))
        if saved_keys:
            say("checking foreign keys")
            bulk.restore_foreign_keys(conn, saved_keys)
        bulk.reset_sequences(conn, written)
        db.bump_data_version(conn)
        t2 = time.perf_counter()
    say("analyzing")
    with engine.begin() as conn:
        bulk.analyze(conn)
    say("storing the patient-month")
    with engine.begin() as conn:  # after ANALYZE, so PostgreSQL plans the big INSERT ... SELECT on real counts
        pm_store.refresh(conn)
    pm_store.vacuum(engine)
    t3 = time.perf_counter()
    st = data.stats
    report = DemoReport(seed=seed, end_month=end_month, as_of=as_of, months=months)
    for field in dataclasses.fields(DemoReport):
        if field.name in st:
            setattr(report, field.name, st[field.name])
    report.time_entries = rows.get("time_entry", 0)
    report.denial_rate = round(st["denied_claims"] / st["first_adjudications"], 4) if st["first_adjudications"] else 0.0
    report.rows = rows
    report.planted = {k: list(v) for k, v in data.planted.items()}
    report.seconds = {
        "generate": round(t1 - t0, 2),
        "write": round(t2 - t1, 2),
        "analyze": round(t3 - t2, 2),
        "total": round(t3 - t0, 2),
    }
    return report


# --------------------------------------------------------------------------- CLI
def _cmd_demo(args) -> int:
    end_month = db.parse_month(args.end_month) if args.end_month else None
    as_of = None
    if args.as_of:
        try:
            as_of = dt.date.fromisoformat(args.as_of)
        except ValueError:
            raise ValueError(f"--as-of must look like YYYY-MM-DD, got {args.as_of!r}") from None
    engine = db.make_engine(args.db)
    started = time.perf_counter()

    def progress(msg: str) -> None:
        print(f"\r[demo {time.perf_counter() - started:6.1f}s] {msg:<60}", end="", file=sys.stderr, flush=True)

    try:
        progress("upgrading schema")
        db.upgrade(engine)
        report = generate(
            engine,
            patients=args.patients,
            months=args.months,
            seed=args.seed,
            end_month=end_month,
            as_of=as_of,
            replace=args.replace,
            progress=progress,
        )
        progress("done")
        print(file=sys.stderr)
    finally:
        engine.dispose()
    print(json.dumps(report.to_dict(), indent=2))
    return 0


def add_cli(subparsers) -> None:
    from ccm_core.cli import add_db_argument

    p = subparsers.add_parser("demo", help="fill an empty database with deterministic demo data")
    add_db_argument(p)
    p.add_argument("--patients", type=int, default=1500, help="number of patients (default 1500)")
    p.add_argument("--months", type=int, default=18, help="months of history ending at --end-month (default 18)")
    p.add_argument("--seed", type=int, default=42, help="random seed: same seed, same data (default 42)")
    p.add_argument("--end-month", default=None, help="last month YYYY-MM (default: the current month, partial)")
    p.add_argument(
        "--as-of",
        default=None,
        help="no data after this date YYYY-MM-DD (default: end of --end-month, or today without --end-month)",
    )
    p.add_argument(
        "--replace",
        action="store_true",
        help="wipe patients, claims, imports and audit samples first (logins and settings stay)",
    )
    p.set_defaults(func=_cmd_demo)
