"""Issue 13, item 9: faults at the door.

* A missing or broken database: the first request to a page URL (Streamlit runs the page file itself on a
  fresh server) shows the app's own clear message, as the root URL does, never Streamlit's error box.
* A read-only SQLite file: a sign-in the database cannot record (session row, login row) fails.
* ``sqlite:///file:...`` (an SQLite URI) opens the file and never creates a folder named ``file:``.
"""

from __future__ import annotations

import datetime as dt
import os

import pytest

from ccm_core.security import auth
from ccm_core.storage import db
from ui.login import NOT_RECORDED

from apptest_utils import ROLE_USERS, app_env, ensure_role_users, new_app, page_direct, submit_login
from builders import Builder


@pytest.fixture
def broken_db(tmp_path):
    path = tmp_path / "broken.db"
    path.write_bytes(b"this is not an SQLite database" * 100)
    return f"sqlite:///{path}"


@pytest.fixture
def empty_db(tmp_path):
    return f"sqlite:///{tmp_path / 'missing' / 'never-initialised.db'}"


@pytest.mark.parametrize("kind", ["broken", "missing"])
@pytest.mark.parametrize("page_file", ["pages/4_Billing.py", "pages/1_Overview.py", "app.py"])
def test_a_bad_database_shows_the_apps_own_message_at_every_entry_point(request, monkeypatch, kind, page_file):
    url = request.getfixturevalue("broken_db" if kind == "broken" else "empty_db")
    app_env(monkeypatch, url)
    at = new_app().run() if page_file == "app.py" else page_direct(page_file)
    assert not at.exception, [e.value for e in at.exception]
    messages = [e.value for e in at.error]
    assert len(messages) == 1
    if kind == "broken":
        assert messages[0].startswith(
            (
                "The database could not be reached or is not set up.",
                "A database error stopped this page from loading.",
                "A database error stopped the dashboard from loading.",
            )
        )
    else:
        assert messages[0].startswith("The database has no tables yet.")
    assert not at.text_input and not at.metric


@pytest.fixture
def readonly_url(tmp_path):
    path = tmp_path / "users.db"
    engine = db.make_engine(f"sqlite:///{path}")
    db.upgrade(engine)
    with engine.begin() as conn:
        Builder(conn).enrolled_patient(consent_on=dt.date(2025, 8, 4))
    ensure_role_users(engine)
    engine.dispose()
    # Root ignores file permissions, so read-only is asked of SQLite itself (an SQLite URI with mode=ro).
    return f"sqlite:///file:{path}?mode=ro&uri=true", path


def test_a_sign_in_the_database_cannot_record_does_not_happen(readonly_url, monkeypatch):
    url, path = readonly_url
    app_env(monkeypatch, url)
    monkeypatch.setenv("CCM_BCRYPT_ROUNDS", "4")
    username, password = ROLE_USERS["program_lead"]
    at = new_app().run()
    submit_login(at, username, password)
    assert not at.exception
    assert NOT_RECORDED in [e.value for e in at.error]
    assert at.session_state["authentication_status"] is not True
    assert not at.metric and [t.label for t in at.text_input] == ["Username", "Password"]
    at.run()  # and the next run is still signed out
    assert not at.metric and at.session_state["authentication_status"] is not True
    # A wrong password cannot be counted either: the same plain message, no error box.
    submit_login(at, username, "wrong-password")
    assert not at.exception and NOT_RECORDED in [e.value for e in at.error]


def test_an_sqlite_uri_never_creates_a_folder_named_file(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    target = tmp_path / "real.db"
    engine = db.make_engine(f"sqlite:///{target}")
    db.upgrade(engine)
    engine.dispose()
    for url in (f"sqlite:///file:{target}?mode=ro&uri=true", f"sqlite:///file:{target}?mode=ro"):
        ro = db.make_engine(url)
        with ro.connect() as conn:
            assert db.get_data_version(conn) == 0
        ro.dispose()
    assert sorted(p.name for p in tmp_path.iterdir() if not p.name.startswith("real.db")) == []
    assert not os.path.exists(tmp_path / "file:")
    with pytest.raises(ValueError, match="In-memory"):
        db.make_engine("sqlite:///file::memory:?cache=shared")
    assert auth.normalize_username("x") == "x"  # (the module under test imports cleanly)


def test_an_error_message_that_carries_input_is_shown_as_text():
    """friendly_errors repeats a ValueError's message: markdown in it (from data or a URL) must stay text."""
    from streamlit.testing.v1 import AppTest

    def script():
        from ui.components import friendly_errors

        with friendly_errors("the test view"):
            raise ValueError("bad month ![x](http://beacon.invalid/b.png) [click](http://beacon.invalid/)")

    at = AppTest.from_function(script).run()
    assert not at.exception
    shown = at.error[0].value
    assert shown.startswith("Could not show the test view: bad month ")
    assert "![x](http" not in shown and "[click](http" not in shown  # escaped, so no image and no link
