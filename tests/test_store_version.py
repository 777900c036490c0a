"""The stored tables' version is explicit: ``pm_store.STORE_VERSION``, bumped with the SQL that fills them.

Why pin it: a stored table built by other SQL than today's must not be read (it would show numbers the
live statements no longer compute).  The fingerprint therefore carries ``STORE_VERSION``; this test
compiles every statement that fills a stored table (on SQLite and PostgreSQL) and fails when that SQL
changed but the version did not, so nobody has to remember.  Editing a comment or a docstring changes
neither (the old fingerprint hashed the engine's Python source, and a comment sent production to the
slow live path until someone ran ``refresh-store``).
"""

from __future__ import annotations

import hashlib
import json

import pytest
from sqlalchemy.dialects import postgresql, sqlite

from ccm_core import rules
from ccm_core.engine import patient_month as eng
from ccm_core.engine.filters import Filters
from ccm_core.storage import stored as pm_store

# STORE_VERSION -> digest of the compiled fill SQL.  When test_fill_sql_matches_the_store_version fails:
# bump pm_store.STORE_VERSION and add the new pair here (keep the old lines: they are the history).
PINNED = {
    1: "4560be093034aff8d2ad927cd51e63e1b81c1d16",
    2: "f15c493add44b84e5be97b2631416be888676230",  # scoped rebuilds: claim-store select takes patients
    3: "71b0f051dfe0ad1e351a2058694c0c48265d85be",  # complex track needs a care-plan revision; compliance core; payer aliases
    4: "8d96df06e0990e9b507cb138bbae6fb6f5951fdd",  # claim store: first adjudication, status, paid, first paid date, CARC/RARC lists
    5: "7cbd639a540ad22e864bdcf2b854a069f7275d71",  # claim number in the claim store
}
MONTHS = (202401, 202412)


class _FakeCodes:
    """Stands in for the connection ``condition_map`` asks which ICD-10 codes are present."""

    def execute(self, _query):
        return self

    def scalars(self):
        return self

    def all(self):
        return ["E11.9", "I10", "N18.3"]


def _canonical(value):
    if isinstance(value, (list, tuple, set, frozenset)):
        return sorted((_canonical(v) for v in value), key=repr)  # IN lists built from sets: order is not meaning
    return value if isinstance(value, (int, float, str, type(None))) else str(value)


def fill_sql_digest() -> str:
    """sha1 over the compiled SQL (and bound values) of every statement that fills a stored table."""
    rs = rules.load()
    statements = {
        pm_store.TABLE_NAME: eng.patient_month_select(Filters(*MONTHS), rs, for_store=True),
        pm_store.ENROLLED_TABLE: pm_store._enrolled_select_all(*MONTHS),
        pm_store.CLAIM_TABLE: pm_store._claim_store_select(rs),
        pm_store.ELIGIBLE_TABLE: pm_store._eligible_select_all(_FakeCodes(), rs, *MONTHS),
    }
    h = hashlib.sha1()
    for name, stmt in sorted(statements.items()):
        for dialect in (sqlite.dialect(), postgresql.dialect()):
            compiled = stmt.compile(dialect=dialect)
            params = {k: _canonical(v) for k, v in compiled.params.items()}
            h.update(f"{name}|{dialect.name}|{compiled}|{json.dumps(params, sort_keys=True, default=str)}".encode())
    return h.hexdigest()


def test_fill_sql_matches_the_store_version():
    digest = fill_sql_digest()
    assert pm_store.STORE_VERSION in PINNED, "add STORE_VERSION and its digest to PINNED"
    assert PINNED[pm_store.STORE_VERSION] == digest, (
        f"The SQL that fills the stored tables changed: bump pm_store.STORE_VERSION to "
        f'{max(PINNED) + 1} and add `{max(PINNED) + 1}: "{digest}"` to PINNED in this file.'
    )


def test_the_digest_does_not_depend_on_the_process():
    """IN lists built from sets and hash seeds must not move the digest (else the pin would flap)."""
    import os
    import subprocess
    import sys

    here = fill_sql_digest()
    code = "import sys; sys.path[:0] = ['tests', '.']; import test_store_version as t; print(t.fill_sql_digest())"
    for seed in ("1", "2"):
        out = subprocess.run(
            [sys.executable, "-c", code],
            capture_output=True,
            text=True,
            check=True,
            env={**os.environ, "PYTHONHASHSEED": seed},
        )
        assert out.stdout.strip() == here


def test_the_version_is_in_the_fingerprint_and_python_text_is_not(monkeypatch):
    rs = rules.load()
    before = pm_store.fingerprint(rs)
    monkeypatch.setattr(pm_store, "STORE_VERSION", pm_store.STORE_VERSION + 1)
    assert pm_store.fingerprint(rs) != before
    assert not hasattr(pm_store, "_engine_source_hash")
    source = open(pm_store.__file__).read()
    assert "getsource" not in source and "\nimport inspect\n" not in source


@pytest.mark.parametrize("what", ["fees", "eligible_payers"])
def test_rules_still_move_the_fingerprint(what):
    import dataclasses

    rs = rules.load()
    other = (
        dataclasses.replace(rs, fees={**rs.fees, "99490": rs.fees["99490"][:-1]})
        if what == "fees"
        else dataclasses.replace(rs, eligible_payers=("nobody",))
    )
    assert pm_store.fingerprint(other) != pm_store.fingerprint(rs)
