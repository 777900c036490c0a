"""One shared database engine and a result cache that an import invalidates.

``cached(fn, *args)`` keys on the function, its arguments (Filters is
hashable) and the database's data version, so pages never show numbers from
before an import and never recompute without one.  Only small results (KPI
values, aggregated frames) belong here; the database does the aggregation.
"""
from __future__ import annotations

from typing import Any, Callable

import streamlit as st

from ccm_core import db

from ._run import run_scope

CACHE_TTL_SECONDS = 15 * 60


class DatabaseNotReady(RuntimeError):
    """The database exists but has no schema: the user needs a setup command, not a traceback."""


@st.cache_resource(show_spinner=False)
def _engine_for(url: str):
    engine = db.make_engine(url)
    if not db.has_schema(engine):
        engine.dispose()
        raise DatabaseNotReady(
            "The database has no tables yet. Run `python -m ccm_core init-db --demo-if-empty` "
            "(or `make run`, which does it for you), then reload this page.")
    return engine


def database_url() -> str:
    return db.database_url()


def get_engine():
    """The one Engine for this app process and database URL (never in-memory SQLite)."""
    return _engine_for(database_url())


def data_version() -> int:
    """Read once per run: every cached() call in the run shares it."""
    scope = run_scope()
    if "data_version" not in scope:
        with get_engine().connect() as conn:
            scope["data_version"] = db.get_data_version(conn)
    return scope["data_version"]


@st.cache_data(ttl=CACHE_TTL_SECONDS, max_entries=2000, show_spinner=False)
def _cached_call(fn_key: str, url: str, version: int, args: tuple, kwargs: tuple, _fn: Callable) -> Any:
    with _engine_for(url).connect() as conn:
        return _fn(conn, *args, **dict(kwargs))


def cached(fn: Callable, *args, **kwargs) -> Any:
    """Run ``fn(conn, *args, **kwargs)`` once per (function, arguments, data version)."""
    fn_key = f"{getattr(fn, '__module__', '?')}.{getattr(fn, '__qualname__', repr(fn))}"
    return _cached_call(fn_key, database_url(), data_version(), tuple(args), tuple(sorted(kwargs.items())), _fn=fn)
