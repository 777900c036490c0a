"""Identifier masking: what a masked table, chart or file shows instead of names and identifiers.

Masking applies for the viewer role always and for everyone in meeting mode (the switch and its state are
``ui.meeting``).  Names and ids become stable pseudonyms ("Patient 7F3A9C": an HMAC of the id with the
server's secret key, so the same patient keeps the same pseudonym across pages and meetings of one key);
claim numbers become claim pseudonyms, and MBI, date of birth, phone and name parts are blanked.  Staff
(care managers, practitioners, other staff) read as their names, or, when the admin chose "pseudonyms",
as their role and a stable pseudonym ("Care manager 7F3A9C").
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Iterable

import pandas as pd
from sqlalchemy import Engine

from ccm_core.security.access_log import log_admin_change
from ccm_core.storage.settings import get_setting, put_setting

# Identifier columns a masked table or file never shows, whatever the page declared: claim numbers embed
# the patient id (CCM0000045202605 is patient 45), so they become claim pseudonyms; the rest are blanked.
OTHER_IDENTIFIERS = {
    "claim_number": "Claim",
    "payer_claim_control_number": "Claim",
    "mbi": None,
    "birth_date": None,
    "dob": None,
    "phone": None,
    "first_name": None,
    "last_name": None,
    "address": None,
    "email": None,
}


# Staff columns: in meeting mode, when the admin setting says "pseudonyms", each name reads as its role and
# a stable pseudonym ("Care manager 7F3A9C"), in tables and charts alike.
STAFF_COLUMNS = {
    "care_manager": "Care manager",
    "staff": "Staff",
    "staff_name": "Staff",
    "practitioner": "Practitioner",
    "billing_practitioner": "Practitioner",
    "auditor": "Auditor",
}


def pseudonym(value, kind: str, key: str) -> str:
    """Stable, non-reversible label for an identifier (same input, same key -> same label)."""
    if value is None or (isinstance(value, float) and pd.isna(value)):
        return ""
    digest = hmac.new(key.encode(), f"{kind}:{value}".encode(), hashlib.sha256).hexdigest()
    return f"{kind} {digest[:6].upper()}"


def pseudonymize(df: pd.DataFrame, id_cols: Iterable[str], name_cols: Iterable[str], key: str) -> pd.DataFrame:
    """Replace every identifier and name cell with the row's pseudonym (keyed on the first id column), claim
    numbers with claim pseudonyms, and blank MBI, date of birth, phone and name parts."""
    id_cols = [c for c in id_cols if c in df.columns]
    name_cols = [c for c in name_cols if c in df.columns]
    cols = id_cols + [c for c in name_cols if c not in id_cols]
    others = [c for c in OTHER_IDENTIFIERS if c in df.columns and c not in cols]
    if not cols and not others:
        return df
    out = df.copy()
    if cols:
        labels = out[cols[0]].map(lambda v: pseudonym(v, "Patient", key))
        for c in cols:
            out[c] = labels
    for c in others:
        kind = OTHER_IDENTIFIERS[c]
        out[c] = out[c].map(lambda v, k=kind: pseudonym(v, k, key)) if kind else None
    return out


def pseudonymize_staff(df: pd.DataFrame, key: str) -> pd.DataFrame:
    """Each staff column's names as role pseudonyms ("Care manager 7F3A9C"); the frame itself when it has none."""
    cols = [c for c in STAFF_COLUMNS if c in df.columns]
    if not cols:
        return df
    out = df.copy()
    for c in cols:
        out[c] = out[c].map(lambda v, k=STAFF_COLUMNS[c]: pseudonym(v, k, key) if isinstance(v, str) and v else v)
    return out


# --------------------------------------------------------------------------- the admin's choice for staff
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
    log_admin_change(engine, username, f"meeting mode shows staff as {value}")
