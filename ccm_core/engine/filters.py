"""The filter set every page, KPI and cache key shares, and the choices the filters offer.

Frozen and hashable so the app can cache a result per filter set (and per
data version); empty tuples mean "all".  ``filter_options``, ``data_as_of`` and
``default_report_month`` give the sidebar its lists and its default month.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field, replace

from sqlalchemy import and_, func, select, true
from sqlalchemy.engine import Connection
from sqlalchemy.sql import ColumnElement

from ccm_core.storage.db import add_months, format_month, month_int
from ccm_core.storage.schema import PROGRAMS, clinic, patient, practitioner, staff, time_entry


@dataclass(frozen=True)
class Filters:
    month_from: int  # YYYYMM, inclusive
    month_to: int  # YYYYMM, inclusive
    clinic_ids: tuple[int, ...] = ()
    practitioner_ids: tuple[int, ...] = ()
    care_manager_ids: tuple[int, ...] = ()
    payers: tuple[str, ...] = ()
    programs: tuple[str, ...] = field(default=("CCM",))

    def __post_init__(self):
        if self.month_from > self.month_to:
            raise ValueError(
                f"Date range is backwards: {format_month(self.month_from)} > {format_month(self.month_to)}"
            )

    @classmethod
    def for_month(cls, month: int, **kw) -> Filters:
        return cls(month_from=month, month_to=month, **kw)

    def with_months(self, month_from: int, month_to: int | None = None) -> Filters:
        return replace(self, month_from=month_from, month_to=month_to if month_to is not None else month_from)

    def month_before(self) -> Filters:
        """The same filters one month earlier (both ends): the "vs last month" comparison of the tiles."""
        return self.with_months(add_months(self.month_from, -1), add_months(self.month_to, -1))

    def months(self) -> list[int]:
        out, m = [], self.month_from
        while m <= self.month_to:
            out.append(m)
            m = add_months(m, 1)
        return out

    def clause(self, clinic, practitioner, care_manager, payer) -> ColumnElement[bool]:
        """WHERE clause for clinic, practitioner, care manager and payer on the given columns (a patient's,
        a claim's, a stored table's)."""
        parts = [
            col.in_(chosen)
            for col, chosen in (
                (clinic, self.clinic_ids),
                (practitioner, self.practitioner_ids),
                (care_manager, self.care_manager_ids),
                (payer, self.payers),
            )
            if chosen
        ]
        return and_(*parts) if parts else true()

    def patient_clause(self, patient_table) -> ColumnElement[bool]:
        """WHERE clause on the patient table for clinic, practitioner, care manager and payer."""
        c = patient_table.c
        return self.clause(c.clinic_id, c.billing_practitioner_id, c.care_manager_id, c.payer)

    def describe(self) -> str:
        rng = (
            format_month(self.month_from)
            if self.month_from == self.month_to
            else (f"{format_month(self.month_from)} to {format_month(self.month_to)}")
        )
        bits = [rng]
        for label, vals in (
            ("clinic", self.clinic_ids),
            ("practitioner", self.practitioner_ids),
            ("care manager", self.care_manager_ids),
            ("payer", self.payers),
        ):
            if vals:
                bits.append(f"{len(vals)} {label}{'' if len(vals) == 1 else 's'}")
        if self.programs and self.programs != ("CCM",):
            bits.append("programs " + ", ".join(self.programs))
        return "; ".join(bits)


# --------------------------------------------------------------------------- filter choices and data dates
def filter_options(conn: Connection) -> dict[str, list]:
    """The choices the sidebar filters offer (small lists, one query each)."""
    clinics = conn.execute(select(clinic.c.id, clinic.c.name).order_by(clinic.c.name)).all()
    practs = conn.execute(
        select(
            practitioner.c.id, practitioner.c.last_name, practitioner.c.first_name, practitioner.c.credential
        ).order_by(practitioner.c.last_name, practitioner.c.first_name)
    ).all()
    cms = conn.execute(
        select(staff.c.id, staff.c.last_name, staff.c.first_name, staff.c.credential)
        .where(staff.c.role == "care_manager")
        .order_by(staff.c.last_name, staff.c.first_name)
    ).all()
    payers = conn.execute(select(patient.c.payer).distinct().order_by(patient.c.payer)).scalars().all()
    months = (
        conn.execute(select(time_entry.c.service_month).distinct().order_by(time_entry.c.service_month)).scalars().all()
    )
    return {
        "clinics": [(r.id, r.name) for r in clinics],
        "practitioners": [(r.id, f"{r.last_name}, {r.first_name} {r.credential}") for r in practs],
        "care_managers": [(r.id, f"{r.last_name}, {r.first_name} {r.credential}") for r in cms],
        "payers": list(payers),
        "programs": list(PROGRAMS),
        "months": [int(m) for m in months],
    }


def data_as_of(conn: Connection, today: dt.date | None = None) -> dt.date | None:
    """The last day with recorded time, never after today: the "month to date" reference day."""
    today = today or dt.date.today()
    latest = conn.execute(
        select(func.max(time_entry.c.service_date)).where(time_entry.c.service_date <= today)
    ).scalar()
    if isinstance(latest, str):  # SQLite without type info in an aggregate
        latest = dt.date.fromisoformat(latest[:10])
    return latest


def default_report_month(available_months: list[int], today: dt.date | None = None) -> int:
    """The last complete calendar month, or the newest month with data if the data ends earlier."""
    today = today or dt.date.today()
    last_complete = add_months(month_int(today), -1)
    if not available_months:
        return last_complete
    older = [m for m in available_months if m <= last_complete]
    return max(older) if older else min(available_months)
