"""Fails a test whose ``ccm_core`` code writes a table without recording it (``pm_store.record_write``).

The cache story rests on one rule: every transaction that changes a table also records it, so the
table's version moves and exactly the cached results that read it are recomputed.  This guard watches
every statement an engine runs; per transaction it collects the tables written by ``ccm_core`` code
(test builders are setup, not write paths) and the tables the recorder recorded (its ``table_version.*``
rows), and at commit reports any written table that was not recorded.  Exempt: ``db.UNCACHED_TABLES``
(never read by a cached result), the stored tables (derived from recorded tables) and the recorder's
own bookkeeping (``data_version``, ``setting`` rows ``table_version.*`` and ``pm_store.state``).
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

from sqlalchemy import event

from ccm_core.storage import db
from ccm_core.storage import stored as pm_store

ROOT = Path(__file__).resolve().parent.parent
CORE = str(ROOT / "ccm_core")
DML = re.compile(r'^\s*(?:INSERT\s+INTO|UPDATE|DELETE\s+FROM)\s+"?(\w+)"?', re.IGNORECASE)
KEY_LIKE = re.compile(r"[A-Za-z0-9_.:*|-]+")  # a setting key (values such as the store state are JSON)
BOOKKEEPING_KEYS = (db.TABLE_VERSION_PREFIX, pm_store.STATE_KEY)
STORED = frozenset(pm_store.source_tables())
EXEMPT = db.UNCACHED_TABLES | STORED | {"data_version"}


def _strings(parameters) -> list[str]:
    out: list[str] = []
    stack = [parameters]
    while stack:
        p = stack.pop()
        if isinstance(p, str):
            out.append(p)
        elif isinstance(p, dict):
            stack.extend(p.values())
        elif isinstance(p, (list, tuple)):
            stack.extend(p)
    return out


def _core_caller() -> str | None:
    """``file:line`` of the ccm_core frame that issued the statement, None when it came from elsewhere."""
    frame = sys._getframe(2)
    while frame is not None:
        name = frame.f_code.co_filename
        if name.startswith(CORE):
            return f"{Path(name).relative_to(ROOT)}:{frame.f_lineno}"
        if name.startswith(str(ROOT / "tests")) and not name.endswith("write_guard.py"):
            return None
        frame = frame.f_back
    return None


class WriteGuard:
    def __init__(self) -> None:
        self.violations: list[str] = []
        self._tx: dict[int, tuple[dict[str, str], set[str]]] = {}

    def attach(self, engine) -> None:
        event.listen(engine, "before_cursor_execute", self._statement)
        event.listen(engine, "commit", self._commit)
        event.listen(engine, "rollback", self._forget)

    def detach(self, engine) -> None:
        event.remove(engine, "before_cursor_execute", self._statement)
        event.remove(engine, "commit", self._commit)
        event.remove(engine, "rollback", self._forget)

    def _statement(self, conn, cursor, statement, parameters, context, executemany) -> None:
        m = DML.match(statement)
        if not m:
            return
        table = m.group(1).lower()
        written, recorded = self._tx.setdefault(id(conn), ({}, set()))
        if table == "setting":
            keys = [v for v in _strings(parameters) if v.startswith(BOOKKEEPING_KEYS)]
            recorded.update(k[len(db.TABLE_VERSION_PREFIX) :] for k in keys if k.startswith(db.TABLE_VERSION_PREFIX))
            others = [v for v in _strings(parameters) if KEY_LIKE.fullmatch(v) and ("." in v or ":" in v)]
            if keys and len(keys) == len(others):
                return  # the recorder's own rows
        if table in EXEMPT:
            return
        where = _core_caller()
        if where is not None:
            written.setdefault(table, where)

    def _commit(self, conn) -> None:
        written, recorded = self._tx.pop(id(conn), ({}, set()))
        if db.ALL_TABLES in recorded:
            return
        for table, where in sorted(written.items()):
            if table not in recorded:
                self.violations.append(
                    f"{where} wrote {table!r} without pm_store.record_write(conn, "
                    f"pm_store.Scope.for_tables({{{table!r}}})) in the same transaction"
                )

    def _forget(self, conn) -> None:
        self._tx.pop(id(conn), None)
