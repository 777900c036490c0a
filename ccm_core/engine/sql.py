"""SQL building blocks the engine, the stored tables, the KPIs and the audit share (one home each).

* Portable date arithmetic: four SQL functions that compile to SQLite's ``julianday``/``date`` and to
  PostgreSQL's ``EXTRACT(EPOCH ...)``/``CAST`` (``minutes_between``, ``days_between``, ``days_from``,
  ``date_of``).
* The denial rule on a remittance (``is_denial``, ``is_duplicate``): what counts as an initial denial,
  docs/reference/kpi-definitions.md §3.1.
* Claims superseded by a frequency-7 replacement (``replaced_claims``): their lines are no longer billed.
* The shipped chronic-condition map as a VALUES CTE (``condition_map``): docs/reference/ccm-rules.md §3.1.

Imports only the schema, the rules and the filters, so every layer above can use it without a circle.
"""

from __future__ import annotations

from sqlalchemy import Date, Float, Integer, String, and_, column, distinct, exists, or_, select, values
from sqlalchemy.engine import Connection
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.sql.functions import FunctionElement

from ccm_core import rules as rules_mod
from ccm_core.engine.filters import Filters
from ccm_core.storage import schema as s


# --------------------------------------------------------------------------- portable date arithmetic
class minutes_between(FunctionElement):  # noqa: N801 - reads like the SQL function it stands for
    """Whole minutes from ``start`` to ``end`` (two timestamps), on SQLite and PostgreSQL."""

    type = Integer()
    inherit_cache = True
    name = "minutes_between"


@compiles(minutes_between)
def _minutes_between_default(element, compiler, **kw):
    start, end = list(element.clauses)
    return (
        f"CAST(ROUND(EXTRACT(EPOCH FROM ({compiler.process(end, **kw)} - {compiler.process(start, **kw)}))"
        f" / 60.0) AS INTEGER)"
    )


@compiles(minutes_between, "sqlite")
def _minutes_between_sqlite(element, compiler, **kw):
    start, end = list(element.clauses)
    return (
        f"CAST(ROUND((julianday({compiler.process(end, **kw)}) - julianday({compiler.process(start, **kw)}))"
        f" * 1440.0) AS INTEGER)"
    )


class days_between(FunctionElement):  # noqa: N801
    """Whole days from date ``start`` to date ``end`` on SQLite and PostgreSQL."""

    type = Integer()
    inherit_cache = True
    name = "days_between"


@compiles(days_between)
def _days_between_default(element, compiler, **kw):
    a, b = list(element.clauses)
    return f"({compiler.process(b, **kw)} - {compiler.process(a, **kw)})"


@compiles(days_between, "sqlite")
def _days_between_sqlite(element, compiler, **kw):
    a, b = list(element.clauses)
    return f"CAST(julianday({compiler.process(b, **kw)}) - julianday({compiler.process(a, **kw)}) AS INTEGER)"


class days_from(FunctionElement):  # noqa: N801 - reads like SQL
    """``days_from(a, b)`` = days from date/timestamp ``a`` to ``b`` (fractional), on SQLite and PostgreSQL."""

    type = Float()
    inherit_cache = True
    name = "days_from"


@compiles(days_from)
def _days_from_pg(element, compiler, **kw):
    a, b = list(element.clauses)
    return (
        f"(EXTRACT(EPOCH FROM (CAST({compiler.process(b, **kw)} AS TIMESTAMP) - "
        f"CAST({compiler.process(a, **kw)} AS TIMESTAMP))) / 86400.0)"
    )


@compiles(days_from, "sqlite")
def _days_from_sqlite(element, compiler, **kw):
    a, b = list(element.clauses)
    return f"(julianday({compiler.process(b, **kw)}) - julianday({compiler.process(a, **kw)}))"


class date_of(FunctionElement):  # noqa: N801 - reads like the SQL it stands for
    """The calendar date of a timestamp on SQLite (``date()``) and PostgreSQL (``CAST AS DATE``)."""

    type = Date()
    inherit_cache = True
    name = "date_of"


@compiles(date_of)
def _date_of_default(element, compiler, **kw):
    return f"CAST({compiler.process(list(element.clauses)[0], **kw)} AS DATE)"


@compiles(date_of, "sqlite")
def _date_of_sqlite(element, compiler, **kw):
    return f"date({compiler.process(list(element.clauses)[0], **kw)})"


# --------------------------------------------------------------------------- replaced claims
def replaced_claims():
    """Claims superseded by a later frequency-7 replacement: their lines are no longer 'billed'."""
    c = s.claim
    return select(c.c.original_claim_id).where(c.c.frequency_code == "7", c.c.original_claim_id.isnot(None))


# --------------------------------------------------------------------------- denials
DENIAL_STATUS = "4"  # CLP02 4 = denied
NOT_DENIAL_CARCS = ("1", "2", "3", "45", "253")  # deductible, coinsurance, copay, contractual, sequestration
DUPLICATE_CARC = "18"


def is_denial(r=s.remittance):
    """Status 4, or zero paid on a processed claim with an adjustment that is not contractual/patient share."""
    ra = s.remittance_adjustment
    return or_(
        r.c.status_code == DENIAL_STATUS,
        and_(
            r.c.status_code.in_(("1", "2", "3")),
            r.c.paid_amount <= 0,
            exists().where(ra.c.remittance_id == r.c.id, ra.c.carc.not_in(NOT_DENIAL_CARCS)),
        ),
    )


def is_duplicate(r=s.remittance):
    """The remittance carries CARC 18 (exact duplicate claim): kept out of the denial rate."""
    ra = s.remittance_adjustment
    return exists().where(ra.c.remittance_id == r.c.id, ra.c.carc == DUPLICATE_CARC)


# --------------------------------------------------------------------------- eligibility
def condition_map(
    conn: Connection, f: Filters | None = None, *, patients=None, name: str = "condition_map", labels: bool = False
):
    """The shipped ICD-10 -> chronic condition map (``rules.condition_key``) for the codes on file, as a VALUES
    CTE (icd10, condition[, label]): the one place the map becomes SQL.  ``f`` (its patient filters) or
    ``patients`` (a select of ids) limits the codes read; None when no code on file is chronic."""
    dg, p = s.diagnosis, s.patient
    q = select(distinct(dg.c.icd10))
    if f is not None:
        q = q.join(p, p.c.id == dg.c.patient_id).where(f.patient_clause(p))
    if patients is not None:
        q = q.where(dg.c.patient_id.in_(patients))
    codes = conn.execute(q).scalars().all()
    ccw = rules_mod.ccw_conditions() if labels else {}
    rows: list[tuple[str, ...]] = []
    for code in codes:
        key = rules_mod.condition_key(code)
        if key:
            label = f"{ccw.get(key) or 'chronic ' + key.removeprefix('CCI:')} ({code})"
            rows.append((code, key, label) if labels else (code, key))
    if not rows:
        return None
    cols = [column("icd10", String), column("condition", String)] + ([column("label", String)] if labels else [])
    return values(*cols, name=name).data(rows).cte(name)
