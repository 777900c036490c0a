"""Fast, dialect-aware bulk loading of column arrays into the schema tables.

The generator builds each table as ``{column: numpy array}``; row-by-row ORM
inserts would take an hour at 50,000 patients x 36 months.  So:

* SQLite: one ``executemany`` per chunk on the raw DBAPI cursor, with values
  already in the exact text forms SQLAlchemy's SQLite types write
  (``YYYY-MM-DD`` and ``YYYY-MM-DD HH:MM:SS.ffffff``), so rows written here and
  rows written later through SQLAlchemy compare and sort alike.
* PostgreSQL: ``COPY ... FROM STDIN (FORMAT csv)`` through psycopg.
* Anything else: SQLAlchemy ``executemany`` with Python objects.

All paths write on the caller's connection, inside its transaction, so a
failure leaves nothing half-written.

Column value conventions: Date = ``datetime64[D]`` (NaT = NULL), DateTime =
``datetime64[m|s]`` (NaT = NULL), Boolean = bool array, Integer = int array
(or float array with NaN = NULL), Numeric = float array (NaN = NULL),
String/Text = list or object array (None = NULL).
"""

from __future__ import annotations

import io
from collections.abc import Mapping, Sequence

import numpy as np
import pandas as pd
from sqlalchemy import Boolean, Date, DateTime, Integer, Numeric, Table, func, select, text
from sqlalchemy.engine import Connection

CHUNK_ROWS = 200_000


def _kind(table: Table, name: str) -> str:
    t = table.c[name].type
    if isinstance(t, DateTime):
        return "datetime"
    if isinstance(t, Date):
        return "date"
    if isinstance(t, Boolean):
        return "bool"
    if isinstance(t, Integer):
        return "int"
    if isinstance(t, Numeric):
        return "numeric"
    return "str"


def _date_strings(a: np.ndarray) -> list:
    s = np.datetime_as_string(np.asarray(a).astype("datetime64[D]"), unit="D").tolist()
    if np.isnat(a).any():
        s = [None if x == "NaT" else x for x in s]
    return s


def _datetime_strings(a: np.ndarray, suffix: str) -> list:
    s = np.datetime_as_string(np.asarray(a).astype("datetime64[s]"), unit="s").tolist()
    return [None if x == "NaT" else x[:10] + " " + x[11:] + suffix for x in s]


def _nullable_ints(a: np.ndarray) -> list:
    a = np.asarray(a)
    if a.dtype.kind == "f":
        nan = np.isnan(a)
        vals = np.where(nan, 0, a).astype(np.int64).tolist()
        if nan.any():
            return [None if m else v for v, m in zip(vals, nan.tolist())]
        return vals
    if a.dtype == object:
        return [None if v is None else int(v) for v in a]
    return a.astype(np.int64).tolist()


def _numerics(a: np.ndarray) -> list:
    a = np.round(np.asarray(a, dtype=float), 2)
    nan = np.isnan(a)
    vals = a.tolist()
    if nan.any():
        return [None if m else v for v, m in zip(vals, nan.tolist())]
    return vals


def _strings(a) -> list:
    if isinstance(a, np.ndarray):
        return a.tolist()
    return list(a)


def _sqlite_columns(table: Table, cols: Mapping[str, object]) -> list[list]:
    out = []
    for name, a in cols.items():
        kind = _kind(table, name)
        if kind == "date":
            out.append(_date_strings(a))
        elif kind == "datetime":
            out.append(_datetime_strings(a, ".000000"))
        elif kind == "bool":
            out.append(np.asarray(a).astype(np.int64).tolist())
        elif kind == "int":
            out.append(_nullable_ints(a))
        elif kind == "numeric":
            out.append(_numerics(a))
        else:
            out.append(_strings(a))
    return out


def _csv_frame(table: Table, cols: Mapping[str, object]) -> pd.DataFrame:
    data = {}
    for name, a in cols.items():
        kind = _kind(table, name)
        if kind == "date":
            data[name] = _date_strings(a)
        elif kind == "datetime":
            data[name] = _datetime_strings(a, "")
        elif kind == "bool":
            data[name] = np.where(np.asarray(a), "t", "f")
        elif kind == "int":
            arr = np.asarray(a)
            if arr.dtype.kind == "f" or arr.dtype == object:
                data[name] = pd.array(_nullable_ints(arr), dtype="Int64")
            else:
                data[name] = arr.astype(np.int64)
        elif kind == "numeric":
            data[name] = [None if v is None else f"{v:.2f}" for v in _numerics(a)]
        else:
            data[name] = _strings(a)
    return pd.DataFrame(data)


def _python_rows(table: Table, cols: Mapping[str, object]) -> list[dict]:
    lists = {}
    for name, a in cols.items():
        kind = _kind(table, name)
        if kind in ("date", "datetime"):
            unit = "D" if kind == "date" else "us"
            lists[name] = np.asarray(a).astype(f"datetime64[{unit}]").tolist()
        elif kind == "bool":
            lists[name] = [bool(v) for v in np.asarray(a).tolist()]
        elif kind == "int":
            lists[name] = _nullable_ints(a)
        elif kind == "numeric":
            lists[name] = _numerics(a)
        else:
            lists[name] = _strings(a)
    names = list(lists)
    return [dict(zip(names, row)) for row in zip(*lists.values())]


def insert_columns(conn: Connection, table: Table, cols: Mapping[str, object]) -> int:
    """Insert the rows given column-wise; returns the number of rows written."""
    names = list(cols)
    if not names:
        return 0
    n = len(cols[names[0]])
    for name in names:
        if len(cols[name]) != n:
            raise ValueError(f"{table.name}.{name}: {len(cols[name])} values, expected {n}")
    if n == 0:
        return 0
    dialect = conn.dialect.name
    quoted = ", ".join(f'"{c}"' for c in names)
    for start in range(0, n, CHUNK_ROWS):
        part = {k: v[start : start + CHUNK_ROWS] for k, v in cols.items()}
        if dialect == "sqlite":
            lists = _sqlite_columns(table, part)
            marks = ", ".join("?" for _ in names)
            cur = conn.connection.dbapi_connection.cursor()
            try:
                cur.executemany(f'INSERT INTO "{table.name}" ({quoted}) VALUES ({marks})', zip(*lists))
            finally:
                cur.close()
        elif dialect == "postgresql":
            buf = io.StringIO()
            _csv_frame(table, part).to_csv(buf, index=False, header=False, na_rep="")
            cur = conn.connection.dbapi_connection.cursor()
            try:
                with cur.copy(f'COPY "{table.name}" ({quoted}) FROM STDIN (FORMAT csv)') as cp:
                    cp.write(buf.getvalue())
            finally:
                cur.close()
        else:  # pragma: no cover - other dialects are not supported by the app, kept as a safe fallback
            conn.execute(table.insert(), _python_rows(table, part))
    return n


def suspend_foreign_keys(conn: Connection, tables: Sequence[Table]) -> list[tuple[str, str, str]]:
    """PostgreSQL: drop the foreign keys of ``tables`` for the load; returns what ``restore_foreign_keys`` re-adds.

    A COPY into a table with foreign keys runs one trigger lookup per row and
    key (millions at the 50,000-patient size); re-adding the constraint after
    the load validates every row in one join instead, still inside the same
    transaction, so nothing unchecked is ever committed.  Elsewhere a no-op.
    """
    if conn.dialect.name != "postgresql" or not tables:
        return []
    rows = conn.execute(
        text(
            "SELECT c.conname, t.relname, pg_get_constraintdef(c.oid) FROM pg_constraint c "
            "JOIN pg_class t ON t.oid = c.conrelid JOIN pg_namespace n ON n.oid = t.relnamespace "
            "WHERE c.contype = 'f' AND n.nspname = current_schema() AND t.relname = ANY(:names) "
            "ORDER BY t.relname, c.conname"
        ),
        {"names": [t.name for t in tables]},
    ).all()
    saved = [(r[0], r[1], r[2]) for r in rows]
    try:
        with conn.begin_nested():
            for name, table, _ in saved:
                conn.exec_driver_sql(f'ALTER TABLE "{table}" DROP CONSTRAINT "{name}"')
    except Exception:  # no right to alter the tables: load with the constraints in place (slower, same result)
        return []
    return saved


def restore_foreign_keys(conn: Connection, saved: list[tuple[str, str, str]]) -> None:
    for name, table, definition in saved:
        conn.exec_driver_sql(f'ALTER TABLE "{table}" ADD CONSTRAINT "{name}" {definition}')


def reset_sequences(conn: Connection, tables: Sequence[Table]) -> None:
    """After explicit ids on PostgreSQL, move each ``id`` sequence past the highest id (later imports insert)."""
    if conn.dialect.name != "postgresql":
        return
    for t in tables:
        if "id" not in t.c:
            continue
        top = conn.execute(select(func.max(t.c.id))).scalar()
        conn.execute(
            text("SELECT setval(pg_get_serial_sequence(:t, 'id'), :v, :called)"),
            {"t": t.name, "v": int(top or 1), "called": top is not None},
        )


def analyze(conn: Connection) -> None:
    """Refresh planner statistics after a bulk load (cheap, bounded on SQLite)."""
    if conn.dialect.name == "sqlite":
        conn.exec_driver_sql("PRAGMA analysis_limit=1000")
        conn.exec_driver_sql("ANALYZE")
    elif conn.dialect.name == "postgresql":
        conn.exec_driver_sql("ANALYZE")
