"""Audit: pull a reproducible sample of billed patient-months, walk each one against the checklist with its
evidence, record findings, track pass rates across samples, and export the evidence packet.

Everything is computed by ``ccm_core.audit.checklist`` / ``ccm_core.audit.sampling`` / ``ccm_core.io.exports``; this page only
draws.  Role checks are repeated at every action (pull, record, export), not just at the button, and every
patient-month view, export and sample pull goes to the access log.
"""

from __future__ import annotations

import streamlit as st

from ui.session import require_page

user = require_page("audit")  # before any data is read

import datetime as dt  # noqa: E402
import json  # noqa: E402

import altair as alt  # noqa: E402
import pandas as pd  # noqa: E402

from ccm_core.audit import checklist as audit  # noqa: E402
from ccm_core.audit import sampling  # noqa: E402
from ccm_core.engine.filters import filter_options  # noqa: E402
from ccm_core.io import exports  # noqa: E402
from ccm_core.security.access_log import log_access  # noqa: E402
from ccm_core.storage.db import format_month  # noqa: E402
from ui import charts, layout  # noqa: E402
from ui.cache import cached, get_engine  # noqa: E402
from ui.components import empty_state, friendly_errors  # noqa: E402
from ui.exports import XLSX_MIME, deferred_download, download_buttons  # noqa: E402
from ui.filters import sidebar_filters  # noqa: E402
from ui.meeting import masks_identifiers, meeting_mode, present, pseudonym  # noqa: E402
from ui.session import can  # noqa: E402
from ui.text import md  # noqa: E402

PAGE = "audit"
PICK_KEY = "audit_sample_pick"
PENDING_KEY = "_audit_sample_pending"
VIEWED_KEY = "_audit_viewed_items"
OPEN_KEY = "_audit_open_sample"  # the sample on screen, kept when the picker is cleared (Esc)
CURRENT_POS_KEY = "_audit_pos"  # + sample id: the patient-month on screen
RESULT_BADGE = {
    "pass": ":green-badge[:material/check: pass]",
    "fail": ":red-badge[:material/close: fail]",
    "na": ":gray-badge[n/a]",
}


# --------------------------------------------------------------------------- cached computations (data-version keyed)
def sample_checklist_frame(conn, pairs: tuple[tuple[int, int], ...]) -> pd.DataFrame:
    return audit.checklist_for_months(conn, list(pairs))


def sample_evidence(conn, pairs: tuple[tuple[int, int], ...]) -> dict:
    return audit.evidence(conn, list(pairs))


def sample_headers(conn, patient_ids: tuple[int, ...]) -> pd.DataFrame:
    return audit.patient_headers(conn, patient_ids)


# --------------------------------------------------------------------------- helpers
def masked() -> bool:
    return masks_identifiers(user)


def who(pid: int, heads: pd.DataFrame) -> str:
    if masked() or pid not in heads.index:
        return pseudonym(pid)
    h = heads.loc[pid]
    return f"{h['patient_name']} (MRN {h['mrn']})"


def log_once(key: tuple, detail: str, patient_count: int = 1) -> None:
    """One 'view' row per patient-month opened in this session (not one per rerun)."""
    seen = st.session_state.setdefault(VIEWED_KEY, set())
    if key in seen:
        return
    seen.add(key)
    log_access(
        get_engine(),
        username=user.username,
        role=user.role,
        action="view",
        page=PAGE,
        detail=detail,
        patient_count=patient_count,
    )


def open_sample(sample_id: int) -> None:
    """Select a sample on the next run (the picker widget cannot be changed after it is drawn)."""
    st.session_state[PENDING_KEY] = int(sample_id)


# --------------------------------------------------------------------------- pull
def draw_pull(f, months: list[int]) -> None:
    if not can(user, "pull_sample"):
        st.caption("Your role may review samples but not pull new ones.")
        return
    default_to = f.month_to if f.month_to in months else months[-1]
    default_from = f.month_from if f.month_from in months else months[0]
    with st.form("audit_pull", border=False):
        c1, c2, c3, c4 = st.columns([1, 1, 1, 1])
        m_from = c1.selectbox("From", months, index=months.index(default_from), format_func=format_month)
        m_to = c2.selectbox("To", months, index=months.index(default_to), format_func=format_month)
        size = c3.number_input("Sample size", min_value=1, max_value=1000, value=20, step=1)
        seed = c4.number_input(
            "Seed",
            min_value=0,
            max_value=2**31 - 1,
            value=int(dt.date.today().strftime("%Y%m%d")),
            step=1,
            help="Same period, size, strata and seed = the same sample, every time.",
        )
        strata = st.multiselect(
            "Stratify by",
            list(sampling.STRATA),
            format_func=lambda k: sampling.STRATA[k],
            help="Proportional allocation with at least one patient-month per stratum.",
        )
        population = (
            st.segmented_control(
                "Population",
                list(POPULATION_LABELS),
                default="billed",
                format_func=POPULATION_LABELS.get,
                help="Billed: claims already out (retrospective). Pre-bill: months whose minutes support a code and "
                "are not billed yet, checked before the claim goes out (prospective).",
            )
            or "billed"
        )
        c5, c6 = st.columns([1, 2], vertical_alignment="bottom")
        flagged = c5.toggle(
            "Flagged months only",
            help="Only patient-months where the engine found something "
            "(billing finding, excluded minutes, a failed "
            "prerequisite).",
        )
        name = c6.text_input("Name (optional)", max_chars=200)
        submitted = st.form_submit_button("Pull and save sample", type="primary", icon=":material/casino:")
    if not submitted:
        return
    if not can(user, "pull_sample"):  # re-checked at the action itself
        st.error("Your role may not pull samples.")
        return
    try:
        request = sampling.SampleRequest(
            month_from=int(m_from),
            month_to=int(m_to),
            size=int(size),
            seed=int(seed),
            strata=tuple(strata),
            flagged_only=bool(flagged),
            population=population,
            filters=f.with_months(int(m_from), int(m_to)) if m_from <= m_to else None,
        )
        engine = get_engine()
        with engine.begin() as conn:
            smp = sampling.pull_sample(conn, request)
            if smp.items.empty:
                st.warning(
                    f"No {POPULATION_LABELS[population].lower()} CCM patient-months match that period and "
                    "these filters: nothing to sample."
                )
                return
            sid = sampling.save_sample(conn, smp, user.username, name)
    except ValueError as exc:
        st.error(str(exc))
        return
    log_access(
        get_engine(),
        username=user.username,
        role=user.role,
        action="sample_pull",
        page=PAGE,
        detail=f"sample #{sid}: {json.dumps(request.to_json(), sort_keys=True)}",
        patient_count=int(smp.items["patient_id"].nunique()),
    )
    open_sample(sid)
    st.toast(
        f"Sample #{sid} saved: {len(smp.items)} of {smp.population_size} patient-months.",
        icon=":material/check_circle:",
    )
    st.rerun()


# --------------------------------------------------------------------------- review
def draw_review(sample: sampling.Sample) -> None:
    pairs = tuple(sample.pairs())
    cl = cached(sample_checklist_frame, pairs)
    with get_engine().connect() as conn:
        merged = sampling.sample_checklist(conn, sample, cl)
    prog = sampling.sample_progress(merged)
    heads = cached(sample_headers, tuple(sorted({p for p, _ in pairs}))).set_index("patient_id")

    r = sample.request
    st.caption(
        f"Sample #{sample.id} · {format_month(r.month_from)} to {format_month(r.month_to)} · seed {r.seed} · "
        f"{len(sample.items)} of {sample.population_size} patient-months"
        + (f" · strata: {', '.join(r.strata)}" if r.strata else "")
        + f" · pulled by {md(sample.created_by)}"
    )
    cols = st.columns(4)
    cols[0].metric("Reviewed", f"{prog['reviewed']} / {prog['items']}")
    cols[1].metric(
        "Audited pass rate",
        "n/a" if prog["pass_rate"] is None else f"{prog['pass_rate']:.0%}",
        help="Reviewed patient-months where no item's final result (after the auditor's verdict) is a fail.",
    )
    cols[2].metric(
        "Checklist pass rate",
        "n/a" if prog["engine_pass_rate"] is None else f"{prog['engine_pass_rate']:.0%}",
        help="Sampled patient-months that pass every item as computed, before review.",
    )
    cols[3].metric(
        "Auditor agreement",
        "n/a" if prog["agreement_rate"] is None else f"{prog['agreement_rate']:.0%}",
        help="Findings where the auditor agreed with the checklist.",
    )
    st.progress(prog["reviewed"] / prog["items"] if prog["items"] else 0.0)

    fails = merged[merged["result"] == "fail"].groupby("position")["item_key"].count()
    reviewed = merged.groupby("position")["verdict"].apply(lambda v: v.notna().all())
    labels = {}
    for it in sample.items.itertuples():
        n_fail = int(fails.get(it.position, 0))
        mark = "✔ reviewed" if reviewed.get(it.position, False) else "to review"
        labels[int(it.position)] = (
            f"{it.position}. {who(int(it.patient_id), heads)} · {format_month(it.service_month)}"
            f" · {n_fail} fail{'s' if n_fail != 1 else ''} · {mark}"
        )
    # Failed patient-months first (most fails first), then the rest in sample order.
    order = sorted(labels, key=lambda pos_: (-int(fails.get(pos_, 0)), pos_))
    # The picker's labels carry every sampled patient (name and MRN unless masked) to the browser: the
    # access log counts all of them, not only the patient-month opened below.
    log_once(
        (sample.id, "picker", masked()),
        f"audit sample #{sample.id}: {len(labels)} patient-months listed, "
        f"{'pseudonymised' if masked() else 'identified'}",
        patient_count=int(sample.items["patient_id"].nunique()),
    )
    # The open position lives in our own state; the widget key carries the labels (so a save shows
    # "reviewed" at once) and the masking state (switching meeting mode on makes a new picker rather than
    # leave a name on the shared screen).
    pos_key = f"{CURRENT_POS_KEY}_{sample.id}"
    if st.session_state.get(pos_key) not in labels:
        st.session_state[pos_key] = order[0]
    widget_key = (
        f"audit_pos_{sample.id}_{'masked' if masked() else 'named'}_"
        f"{abs(hash(tuple(labels[p_] for p_ in order))) % 10**8}_{st.session_state[pos_key]}"
    )

    def picked_pos() -> None:
        st.session_state[pos_key] = st.session_state[widget_key]

    def step(delta: int) -> None:
        i = order.index(st.session_state[pos_key])
        st.session_state[pos_key] = order[(i + delta) % len(order)]

    c_pick, c_prev, c_next = st.columns([4, 1, 1], vertical_alignment="bottom")
    pos = c_pick.selectbox(
        "Patient-month (failed first)",
        order,
        format_func=labels.get,
        key=widget_key,
        index=order.index(st.session_state[pos_key]),
        on_change=picked_pos,
    )
    c_prev.button(
        "Previous",
        icon=":material/chevron_left:",
        on_click=step,
        args=(-1,),
        width="stretch",
        shortcut="P",
        key=f"audit_prev_{sample.id}",
        help="Previous patient-month (key P)",
    )
    c_next.button(
        "Next",
        icon=":material/chevron_right:",
        on_click=step,
        args=(1,),
        width="stretch",
        shortcut="N",
        key=f"audit_next_{sample.id}",
        help="Next patient-month (key N)",
    )
    pos = st.session_state[pos_key]
    item = sample.items[sample.items["position"] == pos].iloc[0]
    pid, month = int(item["patient_id"]), int(item["service_month"])
    rows = merged[merged["position"] == pos].copy()

    shown = present(rows.assign(patient_id=pid), user, PAGE, id_cols=("patient_id",), table_key=f"review_{sample.id}")
    if shown is None:  # hidden in meeting mode until revealed
        return
    log_once((sample.id, pos), f"audit sample #{sample.id} item {pos}: patient {pid}, {format_month(month)}")

    st.subheader(f"{md(who(pid, heads))}, {format_month(month)}", anchor=False)
    if not masked() and pid in heads.index:
        h = heads.loc[pid]
        st.caption(
            f"{md(h['payer'])} · {md(h['clinic'])} · billing practitioner {md(h['billing_practitioner'])} · "
            f"care manager {md(h['care_manager'])} · stratum {md(item['stratum'])}"
        )
    # Full width, one under the other: at 1366 px a half-width evidence panel cut off Note, Entered and Onset.
    draw_checklist_and_findings(sample, int(item["item_id"]), rows, order)
    st.markdown("**Evidence**")
    ev = cached(sample_evidence, ((pid, month),))
    draw_evidence(audit.evidence_for(ev, pid, month))


def _finding_text(r) -> str:
    if r.verdict is None or pd.isna(r.verdict):
        return ""
    comment = "" if r.comment is None or pd.isna(r.comment) else f": {md(r.comment)}"
    return f"Finding by {md(r.auditor)}: **{md(r.verdict)}**{comment}"


def _forget_answers(sample_id: int, item_id: int, keys) -> None:
    """Drop the radio / comment widget state of an item so the next run shows the saved answers."""
    for key in keys:
        for prefix in ("verdict", "comment"):
            st.session_state.pop(f"{prefix}_{sample_id}_{item_id}_{key}", None)


def draw_checklist_and_findings(sample, item_id: int, rows: pd.DataFrame, order: list[int] | None = None) -> None:
    """Each item with its result and evidence; auditors answer agree / disagree in the same list (fails first)."""
    rows = rows.assign(_fail=(rows["result"] != "fail").astype(int)).sort_values("_fail", kind="stable")
    recorder = can(user, "record_finding")
    holder = st.form(f"audit_findings_{sample.id}_{item_id}", border=False) if recorder else st.container()
    choices = {}
    with holder:
        st.markdown(
            "**Checklist**"
            + (" · agree or disagree with each result (a disagreement needs a comment)" if recorder else "")
        )
        for r in rows.itertuples():
            with st.container(border=True):
                st.markdown(f"{RESULT_BADGE.get(r.result, r.result)} **{r.item}**")
                st.caption(md(r.evidence))  # evidence quotes notes from the time log
                if recorder:
                    c1, c2 = st.columns([2, 3], vertical_alignment="center")
                    current = None if r.verdict is None or pd.isna(r.verdict) else r.verdict
                    verdict = c1.radio(
                        r.item,
                        sampling.VERDICTS,
                        horizontal=True,
                        label_visibility="collapsed",
                        index=None if current is None else sampling.VERDICTS.index(current),
                        key=f"verdict_{sample.id}_{item_id}_{r.item_key}",
                    )
                    comment = c2.text_input(
                        "Comment",
                        value="" if r.comment is None or pd.isna(r.comment) else r.comment,
                        label_visibility="collapsed",
                        placeholder="comment",
                        key=f"comment_{sample.id}_{item_id}_{r.item_key}",
                    )
                    choices[r.item_key] = (verdict, comment, r.result)
                elif _finding_text(r):
                    st.markdown(_finding_text(r))
        if not recorder:
            st.caption("Findings are recorded by auditors; your role can read them.")
            return
        c1, c2 = st.columns(2)
        agree_all = c1.form_submit_button("Agree with all unanswered", icon=":material/done_all:", width="stretch")
        save = c2.form_submit_button("Save findings", type="primary", icon=":material/save:", width="stretch")
    if not (agree_all or save):
        return
    if not can(user, "record_finding"):  # re-checked at the action itself
        st.error("Your role may not record findings.")
        return
    todo, problems = [], []
    for key, (verdict, comment, result) in choices.items():
        if verdict is None and agree_all:
            verdict = "agree"
        if verdict is None:
            continue
        if verdict == "disagree" and not (comment or "").strip():
            problems.append(audit.ITEM_BY_KEY[key].title)
        todo.append((key, verdict, comment, result))
    if problems:
        st.error("Nothing saved: say why you disagree on " + ", ".join(problems) + ".")
        return
    if not todo:
        st.info("Choose agree or disagree for at least one item.")
        return
    try:
        with get_engine().begin() as conn:
            for key, verdict, comment, result in todo:
                sampling.record_finding(conn, item_id, key, verdict, user.username, comment, result)
    except ValueError as exc:
        st.error(f"Nothing saved: {md(exc)}")
        return
    _forget_answers(sample.id, item_id, choices)
    st.toast(f"Saved {len(todo)} finding{'s' if len(todo) != 1 else ''}.", icon=":material/check_circle:")
    # Saving moves on: to the next patient-month in the list that still has unanswered items.
    done_now = {k for k, *_ in todo} | {k for k, (v, _, _) in choices.items() if v is not None}
    if order and set(choices) <= done_now:
        pos_key = f"{CURRENT_POS_KEY}_{sample.id}"
        with get_engine().connect() as conn:
            merged = sampling.sample_checklist(conn, sample)
        open_ = set(merged[merged["verdict"].isna()]["position"].astype(int))
        here = st.session_state.get(pos_key)
        after = order[order.index(here) + 1 :] + order[: order.index(here)] if here in order else order
        nxt = next((p_ for p_ in after if p_ in open_), None)
        if nxt is not None:
            st.session_state[pos_key] = nxt
    st.rerun()


EVIDENCE_COLUMNS = {
    "conditions": {
        "icd10": "ICD-10",
        "chronic_condition": "Chronic condition",
        "onset_date": "Onset",
        "resolved_date": "Resolved",
    },
    "consents": {
        "program": "Program",
        "decision": "Decision",
        "consent_date": "Date",
        "method": "Method",
        "practitioner_id": "Practitioner #",
        "disclosed_cost_sharing": "Cost-sharing",
        "disclosed_one_practitioner": "One practitioner",
        "disclosed_right_to_stop": "Right to stop",
        "revoked_date": "Revoked",
    },
    "care_plans": {
        "version": "Version",
        "established_date": "Established",
        "reviewed_date": "Reviewed",
        "shared_with_patient_date": "Shared",
        "signed_by_practitioner_id": "Signed by #",
        "covers_all_conditions": "All conditions",
        "has_measurable_goals": "Goals",
        "electronic_access": "Electronic",
    },
    "visits": {"visit_date": "Visit", "cpt_code": "Code", "visit_type": "Type", "practitioner_id": "Practitioner #"},
    "time_log": {
        "service_date": "Date",
        "minutes": "Min",
        "note": "Note",
        "entered_at": "Entered",
        "entry_method": "Entry",
        "staff": "Staff",
        "credential": "Cred.",
        "is_clinical": "Clinical",
        "activity": "Activity",
        "started_at": "Start",
        "program": "Program",
    },
    "stays": {"kind": "Stay", "admit_date": "Admitted", "discharge_date": "Discharged", "facility_name": "Facility"},
    "claims": {
        "claim_number": "Claim",
        "practitioner": "Practitioner",
        "service_date": "DOS",
        "cpt_code": "Code",
        "units": "Units",
        "charge": "Charge",
        "submitted_date": "Submitted",
        "replaced": "Replaced",
    },
    "remittances": {
        "claim_number": "Claim",
        "received_date": "Received",
        "status_code": "Status",
        "adjudication_seq": "Seq",
        "paid": "Paid",
        "reason_texts": "Adjustments and remarks",
    },
}
IDENTIFYING = {"claim_number"}


def evidence_table(key: str, df: pd.DataFrame) -> None:
    cols = {
        c: label
        for c, label in EVIDENCE_COLUMNS[key].items()
        if c in df.columns and not (masked() and c in IDENTIFYING)
    }
    config = dict(cols)
    if "charge" in cols:
        config["charge"] = st.column_config.NumberColumn("Charge", format="dollar")
    if "paid" in cols:
        config["paid"] = st.column_config.NumberColumn("Paid", format="dollar")
    if "started_at" in cols:
        config["started_at"] = st.column_config.TimeColumn("Start", format="HH:mm")
    if "entered_at" in cols:
        config["entered_at"] = st.column_config.DatetimeColumn("Entered", format="MMM D HH:mm")
    for wide in ("note", "reason_texts"):
        if wide in cols:
            config[wide] = st.column_config.TextColumn(cols[wide], width="large")
    layout.table(df, column_order=list(cols), column_config=config)


def draw_evidence(ev: dict) -> None:
    tabs = st.tabs(["Conditions", "Consent", "Care plan", "Time log", "Claims & remittance"])
    frames = [
        (tabs[0], [("conditions", "No diagnoses on file.")]),
        (tabs[1], [("consents", "No consent on file.")]),
        (tabs[2], [("care_plans", "No care plan on file."), ("visits", "No visits on file.")]),
        (tabs[3], [("time_log", "No time logged in the month."), ("stays", None)]),
        (tabs[4], [("claims", "No claim lines in the month."), ("remittances", "No remittance received.")]),
    ]
    for tab, keys in frames:
        with tab:
            for key, empty in keys:
                df = ev.get(key, pd.DataFrame())
                if key in ("visits", "stays", "remittances") and (not df.empty or empty):
                    st.markdown(
                        f"**{ {'visits': 'Visits', 'stays': 'Inpatient / SNF stays', 'remittances': 'Remittances'}[key] }**"
                    )
                if df.empty:
                    if empty:
                        st.caption(empty)
                    continue
                evidence_table(key, df)


# --------------------------------------------------------------------------- samples and trend
def draw_samples() -> pd.DataFrame:
    with get_engine().connect() as conn:
        df = sampling.list_samples(conn)
    if df.empty:
        empty_state("No samples yet", "Pull one above: choose a period, a size and a seed.")
        return df
    view = df.assign(
        period=[f"{format_month(a)} to {format_month(b)}" for a, b in zip(df["month_from"], df["month_to"])]
    )
    view["reviewed_text"] = [f"{r} / {i}" for r, i in zip(view["reviewed"], view["items"])]
    layout.table(
        view,
        column_order=[
            "id",
            "name",
            "period",
            "seed",
            "size",
            "reviewed_text",
            "progress",
            "pass_rate",
            "created_by",
            "created_at",
            "status",
        ],
        column_config={
            "id": st.column_config.NumberColumn("#", format="%d"),
            "name": st.column_config.TextColumn("Sample", width="large"),
            "period": st.column_config.TextColumn("Period"),
            "seed": st.column_config.NumberColumn("Seed", format="%d"),
            "size": st.column_config.NumberColumn("Size", format="%d"),
            "progress": st.column_config.ProgressColumn("Reviewed", min_value=0.0, max_value=1.0, format="percent"),
            "pass_rate": st.column_config.NumberColumn("Pass rate", format="percent"),
            "reviewed_text": st.column_config.TextColumn("Patient-months"),
            "status": st.column_config.TextColumn("Status"),
            "created_at": st.column_config.DatetimeColumn("Pulled", format="MMM D, YYYY HH:mm"),
            "created_by": st.column_config.TextColumn("By"),
        },
    )
    trend = df[df["pass_rate"].notna()].sort_values(["created_at", "id"])
    layout.section(
        "Pass rate per sample", "Reviewed patient-months passing every item, by sample in the order they were pulled."
    )
    if trend.empty:
        empty_state(
            "No reviewed samples yet",
            "Pass rates appear once every item of a patient-month has a finding.",
            icon=":material/insights:",
        )
        return df
    if len(trend) < 2:
        one = trend.iloc[0]
        n = int(one["reviewed"])
        st.info(
            f"One sample reviewed so far: #{int(one['id'])} passes {one['pass_rate']:.0%} of its "
            f"{n} reviewed patient-month{'s' if n != 1 else ''} (of {int(one['items'])}). A trend needs two or "
            "more reviewed samples.",
            icon=":material/insights:",
        )
        return df
    trend = trend.assign(
        label=[
            f"#{i} {format_month(a)}–{format_month(b)}"
            for i, a, b in zip(trend["id"], trend["month_from"], trend["month_to"])
        ]
    )
    order = list(trend["label"])
    base = alt.Chart(trend).encode(
        x=alt.X("label:O", sort=order, title=None, axis=alt.Axis(labelAngle=0)),
        y=alt.Y("pass_rate:Q", title="Pass rate", scale=alt.Scale(domain=[0, 1]), axis=alt.Axis(format="%")),
        tooltip=[
            alt.Tooltip("name:N", title="Sample"),
            alt.Tooltip("pass_rate:Q", title="Pass rate", format=".0%"),
            alt.Tooltip("reviewed:Q", title="Reviewed"),
            alt.Tooltip("items:Q", title="Items"),
        ],
    )
    chart = base.mark_line(color=charts.PRIMARY) + base.mark_point(size=80, filled=True, color=charts.PRIMARY)
    charts.show(chart, "Audited pass rate per sample, in the order the samples were pulled")
    return df


# --------------------------------------------------------------------------- month checklist
POPULATION_LABELS = {"billed": "Billed", "prebill": "Pre-bill (not billed yet)"}


def draw_month(f) -> None:
    month_f = f.with_months(f.month_to)
    population = (
        st.segmented_control(
            "Patient-months",
            list(POPULATION_LABELS),
            default="billed",
            format_func=POPULATION_LABELS.get,
            key="audit_month_population",
            help="Pre-bill: months whose minutes support a code, before any claim "
            "(the Billing page's ready list and holds).",
        )
        or "billed"
    )
    df = cached(audit.checklist_for_months, month_f, population=population)
    which = "billed" if population == "billed" else "not-yet-billed"
    layout.section(
        f"Checklist for every {which} patient-month of {format_month(f.month_to)}",
        "The same checklist as the samples, over the whole month (sidebar filters apply). Not checked "
        "from these records: 24/7 access (on-call log), cost-sharing collected, records retrievable "
        "for an ADR.",
    )
    if df.empty:
        empty_state(f"No {which} CCM patient-months in that month", "Pick another month in the sidebar.")
        return
    counts = (
        df.assign(fail=(df["result"] == "fail").astype(int), na=(df["result"] == "na").astype(int))
        .groupby(["item_key", "item"], as_index=False)[["fail", "na"]]
        .sum()
    )
    counts["patient_months"] = df[["patient_id", "service_month"]].drop_duplicates().shape[0]
    counts["fail_rate"] = counts["fail"] / counts["patient_months"]
    charts.show(
        charts.horizontal_bars(
            counts,
            "item",
            "fail",
            x_title="Patient-months failing",
            color=charts.BAD,
            tooltip_cols=[("fail_rate:Q", f"Share of {which} months", ".1%")],
        ),
        "Checklist failures by item",
    )
    fails = df[df["result"] == "fail"][["patient_id", "service_month", "item", "evidence"]]
    if fails.empty:
        st.success(f"Every {which} patient-month passes every item.", icon=":material/verified:")
        return
    heads = cached(sample_headers, tuple(sorted(set(int(p) for p in fails["patient_id"]))))
    fails = fails.merge(heads[["patient_id", "mrn", "patient_name"]], on="patient_id", how="left")
    fails["month"] = fails["service_month"].map(format_month)
    ids, names = ("patient_id", "mrn"), ("patient_name",)
    shown = present(fails, user, PAGE, id_cols=ids, name_cols=names, table_key="month_fails")
    if shown is None:
        return
    layout.table(
        shown,
        column_order=["mrn", "patient_name", "month", "item", "evidence"],
        column_config={
            "mrn": st.column_config.TextColumn("MRN"),
            "patient_name": st.column_config.TextColumn("Patient"),
            "month": st.column_config.TextColumn("Month"),
            "item": st.column_config.TextColumn("Item"),
            "evidence": st.column_config.TextColumn("Evidence", width="large"),
        },
    )
    download_buttons(
        fails[["patient_id", "mrn", "patient_name", "month", "item", "evidence"]],
        f"audit_checklist_{population}_{f.month_to}",
        user,
        PAGE,
        id_cols=ids,
        name_cols=names,
    )


# --------------------------------------------------------------------------- exports
def _export_builder(kind: str, sample_id: int, identify: bool):
    """The file for one Audit download, built when the click reaches the server (ui.exports.deferred_download
    checks the session and writes the access-log row around it)."""
    engine, generated_by = get_engine(), user.username

    def build() -> bytes:
        with engine.connect() as conn:
            if kind == "csv":
                return exports.findings_csv_bytes(conn, sample_id, identify)
            if kind == "xlsx":
                return exports.findings_excel_bytes(conn, sample_id, identify)
            return exports.evidence_packet_pdf(conn, sample_id, identify, generated_by=generated_by)

    return build


def draw_exports(sample: sampling.Sample) -> None:
    if not can(user, "export"):
        st.caption("Your role may not export.")
        return
    identify = not masked()
    patients = int(sample.items["patient_id"].nunique())
    rows = len(sample.items) * len(audit.ITEMS)
    st.caption(
        "Files list every checklist item of every sampled patient-month with the auditor's findings"
        + ("" if identify else "; identifiers are replaced by sample positions")
        + ". Each download is "
        "built when you click it and recorded in the access log."
    )
    stem = f"ccm-audit-sample-{sample.id}"
    with st.container(horizontal=True, gap="small"):
        for label, kind, mime, icon in (
            ("Findings CSV", "csv", "text/csv", ":material/table:"),
            ("Findings Excel", "xlsx", XLSX_MIME, ":material/grid_on:"),
            ("Evidence packet PDF", "pdf", "application/pdf", ":material/picture_as_pdf:"),
        ):
            name = f"{stem}.{kind}" if kind != "pdf" else exports.packet_filename(sample.id)
            n = rows if kind != "pdf" else len(sample.items)
            deferred_download(
                label,
                _export_builder(kind, sample.id, identify),
                user=user,
                page=PAGE,
                file_name=name,
                mime=mime,
                icon=icon,
                key=f"audit_dl_{kind}_{sample.id}",
                detail=f"{n} rows, {'identified' if identify else 'pseudonymised'}",
                patients=patients,
            )


# --------------------------------------------------------------------------- page
with friendly_errors("the audit page"):
    f = sidebar_filters()
    st.title("Audit", anchor=False)
    st.caption(
        "Reproducible samples of billed CCM patient-months, checked against the CMS / MAC review items"
        + (" · meeting mode" if meeting_mode() else "")
    )
    options = cached(filter_options)
    months = options["months"]
    if not months:
        empty_state(
            "No data yet",
            "Import the practice's files on the Import page, or run "
            "`python -m ccm_core init-db --demo-if-empty` for demo data.",
        )
        st.stop()

    if can(user, "pull_sample"):
        with st.expander("Pull a new sample", icon=":material/casino:", expanded=not st.session_state.get(PICK_KEY)):
            with friendly_errors("the sample pull"):
                draw_pull(f, months)

    with get_engine().connect() as conn:
        listing = sampling.list_samples(conn)
    if PENDING_KEY in st.session_state:
        st.session_state[PICK_KEY] = st.session_state.pop(PENDING_KEY)
    labels = {
        int(i): f"#{i} {n}" + (f" ({r:.0%} pass)" if r is not None and not pd.isna(r) else "")
        for i, n, r in zip(listing["id"], listing["name"], listing["pass_rate"])
    }
    if st.session_state.get(PICK_KEY) not in labels:
        st.session_state.pop(PICK_KEY, None)
    picked = st.selectbox(
        "Sample",
        list(labels),
        format_func=labels.get,
        key=PICK_KEY,
        index=None,
        placeholder="Choose a saved sample to review" if labels else "No samples yet",
    )
    if picked is None and st.session_state.get(OPEN_KEY) in labels:
        # Esc (or a cleared picker) keeps the open sample: pick it again on the next run.
        open_sample(st.session_state[OPEN_KEY])
        st.rerun()
    st.session_state[OPEN_KEY] = picked

    def review() -> None:
        if picked is None:
            empty_state(
                "No sample open", "Choose a saved sample above, or pull a new one.", icon=":material/fact_check:"
            )
            return
        with get_engine().connect() as conn:
            current = sampling.load_sample(conn, picked)
        draw_review(current)

    def export() -> None:
        if picked is None:
            empty_state("No sample open", "Choose a sample to export its findings and evidence packet.")
            return
        with get_engine().connect() as conn:
            current = sampling.load_sample(conn, picked)
        draw_exports(current)

    # Only the open tab is computed: the whole-month checklist (every billed patient-month, 12 checks)
    # runs when someone opens it, not on every visit to the page.
    layout.lazy_tabs(
        [
            ("Review", review),
            ("Samples & trend", draw_samples),
            ("Month checklist", lambda: draw_month(f)),
            ("Export", export),
        ],
        key="audit_tab",
    )
