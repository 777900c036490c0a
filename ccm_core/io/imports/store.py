"""Writing an import: set-wise upserts on natural keys, the change log, batches and revert.

Every write of a batch happens inside the caller's transaction.  Inserted rows
are stamped with ``import_batch_id`` and listed in ``import_change`` (one
INSERT ... SELECT, not a row at a time); updated rows keep their prior values
in ``import_change.before_json`` so ``revert_batch`` can put them back.
"""

from __future__ import annotations

import datetime as dt
import json
from dataclasses import dataclass

import numpy as np
import pandas as pd
from sqlalchemy import Boolean, Date, DateTime, Engine, Integer, Numeric, and_, bindparam, func, insert, literal, select
from sqlalchemy.engine import Connection

from ccm_core.storage import schema
from ccm_core.storage import stored as pm_store
from ccm_core.storage.schema import import_batch, import_change

CHUNK = 900  # keys per IN (...) list: well under SQLite's and PostgreSQL's parameter limits
WRITE_CHUNK = 5000


class RevertRefused(ValueError):
    """A batch cannot be reverted (already reverted, or later data depends on it)."""


@dataclass
class UpsertCounts:
    inserted: int = 0
    updated: int = 0
    unchanged: int = 0

    def add(self, other: UpsertCounts) -> None:
        self.inserted += other.inserted
        self.updated += other.updated
        self.unchanged += other.unchanged


def object_frame(rows, columns) -> pd.DataFrame:
    """A frame of plain Python objects (no NaN/NaT/numpy scalars): what the DB driver and the diff expect."""
    rows = list(rows)
    if not rows:
        return pd.DataFrame({c: pd.Series([], dtype=object) for c in columns})
    arr = np.empty((len(rows), len(columns)), dtype=object)
    arr[:] = rows
    return pd.DataFrame(arr, columns=list(columns))


def fetch_in(conn: Connection, table, key_col: str, values, columns) -> pd.DataFrame:
    """Rows whose ``key_col`` is in ``values``, in chunks (one round trip per CHUNK keys)."""
    cols = [table.c[c] for c in columns]
    distinct = list(dict.fromkeys(v for v in values if v is not None))
    rows = []
    for i in range(0, len(distinct), CHUNK):
        part = distinct[i : i + CHUNK]
        rows.extend(tuple(r) for r in conn.execute(select(*cols).where(table.c[key_col].in_(part))))
    return object_frame(rows, columns)


def _py(v):
    """numpy / pandas scalars to plain Python for the DB driver."""
    if v is None:
        return None
    if isinstance(v, float) and np.isnan(v):
        return None
    if isinstance(v, np.integer):
        return int(v)
    if isinstance(v, np.floating):
        return None if np.isnan(v) else float(v)
    if isinstance(v, np.bool_):
        return bool(v)
    if isinstance(v, pd.Timestamp):
        return v.to_pydatetime()
    if v is pd.NaT:
        return None
    return v


def records(frame: pd.DataFrame, columns) -> list[dict]:
    cols = list(columns)
    arr = frame[cols].to_numpy(dtype=object)
    return [{c: _py(v) for c, v in zip(cols, row)} for row in arr]


def _json_default(v):
    if isinstance(v, (dt.date, dt.datetime)):
        return v.isoformat()
    return str(v)


def _differs(new: pd.Series, old: pd.Series, column) -> pd.Series:
    new_null, old_null = new.isna(), old.isna()
    if isinstance(column.type, Numeric):
        a = pd.to_numeric(new, errors="coerce").astype(float)
        b = pd.to_numeric(old, errors="coerce").astype(float)
        same = ((a - b).abs() < 0.005) | (new_null & old_null)
    else:
        same = pd.Series(
            [x == y for x, y in zip(new.to_numpy(dtype=object), old.to_numpy(dtype=object))],
            index=new.index,
            dtype=bool,
        ) | (new_null & old_null)
    return ~same


def max_id(conn: Connection, table) -> int:
    return int(conn.execute(select(func.coalesce(func.max(table.c.id), 0))).scalar())


def record_inserts(conn: Connection, table, batch_id: int, after_id: int) -> None:
    """List the rows this batch just inserted in import_change, set-wise."""
    conn.execute(
        insert(import_change).from_select(
            ["batch_id", "table_name", "row_id", "action"],
            select(literal(batch_id), literal(table.name), table.c.id, literal("insert")).where(
                table.c.import_batch_id == batch_id, table.c.id > after_id
            ),
        )
    )


def bulk_insert(conn: Connection, table, rows: list[dict]) -> None:
    """Plain executemany everywhere; PostgreSQL gets COPY (same transaction, about 3x faster for big files)."""
    if not rows:
        return
    if conn.dialect.name == "postgresql" and conn.dialect.driver == "psycopg" and len(rows) >= 1000:
        cols = list(rows[0])
        dbapi_conn = conn.connection.driver_connection
        names = ", ".join(f'"{c}"' for c in cols)
        with dbapi_conn.cursor() as cur, cur.copy(f'COPY "{table.name}" ({names}) FROM STDIN') as copy:
            for r in rows:
                copy.write_row([r[c] for c in cols])
        return
    conn.execute(table.insert(), rows)


def upsert(conn: Connection, table, frame: pd.DataFrame, key: list[str], batch_id: int, progress=None) -> UpsertCounts:
    """Insert new rows and update changed ones (matched on ``key``); unchanged rows are not touched."""
    counts = UpsertCounts()
    if frame.empty:
        return counts
    cols = [c for c in frame.columns if c in table.c and c != "id"]
    compare = [c for c in cols if c not in key]
    existing = _fetch_existing(conn, table, frame, key, ["id", *compare, "import_batch_id"])
    merged = frame.reset_index(drop=True).merge(existing, on=key, how="left", suffixes=("", "__old"))
    is_new = merged["id"].isna()
    changed = pd.Series(False, index=merged.index)
    for c in compare:
        changed |= ~is_new & _differs(merged[c], merged[c + "__old"], table.c[c])
    counts.unchanged = int((~is_new & ~changed).sum())

    new_rows = merged[is_new]
    if len(new_rows):
        before = max_id(conn, table)
        recs = records(new_rows, cols)
        for i in range(0, len(recs), WRITE_CHUNK):
            chunk = recs[i : i + WRITE_CHUNK]
            for r in chunk:
                r["import_batch_id"] = batch_id
            bulk_insert(conn, table, chunk)
            if progress:
                progress(min(i + WRITE_CHUNK, len(recs)), len(recs))
        record_inserts(conn, table, batch_id, before)
        counts.inserted = len(recs)

    upd = merged[changed]
    if len(upd):
        stmt = (
            table.update()
            .where(table.c.id == bindparam("_row_id"))
            .values({c: bindparam("_v_" + c) for c in [*compare, "import_batch_id"]})
        )
        params, changes = [], []
        old_cols = [c + "__old" for c in compare] + ["import_batch_id"]
        for new_vals, old_vals, row_id in zip(records(upd, compare), records(upd, old_cols), upd["id"]):
            p = {"_v_" + c: v for c, v in new_vals.items()}
            p["_v_import_batch_id"] = batch_id
            p["_row_id"] = int(row_id)
            params.append(p)
            prior = {c[:-5] if c.endswith("__old") else c: v for c, v in old_vals.items()}
            changes.append(
                {
                    "batch_id": batch_id,
                    "table_name": table.name,
                    "row_id": int(row_id),
                    "action": "update",
                    "before_json": json.dumps(prior, default=_json_default),
                }
            )
        for i in range(0, len(params), WRITE_CHUNK):
            conn.execute(stmt, params[i : i + WRITE_CHUNK])
            conn.execute(import_change.insert(), changes[i : i + WRITE_CHUNK])
        counts.updated = len(params)
    return counts


def _fetch_existing(conn, table, frame, key, columns) -> pd.DataFrame:
    """Existing rows matching the frame's keys; composite keys are narrowed by their first column."""
    cols = list(dict.fromkeys([*key, *columns]))
    found = fetch_in(conn, table, key[0], frame[key[0]].tolist(), cols)
    if len(key) > 1 and len(found):
        wanted = frame[key].drop_duplicates()
        found = found.merge(wanted, on=key, how="inner")
    renamed = {c: c + "__old" for c in columns if c not in ("id", "import_batch_id") and c not in key}
    return found.rename(columns=renamed)


def key_ids(conn: Connection, table, key_col: str, values) -> dict:
    """Natural key -> id for the given keys (rows written earlier in this transaction included)."""
    found = fetch_in(conn, table, key_col, values, [key_col, "id"])
    return dict(zip(found[key_col], found["id"]))


# --------------------------------------------------------------------------- batches


def start_batch(conn: Connection, *, kind: str, file_name: str, sha256: str, user: str) -> int:
    return int(
        conn.execute(
            import_batch.insert()
            .values(
                kind=kind,
                file_name=file_name[:255],
                file_sha256=sha256,
                imported_by=user[:64],
                imported_at=dt.datetime.now(),
                rows_in=0,
                rows_written=0,
                rows_rejected=0,
                status="committed",
            )
            .returning(import_batch.c.id)
        ).scalar_one()
    )


def finish_batch(
    conn: Connection, batch_id: int, *, rows_in: int, rows_written: int, rows_rejected: int, warnings: list[str]
) -> None:
    conn.execute(
        import_batch.update()
        .where(import_batch.c.id == batch_id)
        .values(
            rows_in=rows_in,
            rows_written=rows_written,
            rows_rejected=rows_rejected,
            warnings="\n".join(warnings) if warnings else None,
        )
    )


def same_file_batch(conn: Connection, sha256: str) -> dict | None:
    """The newest committed batch with this exact content, if any."""
    row = (
        conn.execute(
            select(import_batch.c.id, import_batch.c.imported_at, import_batch.c.imported_by, import_batch.c.file_name)
            .where(import_batch.c.file_sha256 == sha256, import_batch.c.status == "committed")
            .order_by(import_batch.c.id.desc())
            .limit(1)
        )
        .mappings()
        .first()
    )
    return dict(row) if row else None


def list_batches(engine_or_conn, limit: int = 200) -> pd.DataFrame:
    """Import history, newest first (for the Import and Admin pages and ``python -m ccm_core batches``)."""
    q = (
        select(
            import_batch.c.id,
            import_batch.c.kind,
            import_batch.c.file_name,
            import_batch.c.imported_by,
            import_batch.c.imported_at,
            import_batch.c.rows_in,
            import_batch.c.rows_written,
            import_batch.c.rows_rejected,
            import_batch.c.status,
            import_batch.c.reverted_at,
            import_batch.c.reverted_by,
            import_batch.c.warnings,
            import_batch.c.file_sha256,
        )
        .order_by(import_batch.c.id.desc())
        .limit(limit)
    )

    def run(conn):
        rows = conn.execute(q).all()
        return object_frame([tuple(r) for r in rows], [c.name for c in q.selected_columns])

    if isinstance(engine_or_conn, Engine):
        with engine_or_conn.connect() as conn:
            return run(conn)
    return run(engine_or_conn)


def import_history(engine: Engine, limit: int = 200) -> pd.DataFrame:
    """Recent import batches with every column, newest first (the Admin page's Import history tab)."""
    q = select(import_batch).order_by(import_batch.c.imported_at.desc(), import_batch.c.id.desc()).limit(limit)
    with engine.connect() as conn:
        rows = conn.execute(q).mappings().all()
    return pd.DataFrame(rows, columns=[c.name for c in import_batch.c])


# --------------------------------------------------------------------------- revert


def _restore_value(column, v):
    if v is None:
        return None
    t = column.type
    if isinstance(t, DateTime):
        return dt.datetime.fromisoformat(v)
    if isinstance(t, Date):
        return dt.date.fromisoformat(v)
    if isinstance(t, Boolean):
        return bool(v)
    if isinstance(t, Integer):
        return int(v)
    if isinstance(t, Numeric):
        return float(v)
    return v


def revert_blockers(conn: Connection, batch_id: int) -> list[str]:
    """Why the batch cannot be undone now: later batches that changed its rows, rows that point at its inserts."""
    reasons: list[str] = []
    mine, later, b = import_change.alias("mine"), import_change.alias("later"), import_batch.alias("b")
    q = (
        select(later.c.batch_id, later.c.table_name, func.count())
        .select_from(
            mine.join(later, and_(mine.c.table_name == later.c.table_name, mine.c.row_id == later.c.row_id)).join(
                b, b.c.id == later.c.batch_id
            )
        )
        .where(mine.c.batch_id == batch_id, later.c.batch_id > batch_id, b.c.status == "committed")
        .group_by(later.c.batch_id, later.c.table_name)
        .order_by(later.c.batch_id)
    )
    for later_id, table_name, n in conn.execute(q):
        reasons.append(
            f"batch {later_id} later changed {n} {table_name} row(s) written by this batch; "
            f"revert batch {later_id} first"
        )
    inserted_tables = [
        r[0]
        for r in conn.execute(
            select(import_change.c.table_name)
            .where(import_change.c.batch_id == batch_id, import_change.c.action == "insert")
            .distinct()
        )
    ]
    for parent_name in inserted_tables:
        parent_ids = select(import_change.c.row_id).where(
            import_change.c.batch_id == batch_id,
            import_change.c.table_name == parent_name,
            import_change.c.action == "insert",
        )
        for child in schema.metadata.sorted_tables:
            for fk in child.foreign_keys:
                if fk.column.table.name != parent_name:
                    continue
                col = fk.parent
                own = select(import_change.c.row_id).where(
                    import_change.c.batch_id == batch_id,
                    import_change.c.table_name == child.name,
                    import_change.c.action == "insert",
                )
                cond = and_(col.in_(parent_ids), child.c.id.not_in(own)) if "id" in child.c else col.in_(parent_ids)
                if "import_batch_id" in child.c:
                    q = select(child.c.import_batch_id, func.count()).where(cond).group_by(child.c.import_batch_id)
                    for other_batch, n in conn.execute(q):
                        src = f"batch {other_batch}" if other_batch is not None else "data entered outside imports"
                        reasons.append(
                            f"{n} {child.name} row(s) from {src} refer to {parent_name} rows "
                            f"this batch inserted (column {col.name})"
                        )
                else:
                    n = conn.execute(select(func.count()).select_from(child).where(cond)).scalar()
                    if n:
                        reasons.append(
                            f"{n} {child.name} row(s) refer to {parent_name} rows this batch inserted "
                            f"(column {col.name})"
                        )
    return reasons


def revert_batch(engine: Engine, batch_id: int, user: str) -> dict:
    """Undo a batch in one transaction: delete its inserts, restore the rows it updated.

    Refuses (RevertRefused, nothing changed) when the batch is unknown, already
    reverted, or when later data depends on its rows.
    """
    with engine.begin() as conn:
        row = conn.execute(select(import_batch).where(import_batch.c.id == batch_id)).mappings().first()
        if row is None:
            raise RevertRefused(f"There is no import batch {batch_id}.")
        if row["status"] == "reverted":
            raise RevertRefused(
                f"Batch {batch_id} was already reverted on {row['reverted_at']:%Y-%m-%d %H:%M} by {row['reverted_by']}."
            )
        reasons = revert_blockers(conn, batch_id)
        if reasons:
            raise RevertRefused(
                f"Batch {batch_id} ({row['file_name']}) cannot be reverted: " + "; ".join(reasons) + "."
            )
        changes = conn.execute(
            select(
                import_change.c.table_name, import_change.c.row_id, import_change.c.action, import_change.c.before_json
            )
            .where(import_change.c.batch_id == batch_id)
            .order_by(import_change.c.id.desc())
        ).all()
        tables = {t.name: t for t in schema.metadata.sorted_tables}
        restored = 0
        groups: dict[tuple[str, tuple[str, ...]], list[dict]] = {}
        for table_name, row_id, action, before in changes:  # newest change first
            if action != "update":
                continue
            table = tables[table_name]
            prior = json.loads(before or "{}")
            values = {c: _restore_value(table.c[c], v) for c, v in prior.items() if c in table.c}
            groups.setdefault((table_name, tuple(sorted(values))), []).append(
                {"_row_id": row_id, **{"_v_" + c: v for c, v in values.items()}}
            )
            restored += 1
        for (table_name, cols), params in groups.items():  # one executemany per table and column set
            table = tables[table_name]
            stmt = (
                table.update().where(table.c.id == bindparam("_row_id")).values({c: bindparam("_v_" + c) for c in cols})
            )
            for i in range(0, len(params), WRITE_CHUNK):
                conn.execute(stmt, params[i : i + WRITE_CHUNK])
        deleted = 0
        # Children before parents, so foreign keys hold at every statement.
        for table in reversed(schema.metadata.sorted_tables):
            if "id" not in table.c or table.name in ("import_batch", "import_change"):
                continue
            ids = select(import_change.c.row_id).where(
                import_change.c.batch_id == batch_id,
                import_change.c.table_name == table.name,
                import_change.c.action == "insert",
            )
            if table.name == "claim":  # replacement claims point at originals of the same batch
                conn.execute(table.update().where(table.c.id.in_(ids)).values(original_claim_id=None))
            deleted += conn.execute(table.delete().where(table.c.id.in_(ids))).rowcount or 0
        conn.execute(
            import_batch.update()
            .where(import_batch.c.id == batch_id)
            .values(status="reverted", reverted_at=dt.datetime.now(), reverted_by=user[:64])
        )
        pm_store.record_write(conn)
    pm_store.vacuum(engine)
    return {"batch_id": batch_id, "deleted": deleted, "restored": restored}
