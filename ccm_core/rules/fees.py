"""The fee schedule as the Admin page shows and edits it: the year shown, each code's fee with its
status, and a practice's override of an UNVERIFIED amount (a ``rules.fee.<code>.<year>`` setting the
rules read back, see ``ccm_core.rules.load``)."""

from __future__ import annotations

import datetime as dt

import pandas as pd
from sqlalchemy import Engine

from ccm_core import rules
from ccm_core.security.access_log import log_admin_change
from ccm_core.storage import stored as pm_store
from ccm_core.storage.settings import get_setting, put_setting

FEE_YEAR_KEY = "app.fee_schedule_year"


def fee_schedule_year(engine: Engine, today: dt.date | None = None) -> int:
    """The fee-schedule year the Admin page shows and edits (defaults to this calendar year)."""
    with engine.connect() as conn:
        value = get_setting(conn, FEE_YEAR_KEY)
    try:
        return int(value) if value else (today or dt.date.today()).year
    except ValueError:
        return (today or dt.date.today()).year


def set_fee_schedule_year(engine: Engine, year: int, username: str) -> None:
    if not 2000 <= int(year) <= 2100:
        raise ValueError(f"Fee schedule year {year} is out of range.")
    with engine.begin() as conn:
        put_setting(conn, FEE_YEAR_KEY, str(int(year)))
    log_admin_change(engine, username, f"fee schedule year set to {year}")


def fee_schedule(engine: Engine, year: int) -> pd.DataFrame:
    """Each billing code's fee for ``year`` with its status, including database overrides."""
    with engine.connect() as conn:
        rs = rules.load(conn)
    out = []
    for code in rs.codes.values():
        entry = rs.fee_entry(code.code, year)
        out.append(
            {
                "code": code.code,
                "program": code.family,
                "description": code.description,
                "amount": entry.amount if entry else None,
                "status": entry.status if entry else "no fee row",
                "note": entry.note if entry else "",
            }
        )
    return pd.DataFrame(out)


def set_fee_override(engine: Engine, code: str, year: int, amount: float, username: str) -> None:
    """A practice confirms or corrects an UNVERIFIED amount; caches go stale via the data version."""
    rs = rules.load()
    if code not in rs.codes:
        raise ValueError(f"Unknown billing code {code!r}.")
    if not 0 <= float(amount) < 10_000:
        raise ValueError("Fee amount must be between 0 and 10,000 dollars.")
    with engine.begin() as conn:
        put_setting(conn, f"{rules.SETTING_PREFIX}fee.{code}.{int(year)}", f"{float(amount):.2f}")
        pm_store.record_write(conn)  # expected amounts change with the fee
    pm_store.vacuum(engine)
    log_admin_change(engine, username, f"fee override {code} {year} = {float(amount):.2f}")
