"""The Enrollment, Minutes, Billing and Revenue pages through AppTest, on SQLite and PostgreSQL.

Who may open each page (and who gets a refusal with no data), meeting mode and the viewer role hiding
every identifier, the numbers on screen being the ccm_core functions' numbers, a filter changing them,
the care manager's own-patients worklist, and empty databases showing empty states.

Each backend gets its own small demo practice (the generator's DEMO_KW), because page views write to
the access log and meeting mode records meetings: the shared read-only demo database stays untouched.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import replace

import pandas as pd
import pytest
from sqlalchemy import func, select

from ccm_core.engine.filters import Filters, data_as_of, default_report_month, filter_options
from ccm_core.kpis import breakdowns as kpis_extra
from ccm_core.kpis import program as kpis
from ccm_core.security import auth
from ccm_core.storage import db
from ccm_core.storage.schema import access_log, clinic, patient, staff
from ui.components import format_value

from apptest_utils import ROLE_USERS, app_env, ensure_role_users, login_as, open_page, page_direct, screen_text
from conftest import DEMO_KW

MY_PAGES = ("enrollment", "minutes", "billing", "revenue")
TABS = {  # page -> (session-state key of its tabs, tab labels); only the open tab is computed
    "enrollment": (
        "enrollment_tab",
        ["Funnel", "Declines & disenrollments", "Consent completeness", "Retention", "Outreach list"],
    ),
    "minutes": ("minutes_tab", ["Worklist", "Distribution & trend", "Care managers", "Time flags"]),
    "billing": (
        "billing_tab",
        ["Supported vs billed", "Findings & conflicts", "Denial trend", "Denial reasons", "Claim lines"],
    ),
    "revenue": ("revenue_tab", ["By month", "Leakage", "Projection"]),
}
PATIENT_TABS = {"enrollment": "Outreach list", "minutes": "Worklist", "billing": "Claim lines"}
TITLES = {
    "enrollment": "Enrollment & consent",
    "minutes": "Minutes & worklist",
    "billing": "Billing & denials",
    "revenue": "Revenue",
}
ALLOWED = {page: tuple(r for r in auth.ROLE_PAGES if page in auth.ROLE_PAGES[r]) for page in MY_PAGES}
FORBIDDEN = [(page, role) for page in MY_PAGES for role in auth.ROLE_PAGES if role not in ALLOWED[page]]


# --------------------------------------------------------------------------- databases
@pytest.fixture(scope="session")
def _pages_dbs(tmp_path_factory, pg_databases):
    made: dict[str, tuple] = {}

    def get(kind: str):
        if kind not in made:
            from ccm_core.io import demo

            url = (
                f"sqlite:///{tmp_path_factory.mktemp('pages') / 'pages.db'}"
                if kind == "sqlite"
                else pg_databases.create("pages")
            )
            engine = db.make_engine(url)
            db.upgrade(engine)
            demo.generate(engine, **DEMO_KW)
            ensure_role_users(engine)
            made[kind] = (engine, engine.url.render_as_string(hide_password=False))
        return made[kind]

    yield get
    for engine, _ in made.values():
        engine.dispose()


@pytest.fixture
def pages_db(backend, _pages_dbs, monkeypatch):
    """(engine, url) of this backend's demo practice, with the app pointed at it."""
    engine, url = _pages_dbs(backend)
    app_env(monkeypatch, url)
    monkeypatch.setenv("CCM_BCRYPT_ROUNDS", "4")
    return engine


# Role gates and masking cannot depend on the database: they run once, on SQLite.
SQLITE_ONLY = pytest.mark.parametrize("backend", ["sqlite"], indirect=True)


def report_filters(engine) -> Filters:
    """What the sidebar starts with: the last complete month that has data."""
    with engine.connect() as conn:
        months = filter_options(conn)["months"]
    return Filters.for_month(default_report_month(months))


def open_tab(at, page: str, label: str):
    """Select a tab the way a click does (its label in session state), then rerun."""
    at.session_state[TABS[page][0]] = label
    return at.run()


def metric_values(at) -> dict[str, str]:
    return {m.label: m.value for m in at.metric}


def frames(at) -> list[pd.DataFrame]:
    return [d.value for d in at.dataframe]


def frame_with(at, column: str) -> pd.DataFrame | None:
    return next((df for df in frames(at) if column in df.columns), None)


def identifiers(engine) -> tuple[set[str], set[str]]:
    """Every MRN and full name in the database: none may be on a masked screen."""
    with engine.connect() as conn:
        rows = conn.execute(select(patient.c.mrn, patient.c.first_name, patient.c.last_name)).all()
    return {r.mrn for r in rows}, {f"{r.first_name} {r.last_name}" for r in rows}


def everything_on_screen(at) -> str:
    """Text, tables and chart specs (a chart could carry names in its data)."""
    parts = [screen_text(at)]
    parts += [df.to_string() for df in frames(at)]
    parts += [
        str(getattr(c.proto, "spec", "")) + str(getattr(c.proto, "datasets", "")) for c in at.get("vega_lite_chart")
    ]
    return "\n".join(parts)


def assert_no_identifiers(at, engine) -> None:
    text = everything_on_screen(at)
    mrns, names = identifiers(engine)
    leaked = [m for m in mrns if m in text] + [n for n in names if n in text]
    assert not leaked, f"identifiers on a masked screen: {leaked[:5]}"


# --------------------------------------------------------------------------- who may open what
@SQLITE_ONLY
@pytest.mark.parametrize("role", [r for r in auth.ROLE_PAGES if any(r in ALLOWED[p] for p in MY_PAGES)])
def test_each_allowed_role_opens_its_pages_without_errors(pages_db, role):
    """Every allowed role opens each page; the program lead also walks every tab."""
    at = login_as(role)
    for page in MY_PAGES:
        if role not in ALLOWED[page]:
            continue
        open_page(at, page)
        tabs = TABS[page][1] if role == "program_lead" else [None]
        for tab in tabs:
            if tab:
                open_tab(at, page, tab)
            where = (page, tab, role)
            assert not at.exception, (where, at.exception)
            assert [t.value for t in at.title] == [TITLES[page]], where
            assert not at.error, (where, [e.value for e in at.error])
            assert at.metric, f"{where}: no KPI tiles"
            text = screen_text(at)
            # a tab draws a chart or table, says its table is hidden, or says plainly that there is nothing
            # (time flags follow the chosen month, which in this data has none)
            assert (
                at.get("vega_lite_chart")
                or at.dataframe
                or "hidden" in text
                or "No suspicious time for these filters" in text
            ), f"{where}: empty"


@SQLITE_ONLY
@pytest.mark.parametrize("page,role", FORBIDDEN)
def test_forbidden_roles_get_a_refusal_and_no_data(pages_db, page, role):
    at = page_direct(auth.PAGES[page][1], role)
    assert not at.exception
    assert any("cannot open" in w.value for w in at.warning), [w.value for w in at.warning]
    assert not at.metric and not at.dataframe and not at.get("vega_lite_chart")
    assert not at.title or TITLES[page] not in [t.value for t in at.title]


@SQLITE_ONLY
@pytest.mark.parametrize("page", MY_PAGES)
def test_anonymous_visitor_sees_only_the_sign_in_form(pages_db, page):
    at = page_direct(auth.PAGES[page][1])
    assert not at.exception
    assert not at.metric and not at.dataframe and not at.get("vega_lite_chart")
    assert len(at.text_input) == 2  # username and password


# --------------------------------------------------------------------------- masking
@SQLITE_ONLY
def test_meeting_mode_hides_every_identifier_on_every_page(pages_db):
    at = login_as("program_lead", query={"meeting": "1"})
    assert at.session_state["meeting_mode"] is True
    hidden = 0
    for page in MY_PAGES:
        open_page(at, page)
        for tab in TABS[page][1]:
            open_tab(at, page, tab)
            assert not at.exception, (page, tab)
            assert_no_identifiers(at, pages_db)
            hidden += screen_text(at).count("Patient-level table hidden in meeting mode")
    # outreach list; worklist (and time flags when the month has any); flagged patient-months and claim lines
    with pages_db.connect() as conn:
        flagged = not kpis_extra.time_flags(conn, report_filters(pages_db)).empty
    assert hidden >= 4 + flagged


@SQLITE_ONLY
def test_revealing_in_meeting_mode_shows_names_and_is_logged(pages_db):
    at = login_as("program_lead", query={"meeting": "1"})
    open_page(at, "enrollment")
    open_tab(at, "enrollment", "Outreach list")
    with pages_db.connect() as conn:
        before = conn.execute(
            select(func.count()).select_from(access_log).where(access_log.c.action == "reveal")
        ).scalar()
    at.button(key="reveal_enrollment_outreach").click().run()
    outreach = frame_with(at, "next_step")
    assert outreach is not None and len(outreach) > 0
    mrns, _ = identifiers(pages_db)
    assert set(outreach["mrn"]) <= mrns  # real identifiers now, deliberately
    with pages_db.connect() as conn:
        after = conn.execute(
            select(func.count()).select_from(access_log).where(access_log.c.action == "reveal")
        ).scalar()
    assert after == before + 1


@SQLITE_ONLY
def test_viewer_sees_pseudonyms_and_no_downloads(pages_db):
    at = login_as("viewer")
    for page in ("enrollment", "minutes"):
        open_page(at, page)
        open_tab(at, page, PATIENT_TABS[page])
        assert not at.exception
        assert_no_identifiers(at, pages_db)
        assert not at.get("download_button"), "the viewer role may not export"
    open_page(at, "enrollment")
    open_tab(at, "enrollment", "Outreach list")
    outreach = frame_with(at, "next_step")
    assert outreach is not None and len(outreach) > 0
    assert outreach["patient_name"].str.match(r"^Patient [0-9A-F]{6}$").all()


@SQLITE_ONLY
def test_patient_level_views_go_to_the_access_log(pages_db):
    f = report_filters(pages_db)
    with pages_db.connect() as conn:
        expected_patients = len(kpis_extra.eligible_not_enrolled(conn, f))
        before = conn.execute(select(func.max(access_log.c.id))).scalar() or 0
    at = login_as("program_lead")
    open_page(at, "enrollment")
    open_tab(at, "enrollment", "Outreach list")
    with pages_db.connect() as conn:
        rows = conn.execute(
            select(access_log.c.username, access_log.c.action, access_log.c.page, access_log.c.patient_count).where(
                access_log.c.id > before, access_log.c.page == "enrollment"
            )
        ).all()
    assert ("t_lead", "view", "enrollment", expected_patients) in [tuple(r) for r in rows]


# --------------------------------------------------------------------------- the numbers
def test_pages_show_the_ccm_core_numbers(pages_db):
    """Each tile and list on screen equals the ccm_core function it names (both databases)."""
    f = report_filters(pages_db)
    prev = f.with_months(db.add_months(f.month_to, -1))
    with pages_db.connect() as conn:
        expect = {
            "enrollment": {
                "Eligible patients": format_value(kpis.eligible_population(conn, f).value, "count"),
                "Enrolled patients": format_value(kpis.enrolled_patients(conn, f).value, "count"),
                "Enrollment rate": format_value(kpis.enrollment_rate(conn, f).value, "rate"),
                "Consent rate": format_value(kpis.consent_rate(conn, f).value, "rate"),
            },
            "minutes": {
                "Minutes per patient": format_value(kpis.minutes_per_enrolled_patient(conn, f).value, "minutes"),
                "Billable rate": format_value(kpis.billable_rate(conn, f).value, "rate"),
                "Add-on capture": format_value(kpis.addon_capture(conn, f).value, "rate"),
            },
            "billing": {
                "Denial rate (claims)": format_value(kpis.initial_denial_rate(conn, f, "count").value, "rate"),
                "Denial rate (dollars)": format_value(kpis.initial_denial_rate(conn, f, "dollars").value, "rate"),
                "First-pass resolution": format_value(kpis.first_pass_resolution_rate(conn, f).value, "rate"),
            },
            "revenue": {
                "Expected revenue": format_value(kpis.revenue_summary(conn, f).extra["expected"], "dollars"),
                "Paid": format_value(kpis.revenue_summary(conn, f).extra["paid"], "dollars"),
            },
        }
        outreach = kpis_extra.eligible_not_enrolled(conn, f)
        trend_f = f.with_months(db.add_months(f.month_to, -5), f.month_to)
        findings = kpis_extra.billing_findings_list(conn, trend_f)
        denied_lines = kpis_extra.claim_lines(conn, trend_f, True, None, None)
        enrolled_prev = kpis.enrolled_patients(conn, prev).value
        flags = kpis_extra.time_flag_summary(conn, f)  # the chosen months, not a trend window
    assert enrolled_prev is not None
    at = login_as("program_lead")
    for page, tiles in expect.items():
        open_page(at, page)
        shown = metric_values(at)
        for label, value in tiles.items():
            assert shown.get(label) == value, (page, label, shown.get(label), value)
        if page == "enrollment":
            open_tab(at, page, "Outreach list")
            table = frame_with(at, "next_step")
            assert len(table) == len(outreach)
            assert list(table["patient_id"]) == list(outreach["patient_id"])
        if page == "billing":
            open_tab(at, page, "Findings & conflicts")
            assert len(frame_with(at, "findings")) == len(findings) > 0  # the demo plants billing failures
            open_tab(at, page, "Claim lines")
            lines = frame_with(at, "cpt_code")
            assert len(lines) == len(denied_lines) > 0
            assert set(lines["status"]) <= {"denied", "denied, later paid"}
        if page == "minutes":
            open_tab(at, page, "Time flags")
            vague = flags.set_index("kind").loc["vague_note", "entries"]
            assert metric_values(at).get("Vague notes") == f"{vague}"


@SQLITE_ONLY
def test_clinic_filter_changes_the_numbers(pages_db):
    f = report_filters(pages_db)
    with pages_db.connect() as conn:
        clinics = conn.execute(select(clinic.c.id).order_by(clinic.c.id)).scalars().all()
        per_clinic = {c: kpis.minutes_per_enrolled_patient(conn, replace(f, clinic_ids=(c,))).value for c in clinics}
        everyone = kpis.minutes_per_enrolled_patient(conn, f).value
    target = next(c for c in clinics if format_value(per_clinic[c], "minutes") != format_value(everyone, "minutes"))
    at = login_as("program_lead")
    open_page(at, "minutes")
    assert metric_values(at)["Minutes per patient"] == format_value(everyone, "minutes")
    at.multiselect(key="_f_clinics").set_value([target]).run()
    assert not at.exception
    assert metric_values(at)["Minutes per patient"] == format_value(per_clinic[target], "minutes")
    assert at.query_params["clinic"] == str(target)  # and the link carries it


@SQLITE_ONLY
def test_care_manager_worklist_holds_only_their_own_patients(pages_db):
    own = auth.get_user(pages_db, ROLE_USERS["care_manager"][0]).staff_id
    with pages_db.connect() as conn:
        other = (
            conn.execute(
                select(staff.c.id).where(staff.c.role == "care_manager", staff.c.id != own).order_by(staff.c.id)
            )
            .scalars()
            .first()
        )
        as_of = data_as_of(conn, dt.date.today())
        f = Filters.for_month(as_of.year * 100 + as_of.month, care_manager_ids=(own,))
        mine = kpis.near_threshold_worklist(conn, f, as_of)
        everyone = kpis.near_threshold_worklist(conn, replace(f, care_manager_ids=()), as_of)
    assert len(everyone) > len(mine), "the demo should have other care managers' patients near the threshold"
    # a link that asks for another care manager's panel must not widen the view
    at = login_as("care_manager", query={"cm": str(other)})
    open_page(at, "minutes")
    assert not at.exception
    table = frame_with(at, "minutes_needed")
    if mine.empty:
        assert table is None
    else:
        assert sorted(table["patient_id"]) == sorted(mine["patient_id"])
    text = screen_text(at)
    assert "your patients only" in text


# --------------------------------------------------------------------------- empty database
def test_empty_database_shows_empty_states(engine, monkeypatch):
    url = engine.url.render_as_string(hide_password=False)
    ensure_role_users(engine)
    app_env(monkeypatch, url)
    at = login_as("admin")
    for page in MY_PAGES:
        open_page(at, page)
        assert not at.exception, page
        assert not at.error, (page, [e.value for e in at.error])
        assert "No data yet" in screen_text(at), page
        assert not at.dataframe and not at.get("vega_lite_chart")
