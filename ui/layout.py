"""The page frame the pages share: the page header (``page_start``: title, what the page reports on,
the date the data runs through, open months, the empty-database stop), section headings with their
definition, tabs that compute only the open one, tables, and rows of KPI tiles with "vs last month" and
"since last meeting".  Charts are in ``ui.charts``; single widgets (a tile, a popover, an empty state)
in ``ui.components``.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import pandas as pd
import streamlit as st

from ccm_core.engine.filters import Filters, filter_options
from ccm_core.io import meetings
from ccm_core.kpis import weekly
from ccm_core.kpis.definitions import KpiDefinition, KpiResult
from ccm_core.storage.db import add_months, format_month
from ui.cache import cached, get_engine
from ui.charts import month_label, plain
from ui.components import definition_popover, empty_state, friendly_errors, kpi_tile
from ui.meeting import meeting_mode
from ui.run_scope import run_scope


def window_words(f: Filters) -> str:
    """A filter window in words: "Nov 2026" or "Jun 2026 to Nov 2026"."""
    if f.month_from == f.month_to:
        return month_label(f.month_to)
    return f"{month_label(f.month_from)} to {month_label(f.month_to)}"


def section(title: str, caption: str | None = None, definition: KpiDefinition | None = None) -> None:
    """A section heading with its definition popover on the same line, and a one-line caption under it."""
    with st.container(horizontal=True, vertical_alignment="center", gap="small"):
        st.markdown(f"**{title}**", width="content")
        definition_popover(definition)
    if caption:
        st.caption(caption)


def lazy_tabs(sections: Sequence[tuple[str, Callable[[], None]]], key: str, default: str | None = None) -> None:
    """Tabs that compute only the open one: a page does the work for what a person is looking at.

    Each section runs inside ``friendly_errors`` so one failing tab shows a message, not a traceback, and the
    others still work.  The open tab is ``st.session_state[key]`` (its label).
    """
    tabs = st.tabs([name for name, _ in sections], key=key, on_change="rerun", default=default)
    for tab, (name, draw) in zip(tabs, sections):
        if tab.open:
            with tab, friendly_errors(name.lower()):
                draw()


def _arrow_safe(df: pd.DataFrame) -> pd.DataFrame:
    """Columns mixing numbers and text (small-cell "<11" next to counts in meeting mode) become text,
    so Arrow serialises them without a fallback."""
    out = df
    for col in df.columns:
        if df[col].dtype == object:
            kinds = {type(v) for v in df[col] if v is not None and not (isinstance(v, float) and math.isnan(v))}
            if str in kinds and len(kinds) > 1:
                out = out if out is not df else df.copy()
                out[col] = ["" if v is None or (isinstance(v, float) and math.isnan(v)) else str(v) for v in df[col]]
    return out


def table(df: pd.DataFrame, **kwargs):
    """``st.dataframe`` of a ccm_core frame (its definition stripped from ``attrs`` first)."""
    kwargs.setdefault("hide_index", True)
    kwargs.setdefault("width", "stretch")
    kwargs.setdefault("placeholder", "—")
    return st.dataframe(_arrow_safe(plain(df)), **kwargs)


# --------------------------------------------------------------------------- KPI tile rows
@dataclass
class Tile:
    """One KPI tile: the value and last month's value come from the same ccm_core function."""

    key: str
    label: str
    value: Any
    previous: Any = None
    unit: str | None = None
    better: str = "higher"
    definition: KpiDefinition | None = None
    help: str | None = None


def _plain(v: Any) -> float | None:
    if isinstance(v, KpiResult):
        v = v.value
    try:
        f = float(v)
    except (TypeError, ValueError):
        return None
    return None if math.isnan(f) else f


def since_last_meeting(view: str, values: dict[str, float | None]) -> tuple[dt.date | None, dict]:
    """The one home of "since last meeting": in meeting mode ``values`` are saved as today's meeting's
    snapshot of ``view``; returns the last meeting before today and what it saw of ``view`` ({} if nothing)."""
    engine = get_engine()
    today = dt.date.today()
    if meeting_mode():
        meetings.save_meeting_snapshot(engine, today, view, values)
    last = meetings.last_meeting(engine, today)
    return last, (meetings.meeting_snapshot(engine, last, view) if last else None) or {}


def tile_row(page: str, f: Filters, tiles: Sequence[Tile]) -> None:
    """A row of KPI tiles with 'vs last month' and 'since last meeting' (what that meeting saw of this view).

    In meeting mode the values are saved as the meeting's snapshot for this page and filter set, the same
    way the Overview does, so the next meeting compares like with like.
    """
    view = f"{page}:" + hashlib.sha1(repr(f).encode()).hexdigest()[:12]
    _, snapshot = since_last_meeting(view, {t.key: _plain(t.value) for t in tiles})
    for col, t in zip(st.columns(len(tiles)), tiles):
        with col:
            kpi_tile(
                t.label,
                t.value,
                t.unit,
                previous=t.previous,
                last_meeting=snapshot.get(t.key),
                definition=t.definition,
                better=t.better,
                help=t.help,
            )


def page_start(title: str, f: Filters, note: str = "", open_months: bool = False) -> None:
    """Title, what the page reports on, the date the data runs through, and the empty-database state (stops the
    page when there is no data).  ``open_months``: a money or claims page marks months whose claims are still
    being submitted or paid (``ccm_core.kpis.weekly.is_open``) in its caption and with "*" on its chart axes."""
    st.title(title, anchor=False)
    through = cached(weekly.data_through, dt.date.today())["overall"]
    bits = [
        f"{f.describe()} · tiles report on {format_month(f.month_to)}",
        f"data through {through:%b %-d, %Y}" if through else "no data yet",
    ]
    if open_months and through:
        lag = cached(weekly.open_month_lag_days)
        # the window and the trend months before it: every month a chart on this page can show
        shown = f.with_months(add_months(f.month_to, -11), f.month_to).months() + f.months()
        run_scope()["open_months"] = {m for m in shown if weekly.is_open(m, through, lag)}
        if weekly.is_open(f.month_to, through, lag):
            bits.append(
                f"{month_label(f.month_to)} is an open month: claims go out and are paid up to {lag} days "
                "after month end, so billed, paid and denial figures are still incomplete (marked * on "
                "charts; no change vs last month)"
            )
        elif run_scope()["open_months"]:
            bits.append(f"months marked * are open (claims still being submitted or paid, up to {lag} days)")
    st.caption(" · ".join(bits) + (f" · {note}" if note else "") + (" · meeting mode" if meeting_mode() else ""))
    if not cached(filter_options)["months"]:
        empty_state(
            "No data yet",
            "Import the practice's files on the Import page, or run "
            "`python -m ccm_core init-db --demo-if-empty` for demo data.",
        )
        st.stop()
