"""Results one app process computed, kept in the database for every other process on it.

Why: each process keeps its results in memory (``ui.cache``), so behind a proxy with N processes a
filter set was computed N times, and a new replica met every view cold.  Here a computed result is also
written to ``result_cache``, keyed by a digest of (the core's code, function, arguments), with the tables the
computation read and the data version it was computed at; a process that misses in memory reads it
here before computing.  Validity is the in-memory rule: a row is used only while no table it read has
been written since (``db.version_of``), so an import through any replica makes it stale everywhere.

Values are pickled, so every row carries an HMAC-SHA256 of its payload under a key only the app's
processes hold (derived from the secret cookie key): a row the app did not write, or one changed in
the database, is ignored, never unpickled.  Rows older than the cache's time limit are deleted by the
next write.  Writes never wait: on PostgreSQL they give up after a short lock timeout; SQLite (one
process on one host, where a write would queue behind an import) does not use the table unless
``CCM_SHARED_RESULTS=1`` (``=0`` turns it off everywhere).
"""

from __future__ import annotations

import datetime as dt
import functools
import hashlib
import hmac
import json
import logging
import os
import pickle
from pathlib import Path
from typing import Any

from sqlalchemy import delete, insert, select, text
from sqlalchemy.engine import Engine
from sqlalchemy.exc import SQLAlchemyError

import ccm_core
from ccm_core.storage import db, schema

log = logging.getLogger(__name__)

TABLE = "result_cache"
MAX_BYTES = 8 * 1024 * 1024  # larger results (whole patient lists) stay in the computing process only
FORMAT = 1  # bump when what a row holds changes meaning


def enabled(engine: Engine) -> bool:
    """On for PostgreSQL, off for SQLite; ``CCM_SHARED_RESULTS`` = 0 or 1 decides instead when set."""
    flag = os.environ.get("CCM_SHARED_RESULTS", "").strip()
    if flag in ("0", "1"):
        return flag == "1"
    return engine.dialect.name == "postgresql"


def signing_key(secret: str) -> bytes:
    """The key rows are signed with: derived from the app's secret, never stored."""
    return hmac.new(secret.encode(), b"ccm result cache v1", hashlib.sha256).digest()


@functools.cache
def code_fingerprint() -> str:
    """A digest of the core's code and rule files: processes running different code never share a result
    (a rolling upgrade), and a changed definition is a cache miss, never a stale number."""
    root = Path(ccm_core.__file__).parent
    h = hashlib.sha256()
    for path in sorted(p for p in root.rglob("*") if p.suffix in (".py", ".csv", ".json") and p.is_file()):
        h.update(str(path.relative_to(root)).encode() + b"\0" + path.read_bytes() + b"\0")
    return h.hexdigest()


def digest(call: str, args_json: Any) -> str:
    """The row key of one call: code, function and arguments (plain JSON, sorted), hashed."""
    body = json.dumps([FORMAT, code_fingerprint(), call, args_json], sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(body.encode()).hexdigest()


def _mac(key: bytes, call_digest: str, reads: str, version: int, payload: bytes) -> str:
    head = f"{call_digest}|{reads}|{version}|".encode()
    return hmac.new(key, head + payload, hashlib.sha256).hexdigest()


def fetch(
    engine: Engine, key: bytes, call_digest: str, versions: dict[str, int], ttl: float
) -> tuple[Any, frozenset[str]] | None:
    """(value, tables it read) when a current, authentic row exists; None otherwise (or on a database error)."""
    t = schema.result_cache
    try:
        with engine.connect() as conn:
            row = conn.execute(
                select(t.c.reads, t.c.version, t.c.payload, t.c.mac, t.c.created_at).where(
                    t.c.call_digest == call_digest
                )
            ).first()
    except SQLAlchemyError as exc:
        log.warning("shared result cache not read: %s", exc)
        return None
    if row is None or row.created_at < _now() - dt.timedelta(seconds=ttl):
        return None
    if not hmac.compare_digest(row.mac, _mac(key, call_digest, row.reads, row.version, row.payload)):
        log.warning("shared result cache row %s failed its signature check: ignored", call_digest[:12])
        return None
    reads = frozenset(json.loads(row.reads))
    if db.version_of(reads, versions) != row.version:
        return None
    return pickle.loads(row.payload), reads  # noqa: S301 - signed by this app (checked above)


def store(
    engine: Engine, key: bytes, call_digest: str, value: Any, reads: frozenset[str], version: int, ttl: float
) -> bool:
    """Write (or replace) the row for one call; False when it was too large or the database was busy."""
    payload = pickle.dumps(value, protocol=pickle.HIGHEST_PROTOCOL)
    if len(payload) > MAX_BYTES:
        return False
    reads_json = json.dumps(sorted(reads))
    t = schema.result_cache
    now = _now()
    try:
        with engine.begin() as conn:
            if conn.dialect.name == "postgresql":
                conn.execute(text("SET LOCAL lock_timeout = '2s'"))
            conn.execute(
                delete(t).where((t.c.call_digest == call_digest) | (t.c.created_at < now - dt.timedelta(seconds=ttl)))
            )
            conn.execute(
                insert(t).values(
                    call_digest=call_digest,
                    reads=reads_json,
                    version=version,
                    payload=payload,
                    mac=_mac(key, call_digest, reads_json, version, payload),
                    created_at=now,
                )
            )
    except SQLAlchemyError as exc:  # a concurrent writer of the same row, a lock held by an import: skip
        log.info("shared result cache not written: %s", exc.__class__.__name__)
        return False
    return True


def clear(engine: Engine) -> None:
    """Forget every shared result (the benchmark's cold runs and tests)."""
    with engine.begin() as conn:
        conn.execute(delete(schema.result_cache))


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC).replace(tzinfo=None)
