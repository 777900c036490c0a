"""Time a 100-row patients file and a 100-row consents file at 50,000 patients (issue 16: < 5 s each,
import and rebuild of the stored tables included), on a copy of each bench database.

    python -m bench.import_scoped [--sqlite PATH] [--pg-url URL] [--rows 100]

Each file updates existing rows (a phone number; consent dates moved by a few days), as a weekly
file does; the import runs through ``ccm_core.io.imports.runner.import_files`` exactly as the Import page
runs it, and the printed ``refresh`` outcome shows what was rebuilt ("patients" = scoped).
"""

from __future__ import annotations

import argparse
import json
import shutil
import sqlite3
import sys
import tempfile
import time
from pathlib import Path

import pandas as pd
from sqlalchemy import create_engine, text

from bench import harness
from ccm_core.storage import db

PATIENTS_SQL = """SELECT p.mrn, p.mbi, p.first_name, p.last_name, p.birth_date, p.sex, p.phone, p.payer,
    CASE WHEN p.is_qmb THEN 'yes' ELSE 'no' END AS is_qmb, cl.code AS clinic_code, pr.npi AS billing_practitioner_npi,
    st.external_id AS care_manager_external_id, p.first_seen_date, p.deceased_date
    FROM patient p JOIN clinic cl ON cl.id = p.clinic_id LEFT JOIN practitioner pr ON pr.id = p.billing_practitioner_id
    LEFT JOIN staff st ON st.id = p.care_manager_id ORDER BY p.id LIMIT :n OFFSET 20000"""
CONSENTS_SQL = """SELECT cn.external_id, p.mrn, cn.program, cn.decision, cn.consent_date, cn.method,
    st.external_id AS staff_external_id, pr.npi AS practitioner_npi,
    CASE WHEN cn.disclosed_cost_sharing THEN 'yes' ELSE 'no' END AS disclosed_cost_sharing,
    CASE WHEN cn.disclosed_one_practitioner THEN 'yes' ELSE 'no' END AS disclosed_one_practitioner,
    CASE WHEN cn.disclosed_right_to_stop THEN 'yes' ELSE 'no' END AS disclosed_right_to_stop,
    CASE WHEN cn.disclosed_info_sharing THEN 'yes' ELSE 'no' END AS disclosed_info_sharing,
    cn.revoked_date, cn.document_ref
    FROM consent cn JOIN patient p ON p.id = cn.patient_id LEFT JOIN staff st ON st.id = cn.staff_id
    LEFT JOIN practitioner pr ON pr.id = cn.practitioner_id WHERE cn.consent_date IS NOT NULL
    ORDER BY cn.id LIMIT :n OFFSET 5000"""


def time_imports(url: str, rows: int) -> list[dict]:
    from ccm_core.io.imports.runner import Source, import_files
    from ccm_core.storage import stored as pm_store

    engine = db.make_engine(url)
    db.upgrade(engine)
    t0 = time.perf_counter()
    if pm_store.ensure_current(engine) is not None:
        pm_store.vacuum(engine)
        print(f"  stored tables rebuilt first (code changed): {time.perf_counter() - t0:.1f} s", file=sys.stderr)
    with engine.connect() as conn:
        pats = pd.read_sql(text(PATIENTS_SQL), conn, params={"n": rows})
        cons = pd.read_sql(text(CONSENTS_SQL), conn, params={"n": rows})
    stamp = int(time.time())
    pats["phone"] = f"555-{stamp % 10000:04d}"
    cons["consent_date"] = (pd.to_datetime(cons["consent_date"]) + pd.Timedelta(days=stamp % 5 + 1)).dt.strftime(
        "%Y-%m-%d"
    )
    out = []
    for name, frame in (("patients.csv", pats), ("consents.csv", cons)):
        seen: dict = {}
        real = pm_store.refresh

        def spy(conn, rs=None, scope=pm_store.EVERYTHING, _real=real, _seen=seen, **kw):
            _seen["out"] = _real(conn, rs, scope, **kw)
            return _seen["out"]

        pm_store.refresh = spy
        try:
            t0 = time.perf_counter()
            run = import_files(engine, [Source(name, frame.to_csv(index=False).encode())], user="bench")
            took = time.perf_counter() - t0
        finally:
            pm_store.refresh = real
        out.append(
            {
                "file": name,
                "rows": len(frame),
                "seconds": round(took, 2),
                "ok": run.ok,
                "message": run.message,
                "refresh": seen.get("out"),
            }
        )
    engine.dispose()
    return out


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench.import_scoped", description=__doc__.splitlines()[0])
    p.add_argument("--sqlite", default=harness.sqlite_url(50_000, 36).split("///", 1)[1])
    p.add_argument("--pg-url", default=harness.DEFAULT_PG, help="server of the ccm_bench_50000x36 database")
    p.add_argument("--rows", type=int, default=100)
    args = p.parse_args(argv)
    results = {}
    tmp = Path(tempfile.mkdtemp(prefix="ccm_import_scoped_"))
    try:
        if Path(args.sqlite).exists():
            copy = tmp / "copy.db"
            with sqlite3.connect(args.sqlite) as src, sqlite3.connect(copy) as dst:
                src.backup(dst)
            results["sqlite"] = time_imports(f"sqlite:///{copy}", args.rows)
        if harness.pg_server_up(args.pg_url) is None:
            admin = create_engine(db.normalize_url(args.pg_url), isolation_level="AUTOCOMMIT")
            with admin.connect() as c:
                if c.execute(text("SELECT 1 FROM pg_database WHERE datname = 'ccm_bench_50000x36'")).first():
                    c.execute(text('DROP DATABASE IF EXISTS "ccm_import_scoped" WITH (FORCE)'))
                    c.execute(text('CREATE DATABASE "ccm_import_scoped" TEMPLATE "ccm_bench_50000x36"'))
                    base = db.normalize_url(args.pg_url).rsplit("/", 1)[0]
                    results["postgresql"] = time_imports(f"{base}/ccm_import_scoped", args.rows)
                    c.execute(text('DROP DATABASE IF EXISTS "ccm_import_scoped" WITH (FORCE)'))
            admin.dispose()
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    for backend, rows in results.items():
        for r in rows:
            verdict = "met" if r["ok"] and r["seconds"] < 5 else "missed"
            print(
                f"{backend:10} {r['file']:13} {r['rows']} rows  {r['seconds']:6.2f} s  (< 5 s: {verdict})  "
                f"{json.dumps(r['refresh'])}"
            )
    if not results:
        print("no 50,000 x 36 database found: run python -m bench first", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
