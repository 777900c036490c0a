"""Shared fixtures: every database test runs on SQLite and, when
``CCM_TEST_PG_URL`` names a PostgreSQL server, on PostgreSQL too.

Each pytest process creates its own throwaway PostgreSQL databases (named
after the process id), so parallel workers and parallel developers never
share state; they are dropped at the end of the session.
"""

from __future__ import annotations

import os
import uuid

import pytest
from sqlalchemy import create_engine, text
from write_guard import WriteGuard

from ccm_core.storage import db, schema

# The repository's own cookie keys (test helpers) are accepted only under the test suite; servers the browser
# tests start inherit this (see ccm_core.security.auth.REPOSITORY_KEYS).
os.environ["CCM_TESTING"] = "1"

PG_ADMIN_URL = os.environ.get("CCM_TEST_PG_URL")
BACKENDS = ["sqlite"] + (["postgresql"] if PG_ADMIN_URL else [])

# Small, fast demo set shared (read-only) by KPI, audit and page tests.
DEMO_KW = dict(patients=300, months=6, seed=7, end_month=202510)


def _pg_admin():
    return create_engine(db.normalize_url(PG_ADMIN_URL), isolation_level="AUTOCOMMIT")


class _PgDatabases:
    def __init__(self):
        self.names: list[str] = []

    def create(self, label: str) -> str:
        name = f"ccmtest_{os.getpid()}_{label}_{uuid.uuid4().hex[:6]}"
        adm = _pg_admin()
        with adm.connect() as c:
            c.execute(text(f'CREATE DATABASE "{name}"'))
        adm.dispose()
        self.names.append(name)
        base = db.normalize_url(PG_ADMIN_URL)
        return base.rsplit("/", 1)[0] + "/" + name

    def drop_all(self):
        if not self.names:
            return
        adm = _pg_admin()
        with adm.connect() as c:
            for name in self.names:
                c.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        adm.dispose()


@pytest.fixture(scope="session")
def pg_databases():
    dbs = _PgDatabases()
    yield dbs
    dbs.drop_all()


def _init_schema(engine):
    schema.metadata.create_all(engine)
    with engine.begin() as c:
        if c.execute(text("SELECT count(*) FROM data_version")).scalar() == 0:
            c.execute(schema.data_version.insert().values(id=1, version=0))


@pytest.fixture(scope="session")
def _pg_scratch(pg_databases):
    if not PG_ADMIN_URL:
        return None
    eng = db.make_engine(pg_databases.create("scratch"))
    _init_schema(eng)
    yield eng
    eng.dispose()


@pytest.fixture(params=BACKENDS)
def backend(request) -> str:
    return request.param


@pytest.fixture
def engine(backend, tmp_path, request):
    """An empty database with the full schema, fresh for each test.  Any ``ccm_core`` write to it that is
    not recorded (``pm_store.record_write``) fails the test (tests/write_guard.py)."""
    guard = WriteGuard()
    if backend == "sqlite":
        eng = db.make_engine(f"sqlite:///{tmp_path / 'test.db'}")
        _init_schema(eng)
        guard.attach(eng)
        yield eng
        eng.dispose()
    else:
        eng = request.getfixturevalue("_pg_scratch")
        tables = ", ".join(f'"{t.name}"' for t in schema.metadata.sorted_tables)
        with eng.begin() as c:
            c.execute(text(f"TRUNCATE {tables} RESTART IDENTITY CASCADE"))
            c.execute(schema.data_version.insert().values(id=1, version=0))
        guard.attach(eng)
        yield eng
        guard.detach(eng)
    assert guard.violations == [], "writes outside the recorder:\n" + "\n".join(dict.fromkeys(guard.violations))


_demo_cache: dict[str, object] = {}


@pytest.fixture(scope="session")
def _demo_engines(tmp_path_factory, pg_databases):
    made: dict[str, object] = {}

    def get(kind: str):
        if kind in made:
            return made[kind]
        from ccm_core.io import demo

        if kind == "sqlite":
            url = f"sqlite:///{tmp_path_factory.mktemp('demo') / 'demo.db'}"
        else:
            url = pg_databases.create("demo")
        eng = db.make_engine(url)
        db.upgrade(eng)
        report = demo.generate(eng, **DEMO_KW)
        made[kind] = (eng, report)
        return made[kind]

    yield get
    for eng, _ in made.values():
        eng.dispose()


@pytest.fixture
def demo_engine(backend, _demo_engines):
    """A small demo database (read-only: do not write to it in tests)."""
    return _demo_engines(backend)[0]


@pytest.fixture
def demo_report(backend, _demo_engines):
    """What the generator says it planted in ``demo_engine``."""
    return _demo_engines(backend)[1]


@pytest.fixture
def demo_url(demo_engine) -> str:
    return demo_engine.url.render_as_string(hide_password=False)
