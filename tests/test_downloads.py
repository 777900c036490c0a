"""Issue 13 item 2 (server side): a download is built only when clicked, only for the live session that drew
it, and its access-log row is written before the bytes are returned.  The browser half (the /media URL
fetched without a cookie returns nothing) is in tests/test_browser_privacy.py."""

from __future__ import annotations

import pytest
from sqlalchemy import select

from ccm_core.security import auth
from ccm_core.storage import db
from ccm_core.storage import schema as s
from ui import exports
from ui.session import SESSION_ID_KEY

from apptest_utils import ROLE_USERS, ensure_role_users


@pytest.fixture
def users_db(tmp_path, monkeypatch):
    engine = db.make_engine(f"sqlite:///{tmp_path / 'dl.db'}")
    db.upgrade(engine)
    monkeypatch.setenv("CCM_BCRYPT_ROUNDS", "4")
    ensure_role_users(engine)
    yield engine
    engine.dispose()


def _exports(engine):
    with engine.connect() as conn:
        return conn.execute(
            select(
                s.access_log.c.username,
                s.access_log.c.role,
                s.access_log.c.page,
                s.access_log.c.detail,
                s.access_log.c.patient_count,
            ).where(s.access_log.c.action == "export")
        ).all()


def _ticket(engine, username, built, page="enrollment"):
    def build():
        built.append(len(_exports(engine)))  # how many export rows existed while the file was being built
        return b"mrn,name\r\nA1,Alma\r\n"

    return exports.ExportTicket(
        engine=engine,
        session_id="sess-1",
        username=username,
        page=page,
        file_name="outreach_list_20260101.csv",
        detail="1 rows, identified",
        patients=1,
        build=build,
    )


def _sessions(monkeypatch, states: dict):
    monkeypatch.setattr(exports, "_streamlit_session_state", lambda sid: states.get(sid))


def _signed_in(engine, username: str) -> dict:
    """The session state a sign-in leaves: status, user name and the live server-side session id."""
    sid, _ = auth.create_session(engine, username)
    return {"authentication_status": True, "username": username, SESSION_ID_KEY: sid}


def test_a_click_from_the_live_session_builds_logs_then_returns(users_db, monkeypatch):
    lead = ROLE_USERS["program_lead"][0]
    _sessions(monkeypatch, {"sess-1": _signed_in(users_db, lead)})
    built: list[int] = []
    data = _ticket(users_db, lead, built)()
    assert data.startswith(b"mrn,name") and built == [0]  # built on the click, not before
    assert [tuple(r) for r in _exports(users_db)] == [
        (lead, "program_lead", "enrollment", "outreach_list_20260101.csv: 1 rows, identified", 1)
    ]


@pytest.mark.parametrize(
    "case",
    [
        "tab closed",
        "signed out",
        "other user",
        "session revoked",
        "deactivated",
        "role cannot export",
        "role cannot open the page",
        "no server session",
    ],
)
def test_no_bytes_and_no_row_without_a_live_allowed_session(users_db, monkeypatch, case):
    lead = ROLE_USERS["program_lead"][0]
    username, page = lead, "enrollment"
    state = _signed_in(users_db, lead)
    if case == "signed out":
        state = {"authentication_status": None, "username": None, "logout": True}
    elif case == "other user":
        state = _signed_in(users_db, ROLE_USERS["biller"][0])
    elif case == "session revoked":  # signed out elsewhere, password reset, lockout: the row is ended
        auth.revoke_session(users_db, state[SESSION_ID_KEY], "signed out")
    elif case == "deactivated":
        auth.set_active(users_db, lead, False)
    elif case == "role cannot export":
        username = ROLE_USERS["viewer"][0]
        state = _signed_in(users_db, username)
    elif case == "role cannot open the page":
        username, page = ROLE_USERS["care_manager"][0], "audit"
        state = _signed_in(users_db, username)
    elif case == "no server session":  # a state that says signed in but names no live login session
        state = {"authentication_status": True, "username": lead}
    _sessions(monkeypatch, {} if case == "tab closed" else {"sess-1": state})
    built: list[int] = []
    with pytest.raises(exports.ExportRefused):
        _ticket(users_db, username, built, page=page)()
    assert built == [] and _exports(users_db) == []


def test_generated_file_is_served_once_then_gone(monkeypatch):
    """The one-click wrapper over Streamlit's media store: get_url (bare id) arms the file, the /media route
    (id plus extension) hands it out for one click (two fetches), and a further fetch finds nothing."""
    from streamlit.runtime.media_file_storage import MediaFileKind, MediaFileStorageError
    from streamlit.runtime.memory_media_file_storage import MemoryMediaFileStorage

    storage = MemoryMediaFileStorage("/media")

    class FakeRuntime:
        class media_file_mgr:  # noqa: N801 - mirrors the attribute name
            _storage = storage

    import streamlit.runtime as rt

    monkeypatch.setattr(rt, "exists", lambda: True)
    monkeypatch.setattr(rt, "get_instance", lambda: FakeRuntime)
    monkeypatch.setattr(exports, "DOWNLOAD_TTL_S", 0.2)
    exports.one_shot_downloads()
    exports.one_shot_downloads()  # idempotent: wrapped once
    fid = storage.load_and_get_id(b"a,b\r\n1,2\r\n", "text/csv", MediaFileKind.DOWNLOADABLE, "x.csv")
    url = storage.get_url(fid)
    assert url == f"/media/{fid}.csv"
    for _ in range(exports.FETCHES_PER_DOWNLOAD):  # the frontend's check, then the browser's download
        assert storage.get_file(f"{fid}.csv").content == b"a,b\r\n1,2\r\n"
    with pytest.raises(MediaFileStorageError):
        storage.get_file(f"{fid}.csv")
    image = storage.load_and_get_id(b"\x89PNG", "image/png", MediaFileKind.MEDIA, None)
    storage.get_file(f"{image}.png")
    assert storage.get_file(f"{image}.png").content == b"\x89PNG"  # media the pages show stay
    never = storage.load_and_get_id(b"never fetched", "text/csv", MediaFileKind.DOWNLOADABLE, "y.csv")
    storage.get_url(never)
    import time

    time.sleep(0.6)
    with pytest.raises(MediaFileStorageError):
        storage.get_file(f"{never}.csv")


def test_an_aggregate_file_is_for_any_role_that_may_open_the_page_still_logged(users_db, monkeypatch):
    """The Overview's meeting pack (action=None): a viewer may have it, it is still built on the click of a
    live session and logged first; a closed tab still gets nothing."""
    viewer = ROLE_USERS["viewer"][0]
    _sessions(monkeypatch, {"sess-1": _signed_in(users_db, viewer)})
    ticket = exports.ExportTicket(
        engine=users_db,
        session_id="sess-1",
        username=viewer,
        page="overview",
        file_name="ccm_meeting_pack_20260101.pdf",
        detail="meeting pack",
        patients=None,
        build=lambda: b"%PDF-1.4",
        action=None,
    )
    assert ticket() == b"%PDF-1.4"
    assert [(r.username, r.page, r.patient_count) for r in _exports(users_db)] == [(viewer, "overview", None)]
    _sessions(monkeypatch, {})
    with pytest.raises(exports.ExportRefused):
        ticket()
    assert len(_exports(users_db)) == 1
