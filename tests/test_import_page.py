"""The Import page through AppTest: admin only, check before write, import, problems, history, revert."""

from __future__ import annotations

import pytest
from fixtures_import.helpers import EXAMPLES, MASTER, table_counts
from sqlalchemy import select

from ccm_core.storage import db
from ccm_core.storage.schema import access_log

from apptest_utils import app_env, ensure_role_users, login_as, open_page, page_direct, screen_text


@pytest.fixture
def import_app(tmp_path, monkeypatch):
    url = f"sqlite:///{tmp_path / 'page.db'}"
    engine = db.make_engine(url)
    db.upgrade(engine)
    ensure_role_users(engine)
    app_env(monkeypatch, url)
    yield engine
    engine.dispose()


def _files(names):
    return [(n, (EXAMPLES / n).read_bytes(), "text/csv") for n in names]


def test_admin_checks_imports_and_reverts(import_app):
    engine = import_app
    at = open_page(login_as("admin"), "import")
    assert not at.exception
    assert "Import data" in screen_text(at) and "No files chosen" in screen_text(at)

    at.file_uploader[0].set_value(_files(MASTER)).run()
    assert not at.exception, at.exception
    text = screen_text(at)
    assert "Check only, nothing written: no problems found." in text
    assert table_counts(engine)["patient"] == 0  # the check wrote nothing
    button = next(b for b in at.button if b.label.startswith("Import 4 file"))
    assert not button.disabled
    button.click().run()
    assert not at.exception, at.exception
    assert "Imported." in screen_text(at)
    assert table_counts(engine)["patient"] == 6 and table_counts(engine)["import_batch"] == 4
    with engine.connect() as conn:
        actions = [r.action for r in conn.execute(select(access_log.c.action))]
    assert "import" in actions

    # History lists the batches; revert the newest (patients: nothing depends on it yet).
    assert at.selectbox(key="revert_choice").value == 4
    at.button(key="revert_button").click().run()
    assert not at.exception, at.exception
    assert "Batch 4 reverted: 6 inserted row(s) deleted" in screen_text(at)
    assert table_counts(engine)["patient"] == 0


def test_problems_are_listed_and_import_is_blocked(import_app):
    at = open_page(login_as("admin"), "import")
    bad = b"code,name,practice_name,place_of_service\nX1,Clinic,Practice,ABC\n"
    at.file_uploader[0].set_value([("clinics.csv", bad, "text/csv")]).run()
    assert not at.exception, at.exception
    text = screen_text(at)
    assert "1 problem(s)" in text and "'ABC' is not a place-of-service code (2 digits)" in text
    button = next(b for b in at.button if b.label.startswith("Import 1 file"))
    assert button.disabled
    assert table_counts(import_app)["clinic"] == 0


def test_other_roles_cannot_use_the_import_page(import_app):
    at = page_direct("pages/7_Import.py", role="program_lead")
    assert not at.exception
    assert len(at.file_uploader) == 0
    assert "cannot open the Import page" in screen_text(at)
