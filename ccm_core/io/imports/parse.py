"""Column parsers: whole columns at once (pandas), each returning values and a per-row problem.

Vectorised because a time log has hundreds of thousands of rows; a problem is
a short sentence about the value (the report adds file, row and column).
"""

from __future__ import annotations

import datetime as dt

import numpy as np
import pandas as pd

from ccm_core.io.imports.specs import Col

ICD10_RE = r"[A-TV-Z][0-9][0-9A-Z](?:[0-9A-Z]{1,4})?"
CPT_RE = r"(?:[0-9]{5}|[0-9]{4}[FT]|[A-Z][0-9]{4})"
MBI_RE = (
    r"[1-9][AC-HJKMNP-RT-Y][AC-HJKMNP-RT-Y0-9][0-9][AC-HJKMNP-RT-Y][AC-HJKMNP-RT-Y0-9][0-9][AC-HJKMNP-RT-Y]{2}[0-9]{2}"
)
MIN_DATE = pd.Timestamp("1900-01-01")

TRUE_WORDS = {"true", "t", "yes", "y", "1", "x", "1.0"}
FALSE_WORDS = {"false", "f", "no", "n", "0", "0.0"}


def _none_series(index) -> pd.Series:
    return pd.Series([None] * len(index), index=index, dtype=object)


def _quote(s: pd.Series) -> pd.Series:
    return "'" + s.astype(str).str.slice(0, 60) + "'"


def npi_valid(digits: pd.Series) -> pd.Series:
    """Luhn check over "80840" + the first 9 digits (CMS NPI standard), for 10-digit strings."""
    ok = digits.str.fullmatch(r"[0-9]{10}").fillna(False).astype(bool)
    out = pd.Series(False, index=digits.index)
    if not ok.any():
        return out
    arr = np.frombuffer("".join(digits[ok]).encode(), dtype=np.uint8).reshape(-1, 10) - ord("0")
    base = arr[:, :9].astype(np.int64)
    doubled = base[:, 0::2] * 2  # positions 1,3,5,7,9: every other digit from the right of the 9-digit base
    doubled = np.where(doubled > 9, doubled - 9, doubled)
    total = 24 + doubled.sum(axis=1) + base[:, 1::2].sum(axis=1)  # 24 = Luhn contribution of prefix 80840
    check = (10 - total % 10) % 10
    out.loc[ok] = check == arr[:, 9]
    return out


def npi_check_digit(first9: str) -> str:
    """The check digit that makes ``first9 + digit`` a valid NPI (used to build examples and tests)."""
    d = [int(c) for c in first9]
    total = 24
    for i, v in enumerate(d):
        if i % 2 == 0:
            v *= 2
            v = v - 9 if v > 9 else v
        total += v
    return str((10 - total % 10) % 10)


def _parse_dates(s: pd.Series) -> pd.Series:
    """ISO 2025-11-03 (optionally with a midnight time) or US 11/03/2025; NaT where neither."""
    iso_part = s.str.extract(r"^(\d{4}-\d{2}-\d{2})(?:[ T]00:00(?::00)?)?$")[0]
    out = pd.to_datetime(iso_part, format="%Y-%m-%d", errors="coerce").astype("datetime64[us]")
    us_part = s.str.extract(r"^(\d{1,2}/\d{1,2}/\d{4})(?: 0?0:00(?::00)?)?$")[0]
    need = out.isna() & us_part.notna()
    if need.any():
        us = pd.to_datetime(us_part.where(need), format="%m/%d/%Y", errors="coerce").astype("datetime64[us]")
        out = out.where(~need, us)
    return out


DATETIME_FORMATS = (
    "%Y-%m-%d %H:%M:%S",
    "%Y-%m-%d %H:%M",
    "%Y-%m-%dT%H:%M:%S",
    "%Y-%m-%dT%H:%M",
    "%m/%d/%Y %H:%M:%S",
    "%m/%d/%Y %H:%M",
    "%m/%d/%Y %I:%M %p",
    "%m/%d/%Y %I:%M:%S %p",
)
TIME_FORMATS = ("%H:%M", "%H:%M:%S", "%I:%M %p", "%I:%M:%S %p")


def _parse_datetimes(s: pd.Series, formats) -> pd.Series:
    # Microsecond unit: a typo like year 3026 must become a "date in the future"
    # problem, not an out-of-bounds error from nanosecond timestamps.
    out = pd.Series(pd.NaT, index=s.index, dtype="datetime64[us]")
    for fmt in formats:
        need = out.isna() & s.notna()
        if not need.any():
            break
        parsed = pd.to_datetime(s.where(need), format=fmt, errors="coerce").astype("datetime64[us]")
        out = out.where(~need, parsed)
    return out


def _to_py_dates(ts: pd.Series) -> pd.Series:
    out = _none_series(ts.index)
    ok = ts.notna()
    if ok.any():
        out.loc[ok] = pd.Series(ts[ok].dt.date, index=ts[ok].index, dtype=object)
    return out


def _to_py_datetimes(ts: pd.Series) -> pd.Series:
    out = _none_series(ts.index)
    ok = ts.notna()
    if ok.any():
        out.loc[ok] = pd.Series(ts[ok].dt.to_pydatetime(), index=ts[ok].index, dtype=object)
    return out


def parse_column(
    raw: pd.Series, col: Col, today: dt.date, base_dates: pd.Series | None = None
) -> tuple[pd.Series, pd.Series]:
    """``raw`` strings -> (typed values as Python objects or None, problem text or None)."""
    s = raw.astype(object).where(raw.notna(), "").astype(str).str.strip()
    empty = s == ""
    values = _none_series(s.index)
    problem = _none_series(s.index)
    filled = ~empty
    t = col.type

    def bad(mask: pd.Series, message) -> None:
        mask = mask & problem.isna()
        if mask.any():
            problem.loc[mask] = message[mask] if isinstance(message, pd.Series) else message

    if t == "text":
        values.loc[filled] = s[filled]
        if col.max_len:
            bad(filled & (s.str.len() > col.max_len), f"longer than {col.max_len} characters")
    elif t in ("int", "money", "number"):
        txt = (
            s.str.replace(r"[$,\s]", "", regex=True)
            if t == "money"
            else s.str.replace(r"\.0+$", "", regex=True)
            if t == "int"
            else s
        )
        pattern = r"[+-]?\d+" if t == "int" else r"[+-]?(?:\d+\.?\d*|\.\d+)"
        ok = filled & txt.str.fullmatch(pattern).fillna(False).astype(bool)
        bad(
            filled & ~ok,
            _quote(s)
            + {"int": " is not a whole number", "money": " is not an amount", "number": " is not a number"}[t],
        )
        if ok.any():
            nums = pd.to_numeric(txt.where(ok), errors="coerce")
            if t == "int":
                big = ok & (nums.abs() > 2_000_000_000)
                bad(big, _quote(s) + " is too large")
                ok = ok & ~big
                values.loc[ok] = [int(v) for v in nums[ok]]
            else:
                values.loc[ok] = [round(float(v), 2) for v in nums[ok]]
            if col.min_value is not None:
                bad(ok & (nums < col.min_value), _quote(s) + f" is below the minimum {col.min_value:g}")
            if col.max_value is not None:
                bad(ok & (nums > col.max_value), _quote(s) + f" is above the maximum {col.max_value:g}")
    elif t == "date":
        ts = _parse_dates(s.where(filled))
        ok = filled & ts.notna()
        bad(filled & ~ok, _quote(s) + " is not a date (use 2025-11-03 or 11/03/2025)")
        bad(ok & (ts < MIN_DATE), _quote(s) + " is before 1900")
        if not col.future_ok:
            bad(ok & (ts > pd.Timestamp(today)), _quote(s) + " is in the future")
        values = _to_py_dates(ts.where(ok))
    elif t == "datetime":
        ts = _parse_datetimes(s.where(filled), DATETIME_FORMATS)
        if base_dates is not None:  # a time alone, on the row's own date
            tonly = _parse_datetimes(s.where(filled & ts.isna()), TIME_FORMATS)
            has_base = base_dates.notna()
            if (tonly.notna() & has_base).any():
                base = pd.to_datetime(base_dates.where(has_base), errors="coerce")
                combined = base + (tonly - tonly.dt.normalize())
                ts = ts.where(~(tonly.notna() & has_base), combined)
        ok = filled & ts.notna()
        bad(filled & ~ok, _quote(s) + " is not a date and time (use 2025-11-03 14:05)")
        bad(ok & (ts < MIN_DATE), _quote(s) + " is before 1900")
        bad(ok & (ts.dt.normalize() > pd.Timestamp(today)), _quote(s) + " is in the future")
        values = _to_py_datetimes(ts.where(ok))
    elif t == "bool":
        low = s.str.lower()
        is_true, is_false = low.isin(TRUE_WORDS), low.isin(FALSE_WORDS)
        bad(filled & ~is_true & ~is_false, _quote(s) + " is not yes/no")
        values.loc[is_true] = True
        values.loc[is_false] = False
    elif t == "month":
        ym = s.str.extract(r"^(\d{4})-?(\d{2})$")
        my = s.str.extract(r"^(\d{1,2})/(\d{4})$")
        year = pd.to_numeric(ym[0], errors="coerce").fillna(pd.to_numeric(my[1], errors="coerce"))
        month = pd.to_numeric(ym[1], errors="coerce").fillna(pd.to_numeric(my[0], errors="coerce"))
        as_date = _parse_dates(s.where(filled & year.isna()))
        year = year.fillna(as_date.dt.year)
        month = month.fillna(as_date.dt.month)
        ok = filled & year.notna() & month.between(1, 12) & (year >= 1900)
        bad(filled & ~ok, _quote(s) + " is not a month (use 2025-11)")
        key = (year * 100 + month).where(ok)
        bad(ok & (key > today.year * 100 + today.month), _quote(s) + " is in the future")
        values.loc[ok] = [int(v) for v in key[ok]]
    elif t == "choice":
        canon = {c.lower(): c for c in col.choices}
        mapped = s.str.lower().map(canon)
        ok = filled & mapped.notna()
        bad(filled & ~ok, _quote(s) + " is not one of: " + ", ".join(col.choices))
        values.loc[ok] = mapped[ok]
    elif t == "icd10":
        norm = s.str.upper().str.replace(r"[.\s]", "", regex=True)
        ok = filled & norm.str.fullmatch(ICD10_RE).fillna(False).astype(bool)
        bad(filled & ~ok, _quote(s) + " is not an ICD-10-CM code (e.g. E11.9)")
        values.loc[ok] = norm[ok]
    elif t == "icd10_list":
        parts = s.where(filled).str.upper().str.replace(".", "", regex=False).str.split(r"[,;\s]+", regex=True)
        exploded = parts.explode()
        exploded = exploded[exploded.notna() & (exploded != "")].astype(object).astype(str)
        part_ok = exploded.str.fullmatch(ICD10_RE).fillna(False).astype(bool)
        row_bad = (~part_ok).groupby(level=0).any().reindex(s.index, fill_value=False)
        bad(filled & row_bad, _quote(s) + " holds a code that is not ICD-10-CM (separate codes with commas)")
        joined = exploded.groupby(level=0).agg(",".join).reindex(s.index)
        ok = filled & ~row_bad & joined.notna()
        bad(ok & (joined.str.len() > 80), "more diagnosis codes than fit (80 characters)")
        values.loc[ok] = joined[ok]
    elif t == "cpt":
        norm = s.str.upper()
        ok = filled & norm.str.fullmatch(CPT_RE).fillna(False).astype(bool)
        bad(filled & ~ok, _quote(s) + " is not a CPT (5 digits) or HCPCS (letter + 4 digits) code")
        values.loc[ok] = norm[ok]
    elif t == "npi":
        digits = s.str.replace(r"\.0$", "", regex=True)
        shape = filled & digits.str.fullmatch(r"[0-9]{10}").fillna(False).astype(bool)
        bad(filled & ~shape, _quote(s) + " is not an NPI (10 digits)")
        luhn = npi_valid(digits.where(shape, ""))
        bad(shape & ~luhn, _quote(s) + " is not a valid NPI (check digit fails)")
        ok = shape & luhn
        values.loc[ok] = digits[ok]
    elif t == "mbi":
        norm = s.str.upper().str.replace(r"[-\s]", "", regex=True)
        ok = filled & norm.str.fullmatch(MBI_RE).fillna(False).astype(bool)
        bad(filled & ~ok, _quote(s) + " is not a Medicare Beneficiary Identifier (11 characters, e.g. 1EG4-TE5-MK73)")
        values.loc[ok] = norm[ok]
    elif t == "pos":
        norm = s.str.replace(r"\.0$", "", regex=True).str.zfill(2)
        ok = filled & norm.str.fullmatch(r"[0-9]{2}").fillna(False).astype(bool)
        bad(filled & ~ok, _quote(s) + " is not a place-of-service code (2 digits)")
        values.loc[ok] = norm[ok]
    else:  # pragma: no cover - specs are static
        raise ValueError(f"unknown column type {t}")

    if col.required:
        bad(empty, "required value is missing")
    elif col.default is not None:
        values.loc[empty] = col.default
    values.loc[problem.notna()] = None
    return values, problem
