"""A dict that lives exactly as long as one script run.

Why: some things must happen once per run however many pages or helpers ask
(the authenticator renders a cookie component with a fixed key; the user row
and the data version need one query per run, not one per tile).
``st.session_state`` outlives the run, so it cannot tell two runs apart.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any

from streamlit.runtime.scriptrunner_utils.script_run_context import get_script_run_ctx


def run_scope() -> dict[str, Any]:
    ctx = get_script_run_ctx()
    if ctx is None:  # bare Python (imports in tests): nothing to share
        return {}
    # The coordinator object is created anew by every ScriptRunContext.reset(),
    # i.e. once per run; holding a reference keeps the identity test sound.
    marker = getattr(ctx, "parallel_coordinator", None)
    holder = getattr(ctx, "_ccm_run_scope", None)
    if holder is None or holder[0] is not marker:
        holder = (marker, {})
        ctx._ccm_run_scope = holder
    return holder[1]


@contextlib.contextmanager
def shell_widget_ids() -> Iterator[None]:
    """Give app.py's own widgets the same ids whether Streamlit ran it directly or through its
    legacy pages/ path (the first run after a server start, and every AppTest run).

    Element ids include the "active script hash", which differs between those two
    paths; without this a click on a sidebar widget rendered by one path is
    lost in the next run taken by the other.
    """
    ctx = get_script_run_ctx()
    scoped = getattr(ctx, "run_with_active_hash", None) if ctx is not None else None
    if scoped is None:
        yield
        return
    with scoped(ctx.pages_manager.main_script_hash):
        yield
