"""Appeal deadlines and the likely fix for a denial, as data (``appeal_deadlines.csv``, ``denial_fixes.csv``).

The Medicare Part B appeal clock (42 CFR 405.942, 405.962) runs from the date the provider *receives* the
notice, presumed to be 5 calendar days after the date on the notice; a claim the payer could not process
(RARC MA130) has no appeal rights, and a new claim is due within 1 calendar year of the date of service
(42 CFR 424.44).  The periods live in ``appeal_deadlines.csv`` with their source; see ``SOURCES.md``.
"""

from __future__ import annotations

import csv
import datetime as dt
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

HERE = Path(__file__).parent
ROUTES = ("appeal", "correct", "recheck", "write_off")
UNPROCESSABLE_RARC = "MA130"


@dataclass(frozen=True)
class DeadlineRule:
    key: str  # redetermination, reconsideration, corrected_claim
    action: str
    period: int
    unit: str  # days or years
    receipt_days: int  # days added to the notice date for its presumed receipt
    counted_from: str
    status: str
    source: str

    def deadline(self, start: dt.date) -> dt.date:
        """The last day to file, counted from ``start`` (the notice date, or the date of service)."""
        received = start + dt.timedelta(days=self.receipt_days)
        if self.unit == "days":
            return received + dt.timedelta(days=self.period)
        if self.unit == "years":
            year = received.year + self.period
            try:
                return received.replace(year=year)
            except ValueError:  # 29 February -> 28 February
                return received.replace(year=year, day=28)
        raise ValueError(f"Unknown deadline unit {self.unit!r}")

    def deadline_series(self, start):
        """``deadline`` over a pandas datetime Series (the same arithmetic, vectorised)."""
        import pandas as pd

        received = start + pd.Timedelta(days=self.receipt_days)
        if self.unit == "days":
            return received + pd.Timedelta(days=self.period)
        if self.unit == "years":
            return received + pd.DateOffset(years=self.period)  # 29 February -> 28 February
        raise ValueError(f"Unknown deadline unit {self.unit!r}")


@dataclass(frozen=True)
class Fix:
    code: str
    kind: str  # CARC or RARC
    route: str
    fix: str
    status: str
    source: str


def _read(name: str) -> list[dict[str, str]]:
    with open(HERE / name, newline="", encoding="utf-8") as fh:
        return list(csv.DictReader(fh))


@lru_cache(maxsize=1)
def deadline_rules() -> dict[str, DeadlineRule]:
    out = {}
    for r in _read("appeal_deadlines.csv"):
        out[r["key"]] = DeadlineRule(
            r["key"],
            r["action"],
            int(r["period"]),
            r["unit"],
            int(r["receipt_days"]),
            r["counted_from"],
            r["status"],
            r["source"],
        )
    return out


@lru_cache(maxsize=1)
def fixes() -> dict[tuple[str, str], Fix]:
    out = {}
    for r in _read("denial_fixes.csv"):
        if r["route"] not in ROUTES:
            raise ValueError(f"denial_fixes.csv: unknown route {r['route']!r} for {r['code']}")
        out[(r["kind"], r["code"])] = Fix(r["code"], r["kind"], r["route"], r["fix"], r["status"], r["source"])
    return out


def appeal_deadline(key: str, start: dt.date) -> dt.date:
    """``appeal_deadline("redetermination", notice_date)``: the last day to file that appeal."""
    return deadline_rules()[key].deadline(start)


def likely_fix(carcs: list[str], rarcs: list[str]) -> Fix | None:
    """The fix for a denied line: an unprocessable claim (MA130) first, else the first CARC with a known fix."""
    table = fixes()
    if UNPROCESSABLE_RARC in rarcs:
        return table[("RARC", UNPROCESSABLE_RARC)]
    for code in carcs:
        if ("CARC", code) in table:
            return table[("CARC", code)]
    return None
