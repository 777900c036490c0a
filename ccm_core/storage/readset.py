"""Which tables a computation read, so a cache can keep its result until one of them is written.

Why this is sound: every KPI is a deterministic function of what its queries return.  If none of the
tables a computation read has been written since, running it again would issue the same queries, get
the same rows at every step (even where the next query depends on the last one's answer) and return the
same result.  So a result keyed on the last write to the tables it read is never stale, and an import of
remittances leaves, for example, the enrollment figures cached.

The read set is taken from the SQL text each statement sends (any known table name in it counts, which
can only over-state it), and a stored table (``pm_store``) stands for the tables it is built from,
because it is rebuilt in the transaction of every write to them.  Writers record what they changed with
``pm_store.record_write(conn, scope)`` (tests/write_guard.py fails a test whose core code does not).
"""

from __future__ import annotations

import contextlib
import re
import threading
from collections.abc import Iterator
from functools import lru_cache

from sqlalchemy import event

from ccm_core.storage import schema as s
from ccm_core.storage import stored as pm_store

_local = threading.local()


@lru_cache(maxsize=1)
def _pattern() -> re.Pattern:
    names = set(s.metadata.tables) | set(pm_store.source_tables())
    return re.compile(r"\b(" + "|".join(sorted(names, key=len, reverse=True)) + r")\b")


def _on_statement(conn, cursor, statement, parameters, context, executemany) -> None:
    found = getattr(_local, "tables", None)
    if found is not None:
        found.update(_pattern().findall(statement))


def watch(engine) -> None:
    """Record statements run through ``engine`` (once per engine; cheap when nothing is reading)."""
    if not event.contains(engine, "before_cursor_execute", _on_statement):
        event.listen(engine, "before_cursor_execute", _on_statement)


@contextlib.contextmanager
def reading() -> Iterator[set[str]]:
    """Collect the tables read on this thread inside the block (through watched engines)."""
    outer = getattr(_local, "tables", None)
    _local.tables = found = set()
    try:
        yield found
    finally:
        _local.tables = outer
        if outer is not None:
            outer.update(found)


def depends_on(tables: set[str]) -> frozenset[str]:
    """The tables whose writes can change a result that read ``tables`` (stored tables -> their sources)."""
    sources = pm_store.source_tables()
    out = set(tables)
    for t in tables:
        out |= sources.get(t, frozenset())
    return frozenset(out)
