"""The sidebar filters every data page shares.

The chosen filters live in ``st.session_state`` (so they survive page
changes) and are mirrored to the URL query string (so a copied link opens
the same view).  A care manager is always scoped to their own patients: that
restriction is applied here, server-side, not left to the widget.
"""

from __future__ import annotations

import re

import streamlit as st

from ccm_core.engine.filters import Filters, default_report_month, filter_options
from ccm_core.storage.db import add_months, format_month
from ui.cache import cached
from ui.run_scope import run_scope
from ui.session import current_user

STATE_KEY = "_ccm_filters"
NOTICE_KEY = "_ccm_filter_notice"
_W = {  # widget keys
    "months": "_f_months",
    "clinics": "_f_clinics",
    "practitioners": "_f_practitioners",
    "care_managers": "_f_care_managers",
    "payers": "_f_payers",
    "programs": "_f_programs",
}
# query parameter names (short, readable in a shared link)
_Q = {
    "from": "from",
    "to": "to",
    "clinics": "clinic",
    "practitioners": "practitioner",
    "care_managers": "cm",
    "payers": "payer",
    "programs": "program",
}


MAX_SPAN_MONTHS = 36  # the longest month range any page computes (a link or the slider asks for more: cut)
_MONTH_RE = re.compile(r"[0-9]{4}-[0-9]{2}")
_ID_RE = re.compile(r"[0-9]{1,9}")
_MAX_VALUE_LENGTH = 2000  # a query value longer than this is not a filter


def _month(text: str | None) -> int | None:
    """A YYYY-MM value (ASCII digits only, month 1-12) as YYYYMM, else None."""
    if not text or not _MONTH_RE.fullmatch(text):
        return None
    y, m = int(text[:4]), int(text[5:])
    return y * 100 + m if 1 <= m <= 12 else None


def _parts(text: str | None) -> list[str]:
    if not text or len(text) > _MAX_VALUE_LENGTH:
        return []
    return [p.strip() for p in text.split(",") if p.strip()]


def bound_months(
    month_from: int, month_to: int, data_months: list[int], default_month: int
) -> tuple[int, int, list[str]]:
    """Keep a month range inside the data's months and at most MAX_SPAN_MONTHS long; the notices say what
    changed in plain words (they never repeat what was asked for)."""
    notices = []
    low, high = (min(data_months), max(data_months)) if data_months else (default_month, default_month)
    if month_from > month_to:
        notices.append("The link's month range was backwards; showing the default month.")
        return default_month, default_month, notices
    if month_from < low or month_to > high:
        month_from, month_to = max(month_from, low), min(month_to, high)
        if month_from > month_to:  # entirely outside the data
            month_from = month_to = default_month
        notices.append(
            f"Months outside the data were left out (the data covers {format_month(low)} to {format_month(high)})."
        )
    if month_diff(month_from, month_to) + 1 > MAX_SPAN_MONTHS:
        month_from = add_months(month_to, -(MAX_SPAN_MONTHS - 1))
        notices.append(f"A range longer than {MAX_SPAN_MONTHS} months was cut to the last {MAX_SPAN_MONTHS}.")
    return month_from, month_to, notices


def month_diff(a: int, b: int) -> int:
    return (b // 100 - a // 100) * 12 + (b % 100 - a % 100)


def validate_link(query: dict, options: dict, default_month: int) -> tuple[dict, list[str]]:
    """Filters from a shared link's query values, each checked against what exists.

    Anything malformed, unknown or out of range is replaced by its default, and a plain notice says so;
    nothing here raises on user input and no notice repeats the input (so nothing from a URL is ever
    rendered as markdown)."""

    def get(name: str) -> str | None:
        value = query.get(name)
        if isinstance(value, list):
            value = value[-1] if value else None
        return value if isinstance(value, str) else None

    state = {
        "month_from": default_month,
        "month_to": default_month,
        "clinics": (),
        "practitioners": (),
        "care_managers": (),
        "payers": (),
        "programs": ("CCM",),
    }
    notices: list[str] = []
    raw_from, raw_to = get("from"), get("to")
    m_to = _month(raw_to) if raw_to else default_month
    m_from = _month(raw_from) if raw_from else m_to
    if m_from is None or m_to is None:
        notices.append(
            "The link's months were not understood (they must look like 2025-10); showing the default month."
        )
    else:
        m_from, m_to, month_notices = bound_months(m_from, m_to, options.get("months") or [], default_month)
        state["month_from"], state["month_to"] = m_from, m_to
        notices.extend(month_notices)
    labels = {"clinics": "clinic", "practitioners": "practitioner", "care_managers": "care manager"}
    for key in ("clinics", "practitioners", "care_managers"):
        valid = {i for i, _ in options[key]}
        parts = _parts(get(_Q[key]))
        chosen = tuple(dict.fromkeys(int(p) for p in parts if _ID_RE.fullmatch(p) and int(p) in valid))
        if len(chosen) < len(parts) or (get(_Q[key]) and not parts):
            notices.append(f"The link named a {labels[key]} that does not exist; it was left out.")
        state[key] = chosen
    for key, name, default in (("payers", "payer", ()), ("programs", "program", ("CCM",))):
        parts = _parts(get(name))
        chosen = tuple(dict.fromkeys(p for p in parts if p in options[key]))
        if len(chosen) < len(parts) or (get(name) and not parts):
            notices.append(f"The link named a {name} that does not exist; it was left out.")
        state[key] = chosen or default
    return state, notices


def _from_query(options: dict, default_month: int) -> dict:
    """Filters from a shared link; anything unknown or malformed is replaced by its default with a notice."""
    state, notices = validate_link(st.query_params.to_dict(), options, default_month)
    if notices:
        st.session_state[NOTICE_KEY] = " ".join(notices)
    return state


def _to_query(state: dict) -> None:
    want = {
        "from": format_month(state["month_from"]),
        "to": format_month(state["month_to"]),
        "clinic": ",".join(map(str, state["clinics"])),
        "practitioner": ",".join(map(str, state["practitioners"])),
        "cm": ",".join(map(str, state["care_managers"])),
        "payer": ",".join(state["payers"]),
        "program": ",".join(state["programs"]) if tuple(state["programs"]) != ("CCM",) else "",
    }
    for name, value in want.items():
        if value:
            if st.query_params.get(name) != value:
                st.query_params[name] = value
        elif name in st.query_params:
            del st.query_params[name]


def filter_query_params() -> dict[str, str]:
    """The current filters as query parameters, for st.page_link(..., query_params=...)."""
    state = st.session_state.get(STATE_KEY)
    if not state:
        return {}
    out = {"from": format_month(state["month_from"]), "to": format_month(state["month_to"])}
    for key in ("clinics", "practitioners", "care_managers", "payers"):
        if state[key]:
            out[_Q[key]] = ",".join(map(str, state[key]))
    if tuple(state["programs"]) != ("CCM",):
        out["program"] = ",".join(state["programs"])
    if st.session_state.get("meeting_mode"):
        out["meeting"] = "1"
    return out


def _label_lookup(pairs, staff_kind: str | None = None):
    labels = dict(pairs)
    if staff_kind:  # meeting mode with staff pseudonyms: the options read as they do in tables and charts
        from ui.meeting import staff_label

        labels = {k: staff_label(v, staff_kind) for k, v in labels.items()}
    return lambda i: labels.get(i, str(i))


def sidebar_filters() -> Filters:
    """Draw the filters in the sidebar and return them as a ccm_core Filters."""
    user = current_user()
    options = cached(filter_options)
    months = options["months"] or [default_report_month([])]
    default_month = default_report_month(options["months"])
    if STATE_KEY not in st.session_state:
        st.session_state[STATE_KEY] = _from_query(options, default_month)
    state = st.session_state[STATE_KEY]
    # The slider offers the data's months only; a stored range outside them (data replaced since) or a
    # choice longer than the maximum span is brought back inside, with a notice.
    month_choices = sorted(set(months))
    picked = st.session_state.get(_W["months"])
    if isinstance(picked, (tuple, list)) and len(picked) == 2:
        p_from, p_to, cut = bound_months(int(picked[0]), int(picked[1]), month_choices, default_month)
        if cut:  # re-seed the slider from the bounded range (value= below)
            del st.session_state[_W["months"]]
            state = {**state, "month_from": p_from, "month_to": p_to}
            st.session_state[STATE_KEY] = state
            st.session_state[NOTICE_KEY] = " ".join(cut)
    s_from, s_to, cut = bound_months(state["month_from"], state["month_to"], month_choices, default_month)
    if cut:
        state = {**state, "month_from": s_from, "month_to": s_to}
        st.session_state[STATE_KEY] = state
        st.session_state.pop(_W["months"], None)

    target = run_scope().get("filter_slot") or st.sidebar
    with target:
        st.markdown("**Filters**")
        # Shown until the user changes a filter (a component's rerun must not swallow it).
        notice = st.session_state.get(NOTICE_KEY)
        if notice:  # built from our own words and formatted months only, never from the URL
            st.caption(f":material/warning: {notice}")
        # Seed widgets from the stored state (widget state is dropped on pages that do not draw them).
        seeds = {
            "clinics": list(state["clinics"]),
            "practitioners": list(state["practitioners"]),
            "care_managers": list(state["care_managers"]),
            "payers": list(state["payers"]),
            "programs": list(state["programs"]),
        }
        for key, value in seeds.items():
            if _W[key] not in st.session_state:
                st.session_state[_W[key]] = value
        if len(month_choices) > 1:
            # value= (not a session-state seed) is what makes this a range slider.
            m_from, m_to = st.select_slider(
                "Months",
                options=month_choices,
                key=_W["months"],
                value=(state["month_from"], state["month_to"]),
                format_func=format_month,
                help="Month-level tiles report on the last month of the range.",
            )
        else:
            m_from = m_to = month_choices[0]
            st.caption(f"Month: {format_month(m_to)}")
        clinics = st.multiselect(
            "Clinic",
            [i for i, _ in options["clinics"]],
            key=_W["clinics"],
            format_func=_label_lookup(options["clinics"]),
            placeholder="All clinics",
        )
        practs = st.multiselect(
            "Billing practitioner",
            [i for i, _ in options["practitioners"]],
            key=_W["practitioners"],
            format_func=_label_lookup(options["practitioners"], "Practitioner"),
            placeholder="All practitioners",
        )
        if user is not None and user.role == "care_manager":
            cms = [user.staff_id] if user.staff_id is not None else [-1]
            st.caption("Care manager: your own patients")
        else:
            cms = st.multiselect(
                "Care manager",
                [i for i, _ in options["care_managers"]],
                key=_W["care_managers"],
                format_func=_label_lookup(options["care_managers"], "Care manager"),
                placeholder="All care managers",
            )
        payers = st.multiselect("Payer", options["payers"], key=_W["payers"], placeholder="All payers")
        programs = st.multiselect("Program", options["programs"], key=_W["programs"], placeholder="CCM")
    state = {
        "month_from": int(m_from),
        "month_to": int(m_to),
        "clinics": tuple(clinics),
        "practitioners": tuple(practs),
        "care_managers": tuple(cms),
        "payers": tuple(payers),
        "programs": tuple(programs) or ("CCM",),
    }
    if st.session_state.get(STATE_KEY) not in (None, state):
        st.session_state.pop(NOTICE_KEY, None)
    st.session_state[STATE_KEY] = state
    _to_query(state)
    return Filters(
        month_from=state["month_from"],
        month_to=state["month_to"],
        clinic_ids=state["clinics"],
        practitioner_ids=state["practitioners"],
        care_manager_ids=tuple(cms),
        payers=state["payers"],
        programs=state["programs"],
    )
