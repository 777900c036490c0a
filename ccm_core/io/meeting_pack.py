"""The weekly meeting pack: the Overview's meeting view as a PDF (``python -m ccm_core meeting-pack``).

Page 1: the headline tiles (value, 12-month sparkline, change vs the month before and since the last
meeting, target status), this month so far with the month-end forecast, and what needs attention.  Page 2:
the month's charts (billable rate and denial rate over 12 months, expected / billed / paid by month with open
months marked, patients by counted-minutes band).  Every number is the ``ccm_core.kpis.weekly`` / ``ccm_core.kpis.program``
function the pages call, so the paper agrees with the screen.  Masked as meeting mode masks: counts of 1-10
read "<11" and no patient-level row is printed.  Each page carries its number and the date it was made.
Charts are drawn with fpdf2's own lines and rectangles (no browser).
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path

from fpdf import FPDF
from sqlalchemy import Engine

from ccm_core.engine.filters import Filters, default_report_month, filter_options
from ccm_core.io.meetings import last_meeting, meeting_snapshot
from ccm_core.kpis import program as kpis
from ccm_core.kpis import weekly
from ccm_core.storage.db import add_months, format_month, month_bounds, month_int

SMALL_CELL = 11
STATUS_RGB = {"green": (46, 125, 91), "amber": (208, 138, 31), "red": (194, 69, 61), None: (154, 165, 177)}
STATUS_WORD = {"green": "On target", "amber": "Watch", "red": "Off target", None: "No target data"}
INK, MUTED, PRIMARY = (33, 37, 41), (91, 107, 127), (47, 109, 181)
_ASCII = {"≥": ">=", "≤": "<=", "–": "-", "—": "-", "’": "'", "‘": "'", "“": '"', "”": '"', "…": "...", "→": "->"}


def _t(text: str) -> str:
    """Text the PDF's core fonts can print (Latin-1)."""
    for a, b in _ASCII.items():
        text = text.replace(a, b)
    return text.encode("latin-1", "replace").decode("latin-1")


def masked_count(n) -> str:
    """Counts 1-10 read "<11" (the pack is always masked as meeting mode is)."""
    x = weekly.number(n)
    if x is None:
        return "n/a"
    return "<11" if 0 < x < SMALL_CELL else f"{x:,.0f}"


def rate_reveals_small(v) -> bool:
    """A rate whose numerator, denominator or their difference is a count of 1-10 would give that count back:
    hidden, as meeting mode hides it (ui.suppression.rate_reveals_small)."""
    n, d = weekly.number(getattr(v, "numerator", None)), weekly.number(getattr(v, "denominator", None))
    if n is None or d is None or getattr(v, "extra", {}).get("by") == "dollars":
        return False
    return any(0 < x < SMALL_CELL for x in (n, d, d - n))


def _value(key: str, v) -> str:
    h = weekly.HEADLINE_BY_KEY[key]
    if h.unit == "rate" and rate_reveals_small(v):
        return "<11"
    return masked_count(v) if h.unit == "count" else weekly.fmt(v, h.unit)


def _delta(key: str, now, then) -> str:
    h = weekly.HEADLINE_BY_KEY[key]
    a, b = weekly.number(now), weekly.number(then)
    if h.unit == "rate" and (rate_reveals_small(now) or rate_reveals_small(then)):
        return "-"
    if h.unit == "count" and ((a is not None and 0 < a < SMALL_CELL) or (b is not None and 0 < b < SMALL_CELL)):
        return "-"
    return weekly.fmt_delta(now, then, h.unit) or "-"


def pack_data(engine: Engine, f: Filters, week: dt.date, as_of: dt.date | None = None) -> dict:
    """Everything the pack prints, computed once (what a test compares with the pages)."""
    with engine.connect() as conn:
        through = weekly.data_through(conn, min(week, dt.date.today()))
        as_of = as_of or through["overall"]
        lag = weekly.open_month_lag_days(conn)
        now = weekly.headline_values(conn, f)
        before = weekly.headline_values(conn, f.with_months(add_months(f.month_to, -1)))
        series = weekly.headline_series(conn, f)
        targets = weekly.targets(conn)
        forecast = kpis.pacing_forecast(conn, f.with_months(month_int(as_of)), as_of) if as_of else None
        attention = weekly.attention_items(conn, f, as_of)
        six = f.with_months(add_months(f.month_to, -5), f.month_to)
        revenue = kpis.revenue_by_month(conn, six)
        bands = kpis.minutes_per_enrolled_patient(conn, f).extra.get("bands") or {}
    last = last_meeting(engine, week)
    snapshot = (meeting_snapshot(engine, last, weekly.view_key(f)) if last else None) or {}
    return {
        "f": f,
        "week": week,
        "as_of": as_of,
        "through": through,
        "lag": lag,
        "now": now,
        "before": before,
        "series": series,
        "targets": targets,
        "forecast": forecast,
        "attention": attention,
        "revenue": revenue,
        "bands": bands,
        "last_meeting": last,
        "snapshot": snapshot,
    }


class _Pack(FPDF):
    made_on: dt.date = dt.date.today()
    title_line: str = ""

    def header(self):
        self.set_font("Helvetica", "B", 13)
        self.set_text_color(*INK)
        self.cell(0, 7, _t(self.title_line), new_x="LMARGIN", new_y="NEXT")
        self.ln(1)

    def footer(self):
        self.set_y(-12)
        self.set_font("Helvetica", "", 8)
        self.set_text_color(*MUTED)
        self.cell(
            0,
            6,
            _t(
                f"CCM program dashboard · weekly meeting pack · made {self.made_on:%b %-d, %Y} · "
                f"counts under 11 suppressed"
            ),
            align="L",
        )
        self.set_x(-40)
        self.cell(30, 6, f"Page {self.page_no()} of {{nb}}", align="R")


def _sparkline(pdf: FPDF, x: float, y: float, w: float, h: float, values: list[float | None], rgb) -> None:
    pts = [(i, v) for i, v in enumerate(values) if v is not None]
    if len(pts) < 2:
        return
    lo, hi = min(v for _, v in pts), max(v for _, v in pts)
    span = (hi - lo) or 1.0
    n = max(1, len(values) - 1)
    coords = [(x + w * i / n, y + h - h * (v - lo) / span) for i, v in pts]
    pdf.set_draw_color(*rgb)
    pdf.set_line_width(0.5)
    for (x1, y1), (x2, y2) in zip(coords, coords[1:]):
        pdf.line(x1, y1, x2, y2)
    pdf.set_fill_color(*rgb)
    cx, cy = coords[-1]
    pdf.ellipse(cx - 0.8, cy - 0.8, 1.6, 1.6, style="F")


def _tile(pdf: FPDF, x: float, y: float, w: float, h: float, key: str, data: dict) -> None:
    head = weekly.HEADLINE_BY_KEY[key]
    now, before = data["now"][key], data["before"][key]
    color, target_words = weekly.status(key, now, before, data["targets"][key])
    hidden = head.unit == "rate" and rate_reveals_small(now)
    if hidden:  # nothing that could give the small count back: no colour, no trend
        color = None
    open_month = head.lag_sensitive and weekly.is_open(data["f"].month_to, data["as_of"], data["lag"])
    pdf.set_draw_color(214, 219, 225)
    pdf.set_line_width(0.3)
    pdf.rect(x, y, w, h)
    pdf.set_fill_color(*STATUS_RGB[color])
    pdf.rect(x, y, 2.2, h, style="F")
    pdf.set_xy(x + 4, y + 2)
    pdf.set_font("Helvetica", "B", 9.5)
    pdf.set_text_color(*MUTED)
    pdf.cell(w - 6, 5, _t(head.label))
    pdf.set_xy(x + 4, y + 8)
    pdf.set_font("Helvetica", "B", 20)
    pdf.set_text_color(*INK)
    pdf.cell(w * 0.55, 10, _t(_value(key, now)))
    if not hidden:
        _sparkline(pdf, x + w * 0.58, y + 8, w * 0.38, 10, [v for _, v in data["series"][key]], PRIMARY)
    pdf.set_font("Helvetica", "", 8.5)
    pdf.set_text_color(*INK)
    pdf.set_xy(x + 4, y + 20)
    vs_month = "open month, not compared" if open_month else _delta(key, now, before)
    since = _delta(key, now, data["snapshot"][key]) if key in data["snapshot"] and not hidden else "-"
    pdf.cell(w - 6, 4.5, _t(f"vs last month: {vs_month}"))
    pdf.set_xy(x + 4, y + 25)
    pdf.cell(w - 6, 4.5, _t(f"since last meeting: {since}"))
    pdf.set_xy(x + 4, y + 30)
    pdf.set_text_color(*STATUS_RGB[color])
    pdf.set_font("Helvetica", "B", 8.5)
    pdf.cell(w - 6, 4.5, _t(f"{STATUS_WORD[color]} · target {target_words}"))


def _axis_box(pdf: FPDF, x, y, w, h, title: str) -> None:
    pdf.set_xy(x, y)
    pdf.set_font("Helvetica", "B", 10)
    pdf.set_text_color(*INK)
    pdf.cell(w, 5, _t(title))
    pdf.set_draw_color(200, 205, 210)
    pdf.set_line_width(0.2)
    pdf.line(x + 10, y + h, x + w, y + h)


def _line_chart(
    pdf: FPDF,
    x,
    y,
    w,
    h,
    title: str,
    points: list[tuple[int, float | None]],
    fmt,
    rgb,
    open_months: set[int] = frozenset(),
) -> None:
    _axis_box(pdf, x, y, w, h, title)
    vals = [v for _, v in points if v is not None]
    if not vals:
        return
    top = max(vals) * 1.15 or 1.0
    plot_x, plot_y, plot_w, plot_h = x + 12, y + 8, w - 14, h - 10
    pdf.set_font("Helvetica", "", 7)
    pdf.set_text_color(*MUTED)
    for frac in (0, 0.5, 1):
        yy = plot_y + plot_h - plot_h * frac
        pdf.set_draw_color(230, 233, 236)
        pdf.line(plot_x, yy, plot_x + plot_w, yy)
        pdf.set_xy(x, yy - 2)
        pdf.cell(11, 4, _t(fmt(top * frac)), align="R")
    n = max(1, len(points) - 1)
    coords = []
    for i, (m, v) in enumerate(points):
        px = plot_x + plot_w * i / n
        if i % 2 == len(points) % 2 or i == len(points) - 1:
            pdf.set_xy(px - 6, y + h + 0.5)
            pdf.cell(12, 4, _t(_tick(m) + ("*" if m in open_months else "")), align="C")
        if v is not None:
            coords.append((px, plot_y + plot_h - plot_h * v / top))
    pdf.set_draw_color(*rgb)
    pdf.set_line_width(0.6)
    for (x1, y1), (x2, y2) in zip(coords, coords[1:]):
        pdf.line(x1, y1, x2, y2)
    pdf.set_fill_color(*rgb)
    for cx, cy in coords:
        pdf.ellipse(cx - 0.7, cy - 0.7, 1.4, 1.4, style="F")


def _bar_chart(
    pdf: FPDF,
    x,
    y,
    w,
    h,
    title: str,
    labels: list[str],
    series: dict[str, list[float]],
    colors,
    fmt,
    marks: list[bool] | None = None,
) -> None:
    _axis_box(pdf, x, y, w, h, title)
    top = max([v for vs in series.values() for v in vs] + [0]) * 1.15 or 1.0
    plot_x, plot_y, plot_w, plot_h = x + 12, y + 8, w - 14, h - 10
    pdf.set_font("Helvetica", "", 7)
    for frac in (0, 0.5, 1):
        yy = plot_y + plot_h - plot_h * frac
        pdf.set_draw_color(230, 233, 236)
        pdf.line(plot_x, yy, plot_x + plot_w, yy)
        pdf.set_text_color(*MUTED)
        pdf.set_xy(x, yy - 2)
        pdf.cell(11, 4, _t(fmt(top * frac)), align="R")
    group_w = plot_w / max(1, len(labels))
    bar_w = group_w * 0.8 / max(1, len(series))
    for i, label in enumerate(labels):
        gx = plot_x + group_w * i + group_w * 0.1
        for j, vs in enumerate(series.values()):
            v = vs[i] or 0
            bh = plot_h * v / top
            pdf.set_fill_color(*colors[j])
            pdf.rect(gx + bar_w * j, plot_y + plot_h - bh, bar_w * 0.92, bh, style="F")
        pdf.set_text_color(*MUTED)
        pdf.set_xy(gx - 2, y + h + 0.5)
        pdf.cell(group_w, 4, _t(label + ("*" if marks and marks[i] else "")), align="C")
    # legend
    lx = x + 12
    pdf.set_font("Helvetica", "", 7.5)
    for j, name in enumerate(series):
        pdf.set_fill_color(*colors[j])
        pdf.rect(lx, y + h + 6, 3, 3, style="F")
        pdf.set_xy(lx + 4, y + h + 5.2)
        pdf.set_text_color(*INK)
        pdf.cell(28, 4.5, _t(name))
        lx += 32


def _month_name(m: int) -> str:
    return month_bounds(m)[0].strftime("%B %Y")


def _tick(m: int) -> str:
    import calendar

    return f"{calendar.month_abbr[m % 100]} '{m // 100 % 100:02d}"


def render(data: dict, made_on: dt.date | None = None) -> bytes:
    f: Filters = data["f"]
    pdf = _Pack(orientation="L", unit="mm", format="A4")
    pdf.made_on = made_on or dt.date.today()
    pdf.title_line = f"Weekly meeting pack · week of {data['week']:%b %-d, %Y} · {_month_name(f.month_to)}"
    pdf.set_auto_page_break(auto=True, margin=14)
    pdf.alias_nb_pages()
    pdf.add_page()
    pdf.set_font("Helvetica", "", 9)
    pdf.set_text_color(*MUTED)
    as_of = data["as_of"]
    bits = [weekly.scope_words(f), f"data through {as_of:%b %-d, %Y}" if as_of else "no data yet"]
    if weekly.is_open(f.month_to, as_of, data["lag"]):
        bits.append(f"{_month_name(f.month_to)} is still open (claims paid up to {data['lag']} days after month end)")
    last = data["last_meeting"]
    bits.append(
        f"since last meeting = since {last:%b %-d, %Y}"
        if last and data["snapshot"]
        else "no earlier meeting saw this view"
    )
    pdf.multi_cell(0, 4.5, _t(" · ".join(bits)), new_x="LMARGIN", new_y="NEXT")
    pdf.ln(2)
    # tiles: 3 x 2
    x0, y0, w, h, gap = pdf.l_margin, pdf.get_y(), 88, 37, 5
    for i, head in enumerate(weekly.HEADLINES):
        _tile(pdf, x0 + (i % 3) * (w + gap), y0 + (i // 3) * (h + gap), w, h, head.key, data)
    pdf.set_y(y0 + 2 * (h + gap) + 1)
    fc = data["forecast"]
    if fc is not None:
        e = fc.extra
        days_left = (month_bounds(month_int(as_of))[1] - as_of).days
        rng = "" if e["low"] == e["high"] else f" (likely {masked_count(e['low'])}-{masked_count(e['high'])})"
        pdf.set_font("Helvetica", "B", 11)
        pdf.set_text_color(*INK)
        pdf.cell(0, 6, _t(f"{as_of:%B %Y} so far"), new_x="LMARGIN", new_y="NEXT")
        pdf.set_font("Helvetica", "", 10)
        pdf.multi_cell(
            0,
            5,
            _t(
                f"{weekly.plural(days_left, 'day')} left; {weekly.plural(masked_count(e['so_far']), 'billable patient-month')}"
                f" so far; month-end forecast {masked_count(fc.value)}{rng} of "
                f"{weekly.plural(masked_count(e['enrolled']), 'enrolled patient')} "
                f"({weekly.plural(masked_count(e['can_still_bill']), 'patient')} can still reach 20 minutes)."
            ),
            new_x="LMARGIN",
            new_y="NEXT",
        )
        pdf.ln(1)
    pdf.set_font("Helvetica", "B", 11)
    pdf.cell(0, 6, "Needs attention", new_x="LMARGIN", new_y="NEXT")
    pdf.set_font("Helvetica", "", 10)
    page_names = {"billing": "Billing", "minutes": "Minutes", "enrollment": "Enrollment", "revenue": "Revenue"}
    shown = 0
    for item in data["attention"]:
        if item["count"] in (None, 0) and not item.get("dollars"):
            continue
        money = f" · {weekly.fmt(item['dollars'], 'dollars')}" if item.get("dollars") else ""
        count = f"{masked_count(item['count'])} · " if item["count"] is not None else ""
        pdf.cell(
            0,
            5.5,
            _t(f"- {count}{item['label']}{money}  (page: {page_names.get(item['page'], item['page'])})"),
            new_x="LMARGIN",
            new_y="NEXT",
        )
        shown += 1
    if not shown:
        pdf.cell(0, 5.5, "Nothing waiting.", new_x="LMARGIN", new_y="NEXT")

    # page 2: the month's charts
    pdf.add_page()
    cw, ch = 130, 55
    top = pdf.get_y() + 2
    pct = lambda v: f"{v * 100:.0f}%"  # noqa: E731
    _line_chart(
        pdf,
        pdf.l_margin,
        top,
        cw,
        ch,
        "Billable rate (20+ min), 12 months",
        data["series"]["billable_rate"],
        pct,
        (46, 125, 91),
    )
    open_set = {m for m, _ in data["series"]["denial_rate"] if weekly.is_open(m, as_of, data["lag"])}
    _line_chart(
        pdf,
        pdf.l_margin + cw + 15,
        top,
        cw,
        ch,
        "Initial denial rate (claims), 12 months",
        data["series"]["denial_rate"],
        pct,
        (194, 69, 61),
        open_set,
    )
    rev = data["revenue"]
    months = [int(m) for m in rev["month"]]
    money = lambda v: f"${v / 1000:.0f}k" if v >= 1000 else f"${v:.0f}"  # noqa: E731
    _bar_chart(
        pdf,
        pdf.l_margin,
        top + ch + 22,
        cw,
        ch,
        "Expected, billed and paid by month of service",
        [_tick(m) for m in months],
        {"Expected": list(rev["expected"]), "Billed": list(rev["billed"]), "Paid": list(rev["paid"])},
        [(154, 165, 177), PRIMARY, (46, 125, 91)],
        money,
        marks=[weekly.is_open(m, as_of, data["lag"]) for m in months],
    )
    bands = data["bands"]
    _bar_chart(
        pdf,
        pdf.l_margin + cw + 15,
        top + ch + 22,
        cw,
        ch,
        f"Enrolled patients by counted minutes, {_month_name(f.month_to)}",
        list(bands),
        {"Patients": [float(v) if not (0 < v < SMALL_CELL) else 0.0 for v in bands.values()]},
        [PRIMARY],
        lambda v: f"{v:.0f}",
    )
    pdf.set_xy(pdf.l_margin, top + 2 * ch + 36)
    pdf.set_font("Helvetica", "", 8)
    pdf.set_text_color(*MUTED)
    pdf.multi_cell(
        0,
        4,
        _t(
            "* open month: claims still being submitted or paid, so billed, paid and denial figures "
            "are incomplete. Minutes bands with 1-10 patients are drawn as empty (small-cell rule)."
        ),
    )
    return bytes(pdf.output())


def build_pdf(
    engine: Engine, f: Filters, week: dt.date, as_of: dt.date | None = None, username: str | None = None
) -> bytes:
    """The pack for one filter set and meeting week; logged as an export when a user asks for it."""
    data = pack_data(engine, f, week, as_of)
    out = render(data)
    if username:
        from ccm_core.security.access_log import log_access

        log_access(
            engine,
            username=username,
            role=None,
            action="export",
            page="overview",
            detail=f"meeting pack {week.isoformat()} ({format_month(f.month_to)}), masked",
        )
    return out


# --------------------------------------------------------------------------- CLI
def cmd_meeting_pack(args) -> int:
    from ccm_core.storage.db import database_url, make_engine

    week = dt.date.fromisoformat(args.week) if args.week else dt.date.today()
    engine = make_engine(args.db or database_url())
    with engine.connect() as conn:
        months = filter_options(conn)["months"]
    month = int(args.month.replace("-", "")) if args.month else default_report_month(months, week)
    f = Filters.for_month(month)
    out = Path(args.out or f"ccm_meeting_pack_{week:%Y%m%d}.pdf")
    out.write_bytes(build_pdf(engine, f, week))
    print(f"wrote {out} ({out.stat().st_size:,} bytes): {format_month(month)}, week of {week.isoformat()}")
    return 0


def add_cli(subparsers) -> None:
    from ccm_core.cli import add_db_argument

    p = subparsers.add_parser("meeting-pack", help="the Overview's meeting view as a PDF")
    p.add_argument(
        "--week", help="meeting date YYYY-MM-DD (default today); the report month is the last complete month before it"
    )
    p.add_argument("--month", help="report month YYYY-MM (default: the last complete month)")
    p.add_argument("--out", help="PDF file to write (default ccm_meeting_pack_YYYYMMDD.pdf)")
    add_db_argument(p)
    p.set_defaults(func=cmd_meeting_pack)
