"""The weekly read: headline KPIs with trends and targets, what needs attention, honest time.

One place for what the Overview, the meeting pack (``ccm_core.io.meeting_pack``) and the consistency test
share, so a number reads the same on every page and on paper:

- ``HEADLINES`` and ``headline_values``: the five or six numbers a program lead reads first, each one the
  ``ccm_core.kpis.program`` function the other pages call for the same month and filters;
- ``targets`` / ``status``: the admin's targets (setting ``kpi.targets``, defaults in ``DEFAULT_TARGETS``,
  documented in docs/weekly-read.md) and the green / amber / red they give;
- ``data_through``: the newest imported day of each kind of data (the "data through" banner);
- ``is_open`` / ``open_months``: service months whose claims are still being submitted or paid (setting
  ``kpi.open_month_lag_days``, default 45 days after month end), marked and never compared as if closed;
- ``attention_items``: holds, near-threshold patients, denials to work and consent gaps, each with the page
  that works it.
"""

from __future__ import annotations

import datetime as dt
import json
from dataclasses import dataclass

import pandas as pd
from sqlalchemy import func, select
from sqlalchemy.engine import Connection

from ccm_core.engine.filters import Filters
from ccm_core.kpis import program as kpis
from ccm_core.kpis.definitions import KpiResult
from ccm_core.storage import schema as s
from ccm_core.storage.db import add_months, month_bounds, month_int
from ccm_core.storage.settings import get_setting, put_setting

LAG_KEY = "kpi.open_month_lag_days"
DEFAULT_LAG_DAYS = 45  # claims go out within ~15 days of month end and are paid within ~30 more
TARGETS_KEY = "kpi.targets"


@dataclass(frozen=True)
class Headline:
    key: str
    label: str
    unit: str  # count | rate | minutes | dollars
    better: str  # higher | lower
    page: str  # the page behind the number
    lag_sensitive: bool = False  # changes as claims are paid (marked in open months)


HEADLINES = (
    Headline("enrolled", "Enrolled patients", "count", "higher", "enrollment"),
    Headline("consent_rate", "Consent rate", "rate", "higher", "enrollment"),
    Headline("billable_rate", "Billable (20+ min)", "rate", "higher", "minutes"),
    Headline("minutes", "Minutes per patient", "minutes", "higher", "minutes"),
    Headline("expected", "Expected revenue", "dollars", "higher", "revenue"),
    # by month the denials were received (HFMA): a past month's receipts are complete, so not lag-sensitive
    Headline("denial_rate", "Denial rate (claims)", "rate", "lower", "billing"),
)
HEADLINE_BY_KEY = {h.key: h for h in HEADLINES}

# Each target: either a level (``green`` at or better than it, ``amber`` at or better than the second level,
# else red) or, for counts and dollars that depend on the practice's size, ``vs_last_month``: green when not
# below last month, amber when at most ``amber`` (a share) below it, else red.
DEFAULT_TARGETS: dict[str, dict] = {
    "enrolled": {"kind": "vs_last_month", "amber": 0.02},
    "consent_rate": {"kind": "level", "green": 0.70, "amber": 0.55},
    "billable_rate": {"kind": "level", "green": 0.75, "amber": 0.60},
    "minutes": {"kind": "level", "green": 25.0, "amber": 20.0},
    "expected": {"kind": "vs_last_month", "amber": 0.05},
    "denial_rate": {"kind": "level", "green": 0.05, "amber": 0.10},
}


# --------------------------------------------------------------------------- the headline numbers
def headline_values(conn: Connection, f: Filters) -> dict[str, KpiResult | float | None]:
    """The headline KPIs for ``f.month_to`` (each the same function the other pages call)."""
    revenue = kpis.revenue_summary(conn, f)
    return {
        "enrolled": kpis.enrolled_patients(conn, f),
        "consent_rate": kpis.consent_rate(conn, f),
        "billable_rate": kpis.billable_rate(conn, f),
        "minutes": kpis.minutes_per_enrolled_patient(conn, f),
        "expected": KpiResult(
            revenue.definition, revenue.extra.get("expected"), None, revenue.denominator, revenue.extra
        ),
        "denial_rate": kpis.initial_denial_rates(conn, f)["count"],
    }


def number(v) -> float | None:
    """The plain number of a KPI result (None when its denominator was empty)."""
    if isinstance(v, KpiResult):
        v = v.value
    if v is None:
        return None
    try:
        x = float(v)
    except (TypeError, ValueError):
        return None
    return None if x != x else x


def trend_months(month_to: int, months: int = 12) -> list[int]:
    """The ``months`` months ending with ``month_to``, oldest first (sparklines and trend charts)."""
    return [add_months(month_to, -k) for k in range(months - 1, -1, -1)]


def headline_series(conn: Connection, f: Filters, months: int = 12) -> dict[str, list[tuple[int, float | None]]]:
    """Per headline key, (month, value) for the ``months`` months up to ``f.month_to`` (the sparklines)."""
    out: dict[str, list[tuple[int, float | None]]] = {h.key: [] for h in HEADLINES}
    for m in trend_months(f.month_to, months):
        values = headline_values(conn, f.with_months(m))
        for h in HEADLINES:
            out[h.key].append((m, number(values[h.key])))
    return out


# --------------------------------------------------------------------------- targets
def targets(conn: Connection) -> dict[str, dict]:
    """The targets in force: the admin's (setting ``kpi.targets``, JSON) over the documented defaults."""
    out = {k: dict(v) for k, v in DEFAULT_TARGETS.items()}
    raw = get_setting(conn, TARGETS_KEY)
    if raw:
        try:
            saved = json.loads(raw)
        except ValueError:
            saved = {}
        for key, spec in (saved or {}).items():
            if key in out and isinstance(spec, dict):
                out[key].update(spec)
    return out


def save_targets(engine, values: dict[str, dict], username: str) -> None:
    """Store the admin's targets (only known keys and numbers), audit-logged as a settings change."""
    clean: dict[str, dict] = {}
    for key, spec in values.items():
        if key not in DEFAULT_TARGETS:
            raise ValueError(f"Unknown KPI target: {key}")
        kind = spec.get("kind", DEFAULT_TARGETS[key]["kind"])
        if kind not in ("level", "vs_last_month"):
            raise ValueError(f"Unknown target kind for {key}: {kind}")
        item = {"kind": kind, "amber": float(spec["amber"])}
        if kind == "level":
            item["green"] = float(spec["green"])
        clean[key] = item
    with engine.begin() as conn:
        put_setting(conn, TARGETS_KEY, json.dumps(clean, sort_keys=True))
    from ccm_core.security.access_log import log_admin_change

    log_admin_change(engine, username, "KPI targets set: " + json.dumps(clean, sort_keys=True))


def status(key: str, value, previous=None, spec: dict | None = None) -> tuple[str | None, str]:
    """('green' | 'amber' | 'red' | None, the target in words) for a headline value."""
    h = HEADLINE_BY_KEY[key]
    spec = spec or DEFAULT_TARGETS[key]
    v = number(value)
    if spec.get("kind") == "vs_last_month":
        p = number(previous)
        words = f"not below last month (amber to -{spec['amber']:.0%})"
        if v is None or p is None:
            return None, words
        if v >= p:
            return "green", words
        return ("amber" if v >= p * (1 - spec["amber"]) else "red"), words
    green, amber = spec["green"], spec["amber"]
    words = f"{'≤' if h.better == 'lower' else '≥'} {fmt(green, h.unit)} (amber {fmt(amber, h.unit)})"
    if v is None:
        return None, words
    if h.better == "lower":
        return ("green" if v <= green else "amber" if v <= amber else "red"), words
    return ("green" if v >= green else "amber" if v >= amber else "red"), words


def fmt(v, unit: str) -> str:
    """One number format per unit (the same as the tiles): 12.3%, $1,234 / $61.20, 24.5 (minutes), 1,234."""
    x = number(v)
    if x is None:
        return "n/a"
    if unit == "rate":
        return f"{x * 100:.1f}%"
    if unit == "dollars":
        return f"${x:,.0f}" if abs(x) >= 100 else f"${x:,.2f}"  # as ui.components.format_value
    if unit in ("minutes", "days"):
        return f"{x:,.1f}"
    return f"{x:,.0f}" if x.is_integer() else f"{x:,.1f}"


def fmt_delta(now, then, unit: str) -> str | None:
    """Signed change in the unit (rates in percentage points); a change that rounds to zero reads without a sign."""
    a, b = number(now), number(then)
    if a is None or b is None:
        return None
    d = a - b
    if unit == "rate":
        text = f"{d * 100:+.1f} pp"
    elif unit == "dollars":
        text = f"{'+' if d >= 0 else '-'}${abs(d):,.0f}"
    elif unit in ("minutes", "days"):
        text = f"{d:+,.1f}" + (" min" if unit == "minutes" else " days")
    else:
        text = f"{d:+,.0f}" if float(d).is_integer() else f"{d:+,.1f}"
    return no_negative_zero(text)


def no_negative_zero(text: str) -> str:
    """'-0.0 pp' / '+0.0 pp' / '-$0' read as a plain zero: nothing changed at the shown precision."""
    import re

    digits = re.sub(r"[^0-9]", "", text)
    if digits and set(digits) == {"0"}:
        return re.sub(r"^[+-]", "", text).replace("-$", "$")
    return text


# --------------------------------------------------------------------------- honest time
def data_through(conn: Connection, today: dt.date | None = None) -> dict[str, dt.date | None]:
    """The newest day of each imported kind (time logged, claims submitted, remittances received), never after
    today, and ``overall`` = the newest of them (the "data through" banner)."""
    today = today or dt.date.today()
    out: dict[str, dt.date | None] = {}
    for key, col in (
        ("time", s.time_entry.c.service_date),
        ("claims", s.claim.c.submitted_date),
        ("remittances", s.remittance.c.received_date),
    ):
        v = conn.execute(select(func.max(col)).where(col <= today)).scalar()
        if isinstance(v, str):
            v = dt.date.fromisoformat(v[:10])
        out[key] = v
    known = [v for v in out.values() if v is not None]
    out["overall"] = max(known) if known else None
    return out


def open_month_lag_days(conn: Connection) -> int:
    """Days after month end that claims still go out and get paid (Admin setting; default DEFAULT_LAG_DAYS)."""
    raw = get_setting(conn, LAG_KEY)
    try:
        return max(0, int(raw)) if raw not in (None, "") else DEFAULT_LAG_DAYS
    except ValueError:
        return DEFAULT_LAG_DAYS


def is_open(month: int, as_of: dt.date | None, lag_days: int = DEFAULT_LAG_DAYS) -> bool:
    """A service month is open until ``lag_days`` after its last day: its claims are still being submitted and
    adjudicated, so billed, paid and denial figures are incomplete.  No data date: nothing is known closed."""
    if as_of is None:
        return False
    return as_of < month_bounds(month)[1] + dt.timedelta(days=lag_days)


def open_months(conn: Connection, months: list[int], as_of: dt.date | None) -> list[int]:
    """The months in ``months`` still open on ``as_of`` (their figures can still move)."""
    lag = open_month_lag_days(conn)
    return [m for m in months if is_open(m, as_of, lag)]


def last_closed_month(conn: Connection, as_of: dt.date) -> int:
    """The newest month whose claims have had the lag to go out and be paid (the weekly read's closed month)."""
    lag = open_month_lag_days(conn)
    m = month_int(as_of)
    while is_open(m, as_of, lag):
        m = add_months(m, -1)
    return m


# --------------------------------------------------------------------------- what needs attention
DENIAL_WINDOW_MONTHS = 12


def denials_to_work(conn: Connection, f: Filters, as_of: dt.date) -> KpiResult:
    """Denied claims nobody has worked yet: ``ccm_core.kpis.queues.denials_to_work`` (the Billing work queue's own
    list) for dates of service in the 12 months to ``f.month_to``, lines with no work status and no appeal on
    file whose deadline has not passed; value = claims, extra: lines, denied dollars."""
    from ccm_core.kpis import queues

    window = f.with_months(add_months(f.month_to, -(DENIAL_WINDOW_MONTHS - 1)), f.month_to)
    df = queues.denials_to_work(conn, window, as_of, include_closed=False)
    if not df.empty:
        open_ = df["status"].fillna("open").eq("open") & df["appeal_filed"].isna() & df["kind"].eq("denied")
        live = pd.to_datetime(df["deadline"]).dt.date.map(lambda d: d is None or pd.isna(d) or d >= as_of)
        df = df[open_ & live.astype(bool)]
    claims = int(df["claim_id"].nunique()) if not df.empty else 0
    return KpiResult(
        kpis.D["initial_denial_rate"],
        claims,
        claims,
        None,
        {
            "lines": int(len(df)),
            "charges": float(df["denied_amount"].sum()) if not df.empty else 0.0,
            "window": (window.month_from, window.month_to),
        },
    )


def consent_gaps(conn: Connection, f: Filters) -> int:
    """Accepted consents on file (enrolled at month end or dated in the period) missing a required element."""
    by_staff = kpis.consent_completeness_by_staff(conn, f)
    if by_staff.empty:
        return 0
    return int(by_staff["consents"].sum() - by_staff["complete"].sum())


def attention_items(conn: Connection, f: Filters, as_of: dt.date | None) -> list[dict]:
    """What a lead sends someone to work this week, largest first within kind; each names its page.

    Keys: kind, label (plain words), count, dollars (or None), page (the page key that works it)."""
    items: list[dict] = []
    hold = kpis.dollars_on_hold(conn, f)  # the compliance rules' holds for the report month (Billing's queue)
    if hold.numerator:
        items.append(
            {
                "kind": "holds",
                "label": f"Patient-months on hold before billing ({month_words(f.month_to)})",
                "count": int(hold.numerator),
                "dollars": number(hold),
                "page": "billing",
            }
        )
    if as_of is not None:
        fm = f.with_months(month_int(as_of))
        wl = kpis.near_threshold_worklist(conn, fm, as_of)
        near = wl[wl["tier"] == 1] if not wl.empty else wl
        days_left = (month_bounds(month_int(as_of))[1] - as_of).days
        items.append(
            {
                "kind": "near_threshold",
                "label": f"Patients 1-5 minutes short of 20 ({days_left} day{'s' if days_left != 1 else ''} left)",
                "count": int(len(near)),
                "dollars": float(near["expected_at_stake"].sum()) if len(near) else 0.0,
                "page": "minutes",
            }
        )
        d = denials_to_work(conn, f, as_of)
        items.append(
            {
                "kind": "denials",
                "label": "Denied claims nobody has worked yet (still appealable)",
                "count": int(d.value or 0),
                "dollars": d.extra["charges"],
                "page": "billing",
            }
        )
    items.append(
        {
            "kind": "consent_gaps",
            "label": "Consents missing a required element",
            "count": consent_gaps(conn, f),
            "dollars": None,
            "page": "enrollment",
        }
    )
    return items


def plural(n: int | float | str, one: str, many: str | None = None) -> str:
    """'1 care manager', '2 care managers', '<11 patients'."""
    try:
        single = float(str(n).replace(",", "")) == 1
    except ValueError:
        single = False
    return f"{n} {one if single else (many or one + 's')}"


def forecast_line(forecast: KpiResult) -> str:
    """The month-end forecast in one sentence (whole patients, the range, the cap)."""
    e = forecast.extra
    rng = "" if e.get("low") == e.get("high") else f" (likely {e['low']:,}-{e['high']:,})"
    return (
        f"Forecast {forecast.value:,} billable patient-months by month end{rng}: {e.get('so_far', 0):,} so far, "
        f"{e.get('can_still_bill', 0):,} enrolled patients can still reach 20 minutes."
    )


def month_words(month: int) -> str:
    """``202511`` -> ``Nov 2025``."""
    return month_bounds(month)[0].strftime("%b %Y")


def view_key(f: Filters) -> str:
    """Meeting snapshots are per view: the same filters compare with the same filters (Overview and pack)."""
    import hashlib

    return hashlib.sha1(repr(f).encode()).hexdigest()[:12]


def scope_words(f: Filters, with_months: bool = True) -> str:
    """The filters in words ("2026-11; 1 clinic"); without the months, "" when nothing else is chosen."""
    text = f.describe()
    if with_months:
        return text
    return text.split("; ", 1)[1] if "; " in text else ""


def period_label(month: int) -> str:
    """``202511`` -> ``Nov 1 to Nov 30, 2025``: the calendar span a month-level figure covers."""
    first, last = month_bounds(month)
    return f"{first:%b %-d} to {last:%b %-d, %Y}"


__all__ = [
    "HEADLINES",
    "DEFAULT_TARGETS",
    "headline_values",
    "headline_series",
    "targets",
    "status",
    "fmt",
    "fmt_delta",
    "data_through",
    "is_open",
    "open_months",
    "attention_items",
    "denials_to_work",
    "consent_gaps",
    "plural",
    "forecast_line",
    "view_key",
    "scope_words",
]
