"""Import (admin): upload CSV / Excel / X12 835 files, check them, confirm, and manage the import history.

Every check runs the real import in a transaction that is rolled back (a dry
run), so what the page promises is exactly what the confirm button does.
"""

from __future__ import annotations

from ui.session import can, require_page

user = require_page("import")  # first: nobody reads data before the role check

import hashlib  # noqa: E402

import streamlit as st  # noqa: E402

from ccm_core.io import imports  # noqa: E402
from ccm_core.security.access_log import log_access  # noqa: E402
from ui.cache import get_engine  # noqa: E402
from ui.components import empty_state, friendly_errors  # noqa: E402
from ui.exports import download_buttons  # noqa: E402
from ui.meeting import present  # noqa: E402
from ui.text import md  # noqa: E402

PAGE = "import"
UPLOAD_TYPES = ["csv", "txt", "tsv", "xlsx", "xlsm", "835", "x12", "edi", "era"]
ID_COLS = ("mrn", "patient_mrn", "external_id", "claim_number")
NAME_COLS = ("first_name", "last_name")
STATE = "_import_page"

state = st.session_state.setdefault(STATE, {"nonce": 0, "result": None})

st.title("Import data")
st.caption(
    "Files from your EHR or billing system: one CSV or Excel file per table, and X12 835 remittance files. "
    "Several files are imported together in dependency order, all or nothing. Re-importing a file changes "
    "nothing; a corrected file updates only what changed."
)

with st.expander("Expected files and columns", icon=":material/description:"):
    st.markdown(
        "Dates as `2025-11-03` or `11/03/2025`; header case, spaces and underscores do not matter. "
        "Rows refer to each other by MRN, NPI, staff external_id, clinic code and claim number. "
        "The full reference is `docs/import-format.md`; `data/examples/` holds a complete small practice."
    )
    for name in imports.ORDER:
        if name == imports.X12_KIND:
            st.markdown("**X12 835** remittance (`.835`): claims matched by claim number (CLP01).")
            continue
        kind = imports.KINDS[name]
        cols = ", ".join(f"**{c.name}**" if c.required else c.name for c in kind.columns)
        st.markdown(f"**{kind.file_name}** (key: {' + '.join(kind.key)}): {cols}")

# --------------------------------------------------------------------------- upload and check
uploads = st.file_uploader(
    "Files to import",
    type=UPLOAD_TYPES,
    accept_multiple_files=True,
    key=f"uploads_{state['nonce']}",
    help="CSV (UTF-8), Excel .xlsx, or X12 835. The kind is read from the file name "
    "(e.g. patients.csv) or from its columns.",
)
left, right = st.columns([2, 3], vertical_alignment="bottom")
with left:
    kind_choice = st.selectbox(
        "Kind",
        ["Detect from name and columns", *imports.ORDER],
        key="import_kind",
        help="Only needed when a file's name and columns do not make its kind clear.",
    )
with right:
    accept_valid = st.checkbox(
        "Import the valid rows even if some rows are rejected",
        key="import_accept_valid",
        help="Rejected rows are then offered as a download with a problem column, to fix and import again.",
    )
kind = None if kind_choice.startswith("Detect") else kind_choice


def _show_run(run: imports.ImportRun, label: str) -> None:
    """Per-file outcome, problems with downloads, and warnings."""
    would = "" if run.committed else "would insert" if run.dry_run else "would have inserted"  # nothing written
    rows = [
        {
            "file": f.source,
            "kind": f.kind or "?",
            "status": f.status,
            "rows": f.rows_in,
            (would or "inserted"): f.inserted,
            (would.replace("insert", "update") or "updated"): f.updated,
            "unchanged": f.unchanged,
            "rejected": f.rows_rejected,
            **({"batch": f.batch_id} if run.committed else {}),
        }
        for f in run.files
    ]
    st.dataframe(rows, hide_index=True, width="stretch")
    for f in run.files:
        notes = [f.message] if f.message else []
        if f.same_as_batch:
            notes.append(
                f"Same file content as batch {f.same_as_batch['id']} "
                f"({f.same_as_batch['imported_at']:%Y-%m-%d %H:%M}, {f.same_as_batch['imported_by']})."
            )
        if notes:
            st.caption(f"**{md(f.source)}**: " + " ".join(md(n) for n in notes))
    problems = run.problems
    if len(problems):
        st.subheader(f"{len(problems):,} problem(s)", anchor=False)
        st.dataframe(problems, hide_index=True, width="stretch", height=min(420, 38 + 35 * len(problems)))
        download_buttons(problems, f"import_problems_{label}", user, PAGE, key=f"problems_{label}")
    for f in run.files:
        if f.rejected_rows is not None and len(f.rejected_rows):
            st.markdown(
                f"**Rejected rows of {md(f.source)}** ({len(f.rejected_rows):,}): fix them and import this file again."
            )
            download_buttons(
                f.rejected_rows,
                f"rejected_{f.source.rsplit('.', 1)[0]}",
                user,
                PAGE,
                key=f"rejected_{label}_{f.source}",
            )
    warnings = run.warnings
    if warnings:
        with st.expander(f"{len(warnings)} warning(s)", icon=":material/warning:"):
            for w in warnings:
                st.markdown(f"- {md(w)}")


if uploads:
    sources = [imports.Source(u.name, u.getvalue()) for u in uploads]
    signature = (tuple((s.name, hashlib.sha256(s.data).hexdigest()) for s in sources), kind, accept_valid)
    with friendly_errors("the file check"):
        if state.get("check_sig") != signature:
            with st.spinner("Checking the files..."):
                state["check"] = imports.import_files(
                    get_engine(), sources, user=user.username, kind=kind, accept_valid=accept_valid, dry_run=True
                )
            state["check_sig"] = signature
        check: imports.ImportRun = state["check"]

        st.subheader("Check", anchor=False)
        (st.success if check.ok else st.warning)(md(check.message))
        _show_run(check, "check")

        with st.expander("Preview the files (first 20 rows)", icon=":material/table_view:"):
            for src in sources:
                for label, file_kind, frame in imports.preview(src, kind):
                    st.markdown(f"**{md(label)}** - {md(file_kind or 'unknown kind')}")
                    shown = present(
                        frame, user, PAGE, id_cols=ID_COLS, name_cols=NAME_COLS, table_key=f"preview_{label}"
                    )
                    if shown is not None:
                        st.dataframe(shown, hide_index=True, width="stretch", height=250)

        blocked = any(f.status == "rejected" and not f.rows_in for f in check.files) and not accept_valid
        has_rejections = any(f.status == "rejected" or f.rows_rejected for f in check.files)
        nothing = all(f.status == "unchanged" for f in check.files)
        disabled = (has_rejections and not accept_valid) or blocked or nothing
        help_text = (
            "Fix the problems first, or tick 'Import the valid rows'."
            if has_rejections and not accept_valid
            else "Nothing would change."
            if nothing
            else None
        )
        if st.button(
            f"Import {len(sources)} file(s)",
            type="primary",
            disabled=disabled,
            help=help_text,
            icon=":material/upload:",
        ):
            if not can(user, "import"):  # server-side, whatever the button state
                st.error("Your role may not import data.")
                st.stop()
            with st.spinner("Importing..."):
                run = imports.import_files(
                    get_engine(), sources, user=user.username, kind=kind, accept_valid=accept_valid
                )
            log_access(
                get_engine(),
                username=user.username,
                role=user.role,
                action="import",
                page=PAGE,
                detail=run.summary()[:2000],
                patient_count=None,
            )
            state["result"] = run
            state["nonce"] += 1  # clears the uploader so the same files are not imported twice by accident
            state.pop("check_sig", None)
            st.rerun()
elif state.get("result") is None:
    empty_state(
        "No files chosen",
        "Drop CSV, Excel or 835 files above; they are checked before anything is written.",
        icon=":material/upload_file:",
    )

result: imports.ImportRun | None = state.get("result")
if result is not None:
    st.subheader("Last import", anchor=False)
    (st.success if result.committed and result.ok else st.error if not result.committed else st.warning)(
        md(result.message)
    )
    _show_run(result, "result")
    if st.button("Dismiss", key="dismiss_result"):
        state["result"] = None
        st.rerun()

# --------------------------------------------------------------------------- history and revert
st.divider()
st.subheader("Import history", anchor=False)
if state.get("revert_msg"):
    st.success(state.pop("revert_msg"), icon=":material/undo:")
with friendly_errors("the import history"):
    history = imports.list_batches(get_engine(), limit=200)
    if history.empty:
        empty_state(
            "No imports yet", "Imported files appear here with who imported them and when.", icon=":material/history:"
        )
    else:
        shown = history[
            [
                "id",
                "kind",
                "file_name",
                "imported_by",
                "imported_at",
                "rows_in",
                "rows_written",
                "rows_rejected",
                "status",
                "reverted_by",
                "reverted_at",
            ]
        ]
        st.dataframe(
            shown,
            hide_index=True,
            width="stretch",
            height=min(400, 38 + 35 * len(shown)),
            column_config={
                "id": "Batch",
                "imported_at": st.column_config.DatetimeColumn("Imported", format="YYYY-MM-DD HH:mm"),
                "reverted_at": st.column_config.DatetimeColumn("Reverted", format="YYYY-MM-DD HH:mm"),
            },
        )
        committed = history[history["status"] == "committed"]
        if can(user, "revert_import") and len(committed):
            options = {
                int(r.id): f"Batch {r.id}: {r.file_name} ({r.kind}, {r.imported_at:%Y-%m-%d %H:%M})"
                for r in committed.itertuples()
            }
            col_a, col_b = st.columns([3, 1], vertical_alignment="bottom")
            with col_a:
                chosen = st.selectbox(
                    "Revert a batch",
                    list(options),
                    format_func=options.get,
                    key="revert_choice",
                    help="Deletes the rows the batch inserted and restores rows it updated. "
                    "Refused when later imports depend on it.",
                )
            with col_b:
                confirm = st.button("Revert", icon=":material/undo:", key="revert_button")
            if confirm:
                if not can(user, "revert_import"):
                    st.error("Your role may not revert imports.")
                    st.stop()
                try:
                    done = imports.revert_batch(get_engine(), int(chosen), user.username)
                except imports.RevertRefused as exc:
                    st.error(md(exc), icon=":material/block:")
                else:
                    log_access(
                        get_engine(),
                        username=user.username,
                        role=user.role,
                        action="revert",
                        page=PAGE,
                        detail=f"batch {chosen}: {done['deleted']} deleted, {done['restored']} restored",
                    )
                    state["revert_msg"] = (
                        f"Batch {chosen} reverted: {done['deleted']} inserted row(s) deleted, "
                        f"{done['restored']} updated row(s) restored."
                    )
                    st.rerun()
