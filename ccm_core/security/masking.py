"""What meeting mode shows for people: the admin's choice for staff names.

Staff (care managers, practitioners, other staff) read as their names, or, when the admin chose
"pseudonyms", as their role and a stable pseudonym ("Care manager 7F3A9C").
"""

from __future__ import annotations

from sqlalchemy import Engine

from ccm_core.security.access_log import log_access
from ccm_core.storage.settings import get_setting, put_setting

MEETING_STAFF_KEY = "app.meeting_staff_display"
MEETING_STAFF_CHOICES = ("names", "pseudonyms")  # how staff read in meeting mode


def meeting_staff_display(engine: Engine) -> str:
    """ "names" (default) or "pseudonyms": what meeting mode shows for care managers, practitioners, staff."""
    with engine.connect() as conn:
        value = get_setting(conn, MEETING_STAFF_KEY, "names")
    return value if value in MEETING_STAFF_CHOICES else "names"


def set_meeting_staff_display(engine: Engine, value: str, username: str) -> None:
    if value not in MEETING_STAFF_CHOICES:
        raise ValueError(f"Staff display must be one of {', '.join(MEETING_STAFF_CHOICES)}")
    with engine.begin() as conn:
        put_setting(conn, MEETING_STAFF_KEY, value)
    log_access(
        engine,
        username=username,
        role="admin",
        action="admin",
        page="admin",
        detail=f"meeting mode shows staff as {value}",
    )
