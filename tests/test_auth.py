"""Users, passwords, lockout, the role matrix, the cookie-key policy and the users CLI."""

from __future__ import annotations

import datetime as dt

import pytest
from sqlalchemy import func, select

from ccm_core import cli
from ccm_core.security import auth
from ccm_core.security.users import manage_user
from ccm_core.storage import db
from ccm_core.storage.schema import ROLES, access_log, app_user, setting
from ccm_core.storage.settings import put_setting

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


@pytest.mark.parametrize("bad, why", [("short", "at least 8"), (" padded-pass ", "spaces"), ("é" * 40, "72 bytes")])
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
    # The form says the same as for any failure (it must not confirm the account exists); the lock is real.
    assert not fifth.ok and fifth.message == auth.GENERIC_FAILURE
    assert fifth.locked_until == T0 + dt.timedelta(seconds=5, minutes=15)
    # While locked even the right password is refused, and the lock is not extended.
    during = auth.authenticate(engine, "aud", "audit-pass-1", now=T0 + dt.timedelta(minutes=14))
    assert not during.ok and during.message == auth.GENERIC_FAILURE and during.locked_until is not None
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
    expected = {  # work queues (issue 15): My month for care managers and the lead, Denials for billers
        "admin": (
            "my_month",
            "overview",
            "enrollment",
            "minutes",
            "billing",
            "revenue",
            "audit",
            "denials",
            "import",
            "admin",
        ),
        "program_lead": ("my_month", "overview", "enrollment", "minutes", "billing", "revenue", "denials"),
        "auditor": ("overview", "enrollment", "billing", "audit"),
        "biller": ("overview", "billing", "revenue", "audit", "denials"),
        "care_manager": ("my_month", "overview", "minutes"),
        "viewer": ("overview", "enrollment", "minutes", "revenue"),
    }
    assert auth.ROLE_PAGES == expected
    landing = {role: auth.landing_page(role) for role in ROLES}
    assert landing == {
        "admin": "overview",
        "program_lead": "overview",
        "auditor": "audit",
        "biller": "denials",
        "care_manager": "my_month",
        "viewer": "overview",
    }
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
GOOD_KEY = "v3W_sJFN5k9Jx5DDaewPVchj5Gzt2RikQf8_U11F98jo"  # committed: accepted only under tests
GOOD_ENV = {"CCM_TESTING": "1"}


@pytest.mark.parametrize(
    "key, problem",
    [
        (None, "No cookie key"),
        ("", "No cookie key"),
        ("some_key", "well-known"),
        ("changeme", "well-known"),
        ("x" * 31, "shorter than 32"),
    ],
)
def test_unsafe_cookie_keys_refuse_to_start_outside_demo_mode(tmp_path, key, problem):
    env = {} if key is None else {"CCM_COOKIE_KEY": key}
    with pytest.raises(auth.CookieKeyError, match=problem):
        auth.cookie_key(env, secrets_path=tmp_path / "none.toml")


def test_cookie_key_from_env_or_secrets_file(tmp_path):
    assert auth.cookie_key({**GOOD_ENV, "CCM_COOKIE_KEY": GOOD_KEY}, secrets_path=tmp_path / "none.toml") == GOOD_KEY
    secrets = tmp_path / "secrets.toml"
    secrets.write_text(f'[auth]\ncookie_key = "{GOOD_KEY}X"\n')
    assert auth.cookie_key(GOOD_ENV, secrets_path=secrets) == GOOD_KEY + "X"
    # The environment wins over the file.
    assert auth.cookie_key({**GOOD_ENV, "CCM_COOKIE_KEY": GOOD_KEY}, secrets_path=secrets) == GOOD_KEY
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
    assert (
        auth.cookie_key({**GOOD_ENV, "CCM_DEMO_MODE": "1", "CCM_COOKIE_KEY": GOOD_KEY}, secrets_path=none) == GOOD_KEY
    )


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


def _stdin(monkeypatch, text: str) -> None:
    import io

    monkeypatch.setattr("sys.stdin", io.StringIO(text))


def test_users_cli_add_set_role_unlock_deactivate(engine, capsys, monkeypatch):
    url = _url(engine)
    _stdin(monkeypatch, "mary-pass-1\n")
    assert (
        cli.main(["users", "add", "Mary", "--role", "auditor", "--name", "Mary Q", "--password-stdin", "--db", url])
        == 0
    )
    assert auth.authenticate(engine, "mary", "mary-pass-1", now=T0).ok
    assert cli.main(["users", "set-role", "mary", "biller", "--db", url]) == 0
    assert auth.get_user(engine, "mary").role == "biller"
    for _ in range(5):
        auth.authenticate(engine, "mary", "wrong-pass", now=dt.datetime.now())
    assert auth.get_user(engine, "mary").is_locked()
    assert cli.main(["users", "unlock", "mary", "--db", url]) == 0
    assert not auth.get_user(engine, "mary").is_locked()
    _stdin(monkeypatch, "mary-pass-2\n")
    assert cli.main(["users", "set-password", "mary", "--password-stdin", "--db", url]) == 0
    assert auth.authenticate(engine, "mary", "mary-pass-2").ok
    capsys.readouterr()
    assert cli.main(["users", "list", "--db", url]) == 0
    listing = capsys.readouterr().out
    assert "mary" in listing and "biller" in listing and "mary-pass" not in listing and "$2b$" not in listing
    assert cli.main(["users", "deactivate", "mary", "--db", url]) == 0
    assert not auth.authenticate(engine, "mary", "mary-pass-2").ok
    details = [d for u, a, d in _log(engine) if a == "admin"]
    assert details == [
        "user mary added with role auditor",
        "role of mary set to biller",
        "user mary unlocked",
        "password reset for mary",
        "user mary deactivated",
    ]


def test_users_cli_errors_are_clear(engine, capsys, monkeypatch):
    url = _url(engine)
    assert cli.main(["users", "set-role", "ghost", "viewer", "--db", url]) == 2
    assert "No user named 'ghost'" in capsys.readouterr().err
    _stdin(monkeypatch, "short\n")
    assert cli.main(["users", "add", "weak", "--role", "viewer", "--password-stdin", "--db", url]) == 2
    assert "at least 8" in capsys.readouterr().err


@pytest.mark.parametrize("command", [["add", "leaky", "--role", "viewer"], ["set-password", "leaky"]])
def test_users_cli_refuses_a_password_on_the_command_line(engine, capsys, command):
    """A password in argv shows in shell history and in ps: refused, nothing written."""
    if command[0] == "set-password":
        auth.add_user(engine, "leaky", "leaky-pass-1", "viewer")
    assert cli.main(["users", *command, "--password", "on-the-command-line", "--db", _url(engine)]) == 2
    assert "not taken on the command line" in capsys.readouterr().err
    assert not auth.authenticate(engine, "leaky", "on-the-command-line").ok
    assert [a for _, a, _ in _log(engine) if a == "admin"] == []


def test_users_cli_prompts_without_echo(engine, monkeypatch):
    answers = iter(["prompted-pass", "prompted-pass"])
    monkeypatch.setattr("getpass.getpass", lambda prompt="": next(answers))
    monkeypatch.setattr("sys.stdin.isatty", lambda: True, raising=False)
    assert cli.main(["users", "add", "pat", "--role", "viewer", "--db", _url(engine)]) == 0
    assert auth.authenticate(engine, "pat", "prompted-pass").ok


def test_init_db_never_creates_demo_logins_in_a_non_demo_database(tmp_path, capsys):
    from builders import Builder

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
        put_setting(conn, auth.DEMO_FLAG_KEY, "true")
    assert cli.main(["init-db", "--demo-if-empty", "--db", url]) == 0
    assert sorted(u.username for u in auth.list_users(engine)) == sorted(u for u, *_ in auth.DEMO_USERS)
    with engine.connect() as conn:
        from ccm_core.storage import stored as pm_store  # bookkeeping rows aside, the demo flag is the only setting

        assert (
            conn.execute(
                select(func.count())
                .select_from(setting)
                .where(setting.c.key != pm_store.STATE_KEY, setting.c.key.not_like(db.TABLE_VERSION_PREFIX + "%"))
            ).scalar()
            == 1
        )
    engine.dispose()


def test_admin_guard_rails_keep_one_admin(engine):
    auth.add_user(engine, "boss", "boss-pass-1", "admin")
    with pytest.raises(ValueError, match="your own admin"):
        manage_user(engine, "boss", "deactivate", "boss")
    auth.add_user(engine, "boss2", "boss-pass-2", "admin")
    assert manage_user(engine, "boss", "set_role", "boss2", role="viewer") == "role of boss2 set to viewer"
    auth.add_user(engine, "boss3", "boss-pass-3", "admin")
    auth.deactivate(engine, "boss")  # e.g. from the CLI
    with pytest.raises(ValueError, match="last active admin"):
        manage_user(engine, "someone", "deactivate", "boss3")


def test_init_db_fills_an_empty_database_with_demo_data_and_logins(tmp_path, capsys):
    pytest.importorskip("ccm_core.io.demo")
    from ccm_core.storage.schema import patient

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
    demo = pytest.importorskip("ccm_core.io.demo")

    url = f"sqlite:///{tmp_path / 'demo_cli.db'}"
    engine = db.make_engine(url)
    db.upgrade(engine)
    assert not auth.is_demo_database(engine)  # empty: nothing says demo
    demo.generate(engine, patients=60, months=2, seed=3, end_month=202510)
    assert auth.is_demo_database(engine)
    assert cli.main(["init-db", "--demo-if-empty", "--db", url]) == 0
    assert auth.get_user(engine, "admin").role == "admin"
    engine.dispose()


# --------------------------------------------------------------------------- issue 13: locked message
def test_a_locked_account_is_told_what_an_unknown_name_is_told(engine):
    """The 'locked' message must not confirm that an account exists."""
    auth.add_user(engine, "real", "real-pass-1", "viewer")
    outcomes = [auth.authenticate(engine, "real", "wrong-pass", now=T0) for _ in range(6)]
    assert auth.get_user(engine, "real").is_locked(T0)
    unknown = [auth.authenticate(engine, "nobody", "wrong-pass", now=T0) for _ in range(6)]
    assert {o.message for o in outcomes} == {o.message for o in unknown} == {auth.GENERIC_FAILURE}
    assert "real" not in auth.GENERIC_FAILURE and "locked for 15 minutes" in auth.GENERIC_FAILURE


# --------------------------------------------------------------------------- issue 13: cookie keys
@pytest.mark.parametrize(
    "key", ["a" * 32, " " * 32, "abcd" * 8, "ab" * 40, "0123456789abcdef" * 2, "0123456789abcdefghijklmnopqrstuvwxyz"]
)
def test_predictable_cookie_keys_are_refused_outside_demo_mode(tmp_path, key):
    with pytest.raises(auth.CookieKeyError, match="predictable"):
        auth.cookie_key({"CCM_COOKIE_KEY": key}, secrets_path=tmp_path / "none.toml")


def test_random_keys_of_32_characters_pass():
    import secrets

    for _ in range(200):  # the documented way and the shortest hex key of the same strength
        assert auth.cookie_key_problem(secrets.token_urlsafe(24)) is None
        assert auth.cookie_key_problem(secrets.token_hex(16)) is None


def _committed_keys() -> set[str]:
    """Every string the repository assigns to a name ending in KEY (tests, bench, docs) or to CCM_COOKIE_KEY."""
    import re

    pattern = re.compile(r"""\b[A-Z_]*KEY\b\s*[=:]\s*["']([^"'$]{8,})["']|CCM_COOKIE_KEY=["']?([^"'\s$]{8,})""")
    found = set()
    for path in auth.ROOT.rglob("*"):
        if (
            path.suffix not in (".py", ".md", ".toml", ".yml", ".yaml", ".example", "")
            or ".venv" in path.parts
            or ".git" in path.parts
            or not path.is_file()
        ):
            continue
        try:
            text = path.read_text(encoding="utf-8")
        except (UnicodeDecodeError, OSError):
            continue
        for m in pattern.finditer(text):
            found.add(m.group(1) or m.group(2))
    return found


def test_the_keys_committed_in_the_repository_are_refused_outside_tests(tmp_path):
    committed = _committed_keys()
    from apptest_utils import TEST_COOKIE_KEY
    from browser_utils import COOKIE_KEY

    assert {TEST_COOKIE_KEY, COOKIE_KEY, GOOD_KEY} <= committed
    for key in committed:
        with pytest.raises(auth.CookieKeyError):
            auth.cookie_key({"CCM_COOKIE_KEY": key}, secrets_path=tmp_path / "none.toml")
    # Under the test suite (CCM_TESTING=1, set by tests/conftest.py) the test helpers' keys work.
    for key in (TEST_COOKIE_KEY, COOKIE_KEY, GOOD_KEY):
        assert key in auth.REPOSITORY_KEYS
        assert auth.cookie_key({"CCM_TESTING": "1", "CCM_COOKIE_KEY": key}, secrets_path=tmp_path / "n.toml") == key
    # In demo mode a committed key is replaced by a random one.
    demo = auth.cookie_key(
        {"CCM_DEMO_MODE": "1", "CCM_COOKIE_KEY": next(iter(auth.REPOSITORY_KEYS))}, secrets_path=tmp_path / "n.toml"
    )
    assert demo not in auth.REPOSITORY_KEYS


# --------------------------------------------------------------------------- issue 13: sessions
def _live(engine, sid, now=None):
    user = auth.live_session_user(engine, sid, now=now)
    return user.username if user else None


def test_a_session_is_live_until_signed_out(engine):
    auth.add_user(engine, "s1", "sess-pass-1", "viewer")
    sid, expires = auth.create_session(engine, "s1", now=T0)
    other, _ = auth.create_session(engine, "s1", now=T0)
    assert expires == T0 + dt.timedelta(hours=12)  # the default lifetime
    assert _live(engine, sid, T0) == "s1" and _live(engine, other, T0) == "s1"
    auth.revoke_session(engine, sid)
    assert _live(engine, sid, T0) is None
    assert _live(engine, other, T0) == "s1"  # signing out one browser leaves the other session
    assert _live(engine, "not-a-session", T0) is None and _live(engine, None) is None and _live(engine, "") is None
    # The table holds only a hash of the id.
    with engine.connect() as conn:
        hashes = conn.execute(select(auth.user_session.c.token_hash)).scalars().all()
    assert sid not in hashes and len(hashes) == 2


def test_a_session_ends_at_its_lifetime(engine):
    auth.add_user(engine, "s2", "sess-pass-2", "viewer")
    sid, expires = auth.create_session(engine, "s2", now=T0)
    assert _live(engine, sid, expires - dt.timedelta(seconds=1)) == "s2"
    assert _live(engine, sid, expires) is None


@pytest.mark.parametrize("change", ["password", "lockout", "deactivate", "role"])
def test_account_changes_end_every_session_of_the_user(engine, change):
    auth.add_user(engine, "victim", "victim-pass-1", "biller")
    auth.add_user(engine, "bystander", "bystander-pass", "biller")
    now = dt.datetime.now()
    sids = [auth.create_session(engine, "victim", now=now)[0] for _ in range(2)]
    kept, _ = auth.create_session(engine, "bystander", now=now)
    if change == "password":
        auth.set_password(engine, "victim", "victim-pass-2")
    elif change == "lockout":
        for _ in range(auth.MAX_FAILED_LOGINS):
            auth.authenticate(engine, "victim", "wrong-pass")
    elif change == "deactivate":
        auth.deactivate(engine, "victim")
    else:
        auth.set_role(engine, "victim", "viewer")
    assert [_live(engine, s) for s in sids] == [None, None]
    assert _live(engine, kept) == "bystander"
    # Undoing the change does not bring the old sessions back.
    auth.unlock(engine, "victim")
    auth.set_active(engine, "victim", True)
    assert [_live(engine, s) for s in sids] == [None, None]


def test_setting_the_same_role_again_keeps_sessions(engine):
    auth.add_user(engine, "same", "same-pass-1", "biller")
    sid, _ = auth.create_session(engine, "same")
    auth.set_role(engine, "same", "biller")
    assert _live(engine, sid) == "same"


def test_session_lifetime_is_an_admin_setting_within_bounds(engine):
    auth.add_user(engine, "s3", "sess-pass-3", "viewer")
    assert auth.session_hours(engine) == 12
    auth.set_session_hours(engine, 2, actor="boss")
    sid, expires = auth.create_session(engine, "s3", now=T0)
    assert expires == T0 + dt.timedelta(hours=2)
    for bad in (0, -1, 0.1, 24 * 31, float("nan"), float("inf"), "soon"):
        with pytest.raises(ValueError, match="session length"):
            auth.set_session_hours(engine, bad, actor="boss")
    assert auth.session_hours(engine) == 2
    assert ("boss", "admin", "session length set to 2 hours") in _log(engine)
    with engine.begin() as conn:  # a hand-edited value out of range is clamped, a garbled one ignored
        put_setting(conn, auth.SESSION_HOURS_KEY, "100000")
    assert auth.session_hours(engine) == auth.MAX_SESSION_HOURS
    with engine.begin() as conn:
        put_setting(conn, auth.SESSION_HOURS_KEY, "nan")
    assert auth.session_hours(engine) == 12


# --------------------------------------------------------------------------- issue 13: the cookie itself
KEY = "v3W_sJFN5k9Jx5DDaewPVchj5Gzt2RikQf8_U11F98jo"


def _b64(obj) -> str:
    import base64
    import json

    raw = obj if isinstance(obj, bytes) else json.dumps(obj).encode()
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def test_a_cookie_round_trips_only_with_its_key():
    exp = dt.datetime.now() + dt.timedelta(hours=1)
    token = auth.encode_session_cookie(KEY, "ann", "sid-1", exp)
    claims = auth.decode_session_cookie(KEY, token)
    assert claims["username"] == "ann" and claims["sid"] == "sid-1"
    assert claims["exp_date"] == pytest.approx(exp.timestamp())
    assert auth.decode_session_cookie(KEY + "x", token) is None  # a foreign server's cookie
    head, body, sig = token.split(".")
    forged_body = _b64({"username": "admin", "sid": "sid-1", "exp_date": exp.timestamp()})
    assert auth.decode_session_cookie(KEY, f"{head}.{forged_body}.{sig}") is None  # tampered
    # An expired cookie is no cookie.
    old = auth.encode_session_cookie(KEY, "ann", "sid-1", dt.datetime.now() - dt.timedelta(seconds=1))
    assert auth.decode_session_cookie(KEY, old) is None


@pytest.mark.parametrize(
    "make",
    [
        lambda exp: (
            f"{_b64({'alg': 'none', 'typ': 'JWT'})}.{_b64({'username': 'admin', 'sid': 'x', 'exp_date': exp})}."
        ),
        lambda exp: __import__("jwt").encode(
            {"username": "admin", "sid": "x", "exp_date": exp}, KEY, algorithm="HS512"
        ),
        lambda exp: __import__("jwt").encode({"username": "admin", "exp_date": exp}, KEY, algorithm="HS256"),
        lambda exp: __import__("jwt").encode(
            {"username": ["admin"], "sid": "x", "exp_date": exp}, KEY, algorithm="HS256"
        ),
        lambda exp: __import__("jwt").encode(
            {"username": "admin", "sid": "x", "exp_date": "never"}, KEY, algorithm="HS256"
        ),
        lambda exp: "not a jwt at all",
        lambda exp: "a.b.c",
        lambda exp: "x" * 5000,
        lambda exp: f"{_b64(b'not json')}.{_b64({'username': 'admin'})}.sig",
    ],
)
def test_foreign_or_malformed_cookies_are_no_cookie(make):
    exp = (dt.datetime.now() + dt.timedelta(hours=1)).timestamp()
    assert auth.decode_session_cookie(KEY, make(exp)) is None
