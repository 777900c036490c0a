"""Shared helpers for the import tests."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

from sqlalchemy import func, select

from ccm_core.io.imports import Source, import_files
from ccm_core.storage import schema

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = ROOT / "data" / "examples"
SAMPLES = Path("/work/shared/samples/x12")
if not SAMPLES.exists():  # CI clones shared/ beside the repository
    SAMPLES = ROOT.parent / "shared" / "samples" / "x12"
TODAY = dt.date(2026, 11, 23)
MASTER = ["clinics.csv", "practitioners.csv", "staff.csv", "patients.csv"]


def table_counts(engine) -> dict[str, int]:
    """Row count of every table: "the database is unchanged" means these are equal."""
    with engine.connect() as conn:
        return {
            t.name: conn.execute(select(func.count()).select_from(t)).scalar() for t in schema.metadata.sorted_tables
        }


def data_version(engine) -> int:
    with engine.connect() as conn:
        return conn.execute(select(schema.data_version.c.version)).scalar()


def example(name: str) -> Source:
    return Source(name, (EXAMPLES / name).read_bytes())


def run(engine, files: dict[str, str | bytes], **kw):
    """Import in-memory files {name: text or bytes}."""
    kw.setdefault("user", "tester")
    kw.setdefault("today", TODAY)
    srcs = [Source(n, d.encode() if isinstance(d, str) else d) for n, d in files.items()]
    return import_files(engine, srcs, **kw)


def import_master(engine):
    result = import_files(engine, [example(n) for n in MASTER], user="tester", today=TODAY)
    assert result.committed and result.ok, result.summary()
    return result


def problems(result) -> list[tuple[int, str, str]]:
    return [(int(r.row), r.column, r.problem) for r in result.problems.itertuples()]
