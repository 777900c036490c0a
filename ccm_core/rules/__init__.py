"""Billing rules as versioned data: codes, fees per year, conflicts, CARC/RARC texts, chronic conditions.

Rules change every calendar year, so none of them live in code: the CSV files
beside this module hold them with their source and a V / S / UNVERIFIED tag
(see ``SOURCES.md``).  UNVERIFIED values are defaults that a practice can
override (``CCM_RULES_FILE`` JSON, then ``setting`` rows ``rules.*``) and are
labelled wherever they are used.

``load(conn)`` returns the rule set including the database's overrides; the
module-level helpers (``fee``, ``carc_text``...) use the shipped defaults.
"""

from __future__ import annotations

import csv
import datetime as dt
import json
import os
from dataclasses import dataclass, field, replace
from functools import lru_cache
from pathlib import Path

HERE = Path(__file__).parent
SETTING_PREFIX = "rules."
# Medicare Advantage plans must cover every Part B benefit, CCM included (plan rules on cost-sharing differ).
DEFAULT_ELIGIBLE_PAYERS = ("Medicare Part B", "Medicare Advantage")
# The payer vocabulary: the values ``patient.payer`` / ``claim.payer`` are expected to hold.  An import warns
# about any other value (it would silently fall outside the eligible payers); docs/import-format.md lists them.
PAYER_VOCABULARY = ("Medicare Part B", "Medicare Advantage", "Medicaid", "Commercial", "Self-pay", "Other")
# Other spellings read as a vocabulary value (case-insensitive).  An admin adds more with the setting
# ``rules.payer_aliases`` = "Medicare FFS plan=Medicare Part B; Humana MA=Medicare Advantage".
DEFAULT_PAYER_ALIASES = {
    "Medicare FFS": "Medicare Part B",
    "Medicare Fee-for-Service": "Medicare Part B",
    "Original Medicare": "Medicare Part B",
    "Traditional Medicare": "Medicare Part B",
    "Medicare": "Medicare Part B",
    "Medicare Part C": "Medicare Advantage",
    "Medicare Advantage Plan": "Medicare Advantage",
    "MA": "Medicare Advantage",
    "Medicare Replacement": "Medicare Advantage",
}


def normalize_icd10(code: str | None) -> str:
    """``"e11.9 "`` -> ``"E119"``: claims and EHR exports differ on dots and case."""
    return (code or "").strip().strip("'\"").replace(".", "").upper()


def _int(v: str | None) -> int | None:
    v = (v or "").strip()
    return int(v) if v and v.lower() != "none" else None


def _read(name: str) -> list[dict[str, str]]:
    with open(HERE / name, newline="", encoding="utf-8") as fh:
        return list(csv.DictReader(fh))


@dataclass(frozen=True)
class Code:
    code: str
    family: str  # CCM, PCM, APCM, BHI, CoCM, RPM, TCM, G0506, RHC
    track: str  # non_complex, complex, practitioner, pcm_practitioner, pcm_staff, ...
    role: str  # base or addon
    description: str
    threshold_minutes: int | None
    base_code: str | None
    increment_minutes: int | None
    unit_cap: int | None  # None = no cap known
    performer: str  # staff_or_practitioner, practitioner
    status: str
    cap_status: str
    source: str

    @property
    def is_addon(self) -> bool:
        return self.role == "addon"


@dataclass(frozen=True)
class Fee:
    code: str
    year: int
    effective_from: dt.date
    effective_to: dt.date
    amount: float | None
    status: str  # V, S, UNVERIFIED, or "UNVERIFIED (carried forward from 2025)", "override"
    note: str

    @property
    def month_from(self) -> int:
        return self.effective_from.year * 100 + self.effective_from.month

    @property
    def month_to(self) -> int:
        return self.effective_to.year * 100 + self.effective_to.month


@dataclass(frozen=True)
class Conflict:
    key: str
    codes_a: frozenset[str]
    codes_b: frozenset[str]
    same_practitioner_allowed: str  # yes / no / unverified / n/a
    different_practitioner_allowed: str
    status: str
    note: str


def _expand_codes(text: str) -> frozenset[str]:
    """``"99490 90951-90970"`` -> the codes, ranges expanded (numeric CPT ranges only)."""
    out: set[str] = set()
    for tok in text.split():
        if "-" in tok:
            lo, hi = tok.split("-")
            out.update(str(n) for n in range(int(lo), int(hi) + 1))
        else:
            out.add(tok)
    return frozenset(out)


def _as_month(when) -> int:
    """Accept a year (2025), a YYYYMM month (202503) or a date."""
    if isinstance(when, dt.date):
        return when.year * 100 + when.month
    when = int(when)
    return when * 100 + 1 if when < 10000 else when


@dataclass
class RuleSet:
    codes: dict[str, Code]
    fees: dict[str, list[Fee]]  # code -> rows sorted by effective_from
    conflicts: dict[str, Conflict]
    carc: dict[str, str]
    rarc: dict[str, str]
    eligible_payers: tuple[str, ...] = DEFAULT_ELIGIBLE_PAYERS
    overrides: dict[str, str] = field(default_factory=dict)
    payer_aliases: dict[str, str] = field(default_factory=lambda: dict(DEFAULT_PAYER_ALIASES))

    # ---------------------------------------------------------------- payers
    def payer_canonical(self, value: str | None) -> str | None:
        """The vocabulary value a payer spelling stands for (case-insensitive), or None when it is outside."""
        v = (value or "").strip().lower()
        for name in (*PAYER_VOCABULARY, *self.eligible_payers):
            if name.lower() == v:
                return name
        for alias, name in self.payer_aliases.items():
            if alias.lower() == v:
                return name
        return None

    def eligible_payer_spellings(self) -> tuple[str, ...]:
        """Lower-cased spellings of the eligible payers: their names and every alias that maps to one."""
        out = {p.lower() for p in self.eligible_payers}
        out |= {a.lower() for a, name in self.payer_aliases.items() if name in self.eligible_payers}
        return tuple(sorted(out))

    def payer_warnings(self, values) -> list[str]:
        """Import warnings for payer values outside the vocabulary (and the spellings read as another name)."""
        outside: dict[str, int] = {}
        read_as: dict[str, str] = {}
        for v in values:
            v = (v or "").strip()
            if not v:
                continue
            name = self.payer_canonical(v)
            if name is None:
                outside[v] = outside.get(v, 0) + 1
            elif name != v:
                read_as[v] = name
        out = []
        if outside:
            listed = ", ".join(f"'{v}' ({n} row{'s' if n != 1 else ''})" for v, n in sorted(outside.items()))
            out.append(
                f"payer values outside the payer vocabulary: {listed}. They do not count as an eligible payer "
                f"({', '.join(self.eligible_payers)}), so these patients drop out of the eligible population; "
                "correct the file or have an admin map the spelling (setting rules.payer_aliases; see "
                "docs/import-format.md, Payer vocabulary)."
            )
        if read_as:
            out.append(
                "payer spellings read as vocabulary values: "
                + ", ".join(f"'{v}' = '{n}'" for v, n in sorted(read_as.items()))
                + "."
            )
        return out

    # ---------------------------------------------------------------- codes
    def code(self, code: str) -> Code:
        try:
            return self.codes[code]
        except KeyError:
            raise KeyError(f"Unknown billing code {code!r}; add it to ccm_core/rules/codes.csv") from None

    def codes_of(self, family: str | None = None, track: str | None = None) -> list[str]:
        return [
            c.code
            for c in self.codes.values()
            if (family is None or c.family == family) and (track is None or c.track == track)
        ]

    def family_of(self, code: str) -> str | None:
        c = self.codes.get(code)
        return c.family if c else None

    def unit_cap(self, code: str) -> int | None:
        return self.code(code).unit_cap

    def track_codes(self, track: str) -> tuple[str, str | None]:
        """(base, add-on) codes of a time-based track, e.g. ``non_complex`` -> ("99490", "99439")."""
        base = next(c.code for c in self.codes.values() if c.track == track and c.role == "base")
        addon = next((c.code for c in self.codes.values() if c.track == track and c.role == "addon"), None)
        return base, addon

    # ---------------------------------------------------------------- fees
    def fee_entry(self, code: str, when) -> Fee | None:
        """The fee row in force for ``when`` (year, YYYYMM or date); nearest year outside the table."""
        rows = self.fees.get(code)
        if not rows:
            return None
        m = _as_month(when)
        for r in rows:
            if r.month_from <= m <= r.month_to:
                return r
        if m < rows[0].month_from:
            r = rows[0]
            return replace(r, status=f"UNVERIFIED (no {m // 100} row; {r.year} amount used)")
        r = rows[-1]
        return replace(r, status=f"UNVERIFIED (no {m // 100} row; {r.year} amount used)")

    def fee(self, code: str, when) -> float | None:
        e = self.fee_entry(code, when)
        return e.amount if e else None

    def fee_periods(self, code: str) -> list[tuple[int, int, float]]:
        """(month_from, month_to, amount) rows for building SQL CASE expressions."""
        return [(r.month_from, r.month_to, float(r.amount or 0.0)) for r in self.fees.get(code, [])]

    # ---------------------------------------------------------------- texts
    def carc_text(self, code: str) -> str:
        return self.carc.get(str(code).strip().upper(), "(text not in the shipped CARC list)")

    def rarc_text(self, code: str) -> str:
        return self.rarc.get(str(code).strip().upper(), "(text not in the shipped RARC list)")

    # ---------------------------------------------------------------- conflicts
    def conflict(self, key: str) -> Conflict:
        return self.conflicts[key]

    # ---------------------------------------------------------------- what needs checking
    def unverified(self) -> list[dict[str, object]]:
        """Every UNVERIFIED item in force, with its current value: what an admin should confirm."""
        out: list[dict[str, object]] = []
        for c in self.codes.values():
            if c.cap_status == "UNVERIFIED":
                out.append({"item": f"rules.unit_cap.{c.code}", "value": c.unit_cap, "note": c.source})
        for code, rows in self.fees.items():
            for r in rows:
                if r.status.startswith("UNVERIFIED"):
                    out.append(
                        {"item": f"rules.fee.{code}.{r.year}", "value": r.amount, "note": f"{r.status}: {r.note}"}
                    )
        for k in self.conflicts.values():
            if k.status == "UNVERIFIED":
                out.append({"item": f"conflict {k.key}", "value": k.same_practitioner_allowed, "note": k.note})
        return out


# --------------------------------------------------------------------------- building
def _base_fees() -> dict[str, list[Fee]]:
    fees: dict[str, list[Fee]] = {}
    for r in _read("fee_schedule.csv"):
        amount = r["amount"].strip()
        fees.setdefault(r["code"], []).append(
            Fee(
                code=r["code"],
                year=int(r["year"]),
                effective_from=dt.date.fromisoformat(r["effective_from"]),
                effective_to=dt.date.fromisoformat(r["effective_to"]),
                amount=float(amount) if amount else None,
                status=r["status"],
                note=r["note"],
            )
        )
    return {k: sorted(v, key=lambda f: f.effective_from) for k, v in fees.items()}


def _carry_forward(fees: dict[str, list[Fee]]) -> dict[str, list[Fee]]:
    """An UNVERIFIED year without an amount pays the previous known amount, labelled as such."""
    out = {}
    for code, rows in fees.items():
        fixed, last = [], None
        for r in rows:
            if r.amount is None and last is not None:
                r = replace(r, amount=last.amount, status=f"UNVERIFIED (carried forward from {last.year})")
            fixed.append(r)
            if r.amount is not None:
                last = r
        out[code] = fixed
    return out


def _apply_overrides(rs: RuleSet, overrides: dict[str, str]) -> RuleSet:
    codes = dict(rs.codes)
    fees = {k: list(v) for k, v in rs.fees.items()}
    payers = rs.eligible_payers
    aliases = dict(rs.payer_aliases)
    for key, value in overrides.items():
        parts = key.split(".")
        try:
            if parts[:2] == ["rules", "fee"] and len(parts) == 4:
                code, year = parts[2], int(parts[3])
                amount = float(value)
                rows = fees.setdefault(code, [])
                idx = next((i for i, r in enumerate(rows) if r.year == year and r.effective_from.month == 1), None)
                new = Fee(code, year, dt.date(year, 1, 1), dt.date(year, 12, 31), amount, "override", f"set by {key}")
                if idx is None:
                    rows.append(new)
                    rows.sort(key=lambda f: f.effective_from)
                else:
                    rows[idx] = replace(rows[idx], amount=amount, status="override", note=f"set by {key}")
            elif parts[:2] == ["rules", "unit_cap"] and len(parts) == 3 and parts[2] in codes:
                codes[parts[2]] = replace(codes[parts[2]], unit_cap=_int(value), cap_status="override")
            elif key == "rules.eligible_payers":
                payers = tuple(p.strip() for p in value.split(",") if p.strip())
            elif key == "rules.payer_aliases":
                for pair in value.split(";"):
                    if pair.strip():
                        alias, _, name = pair.partition("=")
                        if not name.strip():
                            raise ValueError
                        aliases[alias.strip()] = name.strip()
        except ValueError:
            raise ValueError(f"Rule override {key}={value!r} is not a valid number") from None
    return replace(
        rs,
        codes=codes,
        fees=_carry_forward(fees),
        eligible_payers=payers,
        overrides=dict(overrides),
        payer_aliases=aliases,
    )


@lru_cache(maxsize=1)
def _shipped() -> RuleSet:
    codes = {}
    for r in _read("codes.csv"):
        codes[r["code"]] = Code(
            code=r["code"],
            family=r["family"],
            track=r["track"],
            role=r["role"],
            description=r["description"],
            threshold_minutes=_int(r["threshold_minutes"]),
            base_code=r["base_code"] or None,
            increment_minutes=_int(r["increment_minutes"]),
            unit_cap=_int(r["unit_cap"]),
            performer=r["performer"],
            status=r["status"],
            cap_status=r["cap_status"],
            source=r["source"],
        )
    conflicts = {
        r["key"]: Conflict(
            r["key"],
            _expand_codes(r["codes_a"]),
            _expand_codes(r["codes_b"]),
            r["same_practitioner_allowed"],
            r["different_practitioner_allowed"],
            r["status"],
            r["note"],
        )
        for r in _read("conflicts.csv")
    }
    carc = {r["code"]: r["text"] for r in _read("carc.csv")}
    rarc = {r["code"]: r["text"] for r in _read("rarc.csv")}
    return RuleSet(codes=codes, fees=_carry_forward(_base_fees()), conflicts=conflicts, carc=carc, rarc=rarc)


def _file_overrides() -> dict[str, str]:
    path = os.environ.get("CCM_RULES_FILE")
    if not path:
        return {}
    try:
        with open(path, encoding="utf-8") as fh:
            data = json.load(fh)
    except (OSError, json.JSONDecodeError) as exc:
        raise ValueError(f"CCM_RULES_FILE {path!r} could not be read as JSON: {exc}") from None
    return {str(k): str(v) for k, v in data.items() if str(k).startswith(SETTING_PREFIX)}


def _setting_overrides(conn) -> dict[str, str]:
    from sqlalchemy import select

    from ccm_core.storage import schema

    rows = conn.execute(
        select(schema.setting.c.key, schema.setting.c.value).where(schema.setting.c.key.like(SETTING_PREFIX + "%"))
    ).all()
    return {k: v for k, v in rows}


def load(conn=None) -> RuleSet:
    """The rules in force: shipped data, then ``CCM_RULES_FILE``, then the database's ``rules.*`` settings."""
    overrides = _file_overrides()
    if conn is not None:
        overrides.update(_setting_overrides(conn))
    base = _shipped()
    return _apply_overrides(base, overrides) if overrides else base


# --------------------------------------------------------------------------- chronic conditions
@lru_cache(maxsize=1)
def ccw_conditions() -> dict[str, str]:
    """CCW condition key -> description (30 conditions)."""
    return {r["condition"]: r["description"] for r in _read("ccw_conditions.csv")}


@lru_cache(maxsize=1)
def _ccw_by_code() -> dict[str, str]:
    out: dict[str, str] = {}
    for r in _read("ccw_codes.csv"):
        out.setdefault(r["icd10"], r["condition"])  # a code in two conditions keeps its first (rare)
    return out


@lru_cache(maxsize=1)
def _cci_chronic() -> dict[str, str]:
    return {r["icd10"]: r["body_system"] for r in _read("cci_chronic.csv")}


def ccw_condition(icd10: str) -> str | None:
    return _ccw_by_code().get(normalize_icd10(icd10))


def is_chronic(icd10: str) -> bool:
    """Chronic by the CCW 30 conditions or the broader AHRQ chronic indicator."""
    c = normalize_icd10(icd10)
    return c in _ccw_by_code() or c in _cci_chronic()


def condition_key(icd10: str) -> str | None:
    """What counts as one chronic condition: the CCW condition, else the AHRQ-chronic ICD-10 category.

    E119 and E1165 are both diabetes (one condition); a chronic code outside the
    CCW list counts once per 3-character category (``CCI:M81``).
    """
    c = normalize_icd10(icd10)
    ccw = _ccw_by_code().get(c)
    if ccw:
        return ccw
    if c in _cci_chronic():
        return "CCI:" + c[:3]
    return None


# --------------------------------------------------------------------------- module-level shortcuts
def fee(code: str, year) -> float | None:
    """National non-facility amount for ``code`` in ``year`` (or YYYYMM / date), shipped data."""
    return _shipped().fee(code, year)


def carc_text(code: str) -> str:
    return _shipped().carc_text(code)


def rarc_text(code: str) -> str:
    return _shipped().rarc_text(code)


def unit_cap(code: str) -> int | None:
    return _shipped().unit_cap(code)


def code(code: str) -> Code:
    return _shipped().code(code)
