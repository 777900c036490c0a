"""Users, roles and logins, kept in the database (no Streamlit here).

Why in ``ccm_core``: the role matrix and the lockout rule must hold for every
way into the data (the app, the CLI, tests), so they live next to the schema
and the app only asks.  Passwords are stored only as bcrypt hashes in
``app_user.password_hash``; failed logins and lockouts are counted in the
same row so they survive restarts and are shared by every app process.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import math
import os
import re
import secrets
import tomllib
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import bcrypt
import jwt
from sqlalchemy import Engine, func, select, update

from ccm_core.security.access_log import log_access, log_admin_change
from ccm_core.storage.db import ROOT
from ccm_core.storage.schema import ROLES, app_user, staff, user_session
from ccm_core.storage.settings import get_setting, put_setting

# --------------------------------------------------------------------------- roles and pages
# Page key -> (title, file beside app.py).  The order is the navigation order.
PAGES: dict[str, tuple[str, str]] = {
    "my_month": ("My month", "pages/9_My_month.py"),
    "overview": ("Overview", "pages/1_Overview.py"),
    "enrollment": ("Enrollment", "pages/2_Enrollment.py"),
    "minutes": ("Minutes", "pages/3_Minutes.py"),
    "billing": ("Billing", "pages/4_Billing.py"),
    "revenue": ("Revenue", "pages/5_Revenue.py"),
    "audit": ("Audit", "pages/6_Audit.py"),
    "denials": ("Denials to work", "pages/10_Denials.py"),
    "import": ("Import", "pages/7_Import.py"),
    "admin": ("Admin", "pages/8_Admin.py"),
}

ROLE_LABELS = {
    "admin": "Admin",
    "program_lead": "Program lead",
    "auditor": "Auditor",
    "biller": "Biller",
    "care_manager": "Care manager",
    "viewer": "Viewer",
}

_PAGE_ROLES: dict[str, tuple[str, ...]] = {
    "my_month": ("admin", "program_lead", "care_manager"),
    "denials": ("admin", "program_lead", "biller"),
    "overview": ROLES,
    "enrollment": ("admin", "program_lead", "auditor", "viewer"),
    "minutes": ("admin", "program_lead", "care_manager", "viewer"),
    "billing": ("admin", "program_lead", "biller", "auditor"),
    "revenue": ("admin", "program_lead", "biller", "viewer"),
    "audit": ("admin", "auditor", "biller"),
    "import": ("admin",),
    "admin": ("admin",),
}

# Role -> page keys it may open, in navigation order.
ROLE_PAGES: dict[str, tuple[str, ...]] = {
    role: tuple(page for page in PAGES if role in _PAGE_ROLES[page]) for role in ROLES
}

ALL_ACTIONS = (
    "reveal_identifiers",
    "export",
    "pull_sample",
    "record_finding",
    "import",
    "revert_import",
    "manage_users",
)

# Role -> actions it may take.  The viewer never sees identifiers; findings are
# the auditor's to record (a biller pulls samples of their own work but does not
# grade it).
ACTIONS: dict[str, frozenset[str]] = {
    "admin": frozenset(ALL_ACTIONS),
    "program_lead": frozenset({"reveal_identifiers", "export"}),
    "auditor": frozenset({"reveal_identifiers", "export", "pull_sample", "record_finding"}),
    "biller": frozenset({"reveal_identifiers", "export", "pull_sample"}),
    "care_manager": frozenset({"reveal_identifiers", "export"}),
    "viewer": frozenset(),
}


# The page each role lands on: its list of what to do today (issue 15).
LANDING_PAGES = {"care_manager": "my_month", "biller": "denials", "auditor": "audit"}


def landing_page(role: str | None) -> str:
    page = LANDING_PAGES.get(role or "", "overview")
    return page if may_open(role, page) else "overview"


def may_open(role: str | None, page_key: str) -> bool:
    return bool(role) and page_key in ROLE_PAGES.get(role, ())


def role_can(role: str | None, action: str) -> bool:
    if action not in ALL_ACTIONS:
        raise ValueError(f"Unknown action {action!r}; known: {', '.join(ALL_ACTIONS)}")
    return bool(role) and action in ACTIONS.get(role, frozenset())


# --------------------------------------------------------------------------- passwords
MAX_FAILED_LOGINS = 5
LOCKOUT_MINUTES = 15
MIN_PASSWORD_LENGTH = 8
USERNAME_RE = re.compile(r"^[a-z0-9][a-z0-9._-]{1,63}$")


def _bcrypt_rounds() -> int:
    """Cost 12 in production; tests may lower it (never below bcrypt's minimum 4) to stay fast."""
    try:
        return max(4, min(16, int(os.environ.get("CCM_BCRYPT_ROUNDS", "12"))))
    except ValueError:
        return 12


def validate_password(password: str) -> None:
    """Reject what bcrypt or the login form would silently mangle."""
    if not isinstance(password, str) or len(password) < MIN_PASSWORD_LENGTH:
        raise ValueError(f"Password must be at least {MIN_PASSWORD_LENGTH} characters.")
    if password != password.strip():
        raise ValueError("Password must not start or end with spaces (the login form trims them).")
    if len(password.encode("utf-8")) > 72:
        raise ValueError("Password must be at most 72 bytes (bcrypt's limit).")


def hash_password(password: str) -> str:
    validate_password(password)
    return bcrypt.hashpw(password.encode("utf-8"), bcrypt.gensalt(_bcrypt_rounds())).decode("ascii")


def verify_password(password: str, password_hash: str) -> bool:
    try:
        return bcrypt.checkpw(password.encode("utf-8"), password_hash.encode("ascii"))
    except (ValueError, TypeError):  # over-long password or malformed hash: never a match
        return False


_UNMATCHABLE: str | None = None


def unmatchable_hash() -> str:
    """A valid bcrypt hash of a random secret: lets a locked account fail like a wrong password."""
    global _UNMATCHABLE
    if _UNMATCHABLE is None:
        _UNMATCHABLE = bcrypt.hashpw(secrets.token_bytes(32).hex().encode(), bcrypt.gensalt(4)).decode("ascii")
    return _UNMATCHABLE


def normalize_username(username: str) -> str:
    """Lower-case and trimmed, as streamlit-authenticator compares them."""
    return (username or "").strip().lower()


# --------------------------------------------------------------------------- user records
@dataclass(frozen=True)
class UserRecord:
    id: int
    username: str
    display_name: str
    email: str | None
    role: str
    staff_id: int | None
    active: bool
    failed_logins: int
    locked_until: dt.datetime | None
    last_login_at: dt.datetime | None

    def is_locked(self, now: dt.datetime | None = None) -> bool:
        return self.locked_until is not None and self.locked_until > (now or dt.datetime.now())


def _record(row) -> UserRecord:
    return UserRecord(
        id=row.id,
        username=row.username,
        display_name=row.display_name,
        email=row.email,
        role=row.role,
        staff_id=row.staff_id,
        active=bool(row.active),
        failed_logins=int(row.failed_logins or 0),
        locked_until=row.locked_until,
        last_login_at=row.last_login_at,
    )


def get_user(engine: Engine, username: str) -> UserRecord | None:
    with engine.connect() as conn:
        row = conn.execute(select(app_user).where(app_user.c.username == normalize_username(username))).first()
    return _record(row) if row else None


def list_users(engine: Engine) -> list[UserRecord]:
    with engine.connect() as conn:
        rows = conn.execute(select(app_user).order_by(app_user.c.username)).all()
    return [_record(r) for r in rows]


def _validate_role(role: str) -> None:
    if role not in ROLES:
        raise ValueError(f"Unknown role {role!r}; choose one of: {', '.join(ROLES)}")


def _require_user(conn, username: str):
    row = conn.execute(select(app_user).where(app_user.c.username == normalize_username(username))).first()
    if row is None:
        raise ValueError(f"No user named {username!r}.")
    return row


def add_user(
    engine: Engine,
    username: str,
    password: str,
    role: str,
    display_name: str | None = None,
    email: str | None = None,
    staff_id: int | None = None,
) -> int:
    """Create a login; the password is hashed here and never stored in clear."""
    name = normalize_username(username)
    if not USERNAME_RE.match(name):
        raise ValueError("Username must be 2-64 characters: letters, digits, '.', '_' or '-'.")
    _validate_role(role)
    password_hash = hash_password(password)
    with engine.begin() as conn:
        if conn.execute(select(app_user.c.id).where(app_user.c.username == name)).first():
            raise ValueError(f"A user named {name!r} already exists.")
        if staff_id is not None and conn.execute(select(staff.c.id).where(staff.c.id == staff_id)).first() is None:
            raise ValueError(f"No staff member with id {staff_id}.")
        return conn.execute(
            app_user.insert().values(
                username=name,
                display_name=(display_name or name).strip(),
                email=email,
                password_hash=password_hash,
                role=role,
                staff_id=staff_id,
                active=True,
                failed_logins=0,
                created_at=dt.datetime.now(),
            )
        ).inserted_primary_key[0]


def set_password(engine: Engine, username: str, password: str) -> None:
    """A reset also clears a lockout: the admin has just vouched for the account."""
    password_hash = hash_password(password)
    with engine.begin() as conn:
        row = _require_user(conn, username)
        conn.execute(
            update(app_user)
            .where(app_user.c.id == row.id)
            .values(password_hash=password_hash, failed_logins=0, locked_until=None)
        )
        revoke_user_sessions(conn, row.id, "password changed")


def set_role(engine: Engine, username: str, role: str) -> None:
    _validate_role(role)
    with engine.begin() as conn:
        row = _require_user(conn, username)
        conn.execute(update(app_user).where(app_user.c.id == row.id).values(role=role))
        if row.role != role:
            revoke_user_sessions(conn, row.id, "role changed")


def set_active(engine: Engine, username: str, active: bool) -> None:
    with engine.begin() as conn:
        row = _require_user(conn, username)
        conn.execute(update(app_user).where(app_user.c.id == row.id).values(active=active))
        if not active:
            revoke_user_sessions(conn, row.id, "deactivated")


def deactivate(engine: Engine, username: str) -> None:
    """Users are never deleted: the access log keeps naming them."""
    set_active(engine, username, False)


def unlock(engine: Engine, username: str) -> None:
    with engine.begin() as conn:
        row = _require_user(conn, username)
        conn.execute(update(app_user).where(app_user.c.id == row.id).values(failed_logins=0, locked_until=None))


# --------------------------------------------------------------------------- logging in
@dataclass(frozen=True)
class LoginOutcome:
    ok: bool
    message: str
    user: UserRecord | None = None
    locked_until: dt.datetime | None = None


# One message for every failed sign-in (wrong password, unknown or inactive user, locked account), so the
# form never confirms that an account exists; it states the lockout rule instead of whether it applies.
GENERIC_FAILURE = (
    f"Username or password is incorrect. After {MAX_FAILED_LOGINS} failed sign-ins in a row an "
    f"account is locked for {LOCKOUT_MINUTES} minutes; an admin can unlock it sooner."
)


def _locked_message(until: dt.datetime) -> str:
    """What a locked sign-in is told: the same as any failure (the lock is in the outcome and the log)."""
    return GENERIC_FAILURE


def login_allowed(engine: Engine, username: str, now: dt.datetime | None = None) -> LoginOutcome:
    """The check before a password is even looked at: known, active and not locked.

    An expired lock is cleared here, so the user gets a fresh set of attempts.
    """
    now = now or dt.datetime.now()
    user = get_user(engine, username)
    if user is None or not user.active:
        return LoginOutcome(False, GENERIC_FAILURE, user)
    if user.is_locked(now):
        return LoginOutcome(False, _locked_message(user.locked_until), user, user.locked_until)
    if user.locked_until is not None:  # lock expired
        with engine.begin() as conn:
            conn.execute(update(app_user).where(app_user.c.id == user.id).values(failed_logins=0, locked_until=None))
        user = get_user(engine, username)
    return LoginOutcome(True, "", user)


def record_login_failure(
    engine: Engine, username: str, now: dt.datetime | None = None, detail: str = "wrong password"
) -> LoginOutcome:
    """Count a failed attempt (atomically, in SQL) and lock the account at the fifth."""
    now = now or dt.datetime.now()
    name = normalize_username(username)
    allowed = login_allowed(engine, name, now)
    user = allowed.user
    if user is None or not user.active:
        log_access(
            engine,
            username=name or "(blank)",
            role=None,
            action="login_failed",
            page="login",
            detail="unknown or inactive user",
        )
        return LoginOutcome(False, GENERIC_FAILURE)
    if not allowed.ok:  # already locked: do not extend the lock, just record the try
        log_access(
            engine, username=name, role=user.role, action="login_failed", page="login", detail="attempt while locked"
        )
        return allowed
    with engine.begin() as conn:
        conn.execute(
            update(app_user).where(app_user.c.id == user.id).values(failed_logins=app_user.c.failed_logins + 1)
        )
        failures = conn.execute(select(app_user.c.failed_logins).where(app_user.c.id == user.id)).scalar_one()
        locked_until = None
        if failures >= MAX_FAILED_LOGINS:
            locked_until = now + dt.timedelta(minutes=LOCKOUT_MINUTES)
            conn.execute(update(app_user).where(app_user.c.id == user.id).values(locked_until=locked_until))
            revoke_user_sessions(conn, user.id, "locked", now)
    log_access(
        engine,
        username=name,
        role=user.role,
        action="login_failed",
        page="login",
        detail=f"{detail}; failure {failures} of {MAX_FAILED_LOGINS}" + ("; account locked" if locked_until else ""),
    )
    if locked_until:
        return LoginOutcome(False, _locked_message(locked_until), get_user(engine, name), locked_until)
    return LoginOutcome(False, GENERIC_FAILURE, get_user(engine, name))


def record_login_success(
    engine: Engine, username: str, now: dt.datetime | None = None, detail: str = "password"
) -> UserRecord:
    now = now or dt.datetime.now()
    name = normalize_username(username)
    with engine.begin() as conn:
        row = _require_user(conn, name)
        conn.execute(
            update(app_user)
            .where(app_user.c.id == row.id)
            .values(failed_logins=0, locked_until=None, last_login_at=now)
        )
    user = get_user(engine, name)
    log_access(engine, username=name, role=user.role, action="login", page="login", detail=detail)
    return user


def authenticate(engine: Engine, username: str, password: str, now: dt.datetime | None = None) -> LoginOutcome:
    """Check a username and password with the lockout rule; logs login / login_failed.

    Five wrong passwords in a row lock the account for 15 minutes; while locked
    even the right password is refused.
    """
    now = now or dt.datetime.now()
    name = normalize_username(username)
    password = (password or "").strip()
    allowed = login_allowed(engine, name, now)
    if not allowed.ok:
        return record_login_failure(engine, name, now)
    if not verify_password(password, _password_hash(engine, name)):
        return record_login_failure(engine, name, now)
    user = record_login_success(engine, name, now)
    return LoginOutcome(True, f"Signed in as {user.display_name}.", user)


def _password_hash(engine: Engine, username: str) -> str:
    with engine.connect() as conn:
        return conn.execute(select(app_user.c.password_hash).where(app_user.c.username == username)).scalar_one()


def authenticator_credentials(engine: Engine, now: dt.datetime | None = None) -> dict:
    """The credentials dict streamlit-authenticator expects, built from app_user.

    Inactive users are left out (their re-login cookies stop working); a locked
    user gets a hash nothing matches, so the library treats even the right
    password as wrong while the lock lasts.
    """
    now = now or dt.datetime.now()
    with engine.connect() as conn:
        rows = conn.execute(select(app_user).where(app_user.c.active.is_(True))).all()
    users = {}
    for row in rows:
        locked = row.locked_until is not None and row.locked_until > now
        users[row.username] = {
            "name": row.display_name,
            "email": row.email or "",
            "password": unmatchable_hash() if locked else row.password_hash,
            "roles": [row.role],
        }
    return {"usernames": users}


# --------------------------------------------------------------------------- demo users
DEMO_USERS: tuple[tuple[str, str, str, str], ...] = (
    # username, password, role, display name
    ("admin", "admin-demo", "admin", "Ada Admin"),
    ("lead", "lead-demo", "program_lead", "Lee Program-Lead"),
    ("auditor", "auditor-demo", "auditor", "Audrey Auditor"),
    ("biller", "biller-demo", "biller", "Bill Biller"),
    ("care", "care-demo", "care_manager", "Care Manager"),
    ("viewer", "viewer-demo", "viewer", "Vic Viewer"),
)


def demo_care_manager_staff_id(engine: Engine) -> int | None:
    """The active care manager with the most patients: the demo 'care' login sees a real worklist."""
    from ccm_core.storage.schema import patient

    with engine.connect() as conn:
        row = conn.execute(
            select(staff.c.id)
            .select_from(staff.outerjoin(patient, patient.c.care_manager_id == staff.c.id))
            .where(staff.c.role == "care_manager", staff.c.active.is_(True))
            .group_by(staff.c.id)
            .order_by(func.count(patient.c.id).desc(), staff.c.id)
            .limit(1)
        ).first()
    return row[0] if row else None


DEMO_FLAG_KEY = "app.demo_database"  # the setting init-db writes when it fills an empty database with demo data


def is_demo_database(engine: Engine) -> bool:
    """Demo logins (with published passwords) may only ever go into a demo database.

    Recognised by the flag init-db writes, or by the demo generator's own practice
    (``python -m ccm_core demo`` fills a database without going through init-db).
    """
    from ccm_core.storage.schema import practice

    with engine.connect() as conn:
        if get_setting(conn, DEMO_FLAG_KEY) == "true":
            return True
        names = conn.execute(select(practice.c.name)).scalars().all()
    try:
        from ccm_core.io.demo.vocab import PRACTICE_NAME
    except ImportError:
        return False
    return names == [PRACTICE_NAME]


def create_demo_users(engine: Engine) -> list[str]:
    """Create the six demo logins that are missing.  Only the demo path calls this."""
    created = []
    care_staff = demo_care_manager_staff_id(engine)
    for username, password, role, name in DEMO_USERS:
        if get_user(engine, username) is not None:
            continue
        staff_id = care_staff if role == "care_manager" else None
        if role == "care_manager" and staff_id is not None:
            with engine.connect() as conn:
                person = conn.execute(
                    select(staff.c.first_name, staff.c.last_name).where(staff.c.id == staff_id)
                ).first()
            if person:
                name = f"{person.first_name} {person.last_name}"
        add_user(engine, username, password, role, display_name=name, staff_id=staff_id)
        created.append(username)
    return created


# --------------------------------------------------------------------------- cookie key policy
SECRETS_PATH = ROOT / ".streamlit" / "secrets.toml"
MIN_COOKIE_KEY_LENGTH = 32
# Keys that appear in docs, examples and library defaults: anyone could forge a cookie with them.
KNOWN_DEFAULT_KEYS = frozenset(
    {
        "some_key",
        "some_signature_key",
        "random_signature_key",
        "abcdef",
        "key",
        "secret",
        "changeme",
        "change-me",
        "change_me",
        "cookie_key",
        "password",
        "streamlit",
        "replace-me",
        "replace-with-a-long-random-string-of-at-least-32-characters",
        "please-change-this-cookie-key-to-a-long-random-value",
    }
)


class CookieKeyError(RuntimeError):
    """The app must not start: its login cookies could be forged."""


def is_demo_mode(env: dict | None = None) -> bool:
    env = os.environ if env is None else env
    return str(env.get("CCM_DEMO_MODE", "")).strip().lower() in ("1", "true", "yes", "on")


def configured_cookie_key(env: dict | None = None, secrets_path: Path | None = None) -> str | None:
    """CCM_COOKIE_KEY, else ``[auth] cookie_key`` in .streamlit/secrets.toml."""
    env = os.environ if env is None else env
    key = env.get("CCM_COOKIE_KEY")
    if key:
        return key
    path = SECRETS_PATH if secrets_path is None else secrets_path
    if path.exists():
        try:
            with path.open("rb") as fh:
                key = tomllib.load(fh).get("auth", {}).get("cookie_key")
        except (OSError, tomllib.TOMLDecodeError):
            return None
        if isinstance(key, str) and key:
            return key
    return None


def cookie_key_problem(key: str | None) -> str | None:
    """Why this key is unsafe, or None when it is fine."""
    if not key:
        return "No cookie key is configured."
    if key.strip().lower() in KNOWN_DEFAULT_KEYS:
        return "The cookie key is a well-known default value."
    if len(key) < MIN_COOKIE_KEY_LENGTH:
        return f"The cookie key is shorter than {MIN_COOKIE_KEY_LENGTH} characters."
    if _key_bits(key) < MIN_COOKIE_KEY_BITS or _patterned(key):
        return "The cookie key is too predictable (repeated or few distinct characters)."
    return None


_DEMO_COOKIE_KEY: str | None = None


def cookie_key(env: dict | None = None, secrets_path: Path | None = None) -> str:
    """The secret that signs login cookies (and keys meeting-mode pseudonyms).

    Outside demo mode a missing, default, short or predictable key (or one committed in this repository,
    outside the test suite) raises CookieKeyError so
    the app refuses to start; in demo mode an unusable key is replaced by a
    random one per process (logins then last until the server restarts).
    """
    global _DEMO_COOKIE_KEY
    key = configured_cookie_key(env, secrets_path)
    problem = cookie_key_problem_in(key, env)
    if problem is None:
        return key
    if is_demo_mode(env):
        if _DEMO_COOKIE_KEY is None:
            _DEMO_COOKIE_KEY = secrets.token_urlsafe(48)
        return _DEMO_COOKIE_KEY
    raise CookieKeyError(
        f"{problem} Set CCM_COOKIE_KEY (or [auth] cookie_key in .streamlit/secrets.toml) to a random string of at "
        f'least {MIN_COOKIE_KEY_LENGTH} characters, e.g. the output of: python -c "import secrets; '
        'print(secrets.token_urlsafe(48))". For a local demo, start with CCM_DEMO_MODE=1 (make run does).'
    )


def _key_bits(key: str) -> float:
    """Shannon entropy of the key's own characters times its length: a floor-level estimate of its strength.

    32 x "a" or 32 spaces score 0; a key that repeats a short pattern scores low; a random 32-character
    key from ``secrets.token_urlsafe`` scores about 150.
    """
    counts = Counter(key)
    n = len(key)
    return -n * sum(c / n * math.log2(c / n) for c in counts.values()) if n else 0.0


MIN_COOKIE_KEY_BITS = 96


def _patterned(key: str) -> bool:
    """A repeated block ("0123456789abcdef" twice) or mostly runs ("abcdefgh...", "aaaa..."): typed, not drawn.

    Random keys have few neighbours one code point apart (about 5 % for token_urlsafe, 20 % for hex)."""
    n = len(key)
    if any(n % p == 0 and key == key[:p] * (n // p) for p in range(1, n // 2 + 1)):
        return True
    steps = sum(abs(ord(b) - ord(a)) <= 1 for a, b in zip(key, key[1:]))
    return steps > 0.5 * (n - 1)


# Keys written into this repository (test helpers and the benchmark): public, so only tests may use them.
REPOSITORY_KEYS = frozenset(
    {
        "6fgMMidHglqQ555sItchKmADLQ5aG-LtZwtKlh2d3yKC",  # tests/apptest_utils.py
        "yJ0w4IVWdahNjJdgk2qHjyClG0uaZ7tfXkKXEqCeHydj",  # tests/browser_utils.py
        "v3W_sJFN5k9Jx5DDaewPVchj5Gzt2RikQf8_U11F98jo",  # tests/test_auth.py
        # Earlier test and benchmark keys (in the git history; predictable anyway).
        "test-cookie-key-0123456789-abcdefghijklmnop",
        "browser-test-cookie-key-0123456789-abcdefghij",
        "bench-cookie-key-0123456789-abcdefghijklmnop",
    }
)
TESTING_ENV = "CCM_TESTING"


def _testing(env: dict | None = None) -> bool:
    env = os.environ if env is None else env
    return str(env.get(TESTING_ENV, "")).strip() == "1"


def cookie_key_problem_in(key: str | None, env: dict | None = None) -> str | None:
    """Why this key is unsafe here (the repository's own keys pass only under the test suite)."""
    problem = cookie_key_problem(key)
    if problem is None and key in REPOSITORY_KEYS and not _testing(env):
        return "The cookie key is one committed in this repository's tests or benchmark."
    return problem


# --------------------------------------------------------------------------- sessions
# A sign-in creates a user_session row; the login cookie carries its random id.  Every run of the app
# checks that row (live_session_user), so ending the row ends the session everywhere, including a
# copied cookie.  Rows end at sign-out, and all of a user's rows end on a password change or reset, a
# lockout, a deactivation and a role change.
SESSION_HOURS_KEY = "auth.session_hours"
DEFAULT_SESSION_HOURS = 12.0
MIN_SESSION_HOURS = 0.25
MAX_SESSION_HOURS = 24.0 * 30
COOKIE_ALGORITHM = "HS256"
MAX_COOKIE_LENGTH = 2048


def session_hours(engine: Engine) -> float:
    """How long a sign-in (and its cookie) lasts: the admin setting, else 12 hours, always within bounds."""
    with engine.connect() as conn:
        value = get_setting(conn, SESSION_HOURS_KEY)
    try:
        hours = float(value) if value is not None else DEFAULT_SESSION_HOURS
    except ValueError:
        return DEFAULT_SESSION_HOURS
    if not math.isfinite(hours):
        return DEFAULT_SESSION_HOURS
    return min(max(hours, MIN_SESSION_HOURS), MAX_SESSION_HOURS)


def set_session_hours(engine: Engine, hours: float, actor: str) -> None:
    """Admin setting; applies to sign-ins from now on (existing sessions keep their end)."""
    try:
        hours = float(hours)
    except (TypeError, ValueError):
        raise ValueError("The session length must be a number of hours.") from None
    if not (math.isfinite(hours) and MIN_SESSION_HOURS <= hours <= MAX_SESSION_HOURS):
        raise ValueError(f"The session length must be from {MIN_SESSION_HOURS:g} to {MAX_SESSION_HOURS:g} hours.")
    with engine.begin() as conn:
        put_setting(conn, SESSION_HOURS_KEY, f"{hours:g}")  # recorded: every computation reads settings
    log_admin_change(engine, actor, f"session length set to {hours:g} hours")


def _token_hash(sid: str) -> str:
    return hashlib.sha256(sid.encode("utf-8")).hexdigest()


def create_session(engine: Engine, username: str, now: dt.datetime | None = None) -> tuple[str, dt.datetime]:
    """A new live session for ``username``: (the random id for the cookie, when it ends).  Only the id's
    SHA-256 is stored, so the table alone cannot be turned into cookies."""
    now = now or dt.datetime.now()
    sid = secrets.token_urlsafe(32)
    expires_at = now + dt.timedelta(hours=session_hours(engine))
    with engine.begin() as conn:
        row = _require_user(conn, username)
        conn.execute(
            user_session.insert().values(
                token_hash=_token_hash(sid), user_id=row.id, created_at=now, expires_at=expires_at
            )
        )
    return sid, expires_at


def live_session_user(engine: Engine, sid: str | None, now: dt.datetime | None = None) -> UserRecord | None:
    """The user of a live session (not ended, not expired; user active and not locked), else None."""
    if not sid or not isinstance(sid, str) or len(sid) > 200:
        return None
    now = now or dt.datetime.now()
    with engine.connect() as conn:
        row = conn.execute(
            select(app_user)
            .select_from(user_session.join(app_user, app_user.c.id == user_session.c.user_id))
            .where(
                user_session.c.token_hash == _token_hash(sid),
                user_session.c.revoked_at.is_(None),
                user_session.c.expires_at > now,
                app_user.c.active.is_(True),
            )
        ).first()
    if row is None:
        return None
    user = _record(row)
    return None if user.is_locked(now) else user


def revoke_session(engine: Engine, sid: str | None, reason: str = "signed out", now: dt.datetime | None = None) -> None:
    if not sid:
        return
    with engine.begin() as conn:
        conn.execute(
            update(user_session)
            .where(user_session.c.token_hash == _token_hash(sid), user_session.c.revoked_at.is_(None))
            .values(revoked_at=now or dt.datetime.now(), revoked_reason=reason[:40])
        )


def revoke_user_sessions(conn, user_id: int, reason: str, now: dt.datetime | None = None) -> None:
    """End every live session of a user, inside the caller's transaction."""
    conn.execute(
        update(user_session)
        .where(user_session.c.user_id == user_id, user_session.c.revoked_at.is_(None))
        .values(revoked_at=now or dt.datetime.now(), revoked_reason=reason[:40])
    )


def encode_session_cookie(key: str, username: str, sid: str, expires_at: dt.datetime) -> str:
    """The login cookie's value: an HS256 JWT naming the user, the session id and the end."""
    return jwt.encode(
        {"username": username, "sid": sid, "exp_date": expires_at.timestamp()}, key, algorithm=COOKIE_ALGORITHM
    )


def decode_session_cookie(key: str, token: object, now: dt.datetime | None = None) -> dict | None:
    """The claims of a cookie this server signed and that has not expired; None for anything else.

    A cookie with another algorithm in its header (``none``, ``HS512``...), a bad signature, missing or
    wrongly typed claims, or any other oddity is treated exactly like no cookie: never an error.
    """
    if not isinstance(token, str) or not token or len(token) > MAX_COOKIE_LENGTH:
        return None
    try:
        if jwt.get_unverified_header(token).get("alg") != COOKIE_ALGORITHM:
            return None
        claims = jwt.decode(token, key, algorithms=[COOKIE_ALGORITHM])
    except Exception:  # noqa: BLE001 - any malformed, foreign or tampered cookie is simply no cookie
        return None
    if not isinstance(claims, dict):
        return None
    username, sid, exp = claims.get("username"), claims.get("sid"), claims.get("exp_date")
    if not (
        isinstance(username, str)
        and isinstance(sid, str)
        and isinstance(exp, (int, float))
        and not isinstance(exp, bool)
    ):
        return None
    if not math.isfinite(exp) or exp <= (now or dt.datetime.now()).timestamp():
        return None
    return {"username": username, "sid": sid, "exp_date": float(exp)}
