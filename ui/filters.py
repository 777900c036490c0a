"""The sidebar filters every data page shares.

The chosen filters live in ``st.session_state`` (so they survive page
changes) and are mirrored to the URL query string (so a copied link opens
the same view).  A care manager is always scoped to their own patients: that
restriction is applied here, server-side, not left to the widget.
"""
from __future__ import annotations

import streamlit as st

from ccm_core import admin
from ccm_core.db import format_month, parse_month
from ccm_core.filters import Filters

from ._run import run_scope
from .data import cached
from .session import current_user

STATE_KEY = "_ccm_filters"
_W = {  # widget keys
    "months": "_f_months", "clinics": "_f_clinics", "practitioners": "_f_practitioners",
    "care_managers": "_f_care_managers", "payers": "_f_payers", "programs": "_f_programs",
}
# query parameter names (short, readable in a shared link)
_Q = {"from": "from", "to": "to", "clinics": "clinic", "practitioners": "practitioner",
      "care_managers": "cm", "payers": "payer", "programs": "program"}


def _ids(text: str | None) -> tuple[int, ...]:
    out = []
    for part in (text or "").split(","):
        part = part.strip()
        if part.isdigit():
            out.append(int(part))
    return tuple(out)


def _strs(text: str | None) -> tuple[str, ...]:
    return tuple(p.strip() for p in (text or "").split(",") if p.strip())


def _from_query(options: dict, default_month: int) -> dict:
    """Filters from a shared link; anything unknown or malformed is ignored with a note."""
    qp = st.query_params
    state = {"month_from": default_month, "month_to": default_month, "clinics": (), "practitioners": (),
             "care_managers": (), "payers": (), "programs": ("CCM",)}
    problems = []
    try:
        if qp.get("to"):
            state["month_to"] = parse_month(qp["to"])
            state["month_from"] = state["month_to"]
        if qp.get("from"):
            state["month_from"] = parse_month(qp["from"])
        if state["month_from"] > state["month_to"]:
            raise ValueError("the link's month range is backwards")
    except ValueError as exc:
        problems.append(str(exc))
        state["month_from"] = state["month_to"] = default_month
    valid = {"clinics": {i for i, _ in options["clinics"]}, "practitioners": {i for i, _ in options["practitioners"]},
             "care_managers": {i for i, _ in options["care_managers"]}}
    for key in ("clinics", "practitioners", "care_managers"):
        wanted = _ids(qp.get(_Q[key]))
        state[key] = tuple(i for i in wanted if i in valid[key])
    state["payers"] = tuple(p for p in _strs(qp.get("payer")) if p in options["payers"])
    programs = tuple(p for p in _strs(qp.get("program")) if p in options["programs"])
    state["programs"] = programs or ("CCM",)
    if problems:
        st.session_state["_ccm_filter_notice"] = "Ignored part of the link: " + "; ".join(problems)
    return state


def _to_query(state: dict) -> None:
    want = {"from": format_month(state["month_from"]), "to": format_month(state["month_to"]),
            "clinic": ",".join(map(str, state["clinics"])), "practitioner": ",".join(map(str, state["practitioners"])),
            "cm": ",".join(map(str, state["care_managers"])), "payer": ",".join(state["payers"]),
            "program": ",".join(state["programs"]) if tuple(state["programs"]) != ("CCM",) else ""}
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


def _label_lookup(pairs):
    labels = dict(pairs)
    return lambda i: labels.get(i, str(i))


def sidebar_filters() -> Filters:
    """Draw the filters in the sidebar and return them as a ccm_core Filters."""
    user = current_user()
    options = cached(admin.filter_options)
    months = options["months"] or [admin.default_report_month([])]
    default_month = admin.default_report_month(options["months"])
    if STATE_KEY not in st.session_state:
        st.session_state[STATE_KEY] = _from_query(options, default_month)
    state = st.session_state[STATE_KEY]
    # Months outside the data (an old link) are widened to what exists.
    month_choices = sorted(set(months) | {state["month_from"], state["month_to"]})

    target = run_scope().get("filter_slot") or st.sidebar
    with target:
        st.markdown("**Filters**")
        notice = st.session_state.pop("_ccm_filter_notice", None)
        if notice:
            st.caption(f":material/warning: {notice}")
        # Seed widgets from the stored state (widget state is dropped on pages that do not draw them).
        seeds = {"clinics": list(state["clinics"]),
                 "practitioners": list(state["practitioners"]), "care_managers": list(state["care_managers"]),
                 "payers": list(state["payers"]), "programs": list(state["programs"])}
        for key, value in seeds.items():
            if _W[key] not in st.session_state:
                st.session_state[_W[key]] = value
        if len(month_choices) > 1:
            # value= (not a session-state seed) is what makes this a range slider.
            m_from, m_to = st.select_slider("Months", options=month_choices, key=_W["months"],
                                            value=(state["month_from"], state["month_to"]),
                                            format_func=format_month,
                                            help="Month-level tiles report on the last month of the range.")
        else:
            m_from = m_to = month_choices[0]
            st.caption(f"Month: {format_month(m_to)}")
        clinics = st.multiselect("Clinic", [i for i, _ in options["clinics"]], key=_W["clinics"],
                                 format_func=_label_lookup(options["clinics"]), placeholder="All clinics")
        practs = st.multiselect("Billing practitioner", [i for i, _ in options["practitioners"]],
                                key=_W["practitioners"], format_func=_label_lookup(options["practitioners"]),
                                placeholder="All practitioners")
        if user is not None and user.role == "care_manager":
            cms = [user.staff_id] if user.staff_id is not None else [-1]
            st.caption("Care manager: your own patients")
        else:
            cms = st.multiselect("Care manager", [i for i, _ in options["care_managers"]], key=_W["care_managers"],
                                 format_func=_label_lookup(options["care_managers"]), placeholder="All care managers")
        payers = st.multiselect("Payer", options["payers"], key=_W["payers"], placeholder="All payers")
        programs = st.multiselect("Program", options["programs"], key=_W["programs"], placeholder="CCM")
    state = {"month_from": int(m_from), "month_to": int(m_to), "clinics": tuple(clinics),
             "practitioners": tuple(practs),
             "care_managers": tuple(cms),
             "payers": tuple(payers), "programs": tuple(programs) or ("CCM",)}
    st.session_state[STATE_KEY] = state
    _to_query(state)
    return Filters(month_from=state["month_from"], month_to=state["month_to"], clinic_ids=state["clinics"],
                   practitioner_ids=state["practitioners"], care_manager_ids=tuple(cms), payers=state["payers"],
                   programs=state["programs"])

