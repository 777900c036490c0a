"""Users, roles and logins, kept in the database (no Streamlit here).

Why in ``ccm_core``: the role matrix and the lockout rule must hold for every
way into the data (the app, the CLI, tests), so they live next to the schema
and the app only asks.  Passwords are stored only as bcrypt hashes in
``app_user.password_hash``; failed logins and lockouts are counted in the
same row so they survive restarts and are shared by every app process.
"""
from __future__ import annotations

import datetime as dt
import os
import re
import secrets
import tomllib
from dataclasses import dataclass
from pathlib import Path

import bcrypt
from sqlalchemy import Engine, func, select, update

from .access import log_access
from .db import ROOT
from .schema import ROLES, app_user, staff

# --------------------------------------------------------------------------- roles and pages
# Page key -> (title, file beside app.py).  The order is the navigation order.
PAGES: dict[str, tuple[str, str]] = {
    "overview": ("Overview", "pages/1_Overview.py"),
    "enrollment": ("Enrollment", "pages/2_Enrollment.py"),
    "minutes": ("Minutes", "pages/3_Minutes.py"),
    "billing": ("Billing", "pages/4_Billing.py"),
    "revenue": ("Revenue", "pages/5_Revenue.py"),
    "audit": ("Audit", "pages/6_Audit.py"),
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

ALL_ACTIONS = ("reveal_identifiers", "export", "pull_sample", "record_finding", "import", "revert_import",
               "manage_users")

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
    return UserRecord(id=row.id, username=row.username, display_name=row.display_name, email=row.email,
                      role=row.role, staff_id=row.staff_id, active=bool(row.active),
                      failed_logins=int(row.failed_logins or 0), locked_until=row.locked_until,
                      last_login_at=row.last_login_at)


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


def add_user(engine: Engine, username: str, password: str, role: str, display_name: str | None = None,
             email: str | None = None, staff_id: int | None = None) -> int:
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
        return conn.execute(app_user.insert().values(
            username=name, display_name=(display_name or name).strip(), email=email, password_hash=password_hash,
            role=role, staff_id=staff_id, active=True, failed_logins=0, created_at=dt.datetime.now(),
        )).inserted_primary_key[0]


def set_password(engine: Engine, username: str, password: str) -> None:
    """A reset also clears a lockout: the admin has just vouched for the account."""
    password_hash = hash_password(password)
    with engine.begin() as conn:
        row = _require_user(conn, username)
        conn.execute(update(app_user).where(app_user.c.id == row.id).values(
            password_hash=password_hash, failed_logins=0, locked_until=None))


def set_role(engine: Engine, username: str, role: str) -> None:
    _validate_role(role)
    with engine.begin() as conn:
        row = _require_user(conn, username)
        conn.execute(update(app_user).where(app_user.c.id == row.id).values(role=role))


def set_active(engine: Engine, username: str, active: bool) -> None:
    with engine.begin() as conn:
        row = _require_user(conn, username)
        conn.execute(update(app_user).where(app_user.c.id == row.id).values(active=active))


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


GENERIC_FAILURE = "Username or password is incorrect."


def _locked_message(until: dt.datetime) -> str:
    return (f"This account is locked after {MAX_FAILED_LOGINS} failed sign-ins until {until:%H:%M}. "
            "Try again later or ask an admin to unlock it.")


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


def record_login_failure(engine: Engine, username: str, now: dt.datetime | None = None,
                         detail: str = "wrong password") -> LoginOutcome:
    """Count a failed attempt (atomically, in SQL) and lock the account at the fifth."""
    now = now or dt.datetime.now()
    name = normalize_username(username)
    allowed = login_allowed(engine, name, now)
    user = allowed.user
    if user is None or not user.active:
        log_access(engine, username=name or "(blank)", role=None, action="login_failed", page="login",
                   detail="unknown or inactive user")
        return LoginOutcome(False, GENERIC_FAILURE)
    if not allowed.ok:  # already locked: do not extend the lock, just record the try
        log_access(engine, username=name, role=user.role, action="login_failed", page="login",
                   detail="attempt while locked")
        return allowed
    with engine.begin() as conn:
        conn.execute(update(app_user).where(app_user.c.id == user.id)
                     .values(failed_logins=app_user.c.failed_logins + 1))
        failures = conn.execute(select(app_user.c.failed_logins).where(app_user.c.id == user.id)).scalar_one()
        locked_until = None
        if failures >= MAX_FAILED_LOGINS:
            locked_until = now + dt.timedelta(minutes=LOCKOUT_MINUTES)
            conn.execute(update(app_user).where(app_user.c.id == user.id).values(locked_until=locked_until))
    log_access(engine, username=name, role=user.role, action="login_failed", page="login",
               detail=f"{detail}; failure {failures} of {MAX_FAILED_LOGINS}" + ("; account locked" if locked_until else ""))
    if locked_until:
        return LoginOutcome(False, _locked_message(locked_until), get_user(engine, name), locked_until)
    return LoginOutcome(False, GENERIC_FAILURE, get_user(engine, name))


def record_login_success(engine: Engine, username: str, now: dt.datetime | None = None,
                         detail: str = "password") -> UserRecord:
    now = now or dt.datetime.now()
    name = normalize_username(username)
    with engine.begin() as conn:
        row = _require_user(conn, name)
        conn.execute(update(app_user).where(app_user.c.id == row.id)
                     .values(failed_logins=0, locked_until=None, last_login_at=now))
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
    from .schema import patient

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
                person = conn.execute(select(staff.c.first_name, staff.c.last_name)
                                      .where(staff.c.id == staff_id)).first()
            if person:
                name = f"{person.first_name} {person.last_name}"
        add_user(engine, username, password, role, display_name=name, staff_id=staff_id)
        created.append(username)
    return created


# --------------------------------------------------------------------------- cookie key policy
SECRETS_PATH = ROOT / ".streamlit" / "secrets.toml"
MIN_COOKIE_KEY_LENGTH = 32
# Keys that appear in docs, examples and library defaults: anyone could forge a cookie with them.
KNOWN_DEFAULT_KEYS = frozenset({
    "some_key", "some_signature_key", "random_signature_key", "abcdef", "key", "secret", "changeme",
    "change-me", "change_me", "cookie_key", "password", "streamlit", "replace-me",
    "replace-with-a-long-random-string-of-at-least-32-characters",
    "please-change-this-cookie-key-to-a-long-random-value",
})


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
    return None


_DEMO_COOKIE_KEY: str | None = None


def cookie_key(env: dict | None = None, secrets_path: Path | None = None) -> str:
    """The secret that signs login cookies (and keys meeting-mode pseudonyms).

    Outside demo mode a missing, default or short key raises CookieKeyError so
    the app refuses to start; in demo mode an unusable key is replaced by a
    random one per process (logins then last until the server restarts).
    """
    global _DEMO_COOKIE_KEY
    key = configured_cookie_key(env, secrets_path)
    problem = cookie_key_problem(key)
    if problem is None:
        return key
    if is_demo_mode(env):
        if _DEMO_COOKIE_KEY is None:
            _DEMO_COOKIE_KEY = secrets.token_urlsafe(48)
        return _DEMO_COOKIE_KEY
    raise CookieKeyError(
        f"{problem} Set CCM_COOKIE_KEY (or [auth] cookie_key in .streamlit/secrets.toml) to a random string of at "
        f"least {MIN_COOKIE_KEY_LENGTH} characters, e.g. the output of: python -c \"import secrets; "
        "print(secrets.token_urlsafe(48))\". For a local demo, start with CCM_DEMO_MODE=1 (make run does).")
