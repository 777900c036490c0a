"""Issue 13, items 4-6: every value in a shared link is checked; bad ones become defaults with a plain notice.

Unit tests of ``ui.filters.validate_link`` / ``bound_months`` (worked by hand), then the app itself through
AppTest with the hostile links from the issue: a superscript clinic id, a 1901-2999 month range, markdown
in a month value.
"""

from __future__ import annotations

import datetime as dt

import pytest

from ccm_core.storage import db
from ui.filters import MAX_SPAN_MONTHS, bound_months, validate_link

from apptest_utils import app_env, ensure_role_users, login_as, open_page
from builders import Builder

OPTIONS = {
    "months": [202509, 202510],
    "clinics": [(1, "North"), (2, "South")],
    "practitioners": [(7, "Doe, J MD")],
    "care_managers": [(3, "Busy, B RN")],
    "payers": ["Medicare", "Aetna MA"],
    "programs": ["CCM", "PCM"],
}
DEFAULT = 202510
HOSTILE = "![x](http://beacon.invalid/beacon.png)"


def _v(**query):
    return validate_link(query, OPTIONS, DEFAULT)


def test_a_good_link_is_taken_as_is():
    state, notices = _v(
        **{
            "from": "2025-09",
            "to": "2025-10",
            "clinic": "2,1",
            "practitioner": "7",
            "cm": "3",
            "payer": "Aetna MA",
            "program": "PCM",
        }
    )
    assert notices == []
    assert state == {
        "month_from": 202509,
        "month_to": 202510,
        "clinics": (2, 1),
        "practitioners": (7,),
        "care_managers": (3,),
        "payers": ("Aetna MA",),
        "programs": ("PCM",),
    }


def test_no_link_gives_the_defaults():
    assert _v() == (
        {
            "month_from": DEFAULT,
            "month_to": DEFAULT,
            "clinics": (),
            "practitioners": (),
            "care_managers": (),
            "payers": (),
            "programs": ("CCM",),
        },
        [],
    )


@pytest.mark.parametrize("value", ["\u00b2", "\u00b2,1", "１", "1e3", "-1", "99", "0x1", "1" * 40, ",,,"])
def test_odd_clinic_values_are_dropped_with_a_notice(value):
    state, notices = _v(clinic=value)
    assert state["clinics"] == ((1,) if value == "\u00b2,1" else ())
    assert notices == ["The link named a clinic that does not exist; it was left out."]


@pytest.mark.parametrize(
    "query",
    [
        {"to": HOSTILE},
        {"from": HOSTILE, "to": "2025-10"},
        {"to": "2025-13"},
        {"to": "２０２５-１０"},
        {"to": "2025-1"},
        {"to": " 2025-10"},
    ],
)
def test_months_that_are_not_yyyy_mm_give_the_default_month(query):
    state, notices = _v(**query)
    assert (state["month_from"], state["month_to"]) == (DEFAULT, DEFAULT)
    assert notices == [
        "The link's months were not understood (they must look like 2025-10); showing the default month."
    ]


def test_notices_never_repeat_the_link():
    query = {
        "from": HOSTILE,
        "to": HOSTILE,
        "clinic": HOSTILE,
        "practitioner": HOSTILE,
        "cm": HOSTILE,
        "payer": HOSTILE,
        "program": HOSTILE,
    }
    state, notices = _v(**query)
    assert len(notices) == 6
    text = " ".join(notices)
    for bit in ("beacon", "http", "![", "]("):
        assert bit not in text
    assert state["programs"] == ("CCM",) and state["payers"] == ()


def test_months_are_bounded_to_the_data():
    state, notices = _v(**{"from": "1901-01", "to": "2999-12"})
    assert (state["month_from"], state["month_to"]) == (202509, 202510)
    assert notices == ["Months outside the data were left out (the data covers 2025-09 to 2025-10)."]
    # Entirely outside the data: the default month.
    state, _ = _v(**{"from": "2030-01", "to": "2030-02"})
    assert (state["month_from"], state["month_to"]) == (DEFAULT, DEFAULT)
    # Backwards: the default month.
    state, notices = _v(**{"from": "2025-10", "to": "2025-09"})
    assert (state["month_from"], state["month_to"]) == (DEFAULT, DEFAULT) and "backwards" in notices[0]


def test_a_range_longer_than_the_maximum_span_keeps_its_last_months():
    data = [y * 100 + m for y in range(2019, 2026) for m in range(1, 13)]  # 84 months
    assert MAX_SPAN_MONTHS == 36
    assert bound_months(201901, 202512, data, 202512) == (
        202301,
        202512,
        ["A range longer than 36 months was cut to the last 36."],
    )  # 2023-01..2025-12 = 36
    assert bound_months(202301, 202512, data, 202512) == (202301, 202512, [])  # exactly 36: kept
    assert bound_months(190101, 299912, data, 202512)[:2] == (202301, 202512)


# --------------------------------------------------------------------------- the app with those links
OCT, SEP = dt.date(2025, 10, 6), dt.date(2025, 9, 8)


@pytest.fixture(scope="module")
def link_db(tmp_path_factory):
    url = f"sqlite:///{tmp_path_factory.mktemp('links') / 'links.db'}"
    engine = db.make_engine(url)
    db.upgrade(engine)
    with engine.begin() as conn:
        b = Builder(conn)
        for i in range(4):
            p = b.enrolled_patient(consent_on=dt.date(2025, 8, 4), first_name="Alma", last_name=f"Example{i}")
            b.time(p, minutes=10 + 3 * i, on=OCT)
            b.time(p, minutes=25, on=SEP)
        db.bump_data_version(conn)
    ensure_role_users(engine)
    yield url
    engine.dispose()


def _markdown_text(at) -> str:
    return "\n".join(
        str(e.value) for kind in ("markdown", "caption", "error", "warning", "info") for e in getattr(at, kind)
    )


@pytest.mark.parametrize("page", ["overview", "revenue"])
def test_the_issue_links_show_defaults_and_a_notice_not_an_error(link_db, monkeypatch, page):
    app_env(monkeypatch, link_db)
    monkeypatch.setenv("CCM_BCRYPT_ROUNDS", "4")
    at = login_as("program_lead", query={"from": "1901-01", "to": "2999-12", "clinic": "\u00b2"})
    assert not at.exception and not at.error
    text = _markdown_text(at)  # the first page drawn with the link's filters says what was changed
    assert "invalid literal" not in text
    assert "Months outside the data were left out (the data covers 2025-09 to 2025-10)." in text
    assert "The link named a clinic that does not exist; it was left out." in text
    open_page(at, page)
    assert not at.exception and not at.error
    assert at.query_params["from"] == "2025-09" and at.query_params["to"] == "2025-10"
    assert "clinic" not in at.query_params


def test_markdown_in_a_month_value_is_never_rendered(link_db, monkeypatch):
    app_env(monkeypatch, link_db)
    monkeypatch.setenv("CCM_BCRYPT_ROUNDS", "4")
    at = login_as("program_lead", query={"to": HOSTILE})
    assert not at.exception and not at.error
    text = _markdown_text(at)
    assert "beacon" not in text and "](" not in text
    assert "The link's months were not understood" in text
    assert at.query_params["to"] == "2025-10"
