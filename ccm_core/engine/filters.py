"""The filter set every page, KPI and cache key shares.

Frozen and hashable so the app can cache a result per filter set (and per
data version); empty tuples mean "all".
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace

from sqlalchemy import and_, true
from sqlalchemy.sql import ColumnElement

from ccm_core.storage.db import add_months, format_month


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
