"""Small-cell suppression for meeting mode: pure functions over frames and chart specs (no Streamlit).

The rule (CMS cell-size suppression): a count of 1 to 10 is never shown, and neither is anything that
gives it back.  So, in meeting mode:

- a count cell of 1-10 reads "<11" in tables and tiles, and is left out of charts (no bar, no label, no
  tooltip: a bar's length on an axis is a number too);
- a share or rate computed from a suppressed cell is blanked with it (3% of a shown total gives the
  count back);
- complementary suppression: when a column of parts has exactly one suppressed cell and a total could
  give it back, the next smallest part is suppressed too (two unknowns with a known sum reveal neither);
- a rate whose numerator, denominator or complement (denominator - numerator) is 1-10 is not shown
  (``rate_reveals_small``).

ui/meeting.py applies these to tables and tiles, ui/charts.py to every chart it draws.  See
docs/security.md and tests/test_meeting_guarantee.py.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Iterable
from typing import Any

import pandas as pd

SMALL_CELL = 11
SUPPRESSED = "<11"
COUNT_FORMATS = frozenset({",d", "d"})  # how ui/charts.py formats counts (dollars are "$,.0f", rates "%")


def as_number(v: Any) -> float | None:
    """A finite number, or None for empty, NaN, text and booleans (what a count or rate cell may hold)."""
    if isinstance(v, bool) or v is None:
        return None
    try:
        f = float(v)
    except (TypeError, ValueError):
        return None
    return None if math.isnan(f) else f


def is_small(v: Any) -> bool:
    """A count of 1 to 10 (0 and empty are not small cells)."""
    f = as_number(v)
    return f is not None and 0 < f < SMALL_CELL


def rate_reveals_small(numerator: Any, denominator: Any) -> bool:
    """True when showing numerator/denominator would give back a count of 1-10 (either side or the complement)."""
    n, d = as_number(numerator), as_number(denominator)
    if n is None or d is None:
        return False
    return is_small(n) or is_small(d) or is_small(d - n)


def _rows_to_suppress(values: list[Any], complementary: bool) -> set[int]:
    """Row positions whose count must not show: the small ones, plus the smallest other positive part when
    exactly one is small (its value would otherwise follow from a total)."""
    small = {i for i, v in enumerate(values) if is_small(v)}
    if complementary and len(small) == 1:
        others = [
            (float(as_number(v) or 0), i) for i, v in enumerate(values) if i not in small and (as_number(v) or 0) > 0
        ]
        if others:
            small.add(min(others)[1])
    return small


def suppress_frame(
    df: pd.DataFrame,
    count_cols: Iterable[str],
    share_cols: Iterable[str] = (),
    complementary: bool = True,
    rate_cols: dict[str, tuple[str, float]] | None = None,
) -> pd.DataFrame:
    """A copy with count cells of 1-10 (and their complements) as "<11" and the shares of those rows blanked.

    ``rate_cols`` = {rate column: (its denominator's count column, scale)}: a rate whose numerator
    (rate / scale x denominator) or complement is 1-10 is blanked too (40% of a panel of 5 is 2 patients)."""
    out = df.copy()
    for rate, (den_col, scale) in (rate_cols or {}).items():
        if rate in out.columns and den_col in out.columns:
            den = pd.to_numeric(out[den_col], errors="coerce")
            num = (pd.to_numeric(out[rate], errors="coerce") / scale * den).round()
            hide = [rate_reveals_small(n, d) for n, d in zip(num, den)]
            out[rate] = out[rate].astype(object).where(~pd.Series(hide, index=out.index), None)
    share_cols = [c for c in share_cols if c in out.columns]
    for col in [c for c in count_cols if c in out.columns]:
        rows = _rows_to_suppress(list(out[col]), complementary)
        if not rows:
            continue
        out[col] = out[col].astype(object)
        for c in share_cols:
            out[c] = out[c].astype(object)
        for i in rows:
            out.iat[i, out.columns.get_loc(col)] = SUPPRESSED
            for c in share_cols:
                out.iat[i, out.columns.get_loc(c)] = None
    return out


# --------------------------------------------------------------------------- chart specs
def _walk(node: Any):
    if isinstance(node, dict):
        yield node
        for v in node.values():
            yield from _walk(v)
    elif isinstance(node, list):
        for v in node:
            yield from _walk(v)


def chart_fields(spec: dict) -> tuple[set[str], set[str], set[str]]:
    """(count fields, share fields, text-label fields) named by the chart's encodings."""
    counts: set[str] = set()
    shares: set[str] = set()
    labels: set[str] = set()
    for node in _walk({k: v for k, v in spec.items() if k != "datasets"}):
        for channel, enc in (node.get("encoding") or {}).items() if isinstance(node.get("encoding"), dict) else ():
            for e in enc if isinstance(enc, list) else [enc]:
                if not isinstance(e, dict) or "field" not in e:
                    continue
                field = e["field"]
                axis = e.get("axis") if isinstance(e.get("axis"), dict) else {}
                fmt = e.get("format") or axis.get("format")
                if fmt in COUNT_FORMATS:
                    counts.add(field)
                elif isinstance(fmt, str) and "%" in fmt:
                    shares.add(field)
                if channel == "text" and e.get("type") in ("nominal", "ordinal"):
                    labels.add(field)
    return counts, shares, labels


def counts_left(spec: dict) -> int:
    """How many non-empty count cells a (suppressed) spec still draws; 0 = nothing left worth a chart."""
    counts, _, _ = chart_fields(spec)
    return sum(
        1
        for records in (spec.get("datasets") or {}).values()
        if isinstance(records, list)
        for r in records
        if isinstance(r, dict)
        for f in counts
        if (as_number(r.get(f)) or 0) > 0
    )


def suppress_chart_spec(spec: dict) -> tuple[dict, int]:
    """A copy of a Vega-Lite spec (Altair ``to_dict()``) with small counts taken out of its inline data.

    Count fields are those any encoding formats as a whole number (",d"); in a row where one is
    suppressed, its value becomes null (no bar, no point), percentage fields become null and text labels
    read "<11".  Returns the spec and how many cells were suppressed."""
    out = copy.deepcopy(spec)
    counts, shares, labels = chart_fields(out)
    n = 0
    if not counts:
        return out, 0
    for records in (out.get("datasets") or {}).values():
        if not isinstance(records, list):
            continue
        # a share next to a count in the same row (40% of a panel of 5): blank it when it gives back 1-10
        for r in records:
            if not isinstance(r, dict):
                continue
            for share in shares & set(r):
                for field in counts & set(r):
                    sh, den = as_number(r.get(share)), as_number(r.get(field))
                    if sh is not None and den is not None and 0 <= sh <= 1 and rate_reveals_small(round(sh * den), den):
                        r[share] = None
                        n += 1
                        break
        for field in counts:
            values = [r.get(field) if isinstance(r, dict) else None for r in records]
            if not any(isinstance(r, dict) and field in r for r in records):
                continue
            for i in _rows_to_suppress(values, complementary=True):
                r = records[i]
                r[field] = None
                for s in shares:
                    if s in r:
                        r[s] = None
                for lab in labels:
                    if lab in r:
                        r[lab] = SUPPRESSED
                n += 1
    return out, n
