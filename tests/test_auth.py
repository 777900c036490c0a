"""Users, passwords, lockout, the role matrix, the cookie-key policy and the users CLI."""
from __future__ import annotations

import datetime as dt

import pytest
from sqlalchemy import func, select

from ccm_core import admin, auth, cli, db
from ccm_core.schema import ROLES, access_log, app_user, setting

T0 = dt.datetime(2025, 11, 3, 9, 0, 0)


@pytest.fixture(autouse=True)
def _fast_bcrypt(monkeypatch):
    monkeypatch.setenv("CCM_BCRYPT_ROUNDS", "4")


def _log(engine, action=None):
    q = select(access_log.c.username, access_log.c.action, access_log.c.detail).order_by(access_log.c.id)
    if action:
        q = q.where(access_log.c.action == action)
    with engine.connect() as conn:
        return conn.execute(q).all()


# --------------------------------------------------------------------------- hashing
def test_passwords_are_stored_only_as_bcrypt_hashes(engine):
    auth.add_user(engine, "Nurse.Ann", "s3cret-pass", "care_manager", display_name="Ann")
    with engine.connect() as conn:
        row = conn.execute(select(app_user)).one()
    assert row.username == "nurse.ann"  # normalised like the login form does
    assert row.password_hash.startswith("$2b$04$") and len(row.password_hash) == 60
    assert "s3cret-pass" not in row.password_hash
    assert auth.verify_password("s3cret-pass", row.password_hash)
    assert not auth.verify_password("s3cret-pasS", row.password_hash)
    assert not auth.verify_password("x" * 100, row.password_hash)  # over bcrypt's 72 bytes: no match, no crash


@pytest.mark.parametrize("bad, why", [("short", "at least 8"), (" padded-pass ", "spaces"),
                                      ("é" * 40, "72 bytes")])
def test_weak_or_mangled_passwords_are_refused(bad, why):
    with pytest.raises(ValueError, match=why):
        auth.hash_password(bad)


def test_add_user_rejects_bad_input(engine):
    auth.add_user(engine, "lead1", "password-1", "program_lead")
    with pytest.raises(ValueError, match="already exists"):
        auth.add_user(engine, "LEAD1", "password-2", "viewer")
    with pytest.raises(ValueError, match="Unknown role"):
        auth.add_user(engine, "x1", "password-1", "superuser")
    with pytest.raises(ValueError, match="Username"):
        auth.add_user(engine, "a b", "password-1", "viewer")
    with pytest.raises(ValueError, match="No staff member"):
        auth.add_user(engine, "cm9", "password-1", "care_manager", staff_id=999)
    assert [u.username for u in auth.list_users(engine)] == ["lead1"]


# --------------------------------------------------------------------------- authenticate and lockout
def test_successful_login_logs_and_records_time(engine):
    auth.add_user(engine, "biller1", "bill-pass-1", "biller")
    out = auth.authenticate(engine, "  Biller1 ", "bill-pass-1", now=T0)
    assert out.ok and out.user.role == "biller" and out.user.last_login_at == T0
    assert _log(engine) == [("biller1", "login", "password")]


def test_lockout_after_five_failures_for_fifteen_minutes(engine):
    auth.add_user(engine, "aud", "audit-pass-1", "auditor")
    for i in range(1, 5):
        out = auth.authenticate(engine, "aud", "wrong", now=T0 + dt.timedelta(seconds=i))
        assert not out.ok and out.message == auth.GENERIC_FAILURE
        assert auth.get_user(engine, "aud").failed_logins == i
        assert auth.get_user(engine, "aud").locked_until is None
    fifth = auth.authenticate(engine, "aud", "wrong", now=T0 + dt.timedelta(seconds=5))
    assert not fifth.ok and "locked" in fifth.message
    assert fifth.locked_until == T0 + dt.timedelta(seconds=5, minutes=15)
    # While locked even the right password is refused, and the lock is not extended.
    during = auth.authenticate(engine, "aud", "audit-pass-1", now=T0 + dt.timedelta(minutes=14))
    assert not during.ok and "locked" in during.message
    assert auth.get_user(engine, "aud").locked_until == T0 + dt.timedelta(seconds=5, minutes=15)
    # After 15 minutes the right password works and the counter starts again.
    after = auth.authenticate(engine, "aud", "audit-pass-1", now=T0 + dt.timedelta(minutes=15, seconds=6))
    assert after.ok
    user = auth.get_user(engine, "aud")
    assert user.failed_logins == 0 and user.locked_until is None
    actions = [a for _, a, _ in _log(engine)]
    assert actions == ["login_failed"] * 6 + ["login"]
    assert "failure 5 of 5; account locked" in _log(engine, "login_failed")[4][2]


def test_success_resets_the_failure_count(engine):
    auth.add_user(engine, "v1", "view-pass-1", "viewer")
    for _ in range(4):
        auth.authenticate(engine, "v1", "nope", now=T0)
    assert auth.authenticate(engine, "v1", "view-pass-1", now=T0).ok
    for _ in range(4):  # four more failures must not lock: the earlier four were forgiven
        auth.authenticate(engine, "v1", "nope", now=T0)
    assert not auth.get_user(engine, "v1").is_locked(T0)


def test_unlock_and_password_reset_clear_a_lock(engine):
    auth.add_user(engine, "cm", "care-pass-1", "care_manager")
    for _ in range(5):
        auth.authenticate(engine, "cm", "bad-pass", now=T0)
    assert auth.get_user(engine, "cm").is_locked(T0)
    auth.unlock(engine, "cm")
    assert auth.authenticate(engine, "cm", "care-pass-1", now=T0).ok
    for _ in range(5):
        auth.authenticate(engine, "cm", "bad-pass", now=T0)
    auth.set_password(engine, "cm", "new-care-pass")
    assert not auth.authenticate(engine, "cm", "care-pass-1", now=T0).ok
    assert auth.authenticate(engine, "cm", "new-care-pass", now=T0).ok


def test_unknown_and_deactivated_users_fail_alike(engine):
    auth.add_user(engine, "gone", "gone-pass-1", "viewer")
    auth.deactivate(engine, "gone")
    a = auth.authenticate(engine, "gone", "gone-pass-1", now=T0)
    b = auth.authenticate(engine, "nobody", "whatever-1", now=T0)
    assert not a.ok and not b.ok and a.message == b.message == auth.GENERIC_FAILURE
    assert [(u, act) for u, act, _ in _log(engine)] == [("gone", "login_failed"), ("nobody", "login_failed")]


def test_authenticator_credentials_hide_inactive_and_disarm_locked(engine):
    auth.add_user(engine, "ok", "okay-pass-1", "viewer", display_name="Okay")
    auth.add_user(engine, "locked", "lock-pass-1", "viewer")
    auth.add_user(engine, "off", "off-pass-1", "viewer")
    auth.deactivate(engine, "off")
    for _ in range(5):
        auth.authenticate(engine, "locked", "bad-pass", now=dt.datetime.now())
    creds = auth.authenticator_credentials(engine)["usernames"]
    assert set(creds) == {"ok", "locked"}
    assert creds["ok"]["name"] == "Okay" and creds["ok"]["roles"] == ["viewer"]
    assert auth.verify_password("okay-pass-1", creds["ok"]["password"])
    assert not auth.verify_password("lock-pass-1", creds["locked"]["password"])


# --------------------------------------------------------------------------- roles
def test_role_matrix_matches_the_brief():
    expected = {
        "admin": ("overview", "enrollment", "minutes", "billing", "revenue", "audit", "import", "admin"),
        "program_lead": ("overview", "enrollment", "minutes", "billing", "revenue"),
        "auditor": ("overview", "enrollment", "billing", "audit"),
        "biller": ("overview", "billing", "revenue", "audit"),
        "care_manager": ("overview", "minutes"),
        "viewer": ("overview", "enrollment", "minutes", "revenue"),
    }
    assert auth.ROLE_PAGES == expected
    assert set(auth.ROLE_PAGES) == set(ROLES)
    assert not auth.may_open("viewer", "billing") and auth.may_open("biller", "audit")
    assert not auth.may_open(None, "overview")


def test_actions_per_role():
    assert auth.role_can("admin", "manage_users") and not auth.role_can("program_lead", "manage_users")
    assert not auth.role_can("viewer", "reveal_identifiers") and not auth.role_can("viewer", "export")
    assert auth.role_can("auditor", "record_finding") and not auth.role_can("biller", "record_finding")
    assert auth.role_can("biller", "pull_sample") and not auth.role_can("care_manager", "pull_sample")
    assert [r for r in ROLES if auth.role_can(r, "import")] == ["admin"]
    with pytest.raises(ValueError, match="Unknown action"):
        auth.role_can("admin", "delete_everything")


# --------------------------------------------------------------------------- cookie key
GOOD_KEY = "k" * 31 + "Z"  # exactly 32 characters


@pytest.mark.parametrize("key, problem", [(None, "No cookie key"), ("", "No cookie key"),
                                          ("some_key", "well-known"), ("changeme", "well-known"),
                                          ("x" * 31, "shorter than 32")])
def test_unsafe_cookie_keys_refuse_to_start_outside_demo_mode(tmp_path, key, problem):
    env = {} if key is None else {"CCM_COOKIE_KEY": key}
    with pytest.raises(auth.CookieKeyError, match=problem):
        auth.cookie_key(env, secrets_path=tmp_path / "none.toml")


def test_cookie_key_from_env_or_secrets_file(tmp_path):
    assert auth.cookie_key({"CCM_COOKIE_KEY": GOOD_KEY}, secrets_path=tmp_path / "none.toml") == GOOD_KEY
    secrets = tmp_path / "secrets.toml"
    secrets.write_text(f'[auth]\ncookie_key = "{GOOD_KEY}X"\n')
    assert auth.cookie_key({}, secrets_path=secrets) == GOOD_KEY + "X"
    # The environment wins over the file.
    assert auth.cookie_key({"CCM_COOKIE_KEY": GOOD_KEY}, secrets_path=secrets) == GOOD_KEY
    # The shipped example's placeholder is itself refused.
    example = auth.ROOT / ".streamlit" / "secrets.toml.example"
    with pytest.raises(auth.CookieKeyError, match="well-known"):
        auth.cookie_key({}, secrets_path=example)


def test_demo_mode_generates_one_random_key_per_process(tmp_path):
    none = tmp_path / "none.toml"
    first = auth.cookie_key({"CCM_DEMO_MODE": "1"}, secrets_path=none)
    second = auth.cookie_key({"CCM_DEMO_MODE": "1", "CCM_COOKIE_KEY": "short"}, secrets_path=none)
    assert first == second and len(first) >= 32 and auth.cookie_key_problem(first) is None
    # A good configured key is still used in demo mode.
    assert auth.cookie_key({"CCM_DEMO_MODE": "1", "CCM_COOKIE_KEY": GOOD_KEY}, secrets_path=none) == GOOD_KEY


# --------------------------------------------------------------------------- demo users
def test_demo_users_link_care_login_to_a_care_manager(engine):
    from builders import Builder

    with engine.begin() as conn:
        b = Builder(conn)
        quiet = b.staff(role="care_manager")
        busy = b.staff(role="care_manager")
        for _ in range(3):
            b.patient(care_manager_id=busy)
        b.patient(care_manager_id=quiet)
    created = auth.create_demo_users(engine)
    assert created == [u for u, *_ in auth.DEMO_USERS]
    assert auth.get_user(engine, "care").staff_id == busy
    for username, password, role, _ in auth.DEMO_USERS:
        out = auth.authenticate(engine, username, password, now=T0)
        assert out.ok and out.user.role == role
    assert auth.create_demo_users(engine) == []  # idempotent


# --------------------------------------------------------------------------- CLI
def _url(engine) -> str:
    return engine.url.render_as_string(hide_password=False)


def test_users_cli_add_set_role_unlock_deactivate(engine, capsys):
    url = _url(engine)
    assert cli.main(["users", "add", "Mary", "--role", "auditor", "--name", "Mary Q", "--password", "mary-pass-1",
                     "--db", url]) == 0
    assert auth.authenticate(engine, "mary", "mary-pass-1", now=T0).ok
    assert cli.main(["users", "set-role", "mary", "biller", "--db", url]) == 0
    assert auth.get_user(engine, "mary").role == "biller"
    for _ in range(5):
        auth.authenticate(engine, "mary", "wrong-pass", now=dt.datetime.now())
    assert auth.get_user(engine, "mary").is_locked()
    assert cli.main(["users", "unlock", "mary", "--db", url]) == 0
    assert not auth.get_user(engine, "mary").is_locked()
    assert cli.main(["users", "set-password", "mary", "--password", "mary-pass-2", "--db", url]) == 0
    assert auth.authenticate(engine, "mary", "mary-pass-2").ok
    capsys.readouterr()
    assert cli.main(["users", "list", "--db", url]) == 0
    listing = capsys.readouterr().out
    assert "mary" in listing and "biller" in listing and "mary-pass" not in listing and "$2b$" not in listing
    assert cli.main(["users", "deactivate", "mary", "--db", url]) == 0
    assert not auth.authenticate(engine, "mary", "mary-pass-2").ok
    details = [d for u, a, d in _log(engine) if a == "admin"]
    assert details == ["user mary added with role auditor", "role of mary set to biller", "user mary unlocked",
                       "password reset for mary", "user mary deactivated"]


def test_users_cli_errors_are_clear(engine, capsys):
    url = _url(engine)
    assert cli.main(["users", "set-role", "ghost", "viewer", "--db", url]) == 2
    assert "No user named 'ghost'" in capsys.readouterr().err
    assert cli.main(["users", "add", "weak", "--role", "viewer", "--password", "short", "--db", url]) == 2
    assert "at least 8" in capsys.readouterr().err


def test_users_cli_prompts_without_echo(engine, monkeypatch):
    answers = iter(["prompted-pass", "prompted-pass"])
    monkeypatch.setattr("getpass.getpass", lambda prompt="": next(answers))
    monkeypatch.setattr("sys.stdin.isatty", lambda: True, raising=False)
    assert cli.main(["users", "add", "pat", "--role", "viewer", "--db", _url(engine)]) == 0
    assert auth.authenticate(engine, "pat", "prompted-pass").ok


def test_init_db_never_creates_demo_logins_in_a_non_demo_database(tmp_path, capsys):
    from builders import Builder

    from ccm_core import db

    url = f"sqlite:///{tmp_path / 'practice.db'}"
    assert cli.main(["init-db", "--db", url]) == 0  # creates the schema through Alembic
    engine = db.make_engine(url)
    with engine.begin() as conn:
        Builder(conn).patient()
    assert cli.main(["init-db", "--demo-if-empty", "--db", url]) == 0
    assert auth.list_users(engine) == []
    assert "not demo data" in capsys.readouterr().out
    # A database the demo path filled (flag set) gets its logins.
    with engine.begin() as conn:
        admin.put_setting(conn, admin.DEMO_FLAG_KEY, "true")
    assert cli.main(["init-db", "--demo-if-empty", "--db", url]) == 0
    assert sorted(u.username for u in auth.list_users(engine)) == sorted(u for u, *_ in auth.DEMO_USERS)
    with engine.connect() as conn:
        from ccm_core import pm_store  # bookkeeping rows aside, the demo flag is the only setting
        assert conn.execute(select(func.count()).select_from(setting)
                            .where(setting.c.key != pm_store.STATE_KEY,
                                   setting.c.key.not_like(db.TABLE_VERSION_PREFIX + "%"))).scalar() == 1
    engine.dispose()


def test_admin_guard_rails_keep_one_admin(engine):
    auth.add_user(engine, "boss", "boss-pass-1", "admin")
    with pytest.raises(ValueError, match="your own admin"):
        admin.manage_user(engine, "boss", "deactivate", "boss")
    auth.add_user(engine, "boss2", "boss-pass-2", "admin")
    assert admin.manage_user(engine, "boss", "set_role", "boss2", role="viewer") == "role of boss2 set to viewer"
    auth.add_user(engine, "boss3", "boss-pass-3", "admin")
    auth.deactivate(engine, "boss")  # e.g. from the CLI
    with pytest.raises(ValueError, match="last active admin"):
        admin.manage_user(engine, "someone", "deactivate", "boss3")


def test_init_db_fills_an_empty_database_with_demo_data_and_logins(tmp_path, capsys):
    pytest.importorskip("ccm_core.demo")
    from ccm_core import db
    from ccm_core.schema import patient

    url = f"sqlite:///{tmp_path / 'fresh.db'}"
    assert cli.main(["init-db", "--demo-if-empty", "--db", url]) == 0
    out = capsys.readouterr().out
    assert "1,500 patients, 18 months" in out and "admin/admin-demo" in out
    engine = db.make_engine(url)
    with engine.connect() as conn:
        assert conn.execute(select(func.count()).select_from(patient)).scalar() == 1500
    care = auth.get_user(engine, "care")
    assert care.role == "care_manager" and care.staff_id is not None
    # Running it again changes nothing and creates no second set of logins.
    assert cli.main(["init-db", "--demo-if-empty", "--db", url]) == 0
    assert len(auth.list_users(engine)) == len(auth.DEMO_USERS)
    engine.dispose()


def test_a_database_filled_by_the_demo_command_is_recognised(tmp_path):
    demo = pytest.importorskip("ccm_core.demo")
    from ccm_core import db

    url = f"sqlite:///{tmp_path / 'demo_cli.db'}"
    engine = db.make_engine(url)
    db.upgrade(engine)
    assert not admin.is_demo_database(engine)  # empty: nothing says demo
    demo.generate(engine, patients=60, months=2, seed=3, end_month=202510)
    assert admin.is_demo_database(engine)
    assert cli.main(["init-db", "--demo-if-empty", "--db", url]) == 0
    assert auth.get_user(engine, "admin").role == "admin"
    engine.dispose()
