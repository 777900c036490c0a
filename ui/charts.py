"""Shared Altair chart helpers for the program-lead pages.

Every helper takes a small frame that ccm_core already aggregated in SQL and
returns an ``alt.Chart``; none of them aggregates or filters rows itself, so
a chart can never disagree with the number next to it.  Months arrive as
YYYYMM integers and are drawn as ordered "Oct '25" labels (an ordinal axis
keeps bars wide and labels readable on a shared 1280x720 screen); the
months a trend chart covers (``trend_window``) and the month labels are here
too.  The page frame around the charts (header, sections, tabs, tables, KPI
tile rows) is ``ui.layout``.
"""

from __future__ import annotations

import calendar
import math
from collections.abc import Iterable, Sequence

import altair as alt
import pandas as pd
import streamlit as st

from ccm_core.engine.filters import Filters
from ccm_core.storage.db import add_months, format_month
from ui.suppression import chart_fields, counts_left, suppress_chart_spec

# Semantic colours, used only where colour carries meaning (billable vs not,
# paid vs denied); everything else takes the app theme's palette.
GOOD = "#2e7d5b"
WARN = "#d08a1f"
BAD = "#c2453d"
MUTED = "#9aa5b1"
PRIMARY = "#2f6db5"
# red comes last: a neutral category (a decline reason) should not look like an alarm
SERIES = ["#2f6db5", "#2e7d5b", "#d08a1f", "#7a5bb5", "#4aa3a2", "#b5677a", "#9aa5b1", "#c2453d"]

LABEL_SIZE = 13
TITLE_SIZE = 14
DEFAULT_HEIGHT = 250


def month_label(month: int) -> str:
    """202510 -> "Oct 2025": what a person says in a meeting."""
    m = int(month)
    return f"{calendar.month_abbr[m % 100]} {m // 100}"


def month_tick(month: int) -> str:
    """202510 -> "Oct '25": short enough that six months fit under a half-width chart."""
    m = int(month)
    return f"{calendar.month_abbr[m % 100]} '{m // 100 % 100:02d}"


def plain(df: pd.DataFrame) -> pd.DataFrame:
    """A copy without ``attrs`` (the KPI definition rides there; Arrow cannot serialise it)."""
    out = df.copy()
    out.attrs = {}
    return out


def with_month_labels(df: pd.DataFrame, col: str = "service_month") -> tuple[pd.DataFrame, list[str]]:
    """Copy of ``df`` with a ``month_label`` column ("Oct '25"), and the labels in calendar order."""
    out = plain(df)
    out["month_label"] = out[col].map(chart_tick)
    order = [chart_tick(m) for m in sorted(pd.unique(out[col].dropna()))]
    return out, order


def chart_tick(month: int) -> str:
    """A month on a chart axis: "Oct '25", with "*" when the page marked it open (claims still coming in)."""
    from ui.run_scope import run_scope

    return month_tick(month) + ("*" if int(month) in run_scope().get("open_months", ()) else "")


def _y_axis(fmt: str) -> alt.Axis:
    """Counts get whole-number ticks (no "0, 0, 1, 1" on small numbers)."""
    return alt.Axis(format=fmt, tickMinStep=1) if fmt in (",d", "d") else alt.Axis(format=fmt)


def trend_window(f: Filters, months: int = 6) -> tuple[Filters, str | None]:
    """Filters for a trend chart: the chosen range, or the ``months`` up to its end when it is shorter than 3.

    The sidebar usually holds one month (the tiles' month); a one-point trend says nothing, so trend
    charts look back from that month and say so in a caption.
    """
    if len(f.months()) >= 3:
        return f, None
    widened = f.with_months(add_months(f.month_to, -(months - 1)), f.month_to)
    return widened, (
        f"Trend over the {months} months to {month_label(f.month_to)} "
        f"({format_month(widened.month_from)} to {format_month(widened.month_to)}); "
        "widen the Months filter to change it."
    )


def _month_x(order: Sequence[str], title: str | None = None) -> alt.X:
    # an explicit domain keeps months with nothing to draw on the axis (a gap, not a missing month)
    return alt.X(
        "month_label:O", sort=list(order), title=title, axis=alt.Axis(labelAngle=0), scale=alt.Scale(domain=list(order))
    )


def show(
    chart: alt.Chart | alt.LayerChart,
    alt_text: str,
    height: int | None = None,
    key: str | None = None,
    legend_columns: int = 3,
):
    """Draw a chart full-width with the app theme and fonts large enough for a shared screen.

    ``legend_columns``: entries per legend row under the chart (2 for long labels in a half-width column).
    """
    if height is not None:
        chart = chart.properties(height=height)
    # fit the width to the column but keep ``height`` for the plot itself (axes and legend add to it), so a
    # legend never squeezes the bars
    chart = chart.properties(autosize=alt.AutoSizeParams(type="fit-x", contains="padding"))
    chart = (
        chart.configure_axis(labelFontSize=LABEL_SIZE, titleFontSize=TITLE_SIZE, labelLimit=260)
        .configure_legend(
            labelFontSize=LABEL_SIZE,
            titleFontSize=LABEL_SIZE,
            orient="bottom",
            direction="horizontal",
            columns=legend_columns,
            labelLimit=150,
        )
        .configure_title(fontSize=TITLE_SIZE + 1, anchor="start")
        .configure_view(strokeWidth=0)
    )
    from ui.meeting import meeting_mode

    if meeting_mode():  # every chart, whatever helper built it: no count of 1-10 in bars, labels or tooltips
        from ccm_core.security.masking import STAFF_COLUMNS
        from ui.meeting import staff_label, staff_pseudonyms

        spec, changed = suppress_chart_spec(chart.to_dict())
        if staff_pseudonyms():  # staff names in the chart's data read as role pseudonyms
            for records in (spec.get("datasets") or {}).values():
                for r in records if isinstance(records, list) else ():
                    for col in STAFF_COLUMNS.keys() & set(r):
                        r[col] = staff_label(r[col], STAFF_COLUMNS[col])
                        changed += 1
        if changed and not counts_left(spec) and chart_fields(spec)[0]:
            st.caption(
                f":material/visibility_off: {alt_text}: every count is under 11, so the chart is hidden "
                "in meeting mode."
            )
            return None
        if changed:
            chart = type(chart).from_dict(spec, validate=False)
    return st.altair_chart(chart, width="stretch", alt=alt_text, key=key)


# --------------------------------------------------------------------------- building blocks
def trend_lines(
    df: pd.DataFrame,
    value_cols: dict[str, str],
    *,
    month_col: str = "service_month",
    y_title: str = "",
    fmt: str = ".0%",
    colors: Sequence[str] | None = None,
    y_domain: tuple[float, float] | None = None,
) -> alt.Chart:
    """One line per column in ``value_cols`` ({column: legend label}) over months, with point markers."""
    base, order = with_month_labels(df, month_col)
    long = base.melt(id_vars=["month_label"], value_vars=list(value_cols), var_name="series", value_name="value")
    long["series"] = long["series"].map(value_cols)
    scale = alt.Scale(domain=list(value_cols.values()), range=list(colors or SERIES[: len(value_cols)]))
    y_scale = alt.Scale(domain=list(y_domain)) if y_domain else alt.Scale(zero=True)
    return (
        alt.Chart(long)
        .mark_line(point=alt.OverlayMarkDef(size=70), strokeWidth=3)
        .encode(
            x=_month_x(order),
            y=alt.Y("value:Q", title=y_title, axis=alt.Axis(format=fmt.replace(".2f", ".0f")), scale=y_scale),
            color=alt.Color("series:N", scale=scale, title=None, legend=alt.Legend() if len(value_cols) > 1 else None),
            tooltip=[
                alt.Tooltip("month_label:O", title="Month"),
                alt.Tooltip("series:N", title="Measure"),
                alt.Tooltip("value:Q", title="Value", format=fmt),
            ],
        )
        .properties(height=DEFAULT_HEIGHT)
    )


def grouped_month_bars(
    df: pd.DataFrame,
    value_cols: dict[str, str],
    *,
    month_col: str = "service_month",
    y_title: str = "",
    fmt: str = "$,.0f",
    colors: Sequence[str] | None = None,
) -> alt.Chart:
    """Side-by-side bars per month, e.g. expected / billed / paid."""
    base, order = with_month_labels(df, month_col)
    long = base.melt(id_vars=["month_label"], value_vars=list(value_cols), var_name="series", value_name="value")
    long["series"] = long["series"].map(value_cols)
    labels = list(value_cols.values())
    return (
        alt.Chart(long)
        .mark_bar(cornerRadiusTopLeft=2, cornerRadiusTopRight=2)
        .encode(
            x=_month_x(order),
            xOffset=alt.XOffset("series:N", sort=labels),
            y=alt.Y("value:Q", title=y_title, axis=_y_axis(fmt.replace(".2f", ".0f"))),
            color=alt.Color(
                "series:N",
                sort=labels,
                title=None,
                scale=alt.Scale(domain=labels, range=list(colors or SERIES[: len(labels)])),
            ),
            tooltip=[
                alt.Tooltip("month_label:O", title="Month"),
                alt.Tooltip("series:N", title="Measure"),
                alt.Tooltip("value:Q", title="Value", format=fmt),
            ],
        )
        .properties(height=DEFAULT_HEIGHT)
    )


def stacked_month_bars(
    df: pd.DataFrame,
    category_col: str,
    value_col: str,
    *,
    month_col: str = "service_month",
    y_title: str = "",
    fmt: str = ",d",
    category_title: str | None = None,
    category_order: Sequence[str] | None = None,
    colors: Sequence[str] | None = None,
    months: Sequence[int] | None = None,
) -> alt.Chart:
    """Stacked bars per month split by a category (reasons, causes), long-format input.

    ``months`` = every month of the window, so a month with nothing to stack still shows as a gap.
    """
    base, order = with_month_labels(df, month_col)
    if months:
        order = [chart_tick(m) for m in months]
    cats = list(category_order) if category_order else sorted(base[category_col].astype(str).unique())
    palette = list(colors) if colors else (SERIES * (len(cats) // len(SERIES) + 1))[: len(cats)]
    color_scale = alt.Scale(domain=cats, range=palette)
    return (
        alt.Chart(base)
        .mark_bar()
        .encode(
            x=_month_x(order),
            y=alt.Y(f"{value_col}:Q", title=y_title, stack="zero", axis=_y_axis(fmt)),
            color=alt.Color(f"{category_col}:N", sort=cats, scale=color_scale, title=category_title),
            order=alt.Order(f"{category_col}:N"),
            tooltip=[
                alt.Tooltip("month_label:O", title="Month"),
                alt.Tooltip(f"{category_col}:N", title=category_title or "Category"),
                alt.Tooltip(f"{value_col}:Q", title=y_title or "Value", format=fmt),
            ],
        )
        .properties(height=DEFAULT_HEIGHT)
    )


def horizontal_bars(
    df: pd.DataFrame,
    category_col: str,
    value_col: str,
    *,
    x_title: str = "",
    fmt: str = ",d",
    color: str = PRIMARY,
    tooltip_cols: Iterable[tuple[str, str, str | None]] = (),
    sort_desc: bool = True,
    label: bool = True,
    color_col: str | None = None,
    color_domain: Sequence[str] | None = None,
    color_range: Sequence[str] | None = None,
    axis_fmt: str | None = None,
) -> alt.Chart | alt.LayerChart:
    """Ranked horizontal bars with the value printed at the end of each bar.

    ``tooltip_cols`` = (column, title, format or None) extra hover fields.
    """
    tips = [
        alt.Tooltip(f"{category_col}:N", title=category_col.replace("_", " ").capitalize()),
        alt.Tooltip(f"{value_col}:Q", title=x_title or value_col, format=fmt),
    ]
    tips += [alt.Tooltip(c, title=t, format=f) if f else alt.Tooltip(c, title=t) for c, t, f in tooltip_cols]
    sort = "-x" if sort_desc else None
    enc_color = (
        alt.Color(
            f"{color_col}:N",
            title=None,
            scale=alt.Scale(domain=list(color_domain or []), range=list(color_range or []))
            if color_domain
            else alt.Undefined,
        )
        if color_col
        else alt.value(color)
    )
    bars = (
        alt.Chart(plain(df))
        .mark_bar(cornerRadiusTopRight=2, cornerRadiusBottomRight=2)
        .encode(
            y=alt.Y(f"{category_col}:N", sort=sort, title=None),
            x=alt.X(f"{value_col}:Q", title=x_title, axis=_y_axis(axis_fmt or fmt)),
            color=enc_color,
            tooltip=tips,
        )
    )
    height = max(60, 30 * len(df))
    if not label:
        return bars.properties(height=height)
    text = bars.mark_text(align="left", dx=4, fontSize=LABEL_SIZE).encode(
        text=alt.Text(f"{value_col}:Q", format=fmt), color=alt.value("#333333")
    )
    return alt.layer(bars, text).properties(height=height)


# --------------------------------------------------------------------------- page-specific shapes
def funnel(
    df: pd.DataFrame, stage_col: str = "stage", count_col: str = "patients", count_text=lambda n: f"{int(n):,}"
) -> alt.LayerChart:
    """Funnel as ranked bars in stage order, each labelled "n (x% of first stage)".

    ``count_text`` formats the count in the label (meeting mode passes small-cell suppression).
    """
    data = plain(df)
    first = float(data[count_col].iloc[0]) if len(data) else 0.0
    data["share"] = data[count_col] / first if first else 0.0
    data["label"] = [f"{count_text(n)}  ({s:.0%})" for n, s in zip(data[count_col], data["share"])]
    stages = list(data[stage_col])
    bars = (
        alt.Chart(data)
        .mark_bar(color=PRIMARY, cornerRadiusTopRight=3, cornerRadiusBottomRight=3)
        .encode(
            y=alt.Y(f"{stage_col}:N", sort=stages, title=None),
            x=alt.X(f"{count_col}:Q", title="Patients", axis=alt.Axis(format=",d")),
            tooltip=[
                alt.Tooltip(f"{stage_col}:N", title="Stage"),
                alt.Tooltip(f"{count_col}:Q", title="Patients", format=",d"),
                alt.Tooltip("share:Q", title="Share of first stage", format=".1%"),
            ],
        )
    )
    text = bars.mark_text(align="left", dx=5, fontSize=LABEL_SIZE, color="#333333").encode(text="label:N")
    return alt.layer(bars, text).properties(height=max(120, 36 * len(data)))


def band_distribution(
    df: pd.DataFrame,
    band_col: str = "band",
    count_col: str = "patients",
    billable_bands: Sequence[str] = ("20-39", "40-59", "60+"),
    near_bands: Sequence[str] = ("15-19",),
    count_text=lambda n: f"{int(n):,}",
) -> alt.LayerChart:
    """Patients per minutes band in band order; billable bands green, near misses amber, the rest grey.

    ``count_text`` formats the bar labels (meeting mode passes small-cell suppression).
    """
    data = plain(df)
    data["label"] = [count_text(n) for n in data[count_col]]
    data["status"] = [
        "Billable (20+ min)" if b in billable_bands else "Near threshold" if b in near_bands else "Below threshold"
        for b in data[band_col]
    ]
    total = float(data[count_col].sum()) or 1.0
    data["share"] = data[count_col] / total
    order = list(data[band_col])
    domain = ["Below threshold", "Near threshold", "Billable (20+ min)"]
    bars = (
        alt.Chart(data)
        .mark_bar(cornerRadiusTopLeft=3, cornerRadiusTopRight=3)
        .encode(
            x=alt.X(f"{band_col}:N", sort=order, title="Counted minutes in the month", axis=alt.Axis(labelAngle=0)),
            y=alt.Y(f"{count_col}:Q", title="Patients", axis=_y_axis(",d")),
            color=alt.Color("status:N", scale=alt.Scale(domain=domain, range=[MUTED, WARN, GOOD]), title=None),
            tooltip=[
                alt.Tooltip(f"{band_col}:N", title="Minutes"),
                alt.Tooltip(f"{count_col}:Q", title="Patients", format=",d"),
                alt.Tooltip("share:Q", title="Share", format=".1%"),
            ],
        )
    )
    text = bars.mark_text(dy=-8, fontSize=LABEL_SIZE).encode(text="label:N", color=alt.value("#333333"))
    return alt.layer(bars, text).properties(height=DEFAULT_HEIGHT)


def pareto(
    df: pd.DataFrame,
    code_col: str,
    value_col: str,
    text_col: str,
    *,
    value_title: str = "Denied claims",
    fmt: str = ",d",
    color: str = BAD,
) -> alt.LayerChart:
    """Pareto: bars sorted high to low plus a cumulative-share line; hovering shows the official code text."""
    data = plain(df.sort_values(value_col, ascending=False).reset_index(drop=True))
    total = float(data[value_col].sum()) or 1.0
    data["cumulative_share"] = data[value_col].cumsum() / total
    data["share"] = data[value_col] / total
    data[code_col] = data[code_col].astype(str)
    order = list(data[code_col])  # codes on the axis; code_key() under the chart names them in words
    tips = [
        alt.Tooltip(f"{code_col}:N", title="Code"),
        alt.Tooltip(f"{text_col}:N", title="Official text"),
        alt.Tooltip(f"{value_col}:Q", title=value_title, format=fmt),
        alt.Tooltip("share:Q", title="Share", format=".1%"),
        alt.Tooltip("cumulative_share:Q", title="Cumulative", format=".0%"),
    ]
    x = alt.X(f"{code_col}:N", sort=order, title=None, axis=alt.Axis(labelAngle=0))
    bars = (
        alt.Chart(data)
        .mark_bar(color=color, opacity=0.85)
        .encode(x=x, y=alt.Y(f"{value_col}:Q", title=value_title, axis=_y_axis(fmt)), tooltip=tips)
    )
    line = (
        alt.Chart(data)
        .mark_line(color="#333333", point=alt.OverlayMarkDef(color="#333333"), strokeWidth=2)
        .encode(
            x=x,
            y=alt.Y(
                "cumulative_share:Q",
                title="Cumulative share",
                axis=alt.Axis(format=".0%"),
                scale=alt.Scale(domain=[0, 1]),
            ),
            tooltip=tips,
        )
    )
    return alt.layer(bars, line).resolve_scale(y="independent").properties(height=DEFAULT_HEIGHT)


def retention_curves(
    df: pd.DataFrame, cohort_col: str = "cohort", months_col: str = "months_since", share_col: str = "retained_share"
) -> alt.Chart:
    """Share of each enrollment cohort (YYYYMM) still active N months later; one line per cohort, oldest darkest."""
    data = plain(df)
    cohorts = [month_label(m) for m in sorted(pd.unique(data[cohort_col]))]
    data[cohort_col] = data[cohort_col].map(month_label)
    return (
        alt.Chart(data)
        .mark_line(point=True, strokeWidth=2.5)
        .encode(
            x=alt.X(f"{months_col}:O", title="Months since enrollment", axis=alt.Axis(labelAngle=0)),
            y=alt.Y(
                f"{share_col}:Q",
                title="Still enrolled",
                axis=alt.Axis(format=".0%"),
                # an axis that fits the data: retention near 90-100% would otherwise be a flat band
                scale=alt.Scale(domain=[_floor_tenth(data[share_col].min()), 1]),
            ),
            color=alt.Color(
                f"{cohort_col}:N", sort=cohorts, title="Enrolled in", scale=alt.Scale(scheme="blues", reverse=True)
            ),
            tooltip=[
                alt.Tooltip(f"{cohort_col}:N", title="Cohort"),
                alt.Tooltip(f"{months_col}:O", title="Months since"),
                alt.Tooltip(f"{share_col}:Q", title="Still enrolled", format=".0%"),
            ],
        )
        .properties(height=DEFAULT_HEIGHT)
    )


def code_key(df: pd.DataFrame, code_col: str = "code", text_col: str = "text", top: int = 8) -> str:
    """The codes a Pareto shows, in words: "16: Claim/service lacks information…; 97: The benefit for…"."""
    return "; ".join(
        f"{c}: {_short(t, 48)}" for c, t in zip(df[code_col].astype(str).head(top), df[text_col].head(top))
    )


def _short(text, limit: int = 22) -> str:
    """The start of an official code text, cut at a word boundary."""
    t = "" if text is None or (isinstance(text, float) and math.isnan(text)) else str(text)
    if len(t) <= limit:
        return t
    return t[:limit].rsplit(" ", 1)[0].rstrip(",;:/(") + "…"


def _floor_tenth(v) -> float:
    """The axis floor for a share: the tenth below the lowest value (0 when there is none)."""
    try:
        return max(0.0, math.floor(float(v) * 10 - 0.5) / 10) if v == v else 0.0
    except (TypeError, ValueError):
        return 0.0


def projection(
    df: pd.DataFrame,
    value_cols: dict[str, str],
    *,
    month_col: str = "service_month",
    kind_col: str = "kind",
    y_title: str = "",
    fmt: str = "$,.0f",
) -> alt.Chart:
    """Actual months solid, projected months dashed, per measure (long by ``kind_col`` = actual/projected)."""
    data = plain(df)
    actual = data[data[kind_col] == "actual"]
    if len(actual) and (data[kind_col] == "projected").any():
        # repeat the last actual month as the projection's first point so the dashed line joins the solid one
        bridge = actual.tail(1).copy()
        bridge[kind_col] = "projected"
        data = pd.concat([data, bridge], ignore_index=True)
    base, order = with_month_labels(data, month_col)
    long = base.melt(
        id_vars=["month_label", kind_col], value_vars=list(value_cols), var_name="series", value_name="value"
    ).dropna(subset=["value"])
    long["series"] = long["series"].map(value_cols)
    labels = list(value_cols.values())
    return (
        alt.Chart(long)
        .mark_line(point=alt.OverlayMarkDef(size=60), strokeWidth=3)
        .encode(
            x=_month_x(order),
            y=alt.Y("value:Q", title=y_title, axis=alt.Axis(format=fmt.replace(".2f", ".0f"))),
            color=alt.Color(
                "series:N", sort=labels, title=None, scale=alt.Scale(domain=labels, range=SERIES[: len(labels)])
            ),
            strokeDash=alt.StrokeDash(
                f"{kind_col}:N",
                legend=None,  # the page's caption explains it
                scale=alt.Scale(domain=["actual", "projected"], range=[[1, 0], [6, 4]]),
            ),
            detail=f"{kind_col}:N",
            tooltip=[
                alt.Tooltip("month_label:O", title="Month"),
                alt.Tooltip("series:N", title="Measure"),
                alt.Tooltip(f"{kind_col}:N", title="Kind"),
                alt.Tooltip("value:Q", title="Value", format=fmt),
            ],
        )
        .properties(height=DEFAULT_HEIGHT)
    )
