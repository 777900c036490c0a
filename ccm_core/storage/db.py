"""Database URL resolution, engine creation, migrations and the data version.

One code path for both databases: the app and the CLI ask ``database_url()``
which URL to use (``CCM_DATABASE_URL``, else ``.streamlit/secrets.toml``
``[database] url``, else the embedded SQLite file ``data/ccm.db``).
"""

from __future__ import annotations

import datetime as dt
import os
import tomllib
from collections.abc import Iterable
from pathlib import Path

from sqlalchemy import Engine, create_engine, delete, event, insert, select, update
from sqlalchemy.engine import Connection, make_url

from ccm_core.storage import schema

ROOT = Path(__file__).resolve().parent.parent.parent
DEFAULT_SQLITE_PATH = ROOT / "data" / "ccm.db"
SECRETS_PATH = ROOT / ".streamlit" / "secrets.toml"


def database_url() -> str:
    """The URL the app and CLI use when none is given explicitly."""
    env = os.environ.get("CCM_DATABASE_URL")
    if env:
        return normalize_url(env)
    if SECRETS_PATH.exists():
        try:
            with SECRETS_PATH.open("rb") as fh:
                url = tomllib.load(fh).get("database", {}).get("url")
        except (OSError, tomllib.TOMLDecodeError):
            url = None
        if url:
            return normalize_url(url)
    return f"sqlite:///{DEFAULT_SQLITE_PATH}"


def normalize_url(url: str) -> str:
    """Accept plain ``postgresql://`` URLs and use the psycopg 3 driver for them."""
    if url.startswith("postgres://"):
        url = "postgresql://" + url[len("postgres://") :]
    if url.startswith("postgresql://"):
        url = "postgresql+psycopg://" + url[len("postgresql://") :]
    return url


def is_sqlite(engine_or_conn: Engine | Connection) -> bool:
    return engine_or_conn.dialect.name == "sqlite"


def make_engine(url: str | None = None, **kw) -> Engine:
    """Create an engine; SQLite gets foreign keys on, WAL and a busy timeout.

    In-memory SQLite is refused: Streamlit runs scripts on several threads and
    each would see its own empty database.
    """
    url = normalize_url(url or database_url())
    u = make_url(url)
    if u.get_backend_name() == "sqlite":
        if u.database in (None, "", ":memory:"):
            raise ValueError("In-memory SQLite is not supported; give a file path (sqlite:///path/to.db).")
        if u.database.startswith("file:"):
            # An SQLite URI filename (sqlite:///file:/path/to.db?mode=ro&uri=true): opened as a URI, and
            # no folder is ever made from it (the text after "file:" is not a plain path).
            path = u.database[len("file:") :]
            if path in ("", ":memory:") or u.query.get("mode") == "memory":
                raise ValueError("In-memory SQLite is not supported; give a file path (sqlite:///path/to.db).")
            if u.query.get("uri") is None:
                u = u.update_query_dict({"uri": "true"})
                url = u.render_as_string(hide_password=False)
        else:
            Path(u.database).parent.mkdir(parents=True, exist_ok=True)
        engine = create_engine(url, connect_args={"timeout": 30, "check_same_thread": False}, **kw)

        @event.listens_for(engine, "connect")
        def _pragmas(dbapi_conn, _record):  # pragma: no cover - trivial
            cur = dbapi_conn.cursor()
            cur.execute("PRAGMA foreign_keys=ON")
            cur.execute("PRAGMA journal_mode=WAL")
            cur.execute("PRAGMA synchronous=NORMAL")
            cur.close()

        return engine
    # PostgreSQL's JIT spends seconds compiling our wide analytic statements and
    # saves nothing at this data size: switch it off for every connection.
    kw.setdefault("connect_args", {"options": "-c jit=off"})
    kw.setdefault("pool_pre_ping", True)
    kw.setdefault("pool_size", 10)
    kw.setdefault("max_overflow", 20)
    return create_engine(url, **kw)


def alembic_config(url: str):
    from alembic.config import Config

    cfg = Config()
    cfg.set_main_option("script_location", str(Path(__file__).parent / "migrations"))
    cfg.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    return cfg


def upgrade(engine: Engine) -> None:
    """Bring the schema to the newest Alembic revision (creates it on an empty database)."""
    from alembic import command

    cfg = alembic_config(engine.url.render_as_string(hide_password=False))
    with engine.begin() as conn:
        cfg.attributes["connection"] = conn
        command.upgrade(cfg, "head")
    with engine.begin() as conn:
        if conn.execute(select(schema.data_version.c.id)).first() is None:
            conn.execute(schema.data_version.insert().values(id=1, version=0, updated_at=dt.datetime.now()))


def has_schema(engine: Engine) -> bool:
    from sqlalchemy import inspect

    return inspect(engine).has_table("data_version")


def get_data_version(conn: Connection) -> int:
    v = conn.execute(select(schema.data_version.c.version).where(schema.data_version.c.id == 1)).scalar()
    return int(v or 0)


TABLE_VERSION_PREFIX = "table_version."
ALL_TABLES = "*"
# Tables written on every sign-in or page view, or by the result cache itself (storage.shared_results), and
# never read by a cached result (the app's cache refuses to keep a result that read them), so their writes
# need no version: see pm_store.record_write.
UNCACHED_TABLES = frozenset({"app_user", "user_session", "access_log", "result_cache"})


def bump_data_version(conn: Connection, tables: Iterable[str] | None = None) -> int:
    """Call inside the transaction that changed data; caches keyed on it go stale exactly then.

    ``tables`` names what the write changed; the new version is recorded for them (``table_versions``)
    so a cache can keep results that read none of them.  None = anything may have changed."""
    conn.execute(
        update(schema.data_version)
        .where(schema.data_version.c.id == 1)
        .values(version=schema.data_version.c.version + 1, updated_at=dt.datetime.now())
    )
    version = get_data_version(conn)
    st = schema.setting
    names = [ALL_TABLES] if tables is None else sorted(set(tables))
    if (
        tables is not None
        and conn.execute(select(st.c.key).where(st.c.key == TABLE_VERSION_PREFIX + ALL_TABLES)).first() is None
    ):
        names.append(ALL_TABLES)  # a database written before per-table versions: start from here
    keys = [TABLE_VERSION_PREFIX + n for n in names]
    if keys:
        conn.execute(delete(st).where(st.c.key.in_(keys)))
        conn.execute(insert(st), [{"key": k, "value": str(version)} for k in keys])
    return version


def table_versions(conn: Connection) -> dict[str, int]:
    """Table name -> data version of the last write that changed it ("*" = the last write of anything)."""
    st = schema.setting
    rows = conn.execute(select(st.c.key, st.c.value).where(st.c.key.like(TABLE_VERSION_PREFIX + "%"))).all()
    return {k[len(TABLE_VERSION_PREFIX) :]: int(v) for k, v in rows}


def version_of(tables: Iterable[str], versions: dict[str, int]) -> int:
    """The data version a result that read ``tables`` depends on: the last write to any of them, or of
    everything."""
    return max([versions.get(ALL_TABLES, 0), *(versions.get(t, 0) for t in tables)])


def month_int(d: dt.date) -> int:
    """``date(2025, 11, 3)`` -> ``202511``: the integer month key used across the schema."""
    return d.year * 100 + d.month


def month_bounds(month: int) -> tuple[dt.date, dt.date]:
    """First and last calendar day of a ``YYYYMM`` month."""
    y, m = divmod(month, 100)
    first = dt.date(y, m, 1)
    nxt = dt.date(y + (m == 12), m % 12 + 1, 1)
    return first, nxt - dt.timedelta(days=1)


def month_end(month: int) -> dt.date:
    """The last day of ``month`` (YYYYMM)."""
    return month_bounds(month)[1]


def add_months(month: int, n: int) -> int:
    y, m = divmod(month, 100)
    idx = y * 12 + (m - 1) + n
    return (idx // 12) * 100 + idx % 12 + 1


def parse_month(text: str) -> int:
    """``"2025-11"`` -> ``202511``; raises ValueError with a readable message."""
    try:
        y, m = text.strip().split("-")
        y, m = int(y), int(m)
        if not (1 <= m <= 12 and 1900 < y < 3000):
            raise ValueError
    except ValueError:
        raise ValueError(f"Month must look like YYYY-MM, got {text!r}") from None
    return y * 100 + m


def format_month(month: int) -> str:
    return f"{month // 100:04d}-{month % 100:02d}"
