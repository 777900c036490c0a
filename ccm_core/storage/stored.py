"""The stored patient-month (and enrolled month ends, and claim facts): the engine's output kept in
tables, refreshed in the same transaction as every write that changes them.

Three derived tables: ``patient_month_store`` (the engine's patient-month rows),
``enrolled_month_store`` (who is enrolled at each month end) and ``claim_store`` (per claim: filter
columns, code-family flags, month of its initial denial, first adjudication and status, paid amount,
first paid date, CARC/RARC lists).

Why: counting minutes by the rules (overlap across programs, inpatient days, consent, thresholds)
reads every time entry of the month; at 50,000 patients that is ~1.5 s per month, paid again by each
KPI. Stored, a KPI is an indexed GROUP BY over ~10k rows. The engine stays the only place the rules
are applied (``engine.patient_month_select`` writes the rows); this module only decides when the
stored rows may be used:

* the store remembers the data version and a fingerprint of the rules and ``STORE_VERSION`` (the
  version of the SQL that fills it) it was built with; a reader uses it only when both match, otherwise it falls back to the live statement, so a
  stale row is never shown (a write that forgot to refresh costs speed, not correctness);
* every writer calls ``record_write`` (records the changed tables' new data version and refreshes)
  inside its own transaction: readers see the old rows or the new ones, never a mix.
* the table is derived data, not part of the Alembic schema: its columns follow the codes in the
  rules (``billed_<code>``), so it is (re)created from the engine's statement when they change.
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import json
import logging
from collections.abc import Iterator
from dataclasses import dataclass
from functools import lru_cache

from sqlalchemy import (
    Column,
    Date,
    Float,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    and_,
    case,
    cast,
    false,
    func,
    literal,
    or_,
    select,
    true,
    union,
    union_all,
)
from sqlalchemy.engine import Connection
from sqlalchemy.sql import Select
from sqlalchemy.types import NullType

from ccm_core import rules as rules_mod
from ccm_core.engine import compliance
from ccm_core.engine import patient_month as eng
from ccm_core.engine.filters import Filters
from ccm_core.engine.sql import NOT_DENIAL_CARCS, days_between, is_denial, is_duplicate
from ccm_core.storage import db
from ccm_core.storage import schema as s

log = logging.getLogger(__name__)

TABLE_NAME = "patient_month_store"
STATE_KEY = "pm_store.state"  # row in the ``setting`` table: data version, fingerprint, month range
ALL_MONTHS = (190001, 299912)

# Tables the patient-month statement reads; a write elsewhere (diagnoses, care plans, visits,
# enrollment, appeals, audit work) leaves the stored rows valid.
READ_TABLES = {
    "time_entry",
    "staff",
    "patient",
    "facility_stay",
    "consent",
    "claim_line",
    "claim",
    "remittance",
    "complexity_assessment",
    "care_plan",
}
# Of those, tables whose rows belong to one month; the rest (who the patient is, consent, stays,
# staff roles) can change any month.
MONTH_TABLES = {"time_entry", "claim_line", "claim", "remittance", "complexity_assessment"}
# The others belong to a patient (the patient row, consents, facility stays) or to staff (whose roles
# decide how the entries they logged count): a write to them changes only the patient-months of the
# patients it names, every month; for staff, the patients whose time entries those staff logged.
PATIENT_TABLES = {"patient", "consent", "facility_stay", "staff", "care_plan"}  # care_plan: the complex track
CLAIM_READ_TABLES = {"claim", "claim_line", "remittance", "remittance_adjustment", "remittance_remark", "patient"}


@dataclass(frozen=True)
class StoreState:
    data_version: int
    fingerprint: str
    month_from: int | None
    month_to: int | None
    enrolled_from: int | None = None  # months the enrolled table covers
    enrolled_to: int | None = None
    claims_built: bool = False  # the claim store is current too
    eligible_from: int | None = None  # months the eligibility table covers
    eligible_to: int | None = None


# The version of the SQL that fills the stored tables: ``engine.patient_month_select(for_store=True)``,
# the enrolled / claim / eligible selects below and the denial rule and condition map of ``sqlparts``.
# BUMP IT in the commit that changes what those statements compute; tests/test_store_version.py pins
# the compiled SQL to this number and fails until you do.  A stored table built under another version
# is not read (readers take the live statements) until ``refresh-store`` or the next write rebuilds it.
STORE_VERSION = 5  # 5: claim number in the claim store
# 4: claim store carries first adjudication, status, paid, first paid date, CARC/RARC lists
# 3: complex track needs a care-plan revision (complex_care_plan); eligibility via compliance


# Fingerprints by RuleSet object: ``rules.load`` hands out the same shipped RuleSet while no override is set,
# and every KPI asks for the fingerprint (12 sparkline months x 6 headlines: 17 % of their time at 50k).
# A RuleSet is never changed once built (overrides make a new one), so its fingerprint is fixed.
_FINGERPRINTS: dict[tuple[int, int], tuple[rules_mod.RuleSet, str]] = {}


def fingerprint(rs: rules_mod.RuleSet) -> str:
    """Changes when the rules in force (codes, fees, conflicts, payers, overrides, condition maps) or
    ``STORE_VERSION`` change: both alter stored rows.  Never the text of Python files."""
    key = (id(rs), STORE_VERSION)
    known = _FINGERPRINTS.get(key)
    if known is not None and known[0] is rs:  # the entry holds rs, so its id cannot have been reused
        return known[1]
    fp = _fingerprint(rs)
    if len(_FINGERPRINTS) >= 32:
        _FINGERPRINTS.clear()
    _FINGERPRINTS[key] = (rs, fp)
    return fp


def _fingerprint(rs: rules_mod.RuleSet) -> str:
    h = hashlib.sha1(f"store-version {STORE_VERSION}".encode())
    for part in (rs.codes, rs.fees, rs.conflicts, rs.eligible_payers, rs.overrides, rs.payer_aliases):
        h.update(json.dumps(_canonical(part), sort_keys=True, default=str).encode())
    h.update(_condition_files_hash().encode())
    return h.hexdigest()[:16]


def _canonical(obj):
    """A process-independent form (sets sorted): ``repr`` of a frozenset changes with the hash seed."""
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        return {f.name: _canonical(getattr(obj, f.name)) for f in dataclasses.fields(obj)}
    if isinstance(obj, dict):
        return {str(k): _canonical(v) for k, v in obj.items()}
    if isinstance(obj, (set, frozenset)):
        return sorted(_canonical(v) for v in obj)
    if isinstance(obj, (list, tuple)):
        return [_canonical(v) for v in obj]
    return obj


@lru_cache(maxsize=1)
def _condition_files_hash() -> str:
    """The shipped ICD-10 to chronic-condition maps decide eligibility."""
    from pathlib import Path

    here = Path(rules_mod.__file__).parent
    return hashlib.sha1(b"".join((here / n).read_bytes() for n in ("ccw_codes.csv", "cci_chronic.csv"))).hexdigest()


def _store_select(month_from: int, month_to: int, rs: rules_mod.RuleSet, patients: Select | None = None) -> Select:
    return eng.patient_month_select(Filters(month_from, month_to), rs, for_store=True, patients=patients)


_TABLES: dict[str, Table] = {}

ENROLLED_TABLE = "enrolled_month_store"
# Who is enrolled at each month end, per program: the latest enrollment event on or before the month's
# last day says 'enrolled'. Every "enrolled patients" denominator reads it instead of ranking the whole
# event history again (0.2 s per use at 50,000 patients).
enrolled_store = Table(
    ENROLLED_TABLE,
    MetaData(),
    Column("month", Integer, nullable=False),
    Column("program", String(10), nullable=False),
    Column("patient_id", Integer, nullable=False),
    Index(f"ix_{ENROLLED_TABLE}_month_program", "month", "program", "patient_id"),
)


def store_table(rs: rules_mod.RuleSet) -> Table:
    """The Table object for the rules in force: one column per column of the engine's statement."""
    fp = fingerprint(rs)
    if fp not in _TABLES:
        sel = _store_select(*ALL_MONTHS, rs)
        cols = []
        for c in sel.selected_columns:
            typ = c.type if not isinstance(c.type, NullType) else Integer()
            cols.append(Column(c.name, typ))
        t = Table(TABLE_NAME, MetaData(), *cols)
        Index(f"ix_{TABLE_NAME}_month_patient", t.c.service_month, t.c.patient_id)
        Index(f"ix_{TABLE_NAME}_patient", t.c.patient_id)  # scoped rebuilds delete by patient
        _TABLES[fp] = t
    return _TABLES[fp]


CLAIM_TABLE = "claim_store"
# One row per claim with what the claim-level KPIs filter and count on: the filter columns (clinic as the
# claim or the patient has it, billing practitioner, care manager, payer), one flag per code family on its
# lines, and the month of its initial denial (first adjudication denied, CARC 18 duplicates excluded).
# The HFMA denial rate then is two indexed GROUP BYs instead of joining claims, lines and adjustments;
# days to payment one GROUP BY, and the claim-lines list reads each line's claim status, paid amount and
# reason codes here instead of aggregating every remittance of the period's claims.
_CLAIM_TABLES: dict[tuple[str, ...], Table] = {}


def claim_families(rs: rules_mod.RuleSet) -> tuple[str, ...]:
    return tuple(sorted({c.family for c in rs.codes.values() if c.family}))


def claim_table(rs: rules_mod.RuleSet) -> Table:
    fams = claim_families(rs)
    if fams not in _CLAIM_TABLES:
        t = Table(
            CLAIM_TABLE,
            MetaData(),
            Column("claim_id", Integer, nullable=False),
            Column("patient_id", Integer, nullable=False),
            Column("submitted_month", Integer),
            Column("total_charge", Float),
            Column("clinic_id", Integer),
            Column("practitioner_id", Integer),
            Column("care_manager_id", Integer),
            Column("payer", String(60)),
            *[Column(f"act_{fam}", Integer, nullable=False) for fam in fams],
            Column("initial_denial_month", Integer),
            # its remittances, for the claim-lines list and days to payment (``_claim_store_select``)
            Column("claim_number", String(40)),
            Column("submitted_date", Date),
            Column("first_adjudicated", Date),  # received date of its first first-adjudication remittance
            Column("first_denied", Integer, nullable=False),  # that one is a denial, not a CARC 18 duplicate
            Column("status", String(30), nullable=False),  # pending / denied, later paid / denied / duplicate / paid
            Column("paid", Float, nullable=False),  # paid over all its remittances
            Column("first_paid_date", Date),  # first remittance that paid anything
            Column("days_to_paid", Integer),  # submitted -> first_paid_date
            Column("carcs", String()),  # the CARCs of its remittances, patient share and contractual excluded
            Column("rarcs", String()),  # the RARCs of its remittances
        )
        # covering indexes for the HFMA counts and days to payment (month or date, code-family flags, the
        # value counted): a period's claims are read from the index alone (SQLite at 50k: the denial
        # trend's lagged submissions 0.05 -> 0.005 s)
        acts = [t.c[f"act_{fam}"] for fam in fams]
        Index(f"ix_{CLAIM_TABLE}_submitted_cover", t.c.submitted_month, *acts, t.c.total_charge)
        Index(f"ix_{CLAIM_TABLE}_denied_cover", t.c.initial_denial_month, *acts, t.c.total_charge)
        Index(f"ix_{CLAIM_TABLE}_patient", t.c.patient_id)
        # claim KPIs look their claims up by id and filter on the flags (and count charges): from the index
        # alone (SQLite first pass at 50k: 0.06-0.09 -> 0.02-0.03 s)
        Index(f"ix_{CLAIM_TABLE}_claim_cover", t.c.claim_id, *acts, t.c.total_charge)
        Index(f"ix_{CLAIM_TABLE}_first_paid_cover", t.c.first_paid_date, *acts, t.c.days_to_paid)
        _CLAIM_TABLES[fams] = t
    return _CLAIM_TABLES[fams]


def _claim_store_select(rs: rules_mod.RuleSet, patients: Select | None = None) -> Select:
    """The claim store's rows; ``patients`` (a select of patient ids) limits them to those patients' claims."""
    c, p, cl, r = s.claim, s.patient, s.claim_line, s.remittance
    fams = claim_families(rs)
    flags = select(
        cl.c.claim_id,
        *[func.max(case((cl.c.cpt_code.in_(rs.codes_of(family=fam)), 1), else_=0)).label(f"act_{fam}") for fam in fams],
    )
    denied = select(r.c.claim_id, func.min(r.c.received_month).label("month")).where(
        r.c.adjudication_seq == 1, r.c.claim_id.isnot(None), is_denial(r), ~is_duplicate(r)
    )
    ra, rr = s.remittance_adjustment, s.remittance_remark
    first_id = select(r.c.claim_id, func.min(r.c.id).label("remit_id")).where(r.c.adjudication_seq == 1)
    paid = select(
        r.c.claim_id,
        func.sum(cast(r.c.paid_amount, Float)).label("paid"),
        func.min(case((r.c.paid_amount > 0, r.c.received_date))).label("first_paid"),
    ).where(r.c.claim_id.isnot(None))
    carc_pairs = (
        select(r.c.claim_id, ra.c.carc).join(ra, ra.c.remittance_id == r.c.id).where(ra.c.carc.not_in(NOT_DENIAL_CARCS))
    )
    rarc_pairs = select(r.c.claim_id, rr.c.rarc).join(rr, rr.c.remittance_id == r.c.id)
    theirs = true()
    if patients is not None:
        claims = select(c.c.id).where(c.c.patient_id.in_(patients))
        flags, denied = flags.where(cl.c.claim_id.in_(claims)), denied.where(r.c.claim_id.in_(claims))
        first_id, paid = first_id.where(r.c.claim_id.in_(claims)), paid.where(r.c.claim_id.in_(claims))
        carc_pairs, rarc_pairs = carc_pairs.where(r.c.claim_id.in_(claims)), rarc_pairs.where(r.c.claim_id.in_(claims))
        theirs = c.c.patient_id.in_(patients)
    flags = flags.group_by(cl.c.claim_id).subquery("claim_flags")
    denied = denied.group_by(r.c.claim_id).subquery("initial_denials")
    first_id = first_id.group_by(r.c.claim_id).subquery("first_adjudication")
    paid = paid.group_by(r.c.claim_id).subquery("claim_paid")
    carc_pairs, rarc_pairs = carc_pairs.distinct().subquery("carc_pairs"), rarc_pairs.distinct().subquery("rarc_pairs")
    carcs = (
        select(carc_pairs.c.claim_id, func.aggregate_strings(carc_pairs.c.carc, ", ").label("codes"))
        .group_by(carc_pairs.c.claim_id)
        .subquery("claim_carcs")
    )
    rarcs = (
        select(rarc_pairs.c.claim_id, func.aggregate_strings(rarc_pairs.c.rarc, ", ").label("codes"))
        .group_by(rarc_pairs.c.claim_id)
        .subquery("claim_rarcs")
    )
    first = r.alias("first_remit")
    denied_first = and_(is_denial(first), ~is_duplicate(first))
    paid_total = func.coalesce(paid.c.paid, 0.0)
    # the claim-lines list's status (``kpis.breakdowns.claim_lines``)
    status = case(
        (first.c.id.is_(None), "pending"),
        (and_(denied_first, paid_total > 0), "denied, later paid"),
        (denied_first, "denied"),
        (is_duplicate(first), "duplicate (CARC 18)"),
        else_="paid",
    )
    return (
        select(
            c.c.id,
            c.c.patient_id,
            c.c.submitted_month,
            cast(c.c.total_charge, Float),
            func.coalesce(c.c.clinic_id, p.c.clinic_id),
            c.c.practitioner_id,
            p.c.care_manager_id,
            c.c.payer,
            *[func.coalesce(flags.c[f"act_{fam}"], 0) for fam in fams],
            denied.c.month,
            c.c.claim_number,
            c.c.submitted_date,
            first.c.received_date,
            case((and_(first.c.id.isnot(None), denied_first), 1), else_=0),
            status,
            paid_total,
            paid.c.first_paid,
            days_between(c.c.submitted_date, paid.c.first_paid),
            carcs.c.codes,
            rarcs.c.codes,
        )
        .select_from(
            c.join(p, p.c.id == c.c.patient_id)
            .outerjoin(flags, flags.c.claim_id == c.c.id)
            .outerjoin(denied, denied.c.claim_id == c.c.id)
            .outerjoin(first_id, first_id.c.claim_id == c.c.id)
            .outerjoin(first, first.c.id == first_id.c.remit_id)
            .outerjoin(paid, paid.c.claim_id == c.c.id)
            .outerjoin(carcs, carcs.c.claim_id == c.c.id)
            .outerjoin(rarcs, rarcs.c.claim_id == c.c.id)
        )
        .where(theirs)
    )


ELIGIBLE_TABLE = "eligible_month_store"
# Who is eligible for CCM at each month end (two or more chronic conditions or a practitioner's override,
# seen in the 12 months before, alive, eligible payer): what the enrollment KPIs count and list.
eligible_store = Table(
    ELIGIBLE_TABLE,
    MetaData(),
    Column("month", Integer, nullable=False),
    Column("patient_id", Integer, nullable=False),
    Index(f"ix_{ELIGIBLE_TABLE}_month", "month", "patient_id"),
    Index(f"ix_{ELIGIBLE_TABLE}_patient", "patient_id"),
)
ELIGIBLE_READ_TABLES = {"diagnosis", "visit", "eligibility_override", "patient"}


def source_tables() -> dict[str, frozenset[str]]:
    """Each stored table and the tables its rows are computed from: a result that read a stored table
    depends on writes to those (the store is rebuilt in the same transaction)."""
    return {
        TABLE_NAME: frozenset(READ_TABLES),
        ENROLLED_TABLE: frozenset({"enrollment_event"}),
        CLAIM_TABLE: frozenset(CLAIM_READ_TABLES),
        ELIGIBLE_TABLE: frozenset(ELIGIBLE_READ_TABLES),
    }


def _month_ends(month_from: int, month_to: int, name: str, year_before: bool = False):
    import datetime as dt

    rows, m = [], month_from
    while m <= month_to:
        end = db.month_bounds(m)[1]
        cols = [literal(m, Integer).label("month"), literal(end, Date).label("month_end")]
        if year_before:
            cols.append(literal(end - dt.timedelta(days=365), Date).label("year_before"))
        rows.append(select(*cols))
        m = db.add_months(m, 1)
    return union_all(*rows).cte(name)


def _eligible_select_all(
    conn: Connection, rs: rules_mod.RuleSet, month_from: int, month_to: int, patients=None
) -> Select | None:
    """(month, patient) eligible at each month end: ``compliance.eligibility_select`` (outreach) for every
    month at once.  ``patients`` (a select of patient ids) limits it to them: eligibility is decided per
    patient, so an import of diagnoses or visits only needs its own patients recomputed."""
    ends = _month_ends(month_from, month_to, "eligibility_month_ends", year_before=True)
    return compliance.eligibility_select(
        conn, rs, ends, ["month"], outreach=True, patients=patients, start="month_end", end="month_end"
    )


# --------------------------------------------------------------------------- state
def read_state(conn: Connection) -> StoreState | None:
    raw = conn.execute(select(s.setting.c.value).where(s.setting.c.key == STATE_KEY)).scalar()
    if not raw:
        return None
    d = json.loads(raw)
    return StoreState(
        int(d["data_version"]),
        d["fingerprint"],
        d.get("month_from"),
        d.get("month_to"),
        d.get("enrolled_from"),
        d.get("enrolled_to"),
        bool(d.get("claims_built")),
        d.get("eligible_from"),
        d.get("eligible_to"),
    )


def _write_state(conn: Connection, state: StoreState) -> None:
    value = json.dumps(state.__dict__)
    if conn.execute(s.setting.update().where(s.setting.c.key == STATE_KEY).values(value=value)).rowcount == 0:
        conn.execute(s.setting.insert().values(key=STATE_KEY, value=value))


def _table_exists(conn: Connection, name: str = TABLE_NAME) -> bool:
    from sqlalchemy import inspect as sa_inspect

    return sa_inspect(conn).has_table(name)


def _sync_indexes(conn: Connection, t: Table) -> None:
    """A table built by older code may lack an index added since, or keep one since replaced."""
    from sqlalchemy import inspect as sa_inspect

    wanted = {ix.name for ix in t.indexes}
    for have in sa_inspect(conn).get_indexes(t.name):
        name = have["name"]
        if name and name.startswith(f"ix_{t.name}_") and name not in wanted:
            conn.exec_driver_sql(f"DROP INDEX {name}")
    for ix in t.indexes:
        ix.create(conn, checkfirst=True)


def _reset_table(conn: Connection, t: Table) -> None:
    """Empty ``t`` for a rebuild.  DELETE, not DROP, when the columns are unchanged: on PostgreSQL a DROP
    would lock out every reader until the import commits; a DELETE lets them read the old rows (MVCC)."""
    from sqlalchemy import inspect as sa_inspect

    if _table_exists(conn, t.name):
        have = [c["name"] for c in sa_inspect(conn).get_columns(t.name)]
        if have == [c.name for c in t.c]:
            conn.execute(t.delete())
            _sync_indexes(conn, t)
            return
        t.drop(conn)
    t.create(conn)


def is_fresh(conn: Connection, rs: rules_mod.RuleSet) -> bool:
    return _current_state(conn, rs) is not None


def _current_state(conn: Connection, rs: rules_mod.RuleSet, table: str | None = None) -> StoreState | None:
    """The store's state when it holds the current data under the current rules and code (and ``table``
    exists); None sends readers to the live statements."""
    st = read_state(conn)
    if (
        st is None
        or st.data_version != db.get_data_version(conn)
        or st.fingerprint != fingerprint(rs)
        or (table is not None and not _table_exists(conn, table))
    ):
        return None
    return st


# --------------------------------------------------------------------------- writing
@dataclass(frozen=True)
class Scope:
    """What a write changed.  ``months``: None = anything (rebuild all), (lo, hi) = only month-bound rows
    of those months, False = nothing the patient-month reads.  ``enrollment``: enrollment events changed.
    ``claims``: anything the claim store reads changed."""

    months: tuple[int, int] | None | bool = None
    enrollment: bool = True
    claims: bool = True  # claims, their lines, remittances or patients changed
    eligibility: bool = True  # diagnoses, visits, overrides or patients changed
    # When only some patients' eligibility can have changed: the import batches whose diagnosis, visit
    # and override rows name them, plus patients those rows belonged to before an update.  None = all.
    eligible_batches: tuple[int, ...] | None = None
    eligible_also: tuple[int, ...] = ()
    # The tables the write changed, for the app's per-table cache versions (None = any table).
    tables: tuple[str, ...] | None = None
    # When patients, consents, facility stays or staff changed: the import batches that name them (see
    # ``PATIENT_TABLES``), plus patients moved rows belonged to before; those patients' patient-months
    # are rebuilt over every stored month.  None = no such change.
    patient_batches: tuple[int, ...] | None = None
    patients_also: tuple[int, ...] = ()
    # Of the claim store's sources only patients changed: rebuild only those patients' claims.
    claims_of_patients: bool = False

    @classmethod
    def for_tables(cls, tables) -> Scope:
        """A write that changed only ``tables`` (no import batch to narrow it further): stored tables built
        from none of them stay as they are; one built from any of them is rebuilt whole."""
        t = frozenset(tables)
        return cls(
            months=None if t & READ_TABLES else False,
            enrollment="enrollment_event" in t,
            claims=bool(t & CLAIM_READ_TABLES),
            eligibility=bool(t & ELIGIBLE_READ_TABLES),
            tables=tuple(sorted(t)),
        )


EVERYTHING = Scope()
# Above this many patients moved by updated rows, rebuild all eligibility rather than list them.
MAX_LISTED_PATIENTS = 500


def _scope_patients(scope: Scope):
    """A select of the patient ids whose eligibility ``scope`` can have changed (None = everyone)."""
    if scope.eligible_batches is None:
        return None
    ic = s.import_change
    parts = [
        select(ic.c.row_id.label("patient_id")).where(
            ic.c.batch_id.in_(scope.eligible_batches), ic.c.table_name == "patient"
        )
    ]
    for t in (s.diagnosis, s.visit, s.eligibility_override):
        parts.append(
            select(t.c.patient_id)
            .select_from(t.join(ic, ic.c.row_id == t.c.id))
            .where(ic.c.batch_id.in_(scope.eligible_batches), ic.c.table_name == t.name)
        )
    parts += [select(literal(pid, Integer).label("patient_id")) for pid in scope.eligible_also]
    u = union(*parts).subquery("eligibility_patients")
    return select(u.c.patient_id)


def _patient_month_patients(scope: Scope) -> Select | None:
    """A select of the patients whose patient-months ``scope`` can have changed outside its months
    (None = no such patients): the patients its batches imported or updated, the owners of the
    consents and facility stays they wrote (and their former owners, ``patients_also``), and every
    patient with a time entry logged by staff they wrote (a staff member's roles decide how all their
    entries count; a superset when only a name changed, never a subset)."""
    if scope.patient_batches is None:
        return None
    ic = s.import_change
    mine = ic.c.batch_id.in_(scope.patient_batches)
    parts = [select(ic.c.row_id.label("patient_id")).where(mine, ic.c.table_name == "patient")]
    for t in (s.consent, s.facility_stay, s.care_plan):
        parts.append(
            select(t.c.patient_id).select_from(t.join(ic, ic.c.row_id == t.c.id)).where(mine, ic.c.table_name == t.name)
        )
    te = s.time_entry  # driven from the batch's staff rows: nothing to scan when it wrote none
    parts.append(
        select(te.c.patient_id)
        .select_from(ic.join(te, te.c.staff_id == ic.c.row_id))
        .where(mine, ic.c.table_name == "staff")
    )
    parts += [select(literal(pid, Integer).label("patient_id")) for pid in scope.patients_also]
    u = union(*parts).subquery("patient_month_patients")
    return select(u.c.patient_id)


@contextlib.contextmanager
def index_lookups(conn: Connection) -> Iterator[None]:
    """A few patients' rows: nested loops over the patient indexes (``engine.prepare`` turns them off
    for whole months); PostgreSQL, 100 patients at 50k: 2.7 -> 0.8 s, their claims 0.9 -> 0.1 s.  Also
    the claim KPIs over one period's remittances (a few thousand, looked up by claim id): hash joins
    would scan every claim and claim line (CARC Pareto 0.9 -> 0.1 s).  The stored tables are small and
    cached, so a random page costs about what a sequential one does (``random_page_cost`` 1.1, the usual
    setting for data in memory or on SSD; the default 4 still chose a scan of the claim store for the
    claim-lines list: 0.17 -> 0.10 s)."""
    if conn.dialect.name != "postgresql":
        yield
        return
    conn.exec_driver_sql("SET LOCAL enable_nestloop = on")
    conn.exec_driver_sql("SET LOCAL random_page_cost = 1.1")
    try:
        yield
    finally:
        conn.exec_driver_sql("SET LOCAL enable_nestloop = off")
        conn.exec_driver_sql("RESET random_page_cost")


def refresh(
    conn: Connection,
    rs: rules_mod.RuleSet | None = None,
    scope: Scope = EVERYTHING,
    *,
    prior_version: int | None = None,
) -> dict:
    """Bring the stored rows up to date in the caller's transaction (INSERT ... SELECT: no rows through
    Python).  Only ``scope`` is rebuilt when the store was current at ``prior_version`` (the data version
    before the write being recorded); otherwise everything is."""
    rs = rs or rules_mod.load(conn)
    fp = fingerprint(rs)
    state = read_state(conn)
    version = db.get_data_version(conn)
    current = (
        state is not None
        and state.fingerprint == fp
        and prior_version is not None
        and state.data_version == prior_version
        and _table_exists(conn, TABLE_NAME)
        and _table_exists(conn, ENROLLED_TABLE)
    )
    t = store_table(rs)
    eng.prepare(conn)
    who = _patient_month_patients(scope)
    patients_rebuilt = False
    if current and scope.months is not None:
        mode = "months"
        pm_from, pm_to = state.month_from, state.month_to
        if who is not None and pm_from is not None:
            # the named patients' rows, every stored month (before the month rebuild, which may widen the range)
            patients_rebuilt = True
            conn.execute(t.delete().where(t.c.patient_id.in_(who)))
            with index_lookups(conn):
                conn.execute(t.insert().from_select([c.name for c in t.c], _store_select(pm_from, pm_to, rs, who)))
        if scope.months is not False:
            lo, hi = scope.months
            conn.execute(t.delete().where(t.c.service_month.between(lo, hi)))
            conn.execute(t.insert().from_select([c.name for c in t.c], _store_select(lo, hi, rs)))
            pm_from = min(x for x in (pm_from, lo) if x is not None)
            pm_to = max(x for x in (pm_to, hi) if x is not None)
    else:
        mode = "all"
        pm_from, pm_to = _data_months(conn)
        _reset_table(conn, t)
        if pm_from is not None:
            conn.execute(t.insert().from_select([c.name for c in t.c], _store_select(pm_from, pm_to, rs)))
    en_from, en_to = _enrolled_months(conn)
    rebuild_enrolled = mode == "all" or scope.enrollment or (en_from, en_to) != (state.enrolled_from, state.enrolled_to)
    if rebuild_enrolled:
        _reset_table(conn, enrolled_store)
        if en_from is not None:
            conn.execute(
                enrolled_store.insert().from_select(
                    ["month", "program", "patient_id"], _enrolled_select_all(en_from, en_to)
                )
            )
    rebuild_claims = mode == "all" or scope.claims or not state.claims_built or not _table_exists(conn, CLAIM_TABLE)
    if (
        rebuild_claims
        and mode != "all"
        and scope.claims_of_patients
        and who is not None
        and state.claims_built
        and _table_exists(conn, CLAIM_TABLE)
    ):
        rebuild_claims = "patients"  # only patient columns changed: those patients' claims
        ct = claim_table(rs)
        conn.execute(ct.delete().where(ct.c.patient_id.in_(who)))
        with index_lookups(conn):
            conn.execute(ct.insert().from_select([col.name for col in ct.c], _claim_store_select(rs, who)))
    elif rebuild_claims:
        ct = claim_table(rs)
        _reset_table(conn, ct)
        conn.execute(ct.insert().from_select([col.name for col in ct.c], _claim_store_select(rs)))
    el_from = min(x for x in (pm_from, en_from, 999999) if x is not None)
    el_to = max(x for x in (pm_to, en_to, 0) if x is not None)
    el_from, el_to = (el_from, el_to) if el_from <= el_to else (None, None)
    rebuild_eligible = (
        mode == "all"
        or scope.eligibility
        or (el_from, el_to) != (state.eligible_from, state.eligible_to)
        or not _table_exists(conn, ELIGIBLE_TABLE)
    )
    patients = _scope_patients(scope)
    if (
        rebuild_eligible
        and mode != "all"
        and patients is not None
        and el_from is not None
        and (el_from, el_to) == (state.eligible_from, state.eligible_to)
        and _table_exists(conn, ELIGIBLE_TABLE)
    ):
        rebuild_eligible = "patients"  # only the batch's patients: eligibility is decided per patient
        conn.execute(eligible_store.delete().where(eligible_store.c.patient_id.in_(patients)))
        conn.execute(
            eligible_store.insert().from_select(
                ["month", "patient_id"], _eligible_select_all(conn, rs, el_from, el_to, patients)
            )
        )
    elif rebuild_eligible:
        _reset_table(conn, eligible_store)
        sel = _eligible_select_all(conn, rs, el_from, el_to) if el_from is not None else None
        if sel is not None:
            conn.execute(eligible_store.insert().from_select(["month", "patient_id"], sel))
    if conn.dialect.name == "postgresql":
        for name, rebuilt in (
            (TABLE_NAME, mode == "all"),
            (ENROLLED_TABLE, rebuild_enrolled),
            (CLAIM_TABLE, rebuild_claims),
            (ELIGIBLE_TABLE, rebuild_eligible),
        ):
            if rebuilt is True:  # rebuilt whole; a few patients' rows ("patients") leave the statistics valid
                conn.exec_driver_sql(f"ANALYZE {name}")
    _write_state(conn, StoreState(version, fp, pm_from, pm_to, en_from, en_to, True, el_from, el_to))
    return {
        "mode": mode,
        "months": [pm_from, pm_to],
        "patients_rebuilt": patients_rebuilt,
        "enrolled_rebuilt": rebuild_enrolled,
        "claims_rebuilt": rebuild_claims,
        "eligible_rebuilt": rebuild_eligible,
    }


def _data_months(conn: Connection) -> tuple[int | None, int | None]:
    te, cl = s.time_entry, s.claim_line
    a = conn.execute(select(func.min(te.c.service_month), func.max(te.c.service_month))).one()
    b = conn.execute(select(func.min(cl.c.dos_month), func.max(cl.c.dos_month))).one()
    lows = [x for x in (a[0], b[0]) if x is not None]
    highs = [x for x in (a[1], b[1]) if x is not None]
    return (min(lows), max(highs)) if lows else (None, None)


def _enrolled_months(conn: Connection) -> tuple[int | None, int | None]:
    """From the first enrollment event's month to the last month with any data or event."""
    ee = s.enrollment_event
    first, last = conn.execute(select(func.min(ee.c.event_date), func.max(ee.c.event_date))).one()
    if first is None:
        return None, None
    first, last = db.month_int(_as_date(first)), db.month_int(_as_date(last))
    _, data_to = _data_months(conn)
    return first, max(last, data_to or last)


def _as_date(v):
    import datetime as dt

    return dt.date.fromisoformat(v[:10]) if isinstance(v, str) else v


def _enrolled_select_all(month_from: int, month_to: int) -> Select:
    """(month, program, patient) for every month end at which the latest event (``compliance.in_span``) says
    'enrolled'."""
    spans = compliance.enrollment_spans()
    ends = _month_ends(month_from, month_to, "month_ends")
    return (
        select(ends.c.month, spans.c.program, spans.c.patient_id)
        .select_from(spans.join(ends, compliance.in_span(spans, ends.c.month_end)))
        .where(spans.c.status == "enrolled")
    )


def record_write(conn: Connection, scope: Scope = EVERYTHING, rs: rules_mod.RuleSet | None = None) -> int:
    """THE write path's last step, inside the writer's transaction: records what ``scope`` changed (the
    changed tables get a new data version, so exactly the cached results that read them go stale) and
    brings the stored rows up to date.  ``Scope.for_tables({...})`` for a write that is not an import.
    A failed rebuild does not fail the write: readers see a stale store and compute live.

    tests/conftest.py fails any test whose ``ccm_core`` code writes a table in a transaction that does
    not record it here (``db.UNCACHED_TABLES`` excepted)."""
    prior = db.get_data_version(conn)
    version = db.bump_data_version(conn, scope.tables)
    conn.info[_REBUILT_KEY] = [TABLE_NAME, ENROLLED_TABLE, CLAIM_TABLE, ELIGIBLE_TABLE]
    try:
        with conn.begin_nested():  # a savepoint, so a failure leaves the write itself intact
            out = refresh(conn, rs, scope, prior_version=prior)
        conn.info[_REBUILT_KEY] = [
            name
            for name, whole in (
                (TABLE_NAME, out["mode"] == "all"),
                (ENROLLED_TABLE, out["enrolled_rebuilt"] is True),
                (CLAIM_TABLE, out["claims_rebuilt"] is True),
                (ELIGIBLE_TABLE, out["eligible_rebuilt"] is True),
            )
            if whole
        ]
    except Exception:
        log.exception("patient-month store refresh failed; KPIs compute live until the next refresh")
    return version


_REBUILT_KEY = "pm_store.rebuilt_whole"


def rebuilt_whole(conn: Connection) -> list[str]:
    """The stored tables the last ``record_write`` on ``conn`` rebuilt entirely (what ``vacuum`` needs to
    reclaim); a scoped rebuild replaces a few hundred rows, which autovacuum handles."""
    return list(conn.info.get(_REBUILT_KEY, [TABLE_NAME, ENROLLED_TABLE, CLAIM_TABLE, ELIGIBLE_TABLE]))


def vacuum(engine, tables: list[str] | None = None) -> None:
    """After a rebuild has committed: on PostgreSQL, reclaim the rows it replaced and refresh planner
    statistics (a rebuild DELETEs so readers are never locked out; autovacuum may be off or late, and
    index scans over replaced rows get slower).  ``tables``: only these (default: every stored table).
    Never raises: the write is already safe."""
    if engine.dialect.name != "postgresql" or tables == []:
        return
    try:
        with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
            for name in (TABLE_NAME, ENROLLED_TABLE, CLAIM_TABLE, ELIGIBLE_TABLE):
                if tables is not None and name not in tables:
                    continue
                if _table_exists(conn, name):
                    conn.exec_driver_sql(f"VACUUM (ANALYZE) {name}")
    except Exception:  # noqa: BLE001 - housekeeping only
        log.exception("VACUUM of the stored tables failed; autovacuum will reclaim the rows later")


def batch_scope(conn: Connection, batch_ids: list[int]) -> Scope:
    """What an import's batches changed (from their ``import_change`` rows), for ``record_write``."""
    ic = s.import_change
    touched = conn.execute(select(ic.c.table_name, ic.c.action).where(ic.c.batch_id.in_(batch_ids)).distinct()).all()
    enrollment = any(t == "enrollment_event" for t, _ in touched)
    claims = bool({t for t, _ in touched} & CLAIM_READ_TABLES)
    eligibility = bool({t for t, _ in touched} & ELIGIBLE_READ_TABLES)
    el = _eligible_patients_scope(conn, batch_ids, touched) if eligibility else {}
    # what the batches wrote, and the batch bookkeeping itself (import history)
    el["tables"] = tuple(sorted({t for t, _ in touched} | {"import_batch", "import_change"}))
    tables = {t for t, _ in touched} & READ_TABLES
    if not tables:
        return Scope(False, enrollment, claims, eligibility, **el)
    if tables - MONTH_TABLES - PATIENT_TABLES or any(
        a != "insert" and t in MONTH_TABLES - {"remittance"} for t, a in touched
    ):
        return Scope(None, enrollment, claims, eligibility, **el)
    if tables & PATIENT_TABLES:
        moved = _former_owners(conn, batch_ids, ("consent", "facility_stay", "care_plan"))
        if moved is None:
            return Scope(None, enrollment, claims, eligibility, **el)
        el.update(
            patient_batches=tuple(sorted(batch_ids)),
            patients_also=moved,
            claims_of_patients=claims and not ({t for t, _ in touched} & (CLAIM_READ_TABLES - {"patient"})),
        )
    tables -= PATIENT_TABLES
    if not tables:
        return Scope(False, enrollment, claims, eligibility, **el)
    ids = {t: select(ic.c.row_id).where(ic.c.batch_id.in_(batch_ids), ic.c.table_name == t) for t in tables}
    te, cl, c, r, ca = s.time_entry, s.claim_line, s.claim, s.remittance, s.complexity_assessment
    ranges = []
    if "time_entry" in ids:
        ranges.append(
            select(func.min(te.c.service_month), func.max(te.c.service_month)).where(te.c.id.in_(ids["time_entry"]))
        )
    if "complexity_assessment" in ids:
        ranges.append(
            select(func.min(ca.c.service_month), func.max(ca.c.service_month)).where(
                ca.c.id.in_(ids["complexity_assessment"])
            )
        )
    claim_sets = []
    if "claim" in ids:
        claim_sets.append(ids["claim"])
        # a replacement claim changes what its original still counts as billed
        claim_sets.append(
            select(c.c.original_claim_id).where(c.c.id.in_(ids["claim"]), c.c.original_claim_id.isnot(None))
        )
    if "claim_line" in ids:
        claim_sets.append(select(cl.c.claim_id).where(cl.c.id.in_(ids["claim_line"])))
    if "remittance" in ids:
        claim_sets.append(select(r.c.claim_id).where(r.c.id.in_(ids["remittance"]), r.c.claim_id.isnot(None)))
    for cs in claim_sets:
        ranges.append(select(func.min(cl.c.dos_month), func.max(cl.c.dos_month)).where(cl.c.claim_id.in_(cs)))
    lows, highs = [], []
    for q in ranges:
        lo, hi = conn.execute(q).one()
        if lo is not None:
            lows.append(lo)
            highs.append(hi)
    return Scope((min(lows), max(highs)) if lows else False, enrollment, claims, eligibility, **el)


def _former_owners(conn: Connection, batch_ids: list[int], moved_tables) -> tuple[int, ...] | None:
    """Patients that rows of ``moved_tables`` the batches updated belonged to before (an update may
    move a consent or stay to another patient: the one it left changes too); None when too many."""
    ic = s.import_change
    updated = conn.execute(
        select(ic.c.before_json).where(
            ic.c.batch_id.in_(batch_ids),
            ic.c.action == "update",
            ic.c.table_name.in_(moved_tables),
            ic.c.before_json.like('%"patient_id"%'),
        )
    ).scalars()
    before: set[int] = set()
    for text in updated:  # rows that were updated (a corrected file), not the bulk of a load
        pid = json.loads(text).get("patient_id")
        if pid is not None:
            before.add(int(pid))
        if len(before) > MAX_LISTED_PATIENTS:
            return None
    return tuple(sorted(before))


def _eligible_patients_scope(conn: Connection, batch_ids: list[int], touched) -> dict:
    """The batches and the prior owners of updated rows, so only those patients' eligibility is rebuilt
    (an update may move a diagnosis or visit to another patient: the one it left changes too)."""
    before = _former_owners(conn, batch_ids, ("diagnosis", "visit", "eligibility_override"))
    if before is None:
        return {}
    return {"eligible_batches": tuple(sorted(batch_ids)), "eligible_also": before}


# --------------------------------------------------------------------------- reading
def select_for(conn: Connection, f: Filters, rs: rules_mod.RuleSet) -> Select | None:
    """The stored rows for ``f`` with the live statement's columns, or None when the store is not
    current (then the caller runs the engine's statement)."""
    if _current_state(conn, rs, TABLE_NAME) is None:
        return None
    t = store_table(rs)
    acts = [t.c[f"act_{p}"] == 1 for p in f.programs if f"act_{p}" in t.c]
    return select(*[c for c in t.c if not c.name.startswith("act_")]).where(
        t.c.service_month.between(f.month_from, f.month_to), or_(*acts) if acts else false(), f.patient_clause(t)
    )


def enrolled_select(conn: Connection, f: Filters, as_of, tag: str = "") -> Select | None:
    """Patient ids enrolled (any program of ``f``) at ``as_of``: the stored month end, plus (mid-month)
    the few events since it; None when the store does not cover that month or is not current.  ``tag``
    suffixes the names of its CTE and subqueries, so several of these selects fit in one statement."""
    m = db.month_int(as_of)
    month_end = db.month_bounds(m)[1]
    base_month = m if as_of == month_end else db.add_months(m, -1)  # mid-month: last month end + events since
    st = _current_state(conn, rules_mod.load(conn))
    if st is None or st.enrolled_from is None:
        return None
    base_month = min(base_month, st.enrolled_to)  # past the stored months: the last one + events since
    if not st.enrolled_from <= base_month:
        return None
    e, p, ee = enrolled_store, s.patient, s.enrollment_event
    stored = select(e.c.patient_id, e.c.program).where(e.c.month == base_month, e.c.program.in_(f.programs))
    if base_month == m and as_of == month_end:
        pairs = stored.subquery(f"enrolled_pairs{tag}")
    else:
        # events after the stored month end decide for the patients who have them (latest by date, then id)
        since = db.month_bounds(base_month)[1]
        recent = compliance.enrollment_spans(
            f.programs, and_(ee.c.event_date > since, ee.c.event_date <= as_of), f"recent_events{tag}"
        )
        latest = (
            select(recent.c.patient_id, recent.c.program, recent.c.status)
            .where(compliance.in_span(recent, as_of))
            .subquery(f"recent_latest{tag}")
        )
        kept = stored.where(
            ~select(latest.c.patient_id)
            .where(latest.c.patient_id == e.c.patient_id, latest.c.program == e.c.program)
            .exists()
        )
        joined = select(latest.c.patient_id, latest.c.program).where(latest.c.status == "enrolled")
        pairs = union_all(kept, joined).subquery(f"enrolled_pairs{tag}")
    q = select(pairs.c.patient_id)
    if f.clinic_ids or f.practitioner_ids or f.care_manager_ids or f.payers:
        q = q.join(p, p.c.id == pairs.c.patient_id).where(f.patient_clause(p))
    return q.distinct() if len(f.programs) > 1 or base_month != m or as_of != month_end else q


def eligible_select(conn: Connection, f: Filters, rs: rules_mod.RuleSet, as_of) -> Select | None:
    """Patient ids eligible at ``as_of`` (a month end the store covers) for ``f``'s patient filters, or None."""
    m = db.month_int(as_of)
    if as_of != db.month_bounds(m)[1]:
        return None
    st = _current_state(conn, rs, ELIGIBLE_TABLE)
    if st is None or st.eligible_from is None or not st.eligible_from <= m <= st.eligible_to:
        return None
    e, p = eligible_store, s.patient
    q = select(e.c.patient_id.label("patient_id")).where(e.c.month == m)
    if f.clinic_ids or f.practitioner_ids or f.care_manager_ids or f.payers:
        q = q.join(p, p.c.id == e.c.patient_id).where(f.patient_clause(p))
    return q


def claim_source(conn: Connection, f: Filters, rs: rules_mod.RuleSet):
    """(table, where) over the stored claims for ``f``'s claim filters, or None when not current."""
    st = _current_state(conn, rs, CLAIM_TABLE)
    if st is None or not st.claims_built:
        return None
    t = claim_table(rs)
    acts = [t.c[f"act_{p}"] == 1 for p in f.programs if f"act_{p}" in t.c]
    return t, and_(
        f.clause(t.c.clinic_id, t.c.practitioner_id, t.c.care_manager_id, t.c.payer), or_(*acts) if acts else false()
    )


def patient_month_source(conn: Connection, f: Filters, rs: rules_mod.RuleSet) -> Select:
    """Stored rows when current, else the live engine statement: same columns, same numbers."""
    stored = select_for(conn, f, rs)
    return stored if stored is not None else eng.patient_month_select(f, rs)


# --------------------------------------------------------------------------- command line
def ensure_current(engine) -> dict | None:
    """Rebuild the store when it is not current (new rules, new engine code, an older database);
    None when nothing had to be done.  Run by ``init-db`` and ``refresh-store``."""
    with engine.begin() as conn:
        rs = rules_mod.load(conn)
        st = read_state(conn)
        if (
            is_fresh(conn, rs)
            and st.claims_built
            and _table_exists(conn)
            and _table_exists(conn, ENROLLED_TABLE)
            and _table_exists(conn, CLAIM_TABLE)
            and _table_exists(conn, ELIGIBLE_TABLE)
        ):
            for t in (store_table(rs), enrolled_store, claim_table(rs), eligible_store):
                _sync_indexes(conn, t)  # indexes added or replaced since the tables were built: no rebuild
            return None
        return refresh(conn, rs)


def add_cli(sub) -> None:
    from ccm_core.cli import add_db_argument

    p = sub.add_parser(
        "refresh-store",
        help="rebuild the stored patient-month (after a rules or code change)",
        description="Rebuild the stored patient-month the KPIs read. Imports, reverts and the demo "
        "generator keep it current; run this after changing rules or upgrading, or "
        "with --force to rebuild regardless.",
    )
    add_db_argument(p)
    p.add_argument("--force", action="store_true", help="rebuild even when the store is current")
    p.set_defaults(func=_cmd_refresh)


def _cmd_refresh(args) -> int:
    import time

    engine = db.make_engine(args.db)
    t0 = time.perf_counter()
    if args.force:
        with engine.begin() as conn:
            out = refresh(conn)
    else:
        out = ensure_current(engine)
    if out is not None:
        vacuum(engine)
    secs = time.perf_counter() - t0
    print(json.dumps({"rebuilt": out is not None, **(out or {}), "seconds": round(secs, 2)}))
    return 0
