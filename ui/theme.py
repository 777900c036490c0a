"""Page setup and the few CSS rules the theme in .streamlit/config.toml cannot express.

Kept in one place so every page (also one Streamlit runs directly, without
app.py) looks the same, and meeting mode can enlarge the KPI tiles for a
shared screen.
"""

from __future__ import annotations

import streamlit as st

from ui.run_scope import run_scope

PAGE_TITLE = "CCM Program Dashboard"

_BASE_CSS = """
<style>
/* streamlit-authenticator's cookie components are zero-height iframes: take no space */
.element-container:has(iframe[height="0"]), div[data-testid="stElementContainer"]:has(iframe[height="0"]) { display: none; }
.block-container { padding-top: 3.2rem; padding-bottom: 2rem; }
div[data-testid="stMetricValue"] { font-size: 2rem; font-weight: 650; }
div[data-testid="stMetricLabel"] p { font-size: 0.95rem; font-weight: 600; color: #3d4a5c; }
.st-key-ccm_login button, div[data-testid="stForm"]:has(input[aria-label="Username"]) button[kind*="FormSubmit"] {
  background: #1F6F8B; color: #fff; border-color: #1F6F8B; }
.ccm-login-brand { font-size: 1.7rem; font-weight: 700; color: #1f4e79; margin-top: 2.5rem; }
.ccm-user-card { font-size: 0.9rem; line-height: 1.35; }
.ccm-user-card .role { color: #5b6b7f; }
.ccm-pacing { font-size: 1.05rem; }
</style>
"""

_MEETING_CSS = """
<style>
/* Meeting mode: readable from the back of the room on a 1280x720 shared screen */
div[data-testid="stMetricValue"] { font-size: 2.8rem; }
div[data-testid="stMetricLabel"] p { font-size: 1.1rem; }
div[data-testid="stMetricDelta"] { font-size: 1.1rem; }
</style>
"""


def ensure_page_setup() -> None:
    """Wide layout, title and base CSS, once per run (app.py or a page run directly)."""
    scope = run_scope()
    if scope.get("page_setup"):
        return
    scope["page_setup"] = True
    st.set_page_config(
        page_title=PAGE_TITLE, page_icon=":material/monitor_heart:", layout="wide", initial_sidebar_state="expanded"
    )
    st.html(_BASE_CSS)


def apply_meeting_css() -> None:
    scope = run_scope()
    if scope.get("meeting_css"):
        return
    scope["meeting_css"] = True
    st.html(_MEETING_CSS)
