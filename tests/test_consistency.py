"""One number, one value: every page rendered for the same filters, and each KPI shown on several pages reads
the same everywhere it appears (tiles, tables, captions and help texts, the forecast), on SQLite and PostgreSQL.

The pages are rendered through AppTest exactly as a program lead opens them (the sidebar's default month);
the values are read off the screen, then compared with each other and with the one ccm_core function behind
them.  A page that computed a figure from another population (the funnel's "Reached" beside "Consented of
reached", Revenue's billable patient-months beside the Minutes page's, "Appeals overturned" beside the
denial card) fails here.
"""

from __future__ import annotations

import re

import pytest

from ccm_core.engine.filters import Filters, default_report_month, filter_options
from ccm_core.kpis import program as kpis
from ccm_core.kpis import weekly
from ui.components import format_value

from apptest_utils import app_env, ensure_role_users, login_as, open_page

TABS = {"enrollment": "enrollment_tab", "minutes": "minutes_tab", "billing": "billing_tab", "revenue": "revenue_tab"}


@pytest.fixture
def lead(demo_engine, demo_url, monkeypatch):
    ensure_role_users(demo_engine)
    app_env(monkeypatch, demo_url)
    monkeypatch.setenv("CCM_BCRYPT_ROUNDS", "4")
    return login_as("program_lead")


def _tab(at, page: str, label: str):
    at.session_state[TABS[page]] = label
    return at.run()


def _metrics(at) -> dict[str, str]:
    return {m.label: m.value for m in at.metric}


def _helps(at) -> dict[str, str]:
    return {m.label: m.help or "" for m in at.metric}


def _frame(at, column: str):
    return next((d.value for d in at.dataframe if column in d.value.columns), None)


def _int(text: str) -> int:
    return int(str(text).replace(",", ""))


def test_every_kpi_reads_the_same_on_every_page(demo_engine, lead):
    at = lead
    assert not at.exception
    with demo_engine.connect() as conn:
        month = default_report_month(filter_options(conn)["months"])
        f = Filters.for_month(month)
        as_of = weekly.data_through(conn)["overall"]
    seen: dict[str, dict[str, str]] = {}  # KPI -> {where: shown value}

    def saw(kpi: str, where: str, value) -> None:
        seen.setdefault(kpi, {})[where] = str(value)

    # Overview
    ov = _metrics(at)
    for label in (
        "Enrolled patients",
        "Consent rate",
        "Billable (20+ min)",
        "Minutes per patient",
        "Expected revenue",
        "Denial rate (claims)",
    ):
        saw(label, "overview tile", ov[label])
    text = "\n".join(m.value for m in at.markdown)
    forecast = re.search(r"month-end forecast \*\*([\d,<]+)\*\*", text)
    assert forecast, text
    saw("forecast", "overview month so far", forecast.group(1))

    # Enrollment: tiles, then the funnel beside "Consented of reached"
    at = open_page(at, "enrollment")
    assert not at.exception
    en = _metrics(at)
    saw("Enrolled patients", "enrollment tile", en["Enrolled patients"])
    saw("Consent rate", "enrollment tile", en["Consent rate"])
    funnel = _frame(at, "stage")
    assert funnel is not None
    stages = dict(zip(funnel["stage"], funnel["patients"]))
    help_text = _helps(at)["Consented of reached"]
    consented, reached = (int(x) for x in re.findall(r"(\d+) consented of (\d+) reached", help_text)[0])
    assert (consented, reached) == (int(stages["Consented"]), int(stages["Reached"]))
    assert _metrics(at)["Consented of reached"] == ("n/a" if not reached else f"{consented / reached * 100:.1f}%")

    # Minutes: tiles (the forecast tile is the Overview's forecast), billable patient-months in the help
    at = open_page(at, "minutes")
    assert not at.exception
    mi = _metrics(at)
    saw("Billable (20+ min)", "minutes tile", mi["Billable rate"])
    saw("Minutes per patient", "minutes tile", mi["Minutes per patient"])
    projected = next(v for k, v in mi.items() if k.startswith("Projected billable"))
    saw("forecast", "minutes tile", projected)
    bpm = re.search(r"Billable patient-months this month: ([\d,]+)", _helps(at)["Billable rate"])
    assert bpm
    saw("billable patient-months", "minutes help", _int(bpm.group(1)))

    # Billing: the denial tile, the denial trend's row for the month, one "Appeals overturned"
    at = open_page(at, "billing")
    assert not at.exception
    bi = _metrics(at)
    saw("Denial rate (claims)", "billing tile", bi["Denial rate (claims)"])
    tile_overturned = bi["Appeals overturned"]
    at = _tab(at, "billing", "Denial trend")
    assert not at.exception
    card = [m.value for m in at.metric if m.label == "Appeals overturned"]
    assert card and all(v == tile_overturned for v in card), (tile_overturned, card)
    trend = _frame(at, "rate_by_count")
    row = trend[trend["month"] == trend["month"].iloc[-1]]
    saw("Denial rate (claims)", "billing denial trend table", format_value(float(row["rate_by_count"].iloc[0]), "rate"))

    # Revenue: the tile and the by-month table's row for the month
    at = open_page(at, "revenue")
    assert not at.exception
    saw("Expected revenue", "revenue tile", _metrics(at)["Expected revenue"])
    table = _frame(at, "billable_patient_months")
    last = table.iloc[-1]
    saw("Expected revenue", "revenue by-month table", format_value(float(last["expected"]), "dollars"))
    saw("billable patient-months", "revenue by-month table", _int(last["billable_patient_months"]))
    saw("Enrolled patients", "revenue by-month table", f"{_int(last['enrolled']):,}")

    # Every KPI shown in several places has one value ...
    for kpi, where in seen.items():
        assert len(where) >= 2, (kpi, where)
        assert len(set(where.values())) == 1, (kpi, where)
    # ... and it is the ccm_core function's value for these filters
    with demo_engine.connect() as conn:
        assert seen["billable patient-months"]["minutes help"] == str(kpis.billable_patient_months(conn, f))
        assert seen["Enrolled patients"]["overview tile"] == f"{kpis.enrolled_patients(conn, f).value:,}"
        fc = kpis.pacing_forecast(conn, Filters.for_month(month_int_of(as_of)), as_of)
    assert seen["forecast"]["minutes tile"] == f"{fc.value:,}" and fc.value <= fc.extra["cap"]


def month_int_of(d) -> int:
    return d.year * 100 + d.month
