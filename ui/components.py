"""Shared building blocks so every page looks and behaves the same.

``kpi_tile`` shows one number with its change vs last month and vs the last
meeting and the written definition one click away; ``friendly_errors`` keeps
tracebacks off the screen (they go to the server log instead).
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterator
from typing import Any

import streamlit as st
from sqlalchemy.exc import OperationalError, SQLAlchemyError

from ccm_core.kpis.definitions import KpiDefinition, KpiResult
from ui.meeting import meeting_mode, suppress_small
from ui.suppression import as_number, rate_reveals_small

log = logging.getLogger("ccm.ui")

_UNIT_OF_DEFINITION = {"count": "count", "rate": "rate", "minutes": "minutes", "dollars": "dollars", "days": "days"}


def _number(v: Any) -> float | None:
    return as_number(v.value if isinstance(v, KpiResult) else v)


def _rate_from_small_counts(value: Any) -> bool:
    """A KPI rate over counts whose numerator, denominator or complement is 1-10, in meeting mode."""
    if not meeting_mode() or not isinstance(value, KpiResult) or value.extra.get("by") == "dollars":
        return False
    return rate_reveals_small(value.numerator, value.denominator)


def format_value(value: Any, unit: str = "count") -> str:
    """How a KPI value reads on screen; None (empty denominator) reads "n/a"."""
    v = _number(value)
    if v is None:
        return "n/a"
    if unit == "rate":
        return f"{v * 100:.1f}%"
    if unit == "dollars":
        return f"${v:,.0f}" if abs(v) >= 100 else f"${v:,.2f}"  # cents only for fee-sized amounts
    if unit == "minutes":  # the label says "minutes": a bare number stays readable in a narrow tile
        return f"{v:,.1f}"
    if unit == "days":
        return f"{v:,.1f}"
    if meeting_mode():
        s = suppress_small(int(round(v)))
        if s == "<11":
            return s
    return f"{v:,.0f}" if float(v).is_integer() else f"{v:,.1f}"


def format_delta(now: Any, then: Any, unit: str = "count") -> str | None:
    """Signed change in the tile's unit (rates in percentage points); None if either side is missing; a change
    that rounds to zero reads "0.0 pp", never "-0.0 pp"."""
    text = _format_delta(now, then, unit)
    if text is None:
        return None
    from ccm_core.kpis.weekly import no_negative_zero

    return no_negative_zero(text)


def _format_delta(now: Any, then: Any, unit: str = "count") -> str | None:
    a, b = _number(now), _number(then)
    if a is None or b is None:
        return None
    d = a - b
    if unit == "rate":
        return f"{d * 100:+.1f} pp"
    if unit == "dollars":
        return f"{'+' if d >= 0 else '-'}${abs(d):,.0f}"
    if unit == "minutes":
        return f"{d:+,.1f} min"
    if unit == "days":
        return f"{d:+,.1f} days"
    if meeting_mode() and (0 < abs(a) < 11 or 0 < abs(b) < 11):
        return None  # a difference of two small cells would reveal them
    return f"{d:+,.0f}" if float(d).is_integer() else f"{d:+,.1f}"


def definition_popover(definition: KpiDefinition | None, label: str = "Definition", compact: bool = False) -> None:
    """What this number means (numerator, denominator, exclusions, source), one click away."""
    if definition is None:
        return
    if compact:  # an icon-only button that fits in a KPI tile
        box = st.popover(":material/info:", type="tertiary", help=f"Definition of {definition.name}")
    else:
        box = st.popover(label, icon=":material/info:", type="tertiary")
    with box:
        st.markdown(definition.as_markdown())


def kpi_tile(
    label: str,
    value: Any,
    unit: str | None = None,
    *,
    previous: Any = None,
    last_meeting: Any = None,
    definition: KpiDefinition | None = None,
    better: str = "higher",
    help: str | None = None,
    meeting_label: str = "vs last meeting",
) -> None:
    """One KPI: value, arrow delta vs last month, the change since the last meeting, and its definition.

    ``value``/``previous``/``last_meeting`` may be numbers or KpiResults (the
    definition and unit then come from the result).  ``better`` ("higher",
    "lower" or "neutral") colours the arrow.
    """
    if isinstance(value, KpiResult):
        definition = definition or value.definition
    if unit is None:
        unit = _UNIT_OF_DEFINITION.get(getattr(definition, "unit", "count"), "count")
    hidden = unit == "rate" and _rate_from_small_counts(value)
    if hidden:  # 50% of 12 offered gives back 6: in meeting mode such a rate (and its changes) is not shown
        value, previous, last_meeting = None, None, None
        help = "Hidden in meeting mode: this rate rests on a count under 11."
    delta = format_delta(value, previous, unit) if previous is not None else None
    delta_color = "normal" if better == "higher" else ("inverse" if better == "lower" else "off")
    with st.container(border=True):
        st.metric(
            label, "<11" if hidden else format_value(value, unit), delta=delta, delta_color=delta_color, help=help
        )
        since = format_delta(value, last_meeting, unit) if last_meeting is not None else None
        bottom_left, bottom_right = st.columns([3, 1], vertical_alignment="center", gap="small")
        with bottom_left:
            st.caption(f"{meeting_label}: {since or '—'}")
        with bottom_right:
            definition_popover(definition, compact=True)


def empty_state(title: str, hint: str = "", icon: str = ":material/inbox:") -> None:
    """A calm 'nothing here' box that says what to change, instead of an empty chart."""
    with st.container(border=True):
        st.markdown(f"{icon} **{title}**")
        if hint:
            st.caption(hint)


@contextlib.contextmanager
def friendly_errors(what: str = "this view") -> Iterator[None]:
    """Turn an unexpected error into a short message; the traceback goes to the server log only.

    Streamlit's stop/rerun signals are BaseExceptions and pass through untouched.
    """
    try:
        yield
    except OperationalError:
        log.exception("database error while showing %s", what)
        st.error(
            "The database could not be reached or is not set up. Check the database URL and that "
            "`python -m ccm_core init-db` has been run, then reload.",
            icon=":material/database:",
        )
    except (ValueError, KeyError) as exc:
        log.exception("bad input while showing %s", what)
        from ui.text import md  # the message can carry text from data or a URL: shown as text, never markdown

        st.error(f"Could not show {what}: {md(exc)}", icon=":material/error:")
    except SQLAlchemyError:
        log.exception("database error while showing %s", what)
        st.error(
            f"A database error stopped {what} from loading. The details are in the server log.",
            icon=":material/database:",
        )
    except Exception as exc:  # noqa: BLE001 - the whole point: no traceback on screen
        from ui.cache import DatabaseNotReady

        if isinstance(exc, DatabaseNotReady):
            st.error(str(exc), icon=":material/database:")
            return
        log.exception("unexpected error while showing %s", what)
        st.error(
            f"Something went wrong while showing {what}. The details were written to the server log.",
            icon=":material/error:",
        )
