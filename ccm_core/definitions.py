"""What every number on screen carries: its written definition.

Each KPI function in ``ccm_core.kpis`` has a ``KpiDefinition`` registered in
``KPI_DEFINITIONS`` (by key) and returns a ``KpiResult`` (or a small frame
plus its definition), so a page can show "what is this number" one click away.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


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
        return (f"**{self.name}**\n\n- Numerator: {self.numerator}\n- Denominator: {self.denominator}\n"
                f"- Exclusions: {self.exclusions}\n- Source: {self.source}")


@dataclass(frozen=True)
class KpiResult:
    """A single KPI value. ``value`` is None when the denominator is empty (shown as "n/a")."""
    definition: KpiDefinition
    value: float | int | None
    numerator: float | int | None = None
    denominator: float | int | None = None
    extra: dict[str, Any] = field(default_factory=dict)


KPI_DEFINITIONS: dict[str, KpiDefinition] = {}


def define(key: str, name: str, numerator: str, denominator: str, exclusions: str, source: str,
           unit: str = "count") -> KpiDefinition:
    d = KpiDefinition(key, name, numerator, denominator, exclusions, source, unit)
    KPI_DEFINITIONS[key] = d
    return d
