"""One shared database engine and a result cache that a write invalidates exactly where it matters.

The cache story, in two sentences: every write goes through ``pm_store.record_write`` in its own
transaction, which gives the tables it changed a new data version; ``cached(fn, *args)`` keeps a result
per function, arguments and the versions of the tables that computation read (``ccm_core.storage.readset``), so
it is recomputed exactly when one of those tables has been written since.  Results that read a table
written without a version (``db.UNCACHED_TABLES``: sign-ins, the access log) are never kept.

Why per table (measured at demo scale, 1,500 patients x 18 months, KPI work of the next render of each
page after an import, per-table vs any-write invalidation): time entries 2.9 s vs 3.9 s over the five
data pages, remittances 3.0 vs 3.9, diagnoses or visits 0.8 vs 3.9 (the Overview keeps all its tiles).
Several processes on one database share what each computed through the database
(``ccm_core.storage.shared_results``, on PostgreSQL): a miss in memory looks there before computing.
The versions are read once per script run (``ui.run_scope``), not once per tile; until a call's tables are
known (its first computation in this process), the global data version is used.  Only small results
(KPI values, aggregated frames) belong here; the database does the aggregation.
"""

from __future__ import annotations

import copy
import functools
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import streamlit as st

from ccm_core.security import auth
from ccm_core.storage import db, readset, shared_results
from ui import warm
from ui.run_scope import run_scope

CACHE_TTL_SECONDS = 15 * 60


class DatabaseNotReady(RuntimeError):
    """The database exists but has no schema: the user needs a setup command, not a traceback."""


@st.cache_resource(show_spinner=False)
def _engine_for(url: str):
    engine = db.make_engine(url)
    readset.watch(engine)
    if not db.has_schema(engine):
        engine.dispose()
        raise DatabaseNotReady(
            "The database has no tables yet. Run `python -m ccm_core init-db --demo-if-empty` "
            "(or `make run`, which does it for you), then reload this page."
        )
    return engine


def database_url() -> str:
    return db.database_url()


def get_engine():
    """The one Engine for this app process and database URL (never in-memory SQLite); the first call
    also starts the process's warmer (``ui.warm``)."""
    url = database_url()
    engine = _engine_for(url)
    warm.ensure_started(url)
    return engine


def _versions() -> tuple[int, dict[str, int]]:
    """The data version and the per-table versions, read once per run (one query each)."""
    scope = run_scope()
    if "versions" not in scope:
        with get_engine().connect() as conn:
            scope["data_version"], scope["versions"] = _read_versions(conn)
    return scope["data_version"], scope["versions"]


def _read_versions(conn) -> tuple[int, dict[str, int]]:
    data_version = db.get_data_version(conn)
    versions = db.table_versions(conn)
    # Every write records the version it made for some table, so the newest of them is the data
    # version; when it is not (a database written before per-table versions, or by a writer that
    # did not say what it changed), every write counts.
    if db.ALL_TABLES not in versions or max(versions.values()) < data_version:
        versions = {db.ALL_TABLES: data_version}
    return data_version, versions


def read_versions(url: str) -> dict[str, int]:
    """The per-table versions now, outside a script run (the warmer's poll)."""
    with _engine_for(url).connect() as conn:
        return _read_versions(conn)[1]


@dataclass
class _Entry:
    value: Any
    reads: frozenset[str]  # the tables the computation read, and the tables they are built from
    version: int  # db.version_of(reads) when it was computed
    expires: float


class _ResultCache:
    """Results per (function, database, arguments), valid while no table they read has been written.

    Process-wide like ``st.cache_data`` (sessions share it), bounded (least recently used entries go
    first) and with a time limit; values are copied in and out so a page that changes a frame it was
    given cannot change what the next page gets."""

    def __init__(self, max_entries: int = 2000, ttl: float = CACHE_TTL_SECONDS):
        self.max_entries, self.ttl = max_entries, ttl
        self._items: OrderedDict[tuple, _Entry] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, key: tuple, versions: dict[str, int]) -> tuple[bool, Any]:
        with self._lock:
            entry = self._items.get(key)
            if entry is None:
                return False, None
            if entry.expires < time.monotonic() or db.version_of(entry.reads, versions) != entry.version:
                del self._items[key]
                return False, None
            self._items.move_to_end(key)
            value = entry.value
        return True, copy.deepcopy(value)

    def holds(self, key: tuple, versions: dict[str, int]) -> bool:
        with self._lock:
            entry = self._items.get(key)
            return (
                entry is not None
                and entry.expires >= time.monotonic()
                and db.version_of(entry.reads, versions) == entry.version
            )

    def put(self, key: tuple, value: Any, reads: frozenset[str], versions: dict[str, int]) -> None:
        entry = _Entry(copy.deepcopy(value), reads, db.version_of(reads, versions), time.monotonic() + self.ttl)
        with self._lock:
            self._items[key] = entry
            self._items.move_to_end(key)
            while len(self._items) > self.max_entries:
                self._items.popitem(last=False)

    def clear(self) -> None:
        with self._lock:
            self._items.clear()

    def __len__(self) -> int:
        return len(self._items)


_RESULTS = _ResultCache()


def clear_cache() -> None:
    """Forget every cached result, in this process and the shared copies in the database (tests and the
    benchmark's cold runs)."""
    _RESULTS.clear()
    for engine in _shared_engines.values():
        shared_results.clear(engine)


_shared_engines: dict[str, Any] = {}  # url -> engine, for the databases whose results are shared


@functools.cache
def _signing_key() -> bytes | None:
    secret = auth.configured_cookie_key()
    return shared_results.signing_key(secret) if secret else None


def _shared_digest(key: tuple, url: str) -> str | None:
    """The shared row key of a call, or None when it is not shared (off for this database, no secret, or
    arguments that are not plain values)."""
    engine = _engine_for(url)
    if not shared_results.enabled(engine) or _signing_key() is None:
        return None
    fn_key, _, args, kwargs = key
    try:
        args_json = [warm.encode(tuple(args)), {k: warm.encode(v) for k, v in kwargs}]
    except TypeError:
        return None
    _shared_engines[url] = engine
    return shared_results.digest(fn_key, args_json)


def call_key(fn: Callable, args: tuple, kwargs: dict, url: str | None = None) -> tuple:
    fn_key = f"{getattr(fn, '__module__', '?')}.{getattr(fn, '__qualname__', repr(fn))}"
    return (fn_key, url or database_url(), tuple(args), tuple(sorted(kwargs.items())))


def cached(fn: Callable, *args, **kwargs) -> Any:
    """Run ``fn(conn, *args, **kwargs)`` once per (function, arguments, last write to what it reads)."""
    url = database_url()
    key = call_key(fn, args, kwargs, url)
    warm.remember(key, fn, args, kwargs)
    _, versions = _versions()
    hit, value = _RESULTS.get(key, versions)
    if hit:
        return value
    return compute_into_cache(key, fn, args, kwargs, url, versions)


def is_cached(key: tuple, versions: dict[str, int]) -> bool:
    """A current result for ``key`` is held (the warmer's check; does not copy the value)."""
    return _RESULTS.holds(key, versions)


_inflight: dict[tuple, threading.Event] = {}
_inflight_lock = threading.Lock()


def compute_into_cache(key: tuple, fn: Callable, args: tuple, kwargs: dict, url: str, versions: dict[str, int]) -> Any:
    """Compute and cache ``key``, once however many sessions ask at the same moment: the first computes,
    the others wait for its result (twenty users opening a cold page cost one computation, not twenty)."""
    while True:
        with _inflight_lock:
            event = _inflight.get(key)
            owner = event is None
            if owner:
                event = _inflight[key] = threading.Event()
        if owner:
            break
        event.wait(timeout=600)
        hit, value = _RESULTS.get(key, versions)
        if hit:
            return value
        # the computation failed, or was made for other table versions: compute it here
    try:
        shared = _shared_digest(key, url)
        signing_key = _signing_key()
        if shared is not None and signing_key is not None:  # another process may have computed it already
            found = shared_results.fetch(_engine_for(url), signing_key, shared, versions, CACHE_TTL_SECONDS)
            if found is not None:
                value, reads = found
                _RESULTS.put(key, value, reads, versions)
                return value
        with readset.reading() as read, _engine_for(url).connect() as conn:
            value = fn(conn, *args, **kwargs)
        reads = readset.depends_on(read)
        if not reads & db.UNCACHED_TABLES:  # written without a version (sign-ins, the access log): never kept
            _RESULTS.put(key, value, reads, versions)
            if shared is not None and signing_key is not None:
                version = db.version_of(reads, versions)
                shared_results.store(_engine_for(url), signing_key, shared, value, reads, version, CACHE_TTL_SECONDS)
        return value
    finally:
        with _inflight_lock:
            _inflight.pop(key, None)
        event.set()
