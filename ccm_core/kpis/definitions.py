"""What every number on screen carries: its written definition.

Each KPI function in ``ccm_core.kpis.program`` (and ``kpis_extra``) has a ``KpiDefinition`` registered in
``KPI_DEFINITIONS`` (by key) and returns a ``KpiResult`` (or a small frame
plus its definition), so a page can show "what is this number" one click away.
A KPI module keeps its own ``Definitions`` (``D``) and defines with ``D.define``; ``rate`` is the one
"n/a when the denominator is empty" division every rate uses.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import pandas as pd


@dataclass(frozen=True)
class KpiDefinition:
    key: str
    name: str
    numerator: str
    denominator: str
    exclusions: str
    source: str
    unit: str = "count"  # count, rate, minutes, dollars, days

    def as_markdown(self) -> str:
        return (
            f"**{self.name}**\n\n- Numerator: {self.numerator}\n- Denominator: {self.denominator}\n"
            f"- Exclusions: {self.exclusions}\n- Source: {self.source}"
        )


@dataclass(frozen=True)
class KpiResult:
    """A single KPI value. ``value`` is None when the denominator is empty (shown as "n/a")."""

    definition: KpiDefinition
    value: float | int | None
    numerator: float | int | None = None
    denominator: float | int | None = None
    extra: dict[str, Any] = field(default_factory=dict)


KPI_DEFINITIONS: dict[str, KpiDefinition] = {}


def define(
    key: str, name: str, numerator: str, denominator: str, exclusions: str, source: str, unit: str = "count"
) -> KpiDefinition:
    d = KpiDefinition(key, name, numerator, denominator, exclusions, source, unit)
    KPI_DEFINITIONS[key] = d
    return d


class Definitions(dict[str, KpiDefinition]):
    """One KPI module's definitions by key; each is registered in ``KPI_DEFINITIONS`` too."""

    def define(
        self, key: str, name: str, numerator: str, denominator: str, exclusions: str, source: str, unit: str = "count"
    ) -> KpiDefinition:
        self[key] = define(key, name, numerator, denominator, exclusions, source, unit)
        return self[key]

    def frame(self, df: pd.DataFrame, key: str) -> pd.DataFrame:
        """``df`` carrying its definition (``attrs["definition"]``), as every KPI frame does."""
        df.attrs["definition"] = self[key]
        return df


def rate(num, den) -> float | None:
    """``num / den`` as a float, or None ("n/a") when the denominator is empty or zero."""
    return None if not den else float(num) / float(den)
